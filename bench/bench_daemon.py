"""Daemon benchmark: start-up, idle memory, idle wake-ups, fire latency, stop time.

    python bench/bench_daemon.py                  # 3 fires: about 3 to 4 minutes
    python bench/bench_daemon.py --fires 2 --repos 20

The real daemon (``python -m statehub daemon``) runs in ``active`` mode with
``trigger = "* * * * *"`` over ``--repos`` good repos, with a NOTIFY_SOCKET bound here and
``WATCHDOG_USEC`` as the unit sets it (``WatchdogSec=60s``: a ping every 30 s). Measured:

- start-up: from spawn to ``READY=1``;
- idle RSS: ``VmRSS`` of ``/proc/PID/status`` between fires (target <= 60 MB), and its peak
  ``VmHWM`` (the peak includes the sweeps);
- idle wake-ups: context switches (voluntary + involuntary) summed over every thread in
  ``/proc/PID/task/*/status`` across a ``--idle-seconds`` window that starts 5 s after a
  fire, so it holds no fire (the watchdog ping may fall into it: one wake-up of the
  scheduler thread and one of a pool thread; so may the minute's heartbeat write);
- fire latency: ``fired_at - scheduled_for`` of each recorded run (target <= 1 s);
- stop: from SIGTERM to exit (target < 10 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from daemon_support import NotifySocket, runs
from gitfleet import make_repo, write_config


def status_field(pid: int, name: str, task: str | None = None) -> int:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    with open(path, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def context_switches(pid: int) -> dict[str, int]:
    """Per thread (``tid:name``): voluntary + involuntary context switches so far."""
    found: dict[str, int] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm", encoding="utf-8") as handle:
                name = handle.read().strip()
            switches = status_field(pid, "voluntary_ctxt_switches", task) + status_field(
                pid, "nonvoluntary_ctxt_switches", task
            )
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        found[f"{task}:{name}"] = switches
    return found


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_runs(database: Path, count: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs(database)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise SystemExit(f"no {count} fire(s) within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=3, help="fires to wait for (default 3)")
    parser.add_argument("--repos", type=int, default=10, help="repos in the fleet (default 10)")
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="idle window length (default 30)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    fleet = work / "fleet"
    fleet.mkdir()
    for n in range(args.repos):
        make_repo(fleet, f"repo-{n:03d}")
    config = write_config(work, roots=[fleet], schedule='mode = "active"\ntrigger = "* * * * *"')
    database = work / "statehub.db"

    notify = NotifySocket()
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="60000000")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "statehub", "daemon", "--config", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=(work / "daemon.log").open("wb"),
    )
    try:
        ready_at, _ = notify.wait_field("READY", 30)
        startup = ready_at - started
        print(f"daemon {process.pid} ready in {startup:.2f} s; waiting for the first fire")

        wait_runs(database, 1, 75)
        time.sleep(5)
        rss_idle_kb = status_field(process.pid, "VmRSS")
        before = context_switches(process.pid)
        time.sleep(args.idle_seconds)
        after = context_switches(process.pid)
        wakeups = {
            thread: after[thread] - before.get(thread, 0)
            for thread in after
            if after[thread] - before.get(thread, 0)
        }
        if len(runs(database)) > 1:
            print("warning: a fire fell into the idle window; lower --idle-seconds")

        print(f"waiting for {args.fires} fire(s)")
        recorded = wait_runs(database, args.fires, 65.0 * args.fires)
        rss_peak_kb = status_field(process.pid, "VmHWM")
        latencies = [
            (parse(str(run["fired_at"])) - parse(str(run["scheduled_for"]))).total_seconds()
            for run in recorded
        ]
        outcomes = sorted({str(run["outcome"]) for run in recorded})

        stop_sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(15)
        stop = time.monotonic() - stop_sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("start-up to READY=1", f"{startup:.2f} s", "-"),
        ("idle RSS (VmRSS)", f"{rss_idle_kb / 1024:.1f} MB", "<= 60 MB"),
        ("peak RSS (VmHWM, with sweeps)", f"{rss_peak_kb / 1024:.1f} MB", "-"),
        (
            f"idle wake-ups over {args.idle_seconds:.0f} s (all threads)",
            f"{sum(wakeups.values())}",
            "watchdog pings and heartbeat only",
        ),
        (
            f"fire latency over {len(latencies)} fires (max / median)",
            f"{max(latencies) * 1000:.1f} / {statistics.median(latencies) * 1000:.1f} ms",
            "<= 1 s",
        ),
        ("outcomes", ", ".join(outcomes), "swept"),
        ("SIGTERM to exit", f"{stop:.2f} s (status {status})", "< 10 s"),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure'.ljust(width)}  {'value':<24}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:<24}  {target}")
    print("\nidle context switches by thread:", wakeups or "none")
    print(f"(fleet of {args.repos} repos{f' in {work}' if args.keep else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
