"""Workplan registry benchmark: what the registry adds to a sweep, and reading 20,000 plans.

    python bench/bench_workplans.py                       # 1,000 repos, 3 workplans each
    python bench/bench_workplans.py --against /tmp/base   # A/B against a checkout without it
    python bench/bench_workplans.py --repos 200 --rounds 3

Targets (issue 26): the registry adds at most 10% to a first sweep of the 1,000-repo fleet
(bench_sweep.py's), nothing measurable to an unchanged re-sweep, and ``statehub workplans
--json`` over 20,000 plans answers within 1 s (the whole command).

Measured: (1) the registry's own work, in process: what reading each repo's plans
(:func:`statehub.planread.read_plans`) adds to a worker's assessment of it, and the sweep's
reconciliation of the whole fleet into a fresh store (``Store.reconcile_workplans``), then
of an unchanged re-sweep (nothing read); (2) with ``--against DIR`` (a checkout of the code
before the registry, e.g. ``git archive main | tar -x -C DIR``), the first sweep and the
unchanged re-sweep of the same fleet by both, alternated, wall and CPU seconds of the whole
process tree; (3) ``statehub workplans --json`` over a store of 20,000 plans (1,000 repos of
20). On a busy machine, read the CPU seconds: wall time there is mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import build_fleet
from gitfleet import write_config
from statehub import planread
from statehub.assess import assess_target
from statehub.outcome import Target
from statehub.settings import load_settings
from statehub.store import Store
from statehub.timefmt import iso, utc_now


def cli(config: Path, *args: str, pythonpath: str | None = None) -> tuple[float, float]:
    """(wall, CPU seconds of the process and its workers) of one ``statehub`` run."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "statehub", *args, "--config", str(config)],
        capture_output=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"statehub {' '.join(args)} failed: {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def components(fleet: Path, work: Path) -> list[tuple[str, str]]:
    """The registry's own work on the fleet, in this process: what it adds to each worker's
    assessment of a repo, and to the sweep's writes."""
    repos = sorted(p for p in fleet.iterdir() if (p / ".git").exists())
    settings = load_settings(write_config(work, roots=[fleet]))
    spent = [0.0]
    real_read = planread.read_plans

    def timed(root: Path) -> list[dict[str, Any]]:
        started = time.process_time()
        try:
            return real_read(root)
        finally:
            spent[0] += time.process_time() - started

    planread.read_plans = timed  # type: ignore[assignment]  # measured where assess calls it
    read: dict[str, list[dict[str, Any]]] = {}
    started = time.process_time()
    for repo in repos:
        outcome = assess_target(
            Target(name=repo.name, path=repo),
            settings.checks_for(repo.name),
            remote=False,
            fetch_timeout=5.0,
        )
        read[repo.name] = outcome.workplans or []
    assessing = time.process_time() - started
    planread.read_plans = real_read
    plans = sum(len(items) for items in read.values())
    store = Store.open(work / f"components-{uuid.uuid4().hex}.db")
    with store:
        started = time.process_time()
        store.reconcile_workplans(read, [], run_id="bench", now=iso(utc_now()))
        first = time.process_time() - started
        started = time.process_time()
        for _ in range(20):
            store.registered_repos()
            store.reconcile_workplans({}, [], run_id="bench", now=iso(utc_now()))
        unchanged = (time.process_time() - started) / 20
    return [
        (
            f"workers: the plans of {len(repos)} repos ({plans}) of their assessment, CPU",
            f"{spent[0]:.3f} s of {assessing:.3f} s ({spent[0] / assessing:.1%})",
        ),
        ("sweep: reconcile them into a fresh registry, CPU", f"{first:.3f} s"),
        (
            "unchanged re-sweep: registered repos + an empty reconcile, CPU",
            f"{unchanged * 1000:.2f} ms",
        ),
    ]


def ab(fleet: Path, work: Path, against: Path, rounds: int) -> list[tuple[str, str]]:
    """First sweep and unchanged re-sweep by this code and by ``against``, alternated."""
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for n in range(rounds):
        for label, pythonpath in (("registry", None), ("before", str(against / "daemon"))):
            folder = work / f"ab-{label}-{n}"
            folder.mkdir()
            config = write_config(folder, roots=[fleet])
            first = cli(config, "sweep", "--all", "--json", pythonpath=pythonpath)
            again = cli(config, "sweep", "--all", "--json", pythonpath=pythonpath)
            runs.setdefault(label, {}).setdefault("first", []).append(first)
            runs[label].setdefault("again", []).append(again)
    rows: list[tuple[str, str]] = []
    for what, name in (("first", "first sweep"), ("again", "unchanged re-sweep")):
        values = {}
        for label in ("before", "registry"):
            wall = statistics.median(w for w, _ in runs[label][what])
            cpu = statistics.median(c for _, c in runs[label][what])
            values[label] = (wall, cpu)
            rows.append((f"{name}, {label}", f"{wall:.3f} s wall, {cpu:.3f} s CPU"))
        wall_ratio = values["registry"][0] / values["before"][0] - 1
        cpu_ratio = values["registry"][1] / values["before"][1] - 1
        rows.append((f"{name}: the registry adds", f"{wall_ratio:+.1%} wall, {cpu_ratio:+.1%} CPU"))
    return rows


def listing(work: Path, rounds: int) -> list[tuple[str, str]]:
    """``statehub workplans --json`` over 20,000 plans (1,000 repos of 20)."""
    folder = work / "listing"
    folder.mkdir()
    config = write_config(folder, roots=[folder / "none"])
    read = {
        f"repo-{r:04d}": [
            {
                "path": f"workplans/DEMO-WP-{p:04d}-plan.md",
                "id": f"DEMO-WP-{p:04d}",
                "title": f"Plan {p} of repo {r}",
                "status": ("active", "blocked", "finished", "draft")[p % 4],
                "fields": {"owner": "ana", "due": "2026-12-01"},
                "finding": None,
            }
            for p in range(20)
        ]
        for r in range(1000)
    }
    with Store.open(folder / "statehub.db") as store:
        store.reconcile_workplans(read, [], run_id="bench", now=iso(utc_now()))
    cli(config, "workplans", "--json")  # warm the page cache
    every = [cli(config, "workplans", "--json") for _ in range(rounds)]
    blocked = [cli(config, "workplans", "--status", "blocked", "--json") for _ in range(rounds)]
    return [
        (
            "statehub workplans --json, 20,000 plans (whole command)",
            f"{statistics.median(w for w, _ in every):.3f} s wall, "
            f"{statistics.median(c for _, c in every):.3f} s CPU",
        ),
        (
            "statehub workplans --status blocked --json (5,000 of them)",
            f"{statistics.median(w for w, _ in blocked):.3f} s wall, "
            f"{statistics.median(c for _, c in blocked):.3f} s CPU",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="a checkout of the code without the registry")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the fleet in this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-workplans-"))
    try:
        fleet = args.keep or work / "fleet"
        if not fleet.exists() or not any(fleet.iterdir()):
            fleet.mkdir(parents=True, exist_ok=True)
            build_fleet(fleet, args.repos)
        rows = components(fleet, work)
        if args.against is not None:
            rows += ab(fleet, work, args.against.resolve(), args.rounds)
        rows += listing(work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
