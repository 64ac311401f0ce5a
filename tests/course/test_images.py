"""The diagrams in images/ are drawn by bnlib.course.diagrams, deterministically.

Regenerating gives valid PNGs of a sensible size, twice the same bytes, and
the same pixels as the committed files (so nobody edits them by hand).
"""
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from bnlib.course import diagrams

IMAGES = Path(__file__).resolve().parents[2] / "images"
NAMES = ["old-norm.png", "new-norm.png", "regular.png", "batch-gradient.png", "bn-graph.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Two independent regenerations of every diagram: (first folder, second folder)."""
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    diagrams.draw_all(first)
    diagrams.draw_all(second)
    return first, second


def test_draw_all_writes_exactly_the_expected_files(drawn):
    assert sorted(diagrams.DIAGRAMS) == sorted(NAMES)
    assert sorted(p.name for p in drawn[0].iterdir()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_regenerated_file_is_a_png_of_reasonable_size(drawn, name):
    path = drawn[0] / name
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{name} is not a PNG"
    assert 5_000 < path.stat().st_size < 1_000_000, f"{name}: {path.stat().st_size} bytes"
    height, width = mpimg.imread(path).shape[:2]
    assert 300 <= width <= 2000 and 200 <= height <= 1000, f"{name}: {width}x{height} px"


@pytest.mark.parametrize("name", NAMES)
def test_committed_file_exists(name):
    assert (IMAGES / name).is_file(), f"images/{name} missing: run `make images`"


@pytest.mark.parametrize("name", NAMES)
def test_regenerating_twice_gives_identical_bytes(drawn, name):
    first, second = drawn
    assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs"


@pytest.mark.parametrize("name", NAMES)
def test_committed_file_matches_freshly_drawn_pixels(drawn, name):
    committed, fresh = mpimg.imread(IMAGES / name), mpimg.imread(drawn[0] / name)
    assert committed.shape == fresh.shape, f"{name}: {committed.shape} vs {fresh.shape}"
    assert np.array_equal(committed, fresh), (
        f"images/{name} differs from what bnlib.course.diagrams draws: run `make images`")
