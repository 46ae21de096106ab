"""Sweep benchmark: a generated fleet, the first full sweep, the clean re-sweep, memory, --help.

    python bench/bench_sweep.py                # 1,000 repos of ~30 files and 3 workplans
    python bench/bench_sweep.py --repos 200    # smaller
    python bench/bench_sweep.py --keep DIR     # build (or reuse) the fleet in DIR

Targets (issue 2, 2-core machine): first sweep <= 20 s, unchanged re-sweep <= 2 s, peak
memory <= 150 MB, ``statehub --help`` <= 0.3 s. Each sweep runs the real CLI in a fresh
process (``statehub sweep --all --json``); peak memory is that process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gitfleet import good_files, make_repo, write, write_config


def build_fleet(fleet: Path, count: int) -> None:
    """``count`` repos: a template with ~30 files and 3 workplans, copied (real repos all)."""
    template_parent = fleet.parent / "template"
    files = good_files("template", plans=3)
    for n in range(24):
        files[f"src/module_{n:02d}.py"] = f'"""Module {n}."""\n\nVALUE = {n}\n' * 20
    files["docs/guide.md"] = "# Guide\n\nSee the [readme](../README.md).\n"
    make_repo(template_parent, "template", files, with_origin=True)
    origin = template_parent / ".origins" / "template.git"
    for n in range(count):
        target = fleet / f"repo-{n:04d}"
        shutil.copytree(template_parent / "template", target, symlinks=True)
        if n % 10 == 0:  # a tenth have an untracked file: a C-15 finding each
            write(target, {"notes.txt": f"repo {n}\n"})
    # Every copy's origin URL still names the template's bare origin: fine for local sweeps.
    assert origin.exists()


def run_cli(config: Path, *args: str) -> tuple[float, int, dict[str, object]]:
    """(wall seconds, max RSS in KiB, the JSON printed) of one CLI run in a new process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "statehub", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode not in (0, 1):
        raise SystemExit(f"statehub failed ({result.returncode}): {result.stderr}")
    # ru_maxrss of children is the max over all children so far: report the larger.
    return wall, max(peak, before), json.loads(result.stdout) if result.stdout else {}


def help_time(runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "statehub", "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build or reuse the fleet in this folder")
    parser.add_argument("--rounds", type=int, default=3, help="rounds to take medians of")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-"))
    fleet = work / "fleet"
    if not fleet.exists():
        fleet.mkdir(parents=True)
        started = time.perf_counter()
        build_fleet(fleet, args.repos)
        print(f"built {args.repos} repos in {time.perf_counter() - started:.1f} s", flush=True)
    database = work / "statehub.db"
    config = write_config(work, roots=[fleet], sweep="max_seconds = 3600")
    firsts: list[float] = []
    seconds: list[float] = []
    peak = 0
    for _ in range(args.rounds):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        first_wall, first_rss, first = run_cli(config, "sweep", "--all", "--json")
        second_wall, second_rss, second = run_cli(config, "sweep", "--all", "--json")
        firsts.append(first_wall)
        seconds.append(second_wall)
        peak = max(peak, first_rss, second_rss)
    first_wall, second_wall = statistics.median(firsts), statistics.median(seconds)
    first_detail = first["detail"]
    second_detail = second["detail"]
    assert isinstance(first_detail, dict) and isinstance(second_detail, dict)
    rows = [
        ("repos", str(args.repos), ""),
        (
            f"first sweep, median of {args.rounds}",
            f"{first_wall:.2f} s",
            f"{len(first_detail['repos_processed'])} assessed, "
            f"{first_detail['assessment_failures']} with findings",
        ),
        (
            "re-sweep, nothing changed",
            f"{second_wall:.2f} s",
            f"{len(second_detail['skipped_clean'])} skipped clean",
        ),
        ("peak memory (max RSS)", f"{peak / 1024:.0f} MB", ""),
        ("statehub --help (median of 10)", f"{help_time():.3f} s", ""),
        ("cores", str(os.cpu_count()), ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
