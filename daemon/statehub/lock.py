"""One sweep at a time per database, across processes: an OS file lock beside the database.

``flock`` locks belong to the open file description, so they also exclude a second sweep
in another thread of the same process, and the kernel frees them when the holder dies
(kill -9 included): no stale lock file to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from statehub.errors import StoreError


def lock_path(database: Path) -> Path:
    """The lock file of ``database``, beside its real path.

    Two configurations that reach one database file (through a symlink, a relative path or
    ``..``) must share one lock, so the path is resolved first.
    """
    real = database.resolve()
    return real.with_name(real.name + ".lock")


class SweepLock:
    """A non-blocking exclusive lock; use :meth:`acquire` or ``with``."""

    def __init__(self, database: Path) -> None:
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another sweep holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the sweep lock: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"{self.path}: cannot take the sweep lock: {exc.strerror}") from exc
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> SweepLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def is_locked(database: Path) -> bool:
    """True when some sweep holds the lock of ``database`` right now."""
    probe = SweepLock(database)
    if not probe.path.exists():
        return False
    if probe.acquire():
        probe.release()
        return False
    return True
