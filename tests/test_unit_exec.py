"""Each shipped unit's own command lines, run the way the unit runs them.

The daemon's ExecStart reaches READY=1; then every unit's ExecStartPre and ExecStart run in
an emulation of the unit's sandbox (``tests/unitsandbox.py``) and sweep a healthy fleet clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_support import client, count_events, listening_port
from daemon_support import NotifySocket, fire_every_env
from gitfleet import git, make_repo, write_config
from test_infra import API_UNIT, SWEEPD_UNIT, SYNC_SERVICE, SYSTEMD, unit_exec_start
from unitfile import unit_settings
from unitsandbox import (
    DYNAMIC_UID,
    FLEET,
    UnitView,
    can_emulate,
    run_in_unit,
    sandboxed,
    stop_unit,
)
from waiting import wait_for

INSTALLED_BINARY = "/opt/statehub/bin/statehub"


def unit_environment(unit: Path, replacements: dict[str, str]) -> dict[str, str]:
    """The unit's Environment= assignments, with the paths of this machine put in."""
    env: dict[str, str] = {}
    for line in unit_settings(unit).get(("Service", "Environment"), []):
        for assignment in line.split():
            key, _, value = assignment.partition("=")
            env[key] = replacements.get(key, value)
    return env


def test_sweepd_exec_start_reaches_ready(tmp_path: Path) -> None:
    """ExecStart of statehub-sweepd.service, config rewritten to a temp one, sends READY=1."""
    unit = SYSTEMD / "statehub-sweepd.service"
    argv = unit_exec_start(unit)
    assert argv[0] == INSTALLED_BINARY
    argv[0] = str(Path(sys.executable).parent / "statehub")  # this checkout's install

    fleet = tmp_path / "fleet"
    make_repo(fleet, "alpha", with_origin=False)
    config = write_config(tmp_path, roots=[fleet], schedule='mode = "active"')
    env = unit_environment(
        unit,
        {
            "STATEHUB_CONFIG": str(config),
            "STATEHUB_HUB__DATABASE": str(tmp_path / "state" / "statehub.db"),
            "HOME": str(tmp_path),
        },
    )
    assert set(env) >= {"STATEHUB_CONFIG", "STATEHUB_HUB__DATABASE"}
    notify = NotifySocket()
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env, "NOTIFY_SOCKET": notify.path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, ready = notify.wait_field("READY", timeout=30)
        assert ready == "1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert notify.fields("STOPPING")
        assert (tmp_path / "state" / "statehub.db").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        notify.close()


# -- each unit's commands in an emulation of its sandbox (tests/unitsandbox.py) ----------

needs_namespaces = pytest.mark.skipif(
    not can_emulate(), reason="needs root, unshare and setpriv to emulate a unit's sandbox"
)
REPO_NAMES = ("alpha", "beta")


def _sandbox_fleet(tmp_path: Path, *, extra: str = "", **sections: str) -> UnitView:
    """Two healthy repos and a config whose root is the units' /srv/repos."""
    fleet = tmp_path / "fleet"
    for name in REPO_NAMES:
        make_repo(fleet, name)
    config = write_config(tmp_path, roots=[Path(FLEET)], extra=extra, **sections)
    state = tmp_path / "state"
    state.mkdir()
    return UnitView(settings={}, fleet=fleet, state=state, config=config)


def _with_unit(view: UnitView, unit: Path, *dropins: Path) -> UnitView:
    view.settings = unit_settings(unit, *dropins)
    return view


def exec_lines(view: UnitView, key: str) -> list[tuple[str, list[str]]]:
    """``(prefixes, argv)`` of each ``ExecX=`` line of the unit."""
    out = []
    for line in view.settings.get(("Service", key), []):
        argv = shlex.split(line)
        prefixes = argv[0][: len(argv[0]) - len(argv[0].lstrip("-@:+!"))]
        argv[0] = argv[0][len(prefixes) :]
        out.append((prefixes, argv))
    return out


def _run_oneshot(view: UnitView) -> subprocess.CompletedProcess[str]:
    """ExecCondition (``+``: unsandboxed), ExecStartPre, ExecStart, in systemd's order."""
    for prefixes, argv in exec_lines(view, "ExecCondition"):
        assert "+" in prefixes  # it needs the manager's bus, so it runs unsandboxed
        condition = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        assert condition.returncode == 0, (
            "no statehub-sweepd runs here: the run must not be skipped"
        )
    for prefixes, argv in exec_lines(view, "ExecStartPre"):
        pre = run_in_unit(view, argv, timeout=60)
        assert pre.returncode == 0 or "-" in prefixes, pre.stderr
        assert pre.returncode == 0, pre.stderr  # and it does succeed in the sandbox
    (_, argv), *more = exec_lines(view, "ExecStart")
    assert not more
    return run_in_unit(view, argv, timeout=180)


def _last_detail(view: UnitView) -> dict[str, Any]:
    with sqlite3.connect(view.state / "statehub.db") as connection:
        row = connection.execute(
            "SELECT event_type, detail FROM progress_events ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "no progress event written"
    detail: dict[str, Any] = json.loads(row[1])
    detail["event_type"] = row[0]
    return detail


@needs_namespaces
def test_archived_timer_sweeps_clean_on_a_default_install(tmp_path: Path) -> None:
    """custodian-sync.service as shipped, in its sandbox, on a healthy fleet: exit 0, no C-00."""
    view = _with_unit(_sandbox_fleet(tmp_path), SYNC_SERVICE)
    result = _run_oneshot(view)
    assert result.returncode == 0, result.stdout + result.stderr
    detail = _last_detail(view)
    assert detail["event_type"] == "consistency_sweep_remote_all"
    assert (detail["source"], detail["remote"], detail["exit_code"]) == ("local-timer", False, 0)
    assert detail["automation_errors"] == []
    assert detail["repos_total"] == len(REPO_NAMES)
    # --scheduled: the run is a row of the schedule's activity_runs, with this detail.
    with sqlite3.connect(view.state / "statehub.db") as connection:
        [(outcome, origin, recorded)] = connection.execute(
            "SELECT outcome, context_snapshot->>'origin',"
            " context_snapshot->>'$.consistency_sweep_remote_all.source' FROM activity_runs"
        ).fetchall()
    assert (outcome, origin, recorded) == ("swept", "cli", "local-timer")
    # The unit's view really is read-only: the sweep wrote nothing into the repos.
    for name in REPO_NAMES:
        assert not (view.fleet / name / ".git" / "FETCH_HEAD").exists()


@needs_namespaces
def test_archived_timer_cannot_fetch_without_the_dropin(tmp_path: Path) -> None:
    """`--remote` in the shipped sandbox: each fetch is a C-00 on the read-only .git, exit 1."""
    view = _with_unit(_sandbox_fleet(tmp_path), SYNC_SERVICE)
    for _, argv in exec_lines(view, "ExecStartPre"):
        assert run_in_unit(view, argv, timeout=60).returncode == 0
    (_, argv), *_ = exec_lines(view, "ExecStart")
    result = run_in_unit(view, [*argv, "--remote"], timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = _last_detail(view)["automation_errors"]
    assert sorted(error["repo"] for error in errors) == list(REPO_NAMES)
    assert all(error["message"].endswith("the repo is read-only") for error in errors)


def _readme_dropin(tmp_path: Path, repos: list[str], uid: int) -> Path:
    """The "Fetching first" drop-in of the archived README, with this fleet's repos and user."""
    readme = (SYNC_SERVICE.parent / "README.md").read_text(encoding="utf-8")
    match = re.search(r"remote\.conf <<'EOF'\n(.*?)\nEOF\n", readme, re.DOTALL)
    assert match, "the README has no drop-in heredoc"
    text = match.group(1)
    assert "ReadWritePaths=-/srv/repos/alpha/.git -/srv/repos/beta/.git" in text
    text = re.sub(
        r"(?m)^ReadWritePaths=.*$",
        "ReadWritePaths=" + " ".join(f"-{FLEET}/{name}/.git" for name in repos),
        text,
    )
    text = re.sub(r"(?m)^(User|Group)=repos$", rf"\1={uid}", text)
    dropin = tmp_path / "remote.conf"
    dropin.write_text(text, encoding="utf-8")
    return dropin


def fetching_view(tmp_path: Path) -> UnitView:
    """custodian-sync.service with the README's drop-in, over a fleet its user owns."""
    owner = DYNAMIC_UID + 1
    view = _sandbox_fleet(tmp_path)
    for name in REPO_NAMES:  # origins as the sandbox sees them
        git(view.fleet / name, "remote", "set-url", "origin", f"{FLEET}/.origins/{name}.git")
    subprocess.run(["chown", "-R", f"{owner}:{owner}", str(view.fleet)], check=True, timeout=30)
    view = _with_unit(view, SYNC_SERVICE, _readme_dropin(tmp_path, list(REPO_NAMES), owner))
    view.uid = owner
    return view


@needs_namespaces
def test_archived_timer_fetches_with_the_readme_dropin(tmp_path: Path) -> None:
    """With the README's drop-in, each repo's .git (only) is writable: the fetch runs, exit 0."""
    view = fetching_view(tmp_path)
    assert view.last("DynamicUser") == "no"
    result = _run_oneshot(view)
    assert result.returncode == 0, result.stdout + result.stderr
    detail = _last_detail(view)
    assert (detail["remote"], detail["exit_code"], detail["automation_errors"]) == (True, 0, [])
    for name in REPO_NAMES:
        assert (view.fleet / name / ".git" / "FETCH_HEAD").exists()
    # The work trees stay read-only: a write outside .git is refused in the same view.
    probe = run_in_unit(view, ["/bin/touch", f"{FLEET}/alpha/probe"], timeout=60)
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stderr


@needs_namespaces
def test_api_unit_exec_start_sweeps_clean(tmp_path: Path) -> None:
    """statehub-api.service's ExecStartPre and ExecStart in its sandbox: a POSTed sweep exits 0."""
    view = _with_unit(_sandbox_fleet(tmp_path, api="port = 0"), API_UNIT)
    for _, argv in exec_lines(view, "ExecStartPre"):
        assert run_in_unit(view, argv, timeout=60).returncode == 0
    (_, argv), *_ = exec_lines(view, "ExecStart")
    log = tmp_path / "serve.log"
    # The address filter is not emulated here: the test's client must reach the server.
    with log.open("wb") as sink:
        process = subprocess.Popen(
            sandboxed(view, argv, network=False), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        port = wait_for(
            lambda: alive(process, log) and listening_port(log.read_text(errors="replace")),
            30,
            "the server's 'listening on' line",
        )
        with client(f"http://127.0.0.1:{port}", timeout=5.0) as http:
            wait_for(lambda: alive(process, log) and answers(http), 30, "/healthz")
            response = http.post("/consistency/sweep/remote-all", json={}, timeout=120)
        assert response.status_code == 200, response.text
        detail = response.json()["detail"]
        assert (detail["exit_code"], detail["automation_errors"]) == (0, [])
        assert detail["repos_total"] == len(REPO_NAMES)
    finally:
        stop_unit(process)


def alive(process: subprocess.Popen[bytes], log: Path) -> bool:
    """True while ``process`` runs; AssertionError with its log once it has exited."""
    assert process.poll() is None, log.read_text(errors="replace")
    return True


def answers(http: Any) -> bool:
    """True once ``/healthz`` answers (200, or 503 while degraded)."""
    with contextlib.suppress(httpx.TransportError):
        return bool(http.get("/healthz").status_code in (200, 503))
    return False


@needs_namespaces
def test_sweepd_unit_exec_start_sweeps_clean(tmp_path: Path) -> None:
    """statehub-sweepd.service in its sandbox, active, firing: its first sweep exits 0."""
    view = _with_unit(
        _sandbox_fleet(tmp_path, schedule='mode = "active"\ntrigger = "* * * * *"'), SWEEPD_UNIT
    )
    for _, argv in exec_lines(view, "ExecStartPre"):
        assert run_in_unit(view, argv, timeout=60).returncode == 0
    (_, argv), *_ = exec_lines(view, "ExecStart")
    # The daemon's test trigger (every 5 s, not the minute) reaches it through env(1).
    [(key, value)] = fire_every_env(5).items()
    fast = ["/usr/bin/env", f"{key}={value}", *argv]
    log = tmp_path / "daemon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(sandboxed(view, fast), stdout=sink, stderr=subprocess.STDOUT)
    database = view.state / "statehub.db"
    try:
        wait_for(
            lambda: process.poll() is not None or _has_event(database),
            timeout=90,
            what="the daemon's first sweep",
            step=0.5,
        )
        assert process.poll() is None, log.read_text(errors="replace")
        detail = _last_detail(view)
        assert (detail["source"], detail["exit_code"], detail["automation_errors"]) == (
            "local-daemon",
            0,
            [],
        )
    finally:
        status = stop_unit(process)
    assert status == 0, log.read_text(errors="replace")


def _has_event(database: Path) -> bool:
    return count_events(database) > 0
