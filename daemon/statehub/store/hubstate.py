"""Hub state: the small key/value table ``hub_state`` (markers, stamps, the daemon's state).

Raw SQL: every sweep reads and writes its in-progress marker and the prune's stamp here
(:mod:`statehub.store`), and the other keys share the two statements.
"""

from __future__ import annotations

import sqlite3

from statehub.errors import StoreError
from statehub.store.connection import MIN_FREE_BYTES, StoreBase, free_bytes
from statehub.timefmt import iso, utc_now


class HubState(StoreBase):
    """The queries of ``hub_state``."""

    def get_state(self, key: str) -> str | None:
        with self._guard() as connection:
            return get_state(connection, key)

    def set_state(self, key: str, value: str) -> None:
        with self.transaction() as connection:
            put_state(connection, key, value)

    def swap_state(self, key: str, value: str) -> str | None:
        """Set ``key`` to ``value`` and return what it held (None), in one transaction."""
        with self.transaction() as connection:
            held = get_state(connection, key)
            put_state(connection, key, value)
        return held

    def restore_state(self, key: str, expected: str, previous: str | None) -> bool:
        """Put back ``previous`` (None: no entry) if ``key`` still holds ``expected``; True
        when it did. What a :meth:`swap_state` claimed, given up when nothing else came since."""
        with self.transaction() as connection:
            if get_state(connection, key) != expected:
                return False
            if previous is None:
                connection.execute("DELETE FROM hub_state WHERE key = ?", (key,))
            else:
                put_state(connection, key, previous)
        return True

    def delete_state(self, key: str) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM hub_state WHERE key = ?", (key,))

    def state_items(self, prefix: str) -> dict[str, str]:
        """Every hub_state entry whose key starts with ``prefix`` (no LIKE wildcards)."""
        with self._guard():
            rows = self.db.table("hub_state").rows_where(
                "substr(key, 1, ?) = ?", [len(prefix), prefix], order_by="key"
            )
            return {str(row["key"]): str(row["value"]) for row in rows}

    def check_writable(self) -> None:
        """Raise StoreError unless a sweep could write now; commits one tiny write.

        The write (the time of this check, under the hub_state key ``health_probe``) waits
        up to the busy timeout for the lock, as a sweep's would, and reaches the files, so
        a locked, read-only or removed database fails here; then it fails when the file
        system has less than :data:`MIN_FREE_BYTES` free.
        """
        with self.transaction() as connection:
            put_state(connection, "health_probe", iso(utc_now()))
        free = free_bytes(self.path.parent)
        if free is not None and free < MIN_FREE_BYTES:
            raise StoreError(f"{self.path}: its file system is full ({free} bytes free)")


def get_state(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM hub_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def put_state(connection: sqlite3.Connection, key: str, value: str) -> None:
    connection.execute("INSERT OR REPLACE INTO hub_state (key, value) VALUES (?, ?)", (key, value))
