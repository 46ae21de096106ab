"""The real HTTP server as a subprocess, for the API tests and the benchmark.

:class:`ApiServer` runs ``python -m statehub serve --config CFG``, reads the port it bound
from its ``listening on HOST:PORT`` line (a test config says ``port = 0``: the kernel picks a
free port for the server itself, so two suites on one machine never reach each other's),
waits for ``/healthz`` (bounded), and stops it with SIGTERM (bounded, then SIGKILL).
:class:`HangingRemote` is a TCP listener that never answers: a repo whose origin points at
it makes a ``remote`` sweep last exactly ``fetch_timeout_seconds``, without a sleep in the
code under test. :func:`refusing_address` is a loopback address where a connection is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from daemon_support import store_rows
from gitfleet import make_repo, write_config
from waiting import wait_for

START_TIMEOUT = 60.0  # a bound on a hang: a loaded machine starts Python slowly
STOP_TIMEOUT = 20.0


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


_LISTENING = re.compile(r" statehub\.api: listening on \S+:(\d+)$", re.MULTILINE)


def listening_port(log_text: str) -> int | None:
    """The port of the server's ``listening on HOST:PORT`` line in its log, if written."""
    found = _LISTENING.search(log_text)
    return int(found.group(1)) if found else None


class ApiServer:
    """``statehub serve`` as a subprocess; use as a context manager or call start/stop.

    :attr:`port` and :attr:`url` are the address the server bound, known once started (each
    start of a ``port = 0`` config binds a new one).
    """

    def __init__(
        self, config: Path, *, log: Path | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.prefix = prefix  # e.g. ("prlimit", "--nofile=128", "--"): run under limits
        self.port = 0
        self.log = log if log is not None else config.with_suffix(".serve.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port, "the server's address is known once it has started"
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> ApiServer:
        """Start the server, read the port it bound, wait until ``/healthz`` answers."""
        with self.log.open("wb") as log:
            process = subprocess.Popen(
                [
                    *self.prefix,
                    *(sys.executable, "-m", "statehub", "serve", "--config", str(self.config)),
                ],
                env=server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.process = process

        def bound() -> int | None:
            if process.poll() is not None:
                raise RuntimeError(f"statehub serve exited early:\n{self.log_text()}")
            return listening_port(self.log_text())

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"statehub serve exited early:\n{self.log_text()}")
            with contextlib.suppress(httpx.TransportError):
                return http.get("/healthz").status_code in (200, 503)
            return False

        try:
            self.port = wait_for(bound, timeout, "the server's 'listening on' line")
            with client(self.url, timeout=2.0) as http:
                wait_for(healthy, timeout, f"/healthz of {self.url}")
        except AssertionError as exc:
            self.stop()
            raise RuntimeError(f"statehub serve: {exc}:\n{self.log_text()}") from None
        return self

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
    """A (not yet started) server over the repos under ``fleet``, its config in ``folder``
    (``port = 0``: the address is the server's to pick)."""
    api = "port = 0\n" + sections.pop("api", "")
    config = write_config(folder, roots=[fleet], api=api.strip(), **sections)
    return ApiServer(config)


@contextlib.contextmanager
def refusing_address() -> Iterator[str]:
    """``127.0.0.1:PORT`` where a connection is refused: a socket holds the port, bound
    but not listening, so no other process can listen there meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


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
