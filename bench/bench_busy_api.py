"""The API while a sweep runs: lock-skipped POSTs and /healthz during a busy and a stuck sweep.

    python bench/bench_busy_api.py                  # a 1,000-repo fleet in a temp folder
    python bench/bench_busy_api.py --keep DIR       # build (or reuse) the fleet in DIR

Two scenes, each on a real ``statehub serve`` (a subprocess on a loopback port):

- busy: the first sweep of the fleet of ``bench_sweep.py`` (every repo read, both cores
  working) is started with one POST; meanwhile ``--requests`` sequential POSTs are each
  answered lock-skipped, and as many ``GET /healthz``;
- stuck: a fleet whose only repo is a named pipe where libgit2 reads an object; the sweep
  waits on it until its bound, and the same requests are measured.

Target (2-core machine): a lock-skipped answer within 5 ms median during any sweep. The
server never reads a repo itself, so neither scene competes with it for its GIL.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostilekit
from api_support import ApiServer, client
from bench_sweep import build_fleet
from gitfleet import make_repo, write_config

SWEEP = "/consistency/sweep/remote-all"


def measure(server: ApiServer, requests: int) -> dict[str, list[float]]:
    """Start one sweep, then time lock-skipped POSTs and /healthz while it runs."""
    started = threading.Event()

    def sweep() -> None:
        with client(server.url, timeout=600) as http:
            started.set()
            http.post(SWEEP, json={})

    runner = threading.Thread(target=sweep, daemon=True)
    runner.start()
    started.wait()
    times: dict[str, list[float]] = {"skip": [], "healthz": []}
    with client(server.url, timeout=30) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the sweep holds the lock
            if http.get("/healthz").json()["lock"] == "held":
                break
            time.sleep(0.01)
        for _ in range(requests):
            begin = time.perf_counter()
            answer = http.post(SWEEP, json={})
            times["skip"].append(time.perf_counter() - begin)
            if not answer.json()["detail"]["lock_skipped"]:
                raise SystemExit("the sweep ended before the measurement: use a larger fleet")
            begin = time.perf_counter()
            http.get("/healthz").raise_for_status()
            times["healthz"].append(time.perf_counter() - begin)
    return times


def scene(folder: Path, fleet: Path, requests: int, sweep: str) -> dict[str, list[float]]:
    config = write_config(folder, roots=[fleet], sweep=sweep, api="port = 0")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{folder / 'statehub.db'}{suffix}").unlink(missing_ok=True)
    with ApiServer(config) as server:
        return measure(server, requests)


def row(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:<34} median {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   n={len(ms)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="build or reuse the fleet in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-"))
    fleet = work / "fleet"
    if not fleet.exists():
        fleet.mkdir(parents=True)
        build_fleet(fleet, args.repos)
    busy_folder = work / "busy-api"
    busy_folder.mkdir(exist_ok=True)
    busy = scene(busy_folder, fleet, args.requests, "max_seconds = 600")

    stuck_fleet = work / "stuck-fleet"
    if not stuck_fleet.exists():
        stuck_fleet.mkdir()
        hostilekit.fifo_object(stuck_fleet, work / "stuck-scratch")
        make_repo(stuck_fleet, "good")
    stuck_folder = work / "stuck-api"
    stuck_folder.mkdir(exist_ok=True)
    stuck = scene(stuck_folder, stuck_fleet, args.requests, "repo_timeout_seconds = 600")

    print(row("lock-skipped POST, busy sweep", busy["skip"]))
    print(row("GET /healthz, busy sweep", busy["healthz"]))
    print(row("lock-skipped POST, stuck sweep", stuck["skip"]))
    print(row("GET /healthz, stuck sweep", stuck["healthz"]))
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
