"""The store's connection: open and migrate, transactions, and sqlite3 errors mapped.

The store runs in WAL mode with a busy timeout, so readers (the CLI, the API, plain
``sqlite3``) never block the writer and a second writer waits a bounded time. Every write is
its own short transaction: an event, once committed, survives a crash of a later sweep.
Errors of ``sqlite3`` become :class:`StoreError` here (:meth:`StoreBase._guard`,
:func:`failure`). The other modules of the package add their queries to
:class:`StoreBase` as mixins; :class:`statehub.store.Store` puts them together.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from statehub.errors import StoreError
from statehub.store import schema
from statehub.timefmt import iso, utc_now

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 5000


MIN_FREE_BYTES = 1 << 20
"""Below this much free space on its file system, the database counts as full."""


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys = ON")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise StoreError(f"{path}: cannot switch the database to WAL mode (got {mode})")
    # NORMAL is durable in WAL mode against a process crash; only a power loss may drop the
    # last transactions, never corrupt the file.
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def create_private(path: Path) -> None:
    """Create the database file owner-only (0600) if it does not exist yet.

    SQLite would create it 0644 less the umask, readable by every local user, and gives its
    WAL and shared-memory files the database's own mode: creating the file first makes all
    three private. An existing file keeps its mode (the operator's choice).
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def free_bytes(folder: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system of ``folder``; None if unknown."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """The StoreError of ``exc``: SQLite says "disk I/O error" of a full disk or of a file
    it may not write, so say which."""
    message = f"{path}: {exc}"
    if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        free = free_bytes(path.parent)
        files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]
        refused = [file.name for file in files if file.exists() and not os.access(file, os.W_OK)]
        if free is not None and free < MIN_FREE_BYTES:
            message += f" (its file system is full: {free} bytes free)"
        elif refused:
            message += f" ({', '.join(refused)} cannot be written)"
        elif exc.sqlite_errorname == "SQLITE_FULL":
            message += " (the disk is full, or the database reached its size limit)"
    return StoreError(message)


def not_a_folder(path: Path) -> str | None:
    """Which of ``path``'s folders is a file, said plainly; None when none is."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    return None


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


class StoreBase:
    """The connection of a store. Open it with :meth:`open`; every method raises StoreError."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self._identity = file_identity(path)  # the file this connection writes to

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The same connection as a sqlite-utils ``Database``, loaded on first use: importing
        sqlite-utils costs about 30 ms, and an unchanged re-sweep never needs it. Its writes
        join the transaction open on the connection (:meth:`transaction`)."""
        return schema.database(self._connection)

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Self:
        """Open (and migrate) the database at ``path``; its folder is created when missing."""
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
                create_private(path)
            elif not path.exists():
                raise StoreError(f"{path}: no database here yet (run a sweep first)")
            store = cls(path, connect(path))
            store.migrate()
        except sqlite3.Error as exc:
            raise failure(path, exc) from exc
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreError(f"{path}: {not_a_folder(path) or exc.strerror}") from exc
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        return store

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """Map sqlite3 errors to StoreError."""
        try:
            yield self._connection
        except sqlite3.Error as exc:
            raise failure(self.path, exc) from exc

    def _check_same_file(self) -> None:
        """Raise StoreError when the database file was removed or replaced since it was opened.

        A connection goes on writing to the file it opened, so once its folder is removed
        (or the file replaced) every write would vanish while reporting success.
        """
        if file_identity(self.path) != self._identity:
            raise StoreError(
                f"{self.path}: the database file was removed or replaced while in use; "
                "nothing more is written to the old one"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the writer lock is taken up front).

        Raises StoreError before writing when the file is no longer the one opened.
        """
        self._check_same_file()
        with self._guard() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                # SQLite may have rolled back already (a full disk does): a ROLLBACK then
                # fails with "no transaction is active" and would hide the real error.
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def schema_version(self) -> int:
        with self._guard() as connection:
            return schema.schema_version(connection)

    def migrate(self, migrations: Sequence[tuple[int, schema.Step]] | None = None) -> None:
        """Apply every migration (of :data:`schema.MIGRATIONS` unless given) not yet
        applied, each in its own transaction."""
        with self._guard() as connection:
            schema.migrate(
                connection,
                self.transaction,
                now=lambda: iso(utc_now()),
                migrations=schema.MIGRATIONS if migrations is None else migrations,
            )

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` on the raw connection with errors mapped (for read-only reports)."""
        with self._guard() as connection:
            return fn(connection)
