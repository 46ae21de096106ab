"""statehub status: schedule, the last runs of the schedule, last sweep per source, findings."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from contract_keys import sweep_detail
from statehub.cli import main
from statehub.daemonstate import DaemonRecord
from statehub.render import render_status
from statehub.settings import Settings, load_settings
from statehub.statusmodel import read_status
from statehub.store import ActivityRun, Assessment, Store
from statehub.timefmt import iso

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
DEFINITION = "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"


def settings_in(tmp_path: Path, *, timezone: str = "UTC") -> tuple[Path, Settings]:
    config = tmp_path / "statehub.toml"
    config.write_text(
        f'[hub]\ndatabase = "var/hub.db"\n\n[schedule]\ntrigger = "0 9 * * *"\n'
        f'timezone = "{timezone}"\nid = "{DEFINITION}"\n',
        encoding="utf-8",
    )
    return config, load_settings(config)


# What every planted sweep saw unless it says otherwise: two clean repos, fetched.
FLEET: dict[str, Any] = {
    "remote": True,
    "repos_total": 2,
    "skipped_clean": ["alpha", "beta"],
    "assessment_failures": 1,
}


def detail(source: str, started: datetime, **changes: Any) -> dict[str, Any]:
    """A planted sweep's detail: :data:`FLEET`'s, with ``changes``."""
    return sweep_detail(source, started, **(FLEET | changes))


def populate(store: Store) -> None:
    """Seven runs of the definition, one of another, sweeps of three sources, findings."""
    for hour in range(7):
        fired = NOW - timedelta(hours=7 - hour)
        store.record_run(
            ActivityRun(
                run_id=f"run-{hour}",
                definition_id=DEFINITION,
                fired_at=iso(fired),
                scheduled_for=iso(fired),
                outcome="primary_healthy" if hour % 2 else "swept",
                context_snapshot={},
            )
        )
    store.record_run(
        ActivityRun(
            run_id="other",
            definition_id="another-definition",
            fired_at=iso(NOW),
            scheduled_for=iso(NOW),
            outcome="swept",
            context_snapshot={},
        )
    )
    old = NOW - timedelta(hours=5)
    store.append_event("consistency_sweep_remote_all", detail("activity-core", old), old)
    late = NOW - timedelta(hours=1)
    store.append_event(
        "consistency_sweep_remote_all",
        detail("activity-core", late, duration_seconds=7.5, assessment_failures=2),
        late + timedelta(seconds=8),
    )
    store.append_event(
        "consistency_sweep_remote_all",
        detail("local-daemon", late, lock_skipped=True, duration_seconds=0.0),
        late,
    )
    store.append_event(
        "consistency_sweep",
        detail("manual", late, automation_error=True, exit_code=1),
        late + timedelta(seconds=3),
    )
    findings: dict[str, list[dict[str, Any]]] = {
        "alpha": [{"check": "C-02", "message": "AGENTS.md missing", "path": None}],
        "beta": [
            {"check": "C-00", "message": "cannot read .git", "path": None},
            {"check": "C-02", "message": "AGENTS.md empty", "path": "AGENTS.md"},
        ],
        "gamma": [],
    }
    store.save_assessments(
        [
            Assessment(
                repo=name,
                path=f"/src/{name}",
                head="abc1234",
                fingerprint="f",
                assessed_at=iso(late),
                findings=found,
            )
            for name, found in findings.items()
        ]
    )


def test_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a database status says so, exits 0 and does not create the file."""
    config, settings = settings_in(tmp_path)

    status = main(["--config", str(config), "status"])

    out = capsys.readouterr().out
    assert status == 0
    assert "no database yet" in out
    assert "State Hub Consistency Sweep" in out
    assert not settings.database_path.exists()


def test_missing_database_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON of a missing database has exists false, no runs, sweeps or findings."""
    config, _ = settings_in(tmp_path)

    status = main(["--config", str(config), "status", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["database"]["exists"] is False
    assert document["database"]["size_bytes"] is None
    assert (document["runs"], document["last_sweeps"], document["open_findings"]) == ([], {}, [])


def test_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing database without events is reported as such, exit 0."""
    config, settings = settings_in(tmp_path)
    Store.open(settings.database_path).close()

    status = main(["--config", str(config), "status"])

    out = capsys.readouterr().out
    assert status == 0
    assert "0 event(s)" in out
    assert "no sweeps recorded yet" in out


def test_next_fire_in_the_schedule_zone(tmp_path: Path) -> None:
    """The next fire is computed in the schedule's zone: 09:00 Berlin is 07:00Z after DST."""
    _, settings = settings_in(tmp_path, timezone="Europe/Berlin")

    document = read_status(settings, now=NOW).as_dict()  # Saturday 28 March, 13:00 CET

    assert document["schedule"]["next_fire"] == "2026-03-29T07:00:00Z"
    assert document["schedule"]["next_fire_local"] == "2026-03-29T09:00:00+02:00"


def test_populated_json(tmp_path: Path) -> None:
    """The runs of the definition, last event per source, findings by check C-00 first."""
    _, settings = settings_in(tmp_path)
    with Store.open(settings.database_path) as store:
        populate(store)

    document = read_status(settings, now=NOW).as_dict()

    assert [run["run_id"] for run in document["runs"]] == [f"run-{n}" for n in range(6, -1, -1)]
    assert document["database"]["events"] == 4
    assert document["database"]["size_bytes"] > 0
    sweeps = document["last_sweeps"]
    # The sources of the schedule are listed even without an event (local-fallback).
    assert list(sweeps) == ["activity-core", "local-daemon", "local-fallback", "manual"]
    assert sweeps["local-fallback"]["at"] is None
    assert sweeps["activity-core"] == {
        "expected": True,
        "at": iso(NOW - timedelta(hours=1) + timedelta(seconds=8)),
        "event_type": "consistency_sweep_remote_all",
        "outcome": "completed",
        "duration_seconds": 7.5,
        "assessment_failures": 2,
    }
    assert sweeps["local-daemon"]["outcome"] == "lock_skipped"
    assert sweeps["manual"]["outcome"] == "automation_error"
    assert [group["check"] for group in document["open_findings"]] == ["C-00", "C-02"]
    assert document["open_findings"][0]["repos"] == ["beta"]
    assert document["open_findings"][1]["repos"] == ["alpha", "beta"]
    assert (document["repos_assessed"], document["repos_with_findings"]) == (3, 2)


def test_populated_text(tmp_path: Path) -> None:
    """The text screen shows the schedule, runs, sources and findings with C-00 first."""
    _, settings = settings_in(tmp_path)
    with Store.open(settings.database_path) as store:
        populate(store)
    buffer = io.StringIO()

    render_status(Console(file=buffer, width=120), read_status(settings, now=NOW))

    out = buffer.getvalue()
    assert "next fire 2026-03-29T09:00:00Z" in out
    assert "run-6" not in out  # run ids are for --json; the screen shows times and outcomes
    assert out.count("primary_healthy") == 3  # runs 5, 3 and 1 of the seven
    assert "lock skipped" in out
    assert "automation error" in out
    assert out.index("C-00") < out.index("C-02")
    assert "2 of 3 assessed repo(s) with open findings" in out


def test_runs_are_named_by_origin_and_a_stopped_daemon_says_so(tmp_path: Path) -> None:
    """The screen shows runs of every origin as such; an alive daemon's own schedule is the
    one shown; once it records its stop it is stopped at once; a silent worker is gone."""
    _, settings = settings_in(tmp_path)
    with Store.open(settings.database_path) as store:
        for hour, origin in enumerate(("schedule", "temporal", "http")):
            fired = iso(NOW - timedelta(hours=3 - hour))
            store.record_run(
                ActivityRun(
                    run_id=f"run-{origin}",
                    definition_id=DEFINITION,
                    fired_at=fired,
                    scheduled_for=fired,
                    outcome="swept",
                    context_snapshot={"origin": origin, "source": "activity-core"},
                )
            )
        store.set_state("heartbeat:worker", iso(NOW - timedelta(minutes=10)))
    # A daemon started with STATEHUB_SCHEDULE__TRIGGER: it fires on its own trigger.
    overridden = settings.schedule.model_copy(update={"trigger": "*/5 * * * *"})
    record = DaemonRecord(settings.model_copy(update={"schedule": overridden}))
    record.alive(at=NOW - timedelta(seconds=30))

    alive = read_status(settings, now=NOW).as_dict()
    record.stopped("SIGTERM", at=NOW)
    model = read_status(settings, now=NOW)
    buffer = io.StringIO()
    render_status(Console(file=buffer, width=160), model)

    assert (alive["schedule"]["trigger"], alive["schedule"]["from_daemon"]) == ("*/5 * * * *", True)
    assert alive["processes"]["daemon"]["state"] == "alive"
    out = buffer.getvalue()
    assert "daemon's" not in out
    assert "the last 3 run(s) of the schedule, from any origin" in out
    assert [run["origin"] for run in model.as_dict()["runs"]] == ["http", "temporal", "schedule"]
    processes = model.as_dict()["processes"]
    assert (processes["daemon"]["state"], processes["daemon"]["pid"]) == ("stopped", os.getpid())
    assert processes["daemon"]["at"] == "2026-03-28T12:00:00Z"  # when it stopped
    assert processes["worker"]["state"] == "gone"
    assert model.schedule.trigger == "0 9 * * *"  # stopped: the file's schedule again
    assert "fires on '*/5 * * * *', not the file's '0 9 * * *'" in out
