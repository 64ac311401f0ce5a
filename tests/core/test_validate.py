"""bnlib._validate: the argument checks, and the one parser of batch-norm ``axis`` values."""
import numpy as np
import pytest

from bnlib._validate import parse_axis


@pytest.mark.parametrize("ndim, axis, kept, reduced", [
    (2, -1, (1,), (0,)),
    (2, 1, (1,), (0,)),
    (4, -1, (3,), (0, 1, 2)),
    (4, (1, 2, 3), (1, 2, 3), (0,)),
    (4, (3, 1), (1, 3), (0, 2)),           # sorted
    (4, [-1, -3], (1, 3), (0, 2)),         # a list, negative axes
    (4, (3, -1), (3,), (0, 1, 2)),         # the same axis twice
    (3, np.int64(-2), (1,), (0, 2)),       # a NumPy integer
])
def test_parse_axis_splits_kept_and_reduced_axes(ndim, axis, kept, reduced):
    assert parse_axis(ndim, axis) == (kept, reduced)


@pytest.mark.parametrize("ndim, axis, pattern", [
    (1, -1, "batch axis and at least one feature axis"),
    (2, 0, "must not include the batch axis 0"),
    (2, -2, "must not include the batch axis 0"),
    (4, (0, 3), "must not include the batch axis 0"),
    (2, 2, "got axis 2 out of range"),
    (4, (1, 4), "got axis 4 out of range"),
    (2, -3, "got axis -3 out of range"),
    (2, (), "at least one feature axis"),
    (3, 1.0, "int or a tuple of ints"),
    (3, (1, "2"), "int or a tuple of ints"),
    (3, True, "int or a tuple of ints"),
])
def test_parse_axis_explains_bad_values(ndim, axis, pattern):
    with pytest.raises(ValueError, match=pattern):
        parse_axis(ndim, axis)
