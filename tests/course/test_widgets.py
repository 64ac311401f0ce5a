"""Tests of bnlib.course.widgets.Explorer, driven without a browser by setting control values."""
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from bnlib.course import widgets


class RecordingScene(widgets.Scene):
    """a*sin(x) + b; records every update's values; raises for x too large (if asked)."""

    def build(self):
        self.calls = []
        self.fig, ax = plt.subplots()
        self.line = self.live(ax.plot(np.linspace(0.0, 2 * np.pi, 50), np.zeros(50))[0])
        ax.set_ylim(-9, 9)

    def update(self, amplitude=1.0, offset=0):
        if amplitude > 5:
            raise ValueError("amplitude too large")
        self.calls.append({"amplitude": amplitude, "offset": offset})
        self.line.set_ydata(amplitude * np.sin(self.line.get_xdata()) + offset)
        return f"peak = {amplitude + offset:.2f}"


def make_explorer():
    explorer = widgets.Explorer(RecordingScene(), {
        "amplitude": widgets.slider(1.0, 0.0, 6.0, 0.5, "amplitude"),
        "offset": widgets.int_slider(0, -3, 3, 1, "offset"),
    }, title="sine")
    return explorer, explorer.scene


def plotted(fig):
    return fig.axes[0].lines[0].get_ydata()


def test_explorer_draws_once_with_the_initial_values():
    explorer, scene = make_explorer()
    assert explorer.updates == 1
    assert scene.calls == [{"amplitude": 1.0, "offset": 0}]
    assert explorer.readout.value == "<pre>peak = 1.00</pre>"
    assert isinstance(explorer.figure, Figure)
    assert not plt.fignum_exists(explorer.figure.number), "the figure should be closed"


@pytest.mark.parametrize("name, value, peak", [("amplitude", 2.5, "2.50"),
                                               ("offset", -2, "-1.00")])
def test_setting_a_control_updates_the_scene(name, value, peak):
    explorer, scene = make_explorer()
    explorer.controls[name].value = value
    case = f"{name}={value}"
    assert explorer.updates == 2, case
    assert scene.calls[-1][name] == value, case
    assert explorer.readout.value == f"<pre>peak = {peak}</pre>", case
    values = explorer.values()
    np.testing.assert_allclose(
        plotted(explorer.figure),
        values["amplitude"] * np.sin(np.linspace(0, 2 * np.pi, 50)) + values["offset"],
        err_msg=case)


def test_each_change_triggers_exactly_one_update():
    explorer, scene = make_explorer()
    explorer.controls["amplitude"].value = 3.0
    explorer.controls["offset"].value = 2
    explorer.controls["amplitude"].value = 3.0          # unchanged: no new update
    assert explorer.updates == 3
    assert len(scene.calls) == 3
    assert explorer.readout.value == "<pre>peak = 5.00</pre>"


def test_values_returns_the_current_control_values():
    explorer, _ = make_explorer()
    assert explorer.values() == {"amplitude": 1.0, "offset": 0}
    explorer.controls["amplitude"].value = 4.5
    explorer.controls["offset"].value = -3
    assert explorer.values() == {"amplitude": 4.5, "offset": -3}


def test_update_returns_the_readout_text():
    explorer, _ = make_explorer()
    explorer.controls["offset"].value = 1
    assert explorer.update() == "peak = 2.00"
    assert explorer.updates == 3


def test_readout_gives_the_explorers_text_and_shows_no_figure():
    before = plt.get_fignums()
    assert widgets.readout(RecordingScene, amplitude=2.0, offset=1) == "peak = 3.00"
    assert plt.get_fignums() == before, "the check cell must not draw the figure again"


def test_widget_contains_title_controls_readout_and_output():
    explorer, _ = make_explorer()
    box = explorer.widget()
    title, controls, readout, output = box.children
    assert "sine" in title.value
    assert list(controls.children) == list(explorer.controls.values())
    assert readout is explorer.readout and output is explorer.output


def test_the_output_area_shows_the_image_widget():
    explorer, _ = make_explorer()
    (shown,) = explorer.output.outputs
    view = shown["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.image.model_id


def test_image_holds_the_figure_as_png_and_changes_with_the_values():
    explorer, _ = make_explorer()
    first = bytes(explorer.image.value)
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = explorer.figure.get_size_inches() * explorer.figure.dpi
    decoded = plt.imread(io.BytesIO(first), format="png")
    assert decoded.shape[:2] == (round(height), round(width))
    explorer.controls["amplitude"].value = 4.0
    assert bytes(explorer.image.value) != first


def test_an_error_in_the_scene_shows_in_the_readout_and_propagates():
    explorer, _ = make_explorer()
    with pytest.raises(ValueError, match="amplitude too large"):
        explorer.controls["amplitude"].value = 5.5
    assert "ValueError: amplitude too large" in explorer.readout.value


def test_sliders_update_only_on_release():
    s = widgets.slider(0.5, 0.0, 1.0, 0.1, "x")
    i = widgets.int_slider(2, 0, 5, 1, "n")
    assert (s.value, s.min, s.max, s.step) == (0.5, 0.0, 1.0, 0.1)
    assert (i.value, i.min, i.max, i.step) == (2, 0, 5, 1)
    assert s.continuous_update is False and i.continuous_update is False


class KindScene(widgets.Scene):
    def build(self):
        self.fig, _ = plt.subplots()
        self.seen = []

    def update(self, kind="step", alpha=0.1):
        self.seen.append(kind)
        return f"{kind} at {alpha:.1f}"


def test_choice_explorer_with_a_dropdown():
    explorer = widgets.Explorer(KindScene(), {
        "kind": widgets.choice(["step", "drift"], "step", "signal"),
        "alpha": widgets.slider(0.1, 0.0, 1.0, 0.1, "alpha"),
    })
    explorer.controls["kind"].value = "drift"
    assert explorer.scene.seen == ["step", "drift"]
    assert explorer.readout.value == "<pre>drift at 0.1</pre>"


# ----- Scenes: one figure, live artists blitted onto a cached background -----

class SineScene(widgets.Scene):
    """a*sin(x) + b on fixed axes, with the peak in the title; counts full background draws."""

    def build(self):
        self.fig, self.ax = plt.subplots(figsize=(4, 2.5))
        self.line = self.live(self.ax.plot(np.linspace(0, 6, 50), np.zeros(50))[0])
        self.title = self.live(self.ax.set_title(" "))
        self.ax.set_ylim(-6, 6)
        self.full_draws = 0
        self.fig.canvas.mpl_connect("draw_event", self._count)

    def _count(self, event):
        self.full_draws += 1

    def update(self, amplitude=1.0, offset=0):
        self.line.set_ydata(amplitude * np.sin(self.line.get_xdata()) + offset)
        self.title.set_text(f"peak {amplitude + offset:.2f}")
        if abs(amplitude) + abs(offset) > 6:
            self.ax.set_ylim(-12, 12)  # a limit change: the background must be drawn again
        return f"peak = {amplitude + offset:.2f}"


def scene_explorer():
    return widgets.Explorer(SineScene(), {
        "amplitude": widgets.slider(1.0, 0.0, 10.0, 0.5, "amplitude"),
        "offset": widgets.int_slider(0, -3, 3, 1, "offset"),
    })


def fresh_png(explorer):
    fig, _ = SineScene().render(**explorer.values())
    try:
        return widgets.figure_png(fig)
    finally:
        plt.close(fig)


def test_a_scene_explorer_keeps_one_figure_out_of_pyplot():
    explorer = scene_explorer()
    figure = explorer.figure
    assert figure is explorer.scene.fig
    assert not plt.fignum_exists(figure.number), "pyplot would show it again under the cell"
    explorer.controls["amplitude"].value = 2.0
    assert explorer.figure is figure and explorer.updates == 2
    assert explorer.readout.value == "<pre>peak = 2.00</pre>"


def test_a_scene_draws_its_background_once_and_blits_the_same_pixels():
    explorer = scene_explorer()
    assert explorer.scene.full_draws == 1
    for amplitude in (2.0, 3.5, 0.5):
        explorer.controls["amplitude"].value = amplitude
        assert explorer.image.value == fresh_png(explorer), amplitude
    assert explorer.scene.full_draws == 1, "updates inside the limits must not redraw it all"


def test_a_limit_change_or_invalidate_redraws_the_background():
    explorer = scene_explorer()
    explorer.controls["amplitude"].value = 8.0          # ylim grows to ±12
    assert explorer.scene.full_draws == 2
    assert explorer.image.value == fresh_png(explorer)
    explorer.scene.invalidate()
    explorer.update()
    assert explorer.scene.full_draws == 3


def test_render_gives_a_normal_figure_with_every_artist_drawn():
    fig, text = SineScene().render(amplitude=3.0, offset=1)
    assert text == "peak = 4.00"
    assert not any(artist.get_animated() for artist in fig.axes[0].get_children())
    plt.close(fig)


def test_scene_subplots_fixes_the_margins_and_takes_overrides():
    class Margins(widgets.Scene):
        def build(self):
            _, self.axes = self.subplots(1, 2, figsize=(6, 2), bottom=0.3, wspace=0.4)

        def update(self):
            return ""

    scene = Margins()
    params = scene.fig.subplotpars
    assert (params.left, params.right, params.top) == (0.08, 0.98, 0.9)
    assert (params.bottom, params.wspace) == (0.3, 0.4)
    assert len(scene.axes) == 2 and tuple(scene.fig.get_size_inches()) == (6, 2)
    plt.close(scene.fig)
