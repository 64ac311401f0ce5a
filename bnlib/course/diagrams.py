"""Teaching diagrams for the lessons, drawn with matplotlib boxes and arrows.

Every diagram is a short function that returns a :class:`matplotlib.figure.Figure`
(no pyplot state, no ``plt.show()``). The figures are drawn on a canvas whose
data units are inches, so positions below read as inches from the bottom left.
Nothing is random, sizes and the dpi are fixed, so regenerating gives the same
pixels. Write every diagram with::

    python -m bnlib.course.diagrams images
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

DPI = 100
# Settings that make the output independent of the user's matplotlib config.
RC = {"font.family": "DejaVu Sans", "font.size": 12, "mathtext.fontset": "dejavusans",
      "text.usetex": False, "text.color": "black", "patch.linewidth": 1.5,
      "savefig.bbox": "standard", "savefig.transparent": False, "savefig.facecolor": "white"}
# Fill colours, one per kind of node.
COLORS = {"data": "#eeeeee", "norm": "#cfe2f3", "linear": "#fde9c9", "act": "#d5ecd4",
          "bn": "#e3d7f0", "param": "#fff3b0", "op": "#ffffff"}
BACK = "#c0392b"  # the colour of anything that belongs to the backward pass
XHAT = r"$\hat{\mathrm{x}}$"  # x̂ drawn upright, like the surrounding text


@dataclass(frozen=True)
class _Box:
    """Centre ``(x, y)``, width and height of a drawn box, in inches."""

    x: float
    y: float
    w: float
    h: float

    def at(self, side: str) -> tuple[float, float]:
        """The middle of one side: 'l', 'r', 't' or 'b'."""
        dx = {"l": -self.w / 2, "r": self.w / 2}.get(side, 0.0)
        dy = {"b": -self.h / 2, "t": self.h / 2}.get(side, 0.0)
        return self.x + dx, self.y + dy


def _canvas(width: float, height: float) -> tuple[Figure, "matplotlib.axes.Axes"]:
    """A blank figure of ``width`` x ``height`` inches whose data units are inches."""
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


def _box(ax, x, y, text, kind="op", *, w=1.5, h=0.8, size=12) -> _Box:
    """Draw a rounded box centred at ``(x, y)`` holding ``text``; return its geometry.

    ``kind`` picks the fill colour from ``COLORS``.
    """
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, facecolor=COLORS[kind],
                                boxstyle="round,pad=0,rounding_size=0.12", edgecolor="#333333"))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.4)
    return _Box(x, y, w, h)


def _arrow(ax, start, end, *, back=False, text=None, rad=0.0, size=11, offset=(0, 0.15)):
    """Draw an arrow from point ``start`` to point ``end``.

    Parameters
    ----------
    start, end : tuple of float
        The arrow's tail and head, in inches.
    back : bool
        Draw a dashed red arrow: a gradient flowing in the backward pass.
    text : str, optional
        A label placed at the arrow's midpoint, shifted by ``offset`` inches.
    rad : float
        Curvature of the arrow (0 is straight).
    """
    color = BACK if back else "#222222"
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, color=color,
                                 linewidth=1.6, linestyle="--" if back else "-",
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0))
    if text:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, text, ha="center", va="bottom" if offset[1] >= 0 else "top",
                fontsize=size, color=color)


def _group(ax, boxes, label, *, pad=0.22, color="#555555", size=12, top_pad=0.45):
    """Draw a dashed frame around ``boxes`` with ``label`` written above it."""
    left = min(b.x - b.w / 2 for b in boxes) - pad
    right = max(b.x + b.w / 2 for b in boxes) + pad
    bottom = min(b.y - b.h / 2 for b in boxes) - pad
    top = max(b.y + b.h / 2 for b in boxes) + top_pad
    ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom,
                                boxstyle="round,pad=0,rounding_size=0.15", facecolor="none",
                                edgecolor=color, linestyle="--", linewidth=1.3))
    ax.text((left + right) / 2, top - 0.08, label, ha="center", va="top", fontsize=size,
            color=color)
    return _Box((left + right) / 2, (bottom + top) / 2, right - left, top - bottom)


def _chain(ax, boxes):
    """Join consecutive boxes with left-to-right arrows."""
    for a, b in zip(boxes, boxes[1:]):
        _arrow(ax, a.at("r"), b.at("l"))


def _network(ax, layers, x0, y, *, output="output"):
    """Draw hidden layers from ``x0``, then "…" and the output box, framed as the network.

    ``layers`` lists, per hidden layer, its boxes as ``(text, kind, width)``.
    Returns the first box (arrows into the network end there).
    """
    boxes, frames, x = [], [], x0 + 0.15
    for i, layer in enumerate(layers):
        drawn = []
        for text, kind, w in layer:
            drawn.append(_box(ax, x + w / 2, y, text, kind, w=w))
            x += w + 0.4
        frames.append(_group(ax, drawn, f"layer {i + 1}", pad=0.15))
        boxes += drawn
        x += 0.3
    _chain(ax, boxes)
    ax.text(x + 0.05, y, "…", ha="center", va="center", fontsize=20)
    out = _box(ax, x + 1.05, y, output, "data", w=0.9, h=1.0)
    _arrow(ax, boxes[-1].at("r"), (x - 0.25, y))
    _arrow(ax, (x + 0.3, y), out.at("l"))
    _group(ax, frames + [out], "the network", pad=0.15, top_pad=0.6, color="#1f4e79")
    return boxes[0]


def old_norm() -> Figure:
    """Normalization done once, as preprocessing, outside the network.

    raw data -> normalize -> [linear -> activation] -> [linear -> activation]
    -> ... -> output; only the network's input is normalized.
    """
    fig, ax = _canvas(13.6, 3.2)
    y = 1.35
    raw = _box(ax, 0.75, y, "raw\ndata", "data", w=1.0, h=1.0)
    norm = _box(ax, 2.4, y, "normalize\n(x − μ) / σ", "norm", w=1.6, h=1.0)
    _arrow(ax, raw.at("r"), norm.at("l"))
    _group(ax, [raw, norm], "preprocessing", pad=0.15, color="#1f4e79")
    layer = [("linear\nxW + b", "linear", 1.15), ("activation", "act", 1.35)]
    first = _network(ax, [layer, layer], 3.7, y)
    _arrow(ax, norm.at("r"), first.at("l"))
    ax.text(6.8, 0.22, "the data are normalized once, before training; "
            "layer 2 and later layers see inputs that are not normalized", ha="center",
            fontsize=11, color="#1f4e79", style="italic")
    return fig


def new_norm() -> Figure:
    """Normalization inside the network, in every layer, between the linear map and the activation.

    input -> [linear z = xW + b -> normalize z -> activation] -> [linear ->
    normalize -> activation] -> ... : each hidden layer standardizes its
    pre-activations z, where batch norm sits (Ioffe & Szegedy 2015, section 3.2).
    """
    fig, ax = _canvas(15.4, 3.2)
    y = 1.35
    inp = _box(ax, 0.6, y, "input", "data", w=0.85, h=1.0)
    layer = [("linear\nz = xW + b", "linear", 1.4), ("normalize z\n(z − μ) / σ", "norm", 1.5),
             ("activation", "act", 1.3)]
    first = _network(ax, [layer, layer], 1.4, y)
    _arrow(ax, inp.at("r"), first.at("l"))
    ax.text(7.7, 0.22, "normalization moves inside: every layer standardizes its "
            "pre-activations z, between the linear map and the activation", ha="center",
            fontsize=11, color="#1f4e79", style="italic")
    return fig


def _layer(ax, middle, params, grads) -> None:
    """x -> boxes in ``middle`` -> a, with parameter boxes above them.

    ``middle`` lists ``(text, kind, width, name)``: ``name`` labels the arrow
    into that box. ``params`` maps a box index to its parameter label,
    ``grads`` the same index to the gradient label on a dashed arrow going up.
    """
    y = 1.3
    x = 0.5
    ax.text(x, y, "x", ha="center", va="center", fontsize=16)
    prev, pos = (x + 0.25, y), x + 0.75
    for i, (text, kind, w, name) in enumerate(middle):
        box = _box(ax, pos + w / 2, y, text, kind, w=w, h=1.05)
        _arrow(ax, prev, box.at("l"), text=name, size=13, offset=(0, 0.06))
        if i in params:
            p = _box(ax, box.x, 3.35, params[i], "param", w=1.1, h=0.55)
            _arrow(ax, (p.x - 0.2, p.y - p.h / 2), (box.x - 0.2, y + box.h / 2))
            _arrow(ax, (box.x + 0.2, y + box.h / 2), (p.x + 0.2, p.y - p.h / 2), back=True,
                   text=grads[i], offset=(0.4, -0.12))
        prev, pos = box.at("r"), box.x + w / 2 + 0.65
    ax.text(pos - 0.25, y, "a", ha="center", va="center", fontsize=16)
    _arrow(ax, prev, (pos - 0.45, y))
    _arrow(ax, (pos - 0.45, 0.35), (0.75, 0.35), back=True,
           text="backward: gradients flow right to left", offset=(0, 0.05))


def regular() -> Figure:
    """A regular layer: x -> linear (Wx + b) -> activation -> a.

    W and b receive gradients dW, db in the backward pass.
    """
    fig, ax = _canvas(6.6, 3.9)
    _layer(ax, [("linear\nz = Wx + b", "linear", 1.9, None),
                ("activation\na = g(z)", "act", 1.7, "z")],
           params={0: "W, b"}, grads={0: "dW, db"})
    return fig


def batch_gradient() -> Figure:
    """A layer with batch norm: x -> linear (Wx, no bias) -> batch norm -> activation -> a.

    Batch norm uses the batch mean and variance and has its own learned
    parameters γ and β, which receive the gradients dγ and dβ.
    """
    fig, ax = _canvas(9.6, 3.9)
    bn = f"batch norm\nμ, σ² over the batch\ny = γ·{XHAT} + β"
    _layer(ax, [("linear\nz = Wx\n(no bias)", "linear", 1.6, None), (bn, "bn", 2.6, "z"),
                ("activation\na = g(y)", "act", 1.7, "y")],
           params={0: "W", 1: "γ, β"}, grads={0: "dW", 1: "dγ, dβ"})
    return fig


def bn_graph() -> Figure:
    """The computational graph of batch norm, forward and backward.

    Black arrows are the forward pass x -> out; under each node, in red, is
    what the backward pass computes there from the gradient arriving from the
    right (dout has shape (N, D), sums run over the batch axis, N examples).
    """
    fig, ax = _canvas(15.8, 7.2)
    top, mid, low = 5.9, 3.9, 1.6
    col = [0.85 + 1.65 * i for i in range(9)]
    h = 0.85

    def node(c, y, text, grad, kind="op", w=1.35, shift=0.0):
        b = _box(ax, col[c], y, text, kind, w=w, h=h)
        ax.text(b.x + shift, b.y - h / 2 - 0.1, grad, ha="center", va="top", fontsize=10.5,
                color=BACK, linespacing=1.35)
        return b

    d_xhat = "d" + XHAT
    x = node(0, mid, "x", "dx = dx₁ + dx₂\n(sum of\nboth paths)", "data", w=0.8)
    mu = node(1, top, "μ = mean(x)", "dx₂ = dμ / N", w=1.45)
    cen = node(2, mid, "centred\n= x − μ", "dx₁ = dcentred\ndμ = −Σ dcentred", shift=-0.3)
    sq = node(2, low, "sq\n= centred²", "dcentred +=\n2·centred·dsq")
    var = node(3, low, "σ² = mean(sq)", "dsq = dσ² / N", w=1.45)
    eps = node(4, low, "σ² + ε", "dσ² = d(σ² + ε)")
    std = node(5, low, "std\n= √(σ² + ε)", "d(σ² + ε)\n= dstd / (2·std)")
    inv = node(6, low, "inv_std\n= 1 / std", "dstd\n= −dinv_std / std²")
    xhat = node(6, mid, f"{XHAT} = centred\n· inv_std",
                f"dcentred = {d_xhat}·inv_std\ndinv_std = Σ {d_xhat}·centred",
                w=1.5, shift=-0.45)
    gx = node(7, mid, f"γ·{XHAT}", f"{d_xhat} = dout·γ\ndγ = Σ dout·{XHAT}")
    plus = node(8, mid, f"γ·{XHAT} + β", f"d(γ·{XHAT}) = dout\ndβ = Σ dout")
    gamma = _box(ax, col[7], top, "γ", "param", w=0.8, h=0.6)
    beta = _box(ax, col[8], top, "β", "param", w=0.8, h=0.6)
    ax.text(col[8] + 1.25, mid, "out", ha="center", va="center", fontsize=16)

    _arrow(ax, x.at("r"), cen.at("l"))
    _arrow(ax, x.at("t"), mu.at("l"), rad=-0.3)
    _arrow(ax, mu.at("r"), cen.at("t"), rad=-0.3)
    _arrow(ax, (cen.x + 0.55, cen.y - h / 2), (sq.x + 0.55, sq.y + h / 2))
    _chain(ax, [sq, var, eps, std, inv])
    _arrow(ax, (inv.x + 0.55, inv.y + h / 2), (xhat.x + 0.55, xhat.y - h / 2))
    _chain(ax, [cen, xhat, gx, plus])
    _arrow(ax, gamma.at("b"), gx.at("t"))
    _arrow(ax, beta.at("b"), plus.at("t"))
    _arrow(ax, plus.at("r"), (col[8] + 1.0, mid))
    _arrow(ax, (col[8] + 1.2, 0.35), (col[0], 0.35), back=True, offset=(0, 0.05),
           text="backward pass: start from dout at the right and apply each node's rule "
                "(red) from right to left")
    ax.text(0.3, 6.95, "Batch norm as a computational graph: forward in black, backward in red "
            "(sums Σ run over the batch of N examples)", ha="left", va="top", fontsize=13)
    return fig


DIAGRAMS = {"old-norm.png": old_norm, "new-norm.png": new_norm, "regular.png": regular,
            "batch-gradient.png": batch_gradient, "bn-graph.png": bn_graph}


def draw_all(folder: str | Path) -> list[Path]:
    """Draw every diagram and write it as a PNG into ``folder``.

    Parameters
    ----------
    folder : str or Path
        Output folder, created if missing.

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``DIAGRAMS``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for name, draw in DIAGRAMS.items():
            path = folder / name
            draw().savefig(path, dpi=DPI, metadata={"Software": None})
            paths.append(path)
    return paths


if __name__ == "__main__":
    for written in draw_all(sys.argv[1] if len(sys.argv) > 1 else "images"):
        print(written)
