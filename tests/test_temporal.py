"""The cluster scheduler for real: `statehub temporal sync | worker | show` against a
Temporal dev server (tests/temporal_support.py), the worker as a subprocess, real git repos
and SQLite; the standby daemon's fire path judging a Temporal-driven primary, and taking over
when the server is down."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import hostilekit
from api_support import event_rows, refusing_address
from clirun import statehub
from contract_keys import sweep_detail
from daemon_support import (
    CONTRACT_QUERY,
    DaemonProcess,
    NotifySocket,
    decisions,
    fire_markers,
    runs,
)
from gitfleet import HangingServer, make_repo, write_config
from statehub.eventsize import fit_lists
from statehub.sweep import _base_detail
from statehub.sweepsummary import SweepSummary
from statehub.temporal.activity import SUMMARY_ERRORS, event_summary
from statehub.timefmt import parse_iso, utc_now
from temporal_support import TemporalServer, status
from test_alerts import Receiver
from waiting import wait_for

SCHEDULE_ID_LINE = 'schedule_id = "{}"'
FAR_TRIGGER = "30 4 1 1 *"  # once a year: the schedule never fires by itself during a test


def temporal_config(
    folder: Path, fleet: Path, server: TemporalServer, *, schedule: str = "", **sections: str
) -> tuple[Path, str]:
    """A config whose [temporal] section points at ``server``, with its own queue and id."""
    ident = uuid.uuid4().hex[:10]
    schedule_id = f"sched-{ident}"
    temporal = "\n".join(
        [
            f'address = "{server.address}"',
            f'task_queue = "tq-{ident}"',
            SCHEDULE_ID_LINE.format(schedule_id),
            sections.pop("temporal", ""),
        ]
    )
    config = write_config(
        folder,
        roots=[fleet],
        schedule=f'trigger = "{FAR_TRIGGER}"\n{schedule}',
        temporal=temporal,
        **sections,
    )
    return config, schedule_id


def slow_fetch_config(
    folder: Path, fleet: Path, server: TemporalServer, hanging: HangingServer, *, fetch_timeout: int
) -> tuple[Path, str]:
    """One repo whose fetch hangs, and a schedule that fetches: a run that lasts."""
    make_repo(fleet, "slow", origin_url=hanging.url)
    return temporal_config(
        folder, fleet, server, schedule="remote = true",
        sweep=f"fetch_timeout_seconds = {fetch_timeout}",
    )  # fmt: skip


def sync(config: Path, *extra: str) -> dict[str, Any]:
    done = statehub("temporal", "sync", "--json", *extra, config=config)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def set_trigger(config: Path, trigger: str, *more: str) -> None:
    text = config.read_text(encoding="utf-8")
    lines = [
        f'trigger = "{trigger}"' if line.startswith("trigger = ") else line
        for line in text.splitlines()
    ]
    index = lines.index("[schedule]")
    lines[index + 1 : index + 1] = list(more)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def heartbeat_details(server: TemporalServer, workflow_id: str) -> list[Any] | None:
    """The decoded details of the running activity's last heartbeat, or None."""
    described = json.loads(
        server.cli("workflow", "describe", "-w", workflow_id, "-o", "json").stdout
    )
    for pending in described.get("pendingActivities", []):
        details = pending.get("heartbeatDetails")  # the CLI decodes JSON payloads
        if details:
            return list(details)
    return None


def start_worker(config: Path, notify: NotifySocket | None = None) -> DaemonProcess:
    worker = DaemonProcess(
        config, notify=notify, watchdog_usec=2_000_000, command=("temporal", "worker")
    )
    worker.wait_line("worker polling", timeout=60)
    return worker


def stop_worker(worker: DaemonProcess) -> int:
    worker.send(signal.SIGTERM)
    try:
        return worker.wait(20)
    finally:
        worker.close()


# -- sync and show ----------------------------------------------------------------------


@pytest.mark.long(14)
def test_sync_creates_is_idempotent_updates_and_pauses(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """sync creates spec and policies; again is a no-op; a new trigger updates; disabled pauses."""
    config, schedule_id = temporal_config(
        tmp_path, fleet, temporal_server, schedule="misfire_grace_seconds = 45"
    )
    dry = sync(config, "--dry-run")
    assert dry["action"] == "create"
    assert (
        "not found"
        in temporal_server.cli(
            "schedule", "describe", "--schedule-id", schedule_id, check=False
        ).stderr.lower()
    )

    assert sync(config)["action"] == "create"
    described = temporal_server.describe_schedule(schedule_id)
    schedule = described["schedule"]
    assert schedule["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_SKIP"
    assert schedule["policies"]["catchupWindow"] == "45s"
    assert not schedule["state"].get("paused", False)
    assert schedule["spec"]["timezoneName"] == "UTC"
    [calendar] = schedule["spec"]["structuredCalendar"]
    assert calendar["minute"] == [{"start": 30, "end": 30, "step": 1}]
    assert calendar["hour"] == [{"start": 4, "end": 4, "step": 1}]
    start = schedule["action"]["startWorkflow"]
    assert start["workflowType"]["name"] == "statehub-consistency-sweep"
    assert start["taskQueue"]["name"].startswith("tq-")
    memo = {
        key: json.loads(base64.b64decode(value["data"]))
        for key, value in start["memo"]["fields"].items()
    }
    assert memo["definition_id"] == "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"
    assert memo["definition_name"] == "State Hub Consistency Sweep"
    conflict = described["conflictToken"]

    again = sync(config)
    assert again["action"] == "unchanged"
    assert temporal_server.describe_schedule(schedule_id)["conflictToken"] == conflict

    set_trigger(config, "*/5 9-17 * * 1-5")
    drifted = statehub("temporal", "show", "--json", config=config)
    assert drifted.returncode == 3  # drift is an exit status (terraform's -detailed-exitcode)
    shown = json.loads(drifted.stdout)
    assert any(item.startswith("trigger:") for item in shown["drift"])
    planned = sync(config, "--dry-run")
    assert planned["action"] == "update"
    assert temporal_server.describe_schedule(schedule_id)["conflictToken"] == conflict
    assert sync(config)["action"] == "update"
    [calendar] = temporal_server.describe_schedule(schedule_id)["schedule"]["spec"][
        "structuredCalendar"
    ]
    assert calendar["minute"] == [{"end": 59, "step": 5}]
    assert [day["start"] for day in calendar["dayOfWeek"]] == [1, 2, 3, 4, 5]
    assert calendar["hour"] == [{"start": 9, "end": 17, "step": 1}]
    in_step = statehub("temporal", "show", "--json", config=config)
    assert in_step.returncode == 0
    shown = json.loads(in_step.stdout)
    assert shown["drift"] == []
    assert shown["temporal"]["next_fire_times"] == shown["local"]["next_fire_times"]

    set_trigger(config, "*/5 9-17 * * 1-5", "enabled = false")
    update = sync(config)
    assert update["changes"] == ["paused: false -> true"]
    assert temporal_server.describe_schedule(schedule_id)["schedule"]["state"]["paused"] is True
    assert sync(config)["action"] == "unchanged"


def test_cron_with_both_day_fields_fires_when_cron_would(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """Both day fields set (cron: either matches), Sunday as 7: Temporal fires when cron would."""
    config, _ = temporal_config(tmp_path, fleet, temporal_server)
    set_trigger(config, "0 6 13 * 7")
    assert sync(config)["action"] == "create"
    shown = json.loads(statehub("temporal", "show", "--json", config=config).stdout)
    assert shown["temporal"]["next_fire_times"] == shown["local"]["next_fire_times"]
    assert shown["drift"] == []


def test_show_without_a_schedule_and_without_a_server(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """show flags a missing schedule; an unreachable server is one line and exit status 1."""
    config, _ = temporal_config(tmp_path, fleet, temporal_server)
    shown = json.loads(statehub("temporal", "show", "--json", config=config).stdout)
    assert shown["temporal"] is None
    assert shown["drift"] == ["the schedule does not exist in Temporal: run statehub temporal sync"]

    down = tmp_path / "down"
    down.mkdir()
    config, _ = temporal_config(down, fleet, temporal_server)
    with refusing_address() as address:
        config.write_text(
            config.read_text().replace(temporal_server.address, address), encoding="utf-8"
        )
        done = statehub("temporal", "sync", config=config)
    assert done.returncode == 1
    assert done.stderr.startswith(f"statehub: error: cannot connect to Temporal at {address}")
    assert len(done.stderr.strip().splitlines()) == 1


# -- the worker -------------------------------------------------------------------------


def test_a_triggered_schedule_sweeps_through_the_worker_and_records_one_run(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """One fire: one activity-core event, one activity_runs row keyed by the workflow run id."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "untidy", {"README.md": "# untidy\n"})  # assessment failures only
    receiver = Receiver()  # [notify] ping_url: the cluster's sweeps are pinged too
    config, schedule_id = temporal_config(
        tmp_path, fleet, temporal_server, notify=f'ping_url = "{receiver.url}/ping/t"'
    )
    sync(config)
    notify = NotifySocket()
    worker = start_worker(config, notify)
    try:
        notify.wait_field("READY", timeout=10)
        notify.wait_field("WATCHDOG", timeout=10)
        temporal_server.trigger(schedule_id)
        [run] = temporal_server.closed_workflows(schedule_id, 1, timeout=60)
        assert status(run) == "completed"
        worker.send(signal.SIGHUP)
        worker.wait_line("SIGHUP: the worker does not reload", timeout=10)
        assert worker.process.poll() is None
        exit_status = stop_worker(worker)
    finally:
        worker.close()
        notify.close()
        receiver.close()
    assert exit_status == 0
    notify.wait_field("STOPPING", timeout=5)
    assert receiver.paths() == ["/ping/t/start", "/ping/t"]

    database = tmp_path / "statehub.db"
    [event] = event_rows(database)
    assert event["event_type"] == "consistency_sweep_remote_all"
    assert event["detail"]["source"] == "activity-core"
    assert event["detail"]["exit_code"] == 0
    assert event["detail"]["assessment_failures"] == 1
    [row] = runs(database)
    assert row["run_id"] == run["execution"]["runId"]
    assert row["outcome"] == "swept"
    # The nominal time Temporal gave the run is the one in its workflow id.
    nominal = run["execution"]["workflowId"].rsplit("-", 3)[-3:]
    assert row["scheduled_for"].startswith("-".join(nominal).removesuffix("Z")[:19])
    assert row["context"]["origin"] == "temporal"
    assert row["context"]["workflow_id"] == run["execution"]["workflowId"]
    assert row["context"]["consistency_sweep_remote_all"] == event["detail"]
    assert row["context"]["progress_event_id"] == event["id"]
    with sqlite3.connect(database) as connection:
        [contract_row] = connection.execute(CONTRACT_QUERY).fetchall()
        heartbeat = connection.execute(
            "SELECT value FROM hub_state WHERE key = 'heartbeat:worker'"
        ).fetchone()
    assert contract_row[0] == row["run_id"]
    assert heartbeat is not None  # stopped cleanly: it says so at once, for the status page
    stopped = json.loads(heartbeat[0])
    assert (stopped["state"], stopped["stopped_by"]) == ("stopped", "SIGTERM")
    assert parse_iso(stopped["at"]) <= utc_now()
    assert json.loads(contract_row[3])["source"] == "activity-core"
    shown = statehub("temporal", "show", config=config)
    assert shown.returncode == 0
    assert "completed" in shown.stdout
    assert "no drift" in shown.stdout
    table = statehub("runs", config=config).stdout
    [line] = [line for line in table.splitlines() if "swept" in line]
    assert "temporal" in line


def test_an_automation_error_fails_the_workflow_and_assessment_failures_do_not(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """A C-00 fails the run in Temporal (recorded all the same); findings alone complete it."""
    make_repo(fleet, "untidy", {"README.md": "# untidy\n"})
    config, schedule_id = temporal_config(tmp_path, fleet, temporal_server)
    sync(config)
    worker = start_worker(config)
    try:
        temporal_server.trigger(schedule_id)
        [first] = temporal_server.closed_workflows(schedule_id, 1, timeout=60)
        broken = fleet / "broken"
        broken.mkdir()
        (broken / ".git").write_text("gitdir: /nonexistent/statehub-test\n", encoding="utf-8")
        temporal_server.trigger(schedule_id)
        closed = temporal_server.closed_workflows(schedule_id, 2, timeout=60)
    finally:
        stop_worker(worker)
    statuses = {run["execution"]["runId"]: status(run) for run in closed}
    assert statuses[first["execution"]["runId"]] == "completed"
    [failed_id] = [run_id for run_id, state in statuses.items() if state == "failed"]

    rows = {row["run_id"]: row for row in runs(tmp_path / "statehub.db")}
    assert set(rows) == set(statuses)
    failed = rows[failed_id]["context"]["consistency_sweep_remote_all"]
    assert failed["exit_code"] == 1
    assert failed["automation_errors"][0]["repo"] == "broken"
    assert rows[failed_id]["outcome"] == "failed"  # as Temporal says (issue 20)
    [failed_workflow] = [run for run in closed if run["execution"]["runId"] == failed_id]
    described = temporal_server.cli(
        "workflow", "describe", "-w", failed_workflow["execution"]["workflowId"], "-o", "json"
    ).stdout
    assert "AutomationError" in described


@pytest.mark.long(12)
def test_overlapping_triggers_give_one_sweep_and_a_held_lock_is_lock_skipped(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """A trigger during a run is skipped (overlap SKIP); a lock held elsewhere: lock_skipped."""
    make_repo(fleet, "aaa")  # swept first (by name): its heartbeat comes before the slow fetch
    with HangingServer() as hanging:
        make_repo(fleet, "slow", origin_url=hanging.url)  # each fetch hangs to its timeout
        config, schedule_id = temporal_config(
            tmp_path,
            fleet,
            temporal_server,
            schedule="remote = true",
            sweep="fetch_timeout_seconds = 4",
            extra='[repos.overrides."slow"]\ndisable = ["C-00"]\n',
        )
        sync(config)
        worker = start_worker(config)
        try:
            temporal_server.trigger(schedule_id)
            [first] = wait_for(
                lambda: temporal_server.workflows(schedule_id), 30, "the first run to start", 0.2
            )
            heartbeat = wait_for(
                lambda: heartbeat_details(temporal_server, first["execution"]["workflowId"]),
                30,
                "the activity's heartbeat after the first repo",
                0.2,
            )
            temporal_server.trigger(schedule_id)
            [run] = temporal_server.closed_workflows(schedule_id, 1, timeout=60)
            shown = json.loads(statehub("temporal", "show", "--json", config=config).stdout)

            from statehub.lock import SweepLock

            lock = SweepLock(tmp_path / "statehub.db")
            assert lock.acquire()
            try:
                temporal_server.trigger(schedule_id)
                closed = temporal_server.closed_workflows(schedule_id, 2, timeout=60)
            finally:
                lock.release()
        finally:
            stop_worker(worker)
    assert heartbeat == [1, 2, "aaa"]  # progress(done, total, repo), as Temporal holds it
    assert status(run) == "completed"
    assert shown["temporal"]["num_actions_skipped_overlap"] == 1
    assert len(temporal_server.workflows(schedule_id)) == 2
    swept, skipped = event_rows(tmp_path / "statehub.db")
    assert swept["detail"]["lock_skipped"] is False
    assert skipped["detail"]["lock_skipped"] is True
    assert skipped["detail"]["source"] == "activity-core"
    outcomes = sorted(row["outcome"] for row in runs(tmp_path / "statehub.db"))
    assert outcomes == ["lock_skipped", "swept"]
    assert [status(item) for item in closed] == ["completed", "completed"]


def test_a_worker_killed_mid_sweep_is_recorded_as_interrupted_at_the_next_start(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """kill -9 during a run: the next worker start records it as an interrupted error run."""
    with HangingServer() as hanging:
        config, schedule_id = slow_fetch_config(
            tmp_path, fleet, temporal_server, hanging, fetch_timeout=20
        )
        sync(config)
        database = tmp_path / "statehub.db"
        worker = start_worker(config)
        try:
            temporal_server.trigger(schedule_id)
            [started] = wait_for(
                lambda: temporal_server.workflows(schedule_id), 30, "the run to start", 0.2
            )
            wait_for(lambda: fire_markers(database), 30, "the run's marker", 0.1)
            worker.process.kill()
            worker.wait(10)
        finally:
            worker.close()
        assert runs(database) == []
        again = start_worker(config)
        stop_worker(again)
    [row] = runs(database)
    assert row["run_id"] == started["execution"]["runId"]
    assert row["outcome"] == "error"
    assert row["context"]["interrupted"] is True
    assert row["context"]["origin"] == "temporal"
    assert fire_markers(database) == []


def test_sigterm_mid_sweep_records_the_run_cancelled_by_sigterm(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """SIGTERM during a long sweep: STOPPING, the run recorded cancelled by SIGTERM at once
    (not interrupted), exit 0 in time."""
    with HangingServer() as hanging:
        config, schedule_id = slow_fetch_config(
            tmp_path, fleet, temporal_server, hanging, fetch_timeout=60
        )
        sync(config)
        database = tmp_path / "statehub.db"
        notify = NotifySocket()
        worker = start_worker(config, notify)
        try:
            temporal_server.trigger(schedule_id)
            wait_for(lambda: fire_markers(database), 30, "the run's marker", 0.1)
            signalled = time.monotonic()
            exit_status = stop_worker(worker)
            took = time.monotonic() - signalled
            notify.wait_field("STOPPING", timeout=5)
        finally:
            worker.close()
            notify.close()
    assert exit_status == 0, worker.lines()
    assert took < 15, worker.lines()
    assert len(runs(database)) == 1, worker.lines()
    [row] = runs(database)
    assert (row["outcome"], row["context"]["cancelled_by"]) == ("cancelled", "SIGTERM")
    assert "interrupted" not in row["context"]
    assert fire_markers(database) == []
    [event] = event_rows(database)
    assert (event["detail"]["cancelled"], event["detail"]["automation_error"]) == (True, False)


# -- failover -----------------------------------------------------------------------------


def run_now(config: Path) -> dict[str, Any]:
    """One fire of the standby daemon's path (``schedule run-now``): the recorded run."""
    done = statehub("schedule", "run-now", "--json", config=config)
    assert done.returncode == 0, done.stderr
    run: dict[str, Any] = json.loads(done.stdout)
    return run


@pytest.mark.long(33)
def test_failover_standby_follows_a_temporal_primary_and_takes_over_while_it_is_down(
    tmp_path: Path, fleet: Path
) -> None:
    """Temporal up: primary_healthy; server down: local-fallback after the grace; back: healthy."""
    make_repo(fleet, "alpha")
    server = TemporalServer(tmp_path / "temporal")
    server.start()
    worker: DaemonProcess | None = None
    try:
        config, schedule_id = temporal_config(
            tmp_path,
            fleet,
            server,
            # 15 s: a run-now right after the primary's sweep is fresh on a loaded machine too
            schedule='mode = "standby"\nprimary_grace_minutes = 0.25',
        )
        sync(config)
        worker = start_worker(config)
        server.trigger(schedule_id)
        server.closed_workflows(schedule_id, 1, timeout=60)
        healthy = run_now(config)
        assert healthy["outcome"] == "primary_healthy"
        assert healthy["context_snapshot"]["primary_last_source"] == "activity-core"

        server.stop()
        down = statehub("temporal", "show", config=config)
        assert down.returncode == 1
        assert "cannot connect to Temporal" in down.stderr
        primary_at = healthy["context_snapshot"]["primary_last_sweep_at"]
        grace_over = parse_iso(primary_at) + timedelta(seconds=16)
        wait_for(lambda: utc_now() > grace_over, 30, "the grace to pass", 0.2)
        took_over = run_now(config)
        assert took_over["outcome"] == "swept"
        assert took_over["context_snapshot"]["source"] == "local-fallback"
        assert worker.process.poll() is None  # the worker rides out the outage

        server.start()
        server.trigger(schedule_id)
        server.closed_workflows(schedule_id, 2, timeout=90)
        back = run_now(config)
        assert back["outcome"] == "primary_healthy"
        assert back["context_snapshot"]["primary_last_sweep_at"] > primary_at
        assert stop_worker(worker) == 0
    finally:
        if worker is not None:
            worker.close()
        server.stop()

    sources = [event["detail"]["source"] for event in event_rows(tmp_path / "statehub.db")]
    assert sources == ["activity-core", "local-fallback", "activity-core"]
    outcomes = [
        (row["outcome"], row["context"].get("origin")) for row in runs(tmp_path / "statehub.db")
    ]
    assert outcomes == [("swept", "temporal"), ("swept", "run-now"), ("swept", "temporal")]
    # The standby's decisions not to sweep are kept apart from the runs (issue 20).
    assert [row["outcome"] for row in decisions(tmp_path / "statehub.db")] == [
        "primary_healthy",
        "primary_healthy",
    ]


# The same story with the real daemon firing: its test trigger makes slots of a few seconds.
DAEMON_FIRE_EVERY = 5  # seconds
PRIMARY_GRACE_MINUTES = 0.3  # 18 s: the first fire is fresh, a fire 18 s later is not


def pollers(server: TemporalServer, task_queue: str) -> list[Any]:
    """The workers polling ``task_queue`` as the server sees them."""
    described = server.cli("task-queue", "describe", "--task-queue", task_queue, "-o", "json")
    found: list[Any] = json.loads(described.stdout).get("pollers") or []
    return found


def daemon_runs(database: Path) -> list[dict[str, Any]]:
    """The daemon's fires, its runs and its decisions not to sweep, oldest first."""
    fires = [row for row in runs(database) if row["context"].get("origin") == "schedule"]
    fires += [{**row, "fired_at": row["decided_at"]} for row in decisions(database)]
    return sorted(fires, key=lambda row: str(row["fired_at"]))


@pytest.mark.long(38)
def test_failover_with_the_real_standby_daemon(tmp_path: Path, fleet: Path) -> None:
    """The daemon in standby, 5 s slots: healthy; fallback while Temporal is down; healthy."""
    make_repo(fleet, "alpha")
    server = TemporalServer(tmp_path / "temporal")
    server.start()
    database = tmp_path / "statehub.db"
    worker: DaemonProcess | None = None
    daemon: DaemonProcess | None = None
    try:
        config, schedule_id = temporal_config(tmp_path, fleet, server)
        sync(config)  # the Schedule itself never fires here: the test triggers it
        worker = start_worker(config)
        daemon_folder = tmp_path / "daemon"
        daemon_folder.mkdir()
        daemon_config = daemon_folder / "statehub.toml"
        daemon_config.write_text(
            config.read_text(encoding="utf-8")
            .replace('database = "statehub.db"', f'database = "{database}"')
            .replace(
                "[schedule]\n",
                f'[schedule]\nmode = "standby"\nprimary_grace_minutes = {PRIMARY_GRACE_MINUTES}\n',
            ),
            encoding="utf-8",
        )

        server.trigger(schedule_id)
        server.closed_workflows(schedule_id, 1, timeout=15)
        daemon = DaemonProcess(daemon_config, fire_every=DAEMON_FIRE_EVERY)
        daemon.wait_line("scheduled 'State Hub Consistency Sweep'", timeout=30)
        [healthy] = wait_for(lambda: daemon_runs(database), 30, "the daemon's first fire", 0.2)

        server.stop()
        took_over = wait_for(
            lambda: [run for run in daemon_runs(database) if run["outcome"] == "swept"],
            60,
            "the daemon's fallback sweep",
            0.2,
        )[0]

        server.start()
        queue = config.read_text(encoding="utf-8").split('task_queue = "')[1].split('"')[0]
        wait_for(lambda: pollers(server, queue), 60, "the worker polling again", 0.5)
        server.trigger(schedule_id)
        server.closed_workflows(schedule_id, 2, timeout=15)
        primary_back = max(event["created_at"] for event in event_rows(database))
        back = wait_for(
            lambda: [run for run in daemon_runs(database) if run["fired_at"] > primary_back],
            30,
            "a fire after the primary's return",
            0.2,
        )[0]
        daemon.send(signal.SIGTERM)
        assert daemon.wait(20) == 0
        assert stop_worker(worker) == 0
    finally:
        for process in (daemon, worker):
            if process is not None:
                process.close()
        server.stop()

    assert healthy["outcome"] == "primary_healthy"
    assert healthy["context"]["primary_last_source"] == "activity-core"
    assert took_over["outcome"] == "swept"
    assert took_over["context"]["source"] == "local-fallback"
    assert back["outcome"] == "primary_healthy"
    # The primary, the standby's fallback sweeps (one a slot while it was down), the primary.
    sources = [event["detail"]["source"] for event in event_rows(database)]
    assert sources[0] == sources[-1] == "activity-core"
    assert sources[1:-1] and set(sources[1:-1]) == {"local-fallback"}


# -- without the extra --------------------------------------------------------------------


def test_without_the_extra_the_commands_say_so_and_help_loads_no_sdk(
    tmp_path: Path, fleet: Path
) -> None:
    """No temporalio: one line naming the extra, exit 78; --help never imports the SDK."""
    config = write_config(tmp_path, roots=[fleet])
    blocked = (
        "import sys; sys.modules['temporalio'] = None; "  # what a base install looks like
        "from statehub.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    for command in (["temporal", "sync"], ["temporal", "worker"], ["temporal", "show"]):
        done = subprocess.run(
            [sys.executable, "-c", blocked, *command, "--config", str(config)],
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        assert done.returncode == 78
        assert done.stderr == (
            "statehub: error: the Temporal SDK is not installed: pip install 'statehub[temporal]'\n"
        )
    probe = (
        "import sys; from statehub.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('temporalio')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, check=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_a_sweep_stuck_on_a_repo_keeps_the_workers_watchdog_and_sigterm(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """A Temporal-run sweep stuck on a named pipe: WATCHDOG=1 keeps coming, SIGTERM works."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")
    config, schedule_id = temporal_config(
        tmp_path, fleet, temporal_server, sweep="repo_timeout_seconds = 300"
    )
    sync(config)
    database = tmp_path / "statehub.db"
    notify = NotifySocket()
    worker = start_worker(config, notify)  # WATCHDOG_USEC = 2 s: a ping every second
    try:
        temporal_server.trigger(schedule_id)
        wait_for(lambda: fire_markers(database), 30, "the run's marker", 0.1)
        since = time.monotonic()
        # A ping every second while the sweep stays stuck (its marker still there).
        wait_for(
            lambda: len([m for m, _ in notify.fields("WATCHDOG") if m >= since]) >= 2,
            15,
            f"two watchdog pings during the stuck sweep ({worker.lines()[-5:]})",
        )
        assert fire_markers(database), worker.lines()
        exit_status = stop_worker(worker)
        notify.wait_field("STOPPING", timeout=5)
    finally:
        worker.close()
        notify.close()
    assert exit_status == 0, worker.lines()
    [row] = runs(database)
    assert (row["outcome"], row["context"]["cancelled_by"]) == ("cancelled", "SIGTERM")


def test_a_malformed_input_fails_the_run_at_once_with_one_line(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """A run started by hand with an input that is not a SweepInput: failed at once
    (BadInput, non-retryable), no sweep, and the worker logs no traceback."""
    config, _ = temporal_config(tmp_path, fleet, temporal_server)
    queue = next(
        line.split('"')[1] for line in config.read_text().splitlines() if "task_queue" in line
    )
    worker = start_worker(config)
    try:
        temporal_server.cli(
            "workflow", "start", "--type", "statehub-consistency-sweep", "--task-queue", queue,
            "--workflow-id", "by-hand", "--input", '"not a sweep input"',
        )  # fmt: skip
        result = temporal_server.cli(
            "workflow", "result", "--workflow-id", "by-hand", check=False, timeout=30
        )
        described = temporal_server.cli(
            "workflow", "describe", "-w", "by-hand", "-o", "json"
        ).stdout
    finally:
        stop_worker(worker)
        lines = worker.lines()
    assert result.returncode != 0
    assert '"FAILED"' in described or "Failed" in described
    assert "BadInput" in described
    assert not any("Traceback" in line for line in lines)
    assert event_rows(tmp_path / "statehub.db") == []


def test_the_runs_result_is_a_bounded_summary_of_the_event(
    tmp_path: Path, fleet: Path, temporal_server: TemporalServer
) -> None:
    """A repo with thousands of findings: the run completes and its result (the Temporal
    payload) is a few kilobytes, the event's figures without its lists."""
    make_repo(fleet, "plans", {f"workplans/bad-{n}.md": "no front matter\n" for n in range(3000)})
    config, schedule_id = temporal_config(tmp_path, fleet, temporal_server)
    sync(config)
    worker = start_worker(config)
    try:
        temporal_server.trigger(schedule_id)
        [run] = temporal_server.closed_workflows(schedule_id, 1, timeout=120)
        result = temporal_server.cli(
            "workflow", "result", "-w", run["execution"]["workflowId"], "-o", "json"
        ).stdout
    finally:
        stop_worker(worker)
    [event] = event_rows(tmp_path / "statehub.db")
    assert status(run) == "completed"
    [entry] = event["detail"]["repos_processed"]  # the event lists a bounded part of them
    assert entry["truncated"] is True and entry["findings_total"] >= 3000
    assert len(result) < 8_000
    assert "repos_need_action" in result and "repos_processed_count" not in result


def _summary_counts(detail: dict[str, Any]) -> tuple[int, ...]:
    """need action, clean, missing, over budget and automation errors, as the summary of a
    run's result gives them."""
    keys = ("repos_need_action", "repos_clean", "repos_missing", "repos_over_budget")
    return (*(detail[key] for key in keys), detail["automation_errors_total"])


def test_the_runs_summary_of_a_cut_event_gives_the_exact_counts_not_the_listed() -> None:
    """An event whose every list the size bound cut: the run's result counts every repo
    and C-00 as the sweep summary does, says it was cut, and has no count of what is listed."""
    errors = [
        {"repo": f"repo-{n:05d}", "check": "C-00", "message": "m" * 400} for n in range(5_000)
    ]
    need = [
        {"repo": f"need-{n:05d}", "head": "3f2a9c1", "reassessed": True,
         "findings": [{"check": "C-01", "message": "no README", "path": None, "new": False}]}
        for n in range(6_000)
    ]  # fmt: skip
    fitted = fit_lists(
        errors=errors,
        need_action=need,
        missing=[f"gone-{n:04d}" for n in range(1_000)],
        over_budget=[f"late-{n:04d}" for n in range(1_100)],
        clean=[f"clean-{n:04d}" for n in range(1_200)],
        accepted={"total": 0, "repos": {}},
    )
    detail = _base_detail("activity-core", 300, False) | fitted
    detail |= {"exit_code": 1, "automation_error": True, "warnings": ["repos.roots: /x is gone"]}
    listed = [len(detail[key]) for key in ("repos_processed", "skipped_clean", "skipped_missing")]
    listed += [len(detail[key]) for key in ("skipped_budget", "automation_errors")]
    assert all(n < 1_000 for n in listed[1:4]) and listed[0] < 6_000 and listed[4] < 5_000

    summary = event_summary(
        {"id": 7, "event_type": "consistency_sweep_remote_all", "created_at": "t", "detail": detail}
    )

    figures = summary["detail"]
    assert [key for key in figures if key.endswith("_count")] == []
    assert _summary_counts(figures) == (6_000, 1_200, 1_000, 1_100, 5_000)
    whole = SweepSummary.of(detail)
    assert _summary_counts(figures) == (
        whole.need_action, whole.clean, whole.missing, whole.over_budget, whole.automation_errors
    )  # fmt: skip
    assert figures["repos_truncated"] is True and figures["warnings_total"] == 1
    assert len(figures["automation_errors"]) == SUMMARY_ERRORS
    assert len(json.dumps(summary)) < 8_000


def test_the_runs_summary_of_an_event_without_counts_counts_its_lists() -> None:
    """An event written before the counts (its lists whole): the run's result counts them,
    under the same keys, with no C-00 and no warning."""
    entry = {"repo": "a", "head": "3f2a9c1", "findings": []}
    detail = sweep_detail(
        "activity-core", utc_now(), repos_processed=[entry], skipped_clean=["b", "c"]
    )

    figures = event_summary({"id": 1, "detail": detail})["detail"]

    assert _summary_counts(figures) == (1, 2, 0, 0, 0)
    assert (figures["warnings_total"], figures["automation_errors"]) == (0, [])
    assert "repos_truncated" not in figures
