"""The cluster scheduler: the ``[schedule]`` definition as a Temporal Schedule, and a worker.

``statehub temporal sync`` writes the Schedule (:mod:`.schedule`), ``statehub temporal
worker`` runs its workflow and the sweep activity on this host (:mod:`.worker`,
:mod:`.activity`), ``statehub temporal show`` compares the two. The workflow itself
(:mod:`.workflow`) only starts the activity: Temporal replays it, so it holds no I/O.

Installed with the extra ``statehub[temporal]``; :func:`require` turns a missing
``temporalio`` into one line and exit status 78. Nothing here is imported by the rest of
statehub, so ``statehub --help`` and the base install never load the SDK.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn

from statehub.errors import ExtraMissingError


def require() -> None:
    """Raise ExtraMissingError (exit 78) when the ``temporalio`` SDK is not installed."""
    try:
        import temporalio  # noqa: F401
    except ImportError as exc:
        raise ExtraMissingError(
            "the Temporal SDK is not installed: pip install 'statehub[temporal]'"
        ) from exc


def leave(status: int) -> NoReturn:
    """Exit now, skipping interpreter teardown (flushed first).

    The SDK's Rust runtime keeps threads that can abort CPython's finalization with
    "PyGILState_Release: thread state ... must be current" (temporalio/sdk-python#300), which
    would turn a clean exit into SIGABRT: a command that used the SDK leaves with os._exit.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
