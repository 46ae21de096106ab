"""A sweep's worker process: reads repos one at a time, under a memory bound, until told to stop.

Started by :mod:`statehub.pool` as ``python -P -m statehub.worker`` (``-P`` and the working
folder ``/``: no module is ever imported from the folder the operator stands in). The
protocol is one JSON line per message: a task (:class:`statehub.outcome.RepoTask`) on
stdin, its outcome on the channel that was stdout; end of input means stop. Before
reading anything it

- caps its address space (``RLIMIT_AS``) at ``--memory-mb``, so a repo that needs more
  fails here with a MemoryError (answered ``{"bound": "memory"}``, then the process exits)
  instead of swapping the host;
- keeps libgit2's pack windows well inside that cap (:mod:`statehub.gitstate`, when a
  full read first needs libgit2: an unchanged repo is judged without loading it);
- asks the kernel to kill it when the process that started it dies (``PR_SET_PDEATHSIG``),
  so a stopped server or daemon never leaves a worker stuck in libgit2 behind;
- moves the protocol off file descriptor 1, so a stray print cannot corrupt it;
- lowers its own CPU priority (nice 10) where allowed, so that the process that serves
  HTTP or keeps the daemon's watchdog goes first while every core reads repos (the shipped
  units' ``SystemCallFilter=~@resources`` refuses it, which costs only some tail latency).

The time bound is the pool's: it kills a worker that takes too long.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
from typing import IO, Any

from statehub.deathsig import die_with_parent

_NICENESS = 10


def _bound_memory(memory_mb: int) -> None:
    limit = memory_mb << 20
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)  # a lower cap set from outside stays
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _protocol_channel() -> IO[bytes]:
    """The original stdout for replies; fd 1 is pointed at stderr from here on."""
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _send(channel: IO[bytes], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode("ascii") + b"\n")


def serve(channel: IO[bytes]) -> None:
    """Answer tasks from stdin until it closes."""
    from statehub.assess import assess_task
    from statehub.outcome import RepoTask

    for line in sys.stdin.buffer:
        task = RepoTask.from_dict(json.loads(line))
        try:
            outcome = assess_task(task)
        except MemoryError:
            # The heap may be in any state: answer with what needs no allocation, and stop.
            channel.write(b'{"bound": "memory"}\n')
            os._exit(3)
        _send(channel, {"outcome": outcome.as_dict()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statehub.worker")
    parser.add_argument("--parent", type=int, required=True, help="pid of the sweep")
    parser.add_argument("--memory-mb", type=int, required=True)
    args = parser.parse_args(argv)
    channel = _protocol_channel()
    if os.environ.get("STATEHUB_LOG_LEVEL"):  # logs.LEVEL_VARIABLE, read without its imports
        import logging

        from statehub.logs import setup_logging

        setup_logging(level=logging.WARNING)
    with contextlib.suppress(OSError):  # best effort: only the bounds are required
        os.nice(_NICENESS)
    try:
        die_with_parent(args.parent)
        _bound_memory(args.memory_mb)
    except (OSError, ValueError) as exc:
        # Under a unit that forbids setrlimit (SystemCallFilter=~@resources) this says so.
        _send(channel, {"fatal": f"cannot start a worker: {exc}"})
        return 78
    _send(channel, {"ready": True})
    serve(channel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
