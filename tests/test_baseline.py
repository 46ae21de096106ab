"""The baseline (issue 21): `statehub accept` records today's findings, later sweeps count
them as accepted, and a new or edited finding is reported again."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from clirun import statehub
from gitfleet import commit_all, git, good_files, make_repo, write_config
from keykit import pem
from statehub.store import Store

BLOCK = "<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> feature\n"


def _sweep(config: Path, *args: str) -> dict[str, Any]:
    """One sweep through the CLI; its event's detail."""
    done = statehub("sweep", "--json", *args, config=config)
    assert done.returncode == 0, done.stderr
    detail: dict[str, Any] = json.loads(done.stdout)["detail"]
    return detail


def _publish(root: Path, message: str) -> None:
    """Commit every change and push it, as its team would (no C-19 in the way)."""
    commit_all(root, message)
    git(root, "push", "-q")


def _reported(detail: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Every finding an event reports, as (repo, check, path)."""
    return sorted(
        (entry["repo"], finding["check"], finding["path"])
        for entry in detail["repos_processed"]
        for finding in entry["findings"]
    )


@pytest.fixture
def fleet_config(tmp_path: Path, fleet: Path) -> Path:
    """Two repos with true findings (keys, a conflict, a broken link), swept once."""
    make_repo(
        fleet,
        "api",
        {
            **good_files("api"),
            "tests/certs/server.key": pem("PRIVATE KEY"),
            "tests/test_tls.py": "KEY = '''\n" + pem("EC PRIVATE KEY", seed=7) + "'''\n",
        },
    )
    make_repo(
        fleet,
        "web",
        {**good_files("web"), "README.md": "# web\n\nSee [the guide](docs/guide.md).\n"},
    )
    config = write_config(tmp_path, roots=[fleet])
    _sweep(config)
    return config


def test_accept_then_sweep_reports_nothing_and_counts_the_accepted(fleet_config: Path) -> None:
    """After `accept`, a sweep reports 0 findings and counts each accepted one, per repo."""
    done = statehub("accept", config=fleet_config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("accepted 3 finding(s) in 2 repo(s): ")
    detail = _sweep(fleet_config)
    assert _reported(detail) == []
    assert detail["accepted"] == {"total": 3, "repos": {"api": 2, "web": 1}}
    assert detail["assessment_failures"] == 0
    assert sorted(detail["skipped_clean"]) == ["api", "web"]


def test_the_baseline_file_is_one_entry_per_repo_check_and_path(fleet_config: Path) -> None:
    """The file is TOML, beside the config, with a line hash where a finding has a line."""
    statehub("accept", config=fleet_config)
    document = tomllib.loads((fleet_config.parent / "statehub-baseline.toml").read_text())
    entries = document["accepted"]
    assert [(e["repo"], e["check"], e.get("path")) for e in entries] == [
        ("api", "C-23", "tests/certs/server.key"),
        ("api", "C-23", "tests/test_tls.py"),
        ("web", "C-04", "README.md"),
    ]
    assert all(len(e["line_hashes"]) == 1 for e in entries)


def test_a_new_key_and_an_edited_line_are_reported_again(fleet_config: Path, fleet: Path) -> None:
    """A key committed after `accept`, and an accepted line edited, are findings (new)."""
    statehub("accept", config=fleet_config)
    _sweep(fleet_config)
    api, web = fleet / "api", fleet / "web"
    (api / "deploy").mkdir()
    (api / "deploy" / "id_ecdsa").write_text(pem("EC PRIVATE KEY", seed=8), encoding="utf-8")
    _publish(api, "add a deploy key")
    (web / "README.md").write_text("# web\n\nSee [the new guide](docs/guide.md).\n")
    _publish(web, "edit the line")
    detail = _sweep(fleet_config)
    assert _reported(detail) == [("api", "C-23", "deploy/id_ecdsa"), ("web", "C-04", "README.md")]
    assert detail["new_findings"] == 2
    assert detail["accepted"] == {"total": 2, "repos": {"api": 2}}


def test_an_edited_key_is_reported_again(fleet_config: Path, fleet: Path) -> None:
    """A key whose body changes is another key: its accepted entry no longer covers it."""
    statehub("accept", config=fleet_config)
    key = fleet / "api" / "tests" / "certs" / "server.key"
    key.write_text(pem("PRIVATE KEY", seed=99), encoding="utf-8")
    _publish(fleet / "api", "rotate the test key")
    assert _reported(_sweep(fleet_config)) == [("api", "C-23", "tests/certs/server.key")]


def test_accept_by_repo_and_check(fleet_config: Path) -> None:
    """--repo and --check accept only their findings; the rest stays reported."""
    done = statehub("accept", "--repo", "api", "--check", "23", config=fleet_config)
    assert done.returncode == 0, done.stderr
    assert _reported(_sweep(fleet_config)) == [("web", "C-04", "README.md")]
    unknown = statehub("accept", "--repo", "nope", config=fleet_config)
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "statehub: unknown repo: nope (no standing assessment)\n",
    )


def test_findings_lists_the_standing_and_the_accepted(fleet_config: Path) -> None:
    """`findings` reads the store (no sweep): reported ones, then --accepted ones, with lines."""
    listed = json.loads(statehub("findings", "--json", config=fleet_config).stdout)
    assert [(f["repo"], f["check"], f["path"], f["line"]) for f in listed] == [
        ("api", "C-23", "tests/certs/server.key", 1),
        ("api", "C-23", "tests/test_tls.py", 2),
        ("web", "C-04", "README.md", 3),
    ]
    assert (
        json.loads(statehub("findings", "--accepted", "--json", config=fleet_config).stdout) == []
    )
    statehub("accept", config=fleet_config)
    _sweep(fleet_config)
    assert json.loads(statehub("findings", "--json", config=fleet_config).stdout) == []
    accepted = statehub("findings", "--accepted", "--check", "C-04", config=fleet_config)
    assert accepted.stdout == (
        "web  C-04  README.md:3  link 'docs/guide.md' points to no file (line 3)\n"
        "1 accepted finding(s)\n"
    )


def test_accepted_findings_are_paged_by_the_store(fleet_config: Path) -> None:
    """The store reads one page of the accepted findings in SQL, with their total; the CLI
    prints that page and says which of how many, as for the standing findings."""
    statehub("accept", config=fleet_config)
    _sweep(fleet_config)
    with Store.open(fleet_config.parent / "statehub.db") as store:
        whole, total = store.accepted_findings()
        page, paged_total = store.accepted_findings(offset=1, limit=1)
        past, past_total = store.accepted_findings(offset=9, limit=2)
        one_check, checked = store.accepted_findings(check="C-23", limit=1)
    assert [(f["repo"], f["check"], f["line"]) for f in whole] == [
        ("api", "C-23", 1),
        ("api", "C-23", 2),
        ("web", "C-04", 3),
    ]
    assert (page, paged_total, total) == (whole[1:2], 3, 3)
    assert (past, past_total) == ([], 3)
    assert (one_check, checked) == (whole[:1], 2)
    listed = statehub("findings", "--accepted", "--offset", "1", "--limit", "1", "--json",
                      config=fleet_config)  # fmt: skip
    assert [(f["repo"], f["line"]) for f in json.loads(listed.stdout)] == [("api", 2)]
    text = statehub("findings", "--accepted", "--offset", "1", "--limit", "5", config=fleet_config)
    assert text.stdout.splitlines()[0].startswith("api  C-23  tests/test_tls.py:2  ")
    assert text.stdout.splitlines()[2:] == ["showing 2-3 of 3 accepted finding(s)"]
    none = statehub("findings", "--accepted", "--offset", "3", config=fleet_config)
    assert none.stdout == "showing none of 3 accepted finding(s) (--offset 3)\n"


def test_findings_pages_with_offset_and_limit_and_says_the_total(fleet_config: Path) -> None:
    """--offset and --limit list a page of the standing findings, in the order of the whole
    list; the text's last line says which of how many, and --json prints the page."""
    whole = json.loads(statehub("findings", "--json", config=fleet_config).stdout)
    assert len(whole) == 3
    page = statehub("findings", "--offset", "1", "--limit", "1", "--json", config=fleet_config)
    assert json.loads(page.stdout) == whole[1:2]
    head = statehub("findings", "--limit", "2", config=fleet_config).stdout.splitlines()
    assert [line.split("  ")[2] for line in head[:2]] == [
        "tests/certs/server.key:1",
        "tests/test_tls.py:2",
    ]
    assert head[2:] == ["showing 1-2 of 3 finding(s)"]
    tail = statehub("findings", "--offset", "2", "--limit", "5", config=fleet_config).stdout
    assert tail.splitlines()[0].startswith("web  C-04  README.md:3  ")
    assert tail.splitlines()[1:] == ["showing 3-3 of 3 finding(s)"]
    past = statehub("findings", "--offset", "9", config=fleet_config)
    assert past.stdout == "showing none of 3 finding(s) (--offset 9)\n"
    everything = statehub("findings", "--limit", "3", "--check", "C-23", config=fleet_config)
    assert everything.stdout.splitlines()[-1] == "2 finding(s)"
    refused = statehub("findings", "--limit", "0", config=fleet_config)
    assert refused.returncode == 2 and "0 is not in 1.." in refused.stderr


def test_prune_drops_entries_of_findings_gone(fleet_config: Path, fleet: Path) -> None:
    """`accept --prune` drops an accepted finding that is gone, and keeps the others."""
    statehub("accept", config=fleet_config)
    (fleet / "web" / "README.md").write_text("# web\n")
    _publish(fleet / "web", "fix the link")
    _sweep(fleet_config)
    done = statehub("accept", "--prune", config=fleet_config)
    assert "0 finding(s)" in done.stdout
    assert ", 1 pruned" in done.stdout
    document = tomllib.loads((fleet_config.parent / "statehub-baseline.toml").read_text())
    assert [e["repo"] for e in document["accepted"]] == ["api", "api"]


def test_a_baseline_path_from_the_config(tmp_path: Path, fleet: Path) -> None:
    """[checks] baseline names the file (relative to the config's folder)."""
    make_repo(fleet, "r", {**good_files("r"), "a.txt": BLOCK})
    config = write_config(tmp_path, roots=[fleet], checks='baseline = "review/accepted.toml"')
    (tmp_path / "review").mkdir()
    _sweep(config)
    statehub("accept", config=config)
    assert (tmp_path / "review" / "accepted.toml").is_file()
    assert _sweep(config)["accepted"]["total"] == 1


def test_a_malformed_baseline_is_a_configuration_error(tmp_path: Path, fleet: Path) -> None:
    """A baseline that is not TOML stops the sweep with one line and exit 78."""
    make_repo(fleet, "r")
    config = write_config(tmp_path, roots=[fleet])
    (tmp_path / "statehub-baseline.toml").write_text("[[accepted]\n")
    done = statehub("sweep", config=config)
    assert done.returncode == 78
    assert done.stderr.startswith("statehub: configuration error: ")
    assert "statehub-baseline.toml: is not a TOML file" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    checked = statehub("config", "check", config=config)
    assert (checked.returncode, checked.stderr) == (78, done.stderr)


def test_accept_before_any_sweep_is_a_usage_error(tmp_path: Path, fleet: Path) -> None:
    """`accept` with no store yet says to sweep first (exit 2), and writes nothing."""
    config = write_config(tmp_path, roots=[fleet])
    done = statehub("accept", config=config)
    assert (done.returncode, done.stderr) == (
        2,
        "statehub: no sweep is recorded yet: run `statehub sweep` first\n",
    )
    assert not (tmp_path / "statehub-baseline.toml").exists()


def test_a_findings_line_reaches_the_event_and_the_api(tmp_path: Path, fleet: Path) -> None:
    """C-04, C-21 and C-23 carry `line` in the sweep's event and in /repos/{name}."""
    from api_support import client, serve_fleet

    files = {
        **good_files("r"),
        "README.md": "# r\n\nSee [x](gone.md).\n",
        "notes.txt": "a\n" + BLOCK,
        "k.pem": "\n\n" + pem(),
    }
    make_repo(fleet, "r", files)
    server = serve_fleet(tmp_path, fleet)
    with server, client(server.url) as http:
        event = http.post("/consistency/sweep/remote-all", json={}).json()
        (entry,) = event["detail"]["repos_processed"]
        assert [(f["check"], f["line"]) for f in entry["findings"]] == [
            ("C-04", 3),
            ("C-21", 2),
            ("C-23", 3),
        ]
        repo = http.get("/repos/r").json()
    assert [(f["check"], f["path"], f["line"]) for f in repo["findings"]] == [
        ("C-04", "README.md", 3),
        ("C-21", "notes.txt", 2),
        ("C-23", "k.pem", 3),
    ]
    assert all("line_hash" not in f for f in repo["findings"])


@pytest.mark.parametrize("git_trusts_its_stat", [True, False], ids=["file", "whole-repo"])
def test_two_users_sweeping_one_repo_do_not_flip_new(
    tmp_path: Path, fleet: Path, git_trusts_its_stat: bool
) -> None:
    """A key one sweeper cannot read is a C-00 naming it; its C-23 stands, never new again.

    Where the index's stat of the key still holds, only the content check meets the key
    (a C-00 naming it); where it does not, libgit2 must hash the key and the whole read
    fails (a C-00 for the repo). Either way the C-23 of the owner's sweep stands.
    """
    import os
    import shutil
    import subprocess

    import clirun

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to sweep as a user who may not read the key")
    # Root without the capabilities that bypass file permissions: a user that is not the
    # key's owner (the units run as their own user), sharing the store.
    other = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
    root = make_repo(fleet, "api", {**good_files("api"), "deploy/id_rsa": pem()})
    key = root / "deploy" / "id_rsa"
    key.chmod(0)
    if git_trusts_its_stat:
        os.utime(key, (key.stat().st_mtime - 60,) * 2)  # as committed: not racily clean
        git(root, "update-index", "--refresh")
    else:
        os.utime(key, (key.stat().st_mtime + 60,) * 2)  # touched since: git must hash it
    config = write_config(tmp_path, roots=[fleet])

    def sweep_as(prefix: tuple[str, ...]) -> dict[str, Any]:
        done = subprocess.run(
            [*prefix, *clirun.command(["sweep", "--json"], config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=clirun.environment(None, ()),
        )
        detail: dict[str, Any] = json.loads(done.stdout)["detail"]
        return detail

    def findings(detail: dict[str, Any]) -> list[tuple[str, str | None, bool]]:
        return [
            (f["check"], f["path"], f["new"])
            for entry in detail["repos_processed"]
            for f in entry["findings"]
        ]

    owner = sweep_as(())
    assert findings(owner) == [("C-23", "deploy/id_rsa", False)]
    (root / "NOTES.md").write_text("a change: the next sweep reads the repo again\n")
    _publish(root, "notes")
    stranger = sweep_as(other)
    unread_path = "deploy/id_rsa" if git_trusts_its_stat else None
    assert findings(stranger) == [("C-00", unread_path, True), ("C-23", "deploy/id_rsa", False)]
    message = stranger["automation_errors"][0]["message"]
    assert "id_rsa" in message
    assert "ermission denied" in message
    again = sweep_as(())
    assert findings(again) == [("C-23", "deploy/id_rsa", False)]
    assert again["new_findings"] == 0
