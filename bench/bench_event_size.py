"""Event size benchmark: one repo with many findings must not make every event huge.

    python bench/bench_event_size.py                        # 100,000 invalid workplans, 50 sweeps
    python bench/bench_event_size.py --workplans 20000 --sweeps 10
    python bench/bench_event_size.py --fleet 10000              # 10,000 ordinary repos
    python bench/bench_event_size.py --fleet 10000 --bad-plans 5  # each with 5+ findings

A fleet of one repo holding ``--workplans`` workplans without front matter (a finding
each) and a clean repo; ``--sweeps`` sweeps through the command line (the first reads it,
the rest reuse its standing assessment, as the 15-minute schedule does). Measured: the
newest event's size as stored (``statehub events --json``), the size of ``GET /progress/``
with its defaults (50 events) from the real server, and the peak RSS of ``statehub sweep``,
``statehub events --json`` and ``statehub serve`` (their ``ru_maxrss`` as children).
Targets (issue 25): an event <= 1 MB, ``GET /progress/`` <= 10 MB, each process <= 300 MB.

With ``--fleet N``: instead, N copies of one repo (``bench/bench_sweep.py``'s template of ~30
files, 3 workplans, a tenth with an untracked file; with ``--bad-plans K`` also K workplans
without front matter each, so that every repo has findings). Measured: the first sweep's
and the unchanged re-sweep's wall time (the whole command), the newest event's size and
how many findings and repos it lists of how many, and the database's growth per sweep.
Targets: an event <= 1 MB, the first sweep of 10,000 repos <= 15 s.
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

from api_support import ApiServer, client, server_env
from gitfleet import git, good_files, make_repo, write, write_config

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


def build_copies(fleet: Path, count: int, bad_plans: int) -> None:
    """``count`` real repos copied from one template (``bench_sweep.py``'s, plus
    ``bad_plans`` workplans without front matter); a tenth with an untracked file."""
    files = good_files("template", plans=3)
    for n in range(24):
        files[f"src/module_{n:02d}.py"] = f'"""Module {n}."""\n\nVALUE = {n}\n' * 20
    for n in range(bad_plans):
        files[f"workplans/BAD-{n:02d}.md"] = "no front matter here\n"
    template = make_repo(fleet.parent / "template", "template", files)
    for n in range(count):
        target = fleet / f"repo-{n:05d}"
        shutil.copytree(template, target, symlinks=True)
        if n % 10 == 0:
            write(target, {"notes.txt": f"repo {n}\n"})


def fleet_case(folder: Path, count: int, bad_plans: int) -> int:
    """The ``--fleet`` measures: two sweeps of ``count`` repos, the event, the database."""
    fleet = folder / "fleet"
    began = time.perf_counter()
    if not fleet.exists():
        fleet.mkdir()
        build_copies(fleet, count, bad_plans)
    config = write_config(folder, roots=[fleet])
    print(f"fleet of {count} repos built in {time.perf_counter() - began:.1f} s")
    database = folder / "statehub.db"
    walls, sizes = [], []
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(
            [*STATEHUB, "sweep", "--config", str(config)], capture_output=True, check=False
        )
        walls.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            print(done.stderr.decode(errors="replace"), file=sys.stderr)
            return 1
        sizes.append(sum(p.stat().st_size for p in folder.glob("statehub.db*")))
    done = subprocess.run(
        [*STATEHUB, "events", "--json", "--limit", "1", "--config", str(config)],
        capture_output=True,
        check=True,
    )
    newest = json.loads(done.stdout)
    newest = newest[0] if isinstance(newest, list) else newest
    detail = newest["detail"]
    entries = detail["repos_processed"]
    event_bytes = len(json.dumps(newest, separators=(",", ":")).encode())
    listed = sum(len(entry["findings"]) for entry in entries)
    print(f"| measure ({count} repos, {bad_plans} bad workplans each) | value | target |")
    print("| --- | --- | --- |")
    print(f"| first sweep (whole command) | {walls[0]:.1f} s | <= 15 s |")
    print(f"| unchanged re-sweep (whole command) | {walls[1]:.1f} s | |")
    print(f"| newest event, as JSON | {event_bytes / 1e6:.3f} MB | <= 1 MB |")
    print(
        f"| its repos_processed | {len(entries)} entries listed of"
        f" {detail.get('repos_need_action', len(entries))} that need action, {listed} findings"
        f" listed, findings_truncated {detail.get('findings_truncated', False)},"
        f" repos_truncated {detail.get('repos_truncated', False)} | |"
    )
    print(
        f"| its skipped_clean | {len(detail['skipped_clean'])} named of"
        f" {detail.get('repos_clean', len(detail['skipped_clean']))} clean | |"
    )
    print(f"| database after 1st, 2nd sweep | {sizes[0] / 1e6:.1f}, {sizes[1] / 1e6:.1f} MB | |")
    assert database.exists()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workplans", type=int, default=100_000)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="folder to build in and keep")
    parser.add_argument("--fleet", type=int, default=0, help="N ordinary repos instead")
    parser.add_argument("--bad-plans", type=int, default=0, help="with --fleet")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-events-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.fleet:
        try:
            return fleet_case(folder, args.fleet, args.bad_plans)
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    fleet = folder / "fleet"
    try:
        began = time.perf_counter()
        if not fleet.exists():
            fleet.mkdir()
            build_fleet(fleet, args.workplans)
        config = write_config(folder, roots=[fleet], api="port = 0")
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
        with ApiServer(config) as server, client(server.url, timeout=120) as http:
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
