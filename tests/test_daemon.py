"""The daemon as a subprocess: systemd notify, signals, real fires, run-now, schedule show."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from api_support import ApiServer, HangingRemote
from clirun import start_statehub, statehub
from daemon_support import (
    DaemonProcess,
    NotifySocket,
    clear_of_slot_boundary,
    contract_runs,
    decisions,
    runs,
)
from gitfleet import make_repo, write, write_config
from statehub.lock import SweepLock
from statehub.runs import MARKER_PREFIX
from statehub.settings import load_settings
from statehub.store import Store
from statehub.sweep import EVENT_ALL
from statehub.timefmt import iso, utc_now
from waiting import wait_for

FIRE_EVERY = 20  # seconds: the daemons' test trigger (a real minute: test_fires_on_the_minute)
NEVER_SOON = 'trigger = "0 0 1 1 *"'  # once a year: no fire during a test


@pytest.fixture
def small_fleet(fleet: Path) -> Path:
    """Two good repos."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    return fleet


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    """A NOTIFY_SOCKET bound by the test."""
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons started by a test; any left running are killed at the end."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.close()


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def append_primary_sweep(config: Path, created_at: datetime, source: str = "activity-core") -> None:
    """Record a completed all-repos sweep from ``source`` at ``created_at``."""
    settings = load_settings(config)
    detail = {"source": source, "lock_skipped": False, "exit_code": 0, "run_id": "primary"}
    with Store.open(settings.database_path) as store:
        store.append_event(EVENT_ALL, detail, created_at=created_at)


@pytest.mark.long(22)
def test_real_fires_in_each_mode(
    tmp_path: Path, small_fleet: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """Three daemons wait for the same slot: active sweeps, standby idles or takes over."""
    active_cfg = write_config(
        folder(tmp_path, "active"), roots=[small_fleet], schedule='mode = "active"'
    )
    idle_cfg = write_config(folder(tmp_path, "idle"), roots=[small_fleet])
    takeover_cfg = write_config(folder(tmp_path, "takeover"), roots=[small_fleet])
    append_primary_sweep(idle_cfg, utc_now())
    append_primary_sweep(takeover_cfg, utc_now() - timedelta(hours=2))
    active_db, idle_db, takeover_db = (
        load_settings(config).database_path for config in (active_cfg, idle_cfg, takeover_cfg)
    )

    # The bad-config reload below must happen before the first fire.
    clear_of_slot_boundary(FIRE_EVERY, 10)
    active = DaemonProcess(
        active_cfg,
        notify=notify,
        watchdog_usec=2_000_000,
        journal=True,
        fire_every=FIRE_EVERY,
    )
    idle = DaemonProcess(idle_cfg, fire_every=FIRE_EVERY)
    takeover = DaemonProcess(takeover_cfg, fire_every=FIRE_EVERY)
    daemons.extend([active, idle, takeover])
    ready_at, _ = notify.wait_field("READY", 10)
    for daemon in (idle, takeover):
        daemon.wait_line("scheduled 'State Hub Consistency Sweep'", 10)

    # A bad new config is refused and logged as an error; the old schedule goes on.
    good_text = active_cfg.read_text()
    active_cfg.write_text(good_text.replace('mode = "active"', 'mode = "sideways"'))
    sent = time.monotonic()
    active.send(signal.SIGHUP)
    _, refused = active.wait_line("reload refused", 10, after=sent)
    assert refused.startswith("<3>")
    assert str(active_cfg) in refused and "schedule.mode" in refused
    notify.wait_field("RELOADING", 5, after=sent)
    notify.wait_field("READY", 5, after=sent)
    assert not runs(active_db)  # no fire yet: the one below comes after the refused reload

    for database in (active_db, takeover_db):
        wait_for(lambda database=database: runs(database), FIRE_EVERY + 15, f"a fire in {database}")
    wait_for(lambda: decisions(idle_db), FIRE_EVERY + 15, "the idle standby's decision")
    fire_seen = time.monotonic()

    # active: swept as local-daemon at the slot, visible through the contract's query.
    [active_run] = runs(active_db)
    assert active_run["outcome"] == "swept"
    slot = datetime.fromisoformat(str(active_run["scheduled_for"]).replace("Z", "+00:00"))
    assert slot.second % FIRE_EVERY == 0 and slot.microsecond == 0
    fired_at = datetime.fromisoformat(str(active_run["fired_at"]).replace("Z", "+00:00"))
    assert timedelta(0) <= fired_at - slot < timedelta(seconds=1)
    [(run_id, _, scheduled_for, sweep_result)] = contract_runs(active_db)
    assert (run_id, scheduled_for) == (active_run["run_id"], active_run["scheduled_for"])
    result = json.loads(sweep_result)
    assert result["source"] == "local-daemon" and result["lock_skipped"] is False
    assert result["repos_total"] == 2

    # standby, fresh primary: idle, the primary's last sweep in the context, nothing swept;
    # a decision, not a row of the contract's query (issue 20).
    [idle_run] = decisions(idle_db)
    assert idle_run["outcome"] == "primary_healthy"
    assert idle_run["context"]["primary_last_source"] == "activity-core"
    assert idle_run["context"]["primary_last_sweep_at"]
    assert contract_runs(idle_db) == []

    # standby, stale primary: takes over as local-fallback with a warning.
    [takeover_run] = runs(takeover_db)
    assert takeover_run["outcome"] == "swept"
    assert takeover_run["context"]["consistency_sweep_remote_all"]["source"] == "local-fallback"
    _, warning = takeover.wait_line("standby: no completed sweep from activity-core", 5)
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z WARNING ", warning)

    # systemd: STATUS lines are ASCII and name the outcome; the watchdog pings about every
    # second (WATCHDOG_USEC 2 s) from READY until the fire was seen.
    statuses = [value for _, value in notify.fields("STATUS")]
    assert all(value.isascii() for value in statuses)
    wait_for(
        lambda: any(v.startswith("active; last: swept at") for _, v in notify.fields("STATUS")),
        5,
        "a STATUS with the last outcome",
    )
    pings = [moment for moment, _ in notify.fields("WATCHDOG") if ready_at <= moment <= fire_seen]
    elapsed = fire_seen - ready_at
    assert 0.6 * elapsed - 1 <= len(pings) <= 1.5 * elapsed + 2, (len(pings), elapsed)
    assert all(line.startswith(("<6>", "<4>", "<3>")) for line in active.lines()), active.lines()
    assert any(line.startswith("<6>") for line in active.lines())

    stop_sent = time.monotonic()
    for daemon in daemons:
        daemon.send(signal.SIGTERM)
    for daemon in daemons:
        assert daemon.wait(10) == 0
    assert time.monotonic() - stop_sent < 10
    notify.wait_field("STOPPING", 2, after=stop_sent)


@pytest.mark.slow
def test_fires_on_the_minute(
    tmp_path: Path, small_fleet: Path, daemons: list[DaemonProcess]
) -> None:
    """Without the test trigger, ``* * * * *`` fires at second 0 of two real minutes."""
    config = write_config(
        tmp_path, roots=[small_fleet], schedule='mode = "active"\ntrigger = "* * * * *"'
    )
    daemon = DaemonProcess(config)
    daemons.append(daemon)
    database = load_settings(config).database_path
    fired = wait_for(lambda: runs(database)[1:] and runs(database), 130, "two fires")
    slots = [datetime.fromisoformat(str(run["scheduled_for"])) for run in fired]
    assert [(slot.second, slot.microsecond) for slot in slots] == [(0, 0), (0, 0)]
    assert slots[1] - slots[0] == timedelta(minutes=1)
    assert [run["outcome"] for run in fired] == ["swept", "swept"]
    assert not any("test trigger" in line for line in daemon.lines())
    daemon.send(signal.SIGTERM)
    assert daemon.wait(10) == 0


def test_sighup_reloads_mode_and_enabled(
    tmp_path: Path, small_fleet: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """SIGHUP with a good config switches the mode, then disables; STATUS and logs say so."""
    config = write_config(tmp_path, roots=[small_fleet], schedule=f'mode = "active"\n{NEVER_SOON}')
    daemon = DaemonProcess(config, notify=notify)
    daemons.append(daemon)
    notify.wait_field("READY", 10)
    assert notify.fields("STATUS")[0][1].startswith("active; last: none; next: ")

    config.write_text(config.read_text().replace('mode = "active"', 'mode = "standby"'))
    sent = time.monotonic()
    daemon.send(signal.SIGHUP)
    notify.wait_field("RELOADING", 5, after=sent)
    notify.wait_field("READY", 5, after=sent)
    notify.wait_field("STATUS", 5, lambda v: v.startswith("standby; "), after=sent)
    daemon.wait_line("schedule.mode: 'active' -> 'standby'", 5, after=sent)

    config.write_text(
        config.read_text().replace('mode = "standby"', 'mode = "standby"\nenabled = false')
    )
    sent = time.monotonic()
    daemon.send(signal.SIGHUP)
    notify.wait_field("STATUS", 5, lambda v: "disabled (enabled = false)" in v, after=sent)

    sent = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert daemon.wait(10) == 0
    notify.wait_field("STOPPING", 2, after=sent)
    assert not any("Traceback" in line for line in daemon.lines())


def test_bad_config_at_start_exits_78(
    tmp_path: Path, small_fleet: Path, notify: NotifySocket
) -> None:
    """A bad config refuses to start: exit 78, the file and key named, no READY."""
    config = write_config(tmp_path, roots=[small_fleet], schedule='timezone = "Mars/Olympus"')
    daemon = DaemonProcess(config, notify=notify)
    try:
        assert daemon.wait(20) == 78
        wait_for(daemon.lines, 5, "the error line")
        [line] = daemon.lines()
        assert str(config) in line and "schedule.timezone" in line
        assert not notify.fields("READY")
    finally:
        daemon.close()


def test_killed_fire_is_recorded_at_next_start(
    tmp_path: Path, small_fleet: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """A fire killed mid-sweep (kill -9) becomes an interrupted error run at the next start."""
    hanging = HangingRemote()  # an "API" that takes the POST and never answers
    try:
        config = write_config(
            tmp_path,
            roots=[small_fleet],
            schedule=f'{NEVER_SOON}\nmode = "active"\ntrigger_via = "http"\n'
            f'api_url = "http://127.0.0.1:{hanging.port}"',
        )
        database = load_settings(config).database_path
        firing = start_statehub("schedule", "run-now", config=config)

        def markers() -> dict[str, str]:
            if not database.exists():
                return {}
            with Store.open(database) as store:
                return store.state_items(MARKER_PREFIX)

        try:
            wait_for(markers, 30, "the marker of the fire in progress")
        finally:
            firing.kill()
            firing.wait(10)
        assert markers() and not runs(database)  # nobody recorded the killed fire

        daemon = DaemonProcess(config, notify=notify)
        daemons.append(daemon)
        notify.wait_field("READY", 10)
        [run] = runs(database)
        assert run["outcome"] == "error"
        assert run["context"]["interrupted"] is True
        assert run["context"]["pid"] == firing.pid
        assert run["context"]["origin"] == "run-now"
        assert markers() == {}
        _, line = daemon.wait_line("was interrupted", 5)
        assert run["run_id"] in line
        daemon.send(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        hanging.close()


# -- run-now --------------------------------------------------------------------------


def run_now(config: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = statehub("schedule", "run-now", "--json", "--config", str(config), *extra)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_run_now_sweeps_without_a_daemon(tmp_path: Path, small_fleet: Path) -> None:
    """run-now with no daemon running sweeps once and records fired_at = scheduled_for."""
    config = write_config(tmp_path, roots=[small_fleet], schedule='mode = "active"')
    status, run = run_now(config)
    assert status == 0
    assert run["outcome"] == "swept"
    assert run["fired_at"] == run["scheduled_for"]
    context = run["context_snapshot"]
    assert isinstance(context, dict)
    assert context["origin"] == "run-now"
    assert context["consistency_sweep_remote_all"]["source"] == "local-daemon"
    [(run_id, _, _, sweep_result)] = contract_runs(load_settings(config).database_path)
    assert run_id == run["run_id"] and json.loads(sweep_result)["repos_total"] == 2

    human = statehub("schedule", "run-now", config=config)
    assert human.returncode == 0
    assert re.search(r"^run [0-9a-f-]{36}: swept$", human.stdout, re.MULTILINE)
    # The second sweep re-read nothing: its words say so (not "2 assessed, 0 unchanged").
    assert re.search(
        r"^  sweep          0 re-read, 2 reused, 0 missing, 0 over budget in [\d.]+ s; ",
        human.stdout,
        re.MULTILINE,
    )
    assert "{" not in human.stdout  # the summary a person wants, not the raw JSON (issue 15)


def test_run_now_while_a_sweep_holds_the_lock(tmp_path: Path, small_fleet: Path) -> None:
    """run-now while another sweep runs records lock_skipped at once."""
    config = write_config(tmp_path, roots=[small_fleet], schedule='mode = "active"')
    lock = SweepLock(load_settings(config).database_path)
    assert lock.acquire()
    try:
        started = time.monotonic()
        status, run = run_now(config)
        assert time.monotonic() - started < 20  # interpreter start included; no waiting
    finally:
        lock.release()
    assert status == 0
    assert run["outcome"] == "lock_skipped"
    context = run["context_snapshot"]
    assert isinstance(context, dict)
    assert context["consistency_sweep_remote_all"]["lock_skipped"] is True


def test_run_now_standby_with_a_fresh_primary(tmp_path: Path, small_fleet: Path) -> None:
    """In standby a fresh primary means primary_healthy; --force is the canary, not a
    fallback sweep (issue 20)."""
    config = write_config(tmp_path, roots=[small_fleet], schedule='mode = "standby"')
    append_primary_sweep(config, utc_now() - timedelta(minutes=5))
    status, run = run_now(config)
    assert (status, run["outcome"]) == (0, "primary_healthy")
    status, forced = run_now(config, "--force")
    assert (status, forced["outcome"]) == (0, "swept")
    context = forced["context_snapshot"]
    assert isinstance(context, dict)
    assert context["forced"] is True
    assert context["consistency_sweep_remote_all"]["source"] == "canary"
    database = load_settings(config).database_path
    assert [run["outcome"] for run in runs(database)] == ["swept"]
    assert [decision["outcome"] for decision in decisions(database)] == ["primary_healthy"]


def test_run_now_disabled_schedule(tmp_path: Path, small_fleet: Path) -> None:
    """With enabled = false run-now records disabled; --force sweeps all the same."""
    config = write_config(
        tmp_path, roots=[small_fleet], schedule='mode = "active"\nenabled = false'
    )
    status, run = run_now(config)
    assert (status, run["outcome"]) == (0, "disabled")
    status, run = run_now(config, "--force")
    assert (status, run["outcome"]) == (0, "swept")


def test_run_now_exits_1_on_automation_errors(tmp_path: Path, small_fleet: Path) -> None:
    """A sweep with a C-00 (a .git pointing nowhere): run-now exits 1, the run is failed."""
    write(small_fleet, {"broken/.git": "gitdir: /nowhere/at/all\n"})
    config = write_config(tmp_path, roots=[small_fleet], schedule='mode = "active"')
    status, run = run_now(config)
    assert status == 1
    assert run["outcome"] == "failed"
    context = run["context_snapshot"]
    assert isinstance(context, dict)
    assert context["consistency_sweep_remote_all"]["exit_code"] == 1


# -- schedule show --------------------------------------------------------------------


def expected_weekday_times(zone: ZoneInfo, hour: int, minute: int, count: int) -> list[datetime]:
    """The next ``count`` Monday..Friday ``hour:minute`` in ``zone``, computed by hand."""
    now = datetime.now(zone)
    found: list[datetime] = []
    day = now.date()
    while len(found) < count:
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if moment.weekday() < 5 and moment > now:
            found.append(moment)
        day += timedelta(days=1)
    return found


def test_schedule_show_json_in_a_non_utc_zone(tmp_path: Path, small_fleet: Path) -> None:
    """schedule show --json gives the definition and the next five fires (cron weekdays)."""
    config = write_config(
        tmp_path,
        roots=[small_fleet],
        schedule='trigger = "30 9 * * 1-5"\ntimezone = "Europe/Berlin"',
    )
    done = statehub("schedule", "show", "--json", config=config)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["definition"]["timezone"] == "Europe/Berlin"
    assert document["definition"]["trigger"] == "30 9 * * 1-5"
    assert document["definition"]["effective_misfire_grace_seconds"] == 30
    expected = expected_weekday_times(ZoneInfo("Europe/Berlin"), 9, 30, 5)
    assert document["next_fire_times"] == [iso(moment.astimezone(UTC)) for moment in expected]
    assert document["next_fire_times_local"] == [moment.isoformat() for moment in expected]

    text = statehub("schedule", "show", config=config)
    assert text.returncode == 0
    assert "Europe/Berlin" in text.stdout
    first_utc = expected[0].astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"
    assert first_utc in text.stdout


# -- through the real API (trigger_via = "http") --------------------------------------


@pytest.fixture
def api_config(tmp_path: Path, small_fleet: Path) -> Iterator[Callable[[str], Path]]:
    """A running `statehub serve` with a token; returns a writer of configs that use it."""
    token = tmp_path / "api-token"
    token.write_text("a-long-enough-test-token-0123456789abcdefghijklmnop\n", encoding="utf-8")

    def configure(schedule: str, port: int) -> Path:
        return write_config(
            tmp_path,
            roots=[small_fleet],
            api=f'port = {port}\ntoken_file = "{token}"',
            schedule=f'trigger_via = "http"\napi_url = "http://127.0.0.1:{port}"\n{schedule}',
        )

    # The server picks its port (0); the configs of the commands then name the one it bound.
    with ApiServer(configure('mode = "active"', 0)) as server:
        yield lambda schedule: configure(schedule, server.port)


def test_run_now_through_the_api(api_config: Callable[[str], Path]) -> None:
    """With trigger_via = http run-now sweeps through the API, the bearer token sent."""
    config = api_config('mode = "active"')
    status, run = run_now(config)
    assert (status, run["outcome"]) == (0, "swept"), run
    context = run["context_snapshot"]
    assert isinstance(context, dict)
    assert context["trigger_via"] == "http"
    database = load_settings(config).database_path
    with Store.open(database) as store:
        [event] = store.events(event_type=EVENT_ALL)
    assert context["progress_event_id"] == event.id
    assert event.detail["source"] == "local-daemon"


def test_run_now_standby_reads_the_primary_through_the_api(
    api_config: Callable[[str], Path],
) -> None:
    """In standby over HTTP a fresh primary (seen via /progress/) keeps it idle."""
    config = api_config('mode = "standby"')
    append_primary_sweep(config, utc_now() - timedelta(minutes=1))
    status, run = run_now(config)
    assert (status, run["outcome"]) == (0, "primary_healthy"), run
    status, forced = run_now(config, "--force")
    assert (status, forced["outcome"]) == (0, "swept"), forced
    context = forced["context_snapshot"]
    assert isinstance(context, dict)
    assert context["consistency_sweep_remote_all"]["source"] == "canary"


def test_run_now_with_a_wrong_token_is_an_error(
    tmp_path: Path, api_config: Callable[[str], Path]
) -> None:
    """An API that refuses the token gives outcome error and exit status 1, no sweep."""
    config = api_config('mode = "active"')
    (tmp_path / "api-token").write_text(
        "not-the-token-the-server-read-0123456789abcdefghijklmnop\n", encoding="utf-8"
    )
    status, run = run_now(config)
    assert (status, run["outcome"]) == (1, "error")
    context = run["context_snapshot"]
    assert isinstance(context, dict)
    assert "HTTP 401" in context["error"]
    with Store.open(load_settings(config).database_path) as store:
        assert store.events(event_type=EVENT_ALL) == []
