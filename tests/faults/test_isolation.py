"""One bad repo never stalls the hub: repos are read in bounded worker processes.

Each hostile repo of tests/hostilekit.py makes libgit2 block in C or ask for gigabytes.
The sweep (CLI, API or daemon) kills the worker at its bound, records a C-00 that names
the bound, and goes on; the serving process keeps answering and stops on SIGTERM; a
killed sweep leaves no worker behind and is recorded as interrupted by the next one.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultkit import (
    IN_PROGRESS,
    LAUNCH,
    child_pids,
    hub_state,
    is_running,
    worker_pids,
)

import hostilekit
from api_support import client, event_rows, serve_fleet
from clirun import start_statehub, statehub
from daemon_support import NotifySocket
from gitfleet import HangingServer, make_repo, write_config
from waiting import wait_for

REPO_TIMEOUT = 3
MEMORY_MB = 256
STOP_GRACE = 10  # the documented grace of `statehub serve` on SIGTERM
SETTLE = 15.0  # bound of every wait for something that takes well under a second


def sweeping(database: Path) -> bool:
    """True once a sweep of ``database`` has taken the lock (its in-progress marker is set)."""
    return IN_PROGRESS in hub_state(database)


def sweep_json(config: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    done = statehub("sweep", "--all", "--json", *args, config=config, timeout=timeout)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    detail: dict[str, Any] = json.loads(done.stdout)["detail"]
    return detail


def test_each_hostile_repo_costs_one_bounded_worker(tmp_path: Path, fleet: Path) -> None:
    """Every hostile repo is a C-00 naming its bound, the rest are assessed, in bounded time."""
    scratch = tmp_path / "scratch"
    for build in (*hostilekit.STALLS, hostilekit.huge_head):
        build(fleet, scratch)
    hostilekit.huge_text(fleet, scratch)
    hostilekit.long_quote_readme(fleet, scratch)
    make_repo(fleet, "good-1")
    make_repo(fleet, "good-2")
    config = write_config(
        tmp_path,
        roots=[fleet],
        sweep=f"max_seconds = 60\nworkers = 2\nrepo_timeout_seconds = {REPO_TIMEOUT}\n"
        f"repo_memory_mb = {MEMORY_MB}",
    )

    started = time.monotonic()
    detail = sweep_json(config)
    elapsed = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    took = f"assessment took over {REPO_TIMEOUT} s"
    assert sorted((e["repo"], e["message"]) for e in detail["automation_errors"]) == [
        ("fifo-alternate-index", took),
        ("fifo-commit-graph", took),
        ("fifo-object", took),
        ("huge-head", f"assessment needed over {MEMORY_MB} MB"),
    ]
    assert detail["exit_code"] == 1
    assert detail["skipped_budget"] == []
    findings = {
        entry["repo"]: [(f["check"], f["path"]) for f in entry["findings"]]
        for entry in detail["repos_processed"]
    }
    assert "good-1" not in findings and "good-2" not in findings  # no finding: clean
    assert {"good-1", "good-2"} <= set(detail["skipped_clean"])
    assert findings["huge-text"] == [("C-22", "big.txt")]
    assert findings["long-quote"] == [("C-22", "README.md")]
    # Three stalls on two workers: two rounds of the bound, plus start-up and the rest.
    assert elapsed < 2 * REPO_TIMEOUT + 20
    assert peak_kib < (MEMORY_MB + 64) * 1024  # no process of the tree went past the cap


def test_no_repo_waits_behind_a_stuck_one(tmp_path: Path, fleet: Path) -> None:
    """Repos are not queued behind a full read: while one worker is stuck, the other does all."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")  # first in the fleet's order
    good = [f"good-{n:02d}" for n in range(12)]
    for name in good:
        make_repo(fleet, name)
    # The stuck repo's own bound is past the sweep's budget: only the budget ends it.
    config = write_config(
        tmp_path,
        roots=[fleet],
        sweep="max_seconds = 4\nworkers = 2\nrepo_timeout_seconds = 60",
    )
    detail = sweep_json(config)
    assert detail["skipped_budget"] == ["fifo-object"]
    assessed = detail["skipped_clean"] + [e["repo"] for e in detail["repos_processed"]]
    assert sorted(assessed) == good


@pytest.mark.long(16)
def test_a_stuck_sweep_leaves_the_api_responsive_and_stoppable(tmp_path: Path, fleet: Path) -> None:
    """During a sweep stuck on a FIFO, /healthz answers, a POST is lock-skipped, SIGTERM stops."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")
    make_repo(fleet, "good")
    server = serve_fleet(
        tmp_path, fleet, sweep="max_seconds = 300\nrepo_timeout_seconds = 300\nworkers = 2"
    )
    answers: list[int] = []
    with server:
        assert server.process is not None

        def post() -> None:
            with client(server.url, timeout=60) as http:
                try:
                    answers.append(http.post("/consistency/sweep/remote-all", json={}).status_code)
                except httpx.TransportError:
                    answers.append(-1)

        stuck = threading.Thread(target=post, daemon=True)
        stuck.start()
        database = tmp_path / "statehub.db"
        wait_for(lambda: sweeping(database), SETTLE, "the sweep to start")
        workers = wait_for(lambda: worker_pids(server.process.pid), SETTLE, "the sweep's workers")

        with client(server.url, timeout=5) as http:
            health = http.get("/healthz")
            second = http.post("/consistency/sweep/remote-all", json={})
        assert health.status_code == 200
        assert health.json()["lock"] == "held"
        assert second.status_code == 200
        assert second.json()["detail"]["lock_skipped"] is True

        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(STOP_GRACE + 10)
    assert status == 0
    stuck.join(10)
    assert answers == [503]  # the stuck request is told the server stopped
    wait_for(lambda: not any(is_running(pid) for pid in workers), SETTLE, "the workers to die")

    after = sweep_json(server.config, "--max-seconds", "2")
    interrupted = [e for e in event_rows(database) if e["detail"].get("interrupted")]
    assert len(interrupted) == 1
    assert after["skipped_budget"] == ["fifo-object"]  # still stuck: its worker cut at 2 s


def test_a_stuck_sweep_keeps_the_daemon_watchdog_and_sigterm(tmp_path: Path, fleet: Path) -> None:
    """The daemon, mid-fire on a stuck repo, keeps sending WATCHDOG=1 and stops on SIGTERM."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")
    config = write_config(
        tmp_path,
        roots=[fleet],
        schedule='mode = "active"',
        sweep="max_seconds = 300\nrepo_timeout_seconds = 300",
    )
    notify = NotifySocket()
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
    daemon = subprocess.Popen(
        [sys.executable, str(LAUNCH), "daemon", "--fire-after", "0.5", "--config", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        database = tmp_path / "statehub.db"
        wait_for(lambda: sweeping(database), SETTLE, "the fire")
        workers = wait_for(lambda: worker_pids(daemon.pid), SETTLE, "the sweep's workers")
        since = time.monotonic()
        # One ping every half WATCHDOG_USEC, the sweep notwithstanding: four of them come
        # while the sweep is still stuck on its repo.
        wait_for(
            lambda: len([m for m, _ in notify.fields("WATCHDOG") if m >= since]) >= 4,
            SETTLE,
            "four watchdog pings during the stuck sweep",
        )
        assert sweeping(database) and all(is_running(pid) for pid in workers)

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(STOP_GRACE + 5) == 0
        assert notify.fields("STOPPING")
        wait_for(lambda: not any(is_running(pid) for pid in workers), SETTLE, "the workers to die")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        notify.close()


def test_kill_9_mid_sweep_leaves_no_worker_and_is_recorded(tmp_path: Path, fleet: Path) -> None:
    """kill -9 of a CLI sweep stuck on a repo kills its workers; the next sweep records it."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")
    make_repo(fleet, "good")
    config = write_config(tmp_path, roots=[fleet], sweep="max_seconds = 300\nworkers = 2")
    sweep = start_statehub("sweep", "--all", config=config)
    try:
        workers = wait_for(
            lambda: len(worker_pids(sweep.pid)) == 2 and worker_pids(sweep.pid),
            SETTLE,
            "two workers",
        )
    finally:
        sweep.kill()
        sweep.wait(10)
    wait_for(lambda: not any(is_running(pid) for pid in workers), SETTLE, "the workers to die")

    detail = sweep_json(config, "--max-seconds", "2")
    recorded = event_rows(tmp_path / "statehub.db")
    assert [e["detail"].get("interrupted", False) for e in recorded] == [True, False]
    assert detail["lock_skipped"] is False
    assert "good" in detail["skipped_clean"] + [e["repo"] for e in detail["repos_processed"]]


def test_a_killed_sweep_leaves_no_fetch_behind(tmp_path: Path, fleet: Path) -> None:
    """kill -9 of a --remote sweep mid-fetch: the worker and its `git fetch` both die."""
    with HangingServer() as hanging:
        make_repo(fleet, "silent", origin_url=hanging.url)
        config = write_config(
            tmp_path, roots=[fleet], sweep="max_seconds = 300\nfetch_timeout_seconds = 300"
        )
        sweep = start_statehub("sweep", "--all", "--remote", config=config)
        try:
            worker, fetch = wait_for(
                lambda: next(
                    (
                        (pid, child_pids(pid, b"fetch"))
                        for pid in worker_pids(sweep.pid)
                        if child_pids(pid, b"fetch")
                    ),
                    None,
                ),
                SETTLE,
                "a worker running git fetch",
            )
        finally:
            sweep.kill()
            sweep.wait(10)
        wait_for(lambda: not is_running(worker), SETTLE, "the worker to die")
        wait_for(lambda: not any(is_running(pid) for pid in fetch), SETTLE, "its git fetch to die")


def test_two_configs_reaching_one_database_share_one_lock(tmp_path: Path, fleet: Path) -> None:
    """A database reached through a symlinked folder is locked as the real one is."""
    hostilekit.fifo_object(fleet, tmp_path / "scratch")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    direct = write_config(real, roots=[fleet], sweep="max_seconds = 300")
    other = tmp_path / "other"
    other.mkdir()
    through_link = write_config(other, roots=[fleet], sweep="max_seconds = 300")
    through_link.write_text(
        through_link.read_text().replace(
            'database = "statehub.db"', f'database = "{tmp_path}/linked/statehub.db"'
        )
    )
    holder = start_statehub("sweep", "--all", config=direct)
    try:
        wait_for(lambda: sweeping(real / "statehub.db"), SETTLE, "the first sweep")
        detail = sweep_json(through_link)
    finally:
        holder.kill()
        holder.wait(10)
    assert detail["lock_skipped"] is True


@pytest.mark.parametrize("workers", [1, 2])
def test_every_repo_is_read_outside_the_sweeping_process(
    tmp_path: Path, fleet: Path, workers: int
) -> None:
    """The sweep's own process never loads libgit2: repos are read only in its workers."""
    for name in ("a", "b", "c"):
        make_repo(fleet, name)
    config = write_config(tmp_path, roots=[fleet], sweep=f"workers = {workers}")
    probe = (
        "import sys\n"
        "from statehub.cli import main\n"
        "code = main(['sweep', '--all', '--json', '--config', sys.argv[1]])\n"
        "print('pygit2' in sys.modules, file=sys.stderr)\n"
        "raise SystemExit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"
    assert json.loads(done.stdout)["detail"]["repos_reassessed"] == 3


def test_check_of_a_stuck_repo_ends_at_its_bound(tmp_path: Path, fleet: Path) -> None:
    """`statehub check` reads in a worker too: a stalled repo is a C-00 at the time bound."""
    stuck = hostilekit.fifo_object(fleet, tmp_path / "scratch")
    config = write_config(tmp_path, roots=[fleet], sweep="repo_timeout_seconds = 2")
    started = time.monotonic()
    done = statehub("check", str(stuck), "--json", config=config, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert findings == [{"check": "C-00", "message": "assessment took over 2 s", "path": None}]
    assert elapsed < 2 + 10
