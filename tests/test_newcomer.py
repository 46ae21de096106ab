"""The first hour (issue 15): explain, init, warnings of an empty fleet, output for pipes."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from functools import partial
from pathlib import Path

import pytest

import clirun
from gitfleet import fleet_settings, good_files, make_repo, write_config
from statehub.checks import catalogue
from statehub.settings import CHECK_IDS, CHECKOUT_CONFIG, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"

# A newcomer's first runs: stdout a pipe (not a terminal) and no COLUMNS set.
statehub = partial(clirun.statehub, unset=("COLUMNS",))


def test_catalogue_covers_every_check() -> None:
    """The catalogue has one text per check id, C-00..C-23, in order."""
    assert tuple(text.id for text in catalogue.CATALOGUE) == CHECK_IDS


def test_readme_table_is_the_catalogues() -> None:
    """The README's table of checks is exactly `statehub explain --markdown`."""
    assert catalogue.markdown_table() in README.read_text(encoding="utf-8")


def test_explain_prints_what_why_fix_and_accept() -> None:
    """`statehub explain C-21` prints the summary, why, how to fix and how to accept."""
    result = statehub("explain", "c-21")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"C-21: {catalogue.BY_ID['C-21'].summary}"
    assert [line.split(":")[0] for line in lines[2:]] == ["Why it matters", "To fix", "To accept"]
    assert "exclude_paths" in result.stdout


def test_explain_lists_all_and_refuses_unknown() -> None:
    """Without an id it lists all 24 checks; an unknown id is a usage error (exit 2)."""
    listing = statehub("explain")
    assert listing.returncode == 0
    assert len([line for line in listing.stdout.splitlines() if line.startswith("C-")]) == 24
    unknown = statehub("explain", "C-24")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("statehub: unknown check 'C-24': the checks are C-00 .. C-23")


def test_init_writes_a_starter_that_sweeps(tmp_path: Path, fleet: Path) -> None:
    """`statehub init` writes roots, paths, database and mode active; a sweep finds the repos."""
    make_repo(fleet, "alpha")
    single = make_repo(tmp_path / "elsewhere", "solo")
    target = tmp_path / "mine.toml"

    result = statehub("init", str(fleet), str(single), config=target)

    assert result.returncode == 0, result.stderr
    written = tomllib.loads(target.read_text(encoding="utf-8"))
    assert written["repos"] == {"roots": [str(fleet)], "paths": [str(single)]}
    assert written["schedule"]["mode"] == "active"
    settings = load_settings(target)
    assert settings.database_path == tmp_path / "var" / "mine.db"  # named after the file
    exe = Path(sys.executable).parent / "statehub"  # the statehub it runs from, not PATH's
    assert result.stdout.splitlines()[-1].startswith(f"next: {exe} daemon --config {target}")
    sweep = statehub("sweep", "--json", config=target)
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout)["detail"]["repos_total"] == 2


@pytest.mark.long(12)
def test_init_sweeps_once_and_names_the_command_that_accepts(tmp_path: Path, fleet: Path) -> None:
    """After writing, init sweeps, counts the findings and names `statehub accept`."""
    make_repo(fleet, "alpha", {**good_files("alpha"), "big.bin": "x" * 600 * 1024})
    make_repo(fleet, "beta")
    target = tmp_path / "mine.toml"
    result = statehub("init", str(fleet), config=target)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    exe = Path(sys.executable).parent / "statehub"  # the statehub it runs from, not PATH's
    assert (
        "first sweep: 1 finding(s) in 1 of 2 repo(s), 0 automation error(s); see them: "
        f"{exe} findings --config {target}"
    ) in lines
    assert (
        "to accept them as they stand (only new ones are reported from then on): "
        f"{exe} accept --config {target}"
    ) in lines
    assert statehub("accept", config=target).returncode == 0
    sweep = json.loads(statehub("sweep", "--json", config=target).stdout)["detail"]
    assert (sweep["repos_processed"], sweep["accepted"]["total"]) == ([], 1)


def test_init_counts_the_repos_with_findings_apart_from_automation_errors(
    tmp_path: Path, fleet: Path
) -> None:
    """A repo with only a C-00 is an automation error in init's line, not a repo with
    findings: the findings it counts are in the repos it names."""
    make_repo(fleet, "alpha", {**good_files("alpha"), "big.bin": "x" * 600 * 1024})
    make_repo(fleet, "beta", good_files("beta"))
    os.mkfifo(fleet / "beta" / ".git" / "FETCH_HEAD")  # reading it would block: a C-00
    target = tmp_path / "mine.toml"
    result = statehub("init", str(fleet), config=target)
    assert result.returncode == 0, result.stderr
    assert "first sweep: 1 finding(s) in 1 of 2 repo(s), 1 automation error(s);" in result.stdout


def test_init_switches_the_conventions_off_where_no_repo_has_them(
    tmp_path: Path, fleet: Path
) -> None:
    """No repo with AGENTS.md or workplans/: C-02 off, require_workplans false, said why."""
    plain = {"README.md": "# a project\n"}
    make_repo(fleet, "alpha", plain)
    make_repo(fleet, "beta", plain)
    target = tmp_path / "mine.toml"
    result = statehub("init", str(fleet), config=target)
    assert result.returncode == 0, result.stderr
    written = target.read_text(encoding="utf-8")
    parsed = tomllib.loads(written)
    assert parsed["checks"]["disable"] == ["C-02"]
    assert parsed["repos"]["require_workplans"] is False
    assert "To ask for\n# them, set require_workplans = true" in written
    assert "C-02..C-11 are off" in result.stdout
    assert "first sweep: 0 finding(s) in 0 of 2 repo(s)" in result.stdout


def test_init_keeps_the_conventions_and_names_who_lacks_them(tmp_path: Path, fleet: Path) -> None:
    """Some repos follow the conventions: they stay on, and the others are named."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta", {"README.md": "# beta\n"})
    target = tmp_path / "mine.toml"
    result = statehub("init", str(fleet), config=target)
    assert result.returncode == 0, result.stderr
    assert "checks" not in tomllib.loads(target.read_text(encoding="utf-8"))
    assert (
        "conventions on (C-02..C-11), some repos lack them: 1 without AGENTS.md (beta); "
        "1 without workplans/ (beta)"
    ) in result.stdout.splitlines()


def test_init_never_overwrites(tmp_path: Path) -> None:
    """An existing file is refused with exit 2 and left as it was."""
    target = tmp_path / "statehub.toml"
    target.write_text("# mine\n", encoding="utf-8")
    result = statehub("init", str(tmp_path), config=target)
    assert result.returncode == 2
    assert "never overwrites" in result.stderr
    assert target.read_text(encoding="utf-8") == "# mine\n"


def test_init_names_a_folder_with_a_del_byte_escaped(tmp_path: Path) -> None:
    """A folder whose name holds DEL (0x7f): the file names it escaped, loads, and is the
    only file left in the folder."""
    odd = tmp_path / "odd\x7fname"
    odd.mkdir()
    target = tmp_path / "conf" / "statehub.toml"
    result = statehub("init", str(odd), config=target)
    assert result.returncode == 0, result.stderr
    assert "\\u007f" in target.read_text(encoding="utf-8")
    written = tomllib.loads(target.read_text(encoding="utf-8"))
    assert written["repos"]["roots"] == [str(odd.resolve())]
    assert sorted(path.name for path in target.parent.iterdir() if path.is_file()) == [
        "statehub.toml"
    ]


def test_init_defaults_to_the_current_folder(tmp_path: Path) -> None:
    """Without arguments it writes ./statehub.toml with the current folder as the root."""
    result = statehub("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tomllib.loads((tmp_path / "statehub.toml").read_text(encoding="utf-8"))
    assert written["repos"]["roots"] == [str(tmp_path.resolve())]
    assert "holds no git repo" in result.stderr  # said at once, not at the first sweep


def test_init_gives_each_hub_its_own_definition_and_name(tmp_path: Path) -> None:
    """Two inits: two fresh definition ids; [hub] name is the host name or --name."""
    import socket
    import uuid

    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    assert statehub("init", str(tmp_path), config=first).returncode == 0
    done = statehub("init", str(tmp_path), "--name", "build-2", config=second)
    assert done.returncode == 0, done.stderr
    ids = [load_settings(path).schedule.id for path in (first, second)]
    assert len({*ids, load_settings(CHECKOUT_CONFIG).schedule.id}) == 3
    assert all(uuid.UUID(ident).version == 4 for ident in ids)
    assert load_settings(first).hub_name == socket.gethostname()
    assert load_settings(second).hub_name == "build-2"
    assert "hub build-2, definition " + ids[1] in done.stdout
    assert load_settings(CHECKOUT_CONFIG).schedule.id == "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"
    status = statehub("status", "--json", config=second)
    assert json.loads(status.stdout)["hub"] == "build-2"
    assert statehub("status", config=second).stdout.startswith("hub       build-2\n")


def test_sweep_of_nothing_says_so_on_stderr(tmp_path: Path) -> None:
    """A sweep whose root does not exist warns on stderr (with --json too) and in the event."""
    gone = tmp_path / "src"
    config = write_config(tmp_path, roots=[gone])
    for args in ((), ("--json",)):
        result = statehub("sweep", *args, config=config)
        assert result.returncode == 0
        assert result.stderr == f"statehub: warning: repos.roots: {gone} does not exist\n"
    assert json.loads(result.stdout)["detail"]["warnings"] == [
        f"repos.roots: {gone} does not exist"
    ]


def test_status_shows_the_last_sweeps_warnings(tmp_path: Path) -> None:
    """`status` repeats the warnings of the newest sweep, as text and in --json."""
    gone = tmp_path / "src"
    config = write_config(tmp_path, roots=[gone])
    assert statehub("sweep", config=config).returncode == 0
    text = statehub("status", config=config)
    assert f"warning: repos.roots: {gone} does not exist" in text.stdout
    document = json.loads(statehub("status", "--json", config=config).stdout)
    assert document["warnings"] == [f"repos.roots: {gone} does not exist"]


@pytest.mark.parametrize("command", [("events",), ("sweep",)])
def test_piped_tables_are_never_cut(tmp_path: Path, fleet: Path, command: tuple[str, ...]) -> None:
    """Piped, a table keeps run ids, times and long paths whole (no '…' at 80 columns)."""
    long_name = "a-repository-with-a-rather-long-name-that-people-copy-" + "x" * 30
    root = make_repo(fleet, long_name)
    (root / ("an-untracked-file-with-a-long-name-" + "y" * 40 + ".txt")).write_text("x\n")
    config = write_config(tmp_path, roots=[fleet])
    first = statehub("sweep", config=config)
    result = first if command == ("sweep",) else statehub(*command, config=config)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    if command == ("sweep",):
        assert long_name in result.stdout
        assert "an-untracked-file-with-a-long-name-" + "y" * 40 + ".txt" in result.stdout
    else:
        assert "consistency_sweep_remote_all" in result.stdout


def test_sweep_of_chosen_repos_counts_those_repos(tmp_path: Path, fleet: Path) -> None:
    """`sweep --repo NAME` reports the findings of the repos asked for, not the fleet's."""
    make_repo(fleet, "clean")
    dirty = make_repo(fleet, "dirty")
    (dirty / "stray.txt").write_text("x\n", encoding="utf-8")
    config = write_config(tmp_path, roots=[fleet])
    assert statehub("sweep", config=config).returncode == 0

    chosen = statehub("sweep", "--repo", "clean", config=config)

    assert chosen.returncode == 0, chosen.stderr
    assert "; 0 repo(s) with findings," in chosen.stdout.splitlines()[-1]
    whole = statehub("sweep", config=config)
    assert "; 1 repo(s) with findings," in whole.stdout.splitlines()[-1]


def test_terminal_tables_wrap_paths_rather_than_cut_them() -> None:
    """On a narrow terminal a long repo name and path wrap: every character is shown."""
    import io

    from rich.console import Console

    from statehub.render import findings_table

    repo = "a-repository-name-people-copy-" + "r" * 20
    path = "docs/a/very/long/path/to/some/file/that/people/copy-" + "p" * 20 + ".txt"
    buffer = io.StringIO()
    out = Console(file=buffer, width=50, force_terminal=True, color_system=None)
    finding = {"check": "C-15", "message": "untracked", "path": path, "new": True}
    findings_table(out, [(repo, finding)], title="sweep 1")
    text = buffer.getvalue()
    assert "…" not in text
    rows = [line.split("│") for line in text.splitlines() if line.count("│") == 6]
    assert "".join(row[1].strip() for row in rows) == repo
    assert "".join(row[4].strip() for row in rows) == path


def test_unchanged_resweep_shows_the_standing_findings(tmp_path: Path, fleet: Path) -> None:
    """A re-sweep that re-reads nothing still prints what is wrong."""
    dirty = make_repo(fleet, "dirty")
    (dirty / "stray.txt").write_text("x\n", encoding="utf-8")
    config = write_config(tmp_path, roots=[fleet])
    assert statehub("sweep", config=config).returncode == 0

    again = statehub("sweep", config=config)

    assert again.returncode == 0
    assert "stray.txt" in again.stdout
    assert "C-15" in again.stdout


def test_unknown_event_type_is_a_usage_error(tmp_path: Path) -> None:
    """`events --event-type bogus` exits 2 naming the choices, instead of "no events"."""
    config = write_config(tmp_path, roots=[tmp_path])
    result = statehub("events", "--event-type", "bogus", config=config)
    assert result.returncode == 2
    assert "consistency_sweep_remote_all" in result.stderr


def test_json_error_is_a_json_document_too(tmp_path: Path) -> None:
    """With --json, an expected failure is also {"error", "exit_code"} on stdout."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\nmax_seconds = 0\n", encoding="utf-8")
    result = statehub("sweep", "--json", config=bad)
    assert result.returncode == 78
    document = json.loads(result.stdout)
    assert document["exit_code"] == 78
    assert document["error"].startswith("configuration error: ")
    assert "sweep.max_seconds" in result.stderr


def test_install_units_takes_config(tmp_path: Path) -> None:
    """`install-units --config PATH` is accepted like every command's, and validated."""
    good = write_config(tmp_path, roots=[tmp_path])
    prefix = tmp_path / "root"
    result = statehub("install-units", "--dry-run", "--prefix", str(prefix), config=good)
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\nmax_seconds = 0\n", encoding="utf-8")
    refused = statehub("install-units", "--dry-run", "--prefix", str(prefix), config=bad)
    assert refused.returncode == 78
    assert "sweep.max_seconds" in refused.stderr


def test_schedule_show_in_utc_prints_each_time_once(tmp_path: Path) -> None:
    """In UTC, `schedule show` lists each fire time once (no 'UTC | UTC' columns)."""
    config = write_config(tmp_path, roots=[tmp_path])
    result = statehub("schedule", "show", config=config)
    assert result.returncode == 0, result.stderr
    assert "next fire times (UTC):" in result.stdout
    times = result.stdout.split("next fire times (UTC):\n")[1].splitlines()
    assert len(times) == 5
    assert all("|" not in line and line.endswith("Z") for line in times)


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"api": "port = 9123"}, "http://127.0.0.1:9123"),
        ({"api": 'host = "::1"\nport = 9123'}, "http://[::1]:9123"),
        ({"api": "port = 9123", "schedule": 'api_url = "http://hub:80/"'}, "http://hub:80"),
    ],
)
def test_schedule_api_url_follows_the_api_port(
    tmp_path: Path, sections: dict[str, str], expected: str
) -> None:
    """An empty [schedule] api_url is this host's API as [api] host and port give it."""
    settings = fleet_settings(tmp_path, roots=[tmp_path], **sections)
    assert settings.schedule_api_url == expected


def test_readme_is_short_explains_its_terms_and_links_every_document() -> None:
    """The README stays at most 250 lines, defines the runbook's terms, and links every
    document of docs/ (the detail lives there)."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    glossary = text.split("\n## Glossary\n", 1)[1].split("\n## ", 1)[0]
    for term in ("activity-core", "custodian-sync", "local-timer", "definition id", "remote_all"):
        assert term in glossary, term
    for document in sorted((README.parent / "docs").glob("*.md")):
        assert f"](docs/{document.name})" in text, document.name
