"""The daemon's record of itself in ``hub_state``: the schedule it really runs, and its life.

The daemon fires on the configuration it loaded, environment overrides included
(``STATEHUB_SCHEDULE__TRIGGER``...), which may not be the file's. So at start, at each reload
and each heartbeat it records itself under the key :data:`HEARTBEAT_KEY`
(``heartbeat:daemon``), as JSON: ``at`` (its last heartbeat), ``state``, ``pid``,
``trigger``, ``mode`` (the fields the status model reads, statehub.statusmodel), and its
whole *effective* schedule (time zone, enabled, sources...), host, config file and start;
at a clean stop it records ``state: "stopped"`` at once. ``schedule show`` and ``compare``
read it with :func:`daemon_schedule` and show the daemon's schedule while one is alive.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from statehub.contract import HEARTBEAT_PREFIX
from statehub.errors import StoreError
from statehub.lock import pid_alive
from statehub.settings import Settings
from statehub.store import Store
from statehub.timefmt import iso, parse_iso, utc_now

log = logging.getLogger("statehub.daemonstate")

HEARTBEAT_KEY = f"{HEARTBEAT_PREFIX}daemon"
HEARTBEAT_SECONDS = 60
GONE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS  # no heartbeat for this long: the daemon is gone

DaemonLife = Literal["alive", "stopped", "gone"]


@dataclass(frozen=True, kw_only=True)
class DaemonState:
    """What the daemon recorded of itself, and what that means now.

    ``state``: ``alive`` (its heartbeat is recent and, on this host, its pid lives),
    ``stopped`` (it said so at a clean stop), ``gone`` (it died without a word: no heartbeat
    for :data:`GONE_AFTER_SECONDS`, or its pid is dead on this host). ``schedule`` is the
    effective ``[schedule]`` it ran: ``trigger``, ``timezone``, ``mode``, ``enabled``,
    ``source``, ``fallback_source``, ``primary_sources``, ``primary_grace_minutes``,
    ``trigger_via``, ``id``, ``name``.
    """

    state: DaemonLife
    pid: int
    host: str
    started_at: str
    heartbeat_at: str
    stopped_at: str | None
    stopped_by: str | None
    config_file: str | None
    schedule: dict[str, Any]

    @property
    def alive(self) -> bool:
        return self.state == "alive"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "host": self.host,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "stopped_at": self.stopped_at,
            "stopped_by": self.stopped_by,
            "config_file": self.config_file,
            "schedule": self.schedule,
        }


def effective_schedule(settings: Settings) -> dict[str, Any]:
    """The ``[schedule]`` a process loaded (environment overrides included), as recorded."""
    schedule = settings.schedule
    return {
        "id": schedule.id,
        "name": schedule.name,
        "trigger": schedule.trigger,
        "timezone": schedule.timezone,
        "mode": schedule.mode,
        "enabled": schedule.enabled,
        "source": schedule.source,
        "fallback_source": schedule.fallback_source,
        "primary_sources": list(schedule.primary_sources),
        "primary_grace_minutes": schedule.primary_grace_minutes,
        "trigger_via": schedule.trigger_via,
    }


class DaemonRecord:
    """The daemon's writer of :data:`DAEMON_KEY`; no method raises (a failure is logged)."""

    def __init__(self, settings: Settings, *, started: datetime | None = None) -> None:
        self.settings = settings
        self.started_at = iso(started or utc_now())

    def _document(self, *, at: datetime, state: str, stopped_by: str | None) -> str:
        schedule = effective_schedule(self.settings)
        return json.dumps(
            {
                "at": iso(at),
                "state": state,
                "pid": os.getpid(),
                "trigger": schedule["trigger"],
                "mode": schedule["mode"],
                "host": socket.gethostname(),
                "started_at": self.started_at,
                "stopped_at": iso(at) if state == "stopped" else None,
                "stopped_by": stopped_by,
                "config_file": None
                if self.settings.config_file is None
                else str(self.settings.config_file),
                "schedule": schedule,
            }
        )

    def alive(self, settings: Settings | None = None, *, at: datetime | None = None) -> None:
        """Record the heartbeat, and the schedule of ``settings`` (after a reload)."""
        if settings is not None:
            self.settings = settings
        self._record(at=at, state="alive", stopped_by=None)

    def stopped(self, reason: str, *, at: datetime | None = None) -> None:
        """Record a clean stop at once (``reason``: the signal's name)."""
        self._record(at=at, state="stopped", stopped_by=reason)

    def _record(self, *, at: datetime | None, state: str, stopped_by: str | None) -> None:
        document = self._document(at=at or utc_now(), state=state, stopped_by=stopped_by)
        try:
            with Store.open(self.settings.database_path) as store:
                store.set_state(HEARTBEAT_KEY, document)
        except StoreError as exc:
            log.warning("cannot record the daemon's state (%s): %s", state, exc)


def read_daemon(store: Store, *, now: datetime | None = None) -> DaemonState | None:
    """The daemon's state as every surface shows it; None when no daemon ever recorded one.

    ``state`` is judged at ``now`` (default: the clock): see :class:`DaemonState`. Surfaces
    show ``schedule`` (the daemon's effective schedule) instead of the file's while
    ``state == "alive"``. Raises StoreError when the store cannot be read.
    """
    raw = store.get_state(HEARTBEAT_KEY)
    if raw is None or not raw.startswith("{"):  # none, or a bare time of an older daemon
        return None
    try:
        document = json.loads(raw)
        beat = parse_iso(str(document["at"]))
        pid = int(document["pid"])
    except (ValueError, KeyError, TypeError):
        return None
    moment = now or utc_now()
    state: DaemonLife
    if document.get("state") == "stopped":
        state = "stopped"
    elif (moment - beat).total_seconds() > GONE_AFTER_SECONDS or (
        document.get("host") == socket.gethostname() and not pid_alive(pid)
    ):
        state = "gone"
    else:
        state = "alive"
    return DaemonState(
        state=state,
        pid=pid,
        host=str(document.get("host") or ""),
        started_at=str(document.get("started_at") or ""),
        heartbeat_at=str(document["at"]),
        stopped_at=document.get("stopped_at"),
        stopped_by=document.get("stopped_by"),
        config_file=document.get("config_file"),
        schedule=dict(document.get("schedule") or {}),
    )


def daemon_schedule(settings: Settings) -> tuple[dict[str, Any], DaemonState | None]:
    """The schedule to show: the alive daemon's effective one, else the configuration's.

    Returns it with the daemon's state (None without a record or a database). Never
    creates the database; a store that cannot be read counts as no record.
    """
    state: DaemonState | None = None
    if settings.database_path.exists():
        try:
            with Store.open(settings.database_path, create=False) as store:
                state = read_daemon(store)
        except StoreError:
            state = None
    if state is not None and state.alive and state.schedule:
        return state.schedule, state
    return effective_schedule(settings), state
