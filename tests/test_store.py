"""The store: a new database against migrated ones, sqlite-utils' writes, the raw hot path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from gitfleet import make_repo, write, write_config
from statehub.errors import StoreError
from statehub.store import ActivityRun, Assessment, Store
from statehub.store.schema import MIGRATIONS


def _schema(database: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()


def _at_version(database: Path, version: int) -> None:
    """A database as the release of schema ``version`` left it, with a row in each table."""
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for number, script in MIGRATIONS[:version]:
            assert isinstance(script, str)
            connection.executescript(script)
            connection.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (number,))
        connection.execute(
            "INSERT INTO progress_events (event_type, created_at, detail)"
            " VALUES ('consistency_sweep', '2026-01-01T00:00:00.000Z', '{\"source\":\"old\"}')"
        )
        connection.execute(
            "INSERT INTO repo_assessments VALUES ('a', '/a', NULL, NULL, 'then', 'findings'"
            + (", '[]')" if version >= 2 else ")")
        )
        connection.execute(
            "INSERT INTO findings (repo, seq, check_id, message, path)"
            " VALUES ('a', 0, 'C-01', 'no README', NULL)"
        )
        connection.execute("INSERT INTO hub_state VALUES ('k', 'v')")


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_a_migrated_database_has_the_schema_of_a_new_one(tmp_path: Path, version: int) -> None:
    """sqlite_master of a database migrated from each released version equals a new one's."""
    Store.open(tmp_path / "new.db").close()
    _at_version(tmp_path / "old.db", version)

    with Store.open(tmp_path / "old.db") as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert [event.detail for event in store.events()] == [{"source": "old"}]
        kept = store.assessment("a")
        assert kept is not None
        assert [finding["check"] for finding in kept.findings] == ["C-01"]
        assert store.get_state("k") == "v"
    assert _schema(tmp_path / "old.db") == _schema(tmp_path / "new.db")


def test_a_migration_written_with_sqlite_utils_is_one_transaction(tmp_path: Path) -> None:
    """A function migration is applied and recorded; one that fails leaves neither trace."""

    def add_notes(db: sqlite_utils.Database) -> None:
        db.create_table("notes", {"id": int, "text": str}, pk="id", not_null={"text"})
        db.table("notes").create_index(["text"], index_name="notes_text")

    def fail_halfway(db: sqlite_utils.Database) -> None:
        db.table("hub_state").add_column("note", str)
        raise sqlite3.OperationalError("stopped")

    database = tmp_path / "hub.db"
    with Store.open(database) as store:
        with pytest.raises(StoreError, match="stopped"):
            store.migrate((*MIGRATIONS, (len(MIGRATIONS) + 1, fail_halfway)))
        assert store.schema_version() == len(MIGRATIONS)
        store.migrate((*MIGRATIONS, (len(MIGRATIONS) + 1, add_notes)))
        assert store.schema_version() == len(MIGRATIONS) + 1
    names = [name for _, name, _, _ in _schema(database)]
    assert "notes" in names
    assert "notes_text" in names
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(hub_state)")]
    assert columns == ["key", "value"]


def _assessment(repo: str, checks: list[str]) -> Assessment:
    return Assessment(
        repo=repo,
        path=f"/fleet/{repo}",
        head="1" * 40,
        fingerprint="f",
        assessed_at="2026-01-01T00:00:00.000Z",
        findings=[
            {"check": check, "message": f"{check} here", "path": None, "new": seq == 0}
            | {"first_seen": "2026-01-01T00:00:00.000Z", "line": seq or None, "line_hash": None}
            for seq, check in enumerate(checks)
        ],
        watch=("notes.txt",),
    )


def test_events_read_a_batch_at_a_time_are_those_of_one_read(tmp_path: Path) -> None:
    """iter_events in batches of 3 gives the events of one read, newest or oldest first and
    filtered; an event appended between two batches is not read, nor any twice."""
    with Store.open(tmp_path / "hub.db") as store:
        for n in range(10):
            kind = "consistency_sweep" if n % 3 else "consistency_sweep_remote_all"
            store.append_event(kind, {"source": "s", "n": n})
        for options in (
            {"limit": 8},
            {"limit": 50, "oldest_first": True},
            {"limit": 5, "event_type": "consistency_sweep"},
        ):
            assert list(store.iter_events(**options, batch=3)) == store.events(**options)
        reading = store.iter_events(limit=10, batch=3)
        first = [next(reading) for _ in range(3)]
        store.append_event("consistency_sweep", {"source": "s", "n": 10})
        rest = list(reading)
    assert [event.detail["n"] for event in first + rest] == list(range(9, -1, -1))


def test_saved_assessments_replace_earlier_ones_and_read_back_alike(tmp_path: Path) -> None:
    """A repo saved again keeps only its new findings; one read equals the whole read."""
    with Store.open(tmp_path / "hub.db") as store:
        store.save_assessments([_assessment("a", ["C-01", "C-02"]), _assessment("b", ["C-03"])])
        store.save_assessments([_assessment("a", ["C-04"])])

        everything = store.assessments()
        assert {name: [f["check"] for f in a.findings] for name, a in everything.items()} == {
            "a": ["C-04"],
            "b": ["C-03"],
        }
        assert store.assessment("a") == everything["a"] == _assessment("a", ["C-04"])
        assert store.assessment("b") == everything["b"]
        assert store.assessment("c") is None
        assert store.repo_status_counts() == {"findings": 2}


def test_a_run_recorded_twice_is_one_row_with_the_later_outcome(tmp_path: Path) -> None:
    """record_run replaces a run of the same run_id; runs() filters by definition, newest first."""

    def run(run_id: str, definition: str, fired_at: str, outcome: str) -> ActivityRun:
        return ActivityRun(
            run_id=run_id,
            definition_id=definition,
            fired_at=fired_at,
            scheduled_for=fired_at,
            outcome=outcome,
            context_snapshot={"source": "local-fallback"},
        )

    with Store.open(tmp_path / "hub.db") as store:
        store.record_run(run("r1", "d", "2026-01-01T00:00:00.000Z", "started"))
        store.record_run(run("r2", "d", "2026-01-01T00:15:00.000Z", "swept"))
        store.record_run(run("r3", "other", "2026-01-01T00:30:00.000Z", "swept"))
        store.record_run(run("r1", "d", "2026-01-01T00:00:00.000Z", "swept"))

        assert [(r.run_id, r.outcome) for r in store.runs(definition_id="d")] == [
            ("r2", "swept"),
            ("r1", "swept"),
        ]
        assert [r.run_id for r in store.runs(limit=2)] == ["r3", "r2"]


def test_runs_filtered_by_origin_skip_the_other_schedulers_runs(tmp_path: Path) -> None:
    """runs(origins=...) keeps only the runs of those origins, newest first, within the limit."""
    origins = [("d1", "schedule"), ("c1", "http"), ("t1", "temporal"), ("d2", "run-now")]
    with Store.open(tmp_path / "hub.db") as store:
        for minute, (run_id, origin) in enumerate(origins):
            fired_at = f"2026-01-01T00:{minute:02d}:00.000Z"
            store.record_run(
                ActivityRun(
                    run_id=run_id,
                    definition_id="d",
                    fired_at=fired_at,
                    scheduled_for=fired_at,
                    outcome="swept",
                    context_snapshot={"origin": origin},
                )
            )
        store.record_run(  # another definition's run of a wanted origin
            ActivityRun(
                run_id="x1",
                definition_id="other",
                fired_at="2026-01-01T01:00:00.000Z",
                scheduled_for="2026-01-01T01:00:00.000Z",
                outcome="swept",
                context_snapshot={"origin": "schedule"},
            )
        )

        daemon = store.runs(definition_id="d", origins=("schedule", "run-now"), limit=5)
        assert [r.run_id for r in daemon] == ["d2", "d1"]
        assert [r.run_id for r in store.runs(definition_id="d", origins=("http",))] == ["c1"]
        assert [r.run_id for r in store.runs(origins=("schedule",), limit=1)] == ["x1"]
        assert store.runs(definition_id="d", origins=("cli",)) == []


def _sweep_importing(config: Path) -> tuple[dict[str, Any], set[str]]:
    """Run ``statehub sweep --all`` as its own process: its event and the modules it loaded."""
    command = ["sweep", "--all", "--json", "--config", str(config)]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "statehub", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return json.loads(result.stdout)["detail"], loaded


def test_an_unchanged_re_sweep_does_not_load_sqlite_utils(tmp_path: Path, fleet: Path) -> None:
    """The first sweep saves assessments with sqlite-utils; the unchanged one never loads it."""
    write(make_repo(fleet, "dirty"), {"scratch.txt": "x"})
    make_repo(fleet, "clean")
    config = write_config(tmp_path, roots=[fleet])

    first, loaded_first = _sweep_importing(config)
    again, loaded_again = _sweep_importing(config)

    assert first["repos_reassessed"] == 2
    assert "sqlite_utils" in loaded_first
    assert again["repos_reassessed"] == 0
    assert again["skipped_clean"] == ["clean"]
    assert "statehub.store" in loaded_again
    assert "sqlite_utils" not in loaded_again


def test_a_store_that_fills_mid_write_says_the_disk_is_full(tmp_path: Path) -> None:
    """SQLITE_FULL in the middle of an event's transaction (SQLite rolls it back itself): the
    error says the disk is full, not 'cannot rollback - no transaction is active'."""
    from datetime import UTC, datetime

    from contract_keys import sweep_detail
    from statehub.errors import StoreError

    store = Store.open(tmp_path / "hub.db")
    store._connection.execute("PRAGMA max_page_count = 30")  # as full as a disk can be
    big = [{"repo": "r" * 1000, "path": "/r", "findings": []}] * 20
    with pytest.raises(StoreError) as raised:
        for _ in range(50):
            store.append_event(
                "consistency_sweep", sweep_detail("x", datetime.now(UTC), repos_processed=big)
            )
    store.close()
    assert "the disk is full" in str(raised.value)
    assert "cannot rollback" not in str(raised.value)
