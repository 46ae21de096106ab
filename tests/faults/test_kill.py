"""kill -9 in the middle of a sweep, of each entry point, loses nothing and is recorded.

Two tests. One kills the CLI (8 times), the API server (mid POST, 6 times) and the daemon
(mid fire, 6 times) at seeded random points of their sweeps: 20 kills, one entry point a
case, so that the three run side by side on the suite's processes. The other kills a sweep
just before and just after each commit it makes, so every write boundary is hit exactly
once.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultkit import (
    FIRE_MARKER,
    IN_PROGRESS,
    activity_runs,
    child_commands,
    copy_fleet,
    hub_state,
    integrity,
    kill9,
    popen_launch,
    touch_indexes,
)

from api_support import ApiServer, client, event_rows
from clirun import start_statehub, statehub
from gitfleet import HangingServer, make_repo, write_config
from statehub.lock import is_locked
from statehub.settings import load_settings
from statehub.sweep import run_sweep
from waiting import wait_for

SEED = 20261127
KILLS = {"cli": 8, "api": 6, "daemon": 6}
COPIES = 250  # small repos: about 0.8 s to assess them all on 2 cores
# Last by name: a --remote sweep ends on four 1 s fetches, two at a time on its 2 workers.
HANGING = ("zz-hang-1", "zz-hang-2", "zz-hang-3", "zz-hang-4")
# Kill within this many seconds after the sweep's marker is committed: well inside the
# sweep, which reads the copies (~0.1 s unchanged, ~0.5 s re-read) then fetches for 2 s.
WINDOW = 1.6
SWEEP = "/consistency/sweep/remote-all"
INTERRUPTED = {
    "repo": None,
    "check": "C-00",
    "message": "the sweep was interrupted before it finished "
    "(its process died or its database failed)",
}
LOCAL_FIRE = {"STATEHUB_SCHEDULE__REMOTE": "false"}  # the next fire does not wait on fetches


@dataclass(frozen=True, kw_only=True)
class Scene:
    config: Path
    database: Path
    copies: list[Path]
    logs: Path


@pytest.fixture
def scene(tmp_path: Path, fleet: Path) -> Iterator[Scene]:
    """250 good repos and two whose fetch hangs; one sweep done; the daemon fetches too."""
    copies = copy_fleet(fleet, COPIES)
    with HangingServer() as hanging:
        for name in HANGING:
            make_repo(fleet, name, origin_url=hanging.url)
        config = write_config(
            tmp_path,
            roots=[fleet],
            sweep="fetch_timeout_seconds = 1\nmax_seconds = 120\nworkers = 2",
            schedule='mode = "active"\nremote = true',
            api="port = 0",
        )
        logs = tmp_path / "logs"
        logs.mkdir()
        first = statehub("sweep", "--json", config=config)
        assert first.returncode == 0, first.stderr
        yield Scene(
            config=config,
            database=load_settings(config).database_path,
            copies=copies,
            logs=logs,
        )


class Victim:
    """One process whose sweep is killed: the CLI, the API server or the daemon."""

    def __init__(self, scene: Scene, entry: str, n: int) -> None:
        self.entry = entry
        self.server: ApiServer | None = None
        self.poster: threading.Thread | None = None
        log = scene.logs / f"{n:02d}-{entry}.log"
        if entry == "cli":
            self.process = start_statehub(
                "sweep", "--remote", "--json", "--source", "kill-cli", config=scene.config, log=log
            )
        elif entry == "api":
            self.server = ApiServer(scene.config, log=log).start()
            assert self.server.process is not None
            self.process = self.server.process
            self.poster = threading.Thread(target=self._post, args=(self.server.url,))
            self.poster.start()
        else:
            self.process = popen_launch(
                "daemon", "--fire-after", "0.2", "--config", str(scene.config), log=log
            )

    @staticmethod
    def _post(url: str) -> None:
        # The server is killed under this request: the connection drops.
        with suppress(httpx.HTTPError), client(url, timeout=60) as http:
            http.post(SWEEP, json={"remote": True, "source": "kill-api"})

    def kill(self) -> None:
        assert self.process.poll() is None, f"the {self.entry} ended before the kill"
        kill9(self.process)
        if self.poster is not None:
            self.poster.join(timeout=30)
            assert not self.poster.is_alive()


def started_marker(database: Path) -> dict[str, Any]:
    """The running sweep's marker, once committed."""
    value = wait_for(lambda: hub_state(database).get(IN_PROGRESS), 30, "the sweep's marker")
    marker: dict[str, Any] = json.loads(value)
    return marker


@pytest.mark.long(30)
@pytest.mark.parametrize("kind", list(KILLS))
def test_seeded_random_kills_lose_nothing(scene: Scene, kind: str) -> None:
    """Seeded kill -9s mid-sweep of one entry point (KILLS: 8 CLI, 6 API, 6 daemon, 20 in
    all): nothing lost, every killed sweep recorded as interrupted by the next."""
    rng = random.Random(f"{SEED}-{kind}")
    order = [kind] * KILLS[kind]
    database = scene.database
    started = time.monotonic()
    report = []
    for n, entry in enumerate(order):
        reread = rng.random() < 0.5
        if reread:  # the sweep assesses every repo again, not only fetches
            touch_indexes(scene.copies)
        delay = rng.uniform(0.0, WINDOW)
        before, runs_before = event_rows(database), activity_runs(database)

        victim = Victim(scene, entry, n)
        marker = started_marker(database)
        fires = {k: v for k, v in hub_state(database).items() if k.startswith(FIRE_MARKER)}
        time.sleep(delay)
        phase = "fetching" if "git" in child_commands(victim.process.pid) else "reading"
        victim.kill()

        # Right after the kill: the file is sound, every committed event is intact and
        # the killed sweep wrote none; the lock is free.
        assert integrity(database) == "ok"
        assert event_rows(database) == before
        assert not is_locked(database)
        assert json.loads(hub_state(database)[IN_PROGRESS]) == marker

        # The next sweep runs, completes, and records the killed one as interrupted.
        if entry == "daemon":
            answer = statehub("schedule", "run-now", "--json", config=scene.config, env=LOCAL_FIRE)
            assert answer.returncode == 0, answer.stderr
            event_id = json.loads(answer.stdout)["context_snapshot"]["progress_event_id"]
        else:
            answer = statehub("sweep", "--json", "--source", f"next-{n}", config=scene.config)
            assert answer.returncode == 0, answer.stderr
            event_id = json.loads(answer.stdout)["id"]
        after = event_rows(database)
        assert after[: len(before)] == before
        interrupted, recovered = after[len(before) :]
        assert interrupted["event_type"] == marker["event_type"] == "consistency_sweep_remote_all"
        assert interrupted["detail"]["interrupted"] is True
        assert interrupted["detail"]["run_id"] == marker["run_id"]
        assert interrupted["detail"]["started_at"] == marker["started_at"]
        assert interrupted["detail"]["source"] == marker["source"]
        assert (
            interrupted["detail"]["source"]
            == {
                "cli": "kill-cli",
                "api": "kill-api",
                "daemon": "local-daemon",
            }[entry]
        )
        assert (interrupted["detail"]["exit_code"], interrupted["detail"]["repos_processed"]) == (
            1,
            [],
        )
        assert interrupted["detail"]["automation_errors"] == [INTERRUPTED]
        assert recovered["id"] == event_id
        assert recovered["detail"]["lock_skipped"] is False
        assert recovered["detail"]["exit_code"] == 0
        assert recovered["detail"]["repos_total"] == COPIES + len(HANGING)
        assert IN_PROGRESS not in hub_state(database)
        assert not is_locked(database)

        new_runs = activity_runs(database)[len(runs_before) :]
        if entry == "daemon":
            [(fire_key, fire_value)] = fires.items()
            fire = json.loads(fire_value)
            dead, now_run = new_runs
            assert (dead["run_id"], dead["outcome"]) == (fire["run_id"], "error")
            assert fire_key == FIRE_MARKER + fire["run_id"]
            assert dead["context"]["interrupted"] is True
            assert dead["scheduled_for"] == fire["scheduled_for"]
            assert now_run["outcome"] == "swept"
            assert now_run["context"]["progress_event_id"] == event_id
            assert not any(k.startswith(FIRE_MARKER) for k in hub_state(database))
        else:
            assert new_runs == []
        report.append(f"{n:2d} {entry:6s} +{delay:.2f}s reread={reread!s:5s} {phase}")
    elapsed = time.monotonic() - started
    print(f"{len(order)} kills in {elapsed:.1f} s:\n" + "\n".join(report))
    assert len(report) == KILLS[kind]
    interrupted = [event for event in event_rows(database) if event["detail"].get("interrupted")]
    assert len(interrupted) == len(order)


# -- a kill at every write boundary ---------------------------------------------------------


def plant_stale_marker(database: Path) -> dict[str, Any]:
    """The marker a sweep killed earlier left behind (its process is long gone)."""
    marker = {
        "run_id": "stale0000",
        "event_type": "consistency_sweep_remote_all",
        "source": "earlier",
        "started_at": "2026-01-01T00:00:00.000Z",
        "max_seconds": 300,
        "remote": False,
    }
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "INSERT INTO hub_state (key, value) VALUES (?, ?)", (IN_PROGRESS, json.dumps(marker))
        )
    return marker


def restore(database: Path, baseline: Path) -> None:
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    database.write_bytes(baseline.read_bytes())


@pytest.mark.long(20)
def test_kill_before_and_after_every_commit_loses_nothing(tmp_path: Path, fleet: Path) -> None:
    """A kill -9 just before or after each commit of a sweep leaves each run recorded once."""
    changed = make_repo(fleet, "changed")
    make_repo(fleet, "clean")
    gone = make_repo(fleet, "gone")
    config = write_config(tmp_path, roots=[fleet])
    settings = load_settings(config)
    database = settings.database_path
    run_sweep(settings)  # also the day's prune: not due again in the runs below
    touch_indexes([changed])  # assessed again: save_assessments
    shutil.rmtree(gone)  # forgotten: forget_repos; 'clean' is clean-skipped: mark_assessed
    plant_stale_marker(database)
    baseline = tmp_path / "baseline.db"
    baseline.write_bytes(database.read_bytes())
    history = event_rows(database)
    log = tmp_path / "kill.log"

    counting = popen_launch(
        "kill-at-commit", "after", "0", "sweep", "--config", str(config), log=log
    )
    assert counting.wait(timeout=60) == 0
    commits = int(log.read_text().rsplit("commits=", 1)[1].split()[0])
    restore(database, baseline)

    outcomes = []
    for when in ("before", "after"):
        for target in range(1, commits + 1):
            process = popen_launch(
                "kill-at-commit", when, str(target), "sweep", "--config", str(config), log=log
            )
            assert process.wait(timeout=60) == -9
            assert integrity(database) == "ok"
            left = event_rows(database)
            assert left[: len(history)] == history
            killed_marker = hub_state(database).get(IN_PROGRESS)
            written = [event["detail"]["run_id"] for event in left[len(history) :]]

            recovery = run_sweep(settings)
            assert recovery.detail["lock_skipped"] is False
            final = event_rows(database)
            assert final[: len(left)] == left
            run_ids = [event["detail"]["run_id"] for event in final[len(history) :]]
            # Every run is recorded exactly once: the stale one, the killed one if it
            # started (its marker or its event was committed), and the recovery.
            killed = {json.loads(killed_marker)["run_id"]} if killed_marker else set()
            killed |= set(written)
            expected = {"stale0000", recovery.detail["run_id"]} | killed
            assert sorted(run_ids) == sorted(expected), (when, target, run_ids)
            assert IN_PROGRESS not in hub_state(database)
            added = final[len(history) :]
            flagged = sum(1 for event in added if event["detail"].get("interrupted"))
            outcomes.append((when, target, len(written), len(added), flagged))
            restore(database, baseline)
    print("(kill, commit, events it left, events after the next sweep, interrupted):")
    print("\n".join(map(str, outcomes)))
    # The seven commits of this sweep: 1 the earlier run's interrupted event (its marker
    # cleared with it), 2 its own marker, 3 the workplan registry, 4 save_assessments,
    # 5 mark_assessed (the clean repo), 6 forget_repos (the gone one), 7 its event (its
    # marker cleared with it).
    assert commits == 7
    assert outcomes == [
        ("before", 1, 0, 2, 1),  # nothing of it committed: it never started
        ("before", 2, 1, 2, 1),  # its marker rolled back: it never started
        *[("before", n, 1, 3, 2) for n in (3, 4, 5, 6, 7)],  # started: recorded interrupted
        ("after", 1, 1, 2, 1),
        *[("after", n, 1, 3, 2) for n in (2, 3, 4, 5, 6)],
        ("after", 7, 2, 3, 1),  # its own event made it: not recorded a second time
    ]
