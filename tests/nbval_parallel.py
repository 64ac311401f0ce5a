"""pytest plugin (``-p tests.nbval_parallel``): strict nbval on several xdist workers.

nbval starts one kernel per notebook. jupyter_client picks the kernel's five TCP ports by
binding to port 0 and letting go, and the kernel binds them a second or so later; a
kernel started in that gap by another worker can be handed the same ports, and then
one of them hangs. Here each worker holds a machine-wide file lock from choosing the
ports until its kernel answers, so kernels start one at a time and run side by side.
"""
from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path

import nbval.kernel

LOCK = Path(tempfile.gettempdir()) / "bnlib-kernel-start.lock"
_start_new_kernel = nbval.kernel.start_new_kernel


def start_new_kernel(*args, **kwargs):
    """nbval's kernel start, one process at a time."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _start_new_kernel(*args, **kwargs)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


nbval.kernel.start_new_kernel = start_new_kernel
