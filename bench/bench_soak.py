"""Soak benchmark: the real daemon firing every minute for N minutes under API reads.

    python bench/bench_soak.py                  # 10 minute slots, 20 reads/s, 5 repos
    python bench/bench_soak.py --minutes 60 --read-rate 50 --repos 50

``statehub serve`` and ``statehub daemon`` (``trigger = "* * * * *"``, active mode) share
one database; a thread reads ``GET /progress/`` at ``--read-rate`` the whole time. Prints
one line per slot (scheduled, fired, latency, outcome, sweep time, the daemon's VmRSS when
idle after the fire), then VmRSS of both processes at start (idle after the first fire)
and end, and the reads. Targets: every slot fired exactly once; every read answered, at
least half of ``--read-rate`` kept up the whole time (the first 30 s aside); end RSS at most
20 % + 4 MiB over start. ``tests/faults/test_soak.py`` checks the slots and the reads, not
the rate nor the memory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))

from soak import parse, rss_bound, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="minute slots to observe")
    parser.add_argument("--read-rate", type=float, default=20.0, help="GET /progress/ a second")
    parser.add_argument("--repos", type=int, default=5, help="repos in the fleet")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="statehub-soak-"))
    try:
        result = run_soak(
            folder, args.minutes, repos=args.repos, read_rate=args.read_rate, say=print
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(result.table())
    fired = [parse(run["scheduled_for"]) for run in result.runs]
    missing = [slot for slot in result.slots if slot not in fired]
    doubled = sorted({slot for slot in fired if fired.count(slot) > 1})
    daemon_start, daemon_end = result.daemon_rss
    api_start, api_end = result.api_rss
    print(
        f"slots expected {len(result.slots)}, runs {len(result.runs)}, "
        f"missing {len(missing)}, doubled {len(doubled)}"
    )
    print(
        f"daemon VmRSS start {daemon_start} KiB, end {daemon_end} KiB "
        f"(bound {rss_bound(daemon_start)})"
    )
    print(f"api VmRSS start {api_start} KiB, end {api_end} KiB (bound {rss_bound(api_start)})")
    print(
        f"reads ok {result.reads.ok}, failed {len(result.reads.failed)} in {result.seconds:.0f} s"
    )
    rate_floor = args.read_rate * 0.5 * (result.seconds - 30)
    print(f"reads needed at least {rate_floor:.0f} (half of --read-rate after the first 30 s)")
    good = (
        result.reads.ok >= rate_floor
        and not missing
        and not doubled
        and len(result.runs) == len(result.slots)
        and daemon_end <= rss_bound(daemon_start)
        and api_end <= rss_bound(api_start)
        and not result.reads.failed
    )
    print("ok" if good else "FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
