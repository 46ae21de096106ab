"""``statehub temporal hubs``: every hub's schedule in the namespace, read from Temporal only.

Temporal is the store the hubs share: the view never opens another hub's database. It
lists the namespace's schedules (Temporal's visibility) and keeps those that start the
statehub workflow, describes each (owner from its memo, trigger, paused, next fire,
recent actions), then describes each recent run and reads its result, which says what
the run did: ``swept``, ``failed`` (the sweep had an automation error, C-00),
``lock_skipped``, ``missed`` (it reached the worker past its slot's grace),
``running``, ``timed_out`` (no worker took it in time), ``cancelled`` or ``error``.

A hub is *quiet* when it is not paused and has no run that swept (``swept`` or
``failed``) within its definition's ``primary_grace_minutes``, the same grace a standby
daemon gives its primary (a schedule younger than that is not yet quiet).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionResult,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from statehub.safetext import visible
from statehub.settings import ScheduleSettings, Settings
from statehub.temporal.schedule import (
    CALL_SECONDS,
    Listed,
    _describe,
    _listed,
    actual,
    connect,
    owner,
)
from statehub.temporal.workflow import AUTOMATION_ERROR_TYPE, WORKFLOW_NAME
from statehub.timefmt import iso, parse_iso, utc_now

RECENT_RUNS = 5
SWEPT = ("swept", "failed")  # outcomes of a run that swept the hub's fleet
DEFAULT_GRACE_MINUTES = ScheduleSettings().primary_grace_minutes  # a schedule without one


async def fleet(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """The fleet view: every statehub schedule of the namespace and its last runs."""
    now = now or utc_now()
    client = await connect(settings)
    listed = [entry for entry in await _listed(client) if _is_statehub(entry)]
    hubs = [
        hub
        for hub in await asyncio.gather(*(_hub(client, entry, now) for entry in listed))
        if hub is not None
    ]
    hubs.sort(key=lambda hub: (str(hub["hub"] or ""), hub["schedule_id"]))
    return {
        "address": settings.temporal.address,
        "namespace": settings.temporal.namespace,
        "read_at": iso(now),
        "hubs": hubs,
        "quiet": [hub["hub"] or hub["schedule_id"] for hub in hubs if hub["quiet"]],
    }


def _is_statehub(entry: Listed) -> bool:
    return entry.workflow == WORKFLOW_NAME or "definition_id" in entry.memo


async def _hub(client: Client, entry: Listed, now: datetime) -> dict[str, Any] | None:
    description = await _describe(client, entry.id)
    if description is None:  # deleted since the listing
        return None
    signature = actual(description)
    info = description.info
    recent = list(info.recent_actions)[-RECENT_RUNS:][::-1]
    runs = list(await asyncio.gather(*(_run(client, action) for action in recent)))
    grace = float(signature.get("primary_grace_minutes") or DEFAULT_GRACE_MINUTES)
    swept = [run for run in runs if run["outcome"] in SWEPT]
    last_swept = swept[0]["closed_at"] if swept else None
    paused = description.schedule.state.paused
    since = (
        parse_iso(last_swept)
        if last_swept
        else (info.created_at.astimezone(now.tzinfo) if info.created_at else None)
    )
    quiet = not paused and since is not None and now - since > timedelta(minutes=grace)
    spec = description.schedule.spec
    return {
        "hub": owner(description),
        "schedule_id": description.id,
        "definition_id": signature.get("definition_id") or entry.memo.get("definition_id"),
        "definition_name": signature.get("definition_name") or entry.memo.get("definition_name"),
        "trigger": signature.get("trigger") or ", ".join(spec.cron_expressions) or None,
        "timezone": signature.get("timezone") or spec.time_zone_name or "UTC",
        "task_queue": signature.get("task_queue"),
        "paused": paused,
        "next_fire": iso(info.next_action_times[0]) if info.next_action_times else None,
        "grace_minutes": grace,
        "last_swept_at": last_swept,
        "last_outcome": runs[0]["outcome"] if runs else None,
        "quiet": quiet,
        "runs": runs,
    }


async def _run(client: Client, result: ScheduleActionResult) -> dict[str, Any]:
    """One recent action of a schedule: its workflow run's status and what it did."""
    action = result.action
    entry: dict[str, Any] = {
        "scheduled_at": iso(result.scheduled_at),
        "started_at": iso(result.started_at),
        "closed_at": None,
        "workflow_id": None,
        "run_id": None,
        "status": "unknown",
        "outcome": "unknown",
    }
    if not isinstance(action, ScheduleActionExecutionStartWorkflow):
        return entry
    entry.update(workflow_id=action.workflow_id, run_id=action.first_execution_run_id)
    handle = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    try:
        described = await asyncio.wait_for(handle.describe(), CALL_SECONDS)
    except (RPCError, TimeoutError):
        return entry
    status = "unknown" if described.status is None else described.status.name.lower()
    entry["status"] = status
    if described.close_time is not None:
        entry["closed_at"] = iso(described.close_time)
    entry["outcome"] = {
        "running": "running",
        "timed_out": "timed_out",
        "canceled": "cancelled",
        "terminated": "cancelled",
    }.get(status, "error")
    if status in ("completed", "failed"):
        entry.update(await _result(handle))
    return entry


async def _result(handle: Any) -> dict[str, Any]:
    """The outcome of a closed run from its result (the progress event, or ``missed``)."""
    try:
        value = await asyncio.wait_for(handle.result(follow_runs=False), CALL_SECONDS)
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        kind = cause.type if isinstance(cause, ApplicationError) else None
        return {"outcome": "failed" if kind == AUTOMATION_ERROR_TYPE else "error", "error": kind}
    except (RPCError, TimeoutError):
        return {"outcome": "unknown"}
    if not isinstance(value, dict):
        return {"outcome": "unknown"}
    if value.get("outcome") == "missed":
        return {"outcome": "missed", "late_seconds": value.get("late_seconds")}
    detail = value.get("detail") or {}
    return {
        "outcome": "lock_skipped" if detail.get("lock_skipped") else "swept",
        "exit_code": detail.get("exit_code"),
        "repos_total": detail.get("repos_total"),
        "assessment_failures": detail.get("assessment_failures"),
    }


def hubs_command(settings: Settings, *, as_json: bool) -> int:
    """``statehub temporal hubs [--json]``."""
    document = asyncio.run(fleet(settings))
    if as_json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    # Names come from other hubs' memos: made visible, never written raw to a terminal.
    print("\n".join(visible(line) for line in render(document)))
    return 0


def render(document: dict[str, Any]) -> list[str]:
    """The fleet view as lines of text (also the status page's section)."""
    hubs = document["hubs"]
    lines = [
        f"{len(hubs)} hub(s) on {document['address']} ({document['namespace']}), "
        f"read at {document['read_at']}; times in UTC"
    ]
    for hub in hubs:
        state = "paused" if hub["paused"] else f"next {hub['next_fire'] or '-'}"
        quiet = f"; QUIET: no sweep within {hub['grace_minutes']:g} min" if hub["quiet"] else ""
        lines += [
            f"{hub['hub'] or '(no hub name)'}  {hub['trigger']} in {hub['timezone']}, {state}"
            f"  [{hub['schedule_id']}]",
            f"  last swept {hub['last_swept_at'] or 'never'}{quiet}",
            *(
                f"  {run['scheduled_at']}  {run['outcome']:<12} {run['workflow_id'] or '-'}"
                for run in hub["runs"]
            ),
        ]
        if not hub["runs"]:
            lines.append("  (no runs yet)")
    return lines
