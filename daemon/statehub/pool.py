"""The sweep's side of the worker processes: hand out repos, enforce the bounds, collect.

A small pool of our own rather than ``concurrent.futures.ProcessPoolExecutor``: that one
cannot kill a single stuck worker (a worker lost to a signal breaks the whole pool), and a
repo that makes libgit2 block in C must cost exactly one worker. Here each worker is a
child process (:mod:`statehub.worker`) with one task at a time, so the pool always knows
which repo a worker is on and since when:

- a worker past ``repo_timeout`` is killed and replaced; its repo gets a C-00 naming the
  bound ("assessment took over 60 s");
- a worker that runs out of memory answers so (or dies) and is replaced; its repo gets a
  C-00 naming the bound ("assessment needed over 1024 MB");
- at the sweep's deadline every busy worker is killed and its repo, like every repo not
  handed out, is reported not reached (``skipped_budget``).

The process that runs the pool never reads a repo itself, so a server or a daemon stays
responsive while its sweep waits here in ``select``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from statehub.errors import WorkerError
from statehub.outcome import RepoOutcome, RepoTask, Target, errored

OutcomeCallback = Callable[[RepoOutcome], None]
_Finish = Callable[[RepoTask, RepoOutcome], None]

# A worker that never says it is ready is broken, not slow: python with pygit2 starts in
# well under a second even on a loaded host.
_START_TIMEOUT_SECONDS = 30.0


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    buffer: bytearray = field(default_factory=bytearray)
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    task: RepoTask | None = None
    task_started: float = 0.0

    @property
    def fd(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()


@dataclass
class PoolResult:
    """Outcomes in the order of the tasks, and the targets not reached within the deadline."""

    outcomes: list[RepoOutcome]
    not_reached: list[Target]


class WorkerPool:
    """Up to ``size`` worker processes; use as a context manager so that all are killed."""

    def __init__(self, *, size: int, repo_timeout: float, memory_mb: int) -> None:
        self.size = max(1, size)
        self.repo_timeout = repo_timeout
        self.memory_mb = memory_mb
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, count: int) -> None:
        """Start workers up to ``count`` (at most ``size``) now, so they load while we wait."""
        while len(self._workers) < min(count, self.size):
            self._spawn()

    def close(self) -> None:
        """Stop every worker: idle ones by closing their input, busy ones by SIGKILL."""
        for worker in list(self._workers):
            self._retire(worker, kill=worker.task is not None)
        self._selector.close()

    def run(
        self,
        tasks: Sequence[RepoTask],
        *,
        deadline: float,
        on_outcome: OutcomeCallback | None = None,
    ) -> PoolResult:
        """Assess every task within ``deadline`` (a ``time.monotonic()`` value).

        Raises WorkerError when no worker can be started at all (the reason is the
        worker's own: a unit that forbids setrlimit, a broken install).
        """
        pending = deque(tasks)
        done: dict[int, RepoOutcome] = {}
        order = {id(task): number for number, task in enumerate(tasks)}
        not_reached: list[Target] = []

        def finish(task: RepoTask, outcome: RepoOutcome) -> None:
            done[order[id(task)]] = outcome
            if on_outcome is not None:
                on_outcome(outcome)

        self.start(len(pending))
        while pending or self._busy():
            now = time.monotonic()
            if now >= deadline:
                for worker in self._busy():
                    assert worker.task is not None
                    not_reached.append(worker.task.target)
                    self._retire(worker, kill=True)
                not_reached.extend(task.target for task in pending)
                pending.clear()
                break
            for worker in self._workers:
                if worker.ready and worker.task is None and pending:
                    self._hand_out(worker, pending.popleft(), deadline)
            if pending and len(self._workers) < self.size:
                self._spawn()
            self._wait(deadline, finish)
        outcomes = [done[number] for number in sorted(done)]
        return PoolResult(outcomes=outcomes, not_reached=not_reached)

    # -- the workers ---------------------------------------------------------------------

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-P",  # never import from the working folder
            "-m",
            "statehub.worker",
            "--parent",
            str(os.getpid()),
            "--memory-mb",
            str(self.memory_mb),
        ]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd="/",
                close_fds=True,
                # Its own session: a terminal's ^C reaches the sweep, which stops the workers.
                start_new_session=True,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start a worker ({sys.executable}): {exc}") from exc
        worker = _Worker(process=process)
        os.set_blocking(worker.fd, False)
        self._selector.register(worker.fd, selectors.EVENT_READ, worker)
        self._workers.append(worker)

    def _busy(self) -> list[_Worker]:
        return [worker for worker in self._workers if worker.task is not None]

    def _hand_out(self, worker: _Worker, task: RepoTask, deadline: float) -> None:
        now = time.monotonic()
        # A fetch must end before the bounds do (the repo's, or the sweep's budget), so that
        # the finding names the fetch's timeout and the worker lives on.
        bound = min(self.repo_timeout, deadline - now)
        fetch_timeout = min(task.fetch_timeout, max(0.1, bound - min(1.0, bound / 2)))
        sent = dataclasses.replace(task, fetch_timeout=round(fetch_timeout, 2))
        line = json.dumps(sent.as_dict()).encode("ascii") + b"\n"
        worker.task = task
        worker.task_started = now
        # A worker that died between two tasks: its death is read from its output.
        with contextlib.suppress(OSError):
            assert worker.process.stdin is not None
            worker.process.stdin.write(line)
            worker.process.stdin.flush()

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            assert worker.process.stdin is not None
            worker.process.stdin.close()  # an idle worker ends at the end of its input
        try:
            worker.process.wait(timeout=None if kill else 5)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
        self._selector.unregister(worker.fd)
        assert worker.process.stdout is not None
        worker.process.stdout.close()
        self._workers.remove(worker)

    def _wait(self, deadline: float, finish: _Finish) -> None:
        """Wait for the next reply, death or timeout, and deal with what happened."""
        now = time.monotonic()
        wake = deadline
        for worker in self._workers:
            if worker.task is not None:
                wake = min(wake, worker.task_started + self.repo_timeout)
            elif not worker.ready:
                wake = min(wake, worker.started + _START_TIMEOUT_SECONDS)
        for key, _ in self._selector.select(max(0.0, wake - now)):
            self._read(key.data, finish)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.task is not None and now >= worker.task_started + self.repo_timeout:
                task = worker.task
                self._retire(worker, kill=True)
                message = f"assessment took over {self.repo_timeout:g} s"
                finish(task, errored(task.target, task.checks, message))
            elif not worker.ready and now >= worker.started + _START_TIMEOUT_SECONDS:
                self._retire(worker, kill=True)
                raise WorkerError(f"a worker did not start within {_START_TIMEOUT_SECONDS:g} s")

    def _read(self, worker: _Worker, finish: _Finish) -> None:
        try:
            chunk = os.read(worker.fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._died(worker, finish)
            return
        worker.buffer += chunk
        while (end := worker.buffer.find(b"\n")) >= 0:
            line = bytes(worker.buffer[:end])
            del worker.buffer[: end + 1]
            self._message(worker, json.loads(line), finish)

    def _message(self, worker: _Worker, message: dict[str, Any], finish: _Finish) -> None:
        if "ready" in message:
            worker.ready = True
            return
        if "fatal" in message:
            self._retire(worker, kill=True)
            raise WorkerError(str(message["fatal"]))
        task = worker.task
        if task is None:
            raise WorkerError(f"a worker answered with no task: {message!r}")
        worker.task = None
        if message.get("bound") == "memory":
            self._retire(worker, kill=True)
            text = f"assessment needed over {self.memory_mb} MB"
            finish(task, errored(task.target, task.checks, text))
            return
        finish(task, RepoOutcome.from_dict(task.target, message["outcome"]))

    def _died(self, worker: _Worker, finish: _Finish) -> None:
        task = worker.task
        self._retire(worker, kill=True)
        if task is None:
            if not worker.ready:
                raise WorkerError(f"a worker exited at start ({_exit_reason(worker.process)})")
            return
        reason = _exit_reason(worker.process)
        message = f"the assessment's worker process died ({reason})"
        finish(task, errored(task.target, task.checks, message))


def _exit_reason(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
