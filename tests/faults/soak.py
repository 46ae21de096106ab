"""A compressed week: the real daemon firing every minute under a steady load of API reads.

:func:`run_soak` starts ``statehub serve`` and ``statehub daemon`` (``trigger = "* * * *
*"``, active mode) over one database, reads ``GET /progress/`` at a bounded rate from a
thread the whole time, waits for ``slots`` fires and reports every recorded run, the reads,
and the resident memory (``VmRSS``) of both processes when idle after the first fire and
after the last. Used by ``tests/faults/test_soak.py`` and ``bench/bench_soak.py``.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from faultkit import IN_PROGRESS, activity_runs, copy_fleet, hub_state, rss_kib, worker_pids

from api_support import client, event_rows, serve_fleet
from daemon_support import DaemonProcess
from waiting import wait_for

_NEXT = re.compile(r"next: (?:(\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d)Z")


@dataclass(kw_only=True)
class Reads:
    """What the reader thread saw."""

    ok: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class SoakResult:
    slots: list[datetime]  # the slots expected, from the first announced on
    runs: list[dict[str, Any]]  # every activity run recorded, oldest first
    sweeps: dict[int, dict[str, Any]]  # the progress events of the runs, by id
    rss_after_fire: list[int]  # daemon VmRSS (KiB), idle after each fire
    daemon_rss: tuple[int, int]  # KiB, idle after the first fire and after the last
    api_rss: tuple[int, int]  # KiB, after the first minute of reads and at the end
    reads: Reads
    seconds: float
    daemon_exit: int
    api_exit: int | None

    def table(self) -> str:
        """One line per slot: scheduled, fired, latency, outcome, sweep, daemon RSS."""
        lines = [
            "slot                      fired_at                  late_s  outcome  sweep_s  rss_kib"
        ]
        for run, rss in zip(self.runs, self.rss_after_fire, strict=False):
            slot = parse(run["scheduled_for"])
            fired = parse(run["fired_at"])
            detail = run["context"].get("consistency_sweep_remote_all") or {}
            lines.append(
                f"{run['scheduled_for']}  {run['fired_at']}  {(fired - slot).total_seconds():6.3f}"
                f"  {run['outcome']:7s}  {detail.get('duration_seconds', 0.0):7.3f}  {rss:7d}"
            )
        return "\n".join(lines)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def first_slot(line: str, logged_at: datetime) -> datetime:
    """The next fire time the daemon announced in its 'scheduled ...' line."""
    match = _NEXT.search(line)
    if match is None:
        raise AssertionError(f"no next fire time in {line!r}")
    day = match.group(1) or logged_at.strftime("%Y-%m-%d")
    return datetime.fromisoformat(f"{day}T{match.group(2)}+00:00")


def _read_steadily(url: str, rate: float, stop: threading.Event, reads: Reads) -> None:
    interval = 1.0 / rate
    with client(url, timeout=10) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = http.get("/progress/", params={"limit": 50})
                if answer.status_code == 200:
                    reads.ok += 1
                else:
                    reads.failed.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as exc:
                reads.failed.append(repr(exc))
            stop.wait(max(0.0, interval - (time.monotonic() - started)))


def run_soak(
    folder: Path,
    slots: int,
    *,
    repos: int = 5,
    read_rate: float = 20.0,
    fire_every: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> SoakResult:
    """Run the daemon for ``slots`` minute slots under ``read_rate`` reads a second; with
    ``fire_every``, slots of that many seconds (the daemon's test trigger)."""
    fleet = folder / "fleet"
    fleet.mkdir()
    copy_fleet(fleet, repos)
    served = serve_fleet(folder, fleet, schedule='mode = "active"\ntrigger = "* * * * *"')
    config = served.config
    database = folder / "statehub.db"
    began = time.monotonic()
    stop = threading.Event()
    reads = Reads()
    server = served.start()
    daemon = DaemonProcess(config, fire_every=fire_every)
    period = timedelta(seconds=fire_every) if fire_every else timedelta(minutes=1)
    reader = threading.Thread(
        target=_read_steadily, args=(server.url, read_rate, stop, reads), daemon=True
    )
    rss_after_fire: list[int] = []
    try:
        assert server.process is not None
        reader.start()
        _, line = daemon.wait_line("scheduled 'State Hub Consistency Sweep'", 30)
        first = first_slot(line, datetime.now(UTC))
        expected = [first + n * period for n in range(slots)]
        say(
            f"daemon pid {daemon.pid}, api pid {server.process.pid}; "
            f"slots {expected[0]:%H:%M:%S} .. {expected[-1]:%H:%M:%S} UTC"
        )
        api_start = 0
        for count in range(1, slots + 1):
            deadline = (expected[count - 1] - datetime.now(UTC)).total_seconds() + 60

            def recorded(count: int = count) -> bool:
                return len(activity_runs(database)) >= count

            wait_for(
                recorded,
                max(deadline, 5.0),
                f"run {count} of {slots}",
                step=0.2,
            )
            wait_for(
                lambda: IN_PROGRESS not in hub_state(database) and not worker_pids(daemon.pid),
                30,
                "the daemon idle after its fire (no sweep, no worker)",
                step=0.1,
            )
            rss_after_fire.append(rss_kib(daemon.pid))
            if count == 1:
                api_start = rss_kib(server.process.pid)
            say(f"slot {count}/{slots}: daemon VmRSS {rss_after_fire[-1]} KiB, {reads.ok} reads")
        api_end = rss_kib(server.process.pid)
    finally:
        stop.set()
        reader.join(timeout=15)
        daemon.send(signal.SIGTERM)
        try:
            daemon_exit = daemon.wait(15)
        finally:
            daemon.close()
            api_exit = server.stop()
    runs = activity_runs(database)
    by_id = {event["id"]: event for event in event_rows(database)}
    return SoakResult(
        slots=expected,
        runs=runs,
        sweeps=by_id,
        rss_after_fire=rss_after_fire,
        daemon_rss=(rss_after_fire[0], rss_after_fire[-1]),
        api_rss=(api_start, api_end),
        reads=reads,
        seconds=time.monotonic() - began,
        daemon_exit=daemon_exit,
        api_exit=api_exit,
    )


def rss_bound(start_kib: int) -> int:
    """The end RSS allowed for a start RSS: 20 % more, plus 4 MiB."""
    return int(start_kib * 1.2) + 4096
