"""Every lesson in a real JupyterLab: Run All gives no error, every explorer renders and responds.

The lessons and their explorer cells are discovered from ``notebooks/*.ipynb``
(an explorer cell is a code cell starting ``# NBVAL_IGNORE_OUTPUT`` that
mentions "explorer"), so a lesson that lands later is covered without
editing this file. ``conftest.py`` starts Chromium and JupyterLab; on a
failure, a screenshot goes to ``test-artifacts/browser/``.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import lab_page

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
LESSONS = [lab_page.Lesson.read(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
EXPLORERS = [(lesson, index) for lesson in LESSONS for index in lesson.explorer_cells]
CONTROLS_TRIED = 3      # controls of one explorer moved, in order, until one changes the view
RENDER_TIMEOUT = 60     # seconds for an explorer's widgets to appear once its cell ran
RESPONSE_TIMEOUT = 120  # seconds for the kernel to recompute after a control moved


@pytest.mark.parametrize("lesson", LESSONS, ids=[l.path.stem for l in LESSONS])
def test_run_all_cells_without_errors(lesson, runner, screenshot_on_failure):
    page, seconds = runner.get(lesson)
    screenshot_on_failure(page, lesson.path.stem)
    try:
        print(f"{lesson.path.name}: Run All Cells took {seconds:.1f} s")
        now = lab_page.state(page)
        assert len(now["prompts"]) == lesson.n_cells, "the page does not hold every cell"
        assert not now["errors"], "error output: " + "\n".join(
            f"cell {i}: {text}" for i, text in now["errors"])
        not_run = [i for i in lesson.code_cells if not (now["prompts"][i] or "").startswith("[")
                   or now["prompts"][i] == "[ ]:"]
        assert not not_run, f"code cells not executed: {not_run}"
    finally:
        runner.done(lesson)


def _wait_for_change(page, root, before, timeout):
    """Poll what the explorer shows until readout and image both differ from ``before``.

    Gives up early once the kernel has been idle for 5 s with nothing new.
    """
    start = time.monotonic()
    idle_since = None
    while True:
        now = lab_page.shown(root)
        readout, image = now["readout"] != before["readout"], now["images"] != before["images"]
        if readout and image:
            return now, readout, image
        idle = lab_page.state(page)["status"] == "idle"
        idle_since = (idle_since or time.monotonic()) if idle else None
        waited = time.monotonic() - start
        if waited > timeout or (idle_since and time.monotonic() - idle_since > 5):
            return now, readout, image
        page.wait_for_timeout(250)


def _check_explorer(page, root, where):
    controls = root.locator(lab_page.CONTROLS)
    buttons = root.locator(lab_page.RUN_BUTTONS)
    assert controls.count() + buttons.count() >= 1, f"{where}: no control rendered"
    assert (controls if controls.count() else buttons).first.is_visible(), (
        f"{where}: controls not visible")
    before = lab_page.shown(root)
    assert before["readout"].strip(), f"{where}: empty readout"
    assert before["imagesVisible"], f"{where}: no plot shown"
    tried = []
    for k in range(max(1, min(controls.count(), CONTROLS_TRIED))):
        action = lab_page.move(controls.nth(k)) if controls.count() else "no control"
        if buttons.count():  # pick a value, then press Run, as the lesson says
            buttons.first.click()
            action += f", then pressed {buttons.first.inner_text().strip()!r}"
        after, readout, image = _wait_for_change(page, root, before, RESPONSE_TIMEOUT)
        tried.append(f"{action}: readout {'changed' if readout else 'unchanged'}, "
                     f"plot {'changed' if image else 'unchanged'}")
        if readout and image:
            print(f"{where}: {tried[-1]}")
            return
        before = after
    pytest.fail(f"{where}: no control changed both readout and plot: " + "; ".join(tried))


@pytest.mark.parametrize("lesson, index", EXPLORERS,
                         ids=[f"{l.path.stem}-cell{i}" for l, i in EXPLORERS])
def test_explorer_renders_and_responds(lesson, index, runner, screenshot_on_failure):
    page, _ = runner.get(lesson)
    screenshot_on_failure(page, f"{lesson.path.stem}-cell{index}")
    try:
        lab_page.cell(page, index).scroll_into_view_if_needed()
        roots = lab_page.explorer_roots(page, index)
        try:  # widget views render a moment after the kernel reports idle
            roots.first.wait_for(state="attached", timeout=RENDER_TIMEOUT * 1000)
        except Exception:
            pass
        assert roots.count() >= 1, f"cell {index}: the explorer did not render"
        for r in range(roots.count()):
            _check_explorer(page, roots.nth(r), f"{lesson.path.name} cell {index} widget {r}")
    finally:
        runner.done(lesson)
