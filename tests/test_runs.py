"""One run of the schedule, told truly (issue 20): outcomes, decisions, slots, one daemon.

Real stores, real sweeps, the CLI and the daemon as subprocesses with real signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from api_support import HangingRemote, client, event_rows, make_slow_repo, serve_fleet
from clirun import start_statehub, statehub
from contract_keys import sweep_detail
from daemon_support import DaemonProcess, contract_runs, decisions, runs, sweep_in_progress
from gitfleet import make_repo, write_config
from statehub.compare import compare
from statehub.daemonstate import read_daemon
from statehub.fire import Runner
from statehub.lock import hold_role
from statehub.page import status_view
from statehub.scheduler import Daemon
from statehub.settings import Settings, load_settings
from statehub.store import Store
from statehub.store import schema as storeschema
from statehub.sweep import EVENT_ALL
from statehub.systemd_notify import Notifier
from statehub.timefmt import iso, utc_now
from waiting import wait_for

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, fleet: Path) -> Settings:
    """Two good repos, a standby schedule."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    return load_settings(write_config(tmp_path, roots=[fleet], schedule='mode = "standby"'))


def record_sweep(settings: Settings, source: str, started: datetime) -> None:
    detail = sweep_detail(source, started)
    with Store.open(settings.database_path) as store:
        store.append_event(EVENT_ALL, detail, created_at=started + timedelta(seconds=3))


# -- slots ----------------------------------------------------------------------------


def test_a_manual_sweep_and_the_canary_never_double_a_slot(settings: Settings) -> None:
    """A slot swept by the cluster, a person and the canary is covered, not doubled."""
    slot = NOW - timedelta(minutes=30)
    record_sweep(settings, "activity-core", slot + timedelta(minutes=1))
    record_sweep(settings, "manual", slot + timedelta(minutes=5))
    record_sweep(settings, "canary", slot + timedelta(minutes=9))
    record_sweep(settings, "activity-core", slot + timedelta(minutes=16))
    record_sweep(settings, "local-fallback", slot + timedelta(minutes=20))
    report = compare(settings, since_hours=0.5, now=NOW).as_dict()
    assert report["slots"]["covered"] == 2
    assert report["slots"]["doubled"] == ["2026-11-27T11:45:00Z"]  # two schedulers there


# -- the standby's health -------------------------------------------------------------


def test_a_sweep_dated_in_the_future_is_not_the_primarys_health(settings: Settings) -> None:
    """A primary sweep recorded with a future time does not keep the standby idle."""
    now = utc_now()
    record_sweep(settings, "activity-core", now + timedelta(hours=5))
    run = Runner(settings).fire(scheduled_for=now)
    assert run.outcome == "swept"
    assert run.context_snapshot["source"] == "local-fallback"
    assert run.context_snapshot["primary_last_sweep_at"] is None


def test_the_api_answers_the_standbys_health_check_in_one_filtered_request(
    tmp_path: Path, fleet: Path
) -> None:
    """GET /progress/?completed=true&source=...&until=: the newest completed primary sweep,
    past 50 newer events of other sources or lock-skipped ones, never a future one."""
    make_repo(fleet, "alpha")
    server = serve_fleet(tmp_path, fleet)
    settings = load_settings(server.config)
    now = utc_now()
    record_sweep(settings, "activity-core", now - timedelta(minutes=20))
    with Store.open(settings.database_path) as store:
        for n in range(60):
            source = "activity-core" if n % 2 else "manual"
            detail = sweep_detail(source, now - timedelta(minutes=10), lock_skipped=bool(n % 2))
            store.append_event(EVENT_ALL, detail, created_at=now - timedelta(minutes=10))
    record_sweep(settings, "activity-core", now + timedelta(hours=3))
    with server, client(server.url) as http:
        answer = http.get(
            "/progress/",
            params={
                "event_type": EVENT_ALL,
                "completed": "true",
                "source": ["activity-core", "other-primary"],
                "until": iso(now),
                "limit": 1,
            },
        )
    assert answer.status_code == 200, answer.text
    [event] = answer.json()
    assert event["created_at"] == iso(now - timedelta(minutes=20) + timedelta(seconds=3))


def test_at_a_hand_back_the_fallback_stands_down_for_the_primarys_slot(
    tmp_path: Path, fleet: Path
) -> None:
    """The primary's sweep of the slot recorded during the hand-back delay: no fallback sweep."""
    make_repo(fleet, "alpha")
    config = write_config(
        tmp_path, roots=[fleet], schedule='mode = "standby"\nhandback_delay_seconds = 2'
    )
    settings = load_settings(config)
    slot = utc_now()
    timer = threading.Timer(
        0.5, record_sweep, (settings, "activity-core", slot - timedelta(seconds=3))
    )
    timer.start()
    try:
        run = Runner(settings).fire(scheduled_for=slot)
    finally:
        timer.join()
    assert run.outcome == "primary_healthy"
    assert run.context_snapshot["handback"] is True
    assert [row["detail"]["source"] for row in event_rows(settings.database_path)] == [
        "activity-core"
    ]
    assert runs(settings.database_path) == []


# -- decisions are not runs -----------------------------------------------------------


def test_migration_moves_decisions_out_of_activity_runs(tmp_path: Path) -> None:
    """Migration 5: decisions leave activity_runs; a swept run with a C-00 becomes failed."""
    database = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as connection:
        store = Store(database, connection)
        store.migrate(storeschema.MIGRATIONS[:4])
        for run_id, outcome, exit_code in (
            ("idle", "primary_healthy", None),
            ("good", "swept", 0),
            ("bad", "swept", 1),
        ):
            context = {"origin": "schedule"}
            if exit_code is not None:
                context["consistency_sweep_remote_all"] = {"exit_code": exit_code}
            connection.execute(
                "INSERT INTO activity_runs VALUES (?, 'def', ?, ?, ?, ?)",
                (run_id, iso(NOW), iso(NOW), outcome, json.dumps(context)),
            )
        store.migrate()
    assert [(row["run_id"], row["outcome"]) for row in runs(database, order="run_id")] == [
        ("bad", "failed"),
        ("good", "swept"),
    ]
    assert [row["outcome"] for row in decisions(database)] == ["primary_healthy"]


def test_runs_all_shows_the_decisions(tmp_path: Path, fleet: Path) -> None:
    """`statehub runs` lists runs only; `runs --all` the standby's decisions too."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet], schedule='mode = "standby"')
    settings = load_settings(config)
    record_sweep(settings, "activity-core", utc_now() - timedelta(minutes=1))
    assert statehub("schedule", "run-now", config=config).returncode == 0  # primary_healthy
    assert statehub("schedule", "run-now", "--force", config=config).returncode == 0
    plain = json.loads(statehub("runs", "--json", config=config).stdout)
    every = json.loads(statehub("runs", "--all", "--json", config=config).stdout)
    assert [run["outcome"] for run in plain] == ["swept"]
    assert sorted(run["outcome"] for run in every) == ["primary_healthy", "swept"]
    assert [row[0] for row in contract_runs(settings.database_path)] == [plain[0]["run_id"]]
    with Store.open(settings.database_path) as store:
        page = status_view(settings, store)
    assert sorted(run["outcome"] for run in page["runs"]) == ["primary_healthy", "swept"]


# -- the operator's stop --------------------------------------------------------------


@pytest.fixture
def slow_fleet(fleet: Path) -> Iterator[Path]:
    """A good repo and one whose --remote fetch hangs: a sweep that lasts."""
    remote = HangingRemote()
    make_repo(fleet, "alpha")
    make_slow_repo(fleet, "slow", remote)
    try:
        yield fleet
    finally:
        remote.close()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_manual_sweep_stopped_by_the_operator_records_itself_cancelled(
    tmp_path: Path, slow_fleet: Path, signum: signal.Signals, status: int
) -> None:
    """^C or SIGTERM in `statehub sweep`: a cancelled event at once, not a C-00 found later."""
    config = write_config(tmp_path, roots=[slow_fleet], sweep="fetch_timeout_seconds = 60")
    database = tmp_path / "statehub.db"
    sweeping = start_statehub("sweep", "--all", "--remote", config=config)
    try:
        wait_for(lambda: sweep_in_progress(database), 30, "the sweep in progress")
        sweeping.send_signal(signum)
        assert sweeping.wait(15) == status
    finally:
        sweeping.kill()
        sweeping.wait(5)
    [event] = event_rows(database)
    detail = event["detail"]
    assert (detail["cancelled"], detail["cancelled_by"]) == (True, signum.name)
    assert (detail["automation_error"], detail["automation_errors"]) == (False, [])
    assert not sweep_in_progress(database)
    assert statehub("sweep", "--all", config=config).returncode == 0
    assert [row["detail"].get("interrupted", False) for row in event_rows(database)] == [
        False,
        False,
    ]


def test_run_now_stopped_by_sigterm_is_a_cancelled_run(tmp_path: Path, slow_fleet: Path) -> None:
    """SIGTERM to `schedule run-now` mid-sweep: the run is cancelled by SIGTERM, no error."""
    config = write_config(
        tmp_path,
        roots=[slow_fleet],
        schedule='mode = "active"\nremote = true',
        sweep="fetch_timeout_seconds = 60",
    )
    database = tmp_path / "statehub.db"
    firing = start_statehub("schedule", "run-now", config=config)
    try:
        wait_for(lambda: sweep_in_progress(database), 30, "the sweep in progress")
        firing.send_signal(signal.SIGTERM)
        assert firing.wait(15) == 143
    finally:
        firing.kill()
        firing.wait(5)
    [run] = runs(database)
    assert (run["outcome"], run["context"]["cancelled_by"]) == ("cancelled", "SIGTERM")
    assert "error" not in run["context"], run["context"]["error"]
    [event] = event_rows(database)
    assert (event["detail"]["cancelled"], event["detail"]["cancelled_by"]) == (True, "SIGTERM")


# -- one daemon, and what it records of itself ----------------------------------------


def test_the_daemon_records_its_effective_schedule_and_is_alone(
    tmp_path: Path, fleet: Path
) -> None:
    """A daemon on an env trigger: `schedule show` shows it; a second daemon exits 78 naming
    the first's pid; a clean stop says stopped at once."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet], schedule='mode = "active"')
    first = DaemonProcess(config, extra_env={"STATEHUB_SCHEDULE__TRIGGER": "0 3 1 1 *"})
    try:
        first.wait_line("scheduled 'State Hub Consistency Sweep'", 20)
        shown = json.loads(statehub("schedule", "show", "--json", config=config).stdout)
        assert shown["definition"]["trigger"] == "0 3 1 1 *"
        assert shown["differs_from_config"] == ["trigger"]
        assert (shown["daemon"]["state"], shown["daemon"]["pid"]) == ("alive", first.pid)
        text = statehub("schedule", "show", config=config).stdout
        assert "0 3 1 1 *" in text and f"alive, pid {first.pid}" in text
        compared = json.loads(statehub("compare", "--json", config=config).stdout)
        assert compared["schedule"]["trigger"] == "0 3 1 1 *"
        status = json.loads(statehub("status", "--json", config=config).stdout)
        daemon = status["processes"]["daemon"]
        assert (daemon["state"], daemon["trigger"], daemon["pid"]) == (
            "alive",
            "0 3 1 1 *",
            first.pid,
        )

        second = statehub("daemon", config=config)
        assert second.returncode == 78
        assert second.stderr.count("\n") == 1
        assert f"another daemon (pid {first.pid}) already runs on this database" in second.stderr
    finally:
        first.send(signal.SIGTERM)
        assert first.wait(15) == 0
        first.close()
    shown = json.loads(statehub("schedule", "show", "--json", config=config).stdout)
    assert (shown["daemon"]["state"], shown["daemon"]["stopped_by"]) == ("stopped", "SIGTERM")
    assert shown["definition"]["trigger"] == "*/15 * * * *"  # the file's, once it stopped
    status = json.loads(statehub("status", "--json", config=config).stdout)
    assert status["processes"]["daemon"]["state"] == "stopped"


# -- a private internal, pinned -------------------------------------------------------


def test_apscheduler_still_hands_the_slot_to_the_private_submit() -> None:
    """APScheduler's private _do_submit_job(job, run_times) still exists and is what
    submit_job calls: the daemon's slot depends on it (pyproject.toml caps the version)."""
    import inspect

    from apscheduler.executors.base import BaseExecutor
    from apscheduler.executors.pool import ThreadPoolExecutor

    assert list(inspect.signature(ThreadPoolExecutor._do_submit_job).parameters) == [
        "self",
        "job",
        "run_times",
    ], "APScheduler changed _do_submit_job: statehub.scheduler._SlotExecutor must follow"
    assert "self._do_submit_job(job, run_times)" in inspect.getsource(BaseExecutor.submit_job)


def test_a_second_temporal_worker_of_the_hub_refuses_to_start(tmp_path: Path, fleet: Path) -> None:
    """A worker whose database already has one: exit 78, one line naming the holder's pid."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet], extra='[temporal]\naddress = "127.0.0.1:1"\n')
    database = load_settings(config).database_path
    database.parent.mkdir(parents=True, exist_ok=True)
    held = hold_role(database, "temporal worker")
    try:
        second = statehub("temporal", "worker", config=config)
    finally:
        os.close(held)
    assert second.returncode == 78, second.stderr
    assert second.stderr.count("\n") == 1
    assert f"another temporal worker (pid {os.getpid()}) already runs" in second.stderr


def test_a_daemon_stopped_mid_sweep_records_the_run_cancelled_at_once(
    tmp_path: Path, slow_fleet: Path
) -> None:
    """Daemon.stop("SIGTERM") during a real sweep: the sweep stops, its event and the run say
    cancelled by SIGTERM before stop returns, and the daemon says stopped."""
    config = write_config(
        tmp_path,
        roots=[slow_fleet],
        schedule='mode = "active"\nremote = true',
        sweep="fetch_timeout_seconds = 60",
    )
    settings = load_settings(config)
    daemon = Daemon(settings, notifier=Notifier(None), trigger=IntervalTrigger(seconds=1))
    daemon.start()
    try:
        wait_for(lambda: sweep_in_progress(settings.database_path), 30, "the sweep in progress")
    finally:
        started = time.monotonic()
        daemon.stop("SIGTERM")
    assert time.monotonic() - started < 10
    [run] = runs(settings.database_path)
    assert (run["outcome"], run["context"]["cancelled_by"]) == ("cancelled", "SIGTERM")
    [event] = event_rows(settings.database_path)
    assert (event["detail"]["cancelled"], event["detail"]["automation_error"]) == (True, False)
    with Store.open(settings.database_path) as store:
        state = read_daemon(store)
    assert state is not None
    assert (state.state, state.stopped_by) == ("stopped", "SIGTERM")
