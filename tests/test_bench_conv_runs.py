"""The convolution benchmark runs: ``--quick`` times the smallest shape and prints the table.

No timing is asserted (timings depend on the machine).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "benchmarks" / "bench_conv.py"


def test_conv_benchmark_quick_run_prints_the_table():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "forward ms" in out and "fwd+bwd ms" in out, out
    assert "bnlib" in out and "Keras tf.function" in out, out
    assert "(32, 8, 8, 8 -> 16)" in out and "(64, 32, 32" not in out, "--quick: smallest only"
