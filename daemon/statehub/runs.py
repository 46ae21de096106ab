"""One run of the schedule, whatever starts it: its marker, its row, its outcome, its wait.

Every path that runs a slot of the ``[schedule]`` definition goes through :func:`record_run`:
the daemon's fire and ``statehub schedule run-now`` (:mod:`statehub.fire`), a ``POST
/consistency/sweep/remote-all`` with ``"scheduled": true`` and ``statehub sweep
--scheduled`` (:func:`scheduled_sweep`), and the Temporal worker's activity. A run:

- keeps a ``scheduler_fire:<run_id>`` marker in ``hub_state`` while it goes on, so a
  process that dies without a word (kill -9, power loss) is found by the next one
  (:func:`record_interrupted`) and recorded as ``error`` with ``{"interrupted": true}``;
- sweeps in a thread of its own, waited for at most ``max_seconds`` plus a margin
  (:func:`wait_bounded`, the one bounded wait), so the caller's loop (APScheduler's,
  Temporal's heartbeats) goes on;
- appends one ``activity_runs`` row (contract section 8) whose outcome says what happened:
  ``swept``; ``failed`` (the sweep had an automation error, C-00); ``lock_skipped``;
  ``cancelled`` (the operator stopped it: ``context_snapshot.cancelled_by`` names the signal,
  or ``temporal`` for a cancel from the cluster); ``error`` (no sweep was recorded: the
  trigger failed, the wait timed out, the process died).

What a scheduler decided *not* to run (``primary_healthy``, ``overlap_skipped``,
``disabled``) is not a run: :func:`record_decision` keeps it in ``schedule_decisions``, which
``statehub runs --all`` and the page show and the contract's query does not.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from statehub.alerts import observed_sweep
from statehub.cancel import Cancel, Stopped, stopped_by
from statehub.contract import SWEEP_RESULT_KEY, Detail, RunOutcome
from statehub.cron import cron_trigger, previous_fire_time
from statehub.errors import StatehubError, StoreError
from statehub.lock import pid_alive
from statehub.settings import Settings
from statehub.store import ActivityRun, Store
from statehub.sweep import ProgressCallback, run_sweep
from statehub.sweepsummary import sweep_words
from statehub.timefmt import iso, utc_now

log = logging.getLogger("statehub.runs")

MARKER_PREFIX = "scheduler_fire:"
HARD_TIMEOUT_MARGIN_SECONDS = 60  # a run waits max_seconds + this for its sweep
CANCEL_GRACE_SECONDS = 5.0  # after a stop, how long a sweep gets to record itself cancelled

Clock = Callable[[], datetime]
Sweep = Callable[[Cancel], Mapping[str, Any]]
"""A sweep of all repos, stoppable by its ``Cancel``; returns the recorded event as a dict."""


def sweep_outcome(detail: Mapping[str, Any]) -> str:
    """The outcome of a run whose sweep recorded ``detail``."""
    if detail.get(Detail.LOCK_SKIPPED):
        return RunOutcome.LOCK_SKIPPED
    if detail.get(Detail.CANCELLED):
        return RunOutcome.CANCELLED
    if detail.get(Detail.AUTOMATION_ERROR) or detail.get(Detail.EXIT_CODE) == 1:
        return RunOutcome.FAILED
    return RunOutcome.SWEPT


def run_failed(run: ActivityRun) -> bool:
    """True when a run is an automation failure: outcome ``failed`` or ``error``."""
    return run.outcome in (RunOutcome.FAILED, RunOutcome.ERROR)


def slot_of(settings: Settings, moment: datetime) -> datetime:
    """The newest slot of ``[schedule] trigger`` at or before ``moment`` (itself if none)."""
    schedule = settings.schedule
    slot = previous_fire_time(cron_trigger(schedule.trigger, schedule.zone), moment)
    return moment if slot is None else slot


# -- the one bounded wait -------------------------------------------------------------


class Abandoned(Exception):  # what happened to the sweep, not an error class
    """The sweep did not end in time, or after a stop: the run no longer waits for it."""

    def __init__(self, message: str, *, stopped_by: str | None) -> None:
        super().__init__(message)
        self.stopped_by = stopped_by


def wait_bounded(
    fn: Callable[[], Any],
    *,
    timeout: float,
    cancel: Cancel,
    tick: Callable[[], None] | None = None,
    tick_seconds: float = 1.0,
) -> Any:
    """``fn()`` in a daemon thread; its value, or what it raised.

    ``tick`` is called from this thread every ``tick_seconds`` while it waits (Temporal's
    heartbeat; it may cancel ``cancel``). Once ``cancel`` is cancelled, ``fn`` gets
    :data:`CANCEL_GRACE_SECONDS` to end (a sweep records itself cancelled, then raises
    :class:`~statehub.cancel.Stopped`). Raises :class:`Abandoned` after ``timeout`` or that
    grace; an abandoned thread never keeps the process from exiting.
    """
    done = threading.Event()  # fn ended
    wake = threading.Event()  # fn ended, or a cancel: the waiting thread looks again
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the waiting thread, raised there
            outcome["error"] = exc
        finally:
            done.set()
            wake.set()

    cancel.register(wake)
    try:
        threading.Thread(target=work, name="statehub-sweep", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not done.is_set():
            try:
                if cancel.cancelled:
                    done.wait(CANCEL_GRACE_SECONDS)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wake.wait(min(tick_seconds, remaining) if tick is not None else remaining)
                # A cancel wakes the wait too: the grace above starts then.
                if tick is not None and not done.is_set() and not cancel.cancelled:
                    tick()
            except KeyboardInterrupt as exc:  # ^C or SIGTERM in this (the main) thread
                cancel.cancel(stopped_by(exc))
    finally:
        cancel.unregister(wake)
    if "error" in outcome:
        raise outcome["error"]
    if "value" in outcome:
        return outcome["value"]
    if cancel.cancelled:
        raise Abandoned(
            f"stopped by {cancel.reason}; the sweep did not end within "
            f"{CANCEL_GRACE_SECONDS:.0f} s and was abandoned",
            stopped_by=cancel.reason,
        )
    raise Abandoned(
        f"the sweep did not finish within {timeout:.0f} s (max_seconds + margin); "
        "it was abandoned and may hold the sweep lock until it ends",
        stopped_by=None,
    )


def hard_timeout(settings: Settings) -> float:
    """How long a run waits for its sweep: ``max_seconds`` plus a margin."""
    return float(settings.sweep.max_seconds + HARD_TIMEOUT_MARGIN_SECONDS)


def sweep_in_process(
    settings: Settings,
    *,
    source: str,
    cancel: Cancel,
    progress: ProgressCallback | None = None,
    remote: bool | None = None,
) -> dict[str, Any]:
    """A scheduled sweep of all repos in this process, with its [notify] pings and posts;
    it fetches when ``remote`` says so (None: ``[schedule] remote``)."""
    return observed_sweep(
        settings,
        source=source,
        whole_fleet=True,
        run=lambda: run_sweep(
            settings,
            remote=settings.schedule.remote if remote is None else remote,
            source=source,
            progress=progress,
            cancel=cancel,
        ),
    ).as_dict()


# -- one run --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """A recorded run, the event of its sweep (None without one) and what its sweep raised."""

    run: ActivityRun
    event: Mapping[str, Any] | None
    error: BaseException | None


def record_run(
    settings: Settings,
    *,
    origin: str,
    source: str,
    sweep: Sweep,
    scheduled_for: datetime | None = None,
    fired: datetime | None = None,
    run_id: str | None = None,
    definition_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    cancel: Cancel | None = None,
    timeout: float | None = None,
    tick: Callable[[], None] | None = None,
    clock: Clock = utc_now,
) -> RunResult:
    """Run ``sweep`` as one run of the schedule and record it; never raises.

    ``origin`` names the path (``schedule``, ``run-now``, ``http``, ``cli``, ``temporal``),
    ``source`` the sweep's ``detail.source``; ``scheduled_for`` defaults to the newest slot
    at or before ``fired`` (so a CronJob pod that starts 40 s late records its slot).
    A run that cannot be recorded (database unusable) is returned all the same, with
    ``context_snapshot["record_error"]``.
    """
    fired = fired or clock()
    scheduled_for = scheduled_for or slot_of(settings, fired)
    run_id = run_id or str(uuid.uuid4())
    definition_id = definition_id or settings.schedule.id
    cancel = cancel if cancel is not None else Cancel()
    snapshot: dict[str, Any] = {
        "definition_name": settings.schedule.name,
        "origin": origin,
        "source": source,
        "pid": os.getpid(),
        **(context or {}),
    }
    marker = MARKER_PREFIX + run_id
    document = {
        "run_id": run_id,
        "definition_id": definition_id,
        "fired_at": iso(fired),
        "scheduled_for": iso(scheduled_for),
        "pid": os.getpid(),
        "origin": origin,
        "source": source,
        "mode": snapshot.get("mode"),
    }
    _write(
        settings,
        f"run {run_id}: the marker",
        lambda store: store.set_state(marker, json.dumps(document)),
    )
    started = time.monotonic()
    event, error, outcome = _sweep_and_judge(
        lambda: sweep(cancel),
        snapshot,
        timeout=timeout if timeout is not None else hard_timeout(settings),
        cancel=cancel,
        tick=tick,
    )
    snapshot["duration_seconds"] = round(time.monotonic() - started, 3)
    run = ActivityRun(
        run_id=run_id,
        definition_id=definition_id,
        fired_at=iso(fired),
        scheduled_for=iso(scheduled_for),
        outcome=outcome,
        context_snapshot=snapshot,
    )

    def write_row(store: Store) -> None:
        store.record_run(run)
        store.delete_state(marker)

    problem = _write(settings, f"run {run_id} ({outcome})", write_row)
    if problem is not None:
        snapshot["record_error"] = problem
    log_run(run)
    return RunResult(run=run, event=event, error=error)


def _sweep_and_judge(
    sweep: Callable[[], Mapping[str, Any]],
    snapshot: dict[str, Any],
    *,
    timeout: float,
    cancel: Cancel,
    tick: Callable[[], None] | None,
) -> tuple[Mapping[str, Any] | None, BaseException | None, str]:
    """The sweep's event, what it raised, and the run's outcome; ``snapshot`` gets the why."""
    event: Mapping[str, Any] | None = None
    error: BaseException | None = None
    try:
        event = wait_bounded(sweep, timeout=timeout, cancel=cancel, tick=tick)
    except Stopped as exc:
        error = exc
        outcome = RunOutcome.CANCELLED
        snapshot["cancelled_by"] = stopped_by(exc)
    except Abandoned as exc:
        error = exc
        snapshot["error"] = str(exc)
        if exc.stopped_by is not None:
            outcome = RunOutcome.CANCELLED
            snapshot["cancelled_by"] = exc.stopped_by
        else:
            outcome = "error"
            snapshot["timed_out"] = True
    except StatehubError as exc:
        error = exc
        outcome = "error"
        snapshot["error"] = str(exc)
    except Exception as exc:  # a bug must become a recorded error, not a dead job
        log.exception("a run of the schedule: unexpected failure")
        error = exc
        outcome = "error"
        snapshot["error"] = f"unexpected failure: {exc!r}"
    else:
        detail = event.get("detail") if isinstance(event, Mapping) else None
        detail = detail if isinstance(detail, Mapping) else {}
        snapshot[SWEEP_RESULT_KEY] = dict(detail)
        snapshot["progress_event_id"] = event.get("id") if isinstance(event, Mapping) else None
        outcome = sweep_outcome(detail)
        if outcome == RunOutcome.CANCELLED:
            snapshot["cancelled_by"] = detail.get("cancelled_by")
    return event, error, outcome


def record_missed(
    settings: Settings,
    *,
    origin: str,
    source: str,
    scheduled_for: datetime,
    fired: datetime,
    late_seconds: float,
    run_id: str | None = None,
    definition_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> ActivityRun:
    """Record a run that started past the misfire grace and swept nothing (``missed``)."""
    run = ActivityRun(
        run_id=run_id or str(uuid.uuid4()),
        definition_id=definition_id or settings.schedule.id,
        fired_at=iso(fired),
        scheduled_for=iso(scheduled_for),
        outcome=RunOutcome.MISSED,
        context_snapshot={
            "definition_name": settings.schedule.name,
            "origin": origin,
            "source": source,
            "pid": os.getpid(),
            **(context or {}),
            "late_seconds": round(late_seconds, 3),
            "misfire_grace_seconds": settings.schedule.misfire_grace_seconds,
        },
    )
    _write(settings, f"run {run.run_id} (missed)", lambda store: store.record_run(run))
    log.warning(
        "run %s for %s started %.0f s late (grace %d s): missed, not swept",
        run.run_id,
        run.scheduled_for,
        late_seconds,
        settings.schedule.misfire_grace_seconds,
    )
    return run


def scheduled_sweep(
    settings: Settings,
    *,
    origin: str,
    source: str,
    sweep: Sweep,
    fired: datetime | None = None,
    max_seconds: int | None = None,
) -> Mapping[str, Any]:
    """A run of the schedule by another scheduler (the CronJob's POST, the archived timer).

    First the runs of processes that died mid-sweep, then ``sweep`` recorded as this run,
    waited for ``max_seconds`` (default ``[sweep] max_seconds``) plus the margin. Returns
    the sweep's event; raises what ``sweep`` raised, once the run is recorded.
    """
    try:
        with Store.open(settings.database_path) as store:
            record_interrupted(store)
    except StoreError as exc:
        log.error("the runs of dead processes could not be recorded: %s", exc)
    timeout = None if max_seconds is None else float(max_seconds + HARD_TIMEOUT_MARGIN_SECONDS)
    result = record_run(
        settings,
        origin=origin,
        source=source,
        sweep=sweep,
        fired=fired,
        timeout=timeout,
        context={"scheduled": True},
    )
    if result.error is not None:
        raise result.error
    assert result.event is not None  # no error: the sweep returned its event
    return result.event


def _write(settings: Settings, what: str, write: Callable[[Store], object]) -> str | None:
    """``write`` on the store; never raises: a failure is logged and returned."""
    try:
        with Store.open(settings.database_path) as store:
            write(store)
    except StoreError as exc:
        log.error("%s could not be recorded: %s", what, exc)
        return str(exc)
    return None


def log_run(run: ActivityRun) -> None:
    """One log line for a recorded run (ERROR for an error or a failed sweep)."""
    context = run.context_snapshot
    detail = context.get(SWEEP_RESULT_KEY)
    what = f"run {run.run_id} for {run.scheduled_for}: {run.outcome}"
    if run.outcome == "error":
        log.error("%s: %s", what, context.get("error", "unknown error"))
    elif run.outcome == RunOutcome.CANCELLED:
        log.warning("%s by %s", what, context.get("cancelled_by"))
    elif isinstance(detail, dict) and run.outcome in (RunOutcome.SWEPT, RunOutcome.FAILED):
        errors = detail.get("automation_errors") or []
        first = errors[0] if errors else {}
        (log.error if run.outcome == RunOutcome.FAILED else log.info)(
            "%s as %s: event %s, %s%s",
            what,
            context.get("source"),
            context.get("progress_event_id"),
            sweep_words(detail),
            f"; first: {first.get('repo')}: {first.get('message')}" if errors else "",
        )
    else:
        log.info("%s as %s", what, context.get("source"))


# -- decisions not to run -------------------------------------------------------------


def record_decision(
    settings: Settings,
    *,
    decision: str,
    scheduled_for: datetime,
    context: Mapping[str, Any],
    clock: Clock = utc_now,
) -> None:
    """Record a scheduler's decision not to run a slot (:data:`DECISIONS`); never raises."""
    decided_at = clock()
    row = {
        "decided_at": iso(decided_at),
        "definition_id": settings.schedule.id,
        "scheduled_for": iso(scheduled_for),
        "decision": decision,
        "context": dict(context),
    }
    _write(settings, f"the decision {decision}", lambda store: store.record_decision(row))
    if decision == RunOutcome.OVERLAP_SKIPPED:
        log.warning(
            "slot %s: %s (run %s still going)",
            row["scheduled_for"],
            decision,
            context.get("running_run_id"),
        )
    else:
        log.info("slot %s: %s", row["scheduled_for"], decision)


# -- runs whose process died ----------------------------------------------------------


def _alive(pid: int) -> bool:
    # Our own pid in a marker is an earlier process's (PID 1 in a container).
    return pid != os.getpid() and pid_alive(pid)


def running_markers(store: Store) -> list[dict[str, Any]]:
    """The markers of the runs going on now (their process alive), as dicts."""
    found: list[dict[str, Any]] = []
    for value in store.state_items(MARKER_PREFIX).values():
        try:
            marker = json.loads(value)
            if _alive(int(marker["pid"])):
                found.append(marker)
        except (ValueError, KeyError, TypeError):
            continue
    return found


def record_interrupted(store: Store, *, clock: Clock = utc_now) -> list[ActivityRun]:
    """Turn the markers of runs whose process died into ``error`` runs (``interrupted``).

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
            log.warning("dropping an unreadable run marker %s", key)
            store.delete_state(key)
            continue
        if _alive(pid):
            continue
        if not store.has_run(run_id):  # killed between recording the run and the marker
            run = ActivityRun(
                run_id=run_id,
                definition_id=definition_id,
                fired_at=str(marker.get("fired_at") or iso(clock())),
                scheduled_for=str(marker.get("scheduled_for") or iso(clock())),
                outcome="error",
                context_snapshot={
                    "interrupted": True,
                    "error": f"process {pid} died during this run; recorded at the next start",
                    "recorded_at": iso(clock()),
                    "pid": pid,
                    "origin": marker.get("origin"),
                    "source": marker.get("source"),
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
