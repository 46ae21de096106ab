"""The sweep workflow: one scheduled fire, one sweep activity on this host's task queue.

Temporal replays a workflow's code to rebuild its state, so this module holds no I/O and
imports nothing of statehub but plain data: it passes the schedule's nominal time (the
``TemporalScheduledStartTime`` search attribute) to the activity and returns what the
activity returns: the progress event, or ``{"outcome": "missed", ...}`` when the run
reached the worker past its slot's grace (``statehub temporal hubs`` reads both). The
activity is tried once: a retry would be a second sweep in the same slot. An automation
error fails the activity (non-retryable), so the workflow fails; assessment failures do
not. An input that is not a :class:`SweepInput` (a run started by hand with other
arguments) fails the run at once, non-retryable, with one line: Temporal would otherwise
retry its workflow task forever, a traceback each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ApplicationError

WORKFLOW_NAME = "statehub-consistency-sweep"
ACTIVITY_NAME = "statehub-sweep"
AUTOMATION_ERROR_TYPE = "AutomationError"  # ApplicationError.type of a sweep with a C-00
BAD_INPUT_TYPE = "BadInput"  # ApplicationError.type of a run whose input is not a SweepInput
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

# The activity's own bound is [sweep] max_seconds (at most 3600) plus a margin; this one
# only catches a worker that stopped answering. Heartbeats come at least every 10 s.
ACTIVITY_START_TO_CLOSE = timedelta(seconds=3600 + 180)
ACTIVITY_HEARTBEAT_TIMEOUT = timedelta(seconds=60)


@dataclass(frozen=True)
class SweepInput:
    """The Schedule's argument to each run: which definition it fires."""

    definition_id: str
    definition_name: str = ""


@dataclass(frozen=True)
class SweepTask:
    """What the workflow hands to the activity."""

    definition_id: str
    definition_name: str
    scheduled_for: str | None  # ISO-8601, the schedule's nominal time; None when started by hand
    workflow_started_at: str  # ISO-8601


def sweep_input(raw: Any) -> SweepInput:
    """``raw`` (the run's decoded argument) as a SweepInput; else a non-retryable failure."""
    if isinstance(raw, dict):
        definition_id, name = raw.get("definition_id"), raw.get("definition_name", "")
        if isinstance(definition_id, str) and definition_id and isinstance(name, str):
            return SweepInput(definition_id=definition_id, definition_name=name)
    raise ApplicationError(
        "the run's input is not {'definition_id': ..., 'definition_name': ...} "
        f"(got {type(raw).__name__}): start it from the Schedule (statehub temporal sync)",
        type=BAD_INPUT_TYPE,
        non_retryable=True,
    )


@workflow.defn(name=WORKFLOW_NAME)
class SweepWorkflow:
    """Runs the sweep activity once and returns its progress event."""

    @workflow.run
    async def run(self, raw: Any = None) -> dict[str, Any]:
        request = sweep_input(raw)  # Any: a malformed input reaches us instead of the SDK
        info = workflow.info()
        nominal = info.typed_search_attributes.get(SCHEDULED_START)
        task = SweepTask(
            definition_id=request.definition_id,
            definition_name=request.definition_name,
            scheduled_for=None if nominal is None else nominal.isoformat(),
            workflow_started_at=info.start_time.isoformat(),
        )
        event: dict[str, Any] = await workflow.execute_activity(
            ACTIVITY_NAME,
            task,
            start_to_close_timeout=ACTIVITY_START_TO_CLOSE,
            heartbeat_timeout=ACTIVITY_HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            result_type=dict,
        )
        return event
