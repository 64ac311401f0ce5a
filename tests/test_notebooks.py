"""Checks over every committed notebook (nbval separately re-runs them and compares outputs)."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

import bnlib
from bnlib.course import checks

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
LESSONS = [p for p in PATHS if not p.name.startswith("00_")]
WIDGET = "application/vnd.jupyter.widget-view+json"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img[^>]*src=\"([^\"]+)\"")


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def _ids(paths):
    return [p.stem for p in paths]


def test_every_script_has_its_notebook():
    scripts = {p.stem for p in (NOTEBOOKS / "scripts").glob("*.py")}
    assert scripts == {p.stem for p in PATHS}, "run `make notebooks` after adding a script"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_kernelspec_present(path):
    assert _read(path).metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_clean_top_to_bottom_run(path):
    counts = [c.execution_count for c in _code_cells(_read(path))]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: re-run `make notebooks`"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_rebuilds_change_only_what_changed(path):
    """Cell ids are taken from the cells' text and no execution times are stored, so a
    rebuild does not rewrite every cell of the file."""
    cells = _read(path).cells
    assert all(re.fullmatch(r"[0-9a-f]{8}(-[0-9]+)?", c.id) for c in cells), (
        f"{path.name}: random cell ids; re-run `make notebooks NB={path.stem[:2]}`")
    assert len({c.id for c in cells}) == len(cells)
    assert not [c for c in cells if "execution" in c.metadata], f"{path.name}: execution times"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_no_errors_or_stderr(path):
    for i, cell in enumerate(_code_cells(_read(path)), start=1):
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name} cell {i}: error output"
            assert out.get("name") != "stderr", f"{path.name} cell {i}: stderr: {out.text[:200]}"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_script_in_sync(path):
    """The reviewed py:percent script and the notebook hold the same cells."""
    script = jupytext.read(NOTEBOOKS / "scripts" / f"{path.stem}.py")
    pairs = [(c.cell_type, c.source.strip()) for c in script.cells]
    assert pairs == [(c.cell_type, c.source.strip()) for c in _read(path).cells], (
        f"{path.name} differs from scripts/{path.stem}.py: run `make notebooks NB={path.stem[:2]}`")


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_links_and_images_resolve(path):
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for match in LINK.finditer(cell.source):
            target = (match.group(1) or match.group(2)).split("#")[0]
            if not target or target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (path.parent / target).resolve().exists(), f"{path.name}: broken link {target}"


def _ignored_by_nbval(cell) -> bool:
    """nbval's cell tag; the lessons show no ``# NBVAL_...`` comment to the learner."""
    return "nbval-ignore-output" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_widget_cells_are_ignored_by_nbval(path):
    for cell in _code_cells(_read(path)):
        assert "NBVAL_" not in cell.source, f"{path.name}: use nbval's cell tags, not comments"
        if any(WIDGET in out.get("data", {}) for out in cell.outputs):
            assert _ignored_by_nbval(cell), f"{path.name}: widget cell without the tag"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_imports_bnlib_and_does_not_redefine_it(path):
    cells = _code_cells(_read(path))
    assert re.search(r"^from bnlib(\.\w+)* import", cells[0].source, re.M), (
        f"{path.name}: first cell must import bnlib")
    public = {name for module in vars(bnlib).values() if hasattr(module, "__name__")
              for name in getattr(module, "__all__", [])} | set(bnlib.__all__)
    for cell in cells:
        tree = ast.parse("\n".join(line for line in cell.source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert not defined & public, f"{path.name} re-implements bnlib's {defined & public}"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_lesson_structure(path):
    """Goals first; takeaways, exercises and references at the end; at least one explorer."""
    nb = _read(path)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert "you will be able to" in nb.cells[0].source.lower(), f"{path.name}: state the goals"
    for heading in ("## key takeaways", "## exercise", "## references"):
        assert heading in text, f"{path.name}: missing a '{heading}' section"
    assert any(_ignored_by_nbval(c) and "explorer" in c.source.lower()
               for c in _code_cells(nb)), f"{path.name}: no slider explorer"


# The check helpers that return something (a number, a verdict): a bare call as a cell's last
# line would display it. assert_true returns None.
HELPER_MODULES = [checks] + [importlib.import_module(f"bnlib.lessons.{p.parent.name}.exercises")
                              for p in sorted(REPO.glob("bnlib/lessons/lesson*/exercises.py"))]
CHECK_HELPERS = {name for module in HELPER_MODULES for name in dir(module)
                 if name.startswith(("assert_", "check_"))
                 and inspect.signature(getattr(module, name)).return_annotation not in ("None", None)}


def _last_statement(cell):
    source = "\n".join(line for line in cell.source.splitlines()
                       if not line.lstrip().startswith(("%", "!")))
    body = ast.parse(source).body
    return body[-1] if body else None


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_no_cell_ends_with_a_bare_check_call(path):
    """A check helper returns its number: as a cell's last line, the notebook would display it."""
    for i, cell in enumerate(_code_cells(_read(path)), start=1):
        last = _last_statement(cell)
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            func = last.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert name not in CHECK_HELPERS, (
                f"{path.name} cell {i} ends with a bare {name}(...): assign it (`_ = ...`)")


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_no_cell_displays_a_return_value(path):
    """Outputs are printed on purpose; an Out[n] value is a return value shown by accident."""
    for i, cell in enumerate(_code_cells(_read(path)), start=1):
        shown = [out for out in cell.outputs if out.output_type == "execute_result"]
        assert not shown, f"{path.name} cell {i} displays {shown[0]['data'].get('text/plain', '')!r}"
