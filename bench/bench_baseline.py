"""Baseline benchmark: what a large baseline costs a sweep before its workers begin.

    python bench/bench_baseline.py                      # 2,000 repos, 10 entries each
    python bench/bench_baseline.py --repos 10000 --entries 10

A sweep gives each repo's worker that repo's entries of the baseline file
(``Settings.checks_for_each``). The file is written as ``statehub accept`` writes it, read
back as a sweep reads it, and the per-repo settings of the whole fleet built; the figure is
the median of five rounds, the file's parse included (the sweep's process reads it once).
Target: well under a second for 10,000 repos, so that accepting a fleet's findings never
eats its sweep's budget.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from statehub import baseline
from statehub.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repos", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=10, help="entries per repo")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = [f"repo-{number:05d}" for number in range(args.repos)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "statehub-baseline.toml"
        baseline.write(
            path,
            (
                baseline.Entry(
                    repo=name,
                    check="C-23",
                    path=f"keys/k{entry}.pem",
                    line_hashes=frozenset({f"{entry:016x}"}),
                )
                for name in names
                for entry in range(args.entries)
            ),
        )
        settings = Settings.model_validate({"checks": {"baseline": str(path)}})
        times = []
        for _ in range(args.rounds):
            baseline._cache.clear()  # each round reads the file, as one sweep does
            started = time.perf_counter()
            each = settings.checks_for_each(names)
            times.append(time.perf_counter() - started)
        assert all(len(each[name].baseline) == args.entries for name in names)
        size = path.stat().st_size / 1e6
    print(f"repos                       {args.repos:>8}")
    print(f"baseline entries            {args.repos * args.entries:>8}  ({size:.1f} MB)")
    median = statistics.median(times)
    print(f"checks of every repo        {median:>8.3f} s  median of {args.rounds}")


if __name__ == "__main__":
    main()
