"""The report over the recorded history: ``statehub compare`` (``statehub status`` is
:mod:`statehub.statusmodel`).

``compare`` sums the sweeps of a window by ``detail.source`` and measures how well the
schedule's slots were covered. Its definitions (issue 6):

- The window is ``[now - H hours, now]`` on ``created_at`` (when an event was recorded).
- A *completed* sweep is one that ran: neither lock-skipped nor ``interrupted`` (a sweep
  whose process died, recorded later by the next sweep). A sweep with automation errors
  (C-00) did run and is completed.
- Per source: ``sweeps`` (completed), ``lock_skipped``, ``automation_errors`` (events with
  ``automation_error: true``, interrupted ones included), ``interrupted``,
  ``assessment_failures_last`` (of the newest completed sweep, null without one),
  ``first_at``/``last_at`` (``created_at`` of its first and last event of any kind), and the
  mean and max ``duration_seconds`` of its completed sweeps (null without one).
- Slots are the fire times of ``schedule.trigger`` computed in ``schedule.timezone`` (so
  daylight saving time is the zone's; while a daemon is alive, of the schedule it runs),
  each running to the next fire time. A slot is *expected* when its start is inside the
  window and its end is at or before now: only completed slots count; one that began
  before the window or is still running is left out.
- A slot is *covered* by a completed whole-fleet sweep (``consistency_sweep_remote_all``) of
  any source whose ``started_at`` is in ``[start, end)``. A sweep of chosen repos
  (``consistency_sweep``) is counted for its source but covers no slot. A slot with none is
  *missed*.
- A slot that ended at or before the store's first record (its creation, or its oldest
  event if older) has *no data*: not missed, and not expected either (issue 15: a store
  minutes old is not 1,437 missed slots). The status page's strip draws the same slots as
  "before the store", and a sweep in such a slot still covers it.
- A slot is *doubled* when completed whole-fleet sweeps of two or more DIFFERENT scheduler
  sources started in it: the sign of two live schedulers. Two sweeps of one source are not
  doubled, and neither a manual sweep (``manual``) nor the canary (``canary``, ``schedule
  run-now --force``) doubles a slot (issue 20); they still cover it.
- ``retired_sources_seen``: the ``hub.retired_sources`` with any event in the window.
- ``trigger_errors`` (per source): runs of the schedule (``activity_runs``, ``fired_at`` in
  the window: the daemon's fires, and the scheduled sweeps of the API and the command
  line) that chose the source but failed before any sweep was recorded, as a
  ``trigger_via = "http"`` call to an API that is down or refuses. Each is also counted in
  the source's ``automation_errors`` and calls for attention (issue 14): not only a
  missed slot.

The exit status is 0 whatever the coverage: compare is a report, not a check; a monitor
reads ``--json``. Slot times in JSON are UTC with a ``Z``.
"""

from __future__ import annotations

import json
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.text import Text

from statehub.contract import EVENT_ALL, NOT_SCHEDULERS, Detail, SweepOutcome
from statehub.cron import cron_trigger
from statehub.daemonstate import daemon_schedule
from statehub.render import compact_table, or_dash, say, seconds, short_time
from statehub.safetext import visible
from statehub.settings import Settings
from statehub.store import ProgressEvent, Store
from statehub.timefmt import parse_iso, utc_now

WHOLE_FLEET_EVENT = EVENT_ALL  # contract section 5

COVERED = "covered"
MISSED = "missed"
DOUBLED = "doubled"
NO_DATA = "no data"
STRIP_MARKS = {
    COVERED: ("█", "green"),
    MISSED: ("·", "red"),
    DOUBLED: ("2", "yellow"),
    NO_DATA: (" ", "dim"),
}
ASCII_MARKS = {COVERED: "#", MISSED: ".", DOUBLED: "2", NO_DATA: " "}
LISTED_SLOTS = 12  # missed/doubled slot times printed before "and N more"


def utc_z(moment: datetime) -> str:
    """``2026-03-29T07:00:00Z``: a slot time, in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the rows read from the store -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    """The few fields of one progress event the reports need."""

    created_at: str
    event_type: str
    source: str
    lock_skipped: bool
    automation_error: bool
    interrupted: bool
    duration_seconds: float | None
    assessment_failures: int | None
    started_at: datetime
    cancelled: bool = False

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SweepRow:
        """From a row of :meth:`Store.sweep_rows`; a missing ``started_at`` means created_at."""
        created, event_type, source, lock, error, interrupted, duration, failures, started = row[:9]
        cancelled = row[9] if len(row) > 9 else None
        return cls(
            created_at=str(created),
            event_type=str(event_type),
            source="(none)" if source is None else str(source),
            lock_skipped=bool(lock),
            automation_error=bool(error),
            interrupted=bool(interrupted),
            duration_seconds=None if duration is None else float(duration),
            assessment_failures=None if failures is None else int(failures),
            started_at=_moment(started, created),
            cancelled=bool(cancelled),
        )

    @classmethod
    def from_event(cls, event: ProgressEvent) -> SweepRow:
        """From a whole event (its ``started_at``, or else ``created_at``)."""
        detail = event.detail
        duration = detail.get(Detail.DURATION_SECONDS)
        failures = detail.get(Detail.ASSESSMENT_FAILURES)
        return cls.from_row(
            (
                event.created_at,
                event.event_type,
                detail.get(Detail.SOURCE),
                detail.get(Detail.LOCK_SKIPPED),
                detail.get(Detail.AUTOMATION_ERROR),
                detail.get(Detail.INTERRUPTED),
                duration if isinstance(duration, int | float) else None,
                failures if isinstance(failures, int) else None,
                detail.get(Detail.STARTED_AT),
                detail.get(Detail.CANCELLED),
            )
        )

    @property
    def completed(self) -> bool:
        """Ran to its end: neither lock-skipped, interrupted nor stopped by the operator."""
        return not (self.lock_skipped or self.interrupted or self.cancelled)

    @property
    def outcome(self) -> str:
        """``lock_skipped``, ``interrupted``, ``cancelled``, ``automation_error`` or
        ``completed``."""
        if self.lock_skipped:
            return SweepOutcome.LOCK_SKIPPED
        if self.interrupted:
            return SweepOutcome.INTERRUPTED
        if self.cancelled:
            return SweepOutcome.CANCELLED
        if self.automation_error:
            return SweepOutcome.AUTOMATION_ERROR
        return SweepOutcome.COMPLETED


def _moment(started: object, created: object) -> datetime:
    if isinstance(started, str):
        try:
            return parse_iso(started)
        except ValueError:
            pass
    return parse_iso(str(created))


# -- compare --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SourceSummary:
    """The sweeps of one source in the window."""

    sweeps: int
    lock_skipped: int
    automation_errors: int
    interrupted: int
    assessment_failures_last: int | None
    first_at: str
    last_at: str
    mean_duration_seconds: float | None
    max_duration_seconds: float | None
    trigger_errors: int = 0
    cancelled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sweeps": self.sweeps,
            "lock_skipped": self.lock_skipped,
            "automation_errors": self.automation_errors,
            "trigger_errors": self.trigger_errors,
            "interrupted": self.interrupted,
            "cancelled": self.cancelled,
            "assessment_failures_last": self.assessment_failures_last,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "mean_duration_seconds": self.mean_duration_seconds,
            "max_duration_seconds": self.max_duration_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class SlotCoverage:
    """The expected slots (their starts, UTC) and what each one got."""

    starts: tuple[datetime, ...]
    states: tuple[str, ...]

    @property
    def expected(self) -> int:
        return sum(state != NO_DATA for state in self.states)

    @property
    def covered(self) -> int:
        return sum(state in (COVERED, DOUBLED) for state in self.states)

    @property
    def no_data(self) -> int:
        """Slots that ended before the store existed: neither expected nor missed."""
        return sum(state == NO_DATA for state in self.states)

    @property
    def missed(self) -> list[datetime]:
        return [
            start for start, state in zip(self.starts, self.states, strict=True) if state == MISSED
        ]

    @property
    def doubled(self) -> list[datetime]:
        return [
            start for start, state in zip(self.starts, self.states, strict=True) if state == DOUBLED
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "covered": self.covered,
            "missed": [utc_z(start) for start in self.missed],
            "doubled": [utc_z(start) for start in self.doubled],
            "no_data": self.no_data,  # issue 15
        }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The answer of ``statehub compare``."""

    since_hours: float
    since: datetime
    until: datetime
    trigger: str
    timezone: str
    sources: dict[str, SourceSummary]
    slots: SlotCoverage
    retired_sources_seen: list[str]
    database: Path
    database_found: bool

    @property
    def failed_triggers(self) -> int:
        return sum(summary.trigger_errors for summary in self.sources.values())

    @property
    def attention(self) -> bool:
        return bool(
            self.slots.missed
            or self.slots.doubled
            or self.retired_sources_seen
            or self.failed_triggers
        )

    def verdict(self) -> str:
        """One line: ``OK: 96/96 slots covered, no doubled slots`` or ``ATTENTION: ...``."""
        coverage = f"{self.slots.covered}/{self.slots.expected} slots covered"
        if self.slots.no_data:
            coverage += f"; {self.slots.no_data} before the store's first record: no data"
        if not self.attention:
            return f"OK: {coverage}, no doubled slots"
        parts = []
        if self.slots.missed:
            parts.append(f"{len(self.slots.missed)} missed")
        if self.slots.doubled:
            parts.append(f"{len(self.slots.doubled)} doubled")
        if self.retired_sources_seen:
            noun = "source" if len(self.retired_sources_seen) == 1 else "sources"
            parts.append(f"retired {noun} {', '.join(self.retired_sources_seen)} seen")
        if self.failed_triggers:
            failing = ", ".join(name for name, s in self.sources.items() if s.trigger_errors)
            parts.append(f"{self.failed_triggers} trigger(s) failed before sweeping ({failing})")
        return f"ATTENTION: {', '.join(parts)} ({coverage})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "since_hours": self.since_hours,
            "window": {"since": utc_z(self.since), "until": utc_z(self.until)},
            "schedule": {"trigger": self.trigger, "timezone": self.timezone},
            "sources": {name: summary.as_dict() for name, summary in self.sources.items()},
            "slots": self.slots.as_dict(),
            "retired_sources_seen": self.retired_sources_seen,
            "verdict": self.verdict(),
        }


def slot_bounds(trigger: str, zone: ZoneInfo, since: datetime, until: datetime) -> list[datetime]:
    """The fire times ``f0 < ... < fn`` of a cron in ``zone`` with ``since <= f0``, ``fn <= until``.

    Slot ``i`` is ``[f_i, f_i+1)``: n complete slots. Returned in UTC.
    """
    cron = cron_trigger(trigger, zone)
    bounds: list[datetime] = []
    fire: datetime | None = cron.get_next_fire_time(None, since.astimezone(zone))
    while fire is not None and fire <= until:
        bounds.append(fire.astimezone(UTC))
        fire = cron.get_next_fire_time(fire, fire)
    return bounds


def is_doubled(sources: set[str]) -> bool:
    """True when the sources that swept one slot are two or more schedulers: the sign of two
    live schedulers (``manual`` and ``canary`` are not schedulers: :data:`NOT_SCHEDULERS`)."""
    return len(sources - NOT_SCHEDULERS) > 1


def slot_coverage(
    bounds: Sequence[datetime],
    rows: Sequence[SweepRow],
    store_created: datetime | None = None,
) -> SlotCoverage:
    """Which slots got a completed whole-fleet sweep, and from how many sources.

    A slot ending at or before ``store_created`` without a sweep has no data (the rule of
    the status page's strip, page.build_strip).
    """
    starts = tuple(bounds[:-1])
    sources_in: list[set[str]] = [set() for _ in starts]
    for row in rows:
        if row.event_type != WHOLE_FLEET_EVENT or not row.completed:
            continue
        index = bisect_right(bounds, row.started_at) - 1
        if 0 <= index < len(starts):
            sources_in[index].add(row.source)

    def state(index: int, seen: set[str]) -> str:
        if is_doubled(seen):
            return DOUBLED
        if seen:
            return COVERED
        if store_created is not None and bounds[index + 1] <= store_created:
            return NO_DATA
        return MISSED

    states = tuple(state(index, seen) for index, seen in enumerate(sources_in))
    return SlotCoverage(starts=starts, states=states)


def summarize_sources(
    rows: Sequence[SweepRow], failed_triggers: Sequence[tuple[Any, ...]] = ()
) -> dict[str, SourceSummary]:
    """Per source, in name order; ``rows`` oldest first; ``failed_triggers`` as
    :meth:`statehub.store.Store.failed_triggers` gives them."""
    by_source: dict[str, list[SweepRow]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row)
    failed: dict[str, list[str]] = {}
    for fired_at, source, _error in failed_triggers:
        failed.setdefault(str(source), []).append(str(fired_at))
    summaries: dict[str, SourceSummary] = {}
    for name in sorted(by_source.keys() | failed.keys()):
        events = by_source.get(name, [])
        fails = failed.get(name, [])
        done = [row for row in events if row.completed]
        durations = [row.duration_seconds for row in done if row.duration_seconds is not None]
        moments = sorted([row.created_at for row in events] + fails)
        summaries[name] = SourceSummary(
            sweeps=len(done),
            lock_skipped=sum(row.lock_skipped for row in events),
            automation_errors=sum(row.automation_error for row in events) + len(fails),
            interrupted=sum(row.interrupted for row in events),
            assessment_failures_last=done[-1].assessment_failures if done else None,
            first_at=moments[0],
            last_at=moments[-1],
            mean_duration_seconds=round(sum(durations) / len(durations), 3) if durations else None,
            max_duration_seconds=max(durations) if durations else None,
            trigger_errors=len(fails),
            cancelled=sum(row.cancelled for row in events),
        )
    return summaries


def compare(settings: Settings, *, since_hours: float, now: datetime | None = None) -> Comparison:
    """Sum the window's sweeps by source and check the schedule's slots (see the module doc).

    ``now`` defaults to the clock (tests pass their own). A missing database reads as no
    events. Raises StoreError when the database cannot be read.
    """
    until = now or utc_now()
    since = until - timedelta(hours=since_hours)
    path = settings.database_path
    rows: list[SweepRow] = []
    failed: list[tuple[Any, ...]] = []
    found = path.exists()
    created: datetime | None = None
    if found:
        with Store.open(path, create=False) as store:
            rows = [SweepRow.from_row(row) for row in store.sweep_rows(since=since, until=until)]
            created_at = store.first_record_at()
            created = parse_iso(created_at) if created_at else None
            failed = store.failed_triggers(since=since, until=until)
    # The slots of the schedule the daemon really runs while one is alive (its environment
    # overrides included), else of this configuration (statehub.daemonstate).
    schedule, _daemon = daemon_schedule(settings)
    trigger, timezone = str(schedule["trigger"]), str(schedule["timezone"])
    bounds = slot_bounds(trigger, ZoneInfo(timezone), since, until)
    seen = {row.source for row in rows}
    return Comparison(
        since_hours=since_hours,
        since=since,
        until=until,
        trigger=trigger,
        timezone=timezone,
        sources=summarize_sources(rows, failed),
        slots=slot_coverage(bounds, rows, created),
        retired_sources_seen=[name for name in settings.hub.retired_sources if name in seen],
        database=path,
        database_found=found,
    )


def compare_command(
    settings: Settings,
    *,
    since_hours: float,
    as_json: bool,
    now: datetime | None = None,
    console: Console | None = None,
) -> int:
    """``statehub compare``: print the comparison; always 0 (it is a report)."""
    report = compare(settings, since_hours=since_hours, now=now)
    if as_json:
        _print_json(report.as_dict())
    else:
        render_comparison(console or _console(), report)
    return 0


def render_comparison(out: Console, report: Comparison) -> None:
    """The table by source, the slot summary, on a terminal the slot strip, the verdict."""
    if not report.database_found:
        say(out, f"no database yet at {report.database} (no sweep recorded)")
    window = f"{utc_z(report.since)} .. {utc_z(report.until)} ({report.since_hours:g} h)"
    if report.sources:
        table = compact_table(
            title=f"sweeps by source, {window}",
            title_justify="left",
            caption="skipped: lock-skipped; C-00: with automation errors, failed triggers "
            "included; failures: repos failing after the last sweep",
            caption_justify="left",
        )
        table.add_column("source", overflow="fold")
        for column in ("sweeps", "skipped", "C-00", "failures", "mean s", "max s"):
            table.add_column(column, justify="right", overflow="fold", min_width=len(column))
        table.add_column("first", overflow="fold")
        table.add_column("last", overflow="fold")
        for name, summary in report.sources.items():
            retired = name in report.retired_sources_seen
            table.add_row(
                Text(visible(name), style="yellow" if retired else ""),
                str(summary.sweeps),
                str(summary.lock_skipped),
                Text(
                    str(summary.automation_errors), style="red" if summary.automation_errors else ""
                ),
                or_dash(summary.assessment_failures_last),
                seconds(summary.mean_duration_seconds),
                seconds(summary.max_duration_seconds),
                short_time(summary.first_at),
                short_time(summary.last_at),
            )
        out.print(table)
    else:
        say(out, f"no events in {window}")
    slots = report.slots
    say(
        out,
        f"slots of '{report.trigger}' ({report.timezone}): {slots.expected} expected, "
        f"{slots.covered} covered, {len(slots.missed)} missed, {len(slots.doubled)} doubled"
        + (f", {slots.no_data} before the store (no data)" if slots.no_data else ""),
    )
    _list_slots(out, "missed", slots.missed)
    _list_slots(out, "doubled", slots.doubled)
    if out.is_terminal and slots.expected:
        render_strip(out, slots)
    say(out, report.verdict(), style="bold yellow" if report.attention else "bold green")


def render_strip(out: Console, slots: SlotCoverage) -> None:
    """One character per slot, oldest first, wrapped at the console's width."""
    unicode = (out.encoding or "").lower().startswith("utf")
    marks = {
        state: (char if unicode else ASCII_MARKS[state], style)
        for state, (char, style) in STRIP_MARKS.items()
    }
    shown = (COVERED, MISSED, DOUBLED, *((NO_DATA,) if slots.no_data else ()))
    legend = "  ".join(f"{marks[state][0] or ' '} {state}" for state in shown)
    say(out, f"{utc_z(slots.starts[0])} onwards, one slot a character: {legend}")
    width = max(out.width, 8)
    for offset in range(0, len(slots.states), width):
        line = Text(no_wrap=True)
        for state in slots.states[offset : offset + width]:
            char, style = marks[state]
            line.append(char, style=style)
        out.print(line)


def _list_slots(out: Console, label: str, starts: Sequence[datetime]) -> None:
    if not starts:
        return
    shown = ", ".join(utc_z(start) for start in starts[:LISTED_SLOTS])
    more = f" and {len(starts) - LISTED_SLOTS} more" if len(starts) > LISTED_SLOTS else ""
    say(out, f"{label}: {shown}{more}")


# -- small helpers --------------------------------------------------------------------


def _console() -> Console:
    from statehub.render import output_console

    return output_console(soft_wrap=False)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
