"""Tests of bnlib.widgets.Explorer, driven without a browser by setting control values."""
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from bnlib import widgets


class View:
    """A small pure view: plots a*sin(x) + b and reports the peak; records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, amplitude, offset):
        self.calls.append({"amplitude": amplitude, "offset": offset})
        t = np.linspace(0.0, 2 * np.pi, 50)
        fig, ax = plt.subplots()
        ax.plot(t, amplitude * np.sin(t) + offset)
        return fig, f"peak = {amplitude + offset:.2f}"


def make_explorer():
    view = View()
    explorer = widgets.Explorer(view, {
        "amplitude": widgets.slider(1.0, 0.0, 5.0, 0.5, "amplitude"),
        "offset": widgets.int_slider(0, -3, 3, 1, "offset"),
    }, title="sine")
    return explorer, view


def plotted(fig):
    return fig.axes[0].lines[0].get_ydata()


def test_explorer_draws_once_with_the_initial_values():
    explorer, view = make_explorer()
    assert explorer.updates == 1
    assert view.calls == [{"amplitude": 1.0, "offset": 0}]
    assert explorer.readout.value == "<pre>peak = 1.00</pre>"
    assert isinstance(explorer.figure, Figure)
    assert not plt.fignum_exists(explorer.figure.number), "the figure should be closed"


@pytest.mark.parametrize("name, value, peak", [("amplitude", 2.5, "2.50"),
                                               ("offset", -2, "-1.00")])
def test_setting_a_control_recomputes_the_view(name, value, peak):
    explorer, view = make_explorer()
    first_figure = explorer.figure
    explorer.controls[name].value = value
    case = f"{name}={value}"
    assert explorer.updates == 2, case
    assert view.calls[-1][name] == value, case
    assert explorer.readout.value == f"<pre>peak = {peak}</pre>", case
    assert explorer.figure is not first_figure, case
    values = explorer.values()
    np.testing.assert_allclose(
        plotted(explorer.figure),
        values["amplitude"] * np.sin(np.linspace(0, 2 * np.pi, 50)) + values["offset"],
        err_msg=case)


def test_each_change_triggers_exactly_one_update():
    explorer, view = make_explorer()
    explorer.controls["amplitude"].value = 3.0
    explorer.controls["offset"].value = 2
    explorer.controls["amplitude"].value = 3.0          # unchanged: no new update
    assert explorer.updates == 3
    assert len(view.calls) == 3
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


def test_image_holds_the_figure_as_png_and_changes_with_the_view():
    explorer, _ = make_explorer()
    first = bytes(explorer.image.value)
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = explorer.figure.get_size_inches() * explorer.figure.dpi
    decoded = plt.imread(io.BytesIO(first), format="png")
    assert decoded.shape[:2] == (round(height), round(width))
    explorer.controls["amplitude"].value = 4.0
    assert bytes(explorer.image.value) != first
    assert bytes(explorer.image.value) == widgets.figure_png(explorer.figure)


def test_an_error_in_the_view_shows_in_the_readout_and_propagates():
    def view(x):
        if x > 1:
            raise ValueError("x too large")
        return plt.figure(), f"x = {x}"

    explorer = widgets.Explorer(view, {"x": widgets.int_slider(0, 0, 3, 1, "x")})
    assert explorer.readout.value == "<pre>x = 0</pre>"
    with pytest.raises(ValueError, match="x too large"):
        explorer.controls["x"].value = 2
    assert "ValueError: x too large" in explorer.readout.value


def test_sliders_update_only_on_release():
    s = widgets.slider(0.5, 0.0, 1.0, 0.1, "x")
    i = widgets.int_slider(2, 0, 5, 1, "n")
    assert (s.value, s.min, s.max, s.step) == (0.5, 0.0, 1.0, 0.1)
    assert (i.value, i.min, i.max, i.step) == (2, 0, 5, 1)
    assert s.continuous_update is False and i.continuous_update is False


def test_choice_explorer_with_a_dropdown():
    seen = []

    def view(kind, alpha):
        seen.append(kind)
        fig = plt.figure()
        return fig, f"{kind} at {alpha:.1f}"

    explorer = widgets.Explorer(view, {
        "kind": widgets.choice(["step", "drift"], "step", "signal"),
        "alpha": widgets.slider(0.1, 0.0, 1.0, 0.1, "alpha"),
    })
    explorer.controls["kind"].value = "drift"
    assert seen == ["step", "drift"]
    assert explorer.readout.value == "<pre>drift at 0.1</pre>"
