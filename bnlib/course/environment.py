"""The environment check of lesson 00: which pinned packages are installed, at which version."""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
COURSE_PACKAGES = ("numpy", "matplotlib", "ipywidgets", "jupyterlab", "nbval",
                   "tensorflow-cpu", "keras", "scikit-learn", "pytest")


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """Map each package name (lower case, '-' for '_') to the version pinned in requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def check(packages=COURSE_PACKAGES) -> list[str]:
    """Print one line per package (pinned, found, verdict); return the problems found.

    Returns
    -------
    list of str
        Empty when every package is installed at its pinned version.
    """
    pins = pinned_versions()
    problems = []
    print(f"Python {sys.version_info.major}.{sys.version_info.minor}"
          f" ({'ok' if sys.version_info[:2] == (3, 11) else 'expected 3.11'})")
    for name in packages:
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        wanted = pins.get(name, "?")
        if found is None:
            verdict = "MISSING: run `make lab` (or pip install -r requirements.txt)"
            problems.append(f"{name} is not installed")
        elif found != wanted:
            verdict = f"version differs from the pinned {wanted}: outputs may differ"
            problems.append(f"{name} {found} is not the pinned {wanted}")
        else:
            verdict = "ok"
        print(f"  {name:<15} {found or '-':<10} {verdict}")
    return problems
