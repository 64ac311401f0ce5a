"""bnlib.course.tables: explorer tables saved with their settings, stale ones refused."""
import numpy as np
import pytest

from bnlib.course import tables

SETTINGS = {"lr": 0.1, "sizes": (64, 100, 10), "norm": "batch", "output_scale": None}


def test_padded_rows_keep_their_values_and_fill_the_rest():
    out = tables.padded([np.array([1.0, 2.0, 3.0]), np.array([4.0])], np.nan)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0], [4.0, np.nan, np.nan]])
    ints = tables.padded([[1, 2], [3, 4, 5]], -1)
    assert ints.dtype.kind == "i"
    np.testing.assert_array_equal(ints, [[1, 2, -1], [3, 4, 5]])


def test_a_table_comes_back_with_its_arrays_and_without_its_settings(tmp_path):
    path = tmp_path / "runs.npz"
    loss = np.array([[2.3, 1.1], [2.2, np.nan]])
    tables.save(path, SETTINGS, loss=loss, seed=np.array([0, 1]))
    with np.load(path) as npz:     # written without pickles, settings beside the arrays
        assert sorted(npz.files) == ["loss", "seed", "setting_lr", "setting_norm", "setting_sizes"]
        assert npz["setting_sizes"].tolist() == [64, 100, 10]
    data = tables.load(path, SETTINGS, "make tables", columns=("loss",))
    assert sorted(data) == ["loss", "seed"]
    np.testing.assert_array_equal(data["loss"], loss)


@pytest.mark.parametrize("change", [{"lr": 0.2}, {"sizes": (64, 50, 10)}, {"norm": None},
                                    {"output_scale": 2.0}, {"momentum": 0.9}])
def test_a_table_made_with_other_settings_is_refused_naming_the_command(tmp_path, change):
    path = tmp_path / "runs.npz"
    tables.save(path, SETTINGS, loss=np.zeros(3))
    with pytest.warns(UserWarning, match=r"runs.npz was made with other settings .*run `make t`"):
        assert tables.load(path, {**SETTINGS, **change}, "make t") == {}


def test_a_table_without_a_needed_column_is_refused(tmp_path):
    path = tmp_path / "runs.npz"
    tables.save(path, SETTINGS, loss=np.zeros(3))
    with pytest.warns(UserWarning, match=r"runs.npz has no \['sensitivity'\]; run `make t`"):
        assert tables.load(path, SETTINGS, "make t", columns=("loss", "sensitivity")) == {}


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="rows: expected at least one row, got none"):
        tables.padded([], 0)
    with pytest.raises(ValueError, match=r"arrays: names starting with 'setting_' are kept "
                                         r"for the settings; got \['setting_lr'\]"):
        tables.save(tmp_path / "x.npz", SETTINGS, setting_lr=np.zeros(1))
