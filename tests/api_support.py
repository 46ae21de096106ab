"""The real HTTP server as a subprocess, for the API tests and the benchmark.

:class:`ApiServer` runs ``python -m statehub serve --config CFG`` on a free loopback port,
waits for ``/healthz`` (bounded), and stops it with SIGTERM (bounded, then SIGKILL).
:class:`HangingRemote` is a TCP listener that never answers: a repo whose origin points at
it makes a ``remote`` sweep last exactly ``fetch_timeout_seconds``, without a sleep in the
code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from daemon_support import store_rows
from gitfleet import make_repo, write_config

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env() -> dict[str, str]:
    """The caller's environment without what would change the server's configuration."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STATEHUB_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM"))
    }


def client(base_url: str, *, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
    """An httpx client for the server; never goes through a proxy of the environment."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, timeout=timeout, trust_env=False, headers=headers)


class ApiServer:
    """``statehub serve`` as a subprocess; use as a context manager or call start/stop."""

    def __init__(
        self, config: Path, port: int, *, log: Path | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.prefix = prefix  # e.g. ("prlimit", "--nofile=128", "--"): run under limits
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log if log is not None else config.with_suffix(".serve.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> ApiServer:
        """Start the server and wait until ``/healthz`` answers (200 or 503)."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    *(sys.executable, "-m", "statehub", "serve", "--config", str(self.config)),
                ],
                env=server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with client(self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"statehub serve exited early:\n{self.log_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code in (200, 503):
                        return self
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"statehub serve did not answer in {timeout} s:\n{self.log_text()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait (bounded), SIGKILL if needed; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_fleet(folder: Path, fleet: Path, **sections: str) -> ApiServer:
    """A (not yet started) server over the repos under ``fleet``, its config in ``folder``."""
    port = free_port()
    api = f"port = {port}\n" + sections.pop("api", "")
    config = write_config(folder, roots=[fleet], api=api.strip(), **sections)
    return ApiServer(config, port)


class HangingRemote:
    """A listening TCP socket that accepts into its backlog and never answers."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(256)
        self.port = int(self._socket.getsockname()[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def close(self) -> None:
        self._socket.close()


def make_slow_repo(parent: Path, name: str, remote: HangingRemote) -> Path:
    """A good repo whose only remote hangs: its ``--remote`` fetch waits for the timeout."""
    return make_repo(parent, name, origin_url=remote.url(name))


def event_rows(database: Path) -> list[dict[str, Any]]:
    """Every row of ``progress_events``, read with plain sqlite3, oldest first."""
    rows = store_rows(
        database,
        "progress_events",
        "SELECT id, event_type, created_at, detail FROM progress_events ORDER BY id",
    )
    return [
        {"id": row[0], "event_type": row[1], "created_at": row[2], "detail": json.loads(row[3])}
        for row in rows
    ]


def count_events(database: Path) -> int:
    """How many ``progress_events`` rows the store holds (0 before it has the table)."""
    rows = store_rows(database, "progress_events", "SELECT count(*) FROM progress_events")
    return int(rows[0][0]) if rows else 0
