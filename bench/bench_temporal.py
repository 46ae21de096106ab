"""Temporal worker benchmark: start-up, idle memory, trigger-to-record latency, stop time.

    python bench/bench_temporal.py                # 5 fires over 20 repos: about 30 s
    python bench/bench_temporal.py --fires 10 --repos 100
    python bench/bench_temporal.py --fires 1 --fleet DIR   # the repos already in DIR
                                                           # (bench_event_size --fleet N --keep)

A Temporal dev server (``temporal server start-dev``, tests/temporal_support.py) and the
real worker (``python -m statehub temporal worker``) with a NOTIFY_SOCKET bound here.
Measured:

- start-up: from spawn to ``READY=1`` (the worker is connected and polling);
- idle RSS: ``VmRSS`` of the worker after start-up, and its peak ``VmHWM`` after the fires;
- fire latency: from ``temporal schedule trigger`` returning to the run's ``activity_runs``
  row being readable (the workflow start, the activity, the sweep and the record);
- schedule lag: ``fired_at - scheduled_for`` of each recorded run (when the worker started
  the activity, after the Schedule's nominal time; a triggered action's nominal time is
  the trigger's, truncated to the second, so this includes up to 1 s of truncation);
- stop: from SIGTERM to exit;
- the workflow runs' status as Temporal has it (``completed``: the activity's result, a
  bounded summary of the event, fit in Temporal's payload limit whatever the fleet).
"""

from __future__ import annotations

import argparse
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

from daemon_support import DaemonProcess, NotifySocket, runs
from gitfleet import make_repo, write_config
from temporal_support import TemporalServer, status
from waiting import wait_for


def status_kb(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=5)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--fleet", type=Path, help="sweep the repos in this folder instead")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    server = TemporalServer(folder / "temporal")
    try:
        started = time.monotonic()
        server.start()
        print(f"dev server ready        {time.monotonic() - started:8.2f} s")
        fleet = args.fleet or folder / "fleet"
        if args.fleet is None:
            for n in range(args.repos):
                make_repo(fleet, f"repo-{n:03d}")
        repos = sum(1 for child in fleet.iterdir() if (child / ".git").exists())
        config = write_config(
            folder,
            roots=[fleet],
            schedule='trigger = "30 4 1 1 *"',
            sweep="max_seconds = 600",
            temporal=f'address = "{server.address}"\ntask_queue = "bench"\nschedule_id = "bench"',
        )
        subprocess.run(
            [sys.executable, "-m", "statehub", "temporal", "sync", "--config", str(config)],
            check=True,
            capture_output=True,
        )
        notify = NotifySocket()
        spawned = time.monotonic()
        worker = DaemonProcess(config, notify=notify, command=("temporal", "worker"))
        try:
            ready_at, _ = notify.wait_field("READY", timeout=60)
            time.sleep(2)
            idle_rss = status_kb(worker.pid, "VmRSS")
            latencies: list[float] = []
            database = folder / "statehub.db"
            for fire in range(1, args.fires + 1):
                server.trigger("bench")
                triggered = time.monotonic()
                wait_for(lambda n=fire: len(runs(database)) >= n, 600, f"run {fire}", 0.01)
                latencies.append(time.monotonic() - triggered)
                time.sleep(1.1)  # the Schedule's nominal times have one-second resolution
            peak = status_kb(worker.pid, "VmHWM")
            lags = [
                (
                    datetime.fromisoformat(run["fired_at"].replace("Z", "+00:00"))
                    - datetime.fromisoformat(run["scheduled_for"].replace("Z", "+00:00"))
                ).total_seconds()
                for run in runs(database)
            ]
            outcomes = sorted({run["outcome"] for run in runs(database)})
            closed = server.closed_workflows("bench", args.fires, timeout=60)
            workflows = sorted(status(run) for run in closed)
            stop_from = time.monotonic()
            worker.send(signal.SIGTERM)
            code = worker.wait(30)
            stopped = time.monotonic() - stop_from
        finally:
            worker.close()
            notify.close()
        print(f"worker start to READY   {ready_at - spawned:8.2f} s")
        print(f"worker idle VmRSS       {idle_rss / 1024:8.1f} MiB")
        print(f"worker peak VmHWM       {peak / 1024:8.1f} MiB  (after {args.fires} sweeps)")
        print(
            f"trigger to run recorded {statistics.median(latencies) * 1000:8.0f} ms median, "
            f"{max(latencies) * 1000:.0f} ms max ({args.fires} fires, {repos} repos, "
            f"outcomes {outcomes})"
        )
        print(f"workflow runs           {', '.join(workflows)}")
        print(
            f"fired_at - scheduled_for {statistics.median(lags) * 1000:7.0f} ms median, "
            f"{max(lags) * 1000:.0f} ms max"
        )
        print(f"SIGTERM to exit         {stopped:8.2f} s (exit status {code})")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
