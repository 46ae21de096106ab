"""SQLite: the store's queries. With :mod:`statehub.storeschema` (the schema and its
migrations), the only modules that write SQL.

The store runs in WAL mode with a busy timeout, so readers (the CLI, the API, plain
``sqlite3``) never block the writer and a second writer waits a bounded time. Every write is
its own short transaction: an event, once committed, survives a crash of a later sweep.
Errors of ``sqlite3`` are mapped to :class:`StoreError` here.

Inserts, upserts and simple reads go through sqlite-utils (:attr:`Store.db`), except on the
path of an unchanged re-sweep, which stays raw ``sqlite3``: reading the standing assessments,
``mark_assessed``, ``forget_repos``, appending the event and ``hub_state`` (the in-progress
marker, the daily prune's stamp). Importing sqlite-utils there would cost about 30 ms of that
command's 0.5 s target (README, Performance), and ``tests/test_store.py`` checks that such a
sweep does not load it. Joins, ``json_extract`` and aggregates, which sqlite-utils has no
form for, are SQL too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statehub import storeschema
from statehub.errors import StoreError

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 5000
MIN_FREE_BYTES = 1 << 20
"""Below this much free space on its file system, the database counts as full."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: ``2026-11-27T10:15:00.041Z``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_iso(text: str) -> datetime:
    """The inverse of :func:`iso`; accepts any ISO-8601 form, naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """One row of ``progress_events``: a sweep, lock-skipped ones too."""

    id: int
    event_type: str
    created_at: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "created_at": self.created_at,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class Assessment:
    """A repo's standing assessment: the findings of its last completed assessment."""

    repo: str
    path: str
    head: str | None
    fingerprint: str | None
    assessed_at: str
    findings: list[dict[str, Any]]
    # The untracked files when it was assessed: their stats are part of the fingerprint.
    watch: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``error`` (a C-00), ``findings`` (C-01..C-23) or ``ok``."""
        checks = {finding["check"] for finding in self.findings}
        if "C-00" in checks:
            return "error"
        return "findings" if checks else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "head": self.head,
            "status": self.status,
            "assessed_at": self.assessed_at,
            "findings": self.findings,
        }


@dataclass(frozen=True, kw_only=True)
class ActivityRun:
    """One row of ``activity_runs``: a fire of the daemon's schedule definition."""

    run_id: str
    definition_id: str
    fired_at: str
    scheduled_for: str
    outcome: str
    context_snapshot: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "definition_id": self.definition_id,
            "fired_at": self.fired_at,
            "scheduled_for": self.scheduled_for,
            "outcome": self.outcome,
            "context_snapshot": self.context_snapshot,
        }


# The columns of sweep_events from which _details() rebuilds whole details in Python (the
# view progress_events does the same in SQL, for outside tools, much more slowly).
STORED_DETAIL = "detail, entries, fleet, clean_bits"


def _place(finding: dict[str, Any]) -> tuple[str, str | None]:
    return finding["check"], finding.get("path")


def mark_new(
    findings: Sequence[dict[str, Any]], previous: Assessment | None, assessed_at: str
) -> list[dict[str, Any]]:
    """``findings`` with ``new`` and ``first_seen`` set against the repo's previous assessment.

    A finding is the one of the previous assessment with the same check, path and message;
    or, where each holds exactly one finding of that check and path, the same check and
    path (a message that only counts, ``3 blocks in all``, may change without the finding
    being new). A finding with no earlier one is new and first seen now; one that had an
    earlier one keeps its first sighting. A repo assessed for the first time has nothing
    new (a first sweep would otherwise mark the whole fleet), though its findings are first
    seen now.
    """
    earlier_ones = list(previous.findings) if previous else []
    exact = {(*_place(item), item["message"]): item for item in earlier_ones}
    places_before = Counter(_place(item) for item in earlier_ones)
    places_now = Counter(_place(item) for item in findings)
    single = {_place(item): item for item in earlier_ones if places_before[_place(item)] == 1}
    marked: list[dict[str, Any]] = []
    for finding in findings:
        place = _place(finding)
        earlier = exact.get((*place, finding["message"]))
        if earlier is None and places_now[place] == 1:
            earlier = single.get(place)
        first_seen = None
        if earlier is not None and previous is not None:
            first_seen = earlier.get("first_seen") or previous.assessed_at
        marked.append(
            {
                "check": finding["check"],
                "message": finding["message"],
                "path": finding["path"],
                "new": previous is not None and earlier is None,
                "first_seen": first_seen or assessed_at,
            }
        )
    return marked


def _connect(path: Path) -> sqlite3.Connection:
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


def free_bytes(folder: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system of ``folder``; None if unknown."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _failure(path: Path, exc: sqlite3.Error) -> StoreError:
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
    return StoreError(message)


def _not_a_folder(path: Path) -> str | None:
    """Which of ``path``'s folders is a file, said plainly; None when none is."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Store:
    """The SQLite store. Open it with :meth:`open`; every method raises StoreError."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self._identity = _identity(path)  # the file this connection writes to

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The same connection as a sqlite-utils ``Database``, loaded on first use: importing
        sqlite-utils costs about 30 ms, and an unchanged re-sweep never needs it. Its writes
        join the transaction open on the connection (:meth:`transaction`)."""
        return storeschema.database(self._connection)

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (and migrate) the database at ``path``; its folder is created when missing."""
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise StoreError(f"{path}: no database here yet (run a sweep first)")
            store = cls(path, _connect(path))
            store.migrate()
        except sqlite3.Error as exc:
            raise _failure(path, exc) from exc
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreError(f"{path}: {_not_a_folder(path) or exc.strerror}") from exc
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        return store

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """Map sqlite3 errors to StoreError."""
        try:
            yield self._connection
        except sqlite3.Error as exc:
            raise _failure(self.path, exc) from exc

    def _check_same_file(self) -> None:
        """Raise StoreError when the database file was removed or replaced since it was opened.

        A connection goes on writing to the file it opened, so once its folder is removed
        (or the file replaced) every write would vanish while reporting success.
        """
        if _identity(self.path) != self._identity:
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
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._guard() as connection:
            return storeschema.schema_version(connection)

    def migrate(self, migrations: Sequence[tuple[int, storeschema.Step]] | None = None) -> None:
        """Apply every migration (of :data:`storeschema.MIGRATIONS` unless given) not yet
        applied, each in its own transaction."""
        with self._guard() as connection:
            storeschema.migrate(
                connection,
                self.transaction,
                now=lambda: iso(utc_now()),
                migrations=storeschema.MIGRATIONS if migrations is None else migrations,
            )

    # -- progress events ------------------------------------------------------------------

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
        compact = _compact(detail)
        head = detail if compact is None else compact.head
        with self.transaction() as connection:
            # The lists first, so that the event's row is written once at its full size (a
            # row that grows later splits pages and the file creeps up over the months).
            refs, fleet = (None, None) if compact is None else _store_lists(connection, compact)
            cursor = connection.execute(
                "INSERT INTO sweep_events (event_type, created_at, detail, entries, fleet,"
                " clean_bits) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event_type,
                    created,
                    _json(head),
                    None if refs is None else _json(refs),
                    fleet,
                    None if compact is None else compact.clean_bits,
                ),
            )
            event_id = int(cursor.lastrowid or 0)
            if refs is not None:
                _mark_used(connection, event_id, [ref[0] for ref in refs], fleet)
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
        oldest_first: bool = False,
    ) -> list[ProgressEvent]:
        """Events, newest first unless ``oldest_first``; ``since``/``until`` bound created_at."""
        clauses, params = _event_filter(event_type, since, until)
        order = "ASC" if oldest_first else "DESC"
        sql = (
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events{clauses}"  # noqa: S608
            f" ORDER BY id {order} LIMIT ?"
        )
        with self._guard() as connection:
            rows = connection.execute(sql, (*params, limit)).fetchall()
            return _events(connection, rows)

    def last_completed_sweep(
        self,
        sources: Sequence[str] | None = None,
        *,
        since: datetime | None = None,
        event_type: str | None = None,
    ) -> ProgressEvent | None:
        """The newest sweep that ran to its end, optionally of one type and given sources.

        A lock-skipped sweep did not run, and an ``interrupted`` one did not finish: neither
        counts (the standby daemon's test of a healthy primary, docs/temporal.md).
        """
        sql = (
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
            " WHERE json_extract(detail, '$.lock_skipped') = 0"
            " AND coalesce(json_extract(detail, '$.interrupted'), 0) = 0"
        )
        params: list[Any] = []
        if event_type is not None:
            sql += " AND event_type = ?"
            params.append(event_type)
        if sources is not None:
            sql += f" AND json_extract(detail, '$.source') IN ({','.join('?' * len(sources))})"
            params.extend(sources)
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(iso(since))
        sql += " ORDER BY id DESC LIMIT 1"
        with self._guard() as connection:
            row = connection.execute(sql, params).fetchone()
            return None if row is None else _events(connection, [row])[0]

    # -- assessments ----------------------------------------------------------------------

    def assessments(self) -> dict[str, Assessment]:
        """Every repo's standing assessment, by repo name."""
        # Raw SQL: every sweep reads these, the unchanged re-sweep too (module docstring).
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT repo, path, head, fingerprint, assessed_at, watch FROM repo_assessments"
            ).fetchall()
            found: dict[str, list[dict[str, Any]]] = {}
            for repo, check_id, message, path, first_seen, new in connection.execute(
                "SELECT repo, check_id, message, path, first_seen, new FROM findings"
                " ORDER BY repo, seq"
            ):
                found.setdefault(repo, []).append(
                    _finding(check_id, message, path, first_seen, new)
                )
        return {
            row[0]: _assessment(*row[:5], watch=row[5], findings=found.get(row[0], []))
            for row in rows
        }

    def assessment(self, repo: str) -> Assessment | None:
        """One repo's standing assessment, None when it has none."""
        from sqlite_utils.db import NotFoundError

        with self._guard():
            try:
                row = self.db.table("repo_assessments").get(repo)
            except NotFoundError:
                return None
            findings = [
                _finding(f["check_id"], f["message"], f["path"], f["first_seen"], f["new"])
                for f in self.db.table("findings").rows_where("repo = ?", [repo], order_by="seq")
            ]
        return _assessment(
            row["repo"],
            row["path"],
            row["head"],
            row["fingerprint"],
            row["assessed_at"],
            watch=row["watch"],
            findings=findings,
        )

    def save_assessments(self, assessments: Sequence[Assessment]) -> None:
        """Replace the standing assessments of these repos, in one transaction."""
        if not assessments:
            return
        with self.transaction():
            findings = self.db.table("findings")
            # One statement for all the repos (a delete_where per repo took 2 ms of 200).
            findings.delete_where(
                "repo IN (SELECT value FROM json_each(?))", [_json([a.repo for a in assessments])]
            )
            # replace=True: the INSERT OR REPLACE the store has always written. upsert_all
            # would first probe SQLite for upsert support by creating and dropping a table
            # in the store's own database (in this transaction, but other connections see
            # the schema change).
            self.db.table("repo_assessments").insert_all(
                (
                    {
                        "repo": item.repo,
                        "path": item.path,
                        "head": item.head,
                        "fingerprint": item.fingerprint,
                        "assessed_at": item.assessed_at,
                        "status": item.status,
                        "watch": json.dumps(list(item.watch)),
                    }
                    for item in assessments
                ),
                pk="repo",
                replace=True,
            )
            findings.insert_all(
                {
                    "repo": item.repo,
                    "seq": seq,
                    "check_id": finding["check"],
                    "message": finding["message"],
                    "path": finding["path"],
                    "first_seen": finding.get("first_seen"),
                    "new": int(bool(finding.get("new"))),
                }
                for item in assessments
                for seq, finding in enumerate(item.findings)
            )

    def assessed_repos(self) -> set[str]:
        """The names of every repo with a standing assessment."""
        # Raw SQL: the sweep's selection reads this every time (module docstring).
        with self._guard() as connection:
            return {row[0] for row in connection.execute("SELECT repo FROM repo_assessments")}

    def count_failing_repos(self) -> int:
        """Repos whose standing assessment has at least one C-01..C-23 finding."""
        # Raw SQL: every sweep's event counts them (module docstring).
        with self._guard() as connection:
            row = connection.execute(
                "SELECT count(DISTINCT repo) FROM findings WHERE check_id != 'C-00'"
            ).fetchone()
        return int(row[0])

    def mark_assessed(self, repos: Sequence[str], assessed_at: str) -> None:
        """Move the assessed_at of unchanged (clean-skipped) repos to now."""
        # Raw SQL: this is the one write of an unchanged re-sweep's repos (module docstring).
        if not repos:
            return
        with self.transaction() as connection:
            connection.executemany(
                "UPDATE repo_assessments SET assessed_at = ? WHERE repo = ?",
                [(assessed_at, repo) for repo in repos],
            )

    def forget_repos(self, repos: Sequence[str]) -> None:
        """Drop the standing assessments of repos that are gone (their findings with them)."""
        # Raw SQL: a repo named in the configuration but missing on disk is forgotten again
        # by every sweep, the unchanged re-sweep too (module docstring).
        if not repos:
            return
        with self.transaction() as connection:
            connection.executemany(
                "DELETE FROM repo_assessments WHERE repo = ?", [(repo,) for repo in repos]
            )

    # -- activity runs --------------------------------------------------------------------

    def record_run(self, run: ActivityRun) -> None:
        """Insert or update (same run_id) one activity run."""
        context = run.context_snapshot
        with self.transaction() as connection:
            event_id = _sweep_event_of(connection, context)
            if event_id is not None:  # the view puts the event's detail back in its place
                context = {**context, SWEEP_KEY: None}
            # A run recorded again (same run_id) replaces its row (see save_assessments).
            self.db.table("fire_runs").insert(
                {
                    "run_id": run.run_id,
                    "definition_id": run.definition_id,
                    "fired_at": run.fired_at,
                    "scheduled_for": run.scheduled_for,
                    "outcome": run.outcome,
                    "context_snapshot": _json(context),
                    "sweep_event": event_id,
                },
                pk="run_id",
                replace=True,
            )

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
            details = {event.id: event.detail for event in self._events_by_id(connection, referred)}
        runs = []
        for row in rows:
            context = json.loads(row["context_snapshot"])
            if row["sweep_event"] is not None:
                context[SWEEP_KEY] = details.get(row["sweep_event"])
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

    @staticmethod
    def _events_by_id(connection: sqlite3.Connection, ids: list[int]) -> list[ProgressEvent]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = connection.execute(
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
            f" WHERE id IN ({marks})",
            ids,
        ).fetchall()
        return _events(connection, rows)

    # -- reports and retention (compare.py, retention.py) ---------------------------------

    # The few detail fields the reports read, extracted in SQL so that a window of thousands
    # of events is read without parsing whole details in Python. JSON booleans come back as
    # 0/1 and a missing key as None.
    _SWEEP_COLUMNS = (
        "created_at, event_type,"
        " json_extract(detail, '$.source'), json_extract(detail, '$.lock_skipped'),"
        " json_extract(detail, '$.automation_error'), json_extract(detail, '$.interrupted'),"
        " json_extract(detail, '$.duration_seconds'),"
        " json_extract(detail, '$.assessment_failures'), json_extract(detail, '$.started_at')"
    )

    def sweep_rows(self, *, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
        """Events created in ``[since, until]``, oldest first, as rows of ``_SWEEP_COLUMNS``.

        A row is ``(created_at, event_type, source, lock_skipped, automation_error,
        interrupted, duration_seconds, assessment_failures, started_at)``.
        """
        sql = (
            f"SELECT {self._SWEEP_COLUMNS} FROM sweep_events"  # noqa: S608
            " WHERE created_at >= ? AND created_at <= ? ORDER BY created_at, id"
        )
        with self._guard() as connection:
            return connection.execute(sql, (iso(since), iso(until))).fetchall()

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

    def last_event_per_source(self, *, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """The newest event of each ``detail.source`` (created at or after ``since``).

        Rows as :meth:`sweep_rows`, ordered by source. Scans the (retention-bounded) table
        once for the sources, then reads the few winning rows.
        """
        bound, params = ("", []) if since is None else (" WHERE created_at >= ?", [iso(since)])
        sql = (
            f"SELECT {self._SWEEP_COLUMNS} FROM sweep_events WHERE id IN ("  # noqa: S608
            f"SELECT max(id) FROM sweep_events{bound}"
            " GROUP BY json_extract(detail, '$.source'))"
            " ORDER BY json_extract(detail, '$.source')"
        )
        with self._guard() as connection:
            return connection.execute(sql, params).fetchall()

    def count_events(self) -> int:
        with self._guard():
            return self.db.table("sweep_events").count

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

    def delete_runs_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` activity runs fired before ``cutoff``, in one transaction."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM fire_runs WHERE rowid IN (SELECT rowid FROM fire_runs"
                " WHERE fired_at < ? ORDER BY fired_at LIMIT ?)",
                (iso(cutoff), limit),
            )
            return cursor.rowcount

    # -- scheduler fire markers (scheduler.py) --------------------------------------------

    def state_items(self, prefix: str) -> dict[str, str]:
        """Every hub_state entry whose key starts with ``prefix`` (no LIKE wildcards)."""
        with self._guard():
            rows = self.db.table("hub_state").rows_where(
                "substr(key, 1, ?) = ?", [len(prefix), prefix], order_by="key"
            )
            return {str(row["key"]): str(row["value"]) for row in rows}

    # -- HTTP API: metrics and health (api.py) --------------------------------------------

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
            "SELECT source, outcome, sum(created_at >= ?), max(created_at), duration FROM ("
            " SELECT json_extract(detail, '$.source') AS source,"
            " CASE WHEN json_extract(detail, '$.lock_skipped') THEN 'lock_skipped'"
            " WHEN json_extract(detail, '$.automation_error') THEN 'automation_error'"
            " ELSE 'ok' END AS outcome,"
            " created_at, json_extract(detail, '$.duration_seconds') AS duration"
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
            "SELECT created_at FROM sweep_events"
            " WHERE id > (SELECT max(id) FROM sweep_events) - ?"
            " AND json_extract(detail, '$.lock_skipped') = 0 ORDER BY id DESC LIMIT 1"
        )
        with self._guard() as connection:
            row = connection.execute(sql, (scan_limit,)).fetchone()
        return None if row is None else str(row[0])

    def repo_status_counts(self) -> dict[str, int]:
        """How many standing assessments have each status (``ok``, ``findings``, ``error``)."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT status, count(*) FROM repo_assessments GROUP BY status"
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    def finding_counts(self) -> dict[str, int]:
        """How many findings of the standing assessments each check id has."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT check_id, count(*) FROM findings GROUP BY check_id"
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    # -- the status page (page.py) --------------------------------------------------------

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

    def open_findings(
        self, *, check: str | None = None, repo: str | None = None, limit: int = 5000
    ) -> list[tuple[str, str, str, str, str | None]]:
        """Findings of the standing assessments, the newest assessed repo first.

        A row is ``(repo, assessed_at, check_id, message, path)``. ``check`` keeps one check
        id; ``repo`` keeps repos whose name contains it (case-insensitive, no wildcards).
        """
        sql = (
            "SELECT f.repo, a.assessed_at, f.check_id, f.message, f.path FROM findings f"
            " JOIN repo_assessments a ON a.repo = f.repo"
        )
        clauses: list[str] = []
        params: list[Any] = []
        if check:
            clauses.append("f.check_id = ?")
            params.append(check)
        if repo:
            clauses.append("instr(lower(f.repo), lower(?)) > 0")
            params.append(repo)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY a.assessed_at DESC, f.repo, f.seq LIMIT ?"
        params.append(limit)
        with self._guard() as connection:
            return [
                (str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4])
                for r in connection.execute(sql, params).fetchall()
            ]

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
            f"SELECT id, {self._SWEEP_COLUMNS} FROM sweep_events"  # noqa: S608
            f" WHERE {where} ORDER BY id"
        )
        with self._guard() as connection:
            return connection.execute(sql, params).fetchall()

    def event_created_at(self, event_id: int) -> str | None:
        """``created_at`` of one event, None when there is no such event."""
        with self._guard():
            rows = self.db.table("sweep_events").rows_where(
                "id = ?", [event_id], select="created_at"
            )
            return next((str(row["created_at"]) for row in rows), None)

    def completed_sweeps(self, event_type: str, *, limit: int) -> list[ProgressEvent]:
        """The newest sweeps of ``event_type`` that ran (not lock-skipped, not interrupted).

        Walks the ``(event_type, id)`` index backwards: the cost is that of the few newest
        events, not of the table.
        """
        sql = (
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
            " WHERE event_type = ? AND json_extract(detail, '$.lock_skipped') = 0"
            " AND coalesce(json_extract(detail, '$.interrupted'), 0) = 0"
            " ORDER BY id DESC LIMIT ?"
        )
        with self._guard() as connection:
            rows = connection.execute(sql, (event_type, limit)).fetchall()
            return _events(connection, rows)

    def repo_history(self, repo: str, *, scan: int) -> list[tuple[Any, ...]]:
        """What each of the newest ``scan`` sweeps that ran said of one repo, newest first.

        A row is ``(id, created_at, event_type, source, state, findings)``: ``state`` is
        ``findings`` (``findings`` is the JSON list of the entry), ``clean``, ``budget``
        (not reached), ``missing``, or None when the sweep did not name the repo.
        """
        sql = (
            f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
            " WHERE json_extract(detail, '$.lock_skipped') = 0 ORDER BY id DESC LIMIT ?"
        )
        with self._guard() as connection:
            events = _events(connection, connection.execute(sql, (scan,)).fetchall())
        history: list[tuple[Any, ...]] = []
        for event in events:
            detail = event.detail
            state: str | None = None
            findings: str | None = None
            for entry in detail.get("repos_processed") or []:
                if isinstance(entry, dict) and entry.get("repo") == repo:
                    state, findings = "findings", _json(entry.get("findings"))
                    break
            else:
                for key, name in _LISTED_AS:
                    if repo in (detail.get(key) or []):
                        state = name
                        break
            history.append(
                (
                    event.id,
                    event.created_at,
                    event.event_type,
                    detail.get("source"),
                    state,
                    findings,
                )
            )
        return history

    # -- small key/value state ------------------------------------------------------------
    # Raw SQL: every sweep reads and writes its in-progress marker and the prune's stamp here
    # (module docstring), and the other keys share the two statements.

    def get_state(self, key: str) -> str | None:
        with self._guard() as connection:
            return _get_state(connection, key)

    def set_state(self, key: str, value: str) -> None:
        with self.transaction() as connection:
            _put_state(connection, key, value)

    def swap_state(self, key: str, value: str) -> str | None:
        """Set ``key`` to ``value`` and return what it held (None), in one transaction."""
        with self.transaction() as connection:
            held = _get_state(connection, key)
            _put_state(connection, key, value)
        return held

    def delete_state(self, key: str) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM hub_state WHERE key = ?", (key,))

    def quick_check(self) -> bool:
        """True when the database answers a trivial query (for health checks)."""
        with self._guard() as connection:
            return bool(connection.execute("SELECT 1").fetchone() == (1,))

    def check_writable(self) -> None:
        """Raise StoreError unless a sweep could write now; commits one tiny write.

        The write (the time of this check, under the hub_state key ``health_probe``) waits
        up to the busy timeout for the lock, as a sweep's would, and reaches the files, so
        a locked, read-only or removed database fails here; then it fails when the file
        system has less than :data:`MIN_FREE_BYTES` free.
        """
        with self.transaction() as connection:
            _put_state(connection, "health_probe", iso(utc_now()))
        free = free_bytes(self.path.parent)
        if free is not None and free < MIN_FREE_BYTES:
            raise StoreError(f"{self.path}: its file system is full ({free} bytes free)")

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` on the raw connection with errors mapped (for read-only reports)."""
        with self._guard() as connection:
            return fn(connection)


def _event_filter(
    event_type: str | None, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if event_type is not None:
        clauses.append("event_type = ?")
        params.append(event_type)
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(iso(since))
    if until is not None:
        clauses.append("created_at < ?")
        params.append(iso(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _get_state(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM hub_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _put_state(connection: sqlite3.Connection, key: str, value: str) -> None:
    connection.execute("INSERT OR REPLACE INTO hub_state (key, value) VALUES (?, ?)", (key, value))


def _finding(
    check_id: str, message: str, path: str | None, first_seen: str | None, new: int
) -> dict[str, Any]:
    """A finding of a standing assessment, from its row of ``findings``."""
    return {
        "check": check_id,
        "message": message,
        "path": path,
        "new": bool(new),
        "first_seen": first_seen,
    }


def _assessment(
    repo: str,
    path: str,
    head: str | None,
    fingerprint: str | None,
    assessed_at: str,
    *,
    watch: str,
    findings: list[dict[str, Any]],
) -> Assessment:
    """A standing assessment, from its row of ``repo_assessments`` and its findings."""
    return Assessment(
        repo=repo,
        path=path,
        head=head,
        fingerprint=fingerprint,
        assessed_at=assessed_at,
        findings=findings,
        watch=tuple(json.loads(watch)),
    )


_ENTRY_KEYS = ["repo", "head", "reassessed", "findings"]


@dataclass(frozen=True, kw_only=True)
class _Compact:
    """An event's detail with its two long lists stored apart (migration 3)."""

    head: dict[str, Any]  # the detail, ``repos_processed`` and ``skipped_clean`` empty
    entries: list[tuple[str, str | None, bool, str]]  # repo, head, reassessed, findings JSON
    fleet: list[str]  # every repo the event names, in name order
    clean_bits: str  # which of them are in skipped_clean: hex, 4 repos a digit, low bit first


def _compact(detail: dict[str, Any]) -> _Compact | None:
    """The compact form of ``detail``, or None when the view could not give it back exactly.

    It applies when every ``repos_processed`` entry is ``{repo, head, reassessed,
    findings}`` in that order, every repo is named once, and ``skipped_clean`` is in name
    order: then the view rebuilds both lists from the entries, the fleet (every repo the
    event names) and a bit set of the clean ones. Anything else is stored whole.
    """
    processed = detail.get("repos_processed")
    lists = [detail.get(key) for key in ("skipped_clean", "skipped_missing", "skipped_budget")]
    if not isinstance(processed, list) or not all(isinstance(names, list) for names in lists):
        return None
    entries = [_entry(entry) for entry in processed]
    clean: list[Any] = lists[0] or []
    if not all(isinstance(name, str) for name in clean):
        return None
    named = [entry[0] for entry in entries if entry is not None]
    named += [name for names in lists for name in names or []]
    fleet = sorted(name for name in named if isinstance(name, str))
    exact = (
        None not in entries
        and len(fleet) == len(named) == len(set(named))
        and clean == sorted(clean)  # the view gives it back in name order
    )
    if not exact:
        return None
    chosen = set(clean)
    digits = [0] * ((len(fleet) + 3) // 4)
    for index, name in enumerate(fleet):
        if name in chosen:
            digits[index // 4] |= 1 << (index % 4)
    head_detail = {**detail, "repos_processed": [], "skipped_clean": []}
    return _Compact(
        head=head_detail,
        entries=[entry for entry in entries if entry is not None],
        fleet=fleet,
        clean_bits="".join(f"{digit:x}" for digit in digits),
    )


def _entry(entry: Any) -> tuple[str, str | None, bool, str] | None:
    """One ``repos_processed`` entry as stored apart, or None when it has another shape."""
    if not (isinstance(entry, dict) and list(entry) == _ENTRY_KEYS):
        return None
    repo, head, reassessed, findings = (entry[key] for key in _ENTRY_KEYS)
    if (
        isinstance(repo, str)
        and (head is None or isinstance(head, str))
        and isinstance(reassessed, bool)
        and isinstance(findings, list)
    ):
        return repo, head, reassessed, _json(findings)
    return None


def _store_lists(connection: sqlite3.Connection, compact: _Compact) -> tuple[list[list[int]], int]:
    """Store the entries and the fleet of one event once each; their references."""
    refs = []
    for repo, head, reassessed, findings in compact.entries:
        digest = hashlib.sha256(_json([repo, head, findings]).encode()).hexdigest()
        row = connection.execute(
            "INSERT INTO sweep_entries (digest, repo, head, findings, last_event)"
            " VALUES (?, ?, ?, ?, 0) ON CONFLICT (digest) DO UPDATE SET repo = repo"
            " RETURNING id",
            (digest, repo, head, findings),
        ).fetchone()
        refs.append([int(row[0]), int(reassessed)])
    names = _json(compact.fleet)
    row = connection.execute(
        "INSERT INTO repo_lists (digest, names, last_event) VALUES (?, ?, 0)"
        " ON CONFLICT (digest) DO UPDATE SET digest = digest RETURNING id",
        (hashlib.sha256(names.encode()).hexdigest(), names),
    ).fetchone()
    return refs, int(row[0])


def _mark_used(
    connection: sqlite3.Connection, event_id: int, entry_ids: list[int], fleet: int | None
) -> None:
    """Record ``event_id`` as the last event naming these entries and this fleet (pruning
    drops what no remaining event names)."""
    for chunk in _chunks(entry_ids):
        connection.execute(
            f"UPDATE sweep_entries SET last_event = ? WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
            (event_id, *chunk),
        )
    connection.execute("UPDATE repo_lists SET last_event = ? WHERE id = ?", (event_id, fleet))


SWEEP_KEY = "consistency_sweep_remote_all"  # contract section 8: the sweep's detail
_LISTED_AS = (
    ("skipped_clean", "clean"),
    ("skipped_budget", "budget"),
    ("skipped_missing", "missing"),
)


def _events(connection: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[ProgressEvent]:
    """Events from rows ``(id, event_type, created_at, detail, entries, fleet, clean_bits)``,
    each detail made whole again: what the view progress_events gives, without its cost."""
    wanted_entries: set[int] = set()
    wanted_fleets: set[int] = set()
    parsed = []
    for row in rows:
        refs = None if row[4] is None else json.loads(row[4])
        parsed.append((row, refs))
        if refs is not None:
            wanted_entries.update(int(ref[0]) for ref in refs)
            wanted_fleets.add(int(row[5]))
    entries: dict[int, tuple[str, str | None, Any]] = {}
    for chunk in _chunks(sorted(wanted_entries)):
        for entry_id, repo, head, findings in connection.execute(
            "SELECT id, repo, head, findings FROM sweep_entries"  # noqa: S608
            f" WHERE id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            entries[int(entry_id)] = (repo, head, json.loads(findings))
    fleets: dict[int, list[str]] = {}
    for chunk in _chunks(sorted(wanted_fleets)):
        for fleet_id, names in connection.execute(
            f"SELECT id, names FROM repo_lists WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        ):
            fleets[int(fleet_id)] = json.loads(names)
    events = []
    for row, refs in parsed:
        detail = json.loads(row[3])
        if refs is not None:
            processed = []
            for entry_id, reassessed in refs:
                repo, head, findings = entries[int(entry_id)]
                processed.append(
                    {
                        "repo": repo,
                        "head": head,
                        "reassessed": bool(reassessed),
                        "findings": findings,
                    }
                )
            bits = str(row[6])
            detail["repos_processed"] = processed
            detail["skipped_clean"] = [
                name
                for index, name in enumerate(fleets[int(row[5])])
                if int(bits[index // 4], 16) >> (index % 4) & 1
            ]
        events.append(ProgressEvent(id=row[0], event_type=row[1], created_at=row[2], detail=detail))
    return events


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _sweep_event_of(connection: sqlite3.Connection, context: dict[str, Any]) -> int | None:
    """The event whose detail ``context`` holds under :data:`SWEEP_KEY`, when it is exactly
    that event's detail (then the run refers to it instead of copying it)."""
    event_id = context.get("progress_event_id")
    detail = context.get(SWEEP_KEY)
    if not isinstance(event_id, int) or isinstance(event_id, bool) or not isinstance(detail, dict):
        return None
    row = connection.execute(
        "SELECT detail FROM progress_events WHERE id = ?", (event_id,)
    ).fetchone()
    return event_id if row is not None and json.loads(row[0]) == detail else None
