"""A compressed week: every minute slot fired exactly once under API reads, memory flat.

The short version (2 slots, 1 to 2 minutes) runs in CI. The soak is the same test for
``$STATEHUB_SOAK_MINUTES`` slots, marked slow:
``STATEHUB_SOAK_MINUTES=10 ./dev test tests/faults -m slow`` (``bench/bench_soak.py``
runs it outside pytest and prints the per-slot table).
"""

from __future__ import annotations

import os
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from soak import SoakResult, parse, rss_bound, run_soak

SHORT_SLOTS = 2
# Read at import: the suite's autouse fixture clears STATEHUB_* before each test runs.
SOAK_MINUTES = int(os.environ.get("STATEHUB_SOAK_MINUTES") or 0)
READ_RATE = 20.0  # GET /progress/ a second, from one thread


def check(result: SoakResult, slots: int) -> None:
    print(result.table())
    print(
        f"daemon VmRSS {result.daemon_rss[0]} -> {result.daemon_rss[1]} KiB, "
        f"api VmRSS {result.api_rss[0]} -> {result.api_rss[1]} KiB, "
        f"{result.reads.ok} reads in {result.seconds:.0f} s"
    )
    # One run per minute slot, none missing, none doubled, each a real sweep.
    assert [parse(run["scheduled_for"]) for run in result.runs] == result.slots
    assert len(result.slots) == slots
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(result.slots))
    assert [run["outcome"] for run in result.runs] == ["swept"] * slots
    for run in result.runs:
        event = result.sweeps[run["context"]["progress_event_id"]]
        assert event["detail"]["lock_skipped"] is False
        assert event["detail"]["exit_code"] == 0
    assert len(result.sweeps) == slots
    # Every read answered, at the bounded rate, the whole time.
    assert result.reads.failed == []
    assert result.reads.ok >= READ_RATE * 0.5 * (result.seconds - 30)
    # Idle memory does not grow: at most 20 % + 4 MiB over the first idle reading.
    assert result.daemon_rss[1] <= rss_bound(result.daemon_rss[0])
    assert result.api_rss[1] <= rss_bound(result.api_rss[0])
    assert (result.daemon_exit, result.api_exit) == (0, 0)


def test_every_slot_fires_once_under_reads(tmp_path: Path) -> None:
    """2 minute slots under 20 reads/s: 2 runs, 0 failed reads, idle RSS within bound."""
    check(run_soak(tmp_path, SHORT_SLOTS, read_rate=READ_RATE), SHORT_SLOTS)


@pytest.mark.slow
@pytest.mark.skipif(not SOAK_MINUTES, reason="set STATEHUB_SOAK_MINUTES to soak")
def test_soak_every_slot_fires_once_under_reads(tmp_path: Path) -> None:
    """$STATEHUB_SOAK_MINUTES slots under 20 reads/s: one run each, RSS within bound."""
    check(run_soak(tmp_path, SOAK_MINUTES, read_rate=READ_RATE, say=print), SOAK_MINUTES)
