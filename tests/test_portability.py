"""The portability tool: it picks environments that differ from the default, and its nudge is seen."""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tools import portability

# Tests that start kernels or servers share one xdist worker, so they never start at once.
pytestmark = pytest.mark.xdist_group("kernels")

AVX512 = {"openblas": "SkylakeX", "threads": 2, "numpy": ["X86_V3", "X86_V4", "AVX512_ICL"]}
AVX2 = {"openblas": "Zen", "threads": 2, "numpy": ["X86_V3"]}
SSE = {"openblas": "Nehalem", "threads": 2, "numpy": []}


@pytest.mark.parametrize("default, core, disabled", [
    (AVX512, "Haswell", "X86_V4 AVX512_ICL"),
    (AVX2, "Sandybridge", "X86_V3"),
])
def test_one_pass_steps_both_libraries_down(default, core, disabled):
    [(_, extra, nudge)] = portability.environments(default, matrix=False)
    assert extra == {"OPENBLAS_CORETYPE": core, "NPY_DISABLE_CPU_FEATURES": disabled}
    assert nudge


def test_lowest_level_machine_still_gets_the_nudge():
    [(_, extra, nudge)] = portability.environments(SSE, matrix=False)
    assert extra == {} and nudge


def test_matrix_covers_threads_nudge_and_every_lower_level():
    runs = portability.environments(AVX512, matrix=True)
    cores = [extra.get("OPENBLAS_CORETYPE") for _, extra, _ in runs]
    assert {"Haswell", "Sandybridge", "Nehalem"} <= set(cores)
    assert any(extra.get("OPENBLAS_NUM_THREADS") == "1" for _, extra, _ in runs)
    assert any(nudge for _, _, nudge in runs)
    assert len({str(sorted(e.items())) + str(n) for _, e, n in runs}) == len(runs)


def test_probe_sees_the_disabled_numpy_level():
    default = portability.probe(portability.base_env())
    if "X86_V4" not in default["numpy"] and "X86_V3" not in default["numpy"]:
        pytest.skip("this CPU runs NumPy's baseline loops only")
    [(_, extra, _)] = portability.environments(default, matrix=False)
    state = portability.probe({**portability.base_env(), **extra})
    assert portability.differs(state, default)


def test_nudged_pass_fails_a_cell_that_prints_weights_to_the_last_digit(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from bnlib import nn\nprint(repr(float(nn.MLP((8, 3), seed=0).weights[0].sum())))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, kernel_name="python3").execute()
    path = tmp_path / "nudge_probe.ipynb"
    nbformat.write(nb, path)
    _, failed, code = portability.run_pass("plain", {}, False, [str(path)])
    assert code == 0 and not failed
    _, failed, code = portability.run_pass("nudge", {}, True, [str(path)])
    assert code != 0 and failed == {"nudge_probe.ipynb::Cell 0"}, failed
