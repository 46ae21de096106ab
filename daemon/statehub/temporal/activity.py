"""The sweep activity: one Temporal-run sweep on this host, recorded like a daemon's fire.

It calls :func:`statehub.sweep.run_sweep` (the entry point of every path, so the same
single-flight lock: a sweep already running makes this one lock-skipped) as
``[temporal] source``, heartbeats after each repo and every few seconds between, and waits
at most ``[sweep] max_seconds`` plus a margin. Each run appends one ``activity_runs`` row:
``run_id`` is the workflow run id, ``scheduled_for`` the schedule's nominal time, and
``context_snapshot`` holds the sweep's detail under ``consistency_sweep_remote_all``
(contract section 8), so the runbook's SQL lists the cluster's runs beside the daemon's.
While it runs it keeps the daemon's ``scheduler_fire:`` marker, so a worker killed
mid-sweep is recorded as an interrupted ``error`` run at the next daemon or worker start
(the recorder is :class:`statehub.runrecord.RunRecorder`, shared with the API and the
command line).

A run that reaches the worker later than ``[schedule] misfire_grace_seconds`` after its
nominal time (the worker was down when its slot came) does not sweep when
``misfire_policy = "skip"``: its row's outcome is ``missed`` and its result says so
(``{"outcome": "missed", ...}``), as the daemon drops a misfired slot.

The result is a bounded summary of the progress event (:func:`event_summary`: its id and
the detail's figures, never its lists): Temporal refuses a payload over 2 MB, which a
fleet's event passes (issue 25); the whole event is in the store and in the run's row. A
sweep with an automation error (exit code 1) raises a non-retryable ``ApplicationError`` of
type ``AutomationError`` (with the same summary), so the workflow fails; assessment
failures succeed.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from statehub import alerts
from statehub.errors import StatehubError
from statehub.fire import HARD_TIMEOUT_MARGIN_SECONDS, SWEEP_KEY
from statehub.runrecord import RunRecorder, sweep_outcome
from statehub.settings import Settings
from statehub.sweep import run_sweep
from statehub.temporal.workflow import ACTIVITY_NAME, AUTOMATION_ERROR_TYPE, SweepTask
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.temporal")

HEARTBEAT_SECONDS = 10.0  # at least this often, whatever the sweep is doing
POLL_SECONDS = 1.0  # how soon a cancel (the worker stopping) is noticed


SUMMARY_ERRORS = 5
"""Automation errors named in a run's summary (the rest are counted)."""


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """The run's result: the event's id, type and time, and its detail's scalar figures with
    the lengths of its lists; a few kilobytes whatever the fleet."""
    detail = event.get("detail") or {}
    figures: dict[str, Any] = {
        key: value
        for key, value in detail.items()
        if value is None or isinstance(value, (str, int, float, bool))
    }
    for key, value in detail.items():
        if isinstance(value, list):
            figures[f"{key}_count"] = len(value)
    errors = [e for e in detail.get("automation_errors") or [] if isinstance(e, dict)]
    figures["automation_errors"] = [
        {"repo": error.get("repo"), "message": str(error.get("message"))[:300]}
        for error in errors[:SUMMARY_ERRORS]
    ]
    return {
        "id": event.get("id"),
        "event_type": event.get("event_type"),
        "created_at": event.get("created_at"),
        "detail": figures,
    }


class SweepActivity:
    """The activity, bound to one configuration (the worker's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=ACTIVITY_NAME)
    def sweep(self, task: SweepTask) -> dict[str, Any]:
        """Sweep all repos as ``[temporal] source``; the progress event, or a failure."""
        # The SDK cancels a thread activity by raising in its thread (the worker stopping
        # past its grace, or a cancel from Temporal); shielded, the cancel is seen by the
        # wait loop instead (is_cancelled), the run is recorded, and the cancel raised after.
        with activity.shield_thread_cancel_exception():
            return self._sweep(task)

    def _sweep(self, task: SweepTask) -> dict[str, Any]:
        info = activity.info()
        fired = utc_now()
        scheduled_for = parse_iso(task.scheduled_for) if task.scheduled_for else fired
        temporal = self.settings.temporal
        context: dict[str, Any] = {
            "definition_name": task.definition_name or self.settings.schedule.name,
            "origin": "temporal",
            "source": temporal.source,
            "namespace": info.workflow_namespace,
            "task_queue": info.task_queue,
            "workflow_id": info.workflow_id,
            "workflow_started_at": task.workflow_started_at,
            "scheduled": task.scheduled_for is not None,
            "pid": os.getpid(),
        }
        run = RunRecorder(
            self.settings,
            run_id=info.workflow_run_id or info.activity_id,
            definition_id=task.definition_id,
            fired=fired,
            scheduled_for=scheduled_for,
            context=context,
        )
        started = time.monotonic()
        late = (fired - scheduled_for).total_seconds()
        schedule = self.settings.schedule
        if (
            task.scheduled_for
            and schedule.misfire_policy == "skip"
            and late > schedule.misfire_grace_seconds
        ):
            # The slot is past: sweeping now would be a sweep nobody scheduled.
            run.finish("missed", started, late_seconds=round(late, 3))
            log.warning(
                "run %s for %s started %.0f s late (grace %d s): missed, not swept",
                run.run_id, task.scheduled_for, late, schedule.misfire_grace_seconds,
            )  # fmt: skip
            return {
                "outcome": "missed",
                "scheduled_for": task.scheduled_for,
                "started_at": iso(fired),
                "late_seconds": round(late, 3),
                "misfire_grace_seconds": schedule.misfire_grace_seconds,
            }
        try:
            event = self._sweep_with_heartbeats()
        except _Stopped as exc:
            run.finish("error", started, error=str(exc), interrupted=True)
            raise ApplicationError(str(exc), type="Interrupted", non_retryable=True) from None
        except (StatehubError, _TimedOut) as exc:
            run.finish("error", started, error=str(exc), timed_out=isinstance(exc, _TimedOut))
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None
        detail = event["detail"]
        context[SWEEP_KEY] = detail
        context["progress_event_id"] = event.get("id")
        run.finish(sweep_outcome(detail), started)
        if detail.get("automation_error") or detail.get("exit_code") == 1:
            errors = detail.get("automation_errors") or []
            first = errors[0] if errors else {}
            message = (
                f"sweep {detail.get('run_id')} (event {event.get('id')}) had {len(errors)} "
                f"automation error(s); first: {first.get('repo')}: {first.get('message')}"
            )
            log.error("%s", message)
            summary = event_summary(event)
            raise ApplicationError(message, summary, type=AUTOMATION_ERROR_TYPE, non_retryable=True)
        return event_summary(event)

    def _sweep_with_heartbeats(self) -> dict[str, Any]:
        """run_sweep in a thread of its own; this one heartbeats and keeps the time bound.

        The sweep may report progress from any thread (or process pool callback), so the
        heartbeat is sent from here, the activity's own thread.
        """
        progress: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                # Pinged and alerted like every scheduled sweep ([notify]), whoever runs it.
                outcome["value"] = alerts.observed_sweep(
                    self.settings,
                    source=self.settings.temporal.source,
                    whole_fleet=True,
                    run=lambda: run_sweep(
                        self.settings,
                        remote=self.settings.schedule.remote,
                        source=self.settings.temporal.source,
                        progress=lambda done, total, repo: progress.put((done, total, repo)),
                    ),
                ).as_dict()
            except BaseException as exc:  # handed to the activity's thread, raised there
                outcome["error"] = exc
            finally:
                progress.put(None)

        threading.Thread(target=work, name="statehub-temporal-sweep", daemon=True).start()
        budget = self.settings.sweep.max_seconds + HARD_TIMEOUT_MARGIN_SECONDS
        deadline = time.monotonic() + budget
        last: tuple[Any, ...] = ()  # the newest progress, repeated by the periodic heartbeat
        beaten = 0.0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimedOut(
                    f"the sweep did not finish within {budget} s (max_seconds + margin); "
                    "it was abandoned and may hold the sweep lock until it ends"
                )
            try:
                item = progress.get(timeout=min(POLL_SECONDS, remaining))
            except queue.Empty:
                item = ()
            if item is None:
                break
            # Set by Temporal, or by the worker once its stop grace is over (SIGTERM).
            if activity.is_cancelled():
                raise _Stopped("the worker stopped (or the run was cancelled) mid-sweep")
            now = time.monotonic()
            if item or now - beaten >= HEARTBEAT_SECONDS:
                last = item or last
                activity.heartbeat(*last)
                beaten = now
        if "error" in outcome:
            raise outcome["error"]
        value: dict[str, Any] = outcome["value"]
        return value


class _TimedOut(Exception):
    """The sweep did not end within its budget and margin."""


class _Stopped(Exception):
    """The worker is stopping, or Temporal cancelled the run."""
