"""The benchmark scripts run: ``--quick`` times the smallest shape and prints the table.

No timing is asserted (timings depend on the machine); ``make bench`` runs the full tables.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_run(script: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(REPO / "tests" / "benchmarks" / script),
                             "--quick"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "median time per call (3 repeats" in result.stdout, result.stdout
    return result.stdout


def test_batchnorm_benchmark_prints_the_table():
    out = quick_run("bench_batchnorm.py")
    assert "implementation" in out and "forward ms" in out and "fwd+bwd ms" in out, out
    for row in ("bnlib", "naive NumPy", "Keras tf.function", "memcopy"):
        assert row in out, f"row {row!r} missing from the table:\n{out}"
    assert "(64, 100)" in out and "(4096, 1024)" not in out, "--quick must time only (64, 100)"
    assert "import bnlib in a fresh interpreter" in out
    assert "Target 1" in out and "Target 2" in out


def test_conv_benchmark_prints_the_table():
    out = quick_run("bench_conv.py")
    assert "forward ms" in out and "fwd+bwd ms" in out, out
    assert "bnlib" in out and "Keras tf.function" in out, out
    assert "(32, 8, 8, 8 -> 16)" in out and "(64, 32, 32" not in out, "--quick: smallest only"
