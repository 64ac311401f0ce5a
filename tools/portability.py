"""Strict nbval under numerical environments other than this CPU's default.

Usage:
    python -m tools.portability            one pass (part of ``make test``)
    python -m tools.portability --matrix   every environment, then a table (``make test-portability``)

A committed notebook holds one machine's outputs. Another CPU runs other
OpenBLAS kernels (``OPENBLAS_CORETYPE``) and other NumPy SIMD loops
(``NPY_DISABLE_CPU_FEATURES``), and a learner's run may differ from ours by
round-off. Each pass re-runs every notebook under strict nbval with such an
environment, chosen at run time from what this machine does by default
(read with threadpoolctl and NumPy's CPU-feature table), so that the pass
really differs from it. A pass may also nudge every ``nn.MLP``'s initial
weights by a relative 1e-15 (an IPython startup file in the kernels), which
shows a chaotic training printed as a number.

The one pass of ``make test`` steps both libraries one level down and nudges
the weights. ``--matrix`` runs each ingredient alone and together, and prints
one row for every notebook cell that failed anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# As in `make test`: two notebooks at a time, kernels started one at a time.
NBVAL = ["-n", "2", "--dist", "loadfile", "-p", "tests.nbval_parallel",
         "--nbval", "--nbval-current-env", "--nbval-cell-timeout=600",
         "--nbval-sanitize-with", str(REPO / "tests" / "nbval_sanitize.cfg")]

# OpenBLAS x86 kernels by SIMD level (0: SSE, 1: AVX, 2: AVX2, 3: AVX-512).
OPENBLAS_LEVELS = ["Nehalem", "Sandybridge", "Haswell", "SkylakeX"]
OPENBLAS_LEVEL_OF = {"prescott": 0, "core2": 0, "penryn": 0, "dunnington": 0, "nehalem": 0,
                     "atom": 0, "sandybridge": 1, "bulldozer": 1, "piledriver": 1,
                     "steamroller": 1, "haswell": 2, "zen": 2, "excavator": 2,
                     "skylakex": 3, "cooperlake": 3, "sapphirerapids": 3}
# NumPy's dispatch targets from the widest down; disabling a level disables those above it too.
NUMPY_LEVELS = [("X86_V4", "AVX512_ICL", "AVX512_SPR"), ("X86_V3",)]

NUDGE_STARTUP = '''\
# Portability check: nudge every model's initial weights by a relative 1e-15.
import numpy as _np
from bnlib import cnn as _cnn, nn as _nn


def _nudging(init, weights):
    def nudged_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        rng = _np.random.default_rng(12345)
        for W in weights(self):
            W *= 1 + 1e-15 * rng.standard_normal(W.shape)
    return nudged_init


_nn.MLP.__init__ = _nudging(_nn.MLP.__init__, lambda m: m.weights)
_cnn.CNN.__init__ = _nudging(_cnn.CNN.__init__, lambda m: [*m.kernels, m.W])
'''

PROBE = '''\
import json
import numpy
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
from threadpoolctl import threadpool_info
blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
print(json.dumps({"openblas": blas[0].get("architecture") if blas else None,
                  "threads": blas[0].get("num_threads") if blas else None,
                  "numpy": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]}))
'''


def probe(env: dict) -> dict:
    """What OpenBLAS kernel, BLAS threads and NumPy dispatch targets a process with ``env`` uses."""
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def base_env() -> dict:
    """The caller's environment, less what would change the kernels' behaviour."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # inline figures must not vanish
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def numpy_disable(default: dict, levels_down: int) -> str:
    """NPY_DISABLE_CPU_FEATURES that removes the ``levels_down`` widest active dispatch levels."""
    active = [level for level in NUMPY_LEVELS if set(level) & set(default["numpy"])]
    dropped = [f for level in active[:levels_down] for f in level if f in default["numpy"]]
    return " ".join(dropped)


def openblas_below(default: dict, levels_down: int) -> str | None:
    """An OpenBLAS kernel ``levels_down`` SIMD levels below the default one, if there is one."""
    level = OPENBLAS_LEVEL_OF.get(str(default["openblas"]).lower())
    if level is None or level - levels_down < 0:
        return None
    return OPENBLAS_LEVELS[level - levels_down]


def environments(default: dict, matrix: bool) -> list[tuple[str, dict, bool]]:
    """(label, extra environment variables, nudge) for each pass."""
    def cpu(levels_down):
        extra = {}
        core = openblas_below(default, levels_down)
        if core:
            extra["OPENBLAS_CORETYPE"] = core
        disable = numpy_disable(default, levels_down)
        if disable:
            extra["NPY_DISABLE_CPU_FEATURES"] = disable
        return extra

    one_down = cpu(1)
    if not matrix:
        return [("one level down + nudge", one_down, True)]
    runs = [("default", {}, False),
            ("1 BLAS thread", {"OPENBLAS_NUM_THREADS": "1"}, False),
            ("nudge 1e-15", {}, True)]
    for down in (1, 2, 3):
        extra = cpu(down)
        if extra and extra not in [r[1] for r in runs]:
            left = [level[0] for level in NUMPY_LEVELS[down:] if level[0] in default["numpy"]]
            label = f"{extra.get('OPENBLAS_CORETYPE', 'default')}, numpy {(left or ['baseline'])[0]}"
            runs.append((label, extra, False))
    if one_down:
        runs.append(("one level down, 1 thread, nudge",
                     {**one_down, "OPENBLAS_NUM_THREADS": "1"}, True))
    return runs


def run_pass(label: str, extra: dict, nudge: bool, notebooks: list[str]) -> tuple[dict, set, int]:
    """Strict nbval over ``notebooks`` under one environment: (what was in force, failed cells, exit code)."""
    env = {**base_env(), **extra}
    with tempfile.TemporaryDirectory() as tmp:
        if nudge:
            startup = Path(tmp, "ipython", "profile_default", "startup")
            startup.mkdir(parents=True)
            (startup / "00-nudge.py").write_text(NUDGE_STARTUP)
            env["IPYTHONDIR"] = str(Path(tmp, "ipython"))
        state = probe(env)
        print(f"\n=== {label}: OpenBLAS {state['openblas']}, {state['threads']} thread(s), "
              f"NumPy dispatch {state['numpy'] or ['baseline only']}, nudge {'on' if nudge else 'off'}",
              flush=True)
        report = Path(tmp, "junit.xml")
        code = subprocess.run([sys.executable, "-m", "pytest", *notebooks, *NBVAL, "-q",
                               "-p", "no:cacheprovider", f"--junitxml={report}", "-o", "junit_family=xunit1"],
                              env=env, cwd=REPO).returncode
        failed = set()
        if report.exists():
            for case in ET.parse(report).iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    notebook = Path(case.get("file") or case.get("classname", "")).name
                    failed.add(f"{notebook}::{case.get('name')}")
    return state, failed, code


def differs(state: dict, default: dict) -> bool:
    return state["openblas"] != default["openblas"] or state["numpy"] != default["numpy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", action="store_true", help="run every environment and print a table")
    parser.add_argument("notebooks", nargs="*", help="notebooks to check (default: all lessons)")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted(str(p.relative_to(REPO))
                                         for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    default = probe(base_env())
    print(f"this machine by default: OpenBLAS {default['openblas']}, "
          f"NumPy dispatch {default['numpy'] or ['baseline only']}")
    results = []
    for label, extra, nudge in environments(default, args.matrix):
        start = time.perf_counter()
        state, failed, code = run_pass(label, extra, nudge, notebooks)
        if label != "default" and not nudge and not differs(state, default) \
                and "OPENBLAS_NUM_THREADS" not in extra:
            print(f"{label}: did not change the numerics of this machine", file=sys.stderr)
            code = code or 1
        results.append((label, failed, code, time.perf_counter() - start))
    print("\n| environment | failed cells | exit | time |\n|---|---|---|---|")
    for label, failed, code, seconds in results:
        print(f"| {label} | {len(failed)} | {code} | {seconds:.0f} s |")
    cells = sorted(set().union(*(f for _, f, _, _ in results)))
    if cells:
        print("\n| cell | " + " | ".join(r[0] for r in results) + " |")
        print("|---|" + "---|" * len(results))
        for cell in cells:
            print(f"| {cell} | " + " | ".join("✗" if cell in r[1] else "" for r in results) + " |")
    else:
        print("\nevery cell matched its committed output in every environment")
    return max(code for _, _, code, _ in results)


if __name__ == "__main__":
    sys.exit(main())
