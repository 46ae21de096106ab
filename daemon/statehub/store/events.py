"""Progress events: append one, read them back, and drop the oldest.

Raw SQL on every path of a sweep (an unchanged re-sweep must not load sqlite-utils, see
:mod:`statehub.store`); the detail's long lists go through :mod:`statehub.store.compact`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from statehub.contract import Detail
from statehub.store.compact import (
    STORED_DETAIL,
    compact_detail,
    detail_field,
    mark_used,
    read_events,
    store_lists,
    to_json,
)
from statehub.store.connection import StoreBase
from statehub.store.records import ProgressEvent
from statehub.timefmt import iso, utc_now

EVENTS_BATCH = 8
"""Events :meth:`Events.iter_events` reads at a time (an event is up to 1 MB)."""


class Events(StoreBase):
    """The queries of ``sweep_events`` (``progress_events`` to readers)."""

    def append_event(
        self,
        event_type: str,
        detail: dict[str, Any],
        created_at: datetime | None = None,
        *,
        clear_state: str | None = None,
    ) -> ProgressEvent:
        """Append one progress event and commit it; returns it with its id.

        ``clear_state`` names a hub_state key deleted in the same transaction (a sweep's
        in-progress marker), so a crash cannot keep the marker of a recorded sweep.
        """
        # Raw SQL: every sweep appends one (module docstring), and the lists' upserts need
        # RETURNING, which sqlite-utils does not give.
        created = iso(created_at or utc_now())
        compact = compact_detail(detail)
        head = detail if compact is None else compact.head
        with self.transaction() as connection:
            # The lists first, so that the event's row is written once at its full size (a
            # row that grows later splits pages and the file creeps up over the months).
            refs, fleet = (None, None) if compact is None else store_lists(connection, compact)
            cursor = connection.execute(
                "INSERT INTO sweep_events (event_type, created_at, detail, entries, fleet,"
                " clean_bits) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event_type,
                    created,
                    to_json(head),
                    None if refs is None else to_json(refs),
                    fleet,
                    None if compact is None else compact.clean_bits,
                ),
            )
            event_id = int(cursor.lastrowid or 0)
            if refs is not None:
                mark_used(connection, event_id, [ref[0] for ref in refs], fleet)
            if clear_state is not None:
                connection.execute("DELETE FROM hub_state WHERE key = ?", (clear_state,))
        return ProgressEvent(id=event_id, event_type=event_type, created_at=created, detail=detail)

    def events(
        self,
        *,
        event_type: str | None = None,
        limit: int = 50,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        oldest_first: bool = False,
        sources: Sequence[str] | None = None,
        completed: bool = False,
    ) -> list[ProgressEvent]:
        """Events, newest first unless ``oldest_first``; ``since``/``until`` bound created_at
        (``[since, until)``); ``before``: only events recorded before the event of that id
        (a smaller id: the next page after it, whatever the times); ``sources``: of these
        ``detail.source`` only; ``completed``: sweeps that ran to their end only (neither
        lock-skipped, interrupted nor cancelled). Read in one query: for many events,
        :meth:`iter_events`.
        """
        return list(
            self.iter_events(
                event_type=event_type,
                limit=limit,
                since=since,
                until=until,
                before=before,
                oldest_first=oldest_first,
                sources=sources,
                completed=completed,
                batch=limit,
            )
        )

    def iter_events(
        self,
        *,
        event_type: str | None = None,
        limit: int = 50,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        oldest_first: bool = False,
        sources: Sequence[str] | None = None,
        completed: bool = False,
        batch: int = EVENTS_BATCH,
    ) -> Iterator[ProgressEvent]:
        """The events of :meth:`events`, read ``batch`` at a time (each batch one query,
        the next one after the last id read): a caller that lets each event go, or stops
        early, holds at most one batch, whatever ``limit`` (an event is up to 1 MB)."""
        clauses, params = event_filter(
            event_type, since, until, sources=sources, completed=completed
        )
        if before is not None:
            # The order is the id's (the order events were recorded in), so an id is an
            # exact cursor; a time is not: several events can share a millisecond.
            clauses.append("id < ?")
            params.append(before)
        order, after = ("ASC", ">") if oldest_first else ("DESC", "<")
        last: int | None = None
        left = limit
        while left > 0:
            where = list(clauses)
            values = list(params)
            if last is not None:
                where.append(f"id {after} ?")
                values.append(last)
            size = min(batch, left)
            sql = (
                f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
                f"{' WHERE ' + ' AND '.join(where) if where else ''}"
                f" ORDER BY id {order} LIMIT ?"
            )
            with self._guard() as connection:
                rows = connection.execute(sql, (*values, size)).fetchall()
                found = read_events(connection, rows)
            yield from found
            if len(found) < size:
                return
            left -= size
            last = found[-1].id

    def last_completed_sweep(
        self,
        sources: Sequence[str] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
    ) -> ProgressEvent | None:
        """The newest sweep that ran to its end, optionally of one type and given sources,
        created in ``[since, until)``.

        A lock-skipped sweep did not run, and an ``interrupted`` or ``cancelled`` one did not
        finish: none counts. The standby daemon's test of a healthy primary is this one
        query (``GET /progress/?completed=true&source=...`` over HTTP); with ``until`` = now,
        a sweep dated in the future is no health either.
        """
        found = self.events(
            event_type=event_type,
            sources=sources,
            completed=True,
            since=since,
            until=until,
            limit=1,
        )
        return found[0] if found else None

    def event_created_at(self, event_id: int) -> str | None:
        """``created_at`` of one event, None when there is no such event."""
        with self._guard():
            rows = self.db.table("sweep_events").rows_where(
                "id = ?", [event_id], select="created_at"
            )
            return next((str(row["created_at"]) for row in rows), None)

    def count_events(self) -> int:
        with self._guard():
            return self.db.table("sweep_events").count

    def newest_created_before(self, until: datetime | None = None) -> str | None:
        """The latest ``created_at`` of the events (created before ``until``); None: none."""
        with self._guard() as connection:
            row = connection.execute(
                "SELECT max(created_at) FROM sweep_events WHERE created_at < ?",
                (iso(until) if until is not None else "9999",),
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def delete_events_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events created before ``cutoff``.

        One short transaction, so a concurrent sweep waits for at most one batch.
        Returns how many rows were deleted.
        """
        with self.transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM sweep_events WHERE id IN (SELECT id FROM sweep_events"
                " WHERE created_at < ? ORDER BY created_at LIMIT ?)",
                (iso(cutoff), limit),
            )
            deleted = cursor.rowcount
            # Entries and fleets no event still refers to (each remembers its last event).
            for table in ("sweep_entries", "repo_lists"):
                connection.execute(
                    f"DELETE FROM {table} WHERE last_event <"  # noqa: S608
                    " coalesce((SELECT min(id) FROM sweep_events), 1 << 62)"
                )
            return deleted


def event_filter(
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    *,
    sources: Sequence[str] | None = None,
    completed: bool = False,
) -> tuple[list[str], list[Any]]:
    """The conditions of a read of events (joined with AND) and their parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if completed:
        clauses.append(
            f"{detail_field(Detail.LOCK_SKIPPED)} = 0"
            f" AND coalesce({detail_field(Detail.INTERRUPTED)}, 0) = 0"
            f" AND coalesce({detail_field(Detail.CANCELLED)}, 0) = 0"
        )
    if sources is not None:
        clauses.append(f"{detail_field(Detail.SOURCE)} IN ({','.join('?' * len(sources))})")
        params.extend(sources)
    if event_type is not None:
        clauses.append("event_type = ?")
        params.append(event_type)
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(iso(since))
    if until is not None:
        clauses.append("created_at < ?")
        params.append(iso(until))
    return clauses, params
