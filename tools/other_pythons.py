"""The course on the other Pythons it supports, where this machine has them (part of make test).

Usage: python -m tools.other_pythons

The course supports Python 3.11-3.13 and `make test` runs on the newest one found (see the
Makefile). For each other supported minor version on this machine (on the PATH, or installed
by pyenv), this makes a virtual environment beside .venv/ (.venv-3.12/, ...), installs the
pinned requirements.txt and bnlib into it, runs the core's unit tests and one lesson under
strict nbval, and prints a table. The versions run side by side (each test run is one
process, so two share the two cores). A version that is not on the machine is reported and
skipped; a failure on one that is makes the exit status 1.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUPPORTED = ((3, 11), (3, 12), (3, 13))
UV = Path(sys.executable).with_name("uv")
# The core against its independent references, and the course's check framework: the parts a
# new Python (and its wheels of NumPy, SciPy, TensorFlow: test_layernorm compares with Keras)
# could break; then a lesson through Jupyter, ipywidgets and matplotlib.
UNIT_TESTS = [f"tests/core/test_{name}.py" for name in (
    "batchnorm", "batchnorm_fast", "nn", "ema", "normalize", "layernorm", "gradcheck", "conv",
    "cnn")] + [f"tests/course/test_{name}.py" for name in ("checks", "widgets", "environment")]
LESSON = "notebooks/02_exponential_smoothing.ipynb"
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-cell-timeout=600",
         "--nbval-sanitize-with", "tests/nbval_sanitize.cfg"]


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tuple(map(int, out.stdout.split())) if out.returncode == 0 else None


def find(minor: tuple[int, int]) -> str | None:
    """An interpreter of that version: on the PATH, or in pyenv's versions (newest first)."""
    name = f"python{minor[0]}.{minor[1]}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(name)] + sorted(
        glob.glob(str(pyenv / f"{minor[0]}.{minor[1]}.*" / "bin" / name)), reverse=True)
    return next((c for c in candidates if c and _version(c) == minor), None)


def _run(command: list[str], **kwargs) -> tuple[bool, float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
    return result.returncode == 0, time.perf_counter() - start, tail


def check(python: str, minor: tuple[int, int]) -> list[tuple[str, bool, float, str]]:
    """Install into .venv-3.N/ and run the unit tests and the lesson; one row per step."""
    venv = REPO / f".venv-{minor[0]}.{minor[1]}"
    bin_python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MPLBACKEND", None)
    steps = [
        ("install", [[str(UV), "venv", "--quiet", "--allow-existing", "--python", python, str(venv)],
                     [str(UV), "pip", "install", "--quiet", "--python", bin_python,
                      "-r", "requirements.txt"],
                     [str(UV), "pip", "install", "--quiet", "--python", bin_python, "--no-deps",
                      "-e", "."]]),
        (f"unit tests ({len(UNIT_TESTS)} files)",
         # one process: with xdist, each worker's start (importing TensorFlow) outweighs the tests
         [[bin_python, "-m", "pytest", *UNIT_TESTS, "-q", "-p", "no:cacheprovider",
           "-m", "not slow"]]),
        ("lesson 02, strict nbval", [[bin_python, "-m", "pytest", LESSON, *NBVAL, "-q",
                                      "-p", "no:cacheprovider"]]),
    ]
    rows = []
    for label, commands in steps:
        ok, seconds, tail = True, 0.0, ""
        for command in commands:
            ok, took, tail = _run(command, env=env, timeout=1800)
            seconds += took
            if not ok:
                break
        rows.append((label, ok, seconds, tail))
        if not ok:
            break
    return rows


def main() -> int:
    here = sys.version_info[:2]
    print(f"make test ran on Python {here[0]}.{here[1]}; the other supported versions:")
    found = {}
    for minor in SUPPORTED:
        if minor == here:
            continue
        python = find(minor)
        if python is None:
            print(f"  Python {minor[0]}.{minor[1]}: not on this machine, skipped")
        else:
            found[minor] = python
    with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
        reports = dict(zip(found, pool.map(lambda m: check(found[m], m), found)))
    failed = False
    for minor, rows in reports.items():
        for label, ok, seconds, tail in rows:
            print(f"  Python {minor[0]}.{minor[1]} ({found[minor]}): {label:<28} "
                  f"{'ok' if ok else 'FAILED'} ({seconds:.0f} s)")
            if not ok:
                failed = True
                print("    " + tail.replace("\n", "\n    "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
