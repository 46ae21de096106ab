"""200 sweep triggers at once across the three entry points: one sweep at a time, all kept.

140 HTTP POSTs to one server (8 at a time, paced), 40 ``statehub sweep`` processes (8 at a
time) and 20 ``statehub schedule run-now`` daemon fires (4 at a time) run together against
one database. Every sweep that wins the lock fetches a repo whose remote hangs for 1 s
(its C-00 disabled by a per-repo override, so every sweep exits 0), so the others
genuinely arrive while it runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from faultkit import activity_runs, copy_fleet, integrity

from api_support import client, event_rows, serve_fleet
from clirun import statehub
from gitfleet import HangingServer, make_repo
from statehub.lock import is_locked
from statehub.settings import load_settings
from statehub.timefmt import parse_iso

HTTP, CLI, FIRES = 140, 40, 20
SWEEP = "/consistency/sweep/remote-all"
# A lock-skipped event is stamped just after its sweep was refused the lock; the sweep it
# met stamped finished_at just before it let the lock go (its event is written in between).
# Scheduling on a loaded 2-core host separates those moments by a few ms; allow this much.
STAMP_SLACK = timedelta(seconds=0.5)


def run_all(count: int, workers: int, trigger: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(trigger, range(count)))


@pytest.mark.long(30)
def test_two_hundred_concurrent_triggers_one_sweep_at_a_time(tmp_path: Path, fleet: Path) -> None:
    """200 mixed triggers: 200 events, 0 errors, no two sweeps overlap, all runs recorded."""
    copy_fleet(fleet, 20)
    with HangingServer() as hanging:
        make_repo(fleet, "zz-hang", origin_url=hanging.url)
        server = serve_fleet(
            tmp_path,
            fleet,
            sweep="fetch_timeout_seconds = 1",
            schedule='mode = "active"\nremote = true',
            extra='[repos.overrides."zz-hang"]\ndisable = ["C-00"]\n',
        )
        config = server.config
        database = load_settings(config).database_path
        with server:
            results: dict[str, list[Any]] = {}

            def post(n: int) -> tuple[int, dict[str, Any]]:
                time.sleep(0.1)  # paced: the posts spread over the whole burst
                with client(server.url, timeout=60) as http:
                    answer = http.post(SWEEP, json={"remote": True, "source": "burst-http"})
                return answer.status_code, answer.json()

            def sweep(n: int) -> tuple[int, str, str]:
                done = statehub(
                    "sweep", "--remote", "--json", "--source", "burst-cli", config=config
                )
                return done.returncode, done.stdout, done.stderr

            def fire(n: int) -> tuple[int, str, str]:
                done = statehub("schedule", "run-now", "--json", config=config)
                return done.returncode, done.stdout, done.stderr

            groups = {
                "http": (HTTP, 8, post),
                "cli": (CLI, 8, sweep),
                "fire": (FIRES, 4, fire),
            }
            threads = [
                threading.Thread(
                    target=lambda name=name, spec=spec: results.__setitem__(name, run_all(*spec))
                )
                for name, spec in groups.items()
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=240)
            elapsed = time.monotonic() - started
            assert not any(thread.is_alive() for thread in threads)

    # No trigger failed: HTTP 200, exit status 0.
    assert [status for status, _ in results["http"]] == [200] * HTTP
    assert [(code, err) for code, _, err in results["cli"]] == [(0, "")] * CLI
    assert [code for code, _, _ in results["fire"]] == [0] * FIRES

    # Every trigger is recorded, once: 200 events, and the ids the triggers were told.
    told = [event["id"] for _, event in results["http"]]
    told += [json.loads(out)["id"] for _, out, _ in results["cli"]]
    fired = [json.loads(out) for _, out, _ in results["fire"]]
    told += [run["context_snapshot"]["progress_event_id"] for run in fired]
    stored = event_rows(database)
    assert len(stored) == HTTP + CLI + FIRES == 200
    assert sorted(told) == [event["id"] for event in stored]
    sources = [event["detail"]["source"] for event in stored]
    assert (sources.count("burst-http"), sources.count("burst-cli")) == (HTTP, CLI)
    assert sources.count("local-daemon") == FIRES

    # The 20 fires are 20 activity runs, each holding the detail of its own event.
    runs = activity_runs(database)
    assert sorted(run["run_id"] for run in runs) == sorted(run["run_id"] for run in fired)
    by_id = {event["id"]: event for event in stored}
    for run in runs:
        event = by_id[run["context"]["progress_event_id"]]
        assert run["context"]["consistency_sweep_remote_all"] == event["detail"]
        assert run["outcome"] == ("lock_skipped" if event["detail"]["lock_skipped"] else "swept")

    # One sweep at a time: the intervals of the sweeps that ran never overlap.
    ran = sorted(
        (e for e in stored if not e["detail"]["lock_skipped"]),
        key=lambda e: e["detail"]["started_at"],
    )
    spans = [
        (parse_iso(e["detail"]["started_at"]), parse_iso(e["detail"]["finished_at"])) for e in ran
    ]
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    # Each sweep that ran fetched the hanging repo for its full second, and the refused ones
    # were refused while one of them ran: the triggers genuinely overlapped a sweep.
    assert all(e["detail"]["duration_seconds"] >= 1.0 for e in ran)
    skipped = [parse_iso(e["detail"]["started_at"]) for e in stored if e["detail"]["lock_skipped"]]
    assert len(ran) + len(skipped) == 200
    outside = [
        moment
        for moment in skipped
        if not any(start <= moment <= end + STAMP_SLACK for start, end in spans)
    ]
    assert outside == []
    assert integrity(database) == "ok"
    assert not is_locked(database)
    print(f"200 triggers in {elapsed:.1f} s: {len(ran)} sweeps ran, {len(skipped)} lock-skipped")
