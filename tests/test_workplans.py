"""The workplan registry: each sweep reconciles it with the fleet's files (issue 26)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from gitfleet import commit_all, fleet_settings, git, make_repo, workplan, write
from statehub.settings import Settings
from statehub.store import Store
from statehub.sweep import run_sweep

PLAN = "workplans/DEMO-WP-0001-plan.md"


def plans(settings: Settings, **filters: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(repo, key) -> the registry's record of each plan."""
    with Store.open(settings.database_path) as store:
        _, rows = store.workplans(**filters)
    return {(row["repo"], row["key"]): row for row in rows}


def changes_of(settings: Settings, run_id: str) -> list[str]:
    """The summaries of one sweep's changes, in the order they were recorded."""
    with Store.open(settings.database_path) as store:
        rows = store.workplan_changes(run_id=run_id)
    return [row["summary"] for row in reversed(rows)]


def test_first_sweep_records_every_plan(tmp_path: Path, fleet: Path) -> None:
    """The first sweep records each plan's id, title, status, path and scalar keys as added."""
    write(
        make_repo(fleet, "alpha"),
        {
            PLAN: "---\nid: DEMO-WP-0001\ntitle: Cut over\nstatus: active\nowner: ana\n"
            "due: 2026-12-01\ntags: [a, b]\n---\n"
        },
    )
    commit_all(fleet / "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])

    event = run_sweep(settings)

    found = plans(settings)
    assert set(found) == {("alpha", "DEMO-WP-0001"), ("alpha", "DEMO-WP-0002")}
    first = found[("alpha", "DEMO-WP-0001")]
    assert (first["title"], first["status"], first["path"]) == ("Cut over", "active", PLAN)
    assert first["fields"] == {"owner": "ana", "due": "2026-12-01"}  # the list is left out
    assert first["first_seen"] == first["last_seen"] == first["changed_at"]
    assert event.detail["workplan_changes"] == {"added": 2, "changed": 0, "moved": 0, "removed": 0}


def test_status_change_is_one_change(tmp_path: Path, fleet: Path) -> None:
    """A plan whose status moves is recorded as 'ID: old -> new' by the sweep that saw it."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    write(root, {PLAN: workplan("DEMO-WP-0001", status="finished")})
    commit_all(root)

    event = run_sweep(settings)

    assert changes_of(settings, event.detail["run_id"]) == ["DEMO-WP-0001: active -> finished"]
    assert event.detail["workplan_changes"]["changed"] == 1
    assert plans(settings)[("alpha", "DEMO-WP-0001")]["status"] == "finished"


def test_new_plan_is_added(tmp_path: Path, fleet: Path) -> None:
    """A workplan file added to a repo is one 'added' change."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    write(root, {"workplans/DEMO-WP-0003-more.md": workplan("DEMO-WP-0003", status="draft")})

    event = run_sweep(settings)

    assert changes_of(settings, event.detail["run_id"]) == ["DEMO-WP-0003: added (draft)"]
    assert ("alpha", "DEMO-WP-0003") in plans(settings)


def test_rename_with_same_id_is_a_move(tmp_path: Path, fleet: Path) -> None:
    """A file renamed with the same id is one plan moved, its first sighting kept."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    before = plans(settings)[("alpha", "DEMO-WP-0001")]
    git(root, "mv", PLAN, "workplans/DEMO-WP-0001-renamed.md")
    commit_all(root)

    event = run_sweep(settings)

    assert changes_of(settings, event.detail["run_id"]) == [
        f"DEMO-WP-0001: moved {PLAN} -> workplans/DEMO-WP-0001-renamed.md"
    ]
    after = plans(settings)[("alpha", "DEMO-WP-0001")]
    assert after["path"] == "workplans/DEMO-WP-0001-renamed.md"
    assert after["first_seen"] == before["first_seen"]
    assert event.detail["workplan_changes"] == {"added": 0, "changed": 0, "moved": 1, "removed": 0}


def test_removed_plan_leaves_the_registry_its_history_stays(tmp_path: Path, fleet: Path) -> None:
    """A deleted workplan is removed from the registry and its removal recorded."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    git(root, "rm", "-q", PLAN)
    commit_all(root)

    event = run_sweep(settings)

    assert set(plans(settings)) == {("alpha", "DEMO-WP-0002")}
    assert changes_of(settings, event.detail["run_id"]) == ["DEMO-WP-0001: removed (was active)"]


def test_repo_leaving_the_fleet_leaves_the_registry(tmp_path: Path, fleet: Path) -> None:
    """A repo gone from the fleet takes its plans out of the registry; their history stays."""
    make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    shutil.rmtree(fleet / "beta")

    event = run_sweep(settings)

    assert {repo for repo, _ in plans(settings)} == {"alpha"}
    assert event.detail["workplan_changes"]["removed"] == 2
    with Store.open(settings.database_path) as store:
        history = store.workplan_changes(repo="beta")
    assert [row["kind"] for row in history] == ["removed", "removed", "added", "added"]
    assert "its repo left the fleet" in history[0]["summary"]


def test_broken_front_matter_stays_visible_with_its_finding(tmp_path: Path, fleet: Path) -> None:
    """A plan whose front matter does not parse is recorded under its path with its C-05."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    write(root, {PLAN: "---\nid: [unclosed\n---\n"})
    commit_all(root)

    event = run_sweep(settings)

    broken = plans(settings)[("alpha", PLAN)]
    assert broken["id"] is None and broken["status"] is None
    assert broken["finding"]["check"] == "C-05"
    assert "not valid YAML" in broken["finding"]["message"]
    assert sorted(changes_of(settings, event.detail["run_id"])) == [
        "DEMO-WP-0001: removed (was active)",
        f"{PLAN}: added (no status; C-05)",
    ]


def test_unchanged_resweep_changes_nothing(tmp_path: Path, fleet: Path) -> None:
    """A re-sweep of an unchanged fleet reuses the registry: no change, every plan kept."""
    make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    before = plans(settings)

    event = run_sweep(settings)

    assert event.detail["repos_reassessed"] == 0
    assert event.detail["workplan_changes"] == {"added": 0, "changed": 0, "moved": 0, "removed": 0}
    after = plans(settings)
    assert {key: row["changed_at"] for key, row in after.items()} == {
        key: row["changed_at"] for key, row in before.items()
    }
    assert all(after[key]["last_seen"] > before[key]["last_seen"] for key in before)


def test_repo_never_read_into_the_registry_is_read_again(tmp_path: Path, fleet: Path) -> None:
    """A store whose registry lacks a repo (an upgraded one) reads it again, not clean-skipped."""
    make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])
    run_sweep(settings)
    with Store.open(settings.database_path) as store, store.transaction() as connection:
        connection.execute("DELETE FROM workplans")
        connection.execute("DELETE FROM workplan_repos")

    event = run_sweep(settings)

    assert event.detail["repos_reassessed"] == 1
    assert len(plans(settings)) == 2


def test_filters_by_status_repo_and_change(tmp_path: Path, fleet: Path) -> None:
    """The registry answers by status, by repo and by time of change."""
    root = make_repo(fleet, "alpha")
    make_repo(fleet, "beta")
    settings = fleet_settings(tmp_path, roots=[fleet])
    first = run_sweep(settings)
    write(root, {PLAN: workplan("DEMO-WP-0001", status="blocked")})
    commit_all(root)
    run_sweep(settings)

    assert set(plans(settings, statuses=["blocked"])) == {("alpha", "DEMO-WP-0001")}
    assert {repo for repo, _ in plans(settings, repo="beta")} == {"beta"}
    changed = plans(settings, changed_since=first.detail["finished_at"])
    assert set(changed) == {("alpha", "DEMO-WP-0001")}


def test_plans_are_recorded_with_the_workplan_checks_disabled(tmp_path: Path, fleet: Path) -> None:
    """With C-05..C-11 disabled the registry still reads every plan itself."""
    make_repo(fleet, "alpha")
    disabled = 'disable = ["C-05", "C-06", "C-07", "C-08", "C-09", "C-10", "C-11"]'
    settings = fleet_settings(tmp_path, roots=[fleet], checks=disabled)

    run_sweep(settings)

    assert {key for _, key in plans(settings)} == {"DEMO-WP-0001", "DEMO-WP-0002"}


def test_shared_id_keeps_both_plans(tmp_path: Path, fleet: Path) -> None:
    """Two files with one id (C-08): the first in path order has the id, the other its path."""
    root = make_repo(fleet, "alpha")
    write(root, {"workplans/DEMO-WP-0001-copy.md": workplan("DEMO-WP-0001", status="draft")})
    settings = fleet_settings(tmp_path, roots=[fleet])

    run_sweep(settings)

    found = plans(settings, repo="alpha")
    assert found[("alpha", "DEMO-WP-0001")]["path"] == "workplans/DEMO-WP-0001-copy.md"
    assert found[("alpha", PLAN)]["id"] == "DEMO-WP-0001"
