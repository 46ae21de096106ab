"""The HTTP app, thin: validate, call, answer (section 7 of the contract).

:func:`create_app` builds the FastAPI app, :func:`serve` runs it with uvicorn on
``[api] host:port`` until SIGTERM or SIGINT (exit status 0; 1 when it cannot listen; a bad
token file is a ConfigError, 78). Every request is one line on stderr.

Decisions where the contract is silent:

- **Sweeps run in their own daemon threads**, at most :data:`SWEEP_THREADS` at once and
  apart from the pool that serves reads, so a flood of triggers never delays ``/healthz``
  or ``/progress/``. Only one of them can hold the sweep lock; the others record their
  lock-skipped event in milliseconds and free their slot. A client that disconnects does
  not stop its sweep: the thread finishes and records the event. On SIGTERM the server
  gives running requests :data:`SHUTDOWN_GRACE_SECONDS`, then answers 503 to a sweep still
  running and exits without waiting for it, instead of holding the stop for up to its
  whole budget: the next sweep records it as interrupted (the path of a killed holder).
- **A scheduler that POSTs says so** with ``"scheduled": true`` (the CronJob does): the
  sweep is then also a run of the ``[schedule]`` definition, one ``activity_runs`` row
  (:mod:`statehub.runs`: ``scheduled_for`` is the newest slot at or before the
  request's arrival), so the contract's query of section 8 shows the cluster's runs
  beside the daemon's. Without it (a person, a script) no row is written. The daemon's own
  ``trigger_via = "http"`` never sets it: its fire records the row itself.
- **Every POST is JSON.** A POST must come with ``Content-Type: application/json``, with a
  body or without (else 415): a web page can send a cross-site POST without a preflight
  only as a form or plain text, so no page can start a sweep. The body is at most
  :data:`MAX_BODY_BYTES` (else 413). Values are strict: ``"300"`` is not a number, ``1`` is
  not a boolean, NaN and Infinity are not numbers (422).
- **Security.** With a token file configured every request but ``/healthz`` needs
  ``Authorization: Bearer <token>`` (compared in constant time), on loopback too: a token
  that is configured is required. The token is read once at start. Bound to loopback, a
  request whose ``Host`` is not ``localhost`` or a literal loopback address (parsed, with
  or without a port) is refused (400), so a web page cannot reach the API through DNS
  rebinding. Connections that do not finish a request in time are closed
  (:mod:`statehub.serving`).
- **Metrics are computed from the store at scrape time** (see :class:`StoreCollector`),
  so every process serving the same database answers the same figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from statehub import __version__
from statehub.alerts import observed_sweep
from statehub.apiplans import add_workplan_routes
from statehub.cancel import Cancel
from statehub.contract import SOURCE_MANUAL
from statehub.errors import EXIT_AUTOMATION_ERROR, EXIT_OK, StoreError
from statehub.live import LiveSettings
from statehub.lock import is_locked
from statehub.logs import setup_logging
from statehub.page import PageLogin, add_page_routes
from statehub.runs import record_interrupted, scheduled_sweep
from statehub.serving import (
    ConnectionGuard,
    connection_cap,
    guarded_listener,
    guarded_protocol,
    pending_cap,
    raise_open_files_limit,
)
from statehub.settings import CHECK_IDS, SOURCE_PATTERN, Settings, is_loopback
from statehub.statusmodel import clock_warnings
from statehub.store import ProgressEvent, Store
from statehub.sweep import EVENT_TYPES, run_sweep
from statehub.timefmt import parse_iso, utc_now
from statehub.webauth import Sessions, Throttle, ThrottleCollector, client_of

log = logging.getLogger("statehub.api")

SWEEP_THREADS = 16
"""Sweep requests handled at once (one sweeps, the rest record lock-skipped events)."""
SHUTDOWN_GRACE_SECONDS = 10
"""How long a stopping server waits for running requests."""
MAX_BODY_BYTES = 64 * 1024
HEALTH_SCAN_EVENTS = 10_000
"""``last_sweep_at`` looks at this many newest events at most."""
METRICS_WINDOW = timedelta(hours=24)
METRICS_MAX_EVENTS = 100_000
"""At most this many of the newest events in the window are aggregated per scrape."""
DOCS_ASSETS = "/docs-assets"
"""Where Swagger UI's script and style are served (from the fastapi-offline package)."""
OPEN_PATHS = frozenset({"/healthz"})
REPO_FINDINGS_PAGE = 1000
"""Findings of one repo a GET /repos/{name} answers at most (issue 25: one answer bounded)."""
REPOS_FINDINGS_LISTED = 100
"""Findings of each repo GET /repos lists at most (issue 25); the repo says how many it has."""
PROGRESS_BYTES = 8_000_000
"""Bytes of events one GET /progress/ answers at most (issue 25: an event is up to 1 MB,
so 50 could be 50 MB); at least one event, whatever its size."""
TRUNCATED_HEADER = "X-Statehub-Truncated"
"""Set on a GET /progress/ answer that :data:`PROGRESS_BYTES` cut: how many events it holds."""

EventTypeName = Literal["consistency_sweep_remote_all", "consistency_sweep"]
if set(get_args(EventTypeName)) != set(EVENT_TYPES):  # the two lists must name the same types
    raise RuntimeError("api.EventTypeName is out of step with sweep.EVENT_TYPES")

T = TypeVar("T")


# -- request and response models ------------------------------------------------------


class SweepRequest(BaseModel):
    """The options of a sweep of all repos; every field is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    max_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="time budget, 1..3600 (default: [sweep] max_seconds)",
    )
    source: str = Field(
        default=SOURCE_MANUAL,
        pattern=SOURCE_PATTERN,
        description="who asks: recorded as detail.source",
    )
    remote: bool = Field(default=False, description="git fetch each repo first")
    scheduled: bool = Field(
        default=False,
        description="a run of the [schedule] definition by another scheduler (a CronJob): "
        "also recorded as an activity_runs row; needs a source other than manual",
    )

    @model_validator(mode="after")
    def _scheduled_names_its_scheduler(self) -> SweepRequest:
        # A scheduled run is counted, pinged and compared by its source: "manual" (the
        # default) would hide it among the sweeps people start by hand.
        if self.scheduled and self.source == SOURCE_MANUAL:
            raise ValueError("a scheduled sweep needs a source naming its scheduler, not manual")
        return self


class EventOut(BaseModel):
    """A progress event (section 5 of the contract)."""

    id: int
    event_type: EventTypeName
    created_at: str = Field(description="ISO-8601 UTC")
    detail: dict[str, Any]


class FindingOut(BaseModel):
    check: str
    message: str
    path: str | None
    line: int | None = Field(
        default=None, description="C-04, C-21, C-23: the 1-based line the finding is about"
    )
    new: bool = Field(
        default=False,
        description="absent from the repo's previous assessment (a repo's first has none)",
    )
    first_seen: str | None = Field(
        default=None, description="ISO-8601 UTC: the assessment that first reported it"
    )


class AssessmentOut(BaseModel):
    """A repo's standing assessment: the findings of its last completed assessment."""

    repo: str
    path: str
    head: str | None
    status: Literal["ok", "findings", "error"]
    assessed_at: str
    findings: list[FindingOut]
    findings_total: int | None = Field(
        None,
        description="every finding of the assessment: GET /repos/{name} pages them, GET "
        "/repos lists the first 100 and says it only when it lists fewer",
    )
    truncated: bool | None = Field(
        None, description="GET /repos only: true when findings lists fewer than findings_total"
    )


class HealthOut(BaseModel):
    status: Literal["ok", "error"]
    database: str = Field(description='"ok" or "error: <reason>"')
    lock: Literal["held", "free", "unknown"]
    last_sweep_at: str | None = Field(description="when the newest sweep that ran finished")
    warnings: list[str] = Field(description="a clock behind the store's newest event")


class Problem(BaseModel):
    detail: str


def _since(value: object) -> datetime:
    """An ISO-8601 date and time, naive meaning UTC, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 date and time")
    text = value.strip()
    if "T" in text and text[-6:-5] == " ":
        # An unencoded '+' of an offset arrives as a space: '...T10:00:00 02:00'.
        text = text[:-6] + "+" + text[-5:]
    try:
        return parse_iso(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{value!r} is not an ISO-8601 date and time (e.g. 2026-11-27T10:15:00Z)"
        ) from None


Since = Annotated[
    datetime,
    PlainValidator(_since),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    503: {"model": Problem, "description": "the database cannot be used"},
}


# -- the store, shared by request threads ---------------------------------------------


class StorePool:
    """Open stores for request threads: each is used by one thread at a time, then reused.

    A store whose database file was replaced or removed since it was opened is reopened,
    and one that raised StoreError is dropped, so errors are not cached.
    """

    def __init__(self, path: Path, *, keep: int = 32) -> None:
        self.path = path
        self._keep = keep
        self._idle: list[tuple[Store, tuple[int, int]]] = []
        self._mutex = threading.Lock()

    def _identity(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """A store for the caller's exclusive use; raises StoreError when none can be opened."""
        identity = self._identity()
        entry: tuple[Store, tuple[int, int]] | None = None
        with self._mutex:
            while self._idle and entry is None:
                candidate = self._idle.pop()
                if candidate[1] == identity:
                    entry = candidate
                else:
                    candidate[0].close()
        if entry is None:
            db = Store.open(self.path)
            reopened = self._identity()
            entry = (db, reopened) if reopened is not None else (db, (-1, -1))
        broken = False
        try:
            yield entry[0]
        except StoreError:
            broken = True
            raise
        finally:
            self._give_back(entry, broken=broken)

    def _give_back(self, entry: tuple[Store, tuple[int, int]], *, broken: bool) -> None:
        if not broken:
            with self._mutex:
                if len(self._idle) < self._keep:
                    self._idle.append(entry)
                    return
        entry[0].close()

    def close(self) -> None:
        with self._mutex:
            idle, self._idle = self._idle, []
        for db, _ in idle:
            db.close()


# -- metrics --------------------------------------------------------------------------


class StoreCollector(Collector):
    """Prometheus metrics computed from the store at each scrape.

    ``statehub_sweeps_total{source,outcome}`` counts the events recorded since 00:00 UTC
    today (it resets at midnight, and its ``_created`` sample says when): a true counter
    for ``rate()``/``increase()``, whose cost is one day of events, not the whole table.
    ``outcome`` is ``ok``, ``automation_error`` (a C-00, an interrupted sweep) or
    ``lock_skipped``. The ``statehub_last_*{source}`` gauges cover the sweeps of the last
    24 hours: a source absent from them has not swept for a day. At most
    :data:`METRICS_MAX_EVENTS` newest events are read per scrape, which bounds its cost
    when events are flooded (and then the counts are those of the newest events).
    ``statehub_repos`` and ``statehub_findings`` describe the standing assessments.
    """

    def __init__(self, pool: StorePool, database: Path) -> None:
        self._pool = pool
        self._database = database

    def collect(self) -> Iterable[Metric]:
        now = utc_now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            with self._pool.store() as db:
                summary = db.sweep_summary(
                    since=now - METRICS_WINDOW, counted_since=midnight, max_rows=METRICS_MAX_EVENTS
                )
                statuses = db.repo_status_counts()
                findings = db.finding_counts()
        except StoreError as exc:
            log.error("metrics: %s", exc)
            yield GaugeMetricFamily(
                "statehub_database_up", "1 when the database answered this scrape", value=0
            )
            return
        yield GaugeMetricFamily(
            "statehub_database_up", "1 when the database answered this scrape", value=1
        )
        try:
            running = 1 if is_locked(self._database) else 0
        except StoreError:
            running = 0
        yield GaugeMetricFamily(
            "statehub_sweep_running", "1 while a sweep holds the lock", value=running
        )
        yield from self._sweep_families(summary, midnight.timestamp())
        repos = GaugeMetricFamily(
            "statehub_repos", "repos by the status of their standing assessment", labels=["status"]
        )
        for status in ("ok", "findings", "error"):
            repos.add_metric([status], statuses.get(status, 0))
        yield repos
        open_findings = GaugeMetricFamily(
            "statehub_findings", "findings of the standing assessments by check", labels=["check"]
        )
        for check in CHECK_IDS:
            open_findings.add_metric([check], findings.get(check, 0))
        yield open_findings

    @staticmethod
    def _sweep_families(summary: list[tuple[Any, ...]], midnight: float) -> Iterator[Metric]:
        sweeps = CounterMetricFamily(
            "statehub_sweeps",
            "sweeps recorded since 00:00 UTC today (resets daily), by source and outcome",
            labels=["source", "outcome"],
        )
        last_success = GaugeMetricFamily(
            "statehub_last_success_timestamp_seconds",
            "when the newest sweep without automation error finished, per source (last 24 h)",
            labels=["source"],
        )
        last_sweep = GaugeMetricFamily(
            "statehub_last_sweep_timestamp_seconds",
            "when the newest sweep that ran (not lock-skipped) finished, per source (last 24 h)",
            labels=["source"],
        )
        last_duration = GaugeMetricFamily(
            "statehub_last_sweep_duration_seconds",
            "how long the newest sweep that ran took, per source (last 24 h)",
            labels=["source"],
        )
        counts: dict[tuple[str, str], int] = {}
        newest_ran: dict[str, tuple[str, float]] = {}
        for source, outcome, counted, last_at, duration in summary:
            name = str(source) if source is not None else "unknown"
            counts[(name, outcome)] = counts.get((name, outcome), 0) + int(counted or 0)
            if outcome == "ok":
                last_success.add_metric([name], parse_iso(last_at).timestamp())
            if outcome != "lock_skipped" and (
                name not in newest_ran or last_at > newest_ran[name][0]
            ):
                newest_ran[name] = (last_at, float(duration or 0.0))
        for name in sorted({name for name, _ in counts}):
            # Every outcome of a known source is present (0 too), so rate() sees each start.
            for outcome in ("ok", "automation_error", "lock_skipped"):
                sweeps.add_metric([name, outcome], counts.get((name, outcome), 0), midnight)
        for name, (last_at, duration) in sorted(newest_ran.items()):
            last_sweep.add_metric([name], parse_iso(last_at).timestamp())
            last_duration.add_metric([name], duration)
        yield from (sweeps, last_success, last_sweep, last_duration)


# -- ASGI middleware ------------------------------------------------------------------


class AccessLog:
    """One log line per request: client, method, path, status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = scope.get("client")
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            log.info(
                '%s "%s %s" %s %.1f ms',
                client[0] if client else "-",
                scope["method"],
                target,
                status or "-",
                (time.perf_counter() - started) * 1000,
            )


class LoopbackHostOnly:
    """Refuse requests whose ``Host`` is not a loopback name (DNS rebinding): 400.

    Only ``localhost`` and literal loopback addresses (127.0.0.0/8, ``[::1]``), each with or
    without a port, pass; a missing Host header does not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            name = _host_name(host) if host is not None else None
            if name is None or not is_loopback(name):
                shown = "no Host header" if host is None else f"Host {host!r}"
                response = JSONResponse(
                    {"detail": f"{shown} is not a loopback name; this API is local"},
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::[0-9]{1,5})?$")


def _host_name(host: str) -> str | None:
    """The name or address of a Host header without its port, or None when it is malformed.

    ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> ``localhost``; a bare ``::1`` is taken
    as the address it is.
    """
    match = _HOST.match(host.strip())
    if match is None:
        try:
            return str(ipaddress.IPv6Address(host.strip()))
        except ValueError:
            return None
    return match["v6"] or match["name"]


class JsonPostsOnly:
    """A POST (any method but GET, HEAD and OPTIONS) must say ``Content-Type:
    application/json``, with a body or not, else 415.

    A web page can send a cross-site POST without asking first only as a form or plain
    text; requiring JSON keeps every page from starting a sweep.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            content_type = Headers(scope=scope).get("content-type")
            if content_type is None or not _is_json(content_type):
                response = JSONResponse(
                    {
                        "detail": "send 'Content-Type: application/json' with every POST "
                        "(an empty body or {} means the defaults)"
                    },
                    status_code=415,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """Every request but :data:`OPEN_PATHS` needs ``Authorization: Bearer <token>`` while a
    token is configured (``token()`` is None: none is, every request passes).

    A client that sent too many wrong tokens is answered 429 unchecked for a while
    (:class:`statehub.webauth.Throttle`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Callable[[], str | None],
        throttle: Throttle,
        trusted: Callable[[], list[str]],
    ) -> None:
        self.app = app
        self._token = token  # read at each request: a reload may add or replace it
        self._throttle = throttle
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self._token()
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or expected is None:
            await self.app(scope, receive, send)
            return
        scheme, _, credentials = Headers(scope=scope).get("authorization", "").partition(" ")
        if not credentials.strip():
            await _unauthorized()(scope, receive, send)
            return
        client = client_of(scope, self._trusted())
        wait = self._throttle.wait(client)
        if wait:
            await _too_many(wait)(scope, receive, send)
            return
        # Header values arrive decoded as latin-1: encoding them back gives the sent bytes.
        given = credentials.strip().encode("latin-1")
        if scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode("utf-8")):
            await self.app(scope, receive, send)
            return
        self._throttle.failed(client, "bearer token")
        await _unauthorized()(scope, receive, send)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"detail": "a valid 'Authorization: Bearer <token>' header is required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="statehub"'},
    )


def _too_many(wait: float) -> JSONResponse:
    return JSONResponse(
        {"detail": "too many wrong tokens from this client: try again later"},
        status_code=429,
        headers={"Retry-After": str(math.ceil(wait))},
    )


# -- the app --------------------------------------------------------------------------


def create_app(settings: Settings | LiveSettings) -> FastAPI:
    """The HTTP API of ``settings``' database and fleet.

    With :class:`statehub.live.LiveSettings` every request reads the settings and the token
    of the moment (``statehub serve`` reloads them on SIGHUP); plain settings stay as given.
    Raises ConfigError when the configured token file is missing, unreadable or empty, or
    when the host is not loopback and no token file is configured.
    """
    live = settings if isinstance(settings, LiveSettings) else LiveSettings(settings, None)
    settings = live.settings
    loopback = is_loopback(settings.api.host)

    def current_token() -> str | None:
        return live.token  # a reload may add or replace it, never remove it (statehub.live)

    def trusted_proxies() -> list[str]:
        return live.settings.api.trusted_proxies

    throttle = Throttle(max_failures=settings.api.auth_failures_per_minute)

    pool = StorePool(settings.database_path)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            # Create and migrate the database now, not at the first request; and record
            # the scheduled runs of a server killed mid-sweep (before any request of ours).
            with pool.store() as db:
                record_interrupted(db)
        except StoreError as exc:
            log.error("the database cannot be used (C-00): %s", exc)
        yield
        pool.close()

    # /docs with Swagger UI's script and style served from the installed fastapi-offline
    # package: nothing is fetched from a CDN (it works air-gapped, like the status page).
    # No /redoc: ReDoc fetches its maker's logo from outside.
    app = FastAPIOffline(
        redoc_url=None,
        static_url=DOCS_ASSETS,
        title="statehub",
        version=__version__,
        summary="Sweeps a fleet of git repos against hygiene checks and records each sweep.",
        lifespan=lifespan,
    )
    # The last added runs first: Host, then the token, then the POST's Content-Type.
    app.add_middleware(JsonPostsOnly)
    # Both are installed without a token too: a reload that adds one takes effect at once.
    app.add_middleware(BearerAuth, token=current_token, throttle=throttle, trusted=trusted_proxies)
    app.add_middleware(  # the status page's cookie
        PageLogin,
        token=current_token,
        throttle=throttle,
        trusted=trusted_proxies,
        sessions=Sessions(),
    )
    if loopback:
        app.add_middleware(LoopbackHostOnly)
    app.add_middleware(AccessLog)
    _add_error_handlers(app)
    _add_sweep_route(app, live)
    _add_read_routes(app, pool, settings.database_path)
    add_workplan_routes(app, pool, _PROBLEMS)
    _add_metrics_route(app, pool, settings.database_path, throttle)
    add_page_routes(app, lambda: live.settings, pool)
    return app


def _add_sweep_route(app: FastAPI, live: LiveSettings) -> None:
    sweep_slots = asyncio.Semaphore(SWEEP_THREADS)

    @app.post(
        "/consistency/sweep/remote-all",
        response_model=EventOut,
        responses={
            **_PROBLEMS,
            413: {"model": Problem, "description": "body too large"},
            415: {"model": Problem, "description": "body is not JSON"},
        },
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": SweepRequest.model_json_schema()}},
            }
        },
        summary="Sweep all repos and answer the event",
    )
    async def sweep_all(request: Request) -> JSONResponse:
        """Run a sweep of every repo and answer its event, or at once a lock-skipped event
        when another sweep runs. The body (optional) is ``{"max_seconds", "source",
        "remote", "scheduled"}``; ``scheduled`` also records an ``activity_runs`` row."""
        arrived = utc_now()  # a scheduled run's fired_at, whatever the wait for a thread
        options = await _sweep_options(request)
        settings = live.settings  # as of this request: a reload applies to the next one

        def observed(cancel: Cancel | None = None) -> ProgressEvent:
            return observed_sweep(  # [notify] pings and posts around it (statehub.alerts)
                settings,
                source=options.source,
                whole_fleet=True,
                run=lambda: run_sweep(
                    settings,
                    repos=None,
                    remote=options.remote,
                    max_seconds=options.max_seconds,
                    source=options.source,
                    cancel=cancel,
                ),
            )

        def sweep() -> dict[str, Any]:
            if not options.scheduled:
                return observed().as_dict()
            # A run of the schedule (the CronJob's): its row in activity_runs, its marker
            # while it runs (statehub.runs).
            return dict(
                scheduled_sweep(
                    settings,
                    origin="http",
                    source=options.source,
                    sweep=lambda cancel: observed(cancel).as_dict(),
                    fired=arrived,
                    max_seconds=options.max_seconds,
                )
            )

        async with sweep_slots:
            try:
                event = await _in_daemon_thread(sweep)
            except asyncio.CancelledError:
                # uvicorn cancels what still runs when its stop grace ends. The sweep thread
                # goes with the process; its marker makes the next sweep record it.
                log.warning("stopping mid-sweep: the next sweep records this one interrupted")
                return JSONResponse(
                    {"detail": "the server is stopping; this sweep is recorded as interrupted"},
                    status_code=503,
                )
        return JSONResponse(event)


def _json_bytes(document: Any) -> bytes:
    """``document`` as the answers of :class:`JSONResponse` spell it (compact UTF-8)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _event_page(
    events: Iterable[ProgressEvent], limit: int
) -> tuple[list[bytes], bool, int | None]:
    """One answer of ``GET /progress/``: up to ``limit`` events as JSON, within
    :data:`PROGRESS_BYTES` (at least one); whether that bound cut it; and the id of its
    last event when more follow (``events`` holds one more than ``limit`` when they do).

    Each event is serialized as it is read, so the answer's bound bounds the memory too.
    """
    parts: list[bytes] = []
    size = 2  # the brackets
    last_id: int | None = None
    for event in events:
        if len(parts) == limit:
            return parts, False, last_id
        part = _json_bytes(event.as_dict())
        if parts and size + len(part) + 1 > PROGRESS_BYTES:
            return parts, True, last_id
        parts.append(part)
        size += len(part) + 1
        last_id = event.id
    return parts, False, None


def _add_read_routes(app: FastAPI, pool: StorePool, database: Path) -> None:
    # Plain functions: FastAPI runs them in its thread pool, off the event loop.
    def progress(
        request: Request,
        *,
        event_type: Annotated[
            EventTypeName | None, Query(description="only events of this type")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 50,
        since: Annotated[
            Since | None, Query(description="only events created at or after (ISO-8601)")
        ] = None,
        until: Annotated[
            Since | None, Query(description="only events created before (ISO-8601)")
        ] = None,
        before: Annotated[
            int | None,
            Query(
                ge=1,
                le=2**63 - 1,  # SQLite's integers: a larger one is no id
                description="only events recorded before the event of this id: the next "
                "page, as the answer's Link header gives it",
            ),
        ] = None,
        source: Annotated[
            list[str] | None,
            Query(max_length=20, description="only events of these detail.source (repeatable)"),
        ] = None,
        completed: Annotated[
            bool,
            Query(
                description="only sweeps that ran to their end (not lock-skipped, "
                "interrupted or cancelled)"
            ),
        ] = False,
    ) -> Response:
        """Progress events, newest first. The standby's health check is one such request:
        ``?event_type=consistency_sweep_remote_all&completed=true&source=...&until=now&limit=1``.

        An answer holds at most 8 MB of events (each event is at most 1 MB), and at least
        one event: when that bound stops it before ``limit``, the header
        ``X-Statehub-Truncated`` says how many events it holds. When more events match, the
        header ``Link: <...&before=ID>; rel="next"`` names the next page (the same query,
        ``before`` the id of the last event answered): following it lists every event once,
        even those recorded in the same millisecond."""
        with pool.store() as db:
            # One more than asked: is there a next page?
            parts, cut, last_id = _event_page(
                db.iter_events(
                    event_type=event_type,
                    limit=limit + 1,
                    since=since,
                    until=until,
                    before=before,
                    sources=source,
                    completed=completed,
                ),
                limit,
            )
        headers = {TRUNCATED_HEADER: str(len(parts))} if cut else {}
        if last_id is not None:
            # A relative reference: the Host a client or proxy sent is not ours to repeat.
            following = request.url.include_query_params(before=last_id)
            headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        return Response(
            b"[" + b",".join(parts) + b"]", media_type="application/json", headers=headers
        )

    for path, listed in (("/progress/", True), ("/progress", False)):
        app.add_api_route(
            path,
            progress,
            methods=["GET"],
            response_model=list[EventOut],
            responses={
                **_PROBLEMS,
                200: {
                    "description": "events, newest first",
                    "headers": {
                        TRUNCATED_HEADER: {
                            "description": "only when the answer's size bound (8 MB) stopped "
                            "it before limit: how many events it holds",
                            "schema": {"type": "integer"},
                        },
                        "Link": {
                            "description": "only when more events match: "
                            '<the same query with before=ID>; rel="next"',
                            "schema": {"type": "string"},
                        },
                    },
                },
            },
            include_in_schema=listed,
            summary="List progress events",
        )

    @app.get(
        "/repos",
        response_model=list[AssessmentOut],
        responses=_PROBLEMS,
        summary="List the repos' standing assessments",
    )
    def repos() -> JSONResponse:
        """Every assessed repo's standing assessment, by name, with its first 100 findings:
        a repo that has more says ``findings_total`` and ``"truncated": true`` (page them
        with GET /repos/{name})."""
        with pool.store() as db:
            found = db.assessments_listed(findings=REPOS_FINDINGS_LISTED)
        return JSONResponse(found)

    @app.get(
        "/repos/{name}",
        response_model=AssessmentOut,
        responses={**_PROBLEMS, 404: {"model": Problem, "description": "never assessed"}},
        summary="One repo's standing assessment",
    )
    def repo(
        name: str,
        offset: Annotated[int, Query(ge=0, le=10_000_000, description="findings skipped")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=REPO_FINDINGS_PAGE, description="findings at most")
        ] = REPO_FINDINGS_PAGE,
    ) -> JSONResponse:
        """One repo's standing assessment, its findings a page at a time (``offset``,
        ``limit``; ``findings_total`` counts them all); 404 when no sweep has assessed it."""
        with pool.store() as db:
            found = db.assessment(name)
        if found is None:
            raise HTTPException(404, detail=f"unknown repo: {name!r} (never assessed)")
        document = found.as_dict()
        document["findings_total"] = len(document["findings"])
        document["findings"] = document["findings"][offset : offset + limit]
        return JSONResponse(document)

    @app.get(
        "/healthz",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "the database cannot be used"}},
        summary="Database and lock state",
    )
    def healthz() -> JSONResponse:
        """200 when a sweep could use the database now, else 503; never needs a token."""
        last_sweep_at: str | None = None
        warnings: list[str] = []
        try:
            with pool.store() as db:
                last_sweep_at = db.last_sweep_at(scan_limit=HEALTH_SCAN_EVENTS)
                warnings = clock_warnings(db.newest_created_before(), utc_now())
            # Opened afresh, as a sweep opens it: a file made read-only since the pool's
            # connections were opened shows only to a new connection.
            with Store.open(database) as fresh:
                fresh.check_writable()
            state = "ok"
        except StoreError as exc:
            state = f"error: {exc}"
        try:
            lock = "held" if is_locked(database) else "free"
        except StoreError:
            lock = "unknown"
        healthy = state == "ok"
        document = {
            "status": "ok" if healthy else "error",
            "database": state,
            "lock": lock,
            "last_sweep_at": last_sweep_at,
            "warnings": warnings,  # a clock behind the store (statehub.statusmodel)
        }
        return JSONResponse(document, status_code=200 if healthy else 503)


def _add_metrics_route(app: FastAPI, pool: StorePool, database: Path, throttle: Throttle) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(pool, database))
    registry.register(ThrottleCollector(throttle))

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
        summary="Prometheus metrics",
    )
    def metrics() -> Response:
        """Prometheus text, computed from the store at scrape time."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _sweep_options(request: Request) -> SweepRequest:
    """The validated body of a sweep request; an empty body means every default.

    JsonPostsOnly has already refused a body that is not JSON (415).
    """
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise HTTPException(413, detail=f"the body is larger than {MAX_BODY_BYTES} bytes")
    except ClientDisconnect:
        # The client left, or its body was late (the request deadline): nobody to answer.
        raise HTTPException(400, detail="the client closed the request before its end") from None
    if not body.strip():
        return SweepRequest()
    try:
        return SweepRequest.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _in_daemon_thread(call: Callable[[], T]) -> T:
    """Run ``call`` in a new daemon thread and await its result without blocking the loop.

    The thread does not stop when the awaiting request is cancelled or its client leaves,
    and being a daemon thread it does not hold up the exit of a stopping server.
    """
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def succeed(value: T) -> None:
        if not outcome.done():
            outcome.set_result(value)

    def fail(exc: BaseException) -> None:
        if not outcome.done():
            outcome.set_exception(exc)

    def work() -> None:
        try:
            value = call()
        except BaseException as exc:  # handed to the awaiting request
            _deliver(loop, fail, exc)
        else:
            _deliver(loop, succeed, value)

    threading.Thread(target=work, name="statehub-sweep", daemon=True).start()
    return await outcome


def _deliver(loop: asyncio.AbstractEventLoop, settle: Callable[[Any], None], value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
        loop.call_soon_threadsafe(settle, value)


def _add_error_handlers(app: FastAPI) -> None:
    """Bad input is 422 with the reason, the database 503; never a traceback to the client."""

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        # Round-trip through JSON so that no input or context object can break the answer.
        detail = json.loads(json.dumps([_plain_error(error) for error in errors], default=str))
        return JSONResponse({"detail": detail}, status_code=422)

    async def store_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("database error (C-00): %s", exc)
        return JSONResponse({"detail": f"database error (C-00): {exc}"}, status_code=503)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"},
            status_code=500,
        )

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(Exception, unexpected)


def _plain_error(error: Any) -> dict[str, Any]:
    plain = {key: error[key] for key in ("type", "loc", "msg") if key in error}
    given = error.get("input")
    if isinstance(given, float) and not math.isfinite(given):
        plain["input"] = str(given)  # NaN and Infinity have no JSON form: shown as text
    elif "input" in error and isinstance(given, str | int | float | bool | None):
        plain["input"] = given
    return plain


# -- serving --------------------------------------------------------------------------


class _Server(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, guard: ConnectionGuard, *, on_reload: Callable[[], Any]
    ) -> None:
        super().__init__(config)
        self.guard = guard
        self.on_reload = on_reload

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # Accept errors (out of open files) are counted into the guard's summary line.
        loop.set_exception_handler(self.guard.loop_exception_handler)
        # SIGHUP: re-read the configuration between requests, on the event loop.
        loop.add_signal_handler(signal.SIGHUP, self.on_reload)
        try:
            await super().serve(sockets)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the stop signal once it has shut down, so the process would die
        # of it (status 143); a service stopped on request exits 0 (section 6).
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _rename_uvicorn(record: logging.LogRecord) -> bool:
    record.name = "uvicorn"
    return True


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (a name is resolved; the first address that
    binds wins), as uvicorn would open it. Raises OSError when none can be bound."""
    failure: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        listening = socket.socket(family, kind, proto)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind(address)
            listening.listen(2048)  # uvicorn's default backlog
        except OSError as exc:
            listening.close()
            failure = exc
            continue
        listening.set_inheritable(True)
        return listening
    raise failure or OSError(f"no address for {host}")


def serve(settings: Settings, config_path: str | os.PathLike[str] | None = None) -> int:
    """Serve the API on ``[api] host:port`` until SIGTERM or SIGINT; returns the exit status.

    SIGHUP re-reads the configuration from ``config_path`` (None: the lookup order), as the
    daemon does: see :mod:`statehub.live`. 0 after a stop on a signal, 1 when the address
    cannot be listened on. Raises ConfigError (exit 78) for a token file that is missing,
    unreadable or empty.
    """
    setup_logging()
    # uvicorn logs its own life under "uvicorn.error", which reads as an error: "uvicorn".
    logging.getLogger("uvicorn.error").addFilter(_rename_uvicorn)
    live = LiveSettings(settings, config_path)
    app = create_app(live)
    # Listen before the app starts, so that a port in use is one line and exit 1, not
    # "Application startup complete." followed by a failure (issue 15).
    host, port = settings.api.host, settings.api.port
    try:
        listening = _listen(host, port)
    except OSError as exc:
        log.error("cannot serve on %s:%s: %s", host, port, (exc.strerror or str(exc)).lower())
        return EXIT_AUTOMATION_ERROR
    bound = listening.getsockname()
    log.info("listening on %s:%s", host, bound[1])
    open_files = raise_open_files_limit()
    guard = ConnectionGuard(
        header_timeout=settings.api.header_timeout_seconds,
        max_pending=pending_cap(open_files),
        write_timeout=settings.api.write_timeout_seconds,
        max_open=connection_cap(open_files, settings.api.max_connections),
        configured_max_open=settings.api.max_connections,
    )
    listening = guarded_listener(listening, guard)  # no busy loop when accept() fails
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        http=guarded_protocol(guard),  # a request deadline: see statehub.serving
        log_config=None,  # our one-line stderr logging (statehub.logs) is already set up
        access_log=False,  # AccessLog writes the one line per request
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = _Server(config, guard, on_reload=live.reload)
    try:
        server.run(sockets=[listening])
    except SystemExit:  # uvicorn exits when it cannot bind or start the app
        log.error("cannot serve on %s:%s (reason above)", settings.api.host, settings.api.port)
        return EXIT_AUTOMATION_ERROR
    finally:
        guard.summarize()
    return EXIT_OK if server.started else EXIT_AUTOMATION_ERROR
