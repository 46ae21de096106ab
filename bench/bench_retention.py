"""Retention benchmark: a year of sweeps of a 1,000-repo fleet, pruned day by day.

    python bench/bench_retention.py                 # 365 days, 1,000 repos, retention 90 days
    python bench/bench_retention.py --days 120      # shorter
    python bench/bench_retention.py --keep DIR      # leave the database in DIR

What is written, per simulated day (96 slots of 15 minutes):

- 96 progress events. The fleet is 1,000 repos whose names average 14 characters, about
  13 % of them with standing findings (1-4 each). A sweep re-reads 8 changed repos (each
  then has findings with probability 0.13, so the share stays put) and reuses the rest;
  as contract section 4 says, ``repos_processed`` lists every repo with findings (~130
  entries, ``"reassessed"`` true or false) and ``skipped_clean`` every other repo (~870
  names); 2 repos in ``skipped_missing``; 1 % carry an automation error. Detail: ~40 KB.
- 96 activity runs of the daemon in standby mode: 95 % ``primary_healthy`` with a small
  context snapshot (the primary's last sweep: source, time, run id), 5 % a fallback sweep
  whose snapshot holds the whole sweep detail (~18 KB), as the contract's section 8 says.
  In those slots the event comes from ``local-fallback`` instead of ``activity-core``.

After each day ``prune(store, 90, now=end of day)`` runs (batches of 500 ids), as
``maybe_prune`` after a sweep would. At days 90, 180, 270 and 365 the WAL is checkpointed
(TRUNCATE) and the file measured: it should stay flat once the window is full, because
SQLite reuses the pages freed by pruning. At the end a ``VACUUM`` shows what the free pages
are worth; it is an operator's step, never run by statehub.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from statehub.retention import prune
from statehub.store import ActivityRun, Store
from statehub.timefmt import iso

SLOTS_PER_DAY = 96
SLOT = timedelta(minutes=15)
START = datetime(2025, 1, 1, tzinfo=UTC)
DEFINITION = "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"
TEAMS = ["payments", "search", "infra", "identity", "billing", "mobile", "data", "platform"]
PARTS = ["api", "worker", "web", "lib", "cli", "jobs", "proxy", "schema", "docs", "sdk"]
CHECKS = [
    ("C-02", "AGENTS.md is missing at the root", None),
    ("C-09", "status 'done' is not one of draft, active, blocked, finished, abandoned", "wp"),
    ("C-14", "tracked files are modified or staged (3 paths)", None),
    ("C-15", "untracked files that are not ignored (2 paths)", None),
    ("C-19", "branch main is 2 commit(s) ahead of origin/main", None),
]


def fleet(size: int) -> list[str]:
    names = [f"{TEAMS[n % 8]}-{PARTS[(n // 8) % 10]}-{n // 80}" for n in range(size)]
    return sorted(names)


class Simulation:
    """Writes the sweeps and runs of one day and measures the file."""

    def __init__(self, store: Store, repos: list[str], seed: int = 6) -> None:
        self.store = store
        self.repos = repos
        self.rng = random.Random(seed)

    def findings(self, repo: str) -> list[dict[str, Any]]:
        return [
            {
                "check": check,
                "message": message,
                "path": f"workplans/{repo.upper()}-WP-0001.md" if path else None,
            }
            for check, message, path in self.rng.sample(CHECKS, self.rng.randint(1, 4))
        ]

    def detail(self, source: str, started: datetime) -> dict[str, Any]:
        rng = self.rng
        if not hasattr(self, "standing"):  # repo -> (head, findings) of its last assessment
            self.standing = {
                repo: (f"{rng.getrandbits(28):07x}", self.findings(repo))
                for repo in rng.sample(self.repos, len(self.repos) * 13 // 100)
            }
        assessed = rng.sample(self.repos, 8)
        missing = rng.sample(self.repos, 2)
        error = rng.random() < 0.01
        duration = round(rng.uniform(20.0, 90.0), 3)
        for repo in assessed:
            if rng.random() < 0.13:
                self.standing[repo] = (f"{rng.getrandbits(28):07x}", self.findings(repo))
            else:
                self.standing.pop(repo, None)
        processed = [
            {"repo": repo, "head": head, "reassessed": repo in assessed, "findings": found}
            for repo, (head, found) in sorted(self.standing.items())
            if repo not in missing
        ]
        with_findings = {entry["repo"] for entry in processed}
        return {
            "source": source,
            "run_id": f"{rng.getrandbits(128):032x}",
            "lock_skipped": False,
            "started_at": iso(started),
            "finished_at": iso(started + timedelta(seconds=duration)),
            "duration_seconds": duration,
            "max_seconds": 300,
            "remote": True,
            "repos_total": len(self.repos),
            "repos_processed": processed,
            "repos_reassessed": len(assessed),
            "skipped_clean": [
                repo for repo in self.repos if repo not in with_findings and repo not in missing
            ],
            "skipped_missing": missing,
            "skipped_budget": [],
            "exit_code": 1 if error else 0,
            "automation_error": error,
            "automation_errors": [
                {"repo": assessed[0], "check": "C-00", "message": "git fetch timed out after 20 s"}
            ]
            if error
            else [],
            "assessment_failures": len(self.standing),
        }

    def day(self, first_slot: datetime) -> None:
        last_primary: dict[str, Any] = {}
        for index in range(SLOTS_PER_DAY):
            slot = first_slot + index * SLOT
            fallback = self.rng.random() < 0.05
            begin = slot + timedelta(seconds=self.rng.uniform(0.5, 30))
            source = "local-fallback" if fallback else "activity-core"
            record = self.detail(source, begin)
            finished = begin + timedelta(seconds=record["duration_seconds"])
            event = self.store.append_event(
                "consistency_sweep_remote_all", record, created_at=finished
            )
            if fallback:  # as the daemon records it: the event's id and its detail
                outcome = "swept"
                snapshot = {"progress_event_id": event.id, "consistency_sweep_remote_all": record}
            else:
                last_primary = {
                    "source": source,
                    "created_at": iso(finished),
                    "run_id": record["run_id"],
                }
                outcome, snapshot = "primary_healthy", {"primary_sweep": last_primary}
            fired = slot + timedelta(seconds=0.2)
            self.store.record_run(
                ActivityRun(
                    run_id=f"{self.rng.getrandbits(128):032x}",
                    definition_id=DEFINITION,
                    fired_at=iso(fired),
                    scheduled_for=iso(slot),
                    outcome=outcome,
                    context_snapshot=snapshot,
                )
            )


def pragma(store: Store, name: str) -> int:
    return int(store.call(lambda connection: connection.execute(f"PRAGMA {name}").fetchone()[0]))


def measure(store: Store) -> dict[str, int]:
    """Checkpoint the WAL (reporting its size first), then the file and its free pages."""
    wal = store.path.with_name(store.path.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    store.call(lambda connection: connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    return {
        "file": store.path.stat().st_size,
        "wal_before_checkpoint": wal_bytes,
        "pages": pragma(store, "page_count"),
        "free_pages": pragma(store, "freelist_count"),
        "events": store.count_events(),
        "runs": int(
            store.call(
                lambda connection: connection.execute(
                    "SELECT count(*) FROM activity_runs"
                ).fetchone()[0]
            )
        ),
    }


def mib(size: int) -> str:
    return f"{size / 1_048_576:8.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--retention-days", type=int, default=90)
    parser.add_argument("--keep", type=Path, help="leave the database in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-retention-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "hub.db"
    for stale in folder.glob("hub.db*"):
        stale.unlink()
    checkpoints = sorted({d for d in (90, 180, 270, 365, args.days) if d <= args.days})
    rows: list[tuple[str, dict[str, int]]] = []
    began = time.perf_counter()
    prune_seconds: list[float] = []
    deleted = {"events": 0, "runs": 0}
    try:
        with Store.open(database) as store:
            sim = Simulation(store, fleet(args.repos))
            sample = json.dumps(sim.detail("activity-core", START), separators=(",", ":"))
            for day in range(1, args.days + 1):
                sim.day(START + (day - 1) * timedelta(days=1))
                clock = time.perf_counter()
                result = prune(
                    store, args.retention_days, now=START + day * timedelta(days=1), batch=500
                )
                prune_seconds.append(time.perf_counter() - clock)
                deleted["events"] += result.events_deleted
                deleted["runs"] += result.runs_deleted
                if day in checkpoints:
                    rows.append((f"day {day}", measure(store)))
            before = measure(store)
            clock = time.perf_counter()
            store.call(lambda connection: connection.execute("VACUUM"))
            vacuum_seconds = time.perf_counter() - clock
            rows.append((f"day {args.days}, before VACUUM", before))
            rows.append((f"day {args.days}, after VACUUM", measure(store)))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    total = time.perf_counter() - began
    print(
        f"{args.days} days x {SLOTS_PER_DAY} sweeps of {args.repos} repos, retention "
        f"{args.retention_days} days; event detail {len(sample) / 1024:.1f} KB; "
        f"simulated in {total:.0f} s"
    )
    print(
        f"pruned {deleted['events']} events and {deleted['runs']} runs; prune per day: "
        f"median {sorted(prune_seconds)[len(prune_seconds) // 2] * 1000:.0f} ms, "
        f"max {max(prune_seconds) * 1000:.0f} ms; VACUUM {vacuum_seconds:.1f} s"
    )
    header = (
        f"{'when':<24} {'file':>12} {'free pages':>11} {'WAL seen':>12} {'events':>7} {'runs':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, row in rows:
        print(
            f"{label:<24} {mib(row['file'])} {row['free_pages']:>11} "
            f"{mib(row['wal_before_checkpoint'])} {row['events']:>7} {row['runs']:>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
