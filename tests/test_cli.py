"""The command line: --json documents, exit statuses, help for every command."""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from pathlib import Path

import pytest

import clirun
from api_support import event_rows
from gitfleet import make_repo, write, write_config
from statehub.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


# Every run has a terminal 200 columns wide, so that no table wraps a line under test.
statehub = partial(clirun.statehub, env={"COLUMNS": "200"})


def event_count(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM progress_events").fetchone()[0])


def command_names() -> list[list[str]]:
    """Every command and subcommand of the parser, as argument lists."""
    parser = build_parser()
    names: list[list[str]] = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            names.append([name])
            for sub_action in sub._actions:
                if sub_action.__class__.__name__ == "_SubParsersAction":
                    names.extend([name, child] for child in sub_action.choices)
    return names


@pytest.mark.parametrize("command", command_names(), ids=" ".join)
def test_every_command_has_help_and_is_documented(command: list[str]) -> None:
    """Each command answers --help with a description, and the README names it."""
    result = statehub(*command, "--help")

    assert result.returncode == 0
    assert "usage: statehub" in result.stdout
    if command != ["install-units"]:  # the installer reads unit files, not the config
        assert "--config" in result.stdout
    assert f"statehub {' '.join(command)}" in README.read_text()


def test_sweep_json_prints_the_whole_event_and_nothing_else(tmp_path: Path, fleet: Path) -> None:
    """sweep --json prints one document: the event as stored, with id, type, time and detail."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])

    result = statehub("sweep", "--all", "--json", "--source", "local-timer", config=config)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"id", "event_type", "created_at", "detail"}
    assert document["detail"]["source"] == "local-timer"
    with sqlite3.connect(tmp_path / "statehub.db") as connection:
        stored = json.loads(connection.execute("SELECT detail FROM progress_events").fetchone()[0])
    assert stored == document["detail"]


def test_sweep_exit_status_is_1_on_automation_error(tmp_path: Path, fleet: Path) -> None:
    """An unreadable repo makes exit status 1; findings alone keep it 0."""
    write(make_repo(fleet, "dirty"), {"scratch.txt": "x"})
    config = write_config(tmp_path, roots=[fleet])
    assert statehub("sweep", config=config).returncode == 0

    broken = fleet / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere\n")
    result = statehub("sweep", config=config)

    assert result.returncode == 1
    assert "C-00" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--max-seconds", "0"],
        ["sweep", "--max-seconds", "abc"],
        ["sweep", "--all", "--repo", "x"],
        ["sweep", "--source", "has space"],
        ["events", "--limit", "-3"],
        ["nonsense"],
        [],
    ],
    ids=str,
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    """Bad arguments exit 2 with a usage message and write nothing."""
    config = write_config(tmp_path, roots=[tmp_path])

    result = statehub(*args, config=config) if args else statehub()

    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert event_count(tmp_path / "statehub.db") == 0


def test_unknown_repo_exits_2(tmp_path: Path, fleet: Path) -> None:
    """sweep --repo with a name that is not configured exits 2 with one line."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])

    result = statehub("sweep", "--repo", "beta", config=config)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "statehub: unknown repo: beta (not configured, never assessed)"
    )


def test_check_assesses_one_folder_and_records_nothing(tmp_path: Path, fleet: Path) -> None:
    """check PATH prints the folder's findings and writes no event or database."""
    repo = make_repo(fleet, "alpha")
    (repo / "AGENTS.md").unlink()
    config = write_config(tmp_path, roots=[tmp_path / "elsewhere"])

    result = statehub("check", str(repo), "--json", config=config)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["repo"] == "alpha"
    checks = sorted(f["check"] for f in document["findings"])
    # The README's link to AGENTS.md is the same defect as C-02: one defect, one finding.
    assert checks == ["C-02", "C-14"]
    assert not (tmp_path / "statehub.db").exists()


def test_check_of_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    """check PATH on nothing exits 2."""
    config = write_config(tmp_path, roots=[tmp_path])

    result = statehub("check", str(tmp_path / "nope"), config=config)

    assert result.returncode == 2
    assert "no such folder" in result.stderr


def test_events_lists_newest_first_and_filters(tmp_path: Path, fleet: Path) -> None:
    """events --json lists events newest first, filtered by type, limited and paged
    (--before the last id shown): printed one at a time, the document is the one json.dumps
    gives of the whole list."""
    make_repo(fleet, "alpha")
    config = write_config(tmp_path, roots=[fleet])
    for args in (["--all"], ["--repo", "alpha"], ["--all"]):
        statehub("sweep", *args, config=config)

    printed = statehub("events", "--json", config=config).stdout
    everything = json.loads(printed)
    only_all = json.loads(
        statehub(
            "events",
            "--json",
            "--event-type",
            "consistency_sweep_remote_all",
            "--limit",
            "1",
            config=config,
        ).stdout
    )

    after_first = statehub("events", "--json", "--limit", "1", "--before", "3", config=config)
    zero = statehub("events", "--before", "0", config=config)

    assert [e["id"] for e in everything] == [3, 2, 1]
    assert [e["id"] for e in only_all] == [3]
    assert [e["id"] for e in json.loads(after_first.stdout)] == [2]  # the next page
    assert zero.returncode == 2 and "--before" in zero.stderr
    assert everything == event_rows(tmp_path / "statehub.db")[::-1]
    assert printed == json.dumps(everything, indent=2, ensure_ascii=False) + "\n"


def test_read_commands_on_a_fresh_install_print_nothing_found(tmp_path: Path) -> None:
    """events and runs before any sweep print empty lists and create no database."""
    config = write_config(tmp_path, roots=[tmp_path])

    events = statehub("events", "--json", config=config)
    runs = statehub("runs", "--json", config=config)

    assert (events.returncode, json.loads(events.stdout)) == (0, [])
    assert (runs.returncode, json.loads(runs.stdout)) == (0, [])
    assert not (tmp_path / "statehub.db").exists()


def test_sweep_table_is_readable(tmp_path: Path, fleet: Path) -> None:
    """Without --json, sweep prints the findings table and a summary line."""
    write(make_repo(fleet, "dirty"), {"scratch.txt": "x"})
    config = write_config(tmp_path, roots=[fleet])

    result = statehub("sweep", config=config)

    assert "C-15" in result.stdout
    assert "1 re-read, 0 reused, 0 missing, 0 over budget" in result.stdout
    assert "1 need action, 0 clean" in result.stdout
