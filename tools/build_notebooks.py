"""Build every lesson notebook from its script and execute it in a fresh kernel.

Usage: python -m tools.build_notebooks [PREFIX]

For each ``notebooks/scripts/NN_name.py`` (py:percent, the reviewed source)
whose name starts with PREFIX, write ``notebooks/NN_name.ipynb`` with the
same cells, run it top to bottom in a new kernel started in ``notebooks/``
and save it with its outputs (execution counts 1, 2, 3, ...). A cell that
raises stops the build with the error, so a broken lesson is never saved.
Cell ids come from the cells' text and no execution times are stored, so a
rebuild changes only the cells whose text or outputs changed.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def stable_ids(nb) -> None:
    """Give every cell an id made from its text (and a counter for repeated texts)."""
    seen = {}
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell.id = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def build(script: Path, timeout: int = 900) -> Path:
    """Convert ``script`` to a notebook, execute it, write it next to notebooks/."""
    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["jupytext"] = {"formats": "ipynb,scripts//py:percent"}
    stable_ids(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            record_timing=False, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    target = NOTEBOOKS / f"{script.stem}.ipynb"
    nbformat.write(nb, target)
    # Keep the pair's times in order: jupytext refuses to open a notebook that is
    # newer than its paired script and differs from it (here: the YAML header).
    os.utime(script)
    return target


def main(prefix: str = "") -> None:
    os.environ.pop("MPLBACKEND", None)  # kernels inherit it, and inline figures would vanish
    scripts = sorted((NOTEBOOKS / "scripts").glob(f"{prefix}*.py"))
    if not scripts:
        sys.exit(f"no scripts in {NOTEBOOKS / 'scripts'} start with {prefix!r}")
    for script in scripts:
        start = time.perf_counter()
        target = build(script)
        print(f"{target.name}: executed in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])
