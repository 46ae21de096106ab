"""Processes that die with their parent (Linux ``PR_SET_PDEATHSIG``).

A sweep's worker dies with the sweep, and a worker's ``git fetch`` dies with the worker: a
worker is killed with SIGKILL at its bound or when the process that serves stops, and
nothing it started may outlive it (a fetch hanging on a silent server would otherwise run on
as an orphan).
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once, before any fork that needs it


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` (its parent now) dies.

    Raises OSError when the kernel refuses. If the parent died before the request took
    effect, exits at once.
    """
    if _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)
