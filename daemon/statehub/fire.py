"""One fire of the schedule: decide, sweep (in process or through the API), record.

:meth:`Runner.fire` is the single path taken by a scheduled fire of the daemon and by
``statehub schedule run-now``: decide (``enabled = false``? standby with a healthy
primary?), sweep (:func:`run_sweep` in a worker thread, or ``POST
/consistency/sweep/remote-all`` with ``trigger_via = "http"``) and append one
``activity_runs`` row whose ``context_snapshot`` holds the sweep's detail under
``consistency_sweep_remote_all`` (contract section 8). While it runs, a fire keeps a
``scheduler_fire:<run_id>`` marker in ``hub_state``; :func:`record_interrupted_fires` turns
the markers of dead processes into ``error`` rows with ``{"interrupted": true}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from statehub.alerts import fallback_state, observed_sweep
from statehub.errors import StatehubError, StoreError, TriggerError
from statehub.settings import Settings, read_token
from statehub.store import ActivityRun, Store
from statehub.sweep import EVENT_ALL, run_sweep
from statehub.sweepsummary import sweep_words
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.fire")

Outcome = Literal[
    "swept", "lock_skipped", "overlap_skipped", "primary_healthy", "disabled", "error"
]
SWEEP_KEY = EVENT_ALL  # context_snapshot key holding the sweep's detail (contract section 8)
MARKER_PREFIX = "scheduler_fire:"
# The origins of the daemon's own rows (a fire, `schedule run-now`); other schedulers' runs
# of the same definition say "temporal", "http" or "cli" (statehub.runrecord).
DAEMON_ORIGINS = frozenset({"schedule", "run-now"})
HARD_TIMEOUT_MARGIN_SECONDS = 60  # a fire waits max_seconds + this for its sweep
HTTP_CONNECT_ATTEMPTS = 3

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Running:
    """The fire in progress, as an overlapping one reports it."""

    run_id: str
    since: datetime
    scheduled_for: datetime


# -- how a fire sweeps ----------------------------------------------------------------


class Backend(Protocol):
    """Where a fire sweeps and reads the primary's health: in process or over HTTP."""

    def newest_primary_sweep(self) -> dict[str, Any] | None:
        """The newest completed sweep event of a primary source, as a dict; None if none."""
        ...

    def sweep(self, *, source: str) -> dict[str, Any]:
        """Sweep all repos as ``source``; the recorded event as a dict (maybe lock-skipped)."""
        ...


@dataclass(frozen=True)
class InProcessBackend:
    """Sweeps with :func:`run_sweep` in this process, reads the store directly."""

    settings: Settings

    def newest_primary_sweep(self) -> dict[str, Any] | None:
        with Store.open(self.settings.database_path) as store:
            event = store.last_completed_sweep(
                self.settings.schedule.primary_sources, event_type=EVENT_ALL
            )
        return None if event is None else event.as_dict()

    def sweep(self, *, source: str) -> dict[str, Any]:
        return observed_sweep(  # [notify] pings and posts around it (statehub.alerts)
            self.settings,
            source=source,
            whole_fleet=True,
            run=lambda: run_sweep(
                self.settings, remote=self.settings.schedule.remote, source=source
            ),
        ).as_dict()


class HttpBackend:
    """Sweeps through the API (``trigger_via = "http"``).

    The POST is retried only when the connection could not be made, so the request never
    reached the server: a request that may have started a sweep is never sent again.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.schedule_api_url
        token = read_token(settings)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _client(self, read_seconds: float) -> Any:
        import httpx

        timeout = httpx.Timeout(connect=5.0, read=read_seconds, write=10.0, pool=5.0)
        # trust_env=False: the API is named explicitly; an HTTP(S)_PROXY of the environment
        # must not reroute the call (the unit only allows loopback anyway).
        return httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=timeout, trust_env=False
        )

    def newest_primary_sweep(self) -> dict[str, Any] | None:
        import httpx

        primary = set(self.settings.schedule.primary_sources)
        url = f"/progress/?event_type={EVENT_ALL}&limit=50"
        try:
            with self._client(30.0) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise TriggerError(f"GET {self.base_url}{url}: {exc!r}") from exc
        events = _json_answer(response, f"GET {self.base_url}{url}")
        if not isinstance(events, list):
            raise TriggerError(f"GET {self.base_url}{url}: not a list of events")
        for event in events:  # newest first
            if isinstance(event, dict) and is_primary_sweep(event, primary):
                return dict(event)
        return None

    def sweep(self, *, source: str) -> dict[str, Any]:
        import httpx

        max_seconds = self.settings.sweep.max_seconds
        body = {
            "source": source,
            "max_seconds": max_seconds,
            "remote": self.settings.schedule.remote,
        }
        url = "/consistency/sweep/remote-all"
        # The API answers when the sweep is done: wait for the budget, less than the fire's
        # own hard timeout so that a slow API is reported as what it is.
        read_seconds = max_seconds + HARD_TIMEOUT_MARGIN_SECONDS / 2
        with self._client(read_seconds) as client:
            for attempt in range(1, HTTP_CONNECT_ATTEMPTS + 1):
                try:
                    response = client.post(url, json=body)
                    break
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    # Nothing was sent: retrying cannot start a second sweep.
                    if attempt == HTTP_CONNECT_ATTEMPTS:
                        raise TriggerError(
                            f"POST {self.base_url}{url}: cannot connect after "
                            f"{attempt} attempts: {exc!r}"
                        ) from exc
                    log.warning("POST %s%s: cannot connect (%r), retrying", self.base_url, url, exc)
                    time.sleep(attempt)
                except httpx.HTTPError as exc:
                    # The request may have reached the server: never sent again.
                    raise TriggerError(f"POST {self.base_url}{url}: {exc!r}") from exc
        event = _json_answer(response, f"POST {self.base_url}{url}")
        if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
            raise TriggerError(f"POST {self.base_url}{url}: the answer is not a sweep event")
        return event


def is_primary_sweep(event: Mapping[str, Any], sources: Collection[str]) -> bool:
    """True for a sweep of all repos from one of ``sources`` that ran to its end.

    The standby daemon's test of a healthy primary, the same whichever path recorded the
    sweep (the API, a Temporal worker); ``Store.last_completed_sweep`` is its SQL form.
    """
    detail = event.get("detail")
    return (
        event.get("event_type") == EVENT_ALL
        and isinstance(detail, dict)
        and detail.get("source") in sources
        and not detail.get("lock_skipped")
        and not detail.get("interrupted")
    )


def _json_answer(response: Any, what: str) -> Any:
    if response.status_code != 200:
        hint = " (check [api] token_file)" if response.status_code == 401 else ""
        raise TriggerError(f"{what}: HTTP {response.status_code}{hint}: {response.text[:300]}")
    try:
        return response.json()
    except ValueError as exc:
        raise TriggerError(f"{what}: the answer is not JSON") from exc


def make_backend(settings: Settings) -> Backend:
    if settings.schedule.trigger_via == "http":
        return HttpBackend(settings)
    return InProcessBackend(settings)


# -- one fire -------------------------------------------------------------------------


class Cancel:
    """Wakes every bounded wait of the fires at once: the daemon is stopping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: set[threading.Event] = set()
        self.cancelled = False

    def register(self, event: threading.Event) -> None:
        with self._lock:
            self._events.add(event)
            if self.cancelled:
                event.set()

    def unregister(self, event: threading.Event) -> None:
        with self._lock:
            self._events.discard(event)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            for event in self._events:
                event.set()


class _Abandoned(Exception):
    """The sweep did not end in time (or the daemon stopped): the fire no longer waits."""

    def __init__(self, message: str, *, stopped: bool) -> None:
        super().__init__(message)
        self.stopped = stopped


def _bounded(fn: Callable[[], dict[str, Any]], timeout: float, cancel: Cancel) -> dict[str, Any]:
    """``fn()`` in a daemon worker thread; raises _Abandoned after ``timeout`` or a cancel.

    The daemon's own loop is never the worker, so its watchdog pings go on meanwhile; an
    abandoned worker never keeps the process from exiting.
    """
    wake = threading.Event()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the waiting fire, raised there
            outcome["error"] = exc
        finally:
            wake.set()

    cancel.register(wake)
    try:
        threading.Thread(target=work, name="statehub-sweep", daemon=True).start()
        finished = wake.wait(timeout)
    finally:
        cancel.unregister(wake)
    if "error" in outcome:
        raise outcome["error"]
    if "value" in outcome:
        value: dict[str, Any] = outcome["value"]
        return value
    if finished:  # woken by the cancel
        raise _Abandoned("the daemon stopped while the sweep was running", stopped=True)
    raise _Abandoned(
        f"the sweep did not finish within {timeout:.0f} s (max_seconds + margin); "
        "it was abandoned and may hold the sweep lock until it ends",
        stopped=False,
    )


class Runner:
    """Fires the schedule definition of one configuration; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Backend | None = None,
        clock: Clock = utc_now,
        hard_timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend if backend is not None else make_backend(settings)
        self.clock = clock
        self.hard_timeout = (
            hard_timeout
            if hard_timeout is not None
            else settings.sweep.max_seconds + HARD_TIMEOUT_MARGIN_SECONDS
        )
        self.cancel = cancel if cancel is not None else Cancel()

    def base_context(self, origin: str, force: bool) -> dict[str, Any]:
        schedule = self.settings.schedule
        return {
            "definition_name": schedule.name,
            "mode": schedule.mode,
            "enabled": schedule.enabled,
            "trigger_via": schedule.trigger_via,
            "origin": origin,
            "forced": force,
            "source": None,
            "pid": os.getpid(),
        }

    def fire(
        self,
        *,
        scheduled_for: datetime,
        fired_at: datetime | None = None,
        run_id: str | None = None,
        force: bool = False,
        origin: str = "schedule",
        extra_context: Mapping[str, Any] | None = None,
    ) -> ActivityRun:
        """Run one fire and record it; never raises (a failure is the outcome ``error``).

        ``scheduled_for`` is the slot; ``force`` sweeps where the mode or ``enabled = false``
        would not. A run that cannot be recorded (database unusable) is returned all the
        same, with ``context_snapshot["record_error"]``.
        """
        run_id = run_id or str(uuid.uuid4())
        fired = fired_at or self.clock()
        context = self.base_context(origin, force)
        context.update(extra_context or {})
        started = time.monotonic()
        store: Store | None = None
        marker = MARKER_PREFIX + run_id
        try:
            store = Store.open(self.settings.database_path)
            outcome = self._decide_and_sweep(
                store,
                marker=marker,
                context=context,
                run_id=run_id,
                fired=fired,
                scheduled_for=scheduled_for,
                force=force,
            )
        except _Abandoned as exc:
            outcome = "error"
            context.update(error=str(exc), timed_out=not exc.stopped, interrupted=exc.stopped)
        except StatehubError as exc:
            outcome = "error"
            context["error"] = str(exc)
        except Exception as exc:  # a bug must become a recorded error, not a dead job
            log.exception("run %s: unexpected failure", run_id)
            outcome = "error"
            context["error"] = f"unexpected failure: {exc!r}"
        context["duration_seconds"] = round(time.monotonic() - started, 3)
        run = ActivityRun(
            run_id=run_id,
            definition_id=self.settings.schedule.id,
            fired_at=iso(fired),
            scheduled_for=iso(scheduled_for),
            outcome=outcome,
            context_snapshot=context,
        )
        if store is None:
            context["record_error"] = context["error"]
            log.error("run %s (%s) could not be recorded: %s", run_id, outcome, context["error"])
        else:
            try:
                store.record_run(run)
                store.delete_state(marker)
            except StoreError as exc:
                context["record_error"] = str(exc)
                log.error("run %s (%s) could not be recorded: %s", run_id, outcome, exc)
            finally:
                store.close()
        _log_run(run)
        return run

    def _decide_and_sweep(
        self,
        store: Store,
        *,
        marker: str,
        context: dict[str, Any],
        run_id: str,
        fired: datetime,
        scheduled_for: datetime,
        force: bool,
    ) -> Outcome:
        schedule = self.settings.schedule
        if not schedule.enabled and not force:
            return "disabled"
        store.set_state(
            marker,
            json.dumps(
                {
                    "run_id": run_id,
                    "definition_id": schedule.id,
                    "fired_at": iso(fired),
                    "scheduled_for": iso(scheduled_for),
                    "pid": os.getpid(),
                    "origin": context["origin"],
                    "mode": schedule.mode,
                }
            ),
        )
        source = schedule.source
        if schedule.mode == "standby":
            source = schedule.fallback_source
            primary = self.backend.newest_primary_sweep()
            cutoff = fired - timedelta(minutes=schedule.primary_grace_minutes)
            fresh = primary is not None and parse_iso(str(primary["created_at"])) >= cutoff
            context.update(
                primary_sources=list(schedule.primary_sources),
                primary_grace_minutes=schedule.primary_grace_minutes,
                primary_last_sweep_at=None if primary is None else primary["created_at"],
                primary_last_source=None if primary is None else primary["detail"].get("source"),
                primary_healthy=fresh,
            )
            last_primary = "never" if primary is None else f"last at {primary['created_at']}"
            fallback_state(
                self.settings,
                store,
                active=not fresh,
                detail=f"primary sweep from {', '.join(schedule.primary_sources)}: "
                f"{last_primary} (grace {schedule.primary_grace_minutes} min)",
            )
            if fresh and not force:
                return "primary_healthy"
            if not fresh:
                last = "never" if primary is None else f"last at {primary['created_at']}"
                log.warning(
                    "standby: no completed sweep from %s within %g min (%s); sweeping as %s",
                    ", ".join(schedule.primary_sources),
                    schedule.primary_grace_minutes,
                    last,
                    source,
                )
        context["source"] = source
        event = _bounded(lambda: self.backend.sweep(source=source), self.hard_timeout, self.cancel)
        detail = event["detail"]
        context[SWEEP_KEY] = detail
        context["progress_event_id"] = event.get("id")
        if detail.get("lock_skipped"):
            return "lock_skipped"
        if detail.get("automation_error") or detail.get("exit_code") == 1:
            errors = detail.get("automation_errors") or []
            first = errors[0] if errors else {}
            log.error(
                "sweep %s (event %s) had %d automation error(s); first: %s: %s",
                detail.get("run_id"),
                event.get("id"),
                len(errors),
                first.get("repo"),
                first.get("message"),
            )
        return "swept"

    def record_overlap(
        self, scheduled_for: datetime, running: Running | None
    ) -> ActivityRun | None:
        """Record a fire skipped because the previous one still runs (``overlap_skipped``)."""
        context = self.base_context("schedule", False)
        if running is not None:
            context.update(running_run_id=running.run_id, running_since=iso(running.since))
        run = ActivityRun(
            run_id=str(uuid.uuid4()),
            definition_id=self.settings.schedule.id,
            fired_at=iso(self.clock()),
            scheduled_for=iso(scheduled_for),
            outcome="overlap_skipped",
            context_snapshot=context,
        )
        try:
            with Store.open(self.settings.database_path) as store:
                store.record_run(run)
        except StoreError as exc:
            log.error(
                "the overlap-skipped fire of %s could not be recorded: %s", run.scheduled_for, exc
            )
            return None
        _log_run(run)
        return run


def _log_run(run: ActivityRun) -> None:
    context = run.context_snapshot
    detail = context.get(SWEEP_KEY)
    what = f"run {run.run_id} for {run.scheduled_for}: {run.outcome}"
    if run.outcome == "error":
        log.error("%s: %s", what, context.get("error", "unknown error"))
    elif run.outcome == "overlap_skipped":
        log.warning("%s (run %s still going)", what, context.get("running_run_id"))
    elif isinstance(detail, dict) and run.outcome == "swept":
        log.info(
            "%s as %s: event %s, %s",
            what,
            context.get("source"),
            context.get("progress_event_id"),
            sweep_words(detail),
        )
    else:
        log.info("%s", what)


def run_failed(run: ActivityRun) -> bool:
    """True when a run is an automation failure: outcome ``error`` or sweep exit code 1."""
    detail = run.context_snapshot.get(SWEEP_KEY)
    return run.outcome == "error" or (isinstance(detail, dict) and detail.get("exit_code") == 1)


# -- fires whose process died ---------------------------------------------------------


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own pid in a marker is an earlier process's (PID 1 in a container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_interrupted_fires(store: Store, *, clock: Clock = utc_now) -> list[ActivityRun]:
    """Turn the markers of fires whose process died into ``error`` runs (``interrupted``).

    A marker of a live process (a ``run-now`` going on beside the daemon) is left alone.
    """
    recorded: list[ActivityRun] = []
    for key, value in store.state_items(MARKER_PREFIX).items():
        try:
            marker = json.loads(value)
            pid = int(marker["pid"])
            run_id = str(marker["run_id"])
            definition_id = str(marker["definition_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("dropping an unreadable fire marker %s", key)
            store.delete_state(key)
            continue
        if _alive(pid):
            continue
        known = {run.run_id for run in store.runs(definition_id=definition_id, limit=50)}
        if run_id not in known:  # killed between recording the run and dropping the marker
            run = ActivityRun(
                run_id=run_id,
                definition_id=definition_id,
                fired_at=str(marker.get("fired_at") or iso(clock())),
                scheduled_for=str(marker.get("scheduled_for") or iso(clock())),
                outcome="error",
                context_snapshot={
                    "interrupted": True,
                    "error": f"process {pid} died during this fire; recorded at the next start",
                    "recorded_at": iso(clock()),
                    "pid": pid,
                    "origin": marker.get("origin"),
                    "mode": marker.get("mode"),
                },
            )
            store.record_run(run)
            recorded.append(run)
            log.error(
                "run %s for %s was interrupted (process %d died); recorded as error",
                run_id,
                run.scheduled_for,
                pid,
            )
        store.delete_state(key)
    return recorded
