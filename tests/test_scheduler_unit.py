"""The scheduler in process: cron meaning, modes with a controlled clock, overlap, timeouts,
missed fires, interrupted markers, the HTTP trigger, notify and log formats. Real SQLite,
real git repos, real sockets on loopback."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from daemon_support import NotifySocket
from gitfleet import fleet_settings, make_repo
from statehub import scheduler
from statehub.cancel import Cancel
from statehub.cron import cron_trigger, next_fire_times
from statehub.errors import ConfigError
from statehub.fire import Backend, InProcessBackend, Runner
from statehub.lock import SweepLock
from statehub.logs import OneLineFormatter, setup_logging
from statehub.runs import MARKER_PREFIX
from statehub.runs import record_interrupted as record_interrupted_fires
from statehub.scheduler import Daemon, misfire_grace, validate_for_daemon
from statehub.settings import Settings
from statehub.store import ActivityRun, Store
from statehub.sweep import EVENT_ALL, EVENT_CHOSEN
from statehub.systemd_notify import Notifier, ascii_status, watchdog_interval
from statehub.timefmt import iso, utc_now
from waiting import wait_for

T0 = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)


@pytest.fixture
def make_settings(tmp_path: Path, fleet: Path) -> Callable[..., Settings]:
    """Settings for a fleet of two good repos; keyword arguments add config lines."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")

    def build(**sections: str) -> Settings:
        return fleet_settings(tmp_path, roots=[fleet], **sections)

    return build


class Recorder:
    """A notify socket stand-in that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


def stored_runs(settings: Settings) -> list[ActivityRun]:
    with Store.open(settings.database_path) as store:
        return list(reversed(store.runs(limit=100)))


def stored_decisions(settings: Settings) -> list[ActivityRun]:
    """The decisions not to sweep (schedule_decisions), oldest first."""
    with Store.open(settings.database_path) as store:
        return list(reversed(store.decisions(limit=100)))


def add_event(settings: Settings, created_at: datetime, **detail: Any) -> None:
    with Store.open(settings.database_path) as store:
        store.append_event(
            EVENT_ALL, {"lock_skipped": False, "exit_code": 0, **detail}, created_at=created_at
        )


class SlowBackend(InProcessBackend):
    """Sleeps before a real sweep."""

    delay = 2.2

    def sweep(self, *, source: str, cancel: Cancel) -> dict[str, Any]:
        time.sleep(self.delay)
        return super().sweep(source=source, cancel=cancel)


class HungBackend(InProcessBackend):
    """Holds the real sweep lock until ``release`` is set, like a sweep stuck on a repo."""

    release = threading.Event()
    entered = threading.Event()

    def sweep(self, *, source: str, cancel: Cancel) -> dict[str, Any]:
        with SweepLock(self.settings.database_path) as lock:
            assert lock.acquire()
            self.entered.set()
            self.release.wait(30)
        return {"id": 0, "created_at": iso(utc_now()), "detail": {"lock_skipped": False}}


@pytest.fixture
def hung() -> Iterator[type[HungBackend]]:
    """The hung backend, released at the end of the test."""
    HungBackend.release = threading.Event()
    HungBackend.entered = threading.Event()
    yield HungBackend
    HungBackend.release.set()


# -- cron meaning ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "weekdays"),
    [
        ("0 12 * * 0", {"Sun"}),
        ("0 12 * * 7", {"Sun"}),
        ("0 12 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 12 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 12 * * sat,SUN", {"Sat", "Sun"}),
        ("0 12 * * 5-7", {"Fri", "Sat", "Sun"}),
        ("0 12 * * fri-sun", {"Fri", "Sat", "Sun"}),
    ],
)
def test_cron_day_of_week_has_cron_meaning(expression: str, weekdays: set[str]) -> None:
    """Day-of-week numbers mean what they mean in crontab(5): 0 and 7 are Sunday."""
    trigger = cron_trigger(expression, ZoneInfo("UTC"))
    times = next_fire_times(trigger, 21, now=T0)
    assert {moment.strftime("%a") for moment in times} == weekdays
    assert all(moment.hour == 12 and moment.minute == 0 for moment in times)


def test_cron_with_both_day_fields_runs_on_either() -> None:
    """'0 0 13 * 5' runs on every 13th and on every Friday, as cron does."""
    times = next_fire_times(cron_trigger("0 0 13 * 5", ZoneInfo("UTC")), 12, now=T0)
    assert all(moment.day == 13 or moment.strftime("%a") == "Fri" for moment in times)
    assert any(moment.day == 13 and moment.strftime("%a") != "Fri" for moment in times)
    assert any(moment.day != 13 for moment in times)
    assert times == sorted(set(times))


def test_cron_trigger_keeps_its_zone_across_dst() -> None:
    """09:30 Europe/Berlin stays 09:30 local across the end of summer time."""
    zone = ZoneInfo("Europe/Berlin")
    times = next_fire_times(
        cron_trigger("30 9 * * *", zone), 3, now=datetime(2026, 10, 23, 12, tzinfo=UTC)
    )
    assert [moment.astimezone(zone).strftime("%H:%M") for moment in times] == ["09:30"] * 3
    assert [moment.astimezone(UTC).hour for moment in times] == [7, 8, 8]


def test_cron_backwards_weekday_range_is_a_config_error(
    make_settings: Callable[..., Settings],
) -> None:
    """A day range that runs backwards is refused naming the file and schedule.trigger."""
    with pytest.raises(ValueError, match="runs backwards"):
        cron_trigger("0 0 * * fri-mon", ZoneInfo("UTC"))
    valid = make_settings()
    schedule = valid.schedule.model_copy(update={"trigger": "0 0 * * fri-mon"})
    settings = valid.model_copy(update={"schedule": schedule})  # past the model's check
    with pytest.raises(ConfigError) as caught:
        validate_for_daemon(settings)
    assert caught.value.key == "schedule.trigger"
    assert caught.value.file == str(settings.config_file)


def test_misfire_grace_per_policy(make_settings: Callable[..., Settings]) -> None:
    """skip keeps the configured grace; run_once runs once however late (no grace)."""
    assert misfire_grace(make_settings(schedule="misfire_grace_seconds = 45")) == 45
    assert misfire_grace(make_settings(schedule='misfire_policy = "run_once"')) is None


# -- one fire, with a controlled clock ------------------------------------------------


def test_standby_idles_while_the_primary_is_fresh_then_takes_over(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Standby records primary_healthy within the grace and sweeps as local-fallback after."""
    settings = make_settings(schedule='mode = "standby"\nprimary_grace_minutes = 35')
    add_event(settings, T0, source="activity-core")
    add_event(settings, T0 + timedelta(minutes=20), source="manual")  # not a primary
    add_event(settings, T0 + timedelta(minutes=25), source="activity-core", lock_skipped=True)

    now = [T0 + timedelta(minutes=30)]
    runner = Runner(settings, clock=lambda: now[0])
    idle = runner.fire(scheduled_for=now[0])
    assert idle.outcome == "primary_healthy"
    assert idle.context_snapshot["primary_last_sweep_at"] == iso(T0)
    assert "consistency_sweep_remote_all" not in idle.context_snapshot

    now[0] = T0 + timedelta(minutes=36)
    with caplog.at_level(logging.WARNING, logger="statehub.fire"):
        took_over = runner.fire(scheduled_for=now[0])
    assert took_over.outcome == "swept"
    assert took_over.context_snapshot["source"] == "local-fallback"
    assert took_over.context_snapshot["consistency_sweep_remote_all"]["source"] == "local-fallback"
    assert took_over.fired_at == iso(now[0])
    assert any("sweeping as local-fallback" in r.getMessage() for r in caplog.records)
    assert [run.outcome for run in stored_runs(settings)] == ["swept"]
    with Store.open(settings.database_path) as store:
        assert store.state_items(MARKER_PREFIX) == {}
        # The decision not to sweep is kept, but not as a run (issue 20).
        assert [d.outcome for d in store.decisions()] == ["primary_healthy"]


def test_standby_counts_only_whole_fleet_sweeps_that_ran_to_their_end(
    make_settings: Callable[..., Settings],
) -> None:
    """A primary's one-repo sweep or interrupted sweep does not keep the standby idle."""
    settings = make_settings(schedule='mode = "standby"\nprimary_grace_minutes = 35')
    add_event(settings, T0, source="activity-core")
    with Store.open(settings.database_path) as store:
        store.append_event(
            EVENT_CHOSEN,
            {"source": "activity-core", "lock_skipped": False, "exit_code": 0},
            created_at=T0 + timedelta(minutes=30),
        )
    add_event(settings, T0 + timedelta(minutes=31), source="activity-core", interrupted=True)

    now = T0 + timedelta(minutes=40)
    run = Runner(settings, clock=lambda: now).fire(scheduled_for=now)
    assert run.outcome == "swept"
    assert run.context_snapshot["primary_last_sweep_at"] == iso(T0)
    assert run.context_snapshot["source"] == "local-fallback"


def test_disabled_schedule_records_disabled(make_settings: Callable[..., Settings]) -> None:
    """enabled = false: a fire sweeps nothing and records disabled."""
    settings = make_settings(schedule='mode = "active"\nenabled = false')
    run = Runner(settings).fire(scheduled_for=T0)
    assert run.outcome == "disabled"
    with Store.open(settings.database_path) as store:
        assert store.events() == []


def test_hung_sweep_times_out_then_fires_are_lock_skipped(
    make_settings: Callable[..., Settings], hung: type[HungBackend]
) -> None:
    """A sweep past its hard timeout is recorded as error; the next fire sees the lock."""
    settings = make_settings(schedule='mode = "active"')
    started = time.monotonic()
    stuck = Runner(settings, backend=hung(settings), hard_timeout=0.5).fire(scheduled_for=T0)
    assert time.monotonic() - started < 5
    assert stuck.outcome == "error"
    assert stuck.context_snapshot["timed_out"] is True
    assert "did not finish within" in stuck.context_snapshot["error"]

    next_fire = Runner(settings).fire(scheduled_for=T0 + timedelta(minutes=15))
    assert next_fire.outcome == "lock_skipped"
    assert next_fire.context_snapshot["consistency_sweep_remote_all"]["lock_skipped"] is True


# -- the daemon in process ------------------------------------------------------------


def every_second(
    settings: Settings, backend: Callable[[Settings], Backend]
) -> tuple[Daemon, Recorder]:
    """A daemon that fires every second through ``backend``; what it notifies is recorded."""
    recorder = Recorder()
    daemon = Daemon(
        settings,
        notifier=Notifier(recorder),
        trigger=IntervalTrigger(seconds=1, timezone=UTC),
        backend=backend,
    )
    return daemon, recorder


def run_daemon_briefly(daemon: Daemon, until: Callable[[], bool], timeout: float) -> None:
    daemon.start()
    try:
        wait_for(until, timeout, "the runs the test waits for")
    finally:
        daemon.stop("test")


def test_overlapping_fire_is_skipped_and_recorded(make_settings: Callable[..., Settings]) -> None:
    """A fire while the last one still sweeps is recorded as overlap_skipped, not queued."""
    settings = make_settings(schedule='mode = "active"')
    daemon, recorder = every_second(settings, SlowBackend)

    def both_seen() -> bool:
        outcomes = [run.outcome for run in stored_runs(settings)]
        return "swept" in outcomes and bool(stored_decisions(settings))

    run_daemon_briefly(daemon, both_seen, 15)
    recorded = stored_runs(settings)
    [swept] = [run for run in recorded if run.outcome == "swept"][:1]
    overlaps = [run for run in stored_decisions(settings) if run.outcome == "overlap_skipped"]
    assert overlaps[0].context_snapshot["running_run_id"] == swept.run_id
    assert swept.scheduled_for < overlaps[0].scheduled_for
    with Store.open(settings.database_path) as store:
        sweeps = store.events(event_type=EVENT_ALL)
    assert not any(event.detail["lock_skipped"] for event in sweeps)  # never two at once
    assert recorder.sent[0].startswith("READY=1\nSTATUS=active; last: none; next: ")
    assert any(sent.startswith("STATUS=active; running since ") for sent in recorder.sent)


def test_start_line_names_the_last_recorded_run(make_settings: Callable[..., Settings]) -> None:
    """A daemon started over its runs says "last: <outcome>" (its own, not the cluster's)."""
    settings = make_settings(schedule='mode = "active"\nenabled = false')
    Runner(settings).fire(scheduled_for=T0)  # a run of an earlier daemon
    with Store.open(settings.database_path) as store:  # a newer one, of the cluster's CronJob
        store.record_run(
            ActivityRun(
                run_id="cronjob-run",
                definition_id=settings.schedule.id,
                fired_at=iso(T0 + timedelta(minutes=15)),
                scheduled_for=iso(T0 + timedelta(minutes=15)),
                outcome="swept",
                context_snapshot={"origin": "http", "source": "activity-core"},
            )
        )
    recorder = Recorder()
    daemon = Daemon(
        settings,
        notifier=Notifier(recorder),
        trigger=IntervalTrigger(hours=1, timezone=UTC),
    )
    daemon.start()
    daemon.stop("test")
    assert recorder.sent[0].startswith(
        "READY=1\nSTATUS=active, disabled (enabled = false); last: disabled at "
    )


def test_stop_abandons_a_hung_sweep_quickly(
    make_settings: Callable[..., Settings],
    hung: type[HungBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping during a sweep that ignores the cancel records it cancelled by the signal."""
    monkeypatch.setattr(scheduler, "STOP_GRACE_SECONDS", 0.5)
    settings = make_settings(schedule='mode = "active"')
    daemon, recorder = every_second(settings, hung)
    daemon.start()
    try:
        assert hung.entered.wait(10)
    finally:
        started = time.monotonic()
        daemon.stop("SIGTERM")
    assert time.monotonic() - started < 4
    [run] = wait_for(lambda: stored_runs(settings), 10, "the cancelled run")
    assert run.outcome == "cancelled"
    assert run.context_snapshot["cancelled_by"] == "SIGTERM"
    assert "abandoned" in run.context_snapshot["error"]
    assert any(sent.startswith("STOPPING=1") for sent in recorder.sent)


class ListTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at the given moments, in order."""

    def __init__(self, moments: list[datetime]) -> None:
        self.moments = moments

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime | None:
        return next((m for m in self.moments if previous is None or m > previous), None)


def test_missed_fire_is_logged_and_listed_in_the_next_run(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """A fire later than the misfire grace is skipped with a warning, and listed next time."""
    settings = make_settings(schedule='mode = "active"\nmisfire_grace_seconds = 1')
    now = utc_now()
    late, on_time = now - timedelta(seconds=5), now + timedelta(seconds=1.5)
    daemon = Daemon(settings, notifier=Notifier(Recorder()), trigger=ListTrigger([late, on_time]))
    with caplog.at_level(logging.WARNING, logger="statehub.scheduler"):
        run_daemon_briefly(daemon, lambda: stored_runs(settings), 10)
    [run] = stored_runs(settings)
    assert run.outcome == "swept"
    assert run.scheduled_for == iso(on_time)
    assert run.context_snapshot["missed_slots"] == [iso(late)]
    assert any("was missed" in record.getMessage() for record in caplog.records)


# -- interrupted fires ----------------------------------------------------------------


def plant_marker(store: Store, run_id: str, pid: int) -> None:
    marker = {
        "run_id": run_id,
        "definition_id": "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b",
        "fired_at": iso(T0),
        "scheduled_for": iso(T0),
        "pid": pid,
        "origin": "schedule",
        "mode": "active",
    }
    store.set_state(MARKER_PREFIX + run_id, json.dumps(marker))


def test_markers_of_dead_processes_become_interrupted_runs(
    make_settings: Callable[..., Settings],
) -> None:
    """A dead process's marker is an error run; a live one's is left; a recorded run stays."""
    settings = make_settings()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        with Store.open(settings.database_path) as store:
            plant_marker(store, "dead-run", dead.pid)
            plant_marker(store, "live-run", alive.pid)
            plant_marker(store, "done-run", dead.pid)
            finished = ActivityRun(
                run_id="done-run",
                definition_id=settings.schedule.id,
                fired_at=iso(T0),
                scheduled_for=iso(T0),
                outcome="swept",
                context_snapshot={},
            )
            store.record_run(finished)
            recorded = record_interrupted_fires(store)
            assert [run.run_id for run in recorded] == ["dead-run"]
            assert recorded[0].context_snapshot["interrupted"] is True
            assert list(store.state_items(MARKER_PREFIX)) == [MARKER_PREFIX + "live-run"]
            by_id = {run.run_id: run.outcome for run in store.runs()}
            assert by_id == {"dead-run": "error", "done-run": "swept"}
    finally:
        alive.kill()
        alive.wait()


# -- the HTTP trigger -----------------------------------------------------------------


class OneShotServer:
    """A loopback TCP server that counts connections and answers each with ``reply``."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += connection.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                answer = self.reply(self.requests[-1])
                if answer is not None:
                    connection.sendall(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


def http_settings(make_settings: Callable[..., Settings], port: int, mode: str) -> Settings:
    return make_settings(
        schedule=f'mode = "{mode}"\ntrigger_via = "http"\napi_url = "http://127.0.0.1:{port}"'
    )


def fire_over_http(
    make_settings: Callable[..., Settings],
    mode: str,
    reply: Callable[[bytes], bytes | None],
    scheduled_for: datetime,
) -> tuple[ActivityRun, list[bytes]]:
    """One fire of a daemon in ``mode`` with trigger_via = http, against a server that
    answers with ``reply``: the run recorded and the requests the server read."""
    server = OneShotServer(reply)
    try:
        settings = http_settings(make_settings, server.port, mode)
        run = Runner(settings).fire(scheduled_for=scheduled_for)
    finally:
        server.close()
    return run, server.requests


def json_reply(document: Any) -> bytes:
    body = json.dumps(document).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_http_trigger_posts_once_and_records_the_answer(
    make_settings: Callable[..., Settings],
) -> None:
    """trigger_via = http POSTs the sweep and records the answered event."""
    event = {
        "id": 7,
        "event_type": EVENT_ALL,
        "created_at": iso(T0),
        "detail": {"source": "local-daemon", "lock_skipped": True, "exit_code": 0},
    }
    run, requests = fire_over_http(make_settings, "active", lambda _: json_reply(event), T0)
    assert run.outcome == "lock_skipped"
    assert run.context_snapshot["progress_event_id"] == 7
    [request] = requests
    assert request.startswith(b"POST /consistency/sweep/remote-all ")
    body = json.loads(request.partition(b"\r\n\r\n")[2])
    assert body == {"source": "local-daemon", "max_seconds": 300, "remote": False}


def test_http_trigger_never_resends_a_request_the_server_got(
    make_settings: Callable[..., Settings],
) -> None:
    """A connection dropped after the request was sent is an error, not a second POST."""
    # The server reads the request and closes the connection without an answer.
    run, requests = fire_over_http(make_settings, "active", lambda _: None, T0)
    assert run.outcome == "error"
    assert len(requests) == 1


def test_http_trigger_retries_only_when_nothing_was_sent(
    make_settings: Callable[..., Settings],
) -> None:
    """Connection refused is retried (nothing reached a server), then recorded as error."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()  # nothing listens here now
    settings = http_settings(make_settings, port, "active")
    run = Runner(settings).fire(scheduled_for=T0)
    assert run.outcome == "error"
    assert "after 3 attempts" in run.context_snapshot["error"]


def test_http_standby_reads_the_primary_from_progress(
    make_settings: Callable[..., Settings],
) -> None:
    """In standby over HTTP the health check is one filtered request; its answer decides."""
    now = utc_now()
    events = [
        {
            "id": 1,
            "event_type": EVENT_ALL,
            "created_at": iso(now - timedelta(minutes=5)),
            "detail": {"source": "activity-core", "lock_skipped": False},
        },
    ]
    run, requests = fire_over_http(make_settings, "standby", lambda _: json_reply(events), now)
    assert run.outcome == "primary_healthy"
    assert run.context_snapshot["primary_last_sweep_at"] == events[0]["created_at"]
    [request] = requests
    line = request.split(b" ")[1].decode()
    assert line.startswith(
        "/progress/?event_type=consistency_sweep_remote_all&completed=true&until="
    )
    assert line.endswith("&limit=1&source=activity-core")


# -- systemd notify and logs ----------------------------------------------------------


def test_notifier_sends_ascii_status_on_a_real_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS text is folded to ASCII (sdnotify would drop it) and kept on one line."""
    sock = NotifySocket()
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
        notifier = Notifier()
        notifier.status("Zürich ✓ ok\nnext")
        notifier.close()
        _, value = sock.wait_field("STATUS", 5)
    finally:
        sock.close()
    assert value == "Zurich ? ok next"
    assert ascii_status("naïve") == "naive"


def test_notifier_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NOTIFY_SOCKET every notification is dropped: a bound socket gets none of them."""
    notify = NotifySocket()
    try:
        outside = Notifier()  # NOTIFY_SOCKET is unset (the suite's autouse fixture)
        outside.ready("outside")
        outside.status("outside")
        outside.reloading()
        outside.watchdog()
        outside.stopping("outside")
        # The same socket does receive what a notifier under systemd sends, after those.
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        inside = Notifier()
        inside.stopping("inside")
        notify.wait_field("STATUS", 5, lambda value: value == "inside")
        inside.close()
        assert [data for _, data in notify.messages()] == [b"STOPPING=1\nSTATUS=inside"]
    finally:
        notify.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "SELF"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    """Half of WATCHDOG_USEC, only when WATCHDOG_PID is unset or this process."""
    resolved = {key: str(os.getpid()) if value == "SELF" else value for key, value in env.items()}
    assert watchdog_interval(resolved) == expected


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("statehub.scheduler", level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.ERROR, "<3>"),
        (logging.WARNING, "<4>"),
        (logging.INFO, "<6>"),
        (logging.DEBUG, "<7>"),
    ],
)
def test_journal_lines_carry_the_syslog_priority(level: int, prefix: str) -> None:
    """With JOURNAL_STREAM a line is '<p>logger: message', no timestamp, one line."""
    line = OneLineFormatter(journal=True).format(record(level, "first\nsecond"))
    assert line == f"{prefix}statehub.scheduler: first | second"


def test_plain_lines_carry_a_timestamp_and_level() -> None:
    """Without JOURNAL_STREAM a line starts with an ISO UTC timestamp and the level."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging(stream=io.StringIO())
    setup_logging(stream=stream)  # replaces its own handler, keeps pytest's
    try:
        assert all(handler in root.handlers for handler in saved[0])
        logging.getLogger("statehub.scheduler").warning("falling back")
        logging.getLogger("apscheduler.scheduler").info("Added job")  # chatter: silenced
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" WARNING statehub.scheduler: falling back")
    assert datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).tzinfo is not None


def test_an_exception_is_one_line_of_reason_and_its_traceback_only_at_debug() -> None:
    """A logged exception: its type and first line at INFO; the whole traceback at DEBUG."""
    try:
        raise ValueError("the reason\nmore detail")
    except ValueError:
        failure = logging.LogRecord(
            "statehub.temporal", logging.WARNING, __file__, 1, "run failed", None, sys.exc_info()
        )
    quiet = OneLineFormatter(journal=True).format(failure)
    loud = OneLineFormatter(journal=True, tracebacks=True).format(failure)
    assert quiet == "<4>statehub.temporal: run failed: ValueError: the reason"
    assert loud.startswith("<4>statehub.temporal: run failed | Traceback (most recent call last):")
