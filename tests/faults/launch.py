"""The real statehub programs with one fault or one test clock switched in (tests only).

    python launch.py daemon --fire-after S --config CFG
        ``statehub daemon`` whose cron trigger is replaced by a single fire S seconds after
        start, so a test can kill a daemon mid-fire without waiting for a minute slot.
    python launch.py kill-at-commit {before,after} N STATEHUB-ARGS...
        ``statehub STATEHUB-ARGS...`` that sends itself SIGKILL just before (inside the
        open write transaction) or just after the N-th commit of the store. With N = 0 it
        never does, and prints ``commits=<count>`` on stderr at exit.

Everything else is the unchanged program: the same ``statehub.cli.main``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any


def run_daemon(fire_after: float, config: str) -> int:
    from apscheduler.triggers.date import DateTrigger

    from statehub import scheduler
    from statehub.cli import main

    def one_fire(_settings: object) -> Any:
        moment = datetime.now(UTC) + timedelta(seconds=fire_after)
        return DateTrigger(run_date=moment, timezone=UTC)

    scheduler.validate_for_daemon = one_fire  # type: ignore[assignment]
    return main(["daemon", "--config", config])


def kill_at_commit(when: str, target: int, arguments: list[str]) -> int:
    from statehub.cli import main
    from statehub.store import Store

    original = Store.transaction
    commits = 0

    def die() -> None:
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    @contextmanager
    def counted(self: Store) -> Iterator[Any]:
        nonlocal commits
        with original(self) as connection:
            yield connection
            if when == "before" and commits + 1 == target:
                die()
        commits += 1
        if when == "after" and commits == target:
            die()

    Store.transaction = counted  # type: ignore[method-assign]
    if target == 0:
        atexit.register(lambda: sys.stderr.write(f"commits={commits}\n"))
    return main(arguments)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    daemon = verbs.add_parser("daemon")
    daemon.add_argument("--fire-after", type=float, required=True)
    daemon.add_argument("--config", required=True)
    kill = verbs.add_parser("kill-at-commit")
    kill.add_argument("when", choices=("before", "after"))
    kill.add_argument("target", type=int)
    kill.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    if args.verb == "daemon":
        raise SystemExit(run_daemon(args.fire_after, args.config))
    raise SystemExit(kill_at_commit(args.when, args.target, args.arguments))
