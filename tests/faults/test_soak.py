"""A compressed week: every slot fired exactly once under API reads, none failing.

The short version (3 slots of 5 s, the daemon's test trigger) runs by default. The soak is
the same test for ``$STATEHUB_SOAK_MINUTES`` real minute slots, marked slow:
``STATEHUB_SOAK_MINUTES=10 ./dev test tests/faults -m slow``. The read rate and the memory
bound are targets, measured by ``bench/bench_soak.py``, not asserted here.
"""

from __future__ import annotations

import os
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from soak import SoakResult, parse, run_soak

SHORT_SLOTS = 3
SHORT_SECONDS = 5  # the short soak's slots, through the daemon's test trigger
# Read at import: the suite's autouse fixture clears STATEHUB_* before each test runs.
SOAK_MINUTES = int(os.environ.get("STATEHUB_SOAK_MINUTES") or 0)
READ_RATE = 20.0  # GET /progress/ a second, from one thread


def check(result: SoakResult, slots: int, period: timedelta) -> None:
    print(result.table())
    print(
        f"daemon VmRSS {result.daemon_rss[0]} -> {result.daemon_rss[1]} KiB, "
        f"api VmRSS {result.api_rss[0]} -> {result.api_rss[1]} KiB, "
        f"{result.reads.ok} reads in {result.seconds:.0f} s"
    )
    # One run per slot, none missing, none doubled, each a real sweep.
    assert [parse(run["scheduled_for"]) for run in result.runs] == result.slots
    assert len(result.slots) == slots
    assert all(b - a == period for a, b in pairwise(result.slots))
    assert [run["outcome"] for run in result.runs] == ["swept"] * slots
    for run in result.runs:
        event = result.sweeps[run["context"]["progress_event_id"]]
        assert event["detail"]["lock_skipped"] is False
        assert event["detail"]["exit_code"] == 0
    assert len(result.sweeps) == slots
    # Every read answered, the whole time (their rate is bench_soak.py's to measure).
    assert result.reads.ok > 0 and result.reads.failed == []
    assert (result.daemon_exit, result.api_exit) == (0, 0)


@pytest.mark.long(15)
def test_every_slot_fires_once_under_reads(tmp_path: Path) -> None:
    """3 slots of 5 s under 20 reads/s: 3 runs, one per slot, 0 failed reads."""
    result = run_soak(tmp_path, SHORT_SLOTS, read_rate=READ_RATE, fire_every=SHORT_SECONDS)
    check(result, SHORT_SLOTS, timedelta(seconds=SHORT_SECONDS))


@pytest.mark.slow
@pytest.mark.skipif(not SOAK_MINUTES, reason="set STATEHUB_SOAK_MINUTES to soak")
def test_soak_every_slot_fires_once_under_reads(tmp_path: Path) -> None:
    """$STATEHUB_SOAK_MINUTES minute slots under 20 reads/s: one run each, 0 failed reads."""
    result = run_soak(tmp_path, SOAK_MINUTES, read_rate=READ_RATE, say=print)
    check(result, SOAK_MINUTES, timedelta(minutes=1))
