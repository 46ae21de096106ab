"""Event size benchmark: one repo with many findings must not make every event huge.

    python bench/bench_event_size.py                        # 100,000 invalid workplans, 50 sweeps
    python bench/bench_event_size.py --workplans 20000 --sweeps 10

A fleet of one repo holding ``--workplans`` workplans without front matter (a finding
each) and a clean repo; ``--sweeps`` sweeps through the command line (the first reads it,
the rest reuse its standing assessment, as the 15-minute schedule does). Measured: the
newest event's size as stored (``statehub events --json``), the size of ``GET /progress/``
with its defaults (50 events) from the real server, and the peak RSS of ``statehub sweep``,
``statehub events --json`` and ``statehub serve`` (their ``ru_maxrss`` as children).
Targets (issue 25): an event <= 1 MB, ``GET /progress/`` <= 10 MB, each process <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from api_support import ApiServer, client, free_port, server_env
from gitfleet import git, make_repo, write_config

STATEHUB = (sys.executable, "-m", "statehub")


def child_rss_mb(command: list[str]) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Run ``command``; its result and the peak RSS (MiB) of the largest child so far."""
    done = subprocess.run(command, capture_output=True, env=server_env(), check=False)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return done, peak


def build_fleet(fleet: Path, workplans: int) -> None:
    """One repo with ``workplans`` invalid workplans (committed), one clean repo."""
    root = make_repo(fleet, "many-plans", {"README.md": "# many\n", "AGENTS.md": "# a\n"})
    plans = root / "workplans"
    plans.mkdir()
    for n in range(workplans):
        (plans / f"WP-{n:06d}.md").write_text("no front matter here\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "many plans")
    git(root, "push", "-q")
    make_repo(fleet, "clean")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workplans", type=int, default=100_000)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="folder to build in and keep")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-events-"))
    folder.mkdir(parents=True, exist_ok=True)
    fleet = folder / "fleet"
    try:
        began = time.perf_counter()
        if not fleet.exists():
            fleet.mkdir()
            build_fleet(fleet, args.workplans)
        port = free_port()
        config = write_config(folder, roots=[fleet], api=f"port = {port}")
        print(f"fleet built in {time.perf_counter() - began:.1f} s")
        sweep_rss = 0.0
        for n in range(args.sweeps):
            done, sweep_rss = child_rss_mb([*STATEHUB, "sweep", "--config", str(config)])
            if done.returncode not in (0, 1):
                print(done.stderr.decode(errors="replace"), file=sys.stderr)
                return 1
            if n == 0:
                print(f"first sweep done in {time.perf_counter() - began:.1f} s")
        done, events_rss = child_rss_mb(
            [*STATEHUB, "events", "--json", "--limit", "1", "--config", str(config)]
        )
        newest = json.loads(done.stdout)
        newest = newest[0] if isinstance(newest, list) else newest
        event_bytes = len(json.dumps(newest, separators=(",", ":")).encode())
        with ApiServer(config, port) as server, client(server.url, timeout=120) as http:
            progress_bytes = len(http.get("/progress/").content)
            assert server.process is not None
            status = Path(f"/proc/{server.process.pid}/status").read_text()
            serve_rss = int(status.split("VmHWM:")[1].split()[0]) / 1024
        print(f"| measure ({args.workplans} workplans, {args.sweeps} sweeps) | value | target |")
        print("| --- | --- | --- |")
        print(f"| newest event, as JSON | {event_bytes / 1e6:.3f} MB | <= 1 MB |")
        print(f"| GET /progress/ (50 events) | {progress_bytes / 1e6:.2f} MB | <= 10 MB |")
        print(f"| statehub sweep peak RSS (largest so far) | {sweep_rss:.0f} MiB | <= 300 MiB |")
        print(f"| statehub events --json peak RSS | {events_rss:.0f} MiB | <= 300 MiB |")
        print(f"| statehub serve peak RSS | {serve_rss:.0f} MiB | <= 300 MiB |")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
