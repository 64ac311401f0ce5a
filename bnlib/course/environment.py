"""The environment check of lesson 00: is everything the course needs installed, and how
close is it to the versions the committed outputs come from?

A missing package, a release older than the course's code supports, or a Python outside
3.11-3.13 is a problem: the lessons would fail. A version that merely differs from the pin
(a hosted notebook service, a newer release) is reported, not a problem: the lessons run,
and a printed number may differ in its last digits from the committed one.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

__all__ = ["SUPPORTED_PYTHON", "COURSE_PACKAGES", "MINIMUM", "pinned_versions", "check"]

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
SUPPORTED_PYTHON = ((3, 11), (3, 13))
COURSE_PACKAGES = ("numpy", "matplotlib", "ipywidgets", "jupyterlab", "nbval",
                   "tensorflow", "keras", "scikit-learn", "pytest")
# The oldest releases the course's code works with (pyproject.toml's ranges).
MINIMUM = {"numpy": "2", "matplotlib": "3.8", "ipywidgets": "8", "tensorflow": "2.16",
           "keras": "3"}
# Distributions that provide the `tensorflow` module: the CPU-only wheel (Linux x86-64 and
# Windows, as requirements.txt pins it) or the regular one.
_PROVIDERS = {"tensorflow": ("tensorflow-cpu", "tensorflow")}


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """The versions requirements.txt pins for this platform and Python, by package name.

    Names are lower case with '-' for '_'; a pin whose environment marker does not hold
    here (``; sys_platform == 'win32'``) is left out. Empty if the file is not there (bnlib
    installed from a git URL, without the repository).
    """
    if not path.is_file():
        return {}
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            (spec,) = requirement.specifier
            pins[_canonical(requirement.name)] = spec.version
    return pins


def _installed(name: str) -> tuple[str, str | None]:
    """(distribution, version) of the first installed provider of ``name``; version None if none."""
    for dist in _PROVIDERS.get(name, (name,)):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return name, None


def _python_line() -> tuple[str, str | None]:
    low, high = SUPPORTED_PYTHON
    here = sys.version_info[:2]
    span = f"{low[0]}.{low[1]}-{high[0]}.{high[1]}"
    version = f"{here[0]}.{here[1]}"
    if low <= here <= high:
        return f"Python {version}: supported (the course supports {span})", None
    return (f"Python {version}: NOT SUPPORTED (the course supports {span})",
            f"Python {version} is outside {span}")


def check(packages=COURSE_PACKAGES, path: Path = REQUIREMENTS) -> list[str]:
    """Print one line per package (installed, pinned, verdict) and a summary; return the problems.

    Returns
    -------
    list of str
        What stops the lessons from running: a package missing or too old, an unsupported
        Python. Versions that only differ from the pins are printed, not returned.
    """
    pins = pinned_versions(path)
    line, problem = _python_line()
    print(line)
    problems = [problem] if problem else []
    differ = 0
    for name in packages:
        dist, found = _installed(name)
        wanted = pins.get(dist) or next(
            (pins[d] for d in _PROVIDERS.get(name, ()) if d in pins), None)
        if found is None:
            verdict = "MISSING: run `make lab` (or pip install -r requirements.txt)"
            problems.append(f"{name} is not installed")
        elif name in MINIMUM and Version(found) < Version(MINIMUM[name]):
            verdict = f"TOO OLD: the course needs {MINIMUM[name]} or newer"
            problems.append(f"{dist} {found} is older than {MINIMUM[name]}")
        elif wanted is not None and found != wanted:
            verdict = f"differs from the pinned {wanted}: numbers may differ in the last digits"
            differ += 1
        else:
            verdict = "ok" if wanted is not None else "ok (no pin to compare with here)"
        print(f"  {dist:<15} {found or '-':<10} {verdict}")
    if problems:
        print(f"{len(problems)} problem(s): " + "; ".join(problems))
    elif differ:
        print(f"Everything the course needs is installed; {differ} version(s) differ from the "
              "pins: the lessons run, some printed numbers may differ from the committed ones.")
    elif not pins:
        print("Everything the course needs is installed (requirements.txt is not here to "
              "compare versions with).")
    else:
        print("Everything the course needs is installed, at the pinned versions.")
    return problems
