"""The benchmark script runs: ``--quick`` times the smallest shape and prints the table.

No timing is asserted (timings depend on the machine); ``make bench`` runs the full table.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "benchmarks" / "bench_batchnorm.py"


def test_benchmark_quick_run_prints_the_table():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "implementation" in out and "forward ms" in out and "fwd+bwd ms" in out, out
    for row in ("bnlib", "naive NumPy", "Keras tf.function", "memcopy"):
        assert row in out, f"row {row!r} missing from the table:\n{out}"
    assert "(64, 100)" in out and "(4096, 1024)" not in out, "--quick must time only (64, 100)"
    assert "import bnlib in a fresh interpreter" in out
    assert "Target 1" in out and "Target 2" in out
