"""One fire of the schedule: the decision (enabled? mode? standby?) and where it sweeps.

:meth:`Runner.fire` is the path of a scheduled fire of the daemon and of ``statehub
schedule run-now``: decide (``enabled = false``? standby with a healthy primary? at a
hand-back, the primary back for this slot?), then sweep as one run of the schedule
(:func:`statehub.runs.record_run`: the marker, the ``activity_runs`` row, its outcome), in
process (:func:`statehub.runs.sweep_in_process`) or with ``POST
/consistency/sweep/remote-all`` (``trigger_via = "http"``). A decision not to sweep is not
a run: it is recorded in ``schedule_decisions`` (:func:`statehub.runs.record_decision`).
``run-now --force`` is the canary: it sweeps whatever the mode as source ``canary``, which
covers a slot but never doubles one (statehub.compare).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from statehub.alerts import fallback_state
from statehub.cancel import Cancel
from statehub.contract import DECISIONS, SOURCE_CANARY, RunOutcome
from statehub.errors import TriggerError
from statehub.runs import (
    hard_timeout,
    record_decision,
    record_run,
    running_markers,
    sweep_in_process,
)
from statehub.settings import Settings, read_token
from statehub.store import ActivityRun, Store
from statehub.sweep import EVENT_ALL
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.fire")

CANARY_SOURCE = SOURCE_CANARY  # run-now --force: covers a slot, never doubles one
# The origins of the daemon's own rows (a fire, `schedule run-now`); other schedulers' runs
# of the same definition say "temporal", "http" or "cli" (statehub.runs).
DAEMON_ORIGINS = frozenset({"schedule", "run-now"})
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

    def newest_primary_sweep(self, *, until: datetime) -> dict[str, Any] | None:
        """The newest completed whole-fleet sweep of a primary source recorded at or before
        ``until`` (a sweep dated in the future is no health), as a dict; None if none."""
        ...

    def sweep(self, *, source: str, cancel: Cancel) -> dict[str, Any]:
        """Sweep all repos as ``source``; the recorded event as a dict (maybe lock-skipped)."""
        ...


@dataclass(frozen=True)
class InProcessBackend:
    """Sweeps with :func:`run_sweep` in this process, reads the store directly."""

    settings: Settings

    def newest_primary_sweep(self, *, until: datetime) -> dict[str, Any] | None:
        with Store.open(self.settings.database_path) as store:
            event = store.last_completed_sweep(
                self.settings.schedule.primary_sources, event_type=EVENT_ALL, until=until
            )
        return None if event is None else event.as_dict()

    def sweep(self, *, source: str, cancel: Cancel) -> dict[str, Any]:
        return sweep_in_process(self.settings, source=source, cancel=cancel)


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

    def newest_primary_sweep(self, *, until: datetime) -> dict[str, Any] | None:
        """One filtered request: the API's query is the store's (``completed=true``)."""
        import httpx

        params: list[tuple[str, str]] = [
            ("event_type", EVENT_ALL),
            ("completed", "true"),
            ("until", iso(until)),
            ("limit", "1"),
        ]
        params.extend(("source", name) for name in self.settings.schedule.primary_sources)
        url = "/progress/"
        try:
            with self._client(30.0) as client:
                response = client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise TriggerError(f"GET {self.base_url}{url}: {exc!r}") from exc
        events = _json_answer(response, f"GET {self.base_url}{url}")
        if not isinstance(events, list):
            raise TriggerError(f"GET {self.base_url}{url}: not a list of events")
        first = events[0] if events else None
        return dict(first) if isinstance(first, dict) else None

    def sweep(self, *, source: str, cancel: Cancel) -> dict[str, Any]:
        # The API's sweep is not stopped by our cancel: the run stops waiting for it.
        import httpx

        max_seconds = self.settings.sweep.max_seconds
        body = {
            "source": source,
            "max_seconds": max_seconds,
            "remote": self.settings.schedule.remote,
        }
        url = "/consistency/sweep/remote-all"
        # The API answers when the sweep is done: wait for the budget, less than the run's
        # own hard timeout so that a slow API is reported as what it is.
        read_seconds = (max_seconds + hard_timeout(self.settings)) / 2
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
        self.hard_timeout = hard_timeout
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
        """Decide, then sweep as one recorded run; never raises.

        ``scheduled_for`` is the slot; ``force`` is the canary: it sweeps where the mode or
        ``enabled = false`` would not, as source ``canary``. A decision not to sweep is
        returned as an :class:`ActivityRun` whose outcome is the decision (recorded in
        ``schedule_decisions``, not ``activity_runs``).
        """
        fired = fired_at or self.clock()
        context = self.base_context(origin, force)
        context.update(extra_context or {})
        failure: Exception | None = None
        try:
            source = self._decide(context, fired=fired, scheduled_for=scheduled_for, force=force)
        except Exception as exc:  # the primary's health unknown: recorded as the run's error
            failure = exc
            schedule = self.settings.schedule
            source = schedule.fallback_source if schedule.mode == "standby" else schedule.source
        if source in DECISIONS:
            context["source"] = None
            record_decision(
                self.settings,
                decision=source,
                scheduled_for=scheduled_for,
                context=context,
                clock=self.clock,
            )
            return ActivityRun(
                run_id=run_id or str(uuid.uuid4()),
                definition_id=self.settings.schedule.id,
                fired_at=iso(fired),
                scheduled_for=iso(scheduled_for),
                outcome=source,
                context_snapshot=context,
            )

        def sweep(cancel: Cancel) -> dict[str, Any]:
            if failure is not None:
                raise failure
            return self.backend.sweep(source=source, cancel=cancel)

        context["source"] = source
        return record_run(
            self.settings,
            origin=origin,
            source=source,
            sweep=sweep,
            scheduled_for=scheduled_for,
            fired=fired,
            run_id=run_id,
            context=context,
            cancel=self.cancel,
            timeout=self.hard_timeout,
            clock=self.clock,
        ).run

    def _decide(
        self,
        context: dict[str, Any],
        *,
        fired: datetime,
        scheduled_for: datetime,
        force: bool,
    ) -> str:
        """The source to sweep as, or the decision (:data:`DECISIONS`) not to sweep."""
        schedule = self.settings.schedule
        if force:
            return CANARY_SOURCE
        if not schedule.enabled:
            return RunOutcome.DISABLED
        if schedule.mode == "active":
            return schedule.source
        if self._primary_fresh(context, now=fired) or self._primary_back(
            context, scheduled_for=scheduled_for
        ):
            return RunOutcome.PRIMARY_HEALTHY
        log.warning(
            "standby: no completed sweep from %s within %g min (%s); sweeping as %s",
            ", ".join(schedule.primary_sources),
            schedule.primary_grace_minutes,
            context.get("primary_last_sweep_at") or "never",
            schedule.fallback_source,
        )
        return schedule.fallback_source

    def _primary_back(self, context: dict[str, Any], *, scheduled_for: datetime) -> bool:
        """At a hand-back, the primary may be back for this very slot: wait a little after
        the slot (``handback_delay_seconds``), then True if its sweep is recorded or under
        way (or the daemon is stopping). Only a scheduled fire waits, not ``run-now``."""
        delay = self.settings.schedule.handback_delay_seconds
        if context["origin"] != "schedule" or delay <= 0:
            return False
        wake = scheduled_for + timedelta(seconds=delay)
        pause = (wake - self.clock()).total_seconds()
        if pause > 0 and self._pause(pause):
            context["cancelled_by"] = self.cancel.reason  # stopping: nothing more is swept
            return True
        back = self._primary_under_way(context) or self._primary_fresh(context, now=self.clock())
        if back:
            context["handback"] = True
        return back

    def _primary_fresh(self, context: dict[str, Any], *, now: datetime) -> bool:
        """The standby's test: a primary sweep within the grace; recorded in ``context``."""
        schedule = self.settings.schedule
        # Recorded at or before now: `until` is exclusive and timestamps are whole
        # milliseconds, so a primary sweep recorded in this very millisecond counts too.
        primary = self.backend.newest_primary_sweep(until=now + timedelta(milliseconds=1))
        cutoff = now - timedelta(minutes=schedule.primary_grace_minutes)
        fresh = primary is not None and parse_iso(str(primary["created_at"])) >= cutoff
        context.update(
            primary_sources=list(schedule.primary_sources),
            primary_grace_minutes=schedule.primary_grace_minutes,
            primary_last_sweep_at=None if primary is None else primary["created_at"],
            primary_last_source=None if primary is None else primary["detail"].get("source"),
            primary_healthy=fresh,
        )
        last = "never" if primary is None else f"last at {primary['created_at']}"
        try:
            with Store.open(self.settings.database_path) as store:
                fallback_state(
                    self.settings,
                    store,
                    active=not fresh,
                    detail=f"primary sweep from {', '.join(schedule.primary_sources)}: "
                    f"{last} (grace {schedule.primary_grace_minutes} min)",
                )
        except Exception as exc:  # an alert's state never decides a fire
            log.warning("the fallback state could not be read: %s", exc)
        return fresh

    def _primary_under_way(self, context: dict[str, Any]) -> bool:
        """True when a run of a primary source is going on now (its marker, process alive)."""
        with Store.open(self.settings.database_path) as store:
            markers = running_markers(store)
        primary = set(self.settings.schedule.primary_sources)
        under_way = [m for m in markers if m.get("source") in primary]
        if under_way:
            context["primary_run_under_way"] = under_way[0].get("run_id")
        return bool(under_way)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the daemon stops first; True when it stopped."""
        wake = threading.Event()
        self.cancel.register(wake)
        try:
            wake.wait(seconds)
        finally:
            self.cancel.unregister(wake)
        return self.cancel.cancelled

    def record_overlap(
        self, scheduled_for: datetime, running: Running | None
    ) -> ActivityRun | None:
        """Record a fire skipped because the previous one still runs (``overlap_skipped``)."""
        context = self.base_context("schedule", False)
        if running is not None:
            context.update(running_run_id=running.run_id, running_since=iso(running.since))
        record_decision(
            self.settings,
            decision=RunOutcome.OVERLAP_SKIPPED,
            scheduled_for=scheduled_for,
            context=context,
            clock=self.clock,
        )
        return ActivityRun(
            run_id=str(uuid.uuid4()),
            definition_id=self.settings.schedule.id,
            fired_at=iso(self.clock()),
            scheduled_for=iso(scheduled_for),
            outcome=RunOutcome.OVERLAP_SKIPPED,
            context_snapshot=context,
        )
