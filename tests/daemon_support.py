"""Helpers for the daemon tests: a NOTIFY_SOCKET the test binds, the daemon as a subprocess.

Every wait here is bounded; a helper that times out raises AssertionError with what it saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from statehub.scheduler import TEST_TRIGGER_SECONDS_ENV
from waiting import wait_for

# Contract section 8, verbatim (every test config keeps the default definition id).
CONTRACT_QUERY = """select run_id, fired_at, scheduled_for,
       context_snapshot->'consistency_sweep_remote_all' as sweep_result
from activity_runs where definition_id = '7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b'
order by fired_at desc limit 5;"""


def contract_runs(database: Path) -> list[tuple[Any, ...]]:
    """The rows of the contract's query, run with plain sqlite3."""
    with sqlite3.connect(database) as connection:
        return connection.execute(CONTRACT_QUERY).fetchall()


def store_rows(database: Path, table: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, which reads ``table`` (a table or a view), with plain sqlite3;
    none while the store or that table does not exist yet (the file appears before its
    schema is committed)."""
    if not database.exists():  # sqlite3.connect would create it
        return []
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ).fetchone()
        return connection.execute(sql).fetchall() if exists else []


def runs(database: Path, *, order: str = "fired_at") -> list[dict[str, Any]]:
    """Every activity run, context parsed, ordered by the column ``order``: ``fired_at``
    (oldest fire first) or ``rowid`` (as recorded). None before the store has the table."""
    rows = store_rows(
        database,
        "activity_runs",
        "SELECT run_id, fired_at, scheduled_for, outcome, context_snapshot"
        f" FROM activity_runs ORDER BY {order}",
    )
    return [
        {
            "run_id": row[0],
            "fired_at": row[1],
            "scheduled_for": row[2],
            "outcome": row[3],
            "context": json.loads(row[4]),
        }
        for row in rows
    ]


def decisions(database: Path) -> list[dict[str, Any]]:
    """Every scheduler decision not to sweep (``schedule_decisions``), oldest first; none
    before the store has the table."""
    rows = store_rows(
        database,
        "schedule_decisions",
        "SELECT decided_at, scheduled_for, decision, context FROM schedule_decisions"
        " ORDER BY decided_at, id",
    )
    return [
        {
            "decided_at": row[0],
            "scheduled_for": row[1],
            "outcome": row[2],
            "context": json.loads(row[3]),
        }
        for row in rows
    ]


def sweep_in_progress(database: Path) -> bool:
    """True while a sweep's in-progress marker is in hub_state; False before the store has
    the table."""
    return bool(
        store_rows(database, "hub_state", "SELECT 1 FROM hub_state WHERE key = 'sweep_in_progress'")
    )


def fire_markers(database: Path) -> list[str]:
    """The ``hub_state`` keys of the fires in progress; none before the store has the table."""
    rows = store_rows(
        database, "hub_state", "SELECT key FROM hub_state WHERE key LIKE 'scheduler_fire:%'"
    )
    return [row[0] for row in rows]


def clear_of_slot_boundary(period: int, seconds_needed: float) -> None:
    """Wait until at least ``seconds_needed`` s are left before the next fire of a trigger
    that fires every ``period`` seconds (on the wall clock, as cron does)."""
    assert seconds_needed < period
    wait_for(
        lambda: period - time.time() % period >= seconds_needed,
        period,
        f"{seconds_needed} s clear of a {period} s slot boundary",
        step=0.1,
    )


def fire_every_env(seconds: int) -> dict[str, str]:
    """The environment that makes a daemon fire at every ``seconds``-th second of the minute
    instead of at its ``[schedule] trigger`` (a test hook of ``statehub.scheduler``)."""
    assert 60 % seconds == 0, "a divisor of 60, so that every minute has the same slots"
    return {TEST_TRIGGER_SECONDS_ENV: str(seconds)}


class NotifySocket:
    """An AF_UNIX datagram socket in /tmp (short path) standing in for systemd's."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
        self.folder = tempfile.mkdtemp(prefix="sh-", dir="/tmp")
        self.path = str(Path(self.folder) / "notify")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.2)
        self._lock = threading.Lock()
        self._messages: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._messages.append((time.monotonic(), data))

    def messages(self) -> list[tuple[float, bytes]]:
        """Every datagram so far as ``(monotonic time, raw bytes)``."""
        with self._lock:
            return list(self._messages)

    def fields(self, name: str) -> list[tuple[float, str]]:
        """The values of one field (``STATUS``, ``WATCHDOG``...) in arrival order."""
        found: list[tuple[float, str]] = []
        for moment, data in self.messages():
            for line in data.decode("latin-1").split("\n"):
                key, _, value = line.partition("=")
                if key == name:
                    found.append((moment, value))
        return found

    def wait_field(
        self,
        name: str,
        timeout: float,
        match: Callable[[str], bool] = lambda _: True,
        after: float = 0.0,
    ) -> tuple[float, str]:
        """The first ``name=value`` received after ``after`` (monotonic) that ``match``es."""

        def find() -> tuple[float, str] | None:
            for moment, value in self.fields(name):
                if moment >= after and match(value):
                    return moment, value
            return None

        found: tuple[float, str] = wait_for(
            find, timeout, f"{name}= on the notify socket (got {self.messages()[-5:]!r})"
        )
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class DaemonProcess:
    """``python -m statehub daemon --config CFG`` as a subprocess; stderr is collected.

    ``command`` runs another long-running command the same way (``("temporal", "worker")``).
    ``fire_every`` (seconds, a divisor of 60) replaces the schedule's trigger with the
    daemon's test trigger (``statehub.scheduler.TEST_TRIGGER_SECONDS_ENV``): fires at every
    N-th second of the minute, so a test of real fires takes seconds.
    """

    def __init__(
        self,
        config: Path,
        *,
        notify: NotifySocket | None = None,
        watchdog_usec: int | None = None,
        journal: bool = False,
        extra_env: dict[str, str] | None = None,
        command: tuple[str, ...] = ("daemon",),
        fire_every: int | None = None,
    ) -> None:
        env = dict(os.environ)
        if fire_every is not None:
            env.update(fire_every_env(fire_every))
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        read_fd, write_fd = os.pipe()
        if journal:
            # What systemd sets when stderr is the journal stream: its device and inode.
            status = os.fstat(write_fd)
            env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "statehub", *command, "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=write_fd,
        )
        os.close(write_fd)
        self._stderr = os.fdopen(read_fd, "r", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        self._lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stderr:
            with self._lock:
                self._lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self) -> list[str]:
        with self._lock:
            return [line for _, line in self._lines]

    def wait_line(self, needle: str, timeout: float, after: float = 0.0) -> tuple[float, str]:
        """The first stderr line containing ``needle`` written after ``after`` (monotonic)."""

        def find() -> tuple[float, str] | None:
            with self._lock:
                for moment, line in self._lines:
                    if moment >= after and needle in line:
                        return moment, line
            return None

        found: tuple[float, str] = wait_for(
            find, timeout, f"{needle!r} on the daemon's stderr (got {self.lines()[-10:]!r})"
        )
        return found

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        """Make sure the process is gone (tests stop it properly themselves)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(timeout=5)
        self._stderr.close()
