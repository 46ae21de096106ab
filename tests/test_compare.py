"""statehub compare: sweeps summed by source, and slot coverage of the schedule (issue 6)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from clirun import statehub
from statehub.cli import main
from statehub.compare import compare, compare_command
from statehub.settings import Settings, load_settings
from statehub.store import Store
from statehub.timefmt import iso, parse_iso, utc_now

WHOLE = "consistency_sweep_remote_all"
CHOSEN = "consistency_sweep"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def write_config(tmp_path: Path, *, trigger: str = "*/15 * * * *", timezone: str = "UTC") -> Path:
    config = tmp_path / "statehub.toml"
    config.write_text(
        '[hub]\ndatabase = "hub.db"\n\n'
        f'[schedule]\ntrigger = "{trigger}"\ntimezone = "{timezone}"\n',
        encoding="utf-8",
    )
    return config


def sweep_detail(
    source: str,
    started: datetime,
    *,
    duration: float = 4.0,
    lock_skipped: bool = False,
    automation_error: bool = False,
    failures: int = 3,
) -> dict[str, Any]:
    """A detail with every key of contract section 5, as run_sweep writes it."""
    finished = started if lock_skipped else started + timedelta(seconds=duration)
    errors = (
        [{"repo": "broken", "check": "C-00", "message": "cannot read .git"}]
        if automation_error
        else []
    )
    return {
        "source": source,
        "run_id": f"{source}-{started.timestamp():.0f}",
        "lock_skipped": lock_skipped,
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_seconds": 0.0 if lock_skipped else duration,
        "max_seconds": 300,
        "remote": True,
        "repos_total": 3,
        "repos_processed": []
        if lock_skipped
        else [
            {
                "repo": "state-hub",
                "head": "3f2a9c1",
                "findings": [
                    {"check": "C-09", "message": "status 'done' is not allowed", "path": "x.md"}
                ],
            }
        ],
        "skipped_clean": [] if lock_skipped else ["activity-core"],
        "skipped_missing": [],
        "skipped_budget": [],
        "exit_code": 1 if automation_error else 0,
        "automation_error": automation_error,
        "automation_errors": errors,
        "assessment_failures": failures,
    }


class Hub:
    """A config file and a real SQLite store in tmp_path, with helpers to record sweeps."""

    def __init__(self, tmp_path: Path, **schedule: str) -> None:
        self.config = write_config(tmp_path, **schedule)
        self.settings: Settings = load_settings(self.config)
        self.store = Store.open(self.settings.database_path)

    def sweep(
        self,
        source: str,
        started: datetime,
        *,
        event_type: str = WHOLE,
        duration: float = 4.0,
        **detail: Any,
    ) -> None:
        record = sweep_detail(source, started, duration=duration, **detail)
        finished = started if record["lock_skipped"] else started + timedelta(seconds=duration)
        self.store.append_event(event_type, record, created_at=finished)

    def report(self, since_hours: float, now: datetime = NOW) -> dict[str, Any]:
        """compare --json through the command function, with the test's clock."""
        return compare(self.settings, since_hours=since_hours, now=now).as_dict()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    made = Hub(tmp_path)
    yield made
    made.store.close()


def every_slot(
    start: datetime, end: datetime, step: timedelta = timedelta(minutes=15)
) -> list[datetime]:
    moments = []
    while start < end:
        moments.append(start)
        start += step
    return moments


def test_counts_per_source(hub: Hub) -> None:
    """Each source gets sweeps, lock-skipped, automation errors, last failures, durations, times."""
    base = NOW - timedelta(hours=2)
    hub.sweep("activity-core", base + timedelta(minutes=1), duration=2.0, failures=5)
    hub.sweep("activity-core", base + timedelta(minutes=16), duration=4.0, failures=6)
    hub.sweep("activity-core", base + timedelta(minutes=17), lock_skipped=True, failures=9)
    hub.sweep(
        "activity-core",
        base + timedelta(minutes=31),
        duration=9.0,
        automation_error=True,
        failures=7,
    )
    hub.sweep("local-daemon", base + timedelta(minutes=46), duration=1.5, failures=2)
    hub.sweep("local-daemon", base + timedelta(minutes=47), lock_skipped=True, failures=2)

    sources = hub.report(3)["sources"]

    assert set(sources) == {"activity-core", "local-daemon"}
    assert sources["activity-core"] == {
        "sweeps": 3,
        "lock_skipped": 1,
        "automation_errors": 1,
        "trigger_errors": 0,
        "interrupted": 0,
        "cancelled": 0,
        "assessment_failures_last": 7,
        "first_at": iso(base + timedelta(minutes=1, seconds=2)),
        "last_at": iso(base + timedelta(minutes=31, seconds=9)),
        "mean_duration_seconds": 5.0,
        "max_duration_seconds": 9.0,
    }
    assert sources["local-daemon"] == {
        "sweeps": 1,
        "lock_skipped": 1,
        "automation_errors": 0,
        "trigger_errors": 0,
        "interrupted": 0,
        "cancelled": 0,
        "assessment_failures_last": 2,
        "first_at": iso(base + timedelta(minutes=46, seconds=1.5)),
        "last_at": iso(base + timedelta(minutes=47)),
        "mean_duration_seconds": 1.5,
        "max_duration_seconds": 1.5,
    }


def test_only_lock_skipped_source_has_no_durations(hub: Hub) -> None:
    """A source with only lock-skipped events has 0 sweeps and null durations and failures."""
    hub.sweep("manual", NOW - timedelta(minutes=20), lock_skipped=True)

    summary = hub.report(1)["sources"]["manual"]

    assert summary["sweeps"] == 0
    assert summary["lock_skipped"] == 1
    assert summary["mean_duration_seconds"] is None
    assert summary["max_duration_seconds"] is None
    assert summary["assessment_failures_last"] is None


def test_every_slot_covered(hub: Hub) -> None:
    """A sweep in each of the 96 slots of a day: all covered, none missed or doubled, OK."""
    for slot in every_slot(NOW - timedelta(hours=24), NOW):
        hub.sweep("activity-core", slot + timedelta(seconds=3))

    report = hub.report(24)

    assert report["slots"] == {
        "expected": 96,
        "covered": 96,
        "missed": [],
        "doubled": [],
        "no_data": 0,
    }
    assert report["sources"]["activity-core"]["sweeps"] == 96
    assert report["verdict"] == "OK: 96/96 slots covered, no doubled slots"


def test_missed_slots_listed_in_utc(hub: Hub) -> None:
    """Slots without a completed sweep are missed and listed as UTC Z strings."""
    for slot in every_slot(NOW - timedelta(hours=2), NOW):
        if slot.minute != 30:
            hub.sweep("activity-core", slot + timedelta(minutes=2))

    slots = hub.report(2)["slots"]

    assert slots["expected"] == 8
    assert slots["covered"] == 6
    assert slots["missed"] == ["2026-11-27T10:30:00Z", "2026-11-27T11:30:00Z"]
    assert slots["doubled"] == []


def test_lock_skipped_and_interrupted_do_not_cover(hub: Hub) -> None:
    """A slot with only a lock-skipped or an interrupted sweep is missed; a C-00 sweep covers."""
    first = NOW - timedelta(hours=1)
    hub.sweep("activity-core", first + timedelta(minutes=1), lock_skipped=True)
    interrupted = sweep_detail(
        "activity-core", first + timedelta(minutes=16), automation_error=True
    )
    interrupted["interrupted"] = True
    hub.store.append_event(WHOLE, interrupted, created_at=first + timedelta(minutes=40))
    hub.sweep("activity-core", first + timedelta(minutes=31), automation_error=True)
    hub.sweep("activity-core", first + timedelta(minutes=46))

    report = hub.report(1)

    assert report["slots"]["missed"] == ["2026-11-27T11:00:00Z", "2026-11-27T11:15:00Z"]
    assert report["slots"]["covered"] == 2
    summary = report["sources"]["activity-core"]
    assert (summary["sweeps"], summary["lock_skipped"], summary["interrupted"]) == (2, 1, 1)
    assert summary["automation_errors"] == 2


def test_a_sweep_stopped_by_the_operator_does_not_cover_nor_count(hub: Hub) -> None:
    """A Ctrl-C'd sweep neither covers its slot nor counts as a sweep; it is counted cancelled."""
    first = NOW - timedelta(hours=1)
    stopped = sweep_detail("activity-core", first + timedelta(minutes=1))
    stopped.update(cancelled=True, cancelled_by="SIGINT")
    hub.store.append_event(WHOLE, stopped, created_at=first + timedelta(minutes=2))
    for minutes in (16, 31, 46):
        hub.sweep("activity-core", first + timedelta(minutes=minutes))

    report = hub.report(1)

    assert report["slots"]["missed"] == ["2026-11-27T11:00:00Z"]
    summary = report["sources"]["activity-core"]
    assert (summary["sweeps"], summary["cancelled"], summary["automation_errors"]) == (3, 1, 0)


def test_chosen_repo_sweep_does_not_cover(hub: Hub) -> None:
    """A sweep of chosen repos counts for its source but covers no slot."""
    hub.sweep("manual", NOW - timedelta(minutes=20), event_type=CHOSEN)

    report = hub.report(0.5)

    assert report["sources"]["manual"]["sweeps"] == 1
    assert report["slots"] == {
        "no_data": 0,
        "expected": 2,
        "covered": 0,
        "missed": ["2026-11-27T11:30:00Z", "2026-11-27T11:45:00Z"],
        "doubled": [],
    }


def test_doubled_needs_two_different_sources(hub: Hub) -> None:
    """Two sources in one slot is doubled; two sweeps of one source in one slot is not."""
    first = NOW - timedelta(minutes=30)
    hub.sweep("activity-core", first + timedelta(minutes=1))
    hub.sweep("local-daemon", first + timedelta(minutes=9))
    hub.sweep("activity-core", first + timedelta(minutes=16))
    hub.sweep("activity-core", first + timedelta(minutes=29))
    hub.sweep("local-daemon", first + timedelta(minutes=20), lock_skipped=True)

    report = hub.report(0.5)

    assert report["slots"] == {
        "no_data": 0,
        "expected": 2,
        "covered": 2,
        "missed": [],
        "doubled": ["2026-11-27T11:30:00Z"],
    }
    assert report["verdict"] == "ATTENTION: 1 doubled (2/2 slots covered)"


def test_window_edges(hub: Hub) -> None:
    """Only slots starting in the window and ended by now count; sweeps outside cover nothing."""
    now = datetime(2026, 11, 27, 12, 7, tzinfo=UTC)  # mid-slot; the window starts at 11:07
    hub.sweep("activity-core", datetime(2026, 11, 27, 11, 5, tzinfo=UTC))  # before the window
    hub.sweep("local-daemon", datetime(2026, 11, 27, 11, 10, tzinfo=UTC))  # slot began at 11:00
    hub.sweep("activity-core", datetime(2026, 11, 27, 11, 16, tzinfo=UTC))
    hub.sweep("activity-core", datetime(2026, 11, 27, 11, 59, 55, tzinfo=UTC))  # ends 11:59:59
    hub.sweep("local-daemon", datetime(2026, 11, 27, 12, 1, tzinfo=UTC))  # slot still running

    report = hub.report(1, now=now)

    assert report["slots"] == {
        "no_data": 0,
        "expected": 3,
        "covered": 2,
        "missed": ["2026-11-27T11:30:00Z"],
        "doubled": [],
    }
    assert report["sources"]["activity-core"]["sweeps"] == 2
    assert report["sources"]["local-daemon"]["sweeps"] == 2


def test_window_on_slot_boundaries(hub: Hub) -> None:
    """A slot starting exactly at the window start and one ending exactly at now both count."""
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    hub.sweep("activity-core", datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    hub.sweep("activity-core", datetime(2026, 11, 27, 11, 45, tzinfo=UTC))
    hub.sweep("activity-core", datetime(2026, 11, 27, 12, 0, tzinfo=UTC), duration=0.0)

    slots = hub.report(1, now=now)["slots"]

    assert slots["expected"] == 4
    assert slots["missed"] == ["2026-11-27T11:15:00Z", "2026-11-27T11:30:00Z"]
    assert slots["covered"] == 2


def test_slots_follow_the_schedule_time_zone_across_dst(tmp_path: Path) -> None:
    """0 9 * * * in Europe/Berlin: slots at 08:00Z before the DST change, 07:00Z after."""
    hub = Hub(tmp_path, trigger="0 9 * * *", timezone="Europe/Berlin")
    now = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)  # the 30 March slot ends at 07:00Z: open
    hub.sweep("activity-core", datetime(2026, 3, 26, 8, 5, tzinfo=UTC))
    hub.sweep("activity-core", datetime(2026, 3, 27, 8, 5, tzinfo=UTC))
    # None on the 28th. 07:05Z on the 29th is 09:05 CEST: the 29th's slot, not the 28th's.
    hub.sweep("activity-core", datetime(2026, 3, 29, 7, 5, tzinfo=UTC))
    hub.sweep("local-daemon", datetime(2026, 3, 29, 7, 30, tzinfo=UTC))
    hub.sweep("activity-core", datetime(2026, 3, 30, 7, 5, tzinfo=UTC))

    report = compare(hub.settings, since_hours=5 * 24, now=now).as_dict()
    hub.store.close()

    assert report["slots"] == {
        "no_data": 0,
        "expected": 4,
        "covered": 3,
        "missed": ["2026-03-28T08:00:00Z"],
        "doubled": ["2026-03-29T07:00:00Z"],
    }
    assert report["schedule"] == {"trigger": "0 9 * * *", "timezone": "Europe/Berlin"}


def test_retired_source_warning(hub: Hub) -> None:
    """A retired source seen in the window is reported; one seen only before it is not."""
    hub.sweep("local-timer", NOW - timedelta(hours=3))  # before the window
    hub.sweep("activity-core", NOW - timedelta(minutes=14))
    assert hub.report(0.25)["retired_sources_seen"] == []

    hub.sweep("local-timer", NOW - timedelta(minutes=10), lock_skipped=True)
    report = hub.report(0.25)

    assert report["retired_sources_seen"] == ["local-timer"]
    assert report["verdict"] == "ATTENTION: retired source local-timer seen (1/1 slots covered)"


def test_text_report_with_slot_strip_on_a_terminal(hub: Hub) -> None:
    """On a terminal the text report has one strip character per slot, wrapped at the width."""
    for slot in every_slot(NOW - timedelta(hours=6), NOW):
        if slot.hour != 8:
            hub.sweep("activity-core", slot + timedelta(seconds=30))
    hub.sweep("local-daemon", datetime(2026, 11, 27, 10, 5, tzinfo=UTC))
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=True, width=10, color_system=None)

    status = compare_command(hub.settings, since_hours=6, as_json=False, now=NOW, console=out)

    lines = buffer.getvalue().splitlines()
    strip = [line for line in lines if line and set(line) <= {"█", "·", "2"}]
    assert status == 0
    assert "".join(strip) == "█" * 8 + "·" * 4 + "█" * 4 + "2" + "█" * 7
    assert [len(line) for line in strip] == [10, 10, 4]
    assert lines[-1] == "ATTENTION: 4 missed, 1 doubled (20/24 slots covered)"


def test_text_report_without_terminal_has_no_strip(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped, the text report is the table and the verdict, no strip; exit 0 despite misses."""
    hub.sweep("activity-core", NOW - timedelta(minutes=29))

    status = compare_command(hub.settings, since_hours=1, as_json=False, now=NOW)

    out = capsys.readouterr().out
    assert status == 0
    assert "activity-core" in out
    assert "█" not in out
    assert out.splitlines()[-1] == (
        "ATTENTION: 1 missed (1/2 slots covered; 2 before the store's first record: no data)"
    )


def test_missing_database_reads_as_no_sweeps(tmp_path: Path) -> None:
    """Without a database every slot is missed, the file is not created, the status is 0."""
    settings = load_settings(write_config(tmp_path))

    report = compare(settings, since_hours=1, now=NOW).as_dict()

    assert report["sources"] == {}
    assert report["slots"]["expected"] == 4
    assert report["slots"]["covered"] == 0
    assert not settings.database_path.exists()


def test_cli_json_in_process(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    """`statehub compare --json` prints one JSON document with the per-source counts."""
    now = utc_now()
    hub.sweep("activity-core", now - timedelta(hours=2))
    hub.sweep("local-daemon", now - timedelta(hours=1), automation_error=True)
    hub.sweep("local-daemon", now - timedelta(hours=30))  # outside 24 h

    status = main(["--config", str(hub.config), "compare", "--since-hours", "24", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["since_hours"] == 24
    assert document["sources"]["activity-core"]["sweeps"] == 1
    assert document["sources"]["local-daemon"]["sweeps"] == 1
    assert document["sources"]["local-daemon"]["automation_errors"] == 1
    slots = document["slots"]
    assert slots["expected"] in (95, 96)
    assert slots["covered"] == 2
    assert slots["expected"] == slots["covered"] + len(slots["missed"])


def test_cli_subprocess(hub: Hub) -> None:
    """The installed command answers compare --json in a subprocess with exit status 0."""
    hub.sweep("activity-core", utc_now() - timedelta(minutes=50))
    hub.store.close()

    done = statehub("--config", str(hub.config), "compare", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sources"]["activity-core"]["sweeps"] == 1


def test_a_new_store_has_no_missed_slots_before_its_first_record(tmp_path: Path) -> None:
    """A store minutes old: the day's earlier slots are "no data", not missed (issue 15)."""
    from statehub.compare import SweepRow
    from statehub.page import build_strip

    settings = load_settings(write_config(tmp_path))
    now = utc_now()
    slot_end = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) + timedelta(
        minutes=15
    )
    with Store.open(settings.database_path) as store:
        store.append_event(WHOLE, sweep_detail("manual", now), created_at=now)
        created = parse_iso(store.first_record_at() or "")
        since = slot_end - timedelta(days=1)
        rows = [SweepRow.from_row(row) for row in store.sweep_rows(since=since, until=slot_end)]

    report = compare(settings, since_hours=24, now=slot_end).as_dict()

    assert report["slots"] == {
        "expected": 1,
        "covered": 1,
        "missed": [],
        "doubled": [],
        "no_data": 95,
    }
    # The status page's strip draws the same slots as before the store, none as missed.
    strip = build_strip(
        settings, rows, now=slot_end, window="24h", store_created=created, sources=["manual"]
    )
    assert strip.counts["missed"] == 0
    assert strip.counts["before"] == 95


def test_an_http_trigger_that_fails_before_sweeping_is_an_automation_error(
    tmp_path: Path, fleet: Path
) -> None:
    """run-now via http with the API down: compare counts an automation error of the source."""
    from api_support import refusing_address
    from gitfleet import make_repo
    from gitfleet import write_config as fleet_config

    make_repo(fleet, "alpha")
    with refusing_address() as address:
        config = fleet_config(
            tmp_path,
            roots=[fleet],
            schedule=f'mode = "active"\ntrigger_via = "http"\napi_url = "http://{address}"',
        )
        fired = subprocess.run(
            [
                sys.executable,
                "-m",
                "statehub",
                "schedule",
                "run-now",
                "--json",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert json.loads(fired.stdout)["outcome"] == "error", fired.stdout + fired.stderr

    report = compare(load_settings(config), since_hours=1).as_dict()

    daemon = report["sources"]["local-daemon"]
    assert (daemon["sweeps"], daemon["trigger_errors"], daemon["automation_errors"]) == (0, 1, 1)
    assert "1 trigger(s) failed before sweeping (local-daemon)" in report["verdict"]
    assert report["verdict"].startswith("ATTENTION")
