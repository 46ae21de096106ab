"""compare benchmark: a year of 15-minute sweeps, then ``compare --since-hours 720``.

    python bench/bench_compare.py              # build a store in a temporary folder
    python bench/bench_compare.py --keep DIR   # build (or reuse) the store in DIR

The store holds one event per 15-minute slot for 365 days (35,040 events) ending now, with
realistic details of about 4 KB: a fleet of 40 repos, 3-6 of them assessed each sweep with a
few findings each, the rest listed as skipped_clean; sources mixed (activity-core most of the
time, local-daemon in stretches when the primary is away), 2 % lock-skipped (so their slots
are missed), 1 % with an automation error. Each event is written through
``Store.append_event`` as a sweep writes it.

Target (issue 6): ``compare --since-hours 720`` answers in <= 1 s. Timed twice, median of 5
runs each: the function in-process (``compare()``, what the CLI runs after parsing), and the
real CLI as a subprocess (``statehub compare --since-hours 720 --json``: interpreter start,
imports, configuration, query, JSON).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from statehub.compare import compare
from statehub.settings import load_settings
from statehub.store import Store
from statehub.timefmt import iso, utc_now

SLOT = timedelta(minutes=15)
EVENTS = 365 * 96
RUNS = 5
FLEET = [f"{word}-{n:02d}" for n, word in enumerate(["svc", "lib", "infra", "docs", "tool"] * 8)]
CHECKS = [
    ("C-02", "AGENTS.md is missing at the root", None),
    ("C-09", "status 'done' is not one of draft, active, blocked, finished, abandoned", "wp"),
    ("C-11", "workplans/README.md does not link this workplan", "wp"),
    ("C-14", "tracked files are modified or staged (3 paths)", None),
    ("C-15", "untracked files that are not ignored (2 paths)", None),
    ("C-19", "branch main is 2 commit(s) ahead of origin/main", None),
    ("C-21", "conflict marker line at line 41", "src/service/handlers.py"),
]


def detail(rng: random.Random, source: str, started: datetime) -> dict[str, Any]:
    """A sweep detail of about 4 KB, as run_sweep writes it."""
    lock_skipped = rng.random() < 0.02
    error = not lock_skipped and rng.random() < 0.01
    duration = 0.0 if lock_skipped else round(rng.uniform(2.0, 12.0), 3)
    assessed = [] if lock_skipped else rng.sample(FLEET, rng.randint(3, 6))
    processed = []
    for repo in assessed:
        findings = []
        for check, message, path in rng.sample(CHECKS, rng.randint(2, 5)):
            where = (
                f"workplans/{repo.upper()}-WP-{rng.randint(1, 80):04d}.md" if path == "wp" else path
            )
            findings.append({"check": check, "message": message, "path": where})
        processed.append({"repo": repo, "head": f"{rng.getrandbits(28):07x}", "findings": findings})
    errors = (
        [{"repo": assessed[0], "check": "C-00", "message": "git fetch timed out after 20 s"}]
        if error
        else []
    )
    return {
        "source": source,
        "run_id": f"{rng.getrandbits(128):032x}",
        "lock_skipped": lock_skipped,
        "started_at": iso(started),
        "finished_at": iso(started + timedelta(seconds=duration)),
        "duration_seconds": duration,
        "max_seconds": 300,
        "remote": True,
        "repos_total": len(FLEET),
        "repos_processed": processed,
        "skipped_clean": [repo for repo in FLEET if repo not in assessed],
        "skipped_missing": [],
        "skipped_budget": [],
        "exit_code": 1 if error else 0,
        "automation_error": error,
        "automation_errors": errors,
        "assessment_failures": rng.randint(10, 25),
    }


def build(folder: Path, end: datetime) -> tuple[Path, float, int]:
    """Write the config and a year of events ending at ``end``; returns config, seconds, bytes."""
    config = folder / "statehub.toml"
    config.write_text('[hub]\ndatabase = "hub.db"\n', encoding="utf-8")
    database = folder / "hub.db"
    if database.exists():
        return config, 0.0, database.stat().st_size
    rng = random.Random(6)
    started = time.perf_counter()
    first = end - EVENTS * SLOT
    primary_away = 0  # slots left in a stretch where local-daemon sweeps instead
    with Store.open(database) as store:
        for index in range(EVENTS):
            slot = first + index * SLOT
            if primary_away == 0 and rng.random() < 0.002:
                primary_away = rng.randint(4, 200)
            source = "local-daemon" if primary_away else "activity-core"
            primary_away = max(0, primary_away - 1)
            begin = slot + timedelta(seconds=rng.uniform(0.5, 40))
            record = detail(rng, source, begin)
            store.append_event(
                "consistency_sweep_remote_all",
                record,
                created_at=begin + timedelta(seconds=record["duration_seconds"]),
            )
    return config, time.perf_counter() - started, database.stat().st_size


def median_seconds(run: Any) -> tuple[float, float, float]:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times), min(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-compare-"))
    folder.mkdir(parents=True, exist_ok=True)
    end = utc_now()
    try:
        config, build_seconds, size = build(folder, end)
        settings = load_settings(config)
        with Store.open(settings.database_path) as store:
            count = store.count_events()
        report = compare(settings, since_hours=720)
        in_process = median_seconds(lambda: compare(settings, since_hours=720))
        command = [sys.executable, "-m", "statehub", "--config", str(config)]
        cli = median_seconds(
            lambda: subprocess.run(
                [*command, "compare", "--since-hours", "720", "--json"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        )
        startup = median_seconds(
            lambda: subprocess.run([*command, "--version"], check=True, stdout=subprocess.DEVNULL)
        )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    slots = report.slots
    print(f"store: {count} events, {size / 1_048_576:.0f} MiB", end="")
    print(f" (built in {build_seconds:.0f} s)" if build_seconds else " (reused)")
    print(
        f"window 720 h: {sum(s.sweeps + s.lock_skipped for s in report.sources.values())} events, "
        f"{slots.expected} slots, {slots.covered} covered, {len(slots.missed)} missed, "
        f"{len(slots.doubled)} doubled"
    )
    print(f"{'compare --since-hours 720':<44} {'median':>8} {'min':>8} {'max':>8}")
    for label, (median, low, high) in (
        ("in-process compare()", in_process),
        ("CLI subprocess (statehub compare --json)", cli),
        ("for scale: statehub --version", startup),
    ):
        print(f"{label:<44} {median:>7.3f}s {low:>7.3f}s {high:>7.3f}s")
    verdict = "met" if cli[0] <= 1.0 and in_process[0] <= 1.0 else "MISSED"
    print(f"target <= 1 s: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
