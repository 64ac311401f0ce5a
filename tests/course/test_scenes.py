"""Every explorer redraws in place, and what it shows is what a full draw would show.

An explorer built on a :class:`bnlib.course.widgets.Scene` blits its live artists
onto a cached background. The reference for each frame is a *new* scene of
the same kind rendered with the same control values and drawn whole by Agg,
as a lesson's figure is: the two PNGs must have the same pixels.
"""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import matplotlib
import numpy as np
import PIL.Image
import pytest

from bnlib.course import plots, widgets

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "bench_explorers", REPO / "tests" / "benchmarks" / "bench_explorers.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

FACTORIES = bench.find_factories()
# Anti-aliased edges may land one shade apart when an artist is drawn alone on the background
# rather than in the full draw's order; anything more than a sliver of pixels is a wrong frame.
MAX_DIFFERING = 0.002


@pytest.fixture(autouse=True)
def course_style():
    with matplotlib.rc_context(plots.STYLE):
        yield


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def differing_fraction(explorer) -> float:
    fresh_fig, _ = type(explorer.scene)().render(**explorer.values())
    try:
        reference = pixels(widgets.figure_png(fresh_fig))
    finally:
        matplotlib.pyplot.close(fresh_fig)
    frame = pixels(explorer.image.value)
    assert frame.shape == reference.shape
    return float(np.mean(np.abs(frame - reference).max(axis=2) > 0))


def press_run_if_waiting(explorer, before):
    buttons = [w for w in vars(explorer).values() if isinstance(w, widgets.widgets.Button)]
    if explorer.updates == before and buttons:
        buttons[0].click()


@pytest.mark.parametrize("module, name, factory", FACTORIES,
                         ids=[f"{m}.{n}" for m, n, _ in FACTORIES])
def test_explorer_frames_match_a_full_draw(module, name, factory):
    explorer = factory()
    assert explorer.scene is not None, f"{name} redraws a new figure on every update"
    assert differing_fraction(explorer) <= MAX_DIFFERING, "first frame"
    figure = explorer.figure
    for control_name, control in explorer.controls.items():
        pair = bench.two_values(control)
        if pair is None:
            continue
        before = explorer.updates
        control.value = pair[1]
        press_run_if_waiting(explorer, before)
        assert explorer.updates == before + 1, control_name
        fraction = differing_fraction(explorer)
        assert fraction <= MAX_DIFFERING, f"{control_name}={pair[1]}: {fraction:.2%} of pixels differ"
    assert explorer.figure is figure, "a scene keeps one figure"
