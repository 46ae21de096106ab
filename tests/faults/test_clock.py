"""Clock trouble for the daemon: a jump forward fires at most once, a jump back never twice.

The system clock cannot be moved here (and time-machine is not a dependency), so the
daemon runs in process, exactly as ``statehub daemon`` builds it (its cron trigger
``* * * * *``, its executor, its misfire policy), with one change: the wall clock that
APScheduler reads (``datetime.now`` in its scheduler and executor modules) and the clock
the daemon stamps runs with is a test clock. It advances with real time and can be set.
A real clock jump does not wake a sleeping scheduler; it notices at its next wake-up,
which the test brings forward with ``wakeup()``. Sweeps are real, on real repos.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest
from faultkit import activity_runs

from gitfleet import fleet_settings, make_repo
from statehub.scheduler import Daemon
from statehub.settings import Settings
from statehub.systemd_notify import Notifier
from statehub.timefmt import iso
from waiting import wait_for

START = datetime(2026, 11, 27, 10, 0, 58, tzinfo=UTC)  # 2 s before the 10:01 slot
SETTLE = 0.5  # seconds given to a wake-up that must fire nothing, before looking


class ManualClock:
    """Wall time that runs at the real pace from a start moment, and can be set."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._base = start
        self._since = time.monotonic()

    def utc(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._since)

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._base, self._since = moment, time.monotonic()

    def datetime_class(self) -> type[datetime]:
        clock = self

        class Now(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                moment = clock.utc()
                return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)

        return Now


class _Silent:
    def notify(self, state: str) -> None:
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The test clock, read by APScheduler's scheduler and executor."""
    test_clock = ManualClock(START)
    fake = test_clock.datetime_class()
    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", fake)
    monkeypatch.setattr(apscheduler.executors.base, "datetime", fake)
    return test_clock


def settings_for(tmp_path: Path, fleet: Path, policy: str) -> Settings:
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    schedule = f'mode = "active"\ntrigger = "* * * * *"\nmisfire_policy = "{policy}"'
    return fleet_settings(tmp_path, roots=[fleet], schedule=schedule)


@pytest.fixture
def daemon_factory(clock: ManualClock) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop("test")


def start_daemon(settings: Settings, clock: ManualClock, started: list[Daemon]) -> Daemon:
    daemon = Daemon(settings, notifier=Notifier(_Silent()), clock=clock.utc)
    daemon.start()
    started.append(daemon)
    return daemon


def slots(settings: Settings) -> list[tuple[str, str]]:
    return [(run["scheduled_for"], run["outcome"]) for run in activity_runs(settings.database_path)]


def at(hour: int, minute: int, second: float = 0.0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def wake_at(daemon: Daemon, clock: ManualClock, moment: datetime) -> None:
    """Set the clock, then let the scheduler look at it now (as its timer would later)."""
    clock.set(moment)
    daemon._scheduler.wakeup()


def wait_runs(settings: Settings, count: int) -> list[tuple[str, str]]:
    wait_for(lambda: len(slots(settings)) >= count, 60, f"{count} recorded run(s)")
    time.sleep(SETTLE)  # a burst would show up now
    return slots(settings)


def settled(daemon: Daemon) -> None:
    time.sleep(SETTLE)
    assert daemon._idle.wait(15)


@pytest.mark.parametrize(
    ("policy", "lands", "expected"),
    [
        ("skip", 5.0, [(at(10, 1), "swept"), (at(12, 1), "swept")]),
        ("run_once", 45.0, [(at(10, 1), "swept"), (at(12, 1), "swept")]),
        ("skip", 45.0, [(at(10, 1), "swept")]),
    ],
    ids=["skip-5s-late", "run_once-45s-late", "skip-45s-late"],
)
def test_jump_forward_two_hours_fires_at_most_once(
    tmp_path: Path,
    fleet: Path,
    clock: ManualClock,
    daemon_factory: list[Daemon],
    caplog: pytest.LogCaptureFixture,
    policy: str,
    lands: float,
    expected: list[tuple[datetime, str]],
) -> None:
    """+2 h: the 120 slots skipped collapse into one fire, or none past the 30 s grace."""
    settings = settings_for(tmp_path, fleet, policy)
    daemon = start_daemon(settings, clock, daemon_factory)
    assert wait_runs(settings, 1) == [(iso(at(10, 1)), "swept")]

    with caplog.at_level(logging.WARNING, logger="statehub.scheduler"):
        wake_at(daemon, clock, at(12, 1, lands))
        if len(expected) > 1:
            wait_runs(settings, len(expected))
        settled(daemon)
    assert slots(settings) == [(iso(slot), outcome) for slot, outcome in expected]
    missed = [r.getMessage() for r in caplog.records if "was missed" in r.getMessage()]
    assert len(missed) == (1 if len(expected) == 1 else 0)

    # The next slot fires normally, once; a missed one is listed in its context.
    wake_at(daemon, clock, at(12, 2, 0.2))
    runs = wait_runs(settings, len(expected) + 1)
    assert runs == [(iso(slot), outcome) for slot, outcome in expected] + [
        (iso(at(12, 2)), "swept")
    ]
    last = activity_runs(settings.database_path)[-1]
    assert last["context"].get("missed_slots") == ([iso(at(12, 1))] if len(expected) == 1 else None)


def test_jump_back_never_fires_a_slot_twice(
    tmp_path: Path, fleet: Path, clock: ManualClock, daemon_factory: list[Daemon]
) -> None:
    """-1 h and -30 s after a fire: the passed slots come round again but are not re-fired."""
    settings = settings_for(tmp_path, fleet, "skip")
    daemon = start_daemon(settings, clock, daemon_factory)
    assert wait_runs(settings, 1) == [(iso(at(10, 1)), "swept")]

    for moment in (at(9, 1, 10), at(10, 0, 59.5), at(10, 1, 0.3), at(10, 1, 30)):
        wake_at(daemon, clock, moment)  # back an hour, then the 10:01 slot passes again
        settled(daemon)
    assert slots(settings) == [(iso(at(10, 1)), "swept")]

    wake_at(daemon, clock, at(10, 2, 0.2))
    assert wait_runs(settings, 2) == [(iso(at(10, 1)), "swept"), (iso(at(10, 2)), "swept")]

    for moment in (at(10, 1, 35), at(10, 2, 0.5), at(10, 2, 20)):  # an NTP step back, 30 s
        wake_at(daemon, clock, moment)
        settled(daemon)
    wake_at(daemon, clock, at(10, 3, 0.2))
    assert wait_runs(settings, 3) == [
        (iso(at(10, 1)), "swept"),
        (iso(at(10, 2)), "swept"),
        (iso(at(10, 3)), "swept"),
    ]
    fired = [run["fired_at"] for run in activity_runs(settings.database_path)]
    assert fired == sorted(fired)  # stamped with the daemon's clock, after each jump
