"""Scheduled sweeps from the API and the command line are rows of ``activity_runs`` too.

The CronJob POSTs ``"scheduled": true`` and the archived timer runs ``statehub sweep
--scheduled``: each run is one row of the ``[schedule]`` definition (``statehub.runs``)
beside the daemon's fires, with its slot, its outcome and the sweep's detail; a process
killed mid-sweep leaves an interrupted ``error`` row. Real server, real fleet, real SQLite.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from api_support import (
    ApiServer,
    HangingRemote,
    client,
    event_rows,
    make_slow_repo,
    serve_fleet,
)
from clirun import start_statehub, statehub
from daemon_support import CONTRACT_QUERY, fire_markers, runs
from gitfleet import fleet_settings, make_repo, write_config
from statehub.cancel import Cancel
from statehub.compare import compare
from statehub.cron import cron_trigger, previous_fire_time
from statehub.errors import StoreError
from statehub.lock import SweepLock
from statehub.runs import scheduled_sweep
from statehub.timefmt import iso, parse_iso, utc_now
from waiting import wait_for

SWEEP = "/consistency/sweep/remote-all"
DEFINITION_ID = "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"  # the default [schedule] id
SCHEDULED = {"source": "activity-core", "scheduled": True}


def quarter_hour_slot(fired_at: str) -> str:
    """The ``*/15 * * * *`` slot (UTC) at or before ``fired_at``, as activity_runs writes it."""
    moment = parse_iso(fired_at)
    return iso(moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0))


# -- the API ------------------------------------------------------------------------------


@dataclass
class Hub:
    server: ApiServer
    http: httpx.Client
    config: Path
    database: Path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The API over two repos: one good, one with an assessment failure."""
    folder = tmp_path_factory.mktemp("scheduled")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "alpha")
    make_repo(fleet, "untidy", {"README.md": "# untidy\n"})
    server = serve_fleet(folder, fleet)
    with server, client(server.url) as http:
        yield Hub(server, http, server.config, folder / "statehub.db")


def test_a_scheduled_post_is_one_run_of_the_definition_for_its_slot(hub: Hub) -> None:
    """A POST with "scheduled": true is one row: definition id, arrival, */15 slot, detail."""
    before = utc_now()
    answer = hub.http.post(SWEEP, json=SCHEDULED)
    after = utc_now()
    assert answer.status_code == 200, answer.text
    event = answer.json()
    [row] = [
        row for row in runs(hub.database) if row["context"].get("progress_event_id") == event["id"]
    ]
    assert before - timedelta(milliseconds=1) <= parse_iso(row["fired_at"]) <= after
    assert row["scheduled_for"] == quarter_hour_slot(row["fired_at"])
    assert row["outcome"] == "swept"
    context = row["context"]
    assert (context["origin"], context["source"], context["scheduled"]) == (
        "http",
        "activity-core",
        True,
    )
    assert context["consistency_sweep_remote_all"] == event["detail"]
    assert event["detail"]["assessment_failures"] == 1
    assert fire_markers(hub.database) == []  # dropped once the row is written
    with sqlite3.connect(hub.database) as connection:
        definitions = connection.execute(
            "SELECT definition_id FROM activity_runs WHERE run_id = ?", (row["run_id"],)
        ).fetchall()
        contract = connection.execute(CONTRACT_QUERY).fetchall()
    assert definitions == [(DEFINITION_ID,)]
    # The contract's query (section 8) lists it with the sweep's detail.
    [listed] = [item for item in contract if item[0] == row["run_id"]]
    assert json.loads(listed[3]) == event["detail"]
    shown = statehub("runs", "--json", config=hub.config)
    assert shown.returncode == 0, shown.stderr
    [printed] = [run for run in json.loads(shown.stdout) if run["run_id"] == row["run_id"]]
    assert (printed["outcome"], printed["context_snapshot"]["origin"]) == ("swept", "http")


def test_a_post_without_scheduled_records_no_run(hub: Hub) -> None:
    """A POST with a source but without "scheduled" records its event and no activity run."""
    known = len(runs(hub.database))
    answer = hub.http.post(SWEEP, json={"source": "activity-core"})
    assert answer.status_code == 200, answer.text
    assert event_rows(hub.database)[-1]["id"] == answer.json()["id"]
    assert len(runs(hub.database)) == known


def test_a_scheduled_post_while_a_sweep_runs_is_a_lock_skipped_run(hub: Hub) -> None:
    """The lock held elsewhere: outcome lock_skipped, as the daemon's; compare counts it."""
    lock = SweepLock(hub.database)
    assert lock.acquire()
    try:
        answer = hub.http.post(SWEEP, json={"source": "cron-probe", "scheduled": True})
    finally:
        lock.release()
    event = answer.json()
    assert event["detail"]["lock_skipped"] is True
    [row] = [row for row in runs(hub.database) if row["context"]["source"] == "cron-probe"]
    assert row["outcome"] == "lock_skipped"
    assert row["scheduled_for"] == quarter_hour_slot(row["fired_at"])
    assert row["context"]["consistency_sweep_remote_all"] == event["detail"]
    assert row["context"]["progress_event_id"] == event["id"]
    report = json.loads(
        statehub("compare", "--since-hours", "1", "--json", config=hub.config).stdout
    )
    probe = report["sources"]["cron-probe"]
    assert (probe["sweeps"], probe["lock_skipped"], probe["trigger_errors"]) == (0, 1, 0)


@pytest.mark.parametrize("body", [{"scheduled": True}, {"scheduled": True, "source": "manual"}])
def test_a_scheduled_post_must_name_its_scheduler(hub: Hub, body: dict[str, Any]) -> None:
    """A scheduled POST with the source manual (or none) gets 422: no event, no run."""
    events, known = len(event_rows(hub.database)), len(runs(hub.database))
    answer = hub.http.post(SWEEP, json=body)
    assert answer.status_code == 422
    assert "not manual" in answer.text
    assert (len(event_rows(hub.database)), len(runs(hub.database))) == (events, known)


def test_scheduled_must_be_a_boolean(hub: Hub) -> None:
    """A "scheduled" of 1 is not a boolean (strict values): 422."""
    answer = hub.http.post(SWEEP, json={"source": "activity-core", "scheduled": 1})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "scheduled"]


def test_an_api_killed_mid_sweep_leaves_an_interrupted_run(tmp_path: Path, fleet: Path) -> None:
    """kill -9 during a scheduled sweep: the restarted API records the run as an error."""
    make_repo(fleet, "alpha")
    remote = HangingRemote()
    make_slow_repo(fleet, "slow", remote)  # a --remote sweep waits 60 s on its fetch
    server = serve_fleet(tmp_path, fleet, sweep="fetch_timeout_seconds = 60")
    database = tmp_path / "statehub.db"
    answers: list[Any] = []

    def post() -> None:
        with client(server.url, timeout=90) as http:
            try:
                answers.append(http.post(SWEEP, json={**SCHEDULED, "remote": True}))
            except httpx.HTTPError as exc:
                answers.append(exc)

    try:
        server.start()
        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        assert wait_for(lambda: fire_markers(database), timeout=30)
        [marker] = fire_markers(database)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(20)
        poster.join(30)
        assert isinstance(answers[0], httpx.HTTPError)  # the connection died with it
        assert runs(database) == []  # nothing recorded yet: the marker remains
        server.start()  # its start records the dead process's run
        [row] = runs(database)
    finally:
        server.stop()
        remote.close()
    assert marker == f"scheduler_fire:{row['run_id']}"
    assert row["outcome"] == "error"
    assert row["scheduled_for"] == quarter_hour_slot(row["fired_at"])
    assert row["context"]["interrupted"] is True
    assert row["context"]["origin"] == "http"
    assert fire_markers(database) == []


# -- the command line ---------------------------------------------------------------------


def test_sweep_scheduled_records_a_run_for_its_slot(tmp_path: Path, fleet: Path) -> None:
    """`sweep --all --scheduled --source local-timer`: the event, and one run of the slot."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])
    before = utc_now()
    done = statehub(
        "sweep", "--all", "--scheduled", "--source", "local-timer", "--json", config=config
    )
    after = utc_now()
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)  # --json prints the event, as without --scheduled
    assert set(event) == {"id", "event_type", "created_at", "detail"}
    [row] = runs(tmp_path / "statehub.db")
    assert before - timedelta(milliseconds=1) <= parse_iso(row["fired_at"]) <= after
    assert row["scheduled_for"] == quarter_hour_slot(row["fired_at"])
    assert row["outcome"] == "swept"
    assert (row["context"]["origin"], row["context"]["source"]) == ("cli", "local-timer")
    assert row["context"]["consistency_sweep_remote_all"] == event["detail"]
    assert row["context"]["progress_event_id"] == event["id"]
    [contract] = sqlite3.connect(tmp_path / "statehub.db").execute(CONTRACT_QUERY).fetchall()
    assert contract[0] == row["run_id"]


def test_sweep_without_scheduled_records_no_run(tmp_path: Path, fleet: Path) -> None:
    """A timer-sourced sweep without --scheduled records its event only."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])
    done = statehub("sweep", "--all", "--source", "local-timer", config=config)
    assert done.returncode == 0, done.stderr
    assert len(event_rows(tmp_path / "statehub.db")) == 1
    assert runs(tmp_path / "statehub.db") == []


def test_a_scheduled_sweep_with_an_automation_error_is_a_failed_run(
    tmp_path: Path, fleet: Path
) -> None:
    """A C-00: exit 1, a failed row (not swept) whose detail has exit_code 1 (issue 20)."""
    make_repo(fleet, "alpha")
    broken = fleet / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere\n", encoding="utf-8")
    config = write_config(tmp_path, roots=[fleet])
    done = statehub("sweep", "--scheduled", "--source", "local-timer", config=config)
    assert done.returncode == 1, done.stderr
    [row] = runs(tmp_path / "statehub.db")
    assert row["outcome"] == "failed"
    assert row["context"]["consistency_sweep_remote_all"]["exit_code"] == 1
    shown = statehub("status", "--json", config=config)
    assert [run["outcome"] for run in json.loads(shown.stdout)["runs"]] == ["failed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduled"], "--scheduled needs --source naming the scheduler (not manual)"),
        (
            ["--scheduled", "--repo", "alpha", "--source", "local-timer"],
            "--scheduled records a run of the schedule: it sweeps all repos, not --repo",
        ),
    ],
)
def test_sweep_scheduled_usage_errors(
    tmp_path: Path, fleet: Path, args: list[str], message: str
) -> None:
    """--scheduled without a named source, or with --repo: exit 2, one line, nothing written."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])
    done = statehub("sweep", *args, config=config)
    assert done.returncode == 2
    assert done.stderr == f"statehub: {message}\n"
    assert not (tmp_path / "statehub.db").exists()


def test_a_killed_scheduled_sweep_is_recorded_by_the_next(tmp_path: Path, fleet: Path) -> None:
    """kill -9 of `sweep --scheduled`: the next scheduled run records it interrupted first."""
    make_repo(fleet, "alpha")
    remote = HangingRemote()
    make_slow_repo(fleet, "slow", remote)
    config = write_config(tmp_path, roots=[fleet], sweep="fetch_timeout_seconds = 60")
    database = tmp_path / "statehub.db"
    argv = ["sweep", "--all", "--scheduled", "--source", "local-timer"]
    killed = start_statehub(*argv, "--remote", config=config)
    try:
        assert wait_for(lambda: fire_markers(database), timeout=30)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(20)
        remote.close()
    done = statehub(*argv, config=config)
    assert done.returncode == 0, done.stderr
    interrupted, swept = runs(database)
    assert (interrupted["outcome"], interrupted["context"]["interrupted"]) == ("error", True)
    assert interrupted["context"]["origin"] == "cli"
    assert swept["outcome"] == "swept"
    assert fire_markers(database) == []


# -- the recorder and the slot ------------------------------------------------------------


def test_a_scheduled_sweep_that_raises_is_an_error_row_compare_counts(tmp_path: Path) -> None:
    """A sweep that fails before any event: an error row, re-raised, a trigger error in compare."""
    settings = fleet_settings(tmp_path, roots=[tmp_path])

    def failing(_cancel: Cancel) -> dict[str, object]:
        raise StoreError("disk I/O error")

    fired = utc_now()
    with pytest.raises(StoreError):
        scheduled_sweep(settings, origin="http", source="activity-core", sweep=failing, fired=fired)
    [row] = runs(tmp_path / "statehub.db")
    assert (row["outcome"], row["context"]["error"]) == ("error", "disk I/O error")
    assert row["fired_at"] == iso(fired)
    report = compare(settings, since_hours=1)
    summary = report.sources["activity-core"]
    assert (summary.trigger_errors, summary.automation_errors) == (1, 1)
    assert fire_markers(tmp_path / "statehub.db") == []


@pytest.mark.parametrize(
    ("trigger", "zone", "moment", "slot"),
    [
        ("*/15 * * * *", "UTC", "2026-12-02T10:14:59.999Z", "2026-12-02T10:00:00Z"),
        ("*/15 * * * *", "UTC", "2026-12-02T10:15:00Z", "2026-12-02T10:15:00Z"),
        ("*/15 * * * *", "UTC", "2026-12-02T10:15:40.500Z", "2026-12-02T10:15:00Z"),
        # 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        ("0 9 * * *", "Europe/Berlin", "2026-12-02T07:59:00Z", "2026-12-01T08:00:00Z"),
        ("0 9 * * *", "Europe/Berlin", "2026-06-02T07:00:00Z", "2026-06-02T07:00:00Z"),
        # Either day field matches (cron): the 1st of the month beats the last Monday.
        ("0 9 1 * mon", "UTC", "2026-12-02T00:00:00Z", "2026-12-01T09:00:00Z"),
        # Years back: the last 29 February.
        ("0 0 29 2 *", "UTC", "2026-12-02T00:00:00Z", "2024-02-29T00:00:00Z"),
    ],
)
def test_previous_fire_time_is_the_slot_at_or_before(
    trigger: str, zone: str, moment: str, slot: str
) -> None:
    """The newest fire of a cron at or before a moment, in the cron's zone, read as cron does."""
    found = previous_fire_time(cron_trigger(trigger, ZoneInfo(zone)), parse_iso(moment))
    assert found is not None
    assert found.astimezone(UTC) == datetime.fromisoformat(slot.replace("Z", "+00:00"))
