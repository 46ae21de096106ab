"""Hostile repositories in one fleet with good ones: each gets its exact outcome in budget.

Complements tests/test_hostile.py (config keys and attributes that would run commands):
here the file system itself is hostile. Symlink loops (as a repo folder, as a configured
path, inside a work tree), a 50 MB sparse tracked file, a ``.git`` file pointing nowhere,
file and folder names that are not UTF-8, a 5,000-file repo and a fetch that hangs. Every
repo carries active hooks that would leave a marker; a sweep, with or without ``--remote``,
must run none of them and change nothing in the fleet but what ``git fetch`` writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from faultkit import tree_snapshot

from clirun import statehub
from gitfleet import HangingServer, commit_all, git, good_files, make_repo, write_config

MAX_SECONDS = 20
FETCH_TIMEOUT = 3
MARGIN = 10  # seconds over max_seconds for the process to start, record and exit
HOOKS = (
    "post-index-change",
    "reference-transaction",
    "fsmonitor-watchman",
    "post-checkout",
    "post-merge",
    "pre-auto-gc",
)
NOT_UTF8 = "caf\udce9"  # the folder name b"caf\xe9" as Python decodes it (PEP 383)


def build(fleet: Path, outside: Path, hanging: HangingServer) -> dict[str, Path]:
    """The hostile fleet; returns every work tree with a .git folder, by repo name."""
    trees = {name: make_repo(fleet, name) for name in ("good-1", "good-2")}
    os.symlink("loop", fleet / "loop")  # a loop where a repo folder would be
    os.symlink("loop2", outside / "loop2")  # ... and one configured by path

    loopy = make_repo(fleet, "loopy")
    os.symlink("self", loopy / "self")
    os.symlink("..", loopy / "up")
    commit_all(loopy, "links that loop")
    git(loopy, "push", "-q")
    os.symlink("spin", loopy / "spin")  # and an untracked one
    trees["loopy"] = loopy

    sparse = make_repo(fleet, "sparse")
    with (sparse / "big.bin").open("wb") as handle:
        handle.truncate(50 << 20)
    commit_all(sparse, "a 50 MB sparse file")
    git(sparse, "push", "-q")
    trees["sparse"] = sparse

    nowhere = fleet / "nowhere"
    nowhere.mkdir()
    (nowhere / ".git").write_text(f"gitdir: {outside / 'gone.git'}\n")
    (nowhere / "README.md").write_text("# nowhere\n")

    names = make_repo(fleet, "badnames")
    raw = os.fsencode(names)
    for name in (b"caf\xe9.txt", b"\xff\xfe.md"):
        with open(raw + b"/" + name, "wb") as handle:
            handle.write(b"hello\n")
    with open(raw + b"/big-\xe9.bin", "wb") as handle:
        handle.truncate(600 * 1024)
    commit_all(names, "names that are not UTF-8")
    git(names, "push", "-q")
    with open(raw + b"/untracked-\xe9.txt", "wb") as handle:
        handle.write(b"not committed\n")
    trees["badnames"] = names

    trees["caf\\xe9"] = make_repo(fleet, NOT_UTF8, good_files("cafe"))

    files = good_files("many")
    for n in range(5000):
        files[f"src/d{n % 50:02d}/f{n:04d}.txt"] = f"line {n}\n"
    trees["many"] = make_repo(fleet, "many", files)

    hang = make_repo(fleet, "hang", origin_url=hanging.url)
    trees["hang"] = hang
    return trees


def arm(trees: dict[str, Path], markers: Path) -> None:
    """Active hooks in every repo: each would leave a file in ``markers`` if run."""
    for name, root in trees.items():
        hooks = root / ".git" / "hooks"
        hooks.mkdir(exist_ok=True)
        for hook in HOOKS:
            script = hooks / hook
            script.write_text(f"#!/bin/sh\ntouch '{markers}/{name}-{hook}'\n")
            script.chmod(0o755)


def outcomes(detail: dict[str, Any]) -> dict[str, list[tuple[str, str, str | None]]]:
    return {
        item["repo"]: [(f["check"], f["message"], f["path"]) for f in item["findings"]]
        for item in detail["repos_processed"]
    }


def sweep(config: Path, *args: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    result = statehub("sweep", "--json", *args, config=config, timeout=MAX_SECONDS + MARGIN)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr  # the C-00s below
    assert result.stderr == ""
    detail: dict[str, Any] = json.loads(result.stdout)["detail"]
    return detail, elapsed


@pytest.mark.long(17)
def test_hostile_fleet_is_assessed_within_budget(tmp_path: Path, fleet: Path) -> None:
    """10 repos: each hostile one gets its exact finding or C-00, all in budget, none run."""
    outside = tmp_path / "outside"
    outside.mkdir()
    markers = tmp_path / "markers"
    markers.mkdir()
    with HangingServer() as hanging:
        trees = build(fleet, outside, hanging)
        arm(trees, markers)
        configs = {}
        for mode in ("local", "remote"):  # one database each: every repo assessed twice
            (tmp_path / mode).mkdir()
            configs[mode] = write_config(
                tmp_path / mode,
                roots=[fleet],
                repos=f'paths = ["{outside / "loop2"}"]',
                sweep=f"max_seconds = {MAX_SECONDS}\nfetch_timeout_seconds = {FETCH_TIMEOUT}",
            )
        before = tree_snapshot(tmp_path / "fleet")
        local, local_seconds = sweep(configs["local"])
        again, _ = sweep(configs["local"])  # unchanged: judged from file stats alone
        after_local = tree_snapshot(tmp_path / "fleet")
        remote, remote_seconds = sweep(configs["remote"], "--remote")
        after_remote = tree_snapshot(tmp_path / "fleet")

    loop2 = f"cannot examine {outside / 'loop2'}: too many levels of symbolic links"
    expected: dict[str, list[tuple[str, str, str | None]]] = {
        "good-1": [],
        "good-2": [],
        "loop2": [("C-00", loop2, None)],
        "loopy": [("C-15", "1 untracked file not ignored: spin", None)],
        "sparse": [("C-22", "file is 51200 KB, over the 500 KB limit", "big.bin")],
        "nowhere": [("C-00", f".git points to {outside / 'gone.git'}, which does not exist", None)],
        "badnames": [
            ("C-15", "1 untracked file not ignored: untracked-\\xe9.txt", None),
            ("C-22", "file is 600 KB, over the 500 KB limit", "big-\\xe9.bin"),
        ],
        "caf\\xe9": [],
        "many": [],
        "hang": [("C-18", "branch 'main' has no upstream", None)],
    }
    clean = sorted(name for name, found in expected.items() if not found)
    assert outcomes(local) == {name: found for name, found in expected.items() if found}
    assert sorted(local["skipped_clean"]) == clean
    # The second sweep re-reads only the C-00s (always tried again); the other repos with
    # findings are listed with their standing findings, reused.
    assert outcomes(again) == outcomes(local)
    assert again["repos_reassessed"] == 2
    assert {item["repo"] for item in again["repos_processed"] if item["reassessed"]} == {
        "loop2",
        "nowhere",
    }
    assert sorted(again["skipped_clean"]) == clean
    expected["hang"] = [
        ("C-00", f"git fetch origin timed out after {FETCH_TIMEOUT} s", None),
        *expected["hang"],
    ]
    assert outcomes(remote) == {name: found for name, found in expected.items() if found}

    for detail, seconds in ((local, local_seconds), (remote, remote_seconds)):
        # 10 repos, the symlink loop under the root is no repo; all assessed in budget.
        assert detail["repos_total"] == 10
        assert detail["skipped_budget"] == []
        assert sorted(detail["skipped_clean"]) == clean
        assert detail["repos_reassessed"] == 10
        assert detail["skipped_missing"] == []
        assert detail["duration_seconds"] <= MAX_SECONDS
        assert seconds <= MAX_SECONDS + MARGIN
    assert {e["repo"] for e in remote["automation_errors"]} == {"loop2", "nowhere", "hang"}
    print(f"local sweep {local_seconds:.1f} s, --remote sweep {remote_seconds:.1f} s")

    # Nothing ran, and nothing changed but what git fetch writes: FETCH_HEAD (created at
    # the start of a fetch, so the hanging one's too) in each git folder of the 8 repos.
    assert sorted(os.listdir(markers)) == []
    assert after_local == before
    changed = {
        path
        for path in before.keys() | after_remote.keys()
        if before.get(path) != after_remote.get(path)
    }
    assert len(trees) == 8
    assert changed == {
        f"{root}/.git{leaf}" for root in trees.values() for leaf in ("", "/FETCH_HEAD")
    }
