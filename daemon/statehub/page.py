"""The status page: HTML rendered on the server with Jinja2, for a person with a browser.

``statehub serve`` answers ``GET /`` and ``GET /status`` with one page (the schedule, the
slot strip by source, the open findings, the last runs of the schedule), ``/status.json``
with its model as JSON (the document of ``statehub status --json``), ``/status/repos/{name}``
with one repo's standing assessment and history, and ``/status/events`` with the events of
a slot. Nothing is fetched from outside: the CSS is inline, there is no script and no
image, and a ``Content-Security-Policy`` forbids the browser to load anything else. The
page refreshes itself every :data:`REFRESH_SECONDS` (``<meta http-equiv="refresh">``).

The figures are those of ``statehub status`` (:mod:`statehub.statusmodel`, one model for
both) and ``statehub compare`` (:mod:`statehub.compare`): slots are the fire times of the
schedule's trigger, a slot is covered by a completed whole-fleet sweep started in it,
missed without one, doubled with sweeps of two sources. The page's queries are bounded by
the window shown (24 hours, or 7 days) or by a row limit, so the page costs the same on a
store of a million events; its last event per source is the window's.

**Access.** The page is behind the same rules as the API: the loopback ``Host`` check,
and with ``[api] token_file`` the token. A browser cannot send a bearer header, so
:class:`PageLogin` serves ``/login``: a form that takes the token once and sets a cookie
(``HttpOnly``, ``SameSite=Strict``) holding a random session id (:mod:`statehub.webauth`),
never the token. The cookie is honoured for ``GET`` and ``HEAD`` only, so it can read
pages and the API's reads but never start a sweep.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import math
import threading
import urllib.parse
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from statehub.compare import (
    WHOLE_FLEET_EVENT,
    SweepRow,
    is_doubled,
    slot_bounds,
    utc_z,
)
from statehub.contract import NOT_SCHEDULERS, Detail
from statehub.cron import cron_trigger
from statehub.hubsview import fleet_section
from statehub.settings import CHECK_IDS, Settings
from statehub.statusmodel import RepoFindings, RunView, build_status
from statehub.store import Store
from statehub.sweepsummary import counted
from statehub.timefmt import iso, parse_iso, utc_now
from statehub.webauth import Session, Sessions, Throttle, client_of, cookie_values, is_https

REFRESH_SECONDS = 60
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_CELLS = 2016
"""At most this many slots in a strip (7 days of 5-minute slots); the newest are kept."""
TITLE_EVENTS = 4
"""Events named in a cell's title; the rest are counted (the link lists them all)."""
REPOS_SHOWN = 200
"""Repos with findings listed before "N more: narrow the filter"."""
HISTORY_SCAN = 200
"""A repo's history looks at this many of the newest sweeps that ran."""
EVENTS_SHOWN = 200
ERRORS_SHOWN = 20
"""Automation errors of one event the events page names (it counts the rest)."""
COOKIE = "statehub_page"
LOGIN_MAX_BODY = 4096
PAGE_PREFIXES = ("/status",)

SECURITY_HEADERS = {
    # Nothing but this page's own inline CSS; no script, no frame, no foreign form target.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# Cell classes of the strip, in the legend's order, with their label.
CELL_LABELS = {
    "clean": "swept clean",
    "failures": "swept, assessment failures",
    "error": "automation error",
    "skipped": "lock-skipped",
    "missed": "missed",
    "doubled": "doubled",
    "before": "before the store existed",
    "running": "this slot, still running",
}
_WORST_FIRST = ("error", "failures", "clean", "skipped")


_environment = Environment(
    loader=PackageLoader("statehub", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# The CSRF token of the session a page is rendered for (set by PageLogin around the
# request; empty without a token file): the page's logout form sends it back.
_csrf: contextvars.ContextVar[str] = contextvars.ContextVar("statehub_page_csrf", default="")
_environment.globals["csrf_token"] = _csrf.get


def render(template: str, **context: Any) -> str:
    """One template of ``statehub/templates`` rendered with autoescape on."""
    return _environment.get_template(template).render(**context)


# -- small formatting helpers ---------------------------------------------------------


def hm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def day_hm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def age(moment: datetime | None, now: datetime) -> str:
    """``3 min ago``, ``2 h ago``, ``4 d ago``, ``in 12 min``; ``never`` for None."""
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 90 * 60:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 48 * 3600:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} d"
    return f"in {text}" if ahead else f"{text} ago"


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def row_state(row: SweepRow) -> str:
    """The cell class of one event: ``error``, ``failures``, ``clean`` or ``skipped`` (also a
    sweep the operator stopped: it did not run to its end, and is no error)."""
    if row.lock_skipped or row.cancelled:
        return "skipped"
    if row.automation_error or row.interrupted:
        return "error"
    return "failures" if row.assessment_failures else "clean"


def describe_row(row: SweepRow) -> str:
    """One line of a cell's title: ``activity-core 10:15:03 swept, 3 failing repos, 4.2 s``."""
    what = {
        "skipped": "cancelled by the operator" if row.cancelled else "lock-skipped",
        "error": "interrupted" if row.interrupted else "automation error",
        "failures": f"swept, {row.assessment_failures} repo(s) failing",
        "clean": "swept clean",
    }[row_state(row)]
    scope = "" if row.event_type == WHOLE_FLEET_EVENT else " (chosen repos)"
    duration = "" if row.duration_seconds is None else f", {row.duration_seconds:.1f} s"
    at = row.started_at.astimezone(UTC)
    return f"{row.source} {at.hour:02d}:{at.minute:02d}:{at.second:02d}: {what}{scope}{duration}"


# -- the slot strip -------------------------------------------------------------------


@dataclass(kw_only=True)
class Cell:
    state: str  # a key of CELL_LABELS, or "none" (this source did nothing in the slot)
    title: str
    href: str | None
    doubled: bool = False


@dataclass(kw_only=True)
class StripRow:
    label: str
    cells: list[Cell]
    summary: bool = False


@dataclass(kw_only=True)
class Strip:
    window: str
    since: datetime
    until: datetime
    starts: list[datetime]
    rows: list[StripRow]
    ticks: list[tuple[int, str]]  # (column, label): where a time label starts
    counts: dict[str, int] = field(default_factory=dict)


def _events_href(start: str, end: str, source: str | None = None) -> str:
    """The link to the events of a slot; ``start``/``end`` as :func:`utc_z` gives them."""
    href = f"/status/events?since={start}&until={end}"
    return href if source is None else f"{href}&source={urllib.parse.quote(source, safe='')}"


def build_strip(
    settings: Settings,
    rows: Sequence[SweepRow],
    *,
    now: datetime,
    window: str,
    store_created: datetime | None,
    sources: Sequence[str],
) -> Strip:
    """The slots of the window (the running one last) and what each source did in each.

    The first row sums all sources (covered, missed, doubled, before the store existed);
    then one row per source, coloured by its worst event in the slot.
    """
    schedule = settings.schedule
    since = now - WINDOWS[window]
    bounds = _slot_bounds(schedule.trigger, schedule.timezone, since, now)
    cron = cron_trigger(schedule.trigger, schedule.zone)
    # Strictly after now: at a fire time exactly, the running slot is the one it opens
    # (not an empty slot from now to now).
    after = (now + timedelta(microseconds=1)).astimezone(schedule.zone)
    upcoming: datetime | None = cron.get_next_fire_time(None, after)
    if bounds and upcoming is not None:
        bounds.append(upcoming.astimezone(UTC))  # the running slot ends at the next fire
    bounds = bounds[-(MAX_CELLS + 1) :]
    starts = bounds[:-1]
    by_slot: list[list[SweepRow]] = [[] for _ in starts]
    for row in rows:
        index = bisect_right(bounds, row.started_at) - 1
        if 0 <= index < len(starts):
            by_slot[index].append(row)
    summary: list[Cell] = []
    per_source: dict[str, list[Cell]] = {name: [] for name in sources}
    counts = dict.fromkeys(CELL_LABELS, 0)
    for index, start in enumerate(starts):
        end = bounds[index + 1]
        running = end > now
        events = by_slot[index]
        covering = {
            row.source for row in events if row.event_type == WHOLE_FLEET_EVENT and row.completed
        }
        span = f"{day_hm(start)} to {hm(end)} UTC"
        start_z, end_z = utc_z(start), utc_z(end)
        if store_created is not None and end <= store_created and not covering:
            state = "before"  # as compare counts "no data": a sweep in it still covers it
        elif is_doubled(covering):
            state = "doubled"
        elif covering:
            worst = [
                row_state(row)
                for row in events
                if row.event_type == WHOLE_FLEET_EVENT and row.completed
            ]
            state = next(kind for kind in _WORST_FIRST if kind in worst)
        elif running:
            state = "running"
        else:
            state = "missed"
        counts[state] += 1
        lines = [f"{span}: {CELL_LABELS[state]}", *_described(events)]
        summary.append(
            Cell(
                state=state,
                title="\n".join(lines),
                href=_events_href(start_z, end_z) if events else None,
                doubled=state == "doubled",
            )
        )
        for name, cells in per_source.items():
            mine = [row for row in events if row.source == name]
            if not mine:
                cells.append(Cell(state="none", title=f"{span}: no sweep from {name}", href=None))
                continue
            worst = [row_state(row) for row in mine]
            own = next(kind for kind in _WORST_FIRST if kind in worst)
            cells.append(
                Cell(
                    state=own,
                    title="\n".join([f"{span}: {CELL_LABELS[own]}", *_described(mine)]),
                    href=_events_href(start_z, end_z, name),
                    doubled=state == "doubled" and name in covering - NOT_SCHEDULERS,
                )
            )
    strip_rows = [StripRow(label="all sources", cells=summary, summary=True)]
    strip_rows += [StripRow(label=name, cells=cells) for name, cells in per_source.items()]
    return Strip(
        window=window,
        since=since,
        until=now,
        starts=starts,
        rows=strip_rows,
        ticks=_ticks(starts, window),
        counts=counts,
    )


_bounds_cache: dict[tuple[str, str], list[datetime]] = {}
_bounds_lock = threading.Lock()


def _slot_bounds(trigger: str, timezone: str, since: datetime, until: datetime) -> list[datetime]:
    """:func:`statehub.compare.slot_bounds`, with the fire times kept between requests."""
    key = (trigger, timezone)
    with _bounds_lock:
        known = _bounds_cache.get(key)
        if not known or known[0] > since or known[-1] < since:
            known = slot_bounds(trigger, ZoneInfo(timezone), since, until)
        elif known[-1] < until:
            known = known + slot_bounds(trigger, ZoneInfo(timezone), known[-1], until)[1:]
        # keep at most 8 days of fire times before `since`'s day
        keep = bisect_left(known, since - timedelta(days=8))
        known = known[keep:]
        _bounds_cache[key] = known
    return known[bisect_left(known, since) : bisect_right(known, until)]


def _described(rows: Sequence[SweepRow]) -> list[str]:
    """The title lines of a cell's events: the first :data:`TITLE_EVENTS`, then a count."""
    lines = [describe_row(row) for row in rows[:TITLE_EVENTS]]
    if len(rows) > TITLE_EVENTS:
        lines.append(f"and {len(rows) - TITLE_EVENTS} more event(s): click for the list")
    return lines


def _ticks(starts: Sequence[datetime], window: str) -> list[tuple[int, str]]:
    """Column numbers (1-based, within the cells) where an hour or day label goes."""
    ticks: list[tuple[int, str]] = []
    for column, start in enumerate(starts, start=1):
        moment = start.astimezone(UTC)
        if moment.minute != 0:
            continue
        if window == "24h" and moment.hour % 3 == 0:
            ticks.append((column, moment.strftime("%H:%M")))
        elif window == "7d" and moment.hour == 0:
            ticks.append((column, moment.strftime("%a %d")))
    return ticks


# -- the window's events, kept up to date --------------------------------------------


class WindowRows:
    """The sweep rows of the widest window asked for, extended by event id at each call.

    Events are only ever appended (retention deletes the oldest, far outside any window),
    so after the first read a request reads only the events recorded since the last one:
    the page costs the same on a store of a million events as on a small one. A database
    file replaced since (another inode, or ids that went back) is read afresh. Safe to
    share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._span = timedelta(0)
        self._last_id = 0
        self._last_at: str | None = None  # created_at of the event _last_id
        self._rows: list[SweepRow] = []  # by created_at
        self._keys: list[str] = []  # their created_at, for bisect
        self._newest: dict[str, SweepRow] = {}  # the newest row of each source

    def rows(self, store: Store, *, since: datetime, now: datetime) -> list[SweepRow]:
        """The rows of events created at or after ``since`` (oldest first)."""
        identity = _file_identity(store.path)
        span = now - since
        with self._lock:
            if (
                identity != self._identity
                or span > self._span
                # Another file on a reused inode: the last event read is not there.
                or (self._last_id and store.event_created_at(self._last_id) != self._last_at)
            ):
                self._identity, self._span, self._last_id = identity, span, 0
                self._rows, self._keys, self._newest = [], [], {}
                fresh = store.window_rows(since=since)
            else:
                fresh = store.window_rows(since=now - self._span, after_id=self._last_id)
            for raw in fresh:
                if int(raw[0]) > self._last_id:
                    self._last_id, self._last_at = int(raw[0]), str(raw[1])
                row = SweepRow.from_row(raw[1:])
                newest = self._newest.get(row.source)
                if newest is None or newest.created_at <= row.created_at:
                    self._newest[row.source] = row
                if self._keys and row.created_at < self._keys[-1]:  # a clock stepped back
                    at = bisect_right(self._keys, row.created_at)
                    self._keys.insert(at, row.created_at)
                    self._rows.insert(at, row)
                else:
                    self._keys.append(row.created_at)
                    self._rows.append(row)
            stale = bisect_left(self._keys, iso(now - self._span))
            if stale:
                del self._keys[:stale], self._rows[:stale]
            return self._rows[bisect_left(self._keys, iso(since)) :]

    def newest(self, *, since: datetime) -> dict[str, SweepRow]:
        """The newest row of each source created at or after ``since`` (of the last call)."""
        floor = iso(since)
        with self._lock:
            return {
                name: row for name, row in sorted(self._newest.items()) if row.created_at >= floor
            }


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


# -- the whole page -------------------------------------------------------------------


def status_view(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    window: str = "24h",
    check: str = "",
    repo: str = "",
    window_rows: WindowRows | None = None,
) -> dict[str, Any]:
    """Everything ``status.html`` shows: the status model (:mod:`statehub.statusmodel`)
    with the slot strip of the window, and times as ages; bounded by the window.

    ``window_rows`` keeps the window's events between calls (a new one reads them all).
    """
    moment = now or utc_now()
    since = moment - WINDOWS[window]
    # A sweep is recorded when it ends, after it started: the sweeps that started in the
    # window's slots are among the events recorded since the window began.
    cache = window_rows or WindowRows()
    rows = cache.rows(store, since=since, now=moment)
    newest = cache.newest(since=since)
    model = build_status(
        settings,
        store,
        now=moment,
        newest=newest,
        since=since,
        check=check,
        repo=repo,
        count_events=False,
    )
    created = _moment(model.database.first_record_at)  # the rule of compare (issue 15)
    strip = build_strip(
        settings, rows, now=moment, window=window, store_created=created, sources=list(newest)
    )
    schedule = model.schedule
    next_fire = schedule.next_fire
    last = model.runs[0] if model.runs else None
    last_fire = _moment(last.fired_at) if last is not None else None
    return {
        "now": moment,
        "now_text": day_hm(moment) + " UTC",
        "refresh": REFRESH_SECONDS,
        "window": window,
        "schedule": {
            **schedule.as_dict(),
            "next_fire": None if next_fire is None else day_hm(next_fire) + " UTC",
            "next_fire_age": age(next_fire, moment),
            "last_fire": None if last_fire is None else day_hm(last_fire) + " UTC",
            "last_fire_age": age(last_fire, moment),
            "last_fire_outcome": None if last is None else last.outcome,
        },
        "processes": [
            {**process.as_dict(), "age": age(process.at, moment)} for process in model.processes
        ],
        "last_sweeps": [
            {
                "source": item.source,
                "expected": item.expected,
                "at": None if item.row is None else item.row.created_at,
                "age": "none in the window"
                if item.row is None
                else age(_moment(item.row.created_at), moment),
                "state": None if item.row is None else row_state(item.row),
                "label": None if item.row is None else describe_row(item.row),
            }
            for item in model.last_sweeps
        ],
        "strip": strip,
        "labels": CELL_LABELS,
        "findings": [_repo_findings(entry) for entry in model.findings[:REPOS_SHOWN]],
        "findings_more": max(0, len(model.findings) - REPOS_SHOWN),
        "findings_total": len(model.findings),
        "findings_new": model.repos_with_new,
        "check_counts": sorted(model.check_counts.items()),
        "check_ids": CHECK_IDS,
        "filter": {"check": check, "repo": repo},
        "runs": [_run_view(run, moment) for run in model.runs],
        "store_created": None if created is None else day_hm(created) + " UTC",
        "workplans": workplans_view(store, moment),
    }


PLANS_SHOWN = 50
REPO_PLANS_SHOWN = 500
PLAN_CHANGES_SHOWN = 20
PLAN_CHANGES_SPAN = timedelta(days=7)


def workplans_view(store: Store, now: datetime) -> dict[str, Any]:
    """The page's section of the workplan registry: counts by status (blocked first), the
    blocked plans, and the changes of the last seven days (issue 26)."""
    counts = store.workplan_status_counts()
    ordered = sorted(counts.items(), key=lambda item: (item[0] != "blocked", -item[1], item[0]))
    blocked_total, blocked = store.workplans(statuses=["blocked"], limit=PLANS_SHOWN)
    changes = store.workplan_changes(since=iso(now - PLAN_CHANGES_SPAN), limit=PLAN_CHANGES_SHOWN)
    for change in changes:
        change["age"] = age(_moment(change["seen_at"]), now)
    return {
        "total": sum(counts.values()),
        "counts": [{"status": status or "(none)", "count": n} for status, n in ordered],
        "blocked": blocked,
        "blocked_more": max(0, blocked_total - len(blocked)),
        "changes": changes,
    }


def _repo_findings(entry: RepoFindings) -> dict[str, Any]:
    return {
        "repo": entry.repo,
        "new": entry.new,
        "assessed": day_hm(parse_iso(entry.assessed_at)) + " UTC",
        "checks": [
            {"check": check, "new": any(item["new"] for item in items), "items": items}
            for check, items in entry.checks.items()
        ],
    }


def _run_view(run: RunView, now: datetime) -> dict[str, Any]:
    fired = parse_iso(run.fired_at)
    return {
        "fired_day": fired.astimezone(UTC).strftime("%Y-%m-%d"),
        "fired_hm": hm(fired),
        "age": age(fired, now),
        "scheduled_for": hm(parse_iso(run.scheduled_for)),
        "outcome": run.outcome,
        "origin": run.origin,
        "failed": run.failed,
        "source": run.source,
        "duration": run.duration_seconds,
        "error": run.error,
        "sweep": "" if run.sweep is None else run.sweep.words(),
        "event_id": run.event_id,
    }


def repo_view(store: Store, name: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The standing assessment of one repo and what the newest sweeps said of it."""
    assessment = store.assessment(name)
    if assessment is None:
        return None
    moment = now or utc_now()
    history = []
    for event_id, created_at, event_type, source, state, findings in store.repo_history(
        name, scan=HISTORY_SCAN
    ):
        if state is None:
            continue
        checks = sorted({f.get("check", "?") for f in json.loads(findings or "[]")})
        history.append(
            {
                "id": event_id,
                "at": day_hm(parse_iso(created_at)) + " UTC",
                "age": age(_moment(created_at), moment),
                "source": source or "(none)",
                "scope": "all repos" if event_type == WHOLE_FLEET_EVENT else "chosen repos",
                "state": state,
                "checks": checks,
            }
        )
    return {
        "now_text": day_hm(moment) + " UTC",
        "refresh": REFRESH_SECONDS,
        "repo": assessment.as_dict(),
        "assessed": day_hm(parse_iso(assessment.assessed_at)) + " UTC",
        "assessed_age": age(_moment(assessment.assessed_at), moment),
        "history": history,
        "history_scan": HISTORY_SCAN,
        "plans": store.workplans(repo=name, limit=REPO_PLANS_SHOWN)[1],
    }


def events_view(
    store: Store, *, since: datetime, until: datetime, source: str | None
) -> dict[str, Any]:
    """The events created in ``[since, until + 1 h)`` that started in ``[since, until)``."""
    # An event is recorded when its sweep ends, so look a little past the slot. Read a few
    # at a time: each may be up to 1 MB (issue 25), and only the first shown are kept.
    events = store.iter_events(
        since=since, until=until + timedelta(hours=1), limit=EVENTS_SHOWN * 4, oldest_first=True
    )
    shown: list[dict[str, Any]] = []
    for event in events:
        if len(shown) == EVENTS_SHOWN:
            break
        detail = event.detail
        row = SweepRow.from_event(event)
        if not since <= row.started_at < until:
            continue
        if source is not None and detail.get(Detail.SOURCE) != source:
            continue
        shown.append(
            {
                "id": event.id,
                "created_at": event.created_at,
                "state": row_state(row),
                "label": describe_row(row),
                "errors": _error_lines(detail),
                "json": json.dumps(event.as_dict(), indent=2, ensure_ascii=False)[:20000],
            }
        )
    return {
        "since": day_hm(since) + " UTC",
        "until": day_hm(until) + " UTC",
        "source": source,
        "events": shown,
        "labels": CELL_LABELS,
        "refresh": REFRESH_SECONDS,
        "now_text": day_hm(utc_now()) + " UTC",
    }


def _error_lines(detail: dict[str, Any]) -> list[str]:
    """An event's first automation errors, one a line, and how many more it had."""
    listed = [item for item in detail.get(Detail.AUTOMATION_ERRORS) or [] if isinstance(item, dict)]
    lines = [
        f"{item.get('repo') or '(sweep)'}: {item.get('message')}" for item in listed[:ERRORS_SHOWN]
    ]
    more = counted(detail, Detail.AUTOMATION_ERRORS_TOTAL, Detail.AUTOMATION_ERRORS) - len(lines)
    if more > 0:
        lines.append(f"and {more} more automation error(s): statehub findings --check C-00")
    return lines


# -- routes ---------------------------------------------------------------------------


def _html(text: str, status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        text, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _instant(value: str, name: str) -> datetime:
    """``value`` as a UTC time between 1970 and 9000 (far dates overflow the arithmetic of
    the views: 422, not 500)."""
    try:
        moment = parse_iso(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise HTTPException(422, detail=f"{name}: {value!r} is not an ISO-8601 time") from None
    if not _EARLIEST <= moment < _LATEST:
        raise HTTPException(422, detail=f"{name}: {value!r} is not between 1970 and 9000")
    return moment


def add_page_routes(app: FastAPI, settings: Callable[[], Settings], pool: Any) -> None:
    """``/``, ``/status``, ``/status/repos/{name}`` and ``/status/events`` on ``app``.

    ``settings`` gives the configuration of the moment (reloaded on SIGHUP); ``pool`` is
    the API's :class:`statehub.api.StorePool`.
    """
    window_rows = WindowRows()

    def status_page(
        window: Annotated[Literal["24h", "7d"], Query(description="strip span")] = "24h",
        check: Annotated[str, Query(max_length=8, description="only this check id")] = "",
        repo: Annotated[str, Query(max_length=200, description="repo name contains")] = "",
    ) -> HTMLResponse:
        """The status page: schedule, slot strip, open findings, last runs (HTML)."""
        if check and check not in CHECK_IDS:
            raise HTTPException(422, detail=f"check: {check!r} is not a check id (C-00..C-23)")
        current = settings()
        with pool.store() as db:
            view = status_view(
                current,
                db,
                window=window,
                check=check,
                repo=repo.strip(),
                window_rows=window_rows,
            )
        # The hub's name, and every hub's schedule when [temporal] is configured.
        view.update(hub=current.hub_name, fleet=fleet_section(current))
        return _html(render("status.html", **view))

    for path in ("/", "/status"):
        app.add_api_route(
            path,
            status_page,
            methods=["GET"],
            response_class=HTMLResponse,
            summary="The status page (HTML)",
            include_in_schema=False,  # /openapi.json describes the JSON API only
        )

    @app.get("/status.json", include_in_schema=False)
    def status_json(
        check: Annotated[str, Query(max_length=8, description="only this check id")] = "",
        repo: Annotated[str, Query(max_length=200, description="repo name contains")] = "",
    ) -> JSONResponse:
        """The page's model as JSON: the document of ``statehub status --json``."""
        if check and check not in CHECK_IDS:
            raise HTTPException(422, detail=f"check: {check!r} is not a check id (C-00..C-23)")
        with pool.store() as db:
            model = build_status(settings(), db, now=utc_now(), check=check, repo=repo.strip())
        return JSONResponse(model.as_dict(), headers={"Cache-Control": "no-store"})

    @app.get("/status/repos/{name}", response_class=HTMLResponse, include_in_schema=False)
    def repo_page(name: str) -> HTMLResponse:
        """One repo's standing assessment and what the newest sweeps said of it (HTML)."""
        with pool.store() as db:
            view = repo_view(db, name)
        if view is None:
            return _html(
                render(
                    "missing.html",
                    name=name,
                    refresh=REFRESH_SECONDS,
                    now_text=day_hm(utc_now()) + " UTC",
                ),
                status_code=404,
            )
        return _html(render("repo.html", **view))

    @app.get("/status/events", response_class=HTMLResponse, include_in_schema=False)
    def events_page(
        since: Annotated[str, Query(max_length=40, description="slot start, ISO-8601")],
        until: Annotated[str, Query(max_length=40, description="slot end, ISO-8601")],
        source: Annotated[str | None, Query(max_length=64, description="only this source")] = None,
    ) -> HTMLResponse:
        """The events that started in ``[since, until)`` (HTML)."""
        start, end = _instant(since, "since"), _instant(until, "until")
        if end <= start or end - start > timedelta(days=1):
            raise HTTPException(422, detail="until must be after since, at most a day later")
        with pool.store() as db:
            view = events_view(db, since=start, until=end, source=source)
        return _html(render("events.html", **view))


# -- the login for browsers -----------------------------------------------------------


class PageLogin:
    """``/login`` and ``/logout``, and the session cookie turned into the bearer token.

    Inside the Host check and outside the bearer check, and at work only while a token is
    configured (``token()`` not None; a reload may add one): a ``GET``/``HEAD`` that
    carries no ``Authorization`` but the cookie of a live session
    (:class:`statehub.webauth.Sessions`) is passed on with the token's header; a page
    requested with neither is sent to ``/login``. The cookie is a random session id, not
    derived from the token; ``POST /logout`` with the session's CSRF token ends it. Wrong
    logins count against the client (:class:`statehub.webauth.Throttle`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Callable[[], str | None],
        throttle: Throttle,
        trusted: Callable[[], list[str]],
        sessions: Sessions,
    ) -> None:
        self.app = app
        self._current = token  # read at each request: a reload may add or replace it
        self._throttle = throttle
        self._trusted = trusted
        self._sessions = sessions

    @property
    def _token(self) -> str:
        return self._current() or ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._current() is None:
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/login":
            response = await self._login(scope, receive, method)
            await response(scope, receive, send)
            return
        if path == "/logout":
            response = await self._logout(scope, receive, method)
            await response(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if method in ("GET", "HEAD") and "authorization" not in headers:
            found = self._session(headers)
            if found is not None:
                raw = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
                raw.append((b"authorization", f"Bearer {self._token}".encode("latin-1")))
                scope = {**scope, "headers": raw}
                token = _csrf.set(found[1].csrf)  # the page's logout form sends it back
                try:
                    await self.app(scope, receive, send)
                finally:
                    _csrf.reset(token)
                return
            if path == "/" or path.startswith(PAGE_PREFIXES):
                await RedirectResponse("/login", status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _session(self, headers: Headers) -> tuple[str, Session] | None:
        for sid in cookie_values(headers, COOKIE):
            session = self._sessions.find(sid, self._token)
            if session is not None:
                return sid, session
        return None

    async def _logout(self, scope: Scope, receive: Receive, method: str) -> Response:
        if method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        fields = await _form(receive)
        if fields is None:
            return Response("that is too long", status_code=413)
        found = self._session(Headers(scope=scope))
        given = (fields.get("csrf") or [""])[0]
        if found is not None:
            if not hmac.compare_digest(given.encode("utf-8"), found[1].csrf.encode("utf-8")):
                return Response("the form is not this session's", status_code=403)
            self._sessions.close(found[0])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def _login(self, scope: Scope, receive: Receive, method: str) -> Response:
        if method in ("GET", "HEAD"):
            return _html(render("login.html", error=None))
        if method != "POST":
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        fields = await _form(receive)
        if fields is None:
            return _html(render("login.html", error="that is too long"), status_code=413)
        trusted = self._trusted()
        client = client_of(scope, trusted)
        wait = self._throttle.wait(client)
        if wait:
            error = f"too many wrong tokens: try again in {math.ceil(wait)} s"
            return _html(
                render("login.html", error=error),
                status_code=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        given = (fields.get("token") or [""])[0].strip()
        if not hmac.compare_digest(given.encode("utf-8"), self._token.encode("utf-8")):
            self._throttle.failed(client, "login")
            return _html(render("login.html", error="that is not the token"), status_code=401)
        response = RedirectResponse("/status", status_code=303)
        response.set_cookie(
            COOKIE,
            self._sessions.open(self._token),
            httponly=True,
            samesite="strict",
            secure=is_https(scope, trusted),
            path="/",
            max_age=int(self._sessions.seconds),
        )
        return response


async def _form(receive: Receive) -> dict[str, list[str]] | None:
    """The urlencoded form of a request's body; None when longer than LOGIN_MAX_BODY."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = bool(message.get("more_body"))
        if len(body) > LOGIN_MAX_BODY:
            return None
    return urllib.parse.parse_qs(body.decode("utf-8", "replace"))
