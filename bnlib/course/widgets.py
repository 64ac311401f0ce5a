"""Slider explorers: controls, a one-line readout and a figure, drawn by a Scene.

An explorer wraps a :class:`Scene`, a figure updated in place. A lesson gets
the same readout without widgets from :func:`readout`, so it can check the
numbers the explorer shows at its defaults, and tests can drive the explorer
without a browser by setting ``control.value`` and reading ``readout``.

In a notebook, the cell that displays an explorer carries the cell tag
``nbval-ignore-output`` (nbval does not follow widget output); the next
cell prints :func:`readout` at the defaults and checks the numbers, without
drawing the figure a second time.

Speed: an explorer should answer a control within 100 ms (``make bench``).
Drawing a whole matplotlib figure (ticks, labels, text) costs 50-150 ms on
the course's machines, so a :class:`Scene` draws its figure's static parts
once and, on each update, restores that background and redraws only the
artists that changed (blitting). The frame goes to the browser as the
binary PNG value of an ``ipywidgets.Image``: one small message, no
clear/redisplay of an output area, no flicker.
"""
from __future__ import annotations

import html
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import PIL.Image
from IPython.display import display
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib import lines as mlines, transforms
import numpy as np

__all__ = ["figure_png", "Scene", "Explorer", "readout", "slider", "int_slider", "choice", "LiveTicks",
           "PNG_COMPRESS_LEVEL"]

PNG_COMPRESS_LEVEL = 1  # zlib level 1 instead of 6: encoding ~2x faster, file ~1.3x larger


def _agg_canvas(fig) -> FigureCanvasAgg:
    return fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)


def _encode_png(canvas: FigureCanvasAgg) -> bytes:
    size = canvas.get_width_height(physical=True)
    image = PIL.Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def figure_png(fig) -> bytes:
    """The figure as PNG bytes at its own dpi, as the inline backend shows it (untrimmed).

    One Agg draw, which also runs the figure's layout engine if it has one
    (``savefig`` would draw twice for a figure with a layout engine, even the
    placeholder that ``fig.tight_layout()`` leaves behind), then a fast PNG
    encoding of the pixel buffer.
    """
    canvas = _agg_canvas(fig)
    canvas.draw()
    return _encode_png(canvas)


class Scene:
    """A figure built once, whose changing artists an explorer redraws in place.

    A subclass implements two methods:

    - ``build(self)``: create the figure with :meth:`subplots` (fixed
      margins, so that updates do not move them), its static decorations
      and the artists that will change, each registered with :meth:`live`.
      Fix the axis limits too; an update that does change an axis limit
      still draws correctly, at the cost of a full redraw.
    - ``update(self, **values) -> str``: set the new data on the live
      artists (``set_data``, ``set_offsets``, ``set_text``, ...) and return
      the readout text. If it changes a static artist, it calls
      :meth:`invalidate`.

    :class:`Explorer` keeps one scene and asks it for :meth:`png` after every
    update; :func:`readout` gives a lesson the text alone; ``render(**values)``
    on a new scene gives ``(fig, text)``, a normal figure drawn whole (the
    tests compare every explorer frame with it).

    Attributes
    ----------
    fig : matplotlib Figure
    dynamic : list of matplotlib Artist
        The artists registered with :meth:`live`, drawn in that order on top
        of the static background.
    """

    def __init__(self):
        self.dynamic: list[Artist] = []
        self._background = None
        self._limits = None
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def update(self, **values) -> str:
        raise NotImplementedError

    MARGINS = {"left": 0.08, "right": 0.98, "bottom": 0.15, "top": 0.9, "wspace": 0.25}

    def subplots(self, nrows: int = 1, ncols: int = 1, **kwargs):
        """``plt.subplots`` for a scene: sets ``self.fig``; returns ``(fig, axes)``.

        Keyword arguments named like :attr:`MARGINS` (``left``, ``bottom``,
        ``wspace``...) replace those margins; the rest go to ``plt.subplots``.
        The margins are fixed instead of found by ``tight_layout``, which
        would cost most of an explorer's update.
        """
        margins = {**self.MARGINS, **{k: kwargs.pop(k) for k in list(kwargs)
                                      if k in self.MARGINS or k == "hspace"}}
        self.fig, axes = plt.subplots(nrows, ncols, **kwargs)
        self.fig.subplots_adjust(**margins)
        return self.fig, axes

    def live(self, artist: Artist) -> Artist:
        """Register an artist that updates change; return it."""
        self.dynamic.append(artist)
        return artist

    def render(self, **values):
        """Update with ``values``; return ``(fig, text)`` (the view-function interface)."""
        return self.fig, self.update(**values)

    def invalidate(self) -> None:
        """Make the next :meth:`png` redraw the static background too."""
        self._background = None

    def animate(self) -> None:
        """Leave the live artists out of full draws (they are blitted on top); for explorers."""
        for artist in self.dynamic:
            artist.set_animated(True)
        self.invalidate()

    def _axis_limits(self) -> tuple:
        return tuple((ax.get_xlim(), ax.get_ylim()) for ax in self.fig.axes)

    def png(self) -> bytes:
        """The current frame as PNG bytes: cached background plus the live artists.

        Call after :meth:`animate`. The background (everything but the live
        artists) is drawn again only after :meth:`invalidate` or when an axis
        limit has changed since it was drawn.
        """
        canvas = _agg_canvas(self.fig)
        limits = self._axis_limits()
        if self._background is None or limits != self._limits:
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            self._limits = limits
        else:
            canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        for artist in self.dynamic:
            if artist.get_visible():
                artist.draw(renderer)
        return _encode_png(canvas)


def readout(scene_class: type, **values) -> str:
    """The readout an explorer on ``scene_class`` shows at ``values``, without its figure.

    For the cell after an explorer, which checks the numbers at the defaults:
    the scene's figure is built and closed, so the lesson does not show the
    explorer's figure a second time.
    """
    scene = scene_class()
    try:
        return scene.update(**values)
    finally:
        plt.close(scene.fig)


class Explorer:
    """Controls bound to a scene; call :meth:`show` to display.

    Parameters
    ----------
    scene : Scene
        Redrawn in place on every change of a control; the text its
        ``update`` returns is shown as the readout under the controls.
    controls : dict of name -> ipywidgets.ValueWidget
        One entry per keyword argument of the scene's ``update``.
    title : str, optional
        Shown above the controls.

    Attributes
    ----------
    readout : ipywidgets.HTML
        The readout text of the last update.
    image : ipywidgets.Image
        The figure of the last update as PNG bytes (``image.value``).
    output : ipywidgets.Output
        The figure area: it shows :attr:`image`.
    scene : Scene
    figure : matplotlib Figure
        The scene's figure (closed in pyplot, kept for inspection).
    updates : int
        How many times the scene has been updated.
    """

    def __init__(self, scene: Scene, controls: dict, title: str = ""):
        self.scene = scene
        self.scene.animate()
        plt.close(self.scene.fig)  # shown through the image widget, not by pyplot
        self.figure = self.scene.fig
        self.controls = controls
        self.readout = widgets.HTML()
        # natural size (as the inline backend shows figures), not stretched to the box
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            width="auto", align_self="flex-start"))
        # The figure area: an Output showing the image widget, so a subclass that lays
        # out (controls, readout, output) itself gets the figure where it always was.
        self.output = widgets.Output()
        self.output.outputs = ({"output_type": "display_data", "metadata": {}, "data": {
            "text/plain": "figure", "application/vnd.jupyter.widget-view+json": {
                "model_id": self.image.model_id, "version_major": 2, "version_minor": 0}}},)
        self.title = title
        self.updates = 0
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> str:
        """Update the scene with the current values; return the readout text."""
        text = self.scene.update(**self.values())
        self.readout.value = f"<pre>{text}</pre>"
        self.image.value = self.scene.png()
        self.updates += 1
        return text

    def _on_change(self, change) -> None:
        # In a kernel, an error in a callback only reaches the log console: say it in
        # the readout too, where the learner is looking (and re-raise it for tests).
        try:
            self.update()
        except Exception as error:
            self.readout.value = (f'<pre style="color:#b00020">{type(error).__name__}: '
                                  f"{html.escape(str(error))}</pre>")
            raise

    def widget(self) -> widgets.Widget:
        """The whole explorer as one widget box."""
        parts = [widgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        parts += [widgets.HBox(list(self.controls.values())), self.readout, self.output]
        return widgets.VBox(parts)

    def show(self) -> "Explorer":
        """Display the explorer in the notebook and return it."""
        display(self.widget())
        return self

    def _ipython_display_(self):
        display(self.widget())


def slider(value: float, low: float, high: float, step: float, description: str,
           readout_format: str = ".2f") -> widgets.FloatSlider:
    """A float slider that only updates when released (keeps redraws cheap)."""
    return widgets.FloatSlider(value=value, min=low, max=high, step=step,
                               description=description, continuous_update=False,
                               readout_format=readout_format,
                               style={"description_width": "initial"})


def int_slider(value: int, low: int, high: int, step: int, description: str
               ) -> widgets.IntSlider:
    """An integer slider that only updates when released."""
    return widgets.IntSlider(value=value, min=low, max=high, step=step,
                             description=description, continuous_update=False,
                             style={"description_width": "initial"})


def choice(options, value, description: str) -> widgets.Dropdown:
    """A drop-down of named options."""
    return widgets.Dropdown(options=options, value=value, description=description,
                            style={"description_width": "initial"})


class LiveTicks:
    """Grid lines, tick marks and tick labels of one axis of fixed limits [0, 1], set at will.

    Styled after the rcParams of matplotlib's own ticks: one collection of grid lines, one
    line of tick markers and a pool of ``size`` labels instead of an artist set per tick.

    Parameters
    ----------
    scene : Scene
        Its :meth:`~bnlib.course.widgets.Scene.live` registers the artists.
    ax : matplotlib Axes
    which : {"x", "y"}
    size : int
        The most labels an update may set.
    """

    def __init__(self, scene: Scene, ax, which: str, size: int):
        self.which = which
        rc = plt.rcParams
        self.grid = scene.live(ax.add_collection(LineCollection(
            [], colors=rc["grid.color"], linewidths=rc["grid.linewidth"],
            alpha=rc["grid.alpha"], transform=ax.transAxes, zorder=0.5)))
        length = rc[f"{which}tick.major.size"]
        self.marks = scene.live(ax.plot(
            [], [], ls="none", marker=mlines.TICKDOWN if which == "x" else mlines.TICKLEFT,
            markersize=length, markeredgewidth=rc[f"{which}tick.major.width"],
            color=rc[f"{which}tick.color"], transform=ax.transAxes, clip_on=False,
            zorder=3)[0])
        gap = (length + rc[f"{which}tick.major.pad"]) / 72  # inches, as matplotlib's ticks
        offset = transforms.ScaledTranslation(0 if which == "x" else -gap,
                                              -gap if which == "x" else 0,
                                              ax.figure.dpi_scale_trans)
        self.labels = [scene.live(ax.text(
            0, 0, "", transform=ax.transAxes + offset, fontsize=rc[f"{which}tick.labelsize"],
            ha="center" if which == "x" else "right",
            va="top" if which == "x" else "center_baseline")) for _ in range(size)]

    def set(self, at: np.ndarray, labels: list) -> None:
        """Put ticks at axes fractions ``at`` with ``labels`` (at most ``size`` of them)."""
        if len(labels) > len(self.labels):
            raise ValueError(f"{len(labels)} tick labels; room for {len(self.labels)}")
        zeros, ones = np.zeros_like(at), np.ones_like(at)
        near, far = ((at, zeros), (at, ones)) if self.which == "x" else ((zeros, at), (ones, at))
        self.marks.set_data(*near)
        self.grid.set_segments(np.stack([np.column_stack(near), np.column_stack(far)], axis=1))
        for i, text in enumerate(self.labels):
            text.set_visible(i < len(labels))
        for text, x, y, label in zip(self.labels, *near, labels):
            text.set_position((x, y))
            text.set_text(label)
