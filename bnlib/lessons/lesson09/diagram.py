"""The diagram of lesson 09: which values share one mean and variance, drawn as cubes.

Each cube is a batch of feature maps with axes N (examples, into the page), C
(channels, across) and H, W (the spatial positions, flattened, up), as in
Wu & He 2018, Figure 2. The blue cells are the values one mean and one variance
are computed over: batch norm, the worksheet's per-pixel statistics, layer
norm, instance norm and group norm. Drawn with matplotlib polygons, no
randomness, a fixed size and dpi, so redrawing gives the same pixels::

    python -m bnlib.lessons.lesson09.diagram images      # writes images/norm-axes.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from bnlib.course.diagrams import DPI, RC

FILENAME = "norm-axes.png"
N, C, HW = 4, 6, 5                 # cells drawn along each axis
DEPTH = (0.26, 0.2)                 # how far one example recedes, in (x, y) inches
CELL = 0.27                        # inches per channel and per position
SHADE, PLAIN, EDGE = "#4a86c8", "#ffffff", "#333333"

# name -> (examples, channels, positions) in the set, and the caption lines
PANELS = {
    "batch norm": ((range(N), [1], range(HW)),
                   "one channel,\nover N·H·W values\n(per channel)"),
    "per pixel (worksheet)": ((range(N), [1], [HW - 1]),
                              "one pixel of one channel,\nover N values\n(a dense layer's BN)"),
    "layer norm": (([0], range(C), range(HW)),
                   "one example,\nover H·W·C values"),
    "instance norm": (([0], [1], range(HW)),
                      "one example, one channel,\nover H·W values"),
    "group norm": (([0], [2, 3, 4], range(HW)),
                   "one example, one group\nof channels, over\nH·W·C/G values"),
}


def _point(x0: float, y0: float, c: float, h: float, n: float) -> tuple[float, float]:
    """Where (channel c, position h, example n) lands, in inches, for a cube at (x0, y0)."""
    return x0 + c * CELL + n * DEPTH[0], y0 + h * CELL + n * DEPTH[1]


def _cell(ax, corners, shaded: bool) -> None:
    ax.add_patch(Polygon(corners, closed=True, facecolor=SHADE if shaded else PLAIN,
                         edgecolor=EDGE, linewidth=0.8))


def _cube(ax, x0: float, y0: float, chosen) -> None:
    """The three visible faces of an N x C x HW cube, the ``chosen`` cells shaded."""
    ns, cs, hs = (set(s) for s in chosen)
    for c in range(C):               # front face: example 0
        for h in range(HW):
            _cell(ax, [_point(x0, y0, c + dc, h + dh, 0) for dc, dh in
                       ((0, 0), (1, 0), (1, 1), (0, 1))], 0 in ns and c in cs and h in hs)
    for c in range(C):               # top face: the last position
        for n in range(N):
            _cell(ax, [_point(x0, y0, c + dc, HW, n + dn) for dc, dn in
                       ((0, 0), (1, 0), (1, 1), (0, 1))], n in ns and c in cs and HW - 1 in hs)
    for n in range(N):               # right face: the last channel
        for h in range(HW):
            _cell(ax, [_point(x0, y0, C, h + dh, n + dn) for dn, dh in
                       ((0, 0), (1, 0), (1, 1), (0, 1))], n in ns and C - 1 in cs and h in hs)
    # axis labels
    ax.annotate("", xy=_point(x0, y0, C, -0.5, 0), xytext=_point(x0, y0, 0, -0.5, 0),
                arrowprops={"arrowstyle": "-|>", "color": EDGE, "lw": 1.2})
    ax.text(*_point(x0, y0, C / 2, -1.15, 0), "C", ha="center", va="center", fontsize=12)
    ax.annotate("", xy=_point(x0, y0, -0.5, HW, 0), xytext=_point(x0, y0, -0.5, 0, 0),
                arrowprops={"arrowstyle": "-|>", "color": EDGE, "lw": 1.2})
    ax.text(*_point(x0, y0, -1.05, HW / 2, 0), "H, W", ha="center", va="center", fontsize=11,
            rotation=90)
    ax.annotate("", xy=_point(x0, y0, C + 0.5, 0, N), xytext=_point(x0, y0, C + 0.5, 0, 0),
                arrowprops={"arrowstyle": "-|>", "color": EDGE, "lw": 1.2})
    ax.text(*_point(x0, y0, C + 1.0, -0.2, N / 2), "N", ha="center", va="center", fontsize=12)


def norm_axes() -> Figure:
    """Five cubes: the values batch, per-pixel, layer, instance and group norm average over.

    Returns a :class:`matplotlib.figure.Figure` of 16 x 4 inches (no pyplot state).
    """
    width, height = 16.0, 4.0
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    step = width / len(PANELS)
    for i, (name, (chosen, caption)) in enumerate(PANELS.items()):
        x0 = i * step + 0.55
        _cube(ax, x0, 1.25, chosen)
        centre = x0 + (C * CELL + N * DEPTH[0]) / 2
        ax.text(centre, 3.85, name, ha="center", va="top", fontsize=13, weight="bold")
        ax.text(centre, 0.62, caption, ha="center", va="top", fontsize=10, linespacing=1.3)
    return fig


def draw(folder: str | Path) -> Path:
    """Write :func:`norm_axes` as ``folder/norm-axes.png``; return the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILENAME
    with matplotlib.rc_context(RC):
        norm_axes().savefig(path, dpi=DPI, metadata={"Software": None})
    return path


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else "images"))
