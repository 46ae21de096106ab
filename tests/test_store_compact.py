"""Events are stored compactly (migration 3) and read back whole through progress_events."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from gitfleet import fleet_settings, make_repo, write
from statehub.retention import prune
from statehub.store import Store
from statehub.store.schema import MIGRATIONS
from statehub.sweep import run_sweep
from statehub.timefmt import utc_now


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def test_sweeps_read_back_whole_and_entries_are_stored_once(tmp_path: Path, fleet: Path) -> None:
    """Plain sqlite3 gives each sweep's exact detail; unchanged findings add no stored entry."""
    write(make_repo(fleet, "dirty"), {"scratch.txt": "x"})
    for name in ("clean-1", "clean-2"):
        make_repo(fleet, name)
    settings = fleet_settings(tmp_path, roots=[fleet])

    events = [run_sweep(settings) for _ in range(3)]

    database = settings.database_path
    stored = _rows(database, "SELECT id, detail FROM progress_events ORDER BY id")
    assert [(i, json.loads(d)) for i, d in stored] == [(e.id, e.detail) for e in events]
    assert events[2].detail["skipped_clean"] == ["clean-1", "clean-2"]
    assert _rows(database, "SELECT count(*) FROM sweep_entries") == [(1,)]
    assert _rows(database, "SELECT count(*) FROM repo_lists") == [(1,)]
    assert _rows(database, "SELECT count(*) FROM sweep_events WHERE entries IS NULL") == [(0,)]
    # The runbook's query of the repos that need action works on the view.
    needs = _rows(
        database,
        "SELECT json_extract(p.value,'$.repo'), json_extract(p.value,'$.reassessed')"
        " FROM progress_events e, json_each(e.detail,'$.repos_processed') p ORDER BY e.id",
    )
    assert needs == [("dirty", 1), ("dirty", 0), ("dirty", 0)]


def test_an_event_of_another_shape_is_stored_whole(tmp_path: Path) -> None:
    """A detail the view could not rebuild exactly (clean list out of name order) stays whole."""
    detail = {"source": "x", "repos_processed": [], "skipped_clean": ["b", "a"]}
    with Store.open(tmp_path / "hub.db") as store:
        event = store.append_event("consistency_sweep", detail)
        [back] = store.events()
    assert back.detail == detail == event.detail
    assert _rows(tmp_path / "hub.db", "SELECT entries FROM sweep_events") == [(None,)]


def test_an_event_with_cut_finding_lists_is_stored_compact_and_reads_back(tmp_path: Path) -> None:
    """Entries with findings_total and truncated (issue 25) are stored apart like whole ones
    (migration 8): the store and the view progress_events give the event back exactly, the
    keys in the same order, and an entry cut at another total is another stored entry."""
    cut = {"repo": "b", "head": "f" * 40, "reassessed": True, "findings": []}
    cut |= {"findings_total": 7, "truncated": True}
    detail = {
        "source": "x",
        "repos_processed": [
            {"repo": "a", "head": None, "reassessed": False, "findings": [{"check": "C-15"}]},
            cut,
        ],
        "skipped_clean": ["c"],
        "skipped_missing": [],
        "skipped_budget": [],
        "findings_truncated": True,
    }
    grown = {
        **detail,
        "repos_processed": [detail["repos_processed"][0], cut | {"findings_total": 9}],
    }
    database = tmp_path / "hub.db"
    with Store.open(database) as store:
        store.append_event("consistency_sweep", detail)
        store.append_event("consistency_sweep", detail)
        store.append_event("consistency_sweep", grown)
        back = [event.detail for event in store.events(oldest_first=True)]
    assert back == [detail, detail, grown]
    viewed = _rows(database, "SELECT detail FROM progress_events ORDER BY id")
    assert [json.loads(text) for (text,) in viewed] == back
    assert [list(entry) for entry in json.loads(viewed[0][0])["repos_processed"]] == [
        ["repo", "head", "reassessed", "findings"],
        ["repo", "head", "reassessed", "findings", "findings_total", "truncated"],
    ]
    assert _rows(database, "SELECT count(*) FROM sweep_events WHERE entries IS NULL") == [(0,)]
    assert _rows(database, "SELECT repo, findings_total FROM sweep_entries ORDER BY id") == [
        ("a", None),
        ("b", 7),
        ("b", 9),
    ]


def test_pruning_drops_entries_no_event_refers_to(tmp_path: Path) -> None:
    """After the events that named an entry are pruned, the entry and its fleet go too."""
    old = {
        "repos_processed": [{"repo": "a", "head": "1", "reassessed": True, "findings": []}],
        "skipped_clean": ["b"],
        "skipped_missing": [],
        "skipped_budget": [],
    }
    new = {**old, "repos_processed": [], "skipped_clean": ["a", "b"]}
    now = utc_now()
    with Store.open(tmp_path / "hub.db") as store:
        store.append_event("consistency_sweep", old, created_at=now - timedelta(days=100))
        # The store's timeline reaches the clock (retention trusts no clock far ahead of it).
        store.append_event("consistency_sweep", new, created_at=now - timedelta(hours=2))
        store.append_event("consistency_sweep", new, created_at=now)
        prune(store, 90, now=now)
        assert [event.detail for event in store.events()] == [new, new]
    assert _rows(tmp_path / "hub.db", "SELECT count(*) FROM sweep_entries") == [(0,)]
    assert _rows(tmp_path / "hub.db", "SELECT count(*) FROM repo_lists") == [(1,)]


def test_migration_keeps_earlier_events_and_outside_inserts_work(tmp_path: Path) -> None:
    """A version-2 database keeps its events; an INSERT into progress_events still lands."""
    database = tmp_path / "hub.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for version, script in MIGRATIONS[:2]:
            connection.executescript(script)
            connection.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (version,))
        connection.execute(
            "INSERT INTO progress_events (event_type, created_at, detail)"
            " VALUES ('consistency_sweep', '2026-01-01T00:00:00.000Z', '{\"source\":\"old\"}')"
        )
    with Store.open(database) as store:
        assert [event.detail for event in store.events()] == [{"source": "old"}]
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO progress_events (event_type, created_at, detail)"
            " VALUES ('consistency_sweep', '2026-01-02T00:00:00.000Z', '{\"source\":\"tool\"}')"
        )
    with Store.open(database) as store:
        assert [event.detail["source"] for event in store.events()] == ["tool", "old"]


def test_a_fire_refers_to_its_sweep_and_the_contract_query_gives_the_detail(
    tmp_path: Path,
) -> None:
    """A run holding its event's exact detail stores a reference; one that differs, a copy."""
    from statehub.store import ActivityRun

    detail = {"repos_processed": [], "skipped_clean": ["a"], "skipped_missing": []}
    database = tmp_path / "hub.db"
    with Store.open(database) as store:
        event = store.append_event("consistency_sweep_remote_all", detail)
        for run_id, held in (("same", detail), ("other", {**detail, "skipped_clean": []})):
            store.record_run(
                ActivityRun(
                    run_id=run_id,
                    definition_id="7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b",
                    fired_at="2026-01-01T00:00:00.000Z",
                    scheduled_for="2026-01-01T00:00:00.000Z",
                    outcome="swept",
                    context_snapshot={
                        "progress_event_id": event.id,
                        "consistency_sweep_remote_all": held,
                    },
                )
            )
    rows = _rows(
        database,
        "SELECT run_id, context_snapshot->'consistency_sweep_remote_all' FROM activity_runs"
        " ORDER BY run_id",
    )
    assert [(run_id, json.loads(held)) for run_id, held in rows] == [
        ("other", {**detail, "skipped_clean": []}),
        ("same", detail),
    ]
    refs = _rows(database, "SELECT run_id, sweep_event FROM fire_runs ORDER BY run_id")
    assert refs == [("other", None), ("same", event.id)]
