"""The workplan registry: the fleet's workplans, their changes, the repos read into it.

Raw SQL: a sweep reads which repos were read into the registry every time, the unchanged
re-sweep too (:mod:`statehub.store`), and the reads are joins and aggregates. What to write
is decided by :mod:`statehub.planregistry`; this module loads the record and applies it.

``last_seen`` of a plan is its repo's last assessment (re-read, or found unchanged: a clean
skip confirms the files), so an unchanged re-sweep writes nothing here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from statehub.planregistry import KINDS, Change, Plan, Reconciled, leave, reconcile
from statehub.store.connection import StoreBase

_PLAN_COLUMNS = (
    "w.repo, w.plan_key, w.plan_id, w.title, w.status, w.path, w.fields, w.finding,"
    " w.first_seen, w.changed_at, a.assessed_at"
)
_CHANGE_COLUMNS = (
    "id, repo, plan_key, plan_id, kind, path, old_path, old_status, new_status, summary,"
    " first_read, run_id, seen_at"
)


class Workplans(StoreBase):
    """The queries of the workplan registry."""

    def registered_repos(self) -> set[str]:
        """The repos whose workplans were read into the registry (by any sweep)."""
        with self._guard() as connection:
            return {row[0] for row in connection.execute("SELECT repo FROM workplan_repos")}

    def reconcile_workplans(
        self,
        read: Mapping[str, Sequence[Mapping[str, Any]]],
        gone: Sequence[str],
        *,
        run_id: str,
        now: str,
    ) -> dict[str, int]:
        """Make the registry hold exactly the plans ``read`` (by repo) and none of ``gone``'s.

        Every change is recorded with ``run_id`` and ``now``, in one transaction. Returns the
        count of changes by kind (:data:`statehub.planregistry.KINDS`).
        """
        counts = dict.fromkeys(KINDS, 0)
        repos = sorted(set(read) | set(gone))
        if not repos:
            return counts
        with self.transaction() as connection:
            recorded = _recorded(connection, repos)
            known = {
                row[0]
                for row in connection.execute(
                    "SELECT repo FROM workplan_repos"
                    " WHERE repo IN (SELECT value FROM json_each(?))",
                    (json.dumps(repos),),
                )
            }
            plans: list[Reconciled] = []
            for repo, items in read.items():
                plans.append(
                    reconcile(
                        repo,
                        recorded.get(repo, {}),
                        items,
                        now=now,
                        first_read=repo not in known,
                    )
                )
            plans.extend(leave(recorded[repo]) for repo in gone if repo in recorded)
            # One statement each for the whole sweep: per repo, they were most of its cost.
            _apply(connection, plans, run_id=run_id, now=now)
            for result in plans:
                for kind, count in result.counts().items():
                    counts[kind] += count
            connection.executemany(
                "INSERT OR REPLACE INTO workplan_repos (repo, read_at) VALUES (?, ?)",
                [(repo, now) for repo in read],
            )
            departed = [repo for repo in gone if repo in known and repo not in read]
            if departed:
                connection.execute(
                    "DELETE FROM workplan_repos WHERE repo IN (SELECT value FROM json_each(?))",
                    (json.dumps(departed),),
                )
        return counts

    def workplans(
        self,
        *,
        statuses: Sequence[str] = (),
        repo: str | None = None,
        changed_since: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The registry's plans (repo, then key order) and how many match in all.

        ``statuses`` keeps plans with one of them; ``repo`` one repo (its exact name);
        ``changed_since`` (ISO-8601 UTC) plans added or changed since then.
        """
        where, params = _plan_filter(statuses, repo, changed_since)
        sql = (
            f"SELECT {_PLAN_COLUMNS} FROM workplans w"  # noqa: S608  # constant clauses, bound values
            f" LEFT JOIN repo_assessments a ON a.repo = w.repo{where}"
            " ORDER BY w.repo, w.plan_key"
        )
        page: list[Any] = list(params)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            page += [limit, offset]
        with self._guard() as connection:
            count_sql = f"SELECT count(*) FROM workplans w{where}"  # noqa: S608  # as above
            total = int(connection.execute(count_sql, params).fetchone()[0])
            rows = connection.execute(sql, page).fetchall()
        return total, [_plan_dict(row) for row in rows]

    def workplans_json(
        self,
        *,
        statuses: Sequence[str] = (),
        repo: str | None = None,
        changed_since: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, str]:
        """:meth:`workplans` as the JSON text of its list, written by SQLite: decoding and
        encoding 20,000 plans in Python took most of a second."""
        where, params = _plan_filter(statuses, repo, changed_since)
        inner = (
            f"SELECT {_PLAN_COLUMNS} FROM workplans w"  # noqa: S608  # constant clauses
            f" LEFT JOIN repo_assessments a ON a.repo = w.repo{where}"
            " ORDER BY w.repo, w.plan_key LIMIT ? OFFSET ?"
        )
        sql = (
            "SELECT json_group_array(json_object('repo', repo, 'id', plan_id, 'key', plan_key,"  # noqa: S608
            " 'title', title, 'status', status, 'path', path, 'fields', json(fields),"
            " 'finding', json(finding), 'first_seen', first_seen, 'changed_at', changed_at,"
            f" 'last_seen', assessed_at)) FROM ({inner})"
        )
        with self._guard() as connection:
            count_sql = f"SELECT count(*) FROM workplans w{where}"  # noqa: S608  # as above
            total = int(connection.execute(count_sql, params).fetchone()[0])
            text = connection.execute(
                sql, [*params, -1 if limit is None else limit, offset]
            ).fetchone()[0]
        return total, str(text)

    def workplan(self, repo: str, key: str) -> dict[str, Any] | None:
        """One plan of the registry (by its id, or its path when it has none) and its history;
        None when the registry holds no such plan."""
        with self._guard() as connection:
            row = connection.execute(
                f"SELECT {_PLAN_COLUMNS} FROM workplans w"  # noqa: S608  # constant columns
                " LEFT JOIN repo_assessments a ON a.repo = w.repo"
                " WHERE w.repo = ? AND (w.plan_key = ? OR w.path = ?)"
                " ORDER BY w.plan_key = ? DESC LIMIT 1",
                (repo, key, key, key),
            ).fetchone()
            if row is None:
                return None
            history = connection.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM workplan_changes"  # noqa: S608  # constant columns
                " WHERE repo = ? AND plan_key = ? ORDER BY id DESC LIMIT 200",
                (repo, row[1]),
            ).fetchall()
        return {**_plan_dict(row), "changes": [_change_dict(change) for change in history]}

    def workplan_changes(
        self,
        *,
        since: str | None = None,
        repo: str | None = None,
        run_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Changes of the registry, newest first: since ``since`` (ISO-8601), of one repo,
        of one sweep (``run_id``)."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (("seen_at >= ?", since), ("repo = ?", repo), ("run_id = ?", run_id)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._guard() as connection:
            rows = connection.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM workplan_changes{where}"  # noqa: S608  # constant
                " ORDER BY id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [_change_dict(row) for row in rows]

    def workplans_entering(self, run_id: str, statuses: Sequence[str]) -> list[dict[str, Any]]:
        """The changes of one sweep by which a plan entered one of ``statuses`` (in the
        order seen); a plan found by its repo's first read entered nothing
        (``first_read``)."""
        if not statuses:
            return []
        with self._guard() as connection:
            rows = connection.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM workplan_changes"  # noqa: S608  # constant columns
                " WHERE run_id = ? AND kind != 'removed' AND first_read = 0"
                " AND new_status IN (SELECT value FROM json_each(?))"
                " AND (old_status IS NULL OR old_status != new_status) ORDER BY id",
                (run_id, json.dumps(list(statuses))),
            ).fetchall()
        return [_change_dict(row) for row in rows]

    def workplan_status_counts(self) -> dict[str, int]:
        """How many plans of the registry have each status (None: no usable status)."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT status, count(*) FROM workplans GROUP BY status ORDER BY status"
            ).fetchall()
        return {("" if row[0] is None else str(row[0])): int(row[1]) for row in rows}

    def delete_workplan_changes_before(self, cutoff: str) -> int:
        """Forget the changes seen before ``cutoff`` (ISO-8601); returns how many."""
        with self.transaction() as connection:
            return connection.execute(
                "DELETE FROM workplan_changes WHERE seen_at < ?", (cutoff,)
            ).rowcount


def _recorded(connection: sqlite3.Connection, repos: list[str]) -> dict[str, dict[str, Plan]]:
    rows = connection.execute(
        "SELECT repo, plan_key, plan_id, title, status, path, fields, finding, first_seen,"
        " changed_at FROM workplans WHERE repo IN (SELECT value FROM json_each(?))",
        (json.dumps(repos),),
    ).fetchall()
    found: dict[str, dict[str, Plan]] = {}
    for row in rows:
        found.setdefault(row[0], {})[row[1]] = Plan(
            repo=row[0],
            key=row[1],
            id=row[2],
            title=row[3],
            status=row[4],
            path=row[5],
            fields=json.loads(row[6]),
            finding=None if row[7] is None else json.loads(row[7]),
            first_seen=row[8],
            changed_at=row[9],
        )
    return found


def _apply(
    connection: sqlite3.Connection, results: Sequence[Reconciled], *, run_id: str, now: str
) -> None:
    connection.executemany(
        "DELETE FROM workplans WHERE repo = ? AND plan_key = ?",
        [
            (change.repo, change.key)
            for result in results
            for change in result.changes
            if change.kind == "removed"
        ],
    )
    connection.executemany(
        "INSERT OR REPLACE INTO workplans (repo, plan_key, plan_id, title, status, path,"
        " fields, finding, first_seen, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                plan.repo,
                plan.key,
                plan.id,
                plan.title,
                plan.status,
                plan.path,
                _json_object(plan.fields),
                None if plan.finding is None else json.dumps(dict(plan.finding)),
                plan.first_seen,
                plan.changed_at,
            )
            for result in results
            for plan in result.upsert
        ],
    )
    connection.executemany(
        f"INSERT INTO workplan_changes ({_CHANGE_COLUMNS.removeprefix('id, ')})"  # noqa: S608
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_change_row(change, run_id, now) for result in results for change in result.changes],
    )


def _json_object(fields: Mapping[str, str]) -> str:
    return json.dumps(dict(fields), ensure_ascii=False) if fields else "{}"


def _change_row(change: Change, run_id: str, now: str) -> tuple[Any, ...]:
    return (
        change.repo,
        change.key,
        change.plan_id,
        change.kind,
        change.path,
        change.old_path,
        change.old_status,
        change.new_status,
        change.summary,
        int(change.first_read),
        run_id,
        now,
    )


def _plan_filter(
    statuses: Sequence[str], repo: str | None, changed_since: str | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if statuses:
        clauses.append("w.status IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(statuses)))
    if repo is not None:
        clauses.append("w.repo = ?")
        params.append(repo)
    if changed_since is not None:
        clauses.append("w.changed_at >= ?")
        params.append(changed_since)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _plan_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "repo": row[0],
        "id": row[2],
        "key": row[1],
        "title": row[3],
        "status": row[4],
        "path": row[5],
        "fields": json.loads(row[6]),
        "finding": None if row[7] is None else json.loads(row[7]),
        "first_seen": row[8],
        "changed_at": row[9],
        "last_seen": row[10],
    }


def _change_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "repo": row[1],
        "key": row[2],
        "plan_id": row[3],
        "kind": row[4],
        "path": row[5],
        "old_path": row[6],
        "old_status": row[7],
        "new_status": row[8],
        "summary": row[9],
        "first_read": bool(row[10]),
        "run_id": row[11],
        "seen_at": row[12],
    }
