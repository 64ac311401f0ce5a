"""Slider explorers: controls, a one-line readout and a figure, driven by a pure function.

An explorer wraps a *pure* function ``view(**values) -> (fig, readout)``
that draws a figure and returns the text to show. Because that function
does not touch widgets, a lesson can call it directly with the default
values and assert the numbers it prints, and tests can drive the explorer
without a browser by setting ``control.value`` and reading ``readout``.

In a notebook, the cell that displays an explorer carries
``# NBVAL_IGNORE_OUTPUT`` (nbval does not follow widget output); the next
cell calls the view function with the defaults and checks the numbers.

Speed: an update renders the figure to PNG bytes itself (a single Agg draw,
fast zlib level, no ``bbox_inches="tight"`` pass) and sends them as the
binary value of an ``ipywidgets.Image`` (shown in the explorer's Output
widget): one small message, no clear/redisplay of an output area, no flicker. ``make bench`` times every explorer this way.
"""
from __future__ import annotations

import html
import io
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import PIL.Image
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg

PNG_COMPRESS_LEVEL = 1  # zlib level 1 instead of 6: encoding ~2x faster, file ~1.3x larger


def figure_png(fig) -> bytes:
    """The figure as PNG bytes at its own dpi, as the inline backend shows it (untrimmed).

    One Agg draw, which also runs the figure's layout engine if it has one
    (``savefig`` would draw twice for a figure with a layout engine, even the
    placeholder that ``fig.tight_layout()`` leaves behind), then a fast PNG
    encoding of the pixel buffer.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    size = canvas.get_width_height(physical=True)
    image = PIL.Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


class Explorer:
    """Controls bound to a view function; call :meth:`show` to display.

    Parameters
    ----------
    view : callable
        ``view(**values) -> (matplotlib Figure, str)``; the string is shown
        as the readout under the controls.
    controls : dict of name -> ipywidgets.ValueWidget
        One entry per keyword argument of ``view``.
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
    figure : matplotlib Figure
        The figure of the last update (already closed, kept for inspection).
    updates : int
        How many times the view has been recomputed.
    """

    def __init__(self, view: Callable, controls: dict, title: str = ""):
        self.view = view
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
        self.figure = None
        self.updates = 0
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> str:
        """Recompute the view with the current values; return the readout text."""
        fig, text = self.view(**self.values())
        try:
            png = figure_png(fig)
        finally:
            plt.close(fig)
        self.figure = fig
        self.readout.value = f"<pre>{text}</pre>"
        self.image.value = png
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
