"""The explorer latency benchmark runs and has a row for every explorer factory it should find.

No timing is asserted (timings depend on the machine); ``make bench`` prints the full table.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "benchmarks" / "bench_explorers.py"


def factories_in_source():
    """``module.name`` of every top-level ``def *_explorer`` in bnlib/lessons/lesson*/explore.py, read as text."""
    found = []
    for path in sorted((REPO / "bnlib" / "lessons").glob("lesson*/explore.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.parent.name}.{node.name}" for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.endswith("_explorer")]
    return found


def test_quick_run_prints_a_row_per_explorer():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "median" in out and "p90" in out and "target" in out and "verdict" in out, out
    expected = factories_in_source()
    assert expected, "no explorer factory found in bnlib/lessons/lesson*/explore.py"
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("lesson")]
    assert sorted(set(rows)) == sorted(expected), out
    for line in out.splitlines():
        if line.startswith("lesson") and "skipped" not in line:
            assert line.rstrip().endswith(("ok", "p90 over target", "SLOW")), line
