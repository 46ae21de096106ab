"""The daemon's heartbeat in hub_state, which the status page shows (alive or silent)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger

from gitfleet import fleet_settings
from statehub.scheduler import HEARTBEAT_KEY, Daemon
from statehub.store import Store
from statehub.systemd_notify import Notifier
from statehub.timefmt import iso

MOMENT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def test_daemon_records_a_heartbeat_when_it_starts(tmp_path: Path, fleet: Path) -> None:
    """Starting the daemon writes heartbeat:daemon: the time of its clock, alive, its pid."""
    settings = fleet_settings(tmp_path, roots=[fleet])
    daemon = Daemon(
        settings,
        notifier=Notifier(None),
        trigger=IntervalTrigger(hours=1, timezone=UTC),
        clock=lambda: MOMENT,
    )
    daemon.start()
    try:
        with Store.open(settings.database_path) as store:
            record = json.loads(store.get_state(HEARTBEAT_KEY) or "{}")
        assert (record["at"], record["state"], record["pid"]) == (iso(MOMENT), "alive", os.getpid())
    finally:
        daemon.stop("test over")
    with Store.open(settings.database_path) as store:
        assert json.loads(store.get_state(HEARTBEAT_KEY) or "{}")["state"] == "stopped"
