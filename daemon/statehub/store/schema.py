"""SQLite schema: the numbered migrations and how they are applied.

A database is created by applying every migration to an empty file, so a new database and
one migrated from any earlier version have the same schema (``tests/test_store.py`` compares
their ``sqlite_master``). Each migration runs in one write transaction with its record in
``schema_migrations``.

Migrations 1 to 4 stay as the SQL they were released with: they hold what sqlite-utils'
``create_table`` and ``add_column`` cannot write (``CHECK (json_valid(...))`` on every JSON
column, ``AUTOINCREMENT`` on ``progress_events.id``, a column ``UNIQUE``), and migration 4's
views with their ``INSTEAD OF`` triggers are SQL in any case (as is migration 8, which
replaces the view ``progress_events``). Rewriting a released migration
would also change the ``CREATE`` text stored in new databases against existing ones. A new
migration may be a function of a sqlite-utils ``Database`` (``create_table``, ``add_column``,
``create_index``, ``create_view``) when it needs none of these.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import sqlite_utils

Step: TypeAlias = "str | Callable[[sqlite_utils.Database], None]"
"""A migration's work: a SQL script, or a function given the store's connection as a
sqlite-utils ``Database`` (it writes inside the migration's transaction)."""

# Numbered migrations, applied in order, each in one transaction, recorded in
# schema_migrations. Never edit a released one: add the next.
MIGRATIONS: tuple[tuple[int, Step], ...] = (
    (
        1,
        """
        CREATE TABLE progress_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_type TEXT NOT NULL,
            created_at TEXT NOT NULL,
            detail TEXT NOT NULL CHECK (json_valid(detail))
        );
        CREATE INDEX progress_events_type_id ON progress_events (event_type, id);
        CREATE INDEX progress_events_created_at ON progress_events (created_at);

        CREATE TABLE repo_assessments (
            repo TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            head TEXT,
            fingerprint TEXT,
            assessed_at TEXT NOT NULL,
            status TEXT NOT NULL
        );

        CREATE TABLE findings (
            repo TEXT NOT NULL REFERENCES repo_assessments (repo) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            check_id TEXT NOT NULL,
            message TEXT NOT NULL,
            path TEXT,
            PRIMARY KEY (repo, seq)
        );
        CREATE INDEX findings_check ON findings (check_id);

        CREATE TABLE activity_runs (
            run_id TEXT PRIMARY KEY,
            definition_id TEXT NOT NULL,
            fired_at TEXT NOT NULL,
            scheduled_for TEXT NOT NULL,
            outcome TEXT NOT NULL,
            context_snapshot TEXT NOT NULL CHECK (json_valid(context_snapshot))
        );
        CREATE INDEX activity_runs_definition_fired ON activity_runs (definition_id, fired_at);

        CREATE TABLE hub_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE repo_assessments ADD COLUMN watch TEXT NOT NULL DEFAULT '[]'
            CHECK (json_valid(watch));
        """,
    ),
    (
        3,
        # Issue 15: when a finding first appeared, and whether it was new (absent from the
        # repo's previous assessment) in the assessment that holds it.
        """
        ALTER TABLE findings ADD COLUMN first_seen TEXT;
        ALTER TABLE findings ADD COLUMN new INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        # Issue 14: a sweep's event lists every repo with findings and every clean repo, so
        # a year of them would fill hundreds of MB. The rows now live in sweep_events, where
        # each distinct repo entry {repo, head, findings} is stored once (sweep_entries) and
        # skipped_clean is a bit set over the fleet (repo_lists: every repo it names);
        # progress_events is a view that gives back every event's whole detail, so plain
        # sqlite3 queries and every reader see the same JSON as before. Likewise a fire's
        # context_snapshot refers to its sweep's event instead of holding a copy of its
        # detail (fire_runs.sweep_event); the view activity_runs puts the detail back.
        4,
        """
        ALTER TABLE progress_events RENAME TO sweep_events;
        ALTER TABLE sweep_events ADD COLUMN entries TEXT
            CHECK (entries IS NULL OR json_valid(entries));
        ALTER TABLE sweep_events ADD COLUMN fleet INTEGER;
        ALTER TABLE sweep_events ADD COLUMN clean_bits TEXT;
        CREATE TABLE sweep_entries (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            repo TEXT NOT NULL,
            head TEXT,
            findings TEXT NOT NULL CHECK (json_valid(findings)),
            last_event INTEGER NOT NULL
        );
        CREATE INDEX sweep_entries_last_event ON sweep_entries (last_event);
        CREATE TABLE repo_lists (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            names TEXT NOT NULL CHECK (json_valid(names)),
            last_event INTEGER NOT NULL
        );
        CREATE VIEW progress_events AS SELECT e.id AS id, e.event_type AS event_type,
            e.created_at AS created_at,
            CASE WHEN e.entries IS NULL THEN e.detail ELSE json_set(e.detail,
                '$.repos_processed', json((SELECT json_group_array(json(x.entry)) FROM (
                    SELECT json_object('repo', s.repo, 'head', s.head, 'reassessed',
                        json(CASE WHEN r.value ->> 1 THEN 'true' ELSE 'false' END),
                        'findings', json(s.findings)) AS entry
                    FROM json_each(e.entries) r JOIN sweep_entries s ON s.id = r.value ->> 0
                    ORDER BY r.key) x)),
                '$.skipped_clean', json((SELECT json_group_array(c.value) FROM (
                    SELECT n.value AS value FROM repo_lists l, json_each(l.names) n
                    WHERE l.id = e.fleet AND ((instr('0123456789abcdef',
                        substr(e.clean_bits, n.key / 4 + 1, 1)) - 1) >> (n.key % 4)) & 1
                    ORDER BY n.key) c))
            ) END AS detail
            FROM sweep_events e;
        CREATE TRIGGER progress_events_insert INSTEAD OF INSERT ON progress_events BEGIN
            INSERT INTO sweep_events (id, event_type, created_at, detail)
            VALUES (NEW.id, NEW.event_type, NEW.created_at, NEW.detail);
        END;
        CREATE TRIGGER progress_events_delete INSTEAD OF DELETE ON progress_events BEGIN
            DELETE FROM sweep_events WHERE id = OLD.id;
        END;

        ALTER TABLE activity_runs RENAME TO fire_runs;
        ALTER TABLE fire_runs ADD COLUMN sweep_event INTEGER;
        CREATE VIEW activity_runs AS SELECT r.run_id AS run_id,
            r.definition_id AS definition_id, r.fired_at AS fired_at,
            r.scheduled_for AS scheduled_for, r.outcome AS outcome,
            CASE WHEN r.sweep_event IS NULL THEN r.context_snapshot
            ELSE json_set(r.context_snapshot, '$.consistency_sweep_remote_all',
                json((SELECT p.detail FROM progress_events p WHERE p.id = r.sweep_event)))
            END AS context_snapshot
            FROM fire_runs r;
        CREATE TRIGGER activity_runs_insert INSTEAD OF INSERT ON activity_runs BEGIN
            INSERT OR REPLACE INTO fire_runs
                (run_id, definition_id, fired_at, scheduled_for, outcome, context_snapshot)
            VALUES (NEW.run_id, NEW.definition_id, NEW.fired_at, NEW.scheduled_for,
                NEW.outcome, NEW.context_snapshot);
        END;
        CREATE TRIGGER activity_runs_delete INSTEAD OF DELETE ON activity_runs BEGIN
            DELETE FROM fire_runs WHERE run_id = OLD.run_id;
        END;
        """,
    ),
    (
        # Issue 21: a finding's line and the hash of that line's content (which the baseline
        # of `statehub accept` records), and the findings the baseline accepts, kept apart
        # so that no reader of `findings` counts them.
        5,
        """
        ALTER TABLE findings ADD COLUMN line INTEGER;
        ALTER TABLE findings ADD COLUMN line_hash TEXT;
        CREATE TABLE accepted_findings (
            repo TEXT NOT NULL REFERENCES repo_assessments (repo) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            check_id TEXT NOT NULL,
            message TEXT NOT NULL,
            path TEXT,
            line INTEGER,
            line_hash TEXT,
            PRIMARY KEY (repo, seq)
        );
        """,
    ),
    (
        # Issue 26: the registry of the fleet's workplans (statehub.planregistry). One row
        # a plan of a repo, keyed by its id (or its path when it has no usable id); every
        # change a sweep saw, kept after its plan or its repo is gone; the repos read into
        # the registry, so that a repo never read into it is read again (not clean-skipped).
        6,
        """
        CREATE TABLE workplans (
            repo TEXT NOT NULL,
            plan_key TEXT NOT NULL,
            plan_id TEXT,
            title TEXT,
            status TEXT,
            path TEXT NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(fields)),
            finding TEXT CHECK (finding IS NULL OR json_valid(finding)),
            first_seen TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            PRIMARY KEY (repo, plan_key)
        );
        CREATE INDEX workplans_status ON workplans (status);
        CREATE TABLE workplan_changes (
            id INTEGER PRIMARY KEY,
            repo TEXT NOT NULL,
            plan_key TEXT NOT NULL,
            plan_id TEXT,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            old_path TEXT,
            old_status TEXT,
            new_status TEXT,
            summary TEXT NOT NULL,
            first_read INTEGER NOT NULL DEFAULT 0,
            run_id TEXT NOT NULL,
            seen_at TEXT NOT NULL
        );
        CREATE INDEX workplan_changes_seen_at ON workplan_changes (seen_at);
        CREATE INDEX workplan_changes_plan ON workplan_changes (repo, plan_key, id);
        CREATE INDEX workplan_changes_run ON workplan_changes (run_id);
        CREATE TABLE workplan_repos (
            repo TEXT PRIMARY KEY,
            read_at TEXT NOT NULL
        );
        """,
    ),
    (
        # Issue 20: activity_runs holds the runs of the definition only (the fires that
        # swept or tried to). A scheduler's decisions not to run (the standby's
        # primary_healthy, overlap_skipped, disabled) move to schedule_decisions, so the
        # contract's query (section 8) never returns them with an empty sweep_result; and a
        # run whose sweep had an automation error says so (failed, not swept).
        7,
        """
        CREATE TABLE schedule_decisions (
            id INTEGER PRIMARY KEY,
            decided_at TEXT NOT NULL,
            definition_id TEXT NOT NULL,
            scheduled_for TEXT NOT NULL,
            decision TEXT NOT NULL,
            context TEXT NOT NULL CHECK (json_valid(context))
        );
        CREATE INDEX schedule_decisions_decided ON schedule_decisions (decided_at);
        INSERT INTO schedule_decisions (decided_at, definition_id, scheduled_for, decision,
            context)
            SELECT fired_at, definition_id, scheduled_for, outcome, context_snapshot
            FROM fire_runs
            WHERE outcome IN ('primary_healthy', 'overlap_skipped', 'disabled')
            ORDER BY fired_at;
        DELETE FROM fire_runs
            WHERE outcome IN ('primary_healthy', 'overlap_skipped', 'disabled');
        UPDATE fire_runs SET outcome = 'failed'
            WHERE outcome = 'swept' AND (
                json_extract(context_snapshot, '$.consistency_sweep_remote_all.exit_code') = 1
                OR (SELECT json_extract(e.detail, '$.exit_code') FROM sweep_events e
                    WHERE e.id = fire_runs.sweep_event) = 1);
        """,
    ),
    (
        # Issue 25: an entry of repos_processed whose findings the event's bound cut says
        # how many its repo has ({..., "findings_total": N, "truncated": true}). Such an
        # entry was no shape sweep_entries could hold, so its whole event was stored
        # apart (1.4 MB a sweep of a large fleet): the total is now a column (NULL for an
        # entry listed whole), and the view gives both keys back on cut entries only.
        8,
        """
        ALTER TABLE sweep_entries ADD COLUMN findings_total INTEGER;
        DROP VIEW progress_events;
        CREATE VIEW progress_events AS SELECT e.id AS id, e.event_type AS event_type,
            e.created_at AS created_at,
            CASE WHEN e.entries IS NULL THEN e.detail ELSE json_set(e.detail,
                '$.repos_processed', json((SELECT json_group_array(json(x.entry)) FROM (
                    SELECT CASE WHEN s.findings_total IS NULL THEN json_object('repo', s.repo,
                        'head', s.head,
                        'reassessed', json(CASE WHEN r.value ->> 1 THEN 'true' ELSE 'false' END),
                        'findings', json(s.findings))
                    ELSE json_object('repo', s.repo, 'head', s.head,
                        'reassessed', json(CASE WHEN r.value ->> 1 THEN 'true' ELSE 'false' END),
                        'findings', json(s.findings), 'findings_total', s.findings_total,
                        'truncated', json('true'))
                    END AS entry
                    FROM json_each(e.entries) r JOIN sweep_entries s ON s.id = r.value ->> 0
                    ORDER BY r.key) x)),
                '$.skipped_clean', json((SELECT json_group_array(c.value) FROM (
                    SELECT n.value AS value FROM repo_lists l, json_each(l.names) n
                    WHERE l.id = e.fleet AND ((instr('0123456789abcdef',
                        substr(e.clean_bits, n.key / 4 + 1, 1)) - 1) >> (n.key % 4)) & 1
                    ORDER BY n.key) c))
            ) END AS detail
            FROM sweep_events e;
        CREATE TRIGGER progress_events_insert INSTEAD OF INSERT ON progress_events BEGIN
            INSERT INTO sweep_events (id, event_type, created_at, detail)
            VALUES (NEW.id, NEW.event_type, NEW.created_at, NEW.detail);
        END;
        CREATE TRIGGER progress_events_delete INSTEAD OF DELETE ON progress_events BEGIN
            DELETE FROM sweep_events WHERE id = OLD.id;
        END;
        """,
    ),
)


def database(connection: sqlite3.Connection) -> sqlite_utils.Database:
    """``connection`` as a sqlite-utils ``Database``; imports sqlite-utils (about 30 ms).

    Without its two connection-wide side effects: ``PRAGMA recursive_triggers`` would change
    what ``INSERT OR REPLACE`` does for the rest of the connection's life once anything had
    loaded sqlite-utils, and plugins would run code from other packages on the store's
    connection.
    """
    import sqlite_utils

    return sqlite_utils.Database(connection, recursive_triggers=False, execute_plugins=False)


def schema_version(connection: sqlite3.Connection) -> int:
    """The highest migration applied to the database (0 for a new one)."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(
    connection: sqlite3.Connection,
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
    *,
    now: Callable[[], str],
    migrations: Sequence[tuple[int, Step]] = MIGRATIONS,
) -> None:
    """Apply every migration not yet applied, each in its own ``transaction()``, recorded
    as applied at ``now()``.

    sqlite-utils is imported only when a pending migration is a function, so opening an
    up-to-date database never loads it.
    """
    current = schema_version(connection)
    for version, step in migrations:
        if version <= current:
            continue
        with transaction() as writing:
            # Re-check inside the write lock: another process may have just migrated.
            done = writing.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if done:
                continue
            if isinstance(step, str):
                for statement in _statements(step):
                    writing.execute(statement)
            else:
                step(database(writing))
            writing.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, now()),
            )


def _statements(script: str) -> list[str]:
    """The statements of a migration script (a trigger's body keeps its own semicolons)."""
    statements: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
