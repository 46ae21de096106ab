"""The sweep: selection, order, clean skips, missing repos, budget, lock, event, recovery."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_support import event_rows
from clirun import start_statehub, statehub
from contract_keys import DETAIL_KEYS
from gitfleet import HangingServer, commit_all, fleet_settings, git, make_repo, write, write_config
from holding import held_by_another_process
from statehub import contract, sweep
from statehub.errors import UsageError
from statehub.lock import SweepLock, is_locked, lock_path
from statehub.settings import load_settings
from statehub.store import Store
from statehub.sweep import EVENT_ALL, EVENT_CHOSEN, discover, run_sweep
from waiting import wait_for


@contextlib.contextmanager
def lock_held_elsewhere(database: Path) -> Iterator[None]:
    """The sweep lock of ``database`` held by another process until the block ends (then
    the process is killed: its lock dies with it)."""
    code = (
        "import sys, time; from pathlib import Path; from statehub.lock import SweepLock;"
        "lock = SweepLock(Path(sys.argv[1])); assert lock.acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    with held_by_another_process(code, str(database)):
        yield


def processed(detail: dict[str, object]) -> dict[str, list[str]]:
    """repo -> sorted check ids of this sweep's findings."""
    items = detail["repos_processed"]
    assert isinstance(items, list)
    return {item["repo"]: sorted(f["check"] for f in item["findings"]) for item in items}


def test_event_has_every_contract_key(tmp_path: Path, fleet: Path) -> None:
    """A sweep of all repos records one event with every key of contract section 5."""
    write(make_repo(fleet, "alpha"), {"scratch.txt": "x"})
    settings = fleet_settings(tmp_path, roots=[fleet])

    event = run_sweep(settings, source="activity-core")

    assert event.event_type == EVENT_ALL
    assert set(event.detail) == DETAIL_KEYS
    assert event.detail["source"] == "activity-core"
    assert event.detail["lock_skipped"] is False
    assert event.detail["repos_total"] == 1
    assert processed(event.detail) == {"alpha": ["C-15"]}
    assert (
        event.detail["repos_processed"][0]["head"]
        == git(fleet / "alpha", "rev-parse", "--short=7", "HEAD").stdout.strip()
    )
    assert event.detail["started_at"] <= event.detail["finished_at"] == event.created_at
    assert event.created_at.endswith("Z")
    assert event_rows(settings.database_path) == [event.as_dict()]


def test_contract_py_spells_the_keys_of_section_5() -> None:
    """contract.DETAIL_KEYS, which the code reads and writes, are the keys the contract shows."""
    assert contract.DETAIL_KEYS == DETAIL_KEYS


def test_chosen_repos_make_a_consistency_sweep_event(tmp_path: Path, fleet: Path) -> None:
    """--repo NAME sweeps only that repo and records event_type consistency_sweep."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    settings = fleet_settings(tmp_path, roots=[fleet])

    event = run_sweep(settings, repos=["beta"])

    assert event.event_type == EVENT_CHOSEN
    assert event.detail["skipped_clean"] == ["beta"]
    assert event.detail["repos_total"] == 1


def test_unknown_repo_name_is_a_usage_error(tmp_path: Path, fleet: Path) -> None:
    """A repo name that is neither configured nor known raises UsageError and records nothing."""
    make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])

    with pytest.raises(UsageError, match="nope"):
        run_sweep(settings, repos=["nope"])
    assert event_rows(settings.database_path) == []


def test_unchanged_repos_are_skipped_clean_and_keep_their_findings(
    tmp_path: Path, fleet: Path
) -> None:
    """A second sweep re-reads nothing; the repo with findings is still listed, reused."""
    make_repo(fleet, "clean")
    dirty = make_repo(fleet, "dirty")
    write(dirty, {"scratch.txt": "x"})
    settings = fleet_settings(tmp_path, roots=[fleet])

    first = run_sweep(settings)
    second = run_sweep(settings)

    assert processed(first.detail) == processed(second.detail) == {"dirty": ["C-15"]}
    assert first.detail["skipped_clean"] == second.detail["skipped_clean"] == ["clean"]
    assert first.detail["repos_processed"][0]["reassessed"] is True
    assert second.detail["repos_processed"][0]["reassessed"] is False
    assert second.detail["repos_processed"][0]["head"] == first.detail["repos_processed"][0]["head"]
    assert (first.detail["repos_reassessed"], second.detail["repos_reassessed"]) == (2, 0)
    assert first.detail["assessment_failures"] == second.detail["assessment_failures"] == 1


def test_a_clean_repo_that_changed_is_skipped_clean(tmp_path: Path, fleet: Path) -> None:
    """A repo re-read with no finding is in skipped_clean, not in repos_processed."""
    repo = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    write(repo, {"notes.md": "more\n"})
    commit_all(repo)
    git(repo, "push", "-q")

    event = run_sweep(settings)

    assert event.detail["repos_reassessed"] == 1
    assert event.detail["repos_processed"] == []
    assert event.detail["skipped_clean"] == ["alpha"]


def test_a_folder_that_is_not_a_work_tree_is_reused_when_unchanged(
    tmp_path: Path, fleet: Path
) -> None:
    """C-12: read once, then reused like any unchanged repo until it becomes a work tree."""
    plain = fleet / "plain"
    (plain / "sub").mkdir(parents=True)
    settings = fleet_settings(tmp_path, roots=[fleet], repos=f'paths = ["{plain}"]')

    first = run_sweep(settings)
    second = run_sweep(settings)
    git(plain, "init", "-q", "-b", "main")
    third = run_sweep(settings)

    assert processed(first.detail)["plain"] == processed(second.detail)["plain"] == ["C-12"]
    assert [e["reassessed"] for e in first.detail["repos_processed"]] == [True]
    assert [e["reassessed"] for e in second.detail["repos_processed"]] == [False]
    assert second.detail["repos_reassessed"] == 0
    assert "C-12" not in processed(third.detail).get("plain", [])
    assert third.detail["repos_reassessed"] == 1


@pytest.mark.parametrize(
    "change",
    [
        "edit_untracked_again",
        "edit_tracked_same_size",
        "delete_tracked",
        "new_file_in_untracked_folder",
        "new_untracked_folder",
        "commit",
        "stage",
        "new_branch_ref",
        "repo_config",
        "settings",
    ],
)
def test_any_change_makes_a_repo_assessed_again(tmp_path: Path, fleet: Path, change: str) -> None:
    """A change to HEAD, refs, the index, the work tree or the check settings ends a clean skip."""
    repo = make_repo(fleet, "alpha")
    write(repo, {"scratch.txt": "one", "notes/a.txt": "a"})
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    time.sleep(0.01)  # a new mtime even on a coarse clock

    if change == "edit_untracked_again":
        write(repo, {"scratch.txt": "one and two"})
    elif change == "edit_tracked_same_size":
        text = (repo / "AGENTS.md").read_text()
        write(repo, {"AGENTS.md": text.replace("pytest", "PYTEST")})
    elif change == "delete_tracked":
        (repo / "AGENTS.md").unlink()
    elif change == "new_file_in_untracked_folder":
        write(repo, {"notes/b.txt": "b"})
    elif change == "new_untracked_folder":
        write(repo, {"more/c.txt": "c"})
    elif change == "repo_config":
        git(repo, "config", "core.pager", "less")
    elif change == "commit":
        commit_all(repo)
    elif change == "stage":
        git(repo, "add", "scratch.txt")
    elif change == "new_branch_ref":
        git(repo, "branch", "feature")
    else:
        settings = fleet_settings(tmp_path, roots=[fleet], checks='disable = ["C-15"]')

    event = run_sweep(settings)

    assert event.detail["repos_reassessed"] == 1
    assert [entry["reassessed"] for entry in event.detail["repos_processed"]] in ([], [True])
    assert len(event.detail["repos_processed"]) + len(event.detail["skipped_clean"]) == 1


def test_missing_configured_path_and_vanished_repo(tmp_path: Path, fleet: Path) -> None:
    """A configured path that does not exist, and a vanished repo, are skipped_missing."""
    make_repo(fleet, "stays")
    gone = make_repo(fleet, "goes")
    ghost = tmp_path / "never-there"
    config = write_config(tmp_path, roots=[fleet], extra="", repos=f'paths = ["{ghost}"]')
    settings = load_settings(config)
    run_sweep(settings)

    subprocess.run(["rm", "-rf", str(gone)], check=True)
    event = run_sweep(settings)

    assert sorted(event.detail["skipped_missing"]) == ["goes", "never-there"]
    with Store.open(settings.database_path) as store:
        assert "goes" not in store.assessed_repos()


def test_least_recently_assessed_first_and_budget_rotation(tmp_path: Path, fleet: Path) -> None:
    """A budget that runs out leaves skipped_budget repos, which come first in the next sweep."""
    for name in ("a", "b", "c"):
        make_repo(fleet, name)
    settings = fleet_settings(tmp_path, roots=[fleet], sweep="workers = 1")
    run_sweep(settings)  # all three assessed at one moment: the order is then by name
    stalled = fleet / "b"
    head = git(stalled, "rev-parse", "HEAD").stdout.strip()
    loose = stalled / ".git" / "objects" / head[:2] / head[2:]
    loose.unlink()
    os.mkfifo(loose)  # reading b now blocks in libgit2 until its worker is killed
    (stalled / "README.md").write_text("# b, edited\n", encoding="utf-8")  # so b is re-read

    started = time.monotonic()
    second = run_sweep(settings, max_seconds=1)
    elapsed = time.monotonic() - started

    assert elapsed < 4  # the stuck worker was killed at the budget
    assert second.detail["skipped_clean"] == ["a"]
    assert second.detail["skipped_budget"] == ["b", "c"]
    assert second.detail["exit_code"] == 0

    loose.unlink()
    order: list[str] = []
    run_sweep(settings, progress=lambda done, total, repo: order.append(repo))
    assert order == ["b", "c", "a"]


def test_lock_held_by_another_process_gives_lock_skipped_event(tmp_path: Path, fleet: Path) -> None:
    """While another process holds the sweep lock, a sweep records lock_skipped at once."""
    make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    with lock_held_elsewhere(settings.database_path):
        assert is_locked(settings.database_path)
        event = run_sweep(settings, source="local-daemon")

    assert event.detail["lock_skipped"] is True
    assert event.detail["started_at"] == event.detail["finished_at"]
    assert event.detail["repos_processed"] == []
    assert event.detail["exit_code"] == 0
    assert not is_locked(settings.database_path)  # the dead holder freed it
    assert run_sweep(settings).detail["lock_skipped"] is False


def test_two_sweeps_in_one_process_exclude_each_other(tmp_path: Path, fleet: Path) -> None:
    """The flock is per open file, so a second lock in the same process is refused too."""
    settings = fleet_settings(tmp_path, roots=[fleet])
    with SweepLock(settings.database_path) as lock:
        assert lock.acquire()
        assert run_sweep(settings).detail["lock_skipped"] is True


def test_kill_minus_nine_keeps_events_and_frees_the_lock(tmp_path: Path, fleet: Path) -> None:
    """kill -9 mid-sweep: earlier events kept, lock free, next sweep runs, the kill recorded."""
    hanging = make_repo(fleet, "hangs")
    make_repo(fleet, "fine")
    config = write_config(tmp_path, roots=[fleet], sweep="fetch_timeout_seconds = 60")
    settings = load_settings(config)
    earlier = run_sweep(settings)
    with HangingServer() as server:
        git(hanging, "remote", "set-url", "origin", server.url)
        process = start_statehub("sweep", "--remote", config=config)
        wait_for(lambda: is_locked(settings.database_path), 20, "the sweep to take the lock")
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    with sqlite3.connect(settings.database_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not is_locked(settings.database_path)
    assert event_rows(settings.database_path)[0] == earlier.as_dict()

    after = run_sweep(settings)
    events = event_rows(settings.database_path)
    assert [e["id"] for e in events] == [earlier.id, earlier.id + 1, after.id]
    interrupted = events[1]["detail"]
    assert interrupted["interrupted"] is True
    assert interrupted["automation_error"] is True
    assert interrupted["remote"] is True
    assert after.detail["lock_skipped"] is False


def test_unreadable_repo_is_c00_and_the_rest_are_assessed(tmp_path: Path, fleet: Path) -> None:
    """A .git file pointing nowhere gives C-00 and exit_code 1; the other repos are assessed."""
    make_repo(fleet, "good")
    broken = fleet / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere/at/all\n")
    settings = fleet_settings(tmp_path, roots=[fleet])

    event = run_sweep(settings)

    assert processed(event.detail) == {"broken": ["C-00"]}
    assert event.detail["skipped_clean"] == ["good"]
    assert event.detail["exit_code"] == 1
    assert event.detail["automation_error"] is True
    [error] = event.detail["automation_errors"]
    assert error["repo"] == "broken"
    assert error["check"] == "C-00"


def test_c00_can_be_switched_off(tmp_path: Path, fleet: Path) -> None:
    """With C-00 disabled, an unreadable repo reports nothing and the sweep exits 0."""
    broken = fleet / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere/at/all\n")
    settings = fleet_settings(tmp_path, roots=[fleet], checks='disable = ["C-00"]')

    event = run_sweep(settings)

    assert processed(event.detail) == {}
    assert event.detail["skipped_clean"] == ["broken"]
    assert event.detail["exit_code"] == 0


def test_assessment_failures_count_the_whole_fleet(tmp_path: Path, fleet: Path) -> None:
    """assessment_failures counts every repo with a C-01..C-23 finding, even in a --repo sweep."""
    for name in ("one", "two"):
        write(make_repo(fleet, name), {"scratch.txt": "x"})
    make_repo(fleet, "three")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)

    event = run_sweep(settings, repos=["three"])

    assert event.detail["assessment_failures"] == 2


def test_duplicate_names_get_a_suffix(tmp_path: Path) -> None:
    """Two repos with one folder name are told apart by a suffix, with a warning."""
    first, second = tmp_path / "one", tmp_path / "two"
    make_repo(first, "same", with_origin=False)
    make_repo(second, "same", with_origin=False)
    settings = fleet_settings(tmp_path, roots=[first, second])

    fleet_found = discover(settings)

    assert [t.name for t in fleet_found.targets] == ["same", "same~2"]
    assert "same" in fleet_found.warnings[0]


def test_exclude_patterns_leave_repos_out(tmp_path: Path, fleet: Path) -> None:
    """Repos whose names match an exclude glob are not part of the fleet."""
    make_repo(fleet, "keep", with_origin=False)
    make_repo(fleet, "old-archive", with_origin=False)
    settings = fleet_settings(tmp_path, roots=[fleet], repos='exclude = ["*-archive"]')

    assert [t.name for t in discover(settings).targets] == ["keep"]


def test_a_repo_left_out_by_exclude_is_never_missing(tmp_path: Path, fleet: Path) -> None:
    """A repo swept once and then excluded is not skipped_missing: it left the fleet."""
    make_repo(fleet, "keep", with_origin=False)
    make_repo(fleet, "old-archive", with_origin=False)
    run_sweep(fleet_settings(tmp_path, roots=[fleet]))
    settings = fleet_settings(tmp_path, roots=[fleet], repos='exclude = ["*-archive"]')

    first, second = run_sweep(settings), run_sweep(settings)

    assert first.detail["skipped_missing"] == second.detail["skipped_missing"] == []
    assert first.detail["repos_total"] == 1
    with Store.open(settings.database_path) as store:
        assert store.assessed_repos() == {"keep"}


def test_a_fetch_cut_by_the_sweeps_deadline_is_over_budget(tmp_path: Path, fleet: Path) -> None:
    """--remote: a fetch that hangs until the sweep's budget ends is skipped_budget, exit 0."""
    make_repo(fleet, "fine", with_origin=False)
    with HangingServer() as server:
        make_repo(fleet, "slow", origin_url=server.url)
        settings = fleet_settings(
            tmp_path,
            roots=[fleet],
            sweep="max_seconds = 4\nfetch_timeout_seconds = 60\nrepo_timeout_seconds = 60",
        )
        event = run_sweep(settings, remote=True)

    assert event.detail["skipped_budget"] == ["slow"]
    assert event.detail["automation_errors"] == []
    assert (event.detail["exit_code"], event.detail["automation_error"]) == (0, False)
    assert [*processed(event.detail), *event.detail["skipped_clean"]] == ["fine"]


def test_a_fetch_past_its_own_timeout_is_a_c00(tmp_path: Path, fleet: Path) -> None:
    """--remote: a fetch that outlasts fetch_timeout_seconds well within the budget is a C-00."""
    with HangingServer() as server:
        make_repo(fleet, "slow", origin_url=server.url)
        settings = fleet_settings(
            tmp_path, roots=[fleet], sweep="max_seconds = 60\nfetch_timeout_seconds = 1"
        )
        event = run_sweep(settings, remote=True)

    assert event.detail["skipped_budget"] == []
    assert [e["message"] for e in event.detail["automation_errors"]] == [
        "git fetch origin timed out after 1 s"
    ]
    assert event.detail["exit_code"] == 1


def test_a_file_name_that_is_not_utf8_is_assessed_and_shown_escaped(
    tmp_path: Path, fleet: Path
) -> None:
    """An untracked folder named with byte 0xff and a tracked file with 0xfe: the repo is
    assessed (no C-00), each shown escaped in the event, the table and the store, and an
    unchanged re-sweep skips it clean."""
    root = make_repo(fleet, "alpha")
    raw = os.fsencode(root)
    markers = "<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n"
    Path(os.fsdecode(raw + b"/conflict\xfe.txt")).write_text(markers)
    commit_all(root, "a file whose name is not UTF-8")
    git(root, "push", "-q")
    os.mkdir(raw + b"/\xff")
    (Path(os.fsdecode(raw + b"/\xff")) / "notes.txt").write_text("x\n")
    config = write_config(tmp_path, roots=[fleet])
    first = statehub("sweep", "--all", "--json", config=config)
    table = statehub("findings", config=config)
    second = statehub("sweep", "--all", "--json", config=config)
    assert first.returncode == 0, first.stderr
    assert "C-00" not in first.stdout and "codec" not in first.stdout
    assert "\\\\xff/notes.txt" in first.stdout  # JSON of the text \xff/notes.txt
    assert "conflict\\\\xfe.txt" in first.stdout
    assert "\\xff/notes.txt" in table.stdout, table.stderr
    assert json.loads(second.stdout)["detail"]["repos_processed"][0]["reassessed"] is False


def test_the_database_and_the_lock_are_created_owner_only(tmp_path: Path, fleet: Path) -> None:
    """Under a umask of 022, the database, its WAL and the lock file are created 0600."""
    make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    old = os.umask(0o022)
    try:
        run_sweep(settings)
        with Store.open(settings.database_path) as store:  # a reader keeps the WAL file
            store.events(limit=1)
            database = settings.database_path
            modes = {
                path.name: path.stat().st_mode & 0o777
                for path in (database, Path(f"{database}-wal"), lock_path(database))
            }
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(modes, 0o600)


def test_two_configurations_reaching_one_database_by_a_hard_link_share_its_lock(
    tmp_path: Path, fleet: Path
) -> None:
    """A sweep through a hard link of the database is lock-skipped while another process
    sweeps through the first name: the lock follows the file, not its path."""
    make_repo(fleet, "alpha")
    (tmp_path / "one").mkdir()
    first = fleet_settings(tmp_path / "one", roots=[fleet])
    run_sweep(first)
    other = tmp_path / "two"
    other.mkdir()
    os.link(first.database_path, other / "statehub.db")
    second = fleet_settings(other, roots=[fleet])
    with lock_held_elsewhere(first.database_path):
        assert is_locked(second.database_path)
        skipped = run_sweep(second, source="local-daemon")
    assert skipped.detail["lock_skipped"] is True
    assert run_sweep(second).detail["lock_skipped"] is False


def test_an_event_lists_at_most_100_findings_of_a_repo_and_says_how_many(
    tmp_path: Path, fleet: Path
) -> None:
    """A repo with 250 invalid workplans: its event entry keeps the first 100 findings with
    findings_total and truncated, `statehub sweep` says how many it did not list; the
    standing assessment keeps them all."""
    files = {f"workplans/bad-{n:03d}.md": "no front matter\n" for n in range(250)}
    make_repo(fleet, "plans", files)
    write(make_repo(fleet, "untracked"), {"notes.txt": "x\n"})  # listed whole
    settings = fleet_settings(tmp_path, roots=[fleet])
    event = run_sweep(settings)
    [entry] = [e for e in event.detail["repos_processed"] if e["repo"] == "plans"]
    with Store.open(settings.database_path) as store:
        standing = store.assessments()["plans"]
        [stored] = store.events(limit=1)
    assert len(entry["findings"]) == 100
    assert entry["truncated"] is True
    assert entry["findings_total"] == len(standing.findings) > 250
    assert stored.detail == event.detail and event.detail["findings_truncated"] is True
    shown = statehub("sweep", config=tmp_path / "statehub.toml")
    unlisted = entry["findings_total"] - 100
    assert f"{unlisted} more finding(s) not listed here: statehub findings" in shown.stdout


def test_an_event_lists_a_bounded_number_of_findings_whatever_the_fleet(
    tmp_path: Path, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fleet-wide bound at 20, 30 repos of 4 findings each: the event lists 20
    findings, every later entry lists none with findings_total and truncated, every repo
    keeps its entry, and assessment_failures counts the whole fleet; the re-sweep the same.
    Both are stored compact, and plain SQL on progress_events reads them back alike."""
    monkeypatch.setattr(sweep, "EVENT_FINDINGS", 20)
    for n in range(30):
        make_repo(fleet, f"repo-{n:02d}", {f"workplans/bad-{k}.md": "none\n" for k in range(3)})
    make_repo(fleet, "clean")
    settings = fleet_settings(tmp_path, roots=[fleet])
    first, again = run_sweep(settings), run_sweep(settings)
    with Store.open(settings.database_path) as store:
        standing = store.assessments()
        stored = {event.id: event.detail for event in store.events(limit=2)}
    totals = {name: len(a.findings) for name, a in standing.items() if a.findings}
    assert len(totals) == 30 and min(totals.values()) >= 4
    for event in (first, again):
        entries = event.detail["repos_processed"]
        assert stored[event.id] == event.detail
        assert sorted(entry["repo"] for entry in entries) == sorted(totals)
        assert sum(len(entry["findings"]) for entry in entries) == 20
        cut = [entry for entry in entries if entry.get("truncated")]
        assert len(cut) == 30 - 20 // min(totals.values())
        assert all(entry["findings_total"] == totals[entry["repo"]] for entry in cut)
        assert [entry["findings"] for entry in cut[1:]] == [[]] * (len(cut) - 1)
        assert event.detail["findings_truncated"] is True
        assert event.detail["assessment_failures"] == 30
        assert event.detail["skipped_clean"] == ["clean"]
    assert [e["reassessed"] for e in again.detail["repos_processed"]] == [False] * 30
    assert [(row["id"], row["detail"]) for row in event_rows(settings.database_path)] == [
        (first.id, first.detail),
        (again.id, again.detail),
    ]
    with sqlite3.connect(settings.database_path) as connection:
        whole = connection.execute("SELECT count(*) FROM sweep_events WHERE entries IS NULL")
        assert whole.fetchone() == (0,)
