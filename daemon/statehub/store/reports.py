"""The read models of reports: windows of events for ``compare``, the page, metrics, health.

The few detail fields the reports read are extracted in SQL (:data:`SWEEP_COLUMNS`), so
that a window of thousands of events is read without parsing whole details in Python. Every
key of a detail is spelled through :class:`statehub.contract.Detail`, in SQL too
(:func:`statehub.store.compact.detail_field`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statehub.contract import Detail
from statehub.store.compact import STORED_DETAIL, detail_field, read_events, to_json
from statehub.store.connection import StoreBase
from statehub.store.events import EVENTS_BATCH
from statehub.store.records import ProgressEvent
from statehub.timefmt import iso, parse_iso

_SOURCE = detail_field(Detail.SOURCE)
_LOCK_SKIPPED = detail_field(Detail.LOCK_SKIPPED)
SWEEP_COLUMNS = ", ".join(
    [
        "created_at",
        "event_type",
        *(
            detail_field(key)
            for key in (
                Detail.SOURCE,
                Detail.LOCK_SKIPPED,
                Detail.AUTOMATION_ERROR,
                Detail.INTERRUPTED,
                Detail.DURATION_SECONDS,
                Detail.ASSESSMENT_FAILURES,
                Detail.STARTED_AT,
                Detail.CANCELLED,
            )
        ),
    ]
)


class Reports(StoreBase):
    """Read-only queries over windows of events, for the reports."""

    def sweep_rows(self, *, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
        """Events created in ``[since, until]``, oldest first, as rows of ``_SWEEP_COLUMNS``.

        A row is ``(created_at, event_type, source, lock_skipped, automation_error,
        interrupted, duration_seconds, assessment_failures, started_at, cancelled)``.
        """
        sql = (
            f"SELECT {SWEEP_COLUMNS} FROM sweep_events"  # noqa: S608
            " WHERE created_at >= ? AND created_at <= ? ORDER BY created_at, id"
        )
        with self._guard() as connection:
            return connection.execute(sql, (iso(since), iso(until))).fetchall()

    def last_event_per_source(self, *, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """The newest event of each ``detail.source`` (created at or after ``since``).

        Rows as :meth:`sweep_rows`, ordered by source. Scans the (retention-bounded) table
        once for the sources, then reads the few winning rows.
        """
        bound, params = ("", []) if since is None else (" WHERE created_at >= ?", [iso(since)])
        sql = (
            f"SELECT {SWEEP_COLUMNS} FROM sweep_events WHERE id IN ("  # noqa: S608
            f"SELECT max(id) FROM sweep_events{bound}"
            f" GROUP BY {_SOURCE}) ORDER BY {_SOURCE}"
        )
        with self._guard() as connection:
            return connection.execute(sql, params).fetchall()

    def window_rows(self, *, since: datetime, after_id: int | None = None) -> list[tuple[Any, ...]]:
        """Events created at or after ``since`` as ``(id, *row of sweep_rows)``, by id.

        With ``after_id``, only the events appended after it (walked on the primary key: the
        cost is that of the new events), which lets a reader keep a window up to date.
        """
        params: list[Any] = [iso(since)]
        where = "created_at >= ?"
        if after_id is not None:
            where = "id > ? AND " + where
            params.insert(0, after_id)
        sql = (
            f"SELECT id, {SWEEP_COLUMNS} FROM sweep_events"  # noqa: S608
            f" WHERE {where} ORDER BY id"
        )
        with self._guard() as connection:
            return connection.execute(sql, params).fetchall()

    def sweep_summary(
        self, *, since: datetime, counted_since: datetime, max_rows: int
    ) -> list[tuple[Any, ...]]:
        """Events by source and outcome among the newest ``max_rows`` created since ``since``.

        A row is ``(source, outcome, counted, last_created_at, last_duration_seconds)``:
        ``outcome`` is ``lock_skipped``, ``automation_error`` or ``ok``; ``counted`` is how
        many of the group were created at or after ``counted_since``; the last two are those
        of the group's newest event. Aggregated in SQL over the ``created_at`` index, so the
        cost is that of the window, not of the table.
        """
        sql = (
            "SELECT source, outcome, sum(created_at >= ?), max(created_at), duration FROM ("  # noqa: S608
            f" SELECT {_SOURCE} AS source,"
            f" CASE WHEN {_LOCK_SKIPPED} THEN 'lock_skipped'"
            f" WHEN {detail_field(Detail.AUTOMATION_ERROR)} THEN 'automation_error'"
            " ELSE 'ok' END AS outcome,"
            f" created_at, {detail_field(Detail.DURATION_SECONDS)} AS duration"
            " FROM sweep_events WHERE created_at >= ? ORDER BY created_at DESC LIMIT ?)"
            # SQLite takes the bare column 'duration' from the row that holds max(created_at).
            " GROUP BY source, outcome ORDER BY source, outcome"
        )
        with self._guard() as connection:
            return connection.execute(sql, (iso(counted_since), iso(since), max_rows)).fetchall()

    def last_sweep_at(self, *, scan_limit: int) -> str | None:
        """``created_at`` of the newest sweep that ran (not lock-skipped), or None.

        Only the newest ``scan_limit`` events are looked at, so a flood of lock-skipped
        events cannot make a health check scan the whole table.
        """
        sql = (
            "SELECT created_at FROM sweep_events"  # noqa: S608
            " WHERE id > (SELECT max(id) FROM sweep_events) - ?"
            f" AND {_LOCK_SKIPPED} = 0 ORDER BY id DESC LIMIT 1"
        )
        with self._guard() as connection:
            row = connection.execute(sql, (scan_limit,)).fetchone()
        return None if row is None else str(row[0])

    def created_at(self) -> str | None:
        """When this database was created (its first migration was applied), or None."""
        with self._guard():
            rows = self.db.table("schema_migrations").rows_where("version = 1", select="applied_at")
            return next((str(row["applied_at"]) for row in rows), None)

    def first_record_at(self) -> str | None:
        """When this store's record begins: its creation, or its oldest event if older.

        Slots that ended before it have no data (compare and the status page, issue 15);
        an event older than the store is one imported or written by a test.
        """
        with self._guard() as connection:
            row = connection.execute("SELECT min(created_at) FROM sweep_events").fetchone()
        oldest = None if row is None or row[0] is None else str(row[0])
        created = self.created_at()
        moments = [moment for moment in (created, oldest) if moment is not None]
        return min(moments, key=parse_iso) if moments else None

    def repo_history(self, repo: str, *, scan: int) -> list[tuple[Any, ...]]:
        """What each of the newest ``scan`` sweeps that ran said of one repo, newest first.

        A row is ``(id, created_at, event_type, source, state, findings)``: ``state`` is
        ``findings`` (``findings`` is the JSON list of the entry), ``clean``, ``budget``
        (not reached), ``missing``, ``unlisted`` when the event's size bound left repos
        unnamed and this one among them (issue 25), or None when the sweep did not name it.
        """
        sql = (
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
            f" WHERE {_LOCK_SKIPPED} = 0 ORDER BY id DESC LIMIT ?"
        )
        history: list[tuple[Any, ...]] = []
        with self._guard() as connection:
            rows = connection.execute(sql, (scan,))
            # A few events at a time: each may be up to 1 MB (issue 25).
            while batch := rows.fetchmany(EVENTS_BATCH):
                history.extend(_said_of(repo, event) for event in read_events(connection, batch))
        return history


def _said_of(repo: str, event: ProgressEvent) -> tuple[Any, ...]:
    """A row of :meth:`Reports.repo_history`: what ``event`` said of ``repo``."""
    detail = event.detail
    state: str | None = None
    findings: str | None = None
    for entry in detail.get(Detail.REPOS_PROCESSED) or []:
        if isinstance(entry, dict) and entry.get("repo") == repo:
            state, findings = "findings", to_json(entry.get("findings"))
            break
    else:
        named = (name for key, name in _LISTED_AS if repo in (detail.get(key) or []))
        state = next(named, "unlisted" if detail.get(Detail.REPOS_TRUNCATED) else None)
    return (
        event.id,
        event.created_at,
        event.event_type,
        detail.get(Detail.SOURCE),
        state,
        findings,
    )


_LISTED_AS = (
    (Detail.SKIPPED_CLEAN, "clean"),
    (Detail.SKIPPED_BUDGET, "budget"),
    (Detail.SKIPPED_MISSING, "missing"),
)
