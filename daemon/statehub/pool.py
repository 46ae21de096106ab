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
  handed out, is reported not reached (``skipped_budget``); a ``--remote`` fetch whose
  timeout the deadline cut short ends a little before it, and its repo is over budget too
  (not a C-00: only the repo's own bounds make one).

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

from statehub.cancel import POLL_SECONDS, Cancel
from statehub.errors import WorkerError
from statehub.outcome import RepoOutcome, RepoTask, Target, errored

OutcomeCallback = Callable[[RepoOutcome], None]

# A worker that never says it is ready is broken, not slow: python with pygit2 starts in
# well under a second even on a loaded host.
_START_TIMEOUT_SECONDS = 30.0
# Repos sent to a worker ahead of its answers: an unchanged repo costs well under a
# millisecond, about what one round trip costs, so a few in the pipe keep a worker busy.
# Any other repo is sent alone (see _has_room); a --remote one also because its fetch
# timeout is cut to fit the time left when it is sent.
_PIPELINE = 8
# One answer is one repo's findings; a line longer than this is no answer.
_MAX_ANSWER_BYTES = 64 << 20


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    buffer: bytearray = field(default_factory=bytearray)
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    queue: deque[RepoTask] = field(default_factory=deque)  # sent, not yet answered, in order
    head_started: float = 0.0  # when the worker began the first task of ``queue``

    @property
    def fd(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    @property
    def busy(self) -> bool:
        return bool(self.queue)


@dataclass
class PoolResult:
    """Outcomes in the order of the tasks, and the targets not reached within the deadline."""

    outcomes: list[RepoOutcome]
    not_reached: list[Target]


@dataclass
class _Run:
    """One call of :meth:`WorkerPool.run`: what is left to do and what is done."""

    tasks: Sequence[RepoTask]
    deadline: float
    on_outcome: OutcomeCallback | None
    pending: deque[RepoTask] = field(default_factory=deque)
    done: dict[int, RepoOutcome] = field(default_factory=dict)
    order: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pending.extend(self.tasks)
        self.order = {id(task): number for number, task in enumerate(self.tasks)}

    def finish(self, task: RepoTask, outcome: RepoOutcome) -> None:
        self.done[self.order[id(task)]] = outcome
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def give_back(self, tasks: Sequence[RepoTask]) -> None:
        """Tasks a lost worker had not begun go first again, in their order."""
        self.pending.extendleft(reversed(tasks))


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
        """Stop every worker (SIGKILL: an idle worker holds nothing, a busy one is stuck).

        Closing twice is harmless.
        """
        for worker in list(self._workers):
            self._retire(worker)
        self._selector.close()

    def run(
        self,
        tasks: Sequence[RepoTask],
        *,
        deadline: float,
        on_outcome: OutcomeCallback | None = None,
        cancel: Cancel | None = None,
    ) -> PoolResult:
        """Assess every task within ``deadline`` (a ``time.monotonic()`` value).

        Raises WorkerError when a worker cannot start (the reason is the worker's own: a
        unit that forbids setrlimit, a broken install) or breaks the protocol, and
        :class:`statehub.cancel.Stopped` soon after ``cancel`` is cancelled (the busy
        workers killed first).
        """
        run = _Run(tasks=tasks, deadline=deadline, on_outcome=on_outcome)
        self.start(len(run.pending))
        while run.pending or any(worker.busy for worker in self._workers):
            if cancel is not None and cancel.cancelled:
                self._stop(run)
                cancel.check()
            if time.monotonic() >= deadline:
                return PoolResult(outcomes=self._outcomes(run), not_reached=self._stop(run))
            self._hand_out(run)
            if run.pending and len(self._workers) < self.size:
                self._spawn()
            self._wait(run, polled=cancel is not None)
        return PoolResult(outcomes=self._outcomes(run), not_reached=[])

    @staticmethod
    def _outcomes(run: _Run) -> list[RepoOutcome]:
        return [run.done[number] for number in sorted(run.done)]

    def _stop(self, run: _Run) -> list[Target]:
        """At the deadline: kill the busy workers; their repos and the rest are not reached."""
        left = list(run.pending)
        for worker in [worker for worker in self._workers if worker.busy]:
            left.extend(worker.queue)
            self._retire(worker)
        run.pending.clear()
        left.sort(key=lambda task: run.order[id(task)])
        return [task.target for task in left]

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

    def _hand_out(self, run: _Run) -> None:
        """Fill the ready workers' pipelines from ``run.pending``, the least loaded first.

        So that two repos never queue behind each other while a worker is idle: the one in
        front may be the one that never ends.
        """
        now = time.monotonic()
        # While a worker is still starting, one repo each: the rest waits for it.
        depth = 1 if any(not worker.ready for worker in self._workers) else _PIPELINE
        sent: dict[_Worker, list[bytes]] = {}
        while run.pending:
            room = [w for w in self._workers if self._has_room(w, run, depth)]
            if not room:
                break
            worker = min(room, key=lambda w: len(w.queue))  # the least loaded first
            task = run.pending.popleft()
            if not worker.queue:
                worker.head_started = now
            worker.queue.append(task)
            line = json.dumps(self._as_sent(task, run.deadline, now).as_dict()).encode()
            sent.setdefault(worker, []).append(line)
        for worker, lines in sent.items():
            # A worker that died between two tasks: its death is read from its output.
            with contextlib.suppress(OSError):
                assert worker.process.stdin is not None
                worker.process.stdin.write(b"\n".join(lines) + b"\n")
                worker.process.stdin.flush()

    @staticmethod
    def _has_room(worker: _Worker, run: _Run, depth: int) -> bool:
        if not worker.ready or len(worker.queue) >= depth:
            return False
        # Only repos that are likely judged unchanged from file stats queue behind another:
        # a full read or a fetch may be the one that never ends, and a repo queued behind it
        # would wait for its bound while another worker sits idle. (Nothing but those ever
        # queues, so the head of a queue tells about the whole queue.)
        return not worker.queue or (_quick(worker.queue[0]) and _quick(run.pending[0]))

    def _as_sent(self, task: RepoTask, deadline: float, now: float) -> RepoTask:
        # A fetch must end before the bounds do (the repo's, or the sweep's budget), so that
        # the worker lives on to say so. When the budget is what cut it short, running out
        # of it is the sweep's deadline (skipped_budget), not a failure of the repo's own.
        own = _fetch_within(task.fetch_timeout, self.repo_timeout)
        fetch_timeout = _fetch_within(task.fetch_timeout, min(self.repo_timeout, deadline - now))
        return dataclasses.replace(
            task, fetch_timeout=round(fetch_timeout, 2), fetch_cut_by_budget=fetch_timeout < own
        )

    def _retire(self, worker: _Worker) -> None:
        """Kill a worker (its whole process group) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            assert worker.process.stdin is not None
            worker.process.stdin.close()
        worker.process.wait()
        self._selector.unregister(worker.fd)
        assert worker.process.stdout is not None
        worker.process.stdout.close()
        self._workers.remove(worker)

    def _lose(self, worker: _Worker, run: _Run, message: str) -> None:
        """Kill ``worker``: its current repo gets a C-00 saying why, the rest go back."""
        task = worker.queue.popleft()
        run.give_back(list(worker.queue))
        self._retire(worker)
        run.finish(task, errored(task.target, task.checks, message))

    def _wait(self, run: _Run, *, polled: bool = False) -> None:
        """Wait for the next reply, death or timeout, and deal with what happened.

        ``polled``: wake at least every :data:`statehub.cancel.POLL_SECONDS` (a cancel from
        another thread has no descriptor to wake the selector).
        """
        wake = run.deadline
        if polled:
            wake = min(wake, time.monotonic() + POLL_SECONDS)
        for worker in self._workers:
            if worker.busy:
                wake = min(wake, worker.head_started + self.repo_timeout)
            elif not worker.ready:
                wake = min(wake, worker.started + _START_TIMEOUT_SECONDS)
        for key, _ in self._selector.select(max(0.0, wake - time.monotonic())):
            self._read(key.data, run)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.busy and now >= worker.head_started + self.repo_timeout:
                self._lose(worker, run, f"assessment took over {self.repo_timeout:g} s")
            elif not worker.ready and now >= worker.started + _START_TIMEOUT_SECONDS:
                self._retire(worker)
                raise WorkerError(f"a worker did not start within {_START_TIMEOUT_SECONDS:g} s")

    def _read(self, worker: _Worker, run: _Run) -> None:
        if worker not in self._workers:
            return  # retired while this round's events were handled
        try:
            chunk = os.read(worker.fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._died(worker, run)
            return
        worker.buffer += chunk
        while worker in self._workers and (end := worker.buffer.find(b"\n")) >= 0:
            line = bytes(worker.buffer[:end])
            del worker.buffer[: end + 1]
            try:
                self._message(worker, json.loads(line), run)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # A worker is trusted no more than the repo it read: nonsense costs the repo
                # a C-00 and the worker its life, never the sweep.
                self._broken(worker, run, f"the assessment's worker answered nonsense ({exc!r})")
        if worker in self._workers and len(worker.buffer) > _MAX_ANSWER_BYTES:
            self._broken(worker, run, "the assessment's worker answered too much")

    def _broken(self, worker: _Worker, run: _Run, message: str) -> None:
        if worker.busy:
            self._lose(worker, run, message)
        else:
            self._retire(worker)

    def _message(self, worker: _Worker, message: dict[str, Any], run: _Run) -> None:
        if "ready" in message:
            worker.ready = True
            return
        if "fatal" in message:
            self._retire(worker)
            raise WorkerError(str(message["fatal"]))
        if not worker.busy:
            raise WorkerError(f"a worker answered with no task: {message!r}")
        if message.get("bound") == "memory":
            self._lose(worker, run, f"assessment needed over {self.memory_mb} MB")
            return
        task = worker.queue.popleft()
        worker.head_started = time.monotonic()  # it goes on with the next one at once
        run.finish(task, RepoOutcome.from_dict(task.target, message["outcome"]))

    def _died(self, worker: _Worker, run: _Run) -> None:
        if not worker.busy:
            self._retire(worker)
            if not worker.ready:
                raise WorkerError(f"a worker exited at start ({_exit_reason(worker.process)})")
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)  # it closed its output: it is exiting
        self._lose(worker, run, f"the assessment's worker died ({_exit_reason(worker.process)})")


def _fetch_within(fetch_timeout: float, bound: float) -> float:
    """The fetch timeout that ends before ``bound`` seconds, with a margin to answer."""
    return min(fetch_timeout, max(0.1, bound - min(1.0, bound / 2)))


def _quick(task: RepoTask) -> bool:
    """True for a repo that has a standing assessment to compare with and no fetch to do."""
    standing = task.standing
    return (
        not task.remote
        and standing is not None
        and standing.fingerprint is not None
        and not standing.errored
    )


def _exit_reason(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "still running" if code is None else f"exit status {code}"
