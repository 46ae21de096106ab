"""Activity runs: the rows of ``activity_runs`` (table ``fire_runs``), a run of the schedule each.

A run whose context holds exactly its sweep's event refers to the event instead of
copying its detail; the view ``activity_runs`` puts the detail back in its place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from statehub.contract import SWEEP_RESULT_KEY
from statehub.store.compact import events_by_id, to_json
from statehub.store.connection import StoreBase
from statehub.store.records import ActivityRun
from statehub.timefmt import iso


class Runs(StoreBase):
    """The queries of ``fire_runs``."""

    def record_run(self, run: ActivityRun) -> None:
        """Insert or update (same run_id) one activity run."""
        context = run.context_snapshot
        with self.transaction() as connection:
            event_id = sweep_event_of(connection, context)
            if event_id is not None:  # the view puts the event's detail back in its place
                context = {**context, SWEEP_RESULT_KEY: None}
            # A run recorded again (same run_id) replaces its row (see save_assessments).
            self.db.table("fire_runs").insert(
                {
                    "run_id": run.run_id,
                    "definition_id": run.definition_id,
                    "fired_at": run.fired_at,
                    "scheduled_for": run.scheduled_for,
                    "outcome": run.outcome,
                    "context_snapshot": to_json(context),
                    "sweep_event": event_id,
                },
                pk="run_id",
                replace=True,
            )

    def has_run(self, run_id: str) -> bool:
        """True when a run with this id is recorded."""
        with self._guard() as connection:
            row = connection.execute(
                "SELECT 1 FROM fire_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            return row is not None

    def record_decision(self, row: dict[str, Any]) -> None:
        """Append one scheduler decision not to run (``schedule_decisions``): ``row`` has
        ``decided_at``, ``definition_id``, ``scheduled_for``, ``decision``, ``context``."""
        with self.transaction():
            self.db.table("schedule_decisions").insert({**row, "context": to_json(row["context"])})

    def decisions(self, *, definition_id: str | None = None, limit: int = 20) -> list[ActivityRun]:
        """The newest decisions not to run, as runs (``fired_at`` = when decided, ``outcome``
        = the decision, ``run_id`` = ``decision-<id>``), newest first."""
        where = None if definition_id is None else "definition_id = ?"
        params = [] if definition_id is None else [definition_id]
        with self._guard():
            rows = list(
                self.db.table("schedule_decisions").rows_where(
                    where, params, order_by="decided_at DESC, id DESC", limit=limit
                )
            )
        return [
            ActivityRun(
                run_id=f"decision-{row['id']}",
                definition_id=row["definition_id"],
                fired_at=row["decided_at"],
                scheduled_for=row["scheduled_for"],
                outcome=row["decision"],
                context_snapshot=json.loads(row["context"]),
            )
            for row in rows
        ]

    def runs(
        self,
        *,
        definition_id: str | None = None,
        origins: Collection[str] | None = None,
        limit: int = 20,
    ) -> list[ActivityRun]:
        """Activity runs, newest fire first; with ``origins``, only the runs whose
        ``context_snapshot.origin`` is one of them (filtered here, so that the sweep details
        of the other runs are never read)."""
        clauses: list[str] = []
        params: list[Any] = []
        if definition_id is not None:
            clauses.append("definition_id = ?")
            params.append(definition_id)
        if origins is not None:
            marks = ", ".join("?" * len(origins))
            clauses.append(f"json_extract(context_snapshot, '$.origin') IN ({marks})")
            params.extend(origins)
        with self._guard() as connection:
            rows = list(
                self.db.table("fire_runs").rows_where(
                    " AND ".join(clauses) or None,
                    params,
                    order_by="fired_at DESC",
                    limit=limit,
                )
            )
            referred = [row["sweep_event"] for row in rows if row["sweep_event"] is not None]
            details = {event.id: event.detail for event in events_by_id(connection, referred)}
        runs = []
        for row in rows:
            context = json.loads(row["context_snapshot"])
            if row["sweep_event"] is not None:
                context[SWEEP_RESULT_KEY] = details.get(row["sweep_event"])
            runs.append(
                ActivityRun(
                    run_id=row["run_id"],
                    definition_id=row["definition_id"],
                    fired_at=row["fired_at"],
                    scheduled_for=row["scheduled_for"],
                    outcome=row["outcome"],
                    context_snapshot=context,
                )
            )
        return runs

    def failed_triggers(self, *, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
        """Fires in ``[since, until]`` that chose a source but recorded no sweep: the trigger
        failed before sweeping (the API down or refusing, a timeout). Oldest first.

        A row is ``(fired_at, source, error)``.
        """
        sql = (
            "SELECT fired_at, json_extract(context_snapshot, '$.source'),"
            " json_extract(context_snapshot, '$.error') FROM fire_runs"
            " WHERE fired_at >= ? AND fired_at <= ? AND outcome = 'error'"
            " AND json_extract(context_snapshot, '$.source') IS NOT NULL"
            " AND json_extract(context_snapshot, '$.progress_event_id') IS NULL"
            " ORDER BY fired_at, run_id"
        )
        with self._guard() as connection:
            return connection.execute(sql, (iso(since), iso(until))).fetchall()

    def delete_runs_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` activity runs fired before ``cutoff`` (and as many
        scheduler decisions made before it), in one transaction."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM fire_runs WHERE rowid IN (SELECT rowid FROM fire_runs"
                " WHERE fired_at < ? ORDER BY fired_at LIMIT ?)",
                (iso(cutoff), limit),
            )
            decided = connection.execute(
                "DELETE FROM schedule_decisions WHERE id IN (SELECT id FROM schedule_decisions"
                " WHERE decided_at < ? ORDER BY decided_at LIMIT ?)",
                (iso(cutoff), limit),
            )
            return cursor.rowcount + decided.rowcount


def sweep_event_of(connection: sqlite3.Connection, context: dict[str, Any]) -> int | None:
    """The event whose detail ``context`` holds under :data:`SWEEP_RESULT_KEY`, when it is exactly
    that event's detail (then the run refers to it instead of copying it)."""
    event_id = context.get("progress_event_id")
    detail = context.get(SWEEP_RESULT_KEY)
    if not isinstance(event_id, int) or isinstance(event_id, bool) or not isinstance(detail, dict):
        return None
    row = connection.execute(
        "SELECT detail FROM progress_events WHERE id = ?", (event_id,)
    ).fetchone()
    return event_id if row is not None and json.loads(row[0]) == detail else None
