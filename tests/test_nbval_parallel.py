"""tests/nbval_parallel.py: nbval's kernels start under a machine-wide lock."""
import fcntl

import nbval.kernel
import pytest

from tests import nbval_parallel


def _lock_is_held() -> bool:
    """Whether another open file description of the lock file cannot take it."""
    with open(nbval_parallel.LOCK, "a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(other, fcntl.LOCK_UN)
        return False


def test_nbval_starts_kernels_through_the_lock():
    assert nbval.kernel.start_new_kernel is nbval_parallel.start_new_kernel


def test_the_lock_is_held_while_a_kernel_starts_and_released_after(monkeypatch):
    seen = []

    def start(*args, **kwargs):
        seen.append((args, kwargs, _lock_is_held()))
        return "km", "kc"

    monkeypatch.setattr(nbval_parallel, "_start_new_kernel", start)
    assert nbval_parallel.start_new_kernel(kernel_name="python3") == ("km", "kc")
    assert seen == [((), {"kernel_name": "python3"}, True)]
    assert not _lock_is_held()


def test_the_lock_is_released_when_the_start_fails(monkeypatch):
    def start(*args, **kwargs):
        raise RuntimeError("kernel died")

    monkeypatch.setattr(nbval_parallel, "_start_new_kernel", start)
    with pytest.raises(RuntimeError, match="kernel died"):
        nbval_parallel.start_new_kernel()
    assert not _lock_is_held()
