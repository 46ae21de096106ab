"""The one status model: what ``statehub status``, ``status --json``, the status page and
its JSON (``GET /status.json``) show, computed here once.

It holds the schedule and its next fire; the state of the processes that run it (the
daemon, the Temporal worker: alive, stopped or gone, and the trigger they really fire on);
the last runs of the schedule, whatever started them (the daemon, ``run-now``, Temporal, a
scheduled POST, ``sweep --scheduled``); the last event of each source; the open findings;
the database. Each fact has one meaning on every surface:

- a finding is **new** when its repo's previous assessment did not have it (the meaning of
  the API, of ``statehub findings --new`` and of a sweep's ``new_findings``);
- a run **failed** when its outcome is ``error`` or ``failed``, or its sweep had an
  automation error;
- a source's last event has one **outcome**: ``completed``, ``automation_error``,
  ``interrupted`` or ``lock_skipped``, and its sweep is told in the words of
  :mod:`statehub.sweepsummary`.

The surfaces differ only in what they draw around it (the page adds the slot strip and
ages; the terminal fits a screen). Reads only; never creates the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from statehub.compare import SweepRow, utc_z
from statehub.contract import (
    AUTOMATION_ERROR,
    HEARTBEAT_PREFIX,
    SWEEP_RESULT_KEY,
    Detail,
    RunOutcome,
)
from statehub.cron import cron_trigger
from statehub.daemonstate import DaemonState, effective_schedule, read_daemon
from statehub.settings import Settings
from statehub.store import ActivityRun, Store
from statehub.sweepsummary import SweepSummary
from statehub.timefmt import parse_iso, utc_now

CLOCK_SLACK = timedelta(minutes=5)
"""A store's newest event may be this far ahead of the clock before it is a warning."""
RUNS_SHOWN = 10
"""The newest runs of the schedule shown, on the terminal and on the page."""
FINDINGS_READ = 5000
"""Findings read at most (the newest assessed repos first): a screen, not an export."""
HEARTBEAT_ALIVE_SECONDS = 180
"""A heartbeat newer than this counts as alive (the processes beat once a minute)."""


@dataclass(frozen=True, kw_only=True)
class ScheduleView:
    """The ``[schedule]`` that runs, and its next fire: the alive daemon's own (environment
    overrides included, :func:`statehub.daemonstate.daemon_schedule`'s rule), else the
    configuration's. ``configured_trigger`` is the file's, to show when they differ."""

    id: str
    name: str
    trigger: str
    timezone: str
    enabled: bool
    mode: str
    source: str
    fallback_source: str
    primary_sources: tuple[str, ...]
    next_fire: datetime | None  # in the schedule's zone
    from_daemon: bool = False
    configured_trigger: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_daemon": self.from_daemon,
            "configured_trigger": self.configured_trigger,
            "id": self.id,
            "name": self.name,
            "trigger": self.trigger,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "mode": self.mode,
            "source": self.source,
            "fallback_source": self.fallback_source,
            "primary_sources": list(self.primary_sources),
            "next_fire": None if self.next_fire is None else utc_z(self.next_fire),
            "next_fire_local": None if self.next_fire is None else self.next_fire.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class ProcessState:
    """A process that runs the schedule (``daemon``, ``worker``) as it last recorded itself.

    ``state`` is ``alive`` (a heartbeat within :data:`HEARTBEAT_ALIVE_SECONDS`),
    ``stopped`` (it said so when it stopped) or ``gone`` (silent: it died without a word).
    ``trigger`` and ``mode`` are those it really runs with, when it recorded them.
    """

    name: str
    state: str
    at: datetime | None
    pid: int | None = None
    trigger: str | None = None
    mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "at": None if self.at is None else utc_z(self.at),
            "pid": self.pid,
            "trigger": self.trigger,
            "mode": self.mode,
        }


def process_states(store: Store, now: datetime) -> list[ProcessState]:
    """The recorded state of each process that runs the schedule, by name.

    The one reader, for every status surface, of what the processes record of themselves
    in hub_state (``heartbeat:<name>``): the daemon through
    :func:`statehub.daemonstate.read_daemon` (its life judged there, and the schedule it
    really runs); any other process (the Temporal worker) by its heartbeat's age.
    """
    states: list[ProcessState] = []
    daemon = read_daemon(store, now=now)
    for key, value in store.state_items(HEARTBEAT_PREFIX).items():
        name = key[len(HEARTBEAT_PREFIX) :]
        if name == "daemon" and daemon is not None:
            continue  # its own record, below (a bare time is an older daemon's heartbeat)
        record = _record(value) or {"at": value}
        at = _moment(record.get("at"))
        fresh = at is not None and (now - at).total_seconds() <= HEARTBEAT_ALIVE_SECONDS
        pid = record.get("pid")
        states.append(
            ProcessState(
                name=name,
                state="stopped"
                if record.get("state") == "stopped"
                else ("alive" if fresh else "gone"),
                at=at,
                pid=pid if isinstance(pid, int) else None,
            )
        )
    if daemon is not None:
        states.append(
            ProcessState(
                name="daemon",
                state=daemon.state,
                at=_moment(daemon.stopped_at or daemon.heartbeat_at),
                pid=daemon.pid,
                trigger=_text(daemon.schedule.get("trigger")),
                mode=_text(daemon.schedule.get("mode")),
            )
        )
    return sorted(states, key=lambda state: state.name)


def _record(value: str) -> dict[str, Any] | None:
    """A JSON object kept in hub_state, None for anything else."""
    if not value.startswith("{"):
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


@dataclass(frozen=True, kw_only=True)
class RunView:
    """One run of the schedule (a row of ``activity_runs``), from any origin."""

    run_id: str
    fired_at: str
    scheduled_for: str
    outcome: str
    origin: str  # schedule (the daemon), run-now, temporal, http, cli
    source: str
    failed: bool
    duration_seconds: float | None
    error: str
    event_id: int | None
    sweep: SweepSummary | None

    @classmethod
    def of(cls, run: ActivityRun) -> RunView:
        context = run.context_snapshot
        detail = context.get(SWEEP_RESULT_KEY)
        swept = SweepSummary.of(detail) if isinstance(detail, dict) else None
        failed = run.outcome in (RunOutcome.ERROR, RunOutcome.FAILED) or (
            isinstance(detail, dict) and bool(detail.get(Detail.AUTOMATION_ERROR))
        )
        duration = context.get("duration_seconds")
        event_id = context.get("progress_event_id")
        return cls(
            run_id=run.run_id,
            fired_at=run.fired_at,
            scheduled_for=run.scheduled_for,
            outcome=run.outcome,
            origin=str(context.get("origin") or "-"),
            source=str(context.get("source") or ""),
            failed=failed,
            duration_seconds=float(duration) if isinstance(duration, int | float) else None,
            error=str(context.get("error") or ""),
            event_id=event_id if isinstance(event_id, int) else None,
            sweep=swept,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "fired_at": self.fired_at,
            "scheduled_for": self.scheduled_for,
            "outcome": self.outcome,
            "origin": self.origin,
            "source": self.source,
            "failed": self.failed,
            "duration_seconds": self.duration_seconds,
            "error": self.error,
            "event_id": self.event_id,
            "sweep": None if self.sweep is None else self.sweep.words(),
        }


@dataclass(frozen=True, kw_only=True)
class SourceLast:
    """The newest event of one source (or none, for a source the schedule expects)."""

    source: str
    expected: bool  # a source of the schedule: a primary, the daemon's own, the fallback
    row: SweepRow | None

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "expected": self.expected,
            "at": None if row is None else row.created_at,
            "event_type": None if row is None else row.event_type,
            "outcome": None if row is None else row.outcome,
            "duration_seconds": None if row is None else row.duration_seconds,
            "assessment_failures": None if row is None else row.assessment_failures,
        }


@dataclass(frozen=True, kw_only=True)
class RepoFindings:
    """One repo's open findings, grouped by check, each marked new or not."""

    repo: str
    assessed_at: str
    checks: dict[str, list[dict[str, Any]]]  # check -> [{message, path, new}]

    @property
    def new(self) -> bool:
        return any(item["new"] for items in self.checks.values() for item in items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "assessed_at": self.assessed_at,
            "new": self.new,
            "checks": [
                {"check": check, "new": any(i["new"] for i in items), "findings": items}
                for check, items in self.checks.items()
            ],
        }


@dataclass(frozen=True, kw_only=True)
class Database:
    path: Path
    exists: bool
    size_bytes: int | None
    wal_bytes: int | None
    events: int | None = 0  # None: not counted (the page does not show it)
    first_record_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exists": self.exists,
            "size_bytes": self.size_bytes,
            "wal_bytes": self.wal_bytes,
            "events": self.events,
            "first_record_at": self.first_record_at,
        }


@dataclass(frozen=True, kw_only=True)
class StatusModel:
    """Everything every status surface shows (see the module docstring)."""

    at: datetime
    hub: str  # [hub] name: this hub's name on every surface
    schedule: ScheduleView
    database: Database
    processes: list[ProcessState] = field(default_factory=list)
    runs: list[RunView] = field(default_factory=list)
    last_sweeps: list[SourceLast] = field(default_factory=list)
    last_sweeps_since: datetime | None = None
    findings: list[RepoFindings] = field(default_factory=list)
    findings_truncated: bool = False
    check_counts: dict[str, int] = field(default_factory=dict)
    repos_assessed: int = 0
    repos_with_findings: int = 0
    warnings: list[str] = field(default_factory=list)  # of the newest sweep (issue 15)
    clock_warnings: list[str] = field(default_factory=list)  # a clock behind the store

    @property
    def new_findings(self) -> int:
        """Open findings new since their repo's previous assessment."""
        return sum(
            item["new"]
            for repo in self.findings
            for items in repo.checks.values()
            for item in items
        )

    @property
    def repos_with_new(self) -> int:
        return sum(1 for repo in self.findings if repo.new)

    def by_check(self) -> list[dict[str, Any]]:
        """The open findings grouped by check id, C-00 first, with their repos."""
        groups: dict[str, list[str]] = {}
        for repo in sorted(self.findings, key=lambda item: item.repo):
            for check in repo.checks:
                groups.setdefault(check, []).append(repo.repo)
        return [
            {"check": check, "repos": groups[check]}
            for check in sorted(groups, key=lambda c: (c != AUTOMATION_ERROR, c))
        ]

    def as_dict(self) -> dict[str, Any]:
        """The document of ``statehub status --json`` and ``GET /status.json``."""
        return {
            "at": utc_z(self.at),
            "hub": self.hub,
            "schedule": self.schedule.as_dict(),
            "database": self.database.as_dict(),
            "processes": {state.name: state.as_dict() for state in self.processes},
            "runs": [run.as_dict() for run in self.runs],
            "last_sweeps_since": None
            if self.last_sweeps_since is None
            else utc_z(self.last_sweeps_since),
            "last_sweeps": {item.source: item.as_dict() for item in self.last_sweeps},
            "open_findings": self.by_check(),
            "findings": [repo.as_dict() for repo in self.findings],
            "findings_truncated": self.findings_truncated,
            "new_findings": self.new_findings,
            "repos_with_new_findings": self.repos_with_new,
            "repos_assessed": self.repos_assessed,
            "repos_with_findings": self.repos_with_findings,
            "warnings": self.warnings,
            "clock_warnings": self.clock_warnings,
        }


def read_status(settings: Settings, *, now: datetime | None = None) -> StatusModel:
    """The status model of ``settings``' database; never creates it.

    Raises StoreError when the database exists but cannot be read.
    """
    moment = now or utc_now()
    if not settings.database_path.exists():
        return build_status(settings, None, now=moment)
    with Store.open(settings.database_path, create=False) as store:
        return build_status(settings, store, now=moment)


def build_status(
    settings: Settings,
    store: Store | None,
    *,
    now: datetime,
    newest: Mapping[str, SweepRow] | None = None,
    since: datetime | None = None,
    check: str = "",
    repo: str = "",
    count_events: bool = True,
) -> StatusModel:
    """The status model read from ``store`` (None: there is no database yet).

    ``newest`` gives the newest event of each source created since ``since`` when the
    caller keeps it already (the page's window); otherwise it is read from the store, over
    the retention window. ``check`` and ``repo`` narrow the findings (as the page's filter).
    ``count_events`` False leaves the events uncounted (a scan of the table the page does
    without).
    """
    schedule = settings.schedule
    view = _schedule_view(settings, None if store is None else read_daemon(store, now=now), now)
    path = settings.database_path
    database = Database(
        path=path,
        exists=store is not None,
        size_bytes=_size(path),
        wal_bytes=_size(path.with_name(path.name + "-wal")),
    )
    if store is None:
        return StatusModel(at=now, hub=settings.hub_name, schedule=view, database=database)
    database = Database(
        path=path,
        exists=True,
        size_bytes=database.size_bytes,
        wal_bytes=database.wal_bytes,
        events=store.count_events() if count_events else None,
        first_record_at=store.first_record_at(),
    )
    if newest is None:
        since = now - timedelta(days=settings.hub.retention_days)
        rows = [SweepRow.from_row(raw) for raw in store.last_event_per_source(since=since)]
        newest = {row.source: row for row in rows}
    expected = {*view.primary_sources, view.source, view.fallback_source}
    last_sweeps = [
        SourceLast(source=name, expected=name in expected, row=newest.get(name))
        for name in sorted(set(newest) | expected)
    ]
    newest_event = store.events(limit=1)
    statuses = store.repo_status_counts()
    findings, truncated = _findings(store, check=check, repo=repo)
    return StatusModel(
        at=now,
        hub=settings.hub_name,
        schedule=view,
        database=database,
        processes=process_states(store, now),
        # The runs, and the schedulers' decisions not to sweep (primary_healthy...): both
        # visible here, though only the runs are rows of activity_runs (statehub.runs).
        runs=[
            RunView.of(run)
            for run in sorted(
                store.runs(definition_id=schedule.id, limit=RUNS_SHOWN)
                + store.decisions(definition_id=schedule.id, limit=RUNS_SHOWN),
                key=lambda run: run.fired_at,
                reverse=True,
            )[:RUNS_SHOWN]
        ],
        last_sweeps=last_sweeps,
        last_sweeps_since=since,
        findings=findings,
        findings_truncated=truncated,
        check_counts=store.finding_counts(),
        repos_assessed=sum(statuses.values()),
        repos_with_findings=statuses.get("findings", 0) + statuses.get("error", 0),
        warnings=list(newest_event[0].detail.get("warnings", [])) if newest_event else [],
        clock_warnings=clock_warnings(store.newest_created_before(), now),
    )


def clock_warnings(newest_created_at: str | None, now: datetime) -> list[str]:
    """A warning when the clock is behind the store's newest event (the clock went back,
    or the store came from a host whose clock ran ahead): the schedule, retention and
    ``compare`` all read time from it."""
    newest = _moment(newest_created_at)
    if newest is None or newest - now <= CLOCK_SLACK:
        return []
    behind = newest - now
    return [
        f"the clock is {_span(behind)} behind the store's newest event ({newest_created_at}):"
        " check the host's time (timedatectl)"
    ]


def _span(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} day(s)" if hours >= 24 else f"{hours:.1f} hour(s)"


def _schedule_view(settings: Settings, daemon: DaemonState | None, now: datetime) -> ScheduleView:
    """The alive daemon's effective schedule, else the configuration's."""
    effective = effective_schedule(settings)
    from_daemon = daemon is not None and daemon.alive and bool(daemon.schedule)
    shown: dict[str, Any] = {**effective, **(daemon.schedule if daemon and from_daemon else {})}
    try:
        zone = ZoneInfo(str(shown["timezone"]))
        cron = cron_trigger(str(shown["trigger"]), zone)
    except (ValueError, KeyError, ZoneInfoNotFoundError):  # a record we cannot read
        shown, from_daemon = effective, False
        zone = settings.schedule.zone
        cron = cron_trigger(settings.schedule.trigger, zone)
    next_fire: datetime | None = cron.get_next_fire_time(None, now.astimezone(zone))
    return ScheduleView(
        id=str(shown["id"]),
        name=str(shown["name"]),
        trigger=str(shown["trigger"]),
        timezone=str(shown["timezone"]),
        enabled=bool(shown["enabled"]),
        mode=str(shown["mode"]),
        source=str(shown["source"]),
        fallback_source=str(shown["fallback_source"]),
        primary_sources=tuple(str(name) for name in shown["primary_sources"]),
        next_fire=next_fire,
        from_daemon=from_daemon,
        configured_trigger=settings.schedule.trigger,
    )


def _findings(store: Store, *, check: str, repo: str) -> tuple[list[RepoFindings], bool]:
    """Repos with open findings, the newest assessed first; whether the read was cut."""
    rows = store.open_findings(check=check or None, repo=repo or None, limit=FINDINGS_READ + 1)
    truncated = len(rows) > FINDINGS_READ
    grouped: dict[str, RepoFindings] = {}
    for name, assessed_at, check_id, message, path, new in rows[:FINDINGS_READ]:
        entry = grouped.setdefault(
            name, RepoFindings(repo=name, assessed_at=assessed_at, checks={})
        )
        entry.checks.setdefault(check_id, []).append({"message": message, "path": path, "new": new})
    return list(grouped.values()), truncated


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


__all__ = [
    "HEARTBEAT_ALIVE_SECONDS",
    "RUNS_SHOWN",
    "ProcessState",
    "RunView",
    "SourceLast",
    "StatusModel",
    "build_status",
    "process_states",
    "read_status",
]
