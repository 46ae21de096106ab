"""The sweep activity: one Temporal-run sweep on this host, recorded as a run of the schedule.

It sweeps all repos in process as ``[temporal] source`` (the same single-flight lock as every
path: a sweep already running makes this one lock-skipped), recorded by
:func:`statehub.runs.record_run` like every run of the schedule: its marker, its
``activity_runs`` row (``run_id`` the workflow run id, ``scheduled_for`` the schedule's
nominal time), its outcome. While it waits (:func:`statehub.runs.wait_bounded`, at most
``[sweep] max_seconds`` plus a margin) it heartbeats with the newest progress at least
every few seconds; a cancel from Temporal, or the worker stopping, stops the sweep, which
records itself cancelled.

A run that reaches the worker later than ``[schedule] misfire_grace_seconds`` after its
nominal time (the worker was down when its slot came) does not sweep when
``misfire_policy = "skip"``: its row's outcome is ``missed`` and its result says so
(``{"outcome": "missed", ...}``), as the daemon drops a misfired slot.

The result is a bounded summary of the progress event (:func:`event_summary`: its id and
the detail's figures and exact counts, never its lists): Temporal refuses a payload over
2 MB, which a fleet's event passes (issue 25); the whole event is in the store and in the
run's row. A run whose outcome is not ``swept`` or ``lock_skipped`` fails the workflow with
a non-retryable ``ApplicationError``: ``AutomationError`` (with the same summary) for a sweep
with a C-00 (``failed``), ``Cancelled`` when stopped, the error's type otherwise; assessment
failures succeed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from statehub.cancel import Cancel
from statehub.contract import Detail, RunOutcome
from statehub.runs import record_missed, record_run, sweep_in_process
from statehub.settings import Settings
from statehub.sweepsummary import counted, list_counts
from statehub.temporal.workflow import ACTIVITY_NAME, AUTOMATION_ERROR_TYPE, SweepTask
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.temporal")

HEARTBEAT_SECONDS = 10.0  # at least this often, whatever the sweep is doing


SUMMARY_ERRORS = 5
"""Automation errors named in a run's summary (``automation_errors_total`` counts them all)."""
SUMMARY_MESSAGE_CHARS = 300
"""Characters of an automation error's message in a run's summary."""


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """The run's result: the event's id, type and time, and in ``detail`` its detail's scalar
    figures, the exact count of each list the event's bound may cut (taken through
    :func:`statehub.sweepsummary.list_counts`: ``repos_need_action``, ``repos_clean``,
    ``repos_missing``, ``repos_over_budget``, ``automation_errors_total``, never the number
    listed), ``warnings_total``, and the first :data:`SUMMARY_ERRORS` automation errors; a
    few kilobytes whatever the fleet. docs/temporal.md documents its keys."""
    detail = event.get("detail") or {}
    figures: dict[str, Any] = {
        key: value
        for key, value in detail.items()
        if value is None or isinstance(value, (str, int, float, bool))
    }
    figures.update(list_counts(detail))
    figures[Detail.WARNINGS_TOTAL] = counted(detail, Detail.WARNINGS_TOTAL, Detail.WARNINGS)
    errors = [e for e in detail.get(Detail.AUTOMATION_ERRORS) or [] if isinstance(e, dict)]
    figures[Detail.AUTOMATION_ERRORS] = [
        {"repo": error.get("repo"), "message": str(error.get("message"))[:SUMMARY_MESSAGE_CHARS]}
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
        self.stop_reason: str | None = None
        self._current: Cancel | None = None

    def stop(self, reason: str) -> None:
        """The worker is stopping (``reason``: the signal): the running sweep, if any, stops
        now and records itself cancelled, naming it."""
        self.stop_reason = reason
        current = self._current
        if current is not None:
            current.cancel(reason)

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
        run_id = info.workflow_run_id or info.activity_id
        context = {
            "definition_name": task.definition_name or self.settings.schedule.name,
            "namespace": info.workflow_namespace,
            "task_queue": info.task_queue,
            "workflow_id": info.workflow_id,
            "workflow_started_at": task.workflow_started_at,
            "scheduled": task.scheduled_for is not None,
        }
        # This run as statehub.runs records it, missed or swept.
        the_run: dict[str, Any] = {
            "origin": "temporal",
            "source": temporal.source,
            "scheduled_for": scheduled_for,
            "fired": fired,
            "run_id": run_id,
            "definition_id": task.definition_id,
            "context": context,
        }
        late = (fired - scheduled_for).total_seconds()
        schedule = self.settings.schedule
        if (
            task.scheduled_for
            and schedule.misfire_policy == "skip"
            and late > schedule.misfire_grace_seconds
        ):
            # The slot is past: sweeping now would be a sweep nobody scheduled.
            record_missed(self.settings, late_seconds=late, **the_run)
            return {
                "outcome": RunOutcome.MISSED,
                "scheduled_for": task.scheduled_for,
                "started_at": iso(fired),
                "late_seconds": round(late, 3),
                "misfire_grace_seconds": schedule.misfire_grace_seconds,
            }
        newest: list[Any] = []  # the newest progress, repeated by the periodic heartbeat
        # When the last heartbeat went, and what it said. None sent yet: the first one
        # carries the first repo's progress (the SDK throttles what follows it).
        sent: list[Any] = [time.monotonic(), []]

        def sweep(cancel: Cancel) -> dict[str, Any]:
            return sweep_in_process(
                self.settings,
                source=temporal.source,
                cancel=cancel,
                progress=lambda done, total, repo: newest.__setitem__(
                    slice(None), [done, total, repo]
                ),
            )

        cancel = Cancel()
        self._current = cancel
        if self.stop_reason is not None:
            cancel.cancel(self.stop_reason)

        def tick() -> None:
            # Set by Temporal (a cancel of the run), or by the worker once its grace is over.
            if activity.is_cancelled():
                cancel.cancel(self.stop_reason or "temporal")
                return
            now = time.monotonic()
            if newest != sent[1] or now - sent[0] >= HEARTBEAT_SECONDS:
                activity.heartbeat(*newest)
                sent[:] = [now, list(newest)]

        result = record_run(self.settings, sweep=sweep, cancel=cancel, tick=tick, **the_run)
        self._current = None
        run = result.run
        context = run.context_snapshot
        if run.outcome in (RunOutcome.SWEPT, RunOutcome.LOCK_SKIPPED) and result.event is not None:
            return event_summary(dict(result.event))
        if run.outcome == RunOutcome.FAILED and result.event is not None:
            detail = result.event["detail"]
            errors = detail.get(Detail.AUTOMATION_ERRORS) or []
            first = errors[0] if errors else {}
            total = counted(detail, Detail.AUTOMATION_ERRORS_TOTAL, Detail.AUTOMATION_ERRORS)
            message = (
                f"sweep {detail.get(Detail.RUN_ID)} (event {result.event.get('id')}) had "
                f"{total} automation error(s); first: {first.get('repo')}: "
                f"{first.get('message')}"
            )
            summary = event_summary(dict(result.event))
            raise ApplicationError(message, summary, type=AUTOMATION_ERROR_TYPE, non_retryable=True)
        if run.outcome == RunOutcome.CANCELLED:
            message = f"the sweep was cancelled by {context.get('cancelled_by')}"
            raise ApplicationError(message, type="Cancelled", non_retryable=True)
        error = result.error
        raise ApplicationError(
            str(context.get("error") or error),
            type="TimedOut" if context.get("timed_out") else type(error).__name__,
            non_retryable=True,
        )
