"""An operator's stop: who asked for it, the waits it wakes, what a sweep raises for it.

A sweep ended by the operator (SIGINT, SIGTERM, ``systemctl stop``) is recorded at once as
cancelled by the process itself, naming the signal (contract section 4), not found by the
next process as an interrupted C-00. In the thread that got the signal, :class:`Stopped` is
raised by the signal handler (``KeyboardInterrupt`` for SIGINT, :func:`raise_on_sigterm`
for SIGTERM); a sweep running in another thread (the daemon's, the Temporal worker's) gets
a :class:`Cancel`, which the worker pool polls, and raises :class:`Stopped` itself.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

POLL_SECONDS = 0.5  # how soon a sweep in another thread sees a cancel


class Stopped(KeyboardInterrupt):  # a KeyboardInterrupt, named for what it is
    """The operator stopped the process (``signal_name``: ``SIGINT``, ``SIGTERM``)."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def stopped_by(exc: BaseException) -> str:
    """The signal that ended a run: a :class:`Stopped`'s, else SIGINT (a plain ^C)."""
    return exc.signal_name if isinstance(exc, Stopped) else "SIGINT"


def raise_on_sigterm() -> None:
    """In the main thread: SIGTERM raises :class:`Stopped` like ^C raises KeyboardInterrupt.

    So a command stopped by ``kill`` or ``systemctl stop`` unwinds and records what it was
    doing, instead of dying without a word.
    """

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)


class Cancel:
    """A stop asked of the runs of this process, and every bounded wait it wakes at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: set[threading.Event] = set()
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def register(self, event: threading.Event) -> None:
        with self._lock:
            self._events.add(event)
            if self.reason is not None:
                event.set()

    def unregister(self, event: threading.Event) -> None:
        with self._lock:
            self._events.discard(event)

    def cancel(self, reason: str = "SIGTERM") -> None:
        """Stop: ``reason`` is who asked (a signal's name, ``temporal``)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            for event in self._events:
                event.set()

    def check(self) -> None:
        """Raise :class:`Stopped` when a stop was asked."""
        if self.reason is not None:
            raise Stopped(self.reason)
