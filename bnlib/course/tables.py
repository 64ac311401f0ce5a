"""Explorer tables: trainings run ahead of time (``make tables``), saved with their settings.

An explorer may not train while a slider moves (an update has 100 ms), so lessons 05, 09
and 10 read their runs from compressed ``.npz`` files in their packages. Each file keeps,
beside its arrays, the settings the runs were made with (as ``setting_<name>``); a file
made with other settings is refused with a warning that names the command that remakes
it, so a change to the training code cannot leave an explorer showing stale runs.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["padded", "save", "load"]

PREFIX = "setting_"


def padded(rows, fill) -> np.ndarray:
    """Rows of different lengths (a diverged run stops early) as one array, padded.

    Parameters
    ----------
    rows : sequence of 1-D array_like, at least one
    fill : scalar
        The value after the end of a shorter row.

    Returns
    -------
    ndarray of shape (len(rows), longest row), in the dtype of the first row
    """
    if len(rows) == 0:
        raise ValueError("rows: expected at least one row, got none")
    out = np.full((len(rows), max(map(len, rows))), fill, dtype=np.asarray(rows[0]).dtype)
    for row, values in zip(out, rows):
        row[:len(values)] = values
    return out


def _as_saved(settings: dict) -> dict:
    """Settings as a .npz file gives them back: tuples as lists; None is not stored."""
    return {name: np.asarray(value).tolist() for name, value in settings.items()
            if value is not None}


def save(path, settings: dict, **arrays) -> None:
    """Write ``arrays`` and ``settings`` to the compressed .npz file ``path``.

    Parameters
    ----------
    path : str or Path
    settings : dict
        Name -> number, string, or tuple of them: what the runs depend on.
    **arrays : array_like
        The table's columns (no pickled objects).
    """
    clash = sorted(name for name in arrays if name.startswith(PREFIX))
    if clash:
        raise ValueError(f"arrays: names starting with {PREFIX!r} are kept for the settings; "
                         f"got {clash}")
    np.savez_compressed(path, **arrays,
                        **{PREFIX + name: value for name, value in _as_saved(settings).items()})


def load(path, settings: dict, remake: str, columns=()) -> dict:
    """The arrays of the table at ``path`` if it was made with ``settings``, else {}.

    Parameters
    ----------
    path : str or Path
    settings : dict
        The settings the caller's code would train with today (as given to :func:`save`).
    remake : str
        The command that writes the table again, for the warning.
    columns : iterable of str
        Arrays the caller needs: a table written before one of them existed is stale too.

    Returns
    -------
    dict of name -> ndarray
        Every array but the settings; empty, with a warning, when the saved settings differ
        or a column is missing.
    """
    with np.load(path) as npz:
        data = {name: npz[name] for name in npz.files}
    saved = {name[len(PREFIX):]: data.pop(name).tolist() for name in list(data)
             if name.startswith(PREFIX)}
    if saved != _as_saved(settings):
        warnings.warn(f"{Path(path).name} was made with other settings ({saved}, today "
                      f"{_as_saved(settings)}); run `{remake}`")
        return {}
    missing = sorted(set(columns) - set(data))
    if missing:
        warnings.warn(f"{Path(path).name} has no {missing}; run `{remake}`")
        return {}
    return data
