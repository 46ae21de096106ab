"""What a person types is never silently ignored nor cut short (issue 23).

A closed stdout ends quietly with the work's status; `--repo` takes a unique start or end of
a name and suggests the closest; `serve --host/--port`; cron shortcuts; `[repos] depth`;
`events --event-type` with --json (`notify test` without alerts: test_alerts.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

import clirun
from api_support import client, listening_port
from clirun import statehub
from gitfleet import make_repo, write_config
from statehub.settings import load_settings
from waiting import wait_for


@pytest.mark.parametrize("command", [("status",), ("config", "show"), ("events",)])
def test_closed_stdout_ends_quietly_with_status_0(tmp_path: Path, command: tuple[str, ...]) -> None:
    """stdout closed before a word is written (`| head` that has read enough): exit 0,
    nothing on stderr."""
    config = write_config(tmp_path, roots=[tmp_path / "src"])
    process = subprocess.Popen(
        clirun.command(command, config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clirun.environment(None, ()),
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the command prints
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0
    assert stderr == b""


@pytest.fixture
def names_fleet(tmp_path: Path, fleet: Path) -> Path:
    """A fleet of pallets+click, alpha, beta (each with a finding); its configuration."""
    for name in ("pallets+click", "alpha", "beta"):
        make_repo(fleet, name, with_origin=False)
    return write_config(tmp_path, roots=[fleet])


@pytest.mark.parametrize(
    ("typed", "meant"), [("click", "pallets+click"), ("pallets", "pallets+click"), ("alp", "alpha")]
)
def test_repo_by_a_unique_start_or_end(names_fleet: Path, typed: str, meant: str) -> None:
    """`--repo` takes a unique prefix or suffix of a repo's name."""
    result = statehub("sweep", "--repo", typed, "--json", config=names_fleet)
    assert result.returncode == 0, result.stderr
    processed = json.loads(result.stdout)["detail"]["repos_processed"]
    assert [repo["repo"] for repo in processed] == [meant]


def test_repo_unknown_suggests_and_ambiguous_names_the_candidates(names_fleet: Path) -> None:
    """A misspelt name suggests the closest; a part of several names lists them: exit 2."""
    unknown = statehub("sweep", "--repo", "cluck", config=names_fleet)
    assert unknown.returncode == 2
    assert unknown.stderr.endswith("did you mean pallets+click?\n")
    several = statehub("sweep", "--repo", "a", config=names_fleet)
    assert several.returncode == 2
    assert "matches 2 repos: alpha, beta" in several.stderr


def test_serve_takes_host_and_port(tmp_path: Path) -> None:
    """`serve --port N` listens on N whatever [api] port says; `--host` off loopback still
    needs a token (exit 78)."""
    config = write_config(tmp_path, roots=[tmp_path], api="port = 9")
    log = tmp_path / "serve.log"
    # --port 0: the kernel's choice, read from the server's log (never a port picked here).
    server = clirun.start_statehub(
        "serve", "--host", "127.0.0.1", "--port", "0", config=config, log=log
    )

    def running() -> bool:
        assert server.poll() is None, log.read_text(errors="replace")
        return True

    def answers(http: httpx.Client) -> int | None:
        with contextlib.suppress(httpx.TransportError):
            return http.get("/healthz").status_code
        return None

    try:
        port = wait_for(
            lambda: running() and listening_port(log.read_text(errors="replace")),
            60,
            "the server's 'listening on' line",
        )
        assert port != 9  # --port, not [api] port
        with client(f"http://127.0.0.1:{port}", timeout=2.0) as http:
            status = wait_for(lambda: running() and answers(http), 60, "/healthz")
        assert status in (200, 503)
    finally:
        server.terminate()
        server.wait(timeout=30)
    exposed = statehub("serve", "--host", "0.0.0.0", config=config)
    assert exposed.returncode == 78
    assert "api.token_file: required when api.host is not loopback" in exposed.stderr


@pytest.mark.parametrize(
    ("shortcut", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_cron_shortcuts_are_their_five_fields(tmp_path: Path, shortcut: str, fields: str) -> None:
    """A crontab shortcut is accepted and shown as its five fields."""
    config = write_config(tmp_path, roots=[tmp_path], schedule=f'trigger = "{shortcut}"')
    assert load_settings(config).schedule.trigger == fields
    shown = statehub("schedule", "show", config=config)
    assert shown.returncode == 0, shown.stderr
    assert f"trigger          {fields}  in UTC" in shown.stdout


def test_reboot_is_refused_with_the_shortcuts_named(tmp_path: Path) -> None:
    """@reboot has no fire time: exit 78 naming the shortcuts that work."""
    config = write_config(tmp_path, roots=[tmp_path], schedule='trigger = "@reboot"')
    result = statehub("config", "check", config=config)
    assert result.returncode == 78
    assert "schedule.trigger: @reboot has no fire times: use one of @yearly" in result.stderr


def test_root_with_repos_only_deeper_says_which_depth(tmp_path: Path) -> None:
    """Repos at root/org/repo: depth 1 warns with the setting to change; depth 2 finds them."""
    root = tmp_path / "code"
    make_repo(root / "org", "one")
    make_repo(root / "org", "two")
    shallow = write_config(tmp_path, roots=[root])
    result = statehub("sweep", "--json", config=shallow)
    assert result.returncode == 0
    assert result.stderr == (
        f"statehub: warning: repos.roots: {root} holds repos only 2 levels down: "
        "set [repos] depth = 2 (now 1), or name the folders below it as roots\n"
    )
    deep = tmp_path / "deep"
    deep.mkdir()
    config = write_config(deep, roots=[root], repos="depth = 2")
    swept = json.loads(statehub("sweep", "--json", config=config).stdout)
    assert swept["detail"]["repos_total"] == 2


def test_depth_is_at_most_3(tmp_path: Path) -> None:
    """`[repos] depth = 4` is a configuration error naming the bound."""
    config = write_config(tmp_path, roots=[tmp_path], repos="depth = 4")
    result = statehub("config", "check", config=config)
    assert result.returncode == 78
    assert "repos.depth: must be at most 3, not 4" in result.stderr


def test_unknown_event_type_with_json_prints_a_json_error(tmp_path: Path) -> None:
    """`events --event-type bogus --json` prints {"error", "exit_code": 2} on stdout."""
    config = write_config(tmp_path, roots=[tmp_path])
    result = statehub("events", "--event-type", "bogus", "--json", config=config)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert "consistency_sweep_remote_all" in document["error"]


def test_version_is_the_changelogs_newest() -> None:
    """`statehub --version` prints the version of CHANGELOG.md's newest entry."""
    changelog = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
    newest = next(
        line.split()[1] for line in changelog.read_text().splitlines() if line.startswith("## ")
    )
    result = statehub("--version")
    assert result.returncode == 0
    assert result.stdout == f"statehub {newest}\n"
    assert newest != "0.1.0"
