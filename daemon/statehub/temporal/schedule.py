"""The ``[schedule]`` definition as a Temporal Schedule: connect, sync, show.

:func:`desired` is what the Schedule should be, as a flat dict (the *signature*): the
cron(s) in the definition's time zone, overlap SKIP, the catch-up window from the misfire
policy, paused when ``enabled = false``, the workflow and this host's task queue. ``sync``
writes it with the signature in the action's memo (key ``statehub``), so the next ``sync``
and ``show`` compare the definition with what sync last wrote; the state that Temporal
holds itself (paused, overlap, task queue, workflow) is read back from the Schedule, so a
change made with the ``temporal`` CLI shows as drift too.

Each Schedule belongs to one hub: its memo records the owner (``[hub] name`` and the
definition id), ``sync`` refuses to update a schedule another hub owns, or to schedule a
definition another hub already schedules, unless ``--force`` (a ConfigError, exit 78:
the fix is a fresh ``[schedule] id`` or ``[hub] name``); ``show`` exits 3
(:data:`~statehub.errors.EXIT_DRIFT`) when the server's schedule differs.

Where Temporal reads cron differently, the definition is translated
(:func:`statehub.cron.and_crons`): day-of-week as 0-6, and a cron with both day fields
set as two crons, since a Temporal spec fires when any of its crons matches. Temporal
keeps a catch-up window of at least 10 s, so a shorter ``misfire_grace_seconds`` is raised
to 10.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleListActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    TLSConfig,
)
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from statehub.cron import and_crons, next_fire_times
from statehub.errors import EXIT_DRIFT, EXIT_OK, ClusterError, ConfigError
from statehub.runs import HARD_TIMEOUT_MARGIN_SECONDS
from statehub.settings import Settings
from statehub.temporal.workflow import WORKFLOW_NAME, SweepInput, SweepWorkflow
from statehub.timefmt import iso

MEMO_KEY = "statehub"
MIN_CATCHUP_SECONDS = 10  # Temporal's floor for a Schedule's catch-up window
RUN_ONCE_CATCHUP_SECONDS = 365 * 24 * 3600  # misfire_policy = "run_once": however late
CONNECT_SECONDS = 10.0
CALL_SECONDS = 30.0

T = TypeVar("T")


# -- connecting -----------------------------------------------------------------------


def _read_file(settings: Settings, key: str, value: str) -> bytes:
    path = settings.resolve(Path(value))
    shown = str(settings.config_file or "(built-in defaults)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(shown, f"temporal.{key}", f"{path}: {exc.strerror}") from None
    if not data.strip():
        raise ConfigError(shown, f"temporal.{key}", f"{path} is empty")
    return data


@functools.cache
def _runtime() -> Runtime:
    """The SDK's runtime, its Rust core's log lines forwarded to Python logging.

    By default the core writes colored multi-line records to stderr; forwarded, they are
    one line each in the statehub format (journald priorities included), warnings and up.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )


async def connect(settings: Settings) -> Client:
    """A client of ``[temporal] address`` and ``namespace``; ClusterError when unreachable."""
    temporal = settings.temporal
    tls: bool | TLSConfig = False
    if temporal.tls_cert_file:
        tls = TLSConfig(
            client_cert=_read_file(settings, "tls_cert_file", temporal.tls_cert_file),
            client_private_key=_read_file(settings, "tls_key_file", temporal.tls_key_file),
        )
    elif temporal.uses_tls:
        tls = True
    api_key = None
    if temporal.api_key_file:
        api_key = _read_file(settings, "api_key_file", temporal.api_key_file).decode().strip()
    try:
        return await asyncio.wait_for(
            Client.connect(
                temporal.address,
                namespace=temporal.namespace,
                tls=tls,
                api_key=api_key,
                identity=f"statehub@{settings.temporal_task_queue}",
                runtime=_runtime(),
            ),
            CONNECT_SECONDS,
        )
    except (RuntimeError, RPCError, TimeoutError, OSError) as exc:
        raise ClusterError(f"cannot connect to Temporal at {temporal.address}: {exc}") from exc


async def _call(what: str, call: Awaitable[T]) -> T:
    """``await call``, bounded, with a Temporal failure mapped to ClusterError."""
    try:
        return await asyncio.wait_for(call, CALL_SECONDS)
    except RPCError as exc:
        raise ClusterError(f"{what}: {exc.status.name}: {exc.message}") from exc
    except TimeoutError as exc:
        raise ClusterError(f"{what}: no answer within {CALL_SECONDS:.0f} s") from exc


# -- the schedule as it should be -----------------------------------------------------


def catchup_seconds(settings: Settings) -> int:
    schedule = settings.schedule
    if schedule.misfire_policy == "run_once":
        return RUN_ONCE_CATCHUP_SECONDS
    return max(MIN_CATCHUP_SECONDS, schedule.misfire_grace_seconds)


def workflow_id(settings: Settings) -> str:
    """The id prefix of the runs (Temporal appends each run's nominal time)."""
    return f"statehub-sweep-{settings.temporal_schedule_id}"


def execution_timeout_seconds(settings: Settings) -> int:
    """A run that found no worker gives up after this, so the next slot is not skipped."""
    return settings.sweep.max_seconds + 2 * HARD_TIMEOUT_MARGIN_SECONDS


def desired(settings: Settings) -> dict[str, Any]:
    """The Schedule's signature as the local definition wants it."""
    schedule = settings.schedule
    return {
        "hub": settings.hub_name,
        "definition_id": schedule.id,
        "definition_name": schedule.name,
        "trigger": schedule.trigger,
        "timezone": schedule.timezone,
        "cron_expressions": and_crons(schedule.trigger),
        "overlap": "skip",
        "catchup_window_seconds": catchup_seconds(settings),
        "paused": not schedule.enabled,
        "workflow": WORKFLOW_NAME,
        "workflow_id": workflow_id(settings),
        "task_queue": settings.temporal_task_queue,
        "execution_timeout_seconds": execution_timeout_seconds(settings),
        "misfire_grace_seconds": schedule.misfire_grace_seconds,
        "primary_grace_minutes": schedule.primary_grace_minutes,
    }


def owner_memo(settings: Settings) -> dict[str, Any]:
    """The schedule's own memo (written at creation; Temporal never updates it)."""
    return {
        "hub": settings.hub_name,
        "definition_id": settings.schedule.id,
        "definition_name": settings.schedule.name,
    }


def build(settings: Settings) -> Schedule:
    """The Temporal Schedule of the local definition."""
    signature = desired(settings)
    schedule = settings.schedule
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SweepWorkflow.run,
            SweepInput(definition_id=schedule.id, definition_name=schedule.name),
            id=signature["workflow_id"],
            task_queue=signature["task_queue"],
            execution_timeout=timedelta(seconds=signature["execution_timeout_seconds"]),
            memo={
                MEMO_KEY: signature,
                "definition_id": schedule.id,
                "definition_name": schedule.name,
            },
        ),
        spec=ScheduleSpec(
            cron_expressions=signature["cron_expressions"], time_zone_name=schedule.timezone
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(seconds=signature["catchup_window_seconds"]),
        ),
        state=ScheduleState(
            paused=signature["paused"],
            note="managed by statehub temporal sync"
            + ("" if schedule.enabled else ": [schedule] enabled = false"),
        ),
    )


# -- the schedule as Temporal holds it ------------------------------------------------


def actual(description: ScheduleDescription) -> dict[str, Any]:
    """The signature of a described Schedule: what sync wrote, and the live state."""
    schedule = description.schedule
    signature: dict[str, Any] = {}
    action = schedule.action
    if isinstance(action, ScheduleActionStartWorkflow):
        memo = action.memo or {}
        raw = memo.get(MEMO_KEY)
        if isinstance(raw, Payload):
            decoded = DataConverter.default.payload_converter.from_payloads([raw])[0]
            if isinstance(decoded, dict):
                signature.update(decoded)
        signature.update(
            workflow=action.workflow, workflow_id=action.id, task_queue=action.task_queue
        )
    signature["paused"] = schedule.state.paused
    signature["overlap"] = schedule.policy.overlap.name.lower()
    if schedule.policy.catchup_window is not None:
        signature["catchup_window_seconds"] = int(schedule.policy.catchup_window.total_seconds())
    return signature


def differences(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """``key: have -> want`` for each key of the signature that differs."""
    return [
        f"{key}: {json.dumps(have.get(key))} -> {json.dumps(value)}"
        for key, value in want.items()
        if have.get(key) != value
    ]


async def _describe(client: Client, schedule_id: str) -> ScheduleDescription | None:
    try:
        return await asyncio.wait_for(
            client.get_schedule_handle(schedule_id).describe(), CALL_SECONDS
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise ClusterError(
            f"describe schedule {schedule_id}: {exc.status.name}: {exc.message}"
        ) from exc
    except TimeoutError as exc:
        raise ClusterError(f"describe schedule {schedule_id}: no answer") from exc


# -- sync -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    """What ``sync`` did, or would do with ``--dry-run``."""

    schedule_id: str
    action: Literal["create", "update", "unchanged"]
    changes: list[str]
    desired: dict[str, Any]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "action": self.action,
            "changes": self.changes,
            "dry_run": self.dry_run,
            "desired": self.desired,
        }


async def sync(settings: Settings, *, dry_run: bool = False, force: bool = False) -> SyncResult:
    """Create or update the Schedule from ``[schedule]``; nothing when it already matches.

    Refused (ConfigError) when the schedule is another hub's, or when another hub's
    schedule already runs this definition, unless ``force``.
    """
    schedule_id = settings.temporal_schedule_id
    want = desired(settings)
    client = await connect(settings)
    description = await _describe(client, schedule_id)
    if not force:
        if description is not None:
            _refuse_other_owner(settings, description)
        await _refuse_shared_definition(settings, client)
    if description is None:
        if not dry_run:
            await _call(
                f"create schedule {schedule_id}",
                client.create_schedule(schedule_id, build(settings), memo=owner_memo(settings)),
            )
        return SyncResult(schedule_id, "create", [], want, dry_run)
    changes = differences(want, actual(description))
    if not changes:
        return SyncResult(schedule_id, "unchanged", [], want, dry_run)
    if not dry_run:
        fresh = build(settings)

        def updater(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=fresh)

        await _call(
            f"update schedule {schedule_id}",
            client.get_schedule_handle(schedule_id).update(updater),
        )
    return SyncResult(schedule_id, "update", changes, want, dry_run)


def owner(description: ScheduleDescription) -> str | None:
    """The hub a described schedule belongs to (None: written before hubs had names)."""
    hub = actual(description).get("hub")
    if isinstance(hub, str) and hub:
        return hub
    memo = description.raw_description.memo.fields.get("hub")
    if memo is not None:
        decoded = DataConverter.default.payload_converter.from_payloads([memo])[0]
        if isinstance(decoded, str) and decoded:
            return decoded
    return None


def _config_file(settings: Settings) -> str:
    return str(settings.config_file or "(built-in defaults)")


def _refuse_other_owner(settings: Settings, description: ScheduleDescription) -> None:
    hub = owner(description)
    if hub is not None and hub != settings.hub_name:
        raise ConfigError(
            _config_file(settings),
            "temporal.schedule_id" if settings.temporal.schedule_id else "hub.name",
            f"schedule {description.id} belongs to hub {hub!r}, not {settings.hub_name!r}: "
            "not updated (--force takes it over)",
        )


async def _refuse_shared_definition(settings: Settings, client: Client) -> None:
    """Another schedule in the namespace runs this definition for another hub: refuse."""
    mine = settings.temporal_schedule_id
    definition = settings.schedule.id
    for listed in await _listed(client):
        if listed.id == mine or listed.memo.get("definition_id") != definition:
            continue
        hub = listed.memo.get("hub")
        if hub == settings.hub_name:
            continue  # this hub's own schedule under another id: the operator's choice
        whose = f"hub {hub!r}" if hub else "a hub without a name (written before hub names)"
        raise ConfigError(
            _config_file(settings),
            "schedule.id",
            f"definition {definition} is already scheduled by {whose} "
            f"(schedule {listed.id}): give this hub its own (statehub init writes a fresh "
            "id), or --force",
        )


@dataclass(frozen=True)
class Listed:
    """A schedule of the namespace as the listing gives it: id and decoded memo."""

    id: str
    memo: dict[str, Any]
    workflow: str | None


async def _listed(client: Client) -> list[Listed]:
    """Every schedule of the namespace (Temporal's visibility), its memo decoded."""

    async def collect() -> list[Listed]:
        found: list[Listed] = []
        async for entry in await client.list_schedules():
            try:
                memo = dict(await entry.memo())
            except Exception:  # a memo another tool wrote, in an encoding of its own
                memo = {}
            workflow = None
            if entry.schedule is not None and isinstance(
                entry.schedule.action, ScheduleListActionStartWorkflow
            ):
                workflow = entry.schedule.action.workflow
            found.append(Listed(entry.id, memo, workflow))
        return found

    try:
        return await _call("list schedules", collect())
    except ValueError as exc:  # the SDK cannot read a listed schedule's action
        raise ClusterError(f"list schedules: {exc}") from exc


def sync_command(settings: Settings, *, dry_run: bool, as_json: bool, force: bool = False) -> int:
    """``statehub temporal sync [--dry-run] [--force]``."""
    result = asyncio.run(sync(settings, dry_run=dry_run, force=force))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return 0
    would = "would " if dry_run else ""
    where = f"{settings.temporal.address} ({settings.temporal.namespace})"
    if result.action == "unchanged":
        print(f"schedule {result.schedule_id} on {where}: up to date, nothing to do")
    elif result.action == "create":
        print(f"schedule {result.schedule_id} on {where}: {would}create")
        for key, value in result.desired.items():
            print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    else:
        print(f"schedule {result.schedule_id} on {where}: {would}update")
        for change in result.changes:
            print(f"  {change}")
    return 0


# -- show -----------------------------------------------------------------------------

RECENT_RUNS = 5


async def show(settings: Settings) -> dict[str, Any]:
    """The Schedule as Temporal holds it, the local definition, and their drift."""
    from statehub.scheduler import schedule_trigger

    schedule_id = settings.temporal_schedule_id
    want = desired(settings)
    local_times = [iso(moment) for moment in next_fire_times(schedule_trigger(settings), 5)]
    document: dict[str, Any] = {
        "hub": settings.hub_name,
        "schedule_id": schedule_id,
        "address": settings.temporal.address,
        "namespace": settings.temporal.namespace,
        "local": {**want, "next_fire_times": local_times},
        "temporal": None,
        "drift": [],
    }
    client = await connect(settings)
    description = await _describe(client, schedule_id)
    if description is None:
        document["drift"] = ["the schedule does not exist in Temporal: run statehub temporal sync"]
        return document
    have = actual(description)
    spec = description.schedule.spec
    info = description.info
    temporal_times = [iso(moment) for moment in info.next_action_times[:5]]
    document["temporal"] = {
        **have,
        "spec": {
            "cron_expressions": list(spec.cron_expressions),
            "calendars": [str(calendar) for calendar in spec.calendars],
            "time_zone_name": spec.time_zone_name,
        },
        "note": description.schedule.state.note,
        "next_fire_times": temporal_times,
        "num_actions": info.num_actions,
        "num_actions_skipped_overlap": info.num_actions_skipped_overlap,
        "running": [
            execution.workflow_id
            for execution in info.running_actions
            if isinstance(execution, ScheduleActionExecutionStartWorkflow)
        ],
        "recent_runs": await _recent_runs(client, description),
    }
    drift = differences(want, have)
    if not have.get("paused") and temporal_times and temporal_times != local_times:
        drift.append(
            f"next fire times: temporal {temporal_times[:2]}... local {local_times[:2]}..."
        )
    document["drift"] = drift
    return document


async def _recent_runs(client: Client, description: ScheduleDescription) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for result in list(description.info.recent_actions)[-RECENT_RUNS:][::-1]:
        action = result.action
        workflow_id: str | None = None
        run_id: str | None = None
        if isinstance(action, ScheduleActionExecutionStartWorkflow):
            workflow_id, run_id = action.workflow_id, action.first_execution_run_id
        entry: dict[str, Any] = {
            "scheduled_at": iso(result.scheduled_at),
            "started_at": iso(result.started_at),
            "workflow_id": workflow_id,
            "run_id": run_id,
            "status": None,
        }
        if entry["workflow_id"]:
            handle = client.get_workflow_handle(entry["workflow_id"], run_id=entry["run_id"])
            try:
                described = await asyncio.wait_for(handle.describe(), CALL_SECONDS)
            except (RPCError, TimeoutError):
                entry["status"] = "unknown"
            else:
                status = described.status
                entry["status"] = "unknown" if status is None else status.name.lower()
        runs.append(entry)
    return runs


def show_command(settings: Settings, *, as_json: bool) -> int:
    """``statehub temporal show [--json]``."""
    document = asyncio.run(show(settings))
    if as_json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_show(document)
    # Like `terraform plan -detailed-exitcode`: a timer or CI job can alert on drift.
    return EXIT_DRIFT if document["drift"] else EXIT_OK


def _print_show(document: dict[str, Any]) -> None:
    local = document["local"]
    lines = [
        f"hub {document['hub']}: schedule {document['schedule_id']} on {document['address']} "
        f"({document['namespace']})",
        f"  local      {local['trigger']} in {local['timezone']}, "
        f"{'paused (enabled = false)' if local['paused'] else 'enabled'}, "
        f"task queue {local['task_queue']}",
    ]
    temporal = document["temporal"]
    if temporal is None:
        lines.append("  temporal   (no such schedule)")
    else:
        spec = temporal["spec"]
        crons = ", ".join(temporal.get("cron_expressions") or spec["cron_expressions"]) or "-"
        lines += [
            f"  temporal   {crons} in {spec['time_zone_name'] or 'UTC'}, "
            f"{'paused' if temporal['paused'] else 'running'}, "
            f"overlap {temporal['overlap']}, "
            f"catch-up {temporal.get('catchup_window_seconds', '-')} s, "
            f"task queue {temporal.get('task_queue')}",
            f"  actions    {temporal['num_actions']} taken, "
            f"{temporal['num_actions_skipped_overlap']} skipped (overlap)"
            + (f", running: {', '.join(temporal['running'])}" if temporal["running"] else ""),
            "next fire times (UTC):",
            *(f"  {moment}" for moment in temporal["next_fire_times"]),
            "last runs:",
            *(
                f"  {run['scheduled_at']}  {run['status'] or '-':<12} {run['workflow_id']}"
                for run in temporal["recent_runs"]
            ),
        ]
        if not temporal["recent_runs"]:
            lines.append("  (none yet)")
    if document["drift"]:
        lines.append("drift (temporal -> local definition; statehub temporal sync fixes it):")
        lines += [f"  {item}" for item in document["drift"]]
    else:
        lines.append("no drift: the schedule matches the local definition")
    print("\n".join(lines))
