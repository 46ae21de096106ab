"""One sweep at a time per database, across processes: an OS file lock beside the database.

One daemon and one Temporal worker per database too (:func:`hold_role`: a ``flock`` on
``<database>.<role>.lock`` held for the life of the process, the holder's pid in it).

``flock`` locks belong to the open file description, so they also exclude a second sweep
in another thread of the same process, and the kernel frees them when the holder dies
(kill -9 included): no stale lock file to clean up. The lock file is created owner-only
(0600): another user who could open it could hold it, and every sweep would be skipped.

The lock file is found by the database's real path, so a second name of the same file (a
hard link elsewhere) would find another one. The sweep therefore also locks the database
file itself, keyed by its identity (device and inode): an open-file-description lock
(``F_OFD_SETLK``) on one byte far beyond anything SQLite locks. That descriptor is opened
once per database file and process and never closed, because closing any descriptor of a
file drops the process's POSIX locks on it, SQLite's own included (fcntl(2)).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from pathlib import Path
from types import TracebackType

from statehub.errors import AlreadyRunning, StoreError


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
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None
        self._identity: tuple[int, int] | bool | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another sweep holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
        self._identity = take_identity_lock(self.database)
        if self._identity is False:
            os.close(fd)  # the same file, under another name, is being swept
            self._identity = None
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            if self._identity:
                release_identity_lock(self._identity)
                self._identity = None
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


def hold_role(database: Path, role: str) -> int:
    """Take the ``role`` lock of ``database`` (``daemon``, ``temporal worker``) for the life
    of this process, or raise :class:`AlreadyRunning` naming the holder's pid.

    Returns the lock's descriptor, kept open to the end (the kernel frees the lock then,
    kill -9 included); the caller closes it only to let go early (tests). Raises StoreError
    when the lock file cannot be used.
    """
    real = database.resolve()
    path = real.with_name(f"{real.name}.{role.replace(' ', '-')}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the {role} lock: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            pid: int | None = int(os.pread(fd, 32, 0).decode("ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            pid = None
        os.close(fd)
        raise AlreadyRunning(role, pid, real) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"{path}: cannot take the {role} lock: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_locked(database: Path) -> bool:
    """True when some sweep holds the lock of ``database`` right now."""
    probe = SweepLock(database)
    if not probe.path.exists():
        return identity_locked(database)
    if probe.acquire():
        probe.release()
        return False
    return True


# -- the lock on the database file's identity ---------------------------------------------

_IDENTITY_BYTE = 1 << 40  # SQLite locks bytes near 1 GiB (its PENDING_BYTE), never here
_identity_fds: dict[tuple[int, int], int] = {}
_identity_threads: dict[tuple[int, int], threading.Lock] = {}
_identity_guard = threading.Lock()


def _flock_struct(kind: int) -> bytes:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding.
    return struct.pack("hhqqixxxx", kind, os.SEEK_SET, _IDENTITY_BYTE, 1, 0)


def _identity_fd(database: Path) -> tuple[tuple[int, int], int] | None:
    """The database file's (device, inode) and this process's descriptor of it; None when
    it does not exist yet (its first sweep creates it under the path lock)."""
    try:
        info = database.stat()
    except OSError:
        return None
    key = (info.st_dev, info.st_ino)
    with _identity_guard:
        fd = _identity_fds.get(key)
        if fd is None:
            try:
                fd = os.open(database, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return None  # a read-only database: no sweep will write it anyway
            _identity_fds[key] = fd
            _identity_threads[key] = threading.Lock()
    return key, fd


def take_identity_lock(database: Path) -> tuple[int, int] | bool:
    """Lock ``database`` by its identity: the key to release, True when there is nothing
    to lock (no file yet), False when another sweep of the same file holds it."""
    found = _identity_fd(database)
    if found is None:
        return True
    key, fd = found
    if not _identity_threads[key].acquire(blocking=False):
        return False  # another thread of this process: one description, so check here
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))
    except OSError:
        _identity_threads[key].release()
        return False
    return key


def release_identity_lock(key: tuple[int, int] | bool) -> None:
    """Give back what :func:`take_identity_lock` took."""
    if isinstance(key, bool):
        return
    fcntl.fcntl(_identity_fds[key], fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK))
    _identity_threads[key].release()


def identity_locked(database: Path) -> bool:
    """True when a sweep of this process or another holds ``database``'s identity lock."""
    found = _identity_fd(database)
    if found is None:
        return False
    key, fd = found
    if _identity_threads[key].locked():
        return True
    answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
    return bool(struct.unpack("hhqqixxxx", answer)[0] != fcntl.F_UNLCK)
