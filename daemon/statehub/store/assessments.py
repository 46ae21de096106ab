"""Standing assessments: each repo's findings of its last completed assessment.

Read and written by every sweep; the unchanged re-sweep's reads and writes are raw SQL
(:mod:`statehub.store`), the rest sqlite-utils.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from statehub.store.compact import to_json
from statehub.store.connection import StoreBase
from statehub.store.records import Assessment, StandingSummary


class Assessments(StoreBase):
    """The queries of ``repo_assessments`` and ``findings``."""

    def standing_summaries(self) -> dict[str, StandingSummary]:
        """Every repo's standing assessment without its findings (their number only), by
        repo name: what a sweep reads before its workers begin."""
        # Raw SQL: every sweep reads these, the unchanged re-sweep too (module docstring).
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT repo, head, fingerprint, assessed_at, watch, status,"
                " (SELECT count(*) FROM findings f WHERE f.repo = a.repo)"
                " FROM repo_assessments a"
            ).fetchall()
        return {
            row[0]: StandingSummary(
                repo=row[0],
                head=row[1],
                fingerprint=row[2],
                assessed_at=row[3],
                watch=tuple(json.loads(row[4])),
                status=row[5],
                findings_total=int(row[6]),
            )
            for row in rows
        }

    def assessments(self, repos: Collection[str] | None = None) -> dict[str, Assessment]:
        """Every repo's standing assessment (or those of ``repos``), by repo name."""
        # Raw SQL: every sweep reads those of the repos it read again (module docstring).
        where, params = "", []
        if repos is not None:  # one parameter, however many repos
            where, params = (
                " WHERE repo IN (SELECT value FROM json_each(?))",
                [json.dumps(list(repos))],
            )
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT repo, path, head, fingerprint, assessed_at, watch"  # noqa: S608
                f" FROM repo_assessments{where}",
                params,
            ).fetchall()
            found: dict[str, list[dict[str, Any]]] = {}
            for repo, *columns, line, line_hash in connection.execute(
                "SELECT repo, check_id, message, path, first_seen, new, line, line_hash"  # noqa: S608
                f" FROM findings{where} ORDER BY repo, seq",
                params,
            ):
                found.setdefault(repo, []).append(
                    finding_of_row(*columns, line=line, line_hash=line_hash)
                )
        return {
            row[0]: assessment_of_row(*row[:5], watch=row[5], findings=found.get(row[0], []))
            for row in rows
        }

    def assessments_listed(self, *, findings: int) -> list[dict[str, Any]]:
        """Every repo's standing assessment as a document (:meth:`Assessment.as_dict`), by
        name, listing its first ``findings`` findings; one that has more says
        ``findings_total`` and ``"truncated": true`` (issue 25). Only those findings are
        read, whatever a repo holds; ``status`` is the stored one, of all its findings."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT repo, path, head, fingerprint, assessed_at, watch, status"
                " FROM repo_assessments ORDER BY repo"
            ).fetchall()
            totals = dict(
                connection.execute("SELECT repo, count(*) FROM findings GROUP BY repo").fetchall()
            )
            listed: dict[str, list[dict[str, Any]]] = {}
            for repo, *columns, line, line_hash in connection.execute(
                "SELECT repo, check_id, message, path, first_seen, new, line, line_hash FROM ("
                " SELECT *, row_number() OVER (PARTITION BY repo ORDER BY seq) AS rank"
                " FROM findings) WHERE rank <= ? ORDER BY repo, seq",
                (findings,),
            ):
                listed.setdefault(repo, []).append(
                    finding_of_row(*columns, line=line, line_hash=line_hash)
                )
        documents = []
        for row in rows:
            repo, status = row[0], row[6]
            document = assessment_of_row(
                *row[:5], watch=row[5], findings=listed.get(repo, [])
            ).as_dict()
            document["status"] = status
            total = int(totals.get(repo, 0))
            if total > len(document["findings"]):
                document |= {"findings_total": total, "truncated": True}
            documents.append(document)
        return documents

    def assessment(self, repo: str) -> Assessment | None:
        """One repo's standing assessment, None when it has none."""
        from sqlite_utils.db import NotFoundError

        with self._guard():
            try:
                row = self.db.table("repo_assessments").get(repo)
            except NotFoundError:
                return None
            findings = [
                finding_of_row(
                    f["check_id"],
                    f["message"],
                    f["path"],
                    f["first_seen"],
                    f["new"],
                    line=f["line"],
                    line_hash=f["line_hash"],
                )
                for f in self.db.table("findings").rows_where("repo = ?", [repo], order_by="seq")
            ]
        return assessment_of_row(
            row["repo"],
            row["path"],
            row["head"],
            row["fingerprint"],
            row["assessed_at"],
            watch=row["watch"],
            findings=findings,
        )

    def save_assessments(self, assessments: Sequence[Assessment]) -> None:
        """Replace the standing assessments of these repos, in one transaction."""
        if not assessments:
            return
        with self.transaction():
            findings = self.db.table("findings")
            # One statement for all the repos (a delete_where per repo took 2 ms of 200).
            findings.delete_where(
                "repo IN (SELECT value FROM json_each(?))", [to_json([a.repo for a in assessments])]
            )
            # replace=True: the INSERT OR REPLACE the store has always written. upsert_all
            # would first probe SQLite for upsert support by creating and dropping a table
            # in the store's own database (in this transaction, but other connections see
            # the schema change).
            self.db.table("repo_assessments").insert_all(
                (
                    {
                        "repo": item.repo,
                        "path": item.path,
                        "head": item.head,
                        "fingerprint": item.fingerprint,
                        "assessed_at": item.assessed_at,
                        "status": item.status,
                        "watch": json.dumps(list(item.watch)),
                    }
                    for item in assessments
                ),
                pk="repo",
                replace=True,
            )
            findings.insert_all(
                {
                    "repo": item.repo,
                    "seq": seq,
                    "check_id": finding["check"],
                    "message": finding["message"],
                    "path": finding["path"],
                    "first_seen": finding.get("first_seen"),
                    "new": int(bool(finding.get("new"))),
                    "line": finding.get("line"),
                    "line_hash": finding.get("line_hash"),
                }
                for item in assessments
                for seq, finding in enumerate(item.findings)
            )
            accepted = self.db.table("accepted_findings")
            accepted.delete_where(
                "repo IN (SELECT value FROM json_each(?))", [to_json([a.repo for a in assessments])]
            )
            accepted.insert_all(
                {
                    "repo": item.repo,
                    "seq": seq,
                    "check_id": finding["check"],
                    "message": finding["message"],
                    "path": finding["path"],
                    "line": finding.get("line"),
                    "line_hash": finding.get("line_hash"),
                }
                for item in assessments
                for seq, finding in enumerate(item.accepted)
            )

    def assessed_repos(self) -> set[str]:
        """The names of every repo with a standing assessment."""
        # Raw SQL: the sweep's selection reads this every time (module docstring).
        with self._guard() as connection:
            return {row[0] for row in connection.execute("SELECT repo FROM repo_assessments")}

    def count_failing_repos(self) -> int:
        """Repos whose standing assessment has at least one C-01..C-23 finding."""
        # Raw SQL: every sweep's event counts them (module docstring).
        with self._guard() as connection:
            row = connection.execute(
                "SELECT count(DISTINCT repo) FROM findings WHERE check_id != 'C-00'"
            ).fetchone()
        return int(row[0])

    def mark_assessed(self, repos: Sequence[str], assessed_at: str) -> None:
        """Move the assessed_at of unchanged (clean-skipped) repos to now."""
        # Raw SQL: this is the one write of an unchanged re-sweep's repos (module docstring).
        if not repos:
            return
        with self.transaction() as connection:
            connection.executemany(
                "UPDATE repo_assessments SET assessed_at = ? WHERE repo = ?",
                [(assessed_at, repo) for repo in repos],
            )

    def forget_repos(self, repos: Sequence[str]) -> None:
        """Drop the standing assessments of repos that are gone (their findings with them)."""
        # Raw SQL: a repo named in the configuration but missing on disk is forgotten again
        # by every sweep, the unchanged re-sweep too (module docstring).
        if not repos:
            return
        with self.transaction() as connection:
            connection.executemany(
                "DELETE FROM repo_assessments WHERE repo = ?", [(repo,) for repo in repos]
            )

    def repo_status_counts(self) -> dict[str, int]:
        """How many standing assessments have each status (``ok``, ``findings``, ``error``)."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT status, count(*) FROM repo_assessments GROUP BY status"
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    def finding_counts(self) -> dict[str, int]:
        """How many findings of the standing assessments each check id has."""
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT check_id, count(*) FROM findings GROUP BY check_id"
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    def open_findings(
        self, *, check: str | None = None, repo: str | None = None, limit: int = 5000
    ) -> list[tuple[str, str, str, str, str | None, bool]]:
        """Findings of the standing assessments, the newest assessed repo first.

        A row is ``(repo, assessed_at, check_id, message, path, new)``, ``new`` meaning new
        since the repo's previous assessment (:mod:`statehub.findings`). ``check`` keeps one check
        id; ``repo`` keeps repos whose name contains it (case-insensitive, no wildcards).
        """
        sql = (
            "SELECT f.repo, a.assessed_at, f.check_id, f.message, f.path, f.new FROM findings f"
            " JOIN repo_assessments a ON a.repo = f.repo"
        )
        clauses: list[str] = []
        params: list[Any] = []
        if check:
            clauses.append("f.check_id = ?")
            params.append(check)
        if repo:
            clauses.append("instr(lower(f.repo), lower(?)) > 0")
            params.append(repo)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY a.assessed_at DESC, f.repo, f.seq LIMIT ?"
        params.append(limit)
        with self._guard() as connection:
            return [
                (str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], bool(r[5]))
                for r in connection.execute(sql, params).fetchall()
            ]

    def standing_findings(
        self,
        *,
        repo: str | None = None,
        check: str | None = None,
        new: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the standing findings, by repo name then order found, and how many
        there are in all (``statehub findings``).

        Each is ``{repo, check, message, path, line, line_hash, new, first_seen}``;
        ``repo`` and ``check`` keep one repo (exact name) or one check id, ``new`` the
        findings new since their repo's previous assessment. ``offset`` findings are
        skipped, then at most ``limit`` (None: every one) are read.
        """
        rows, total = self._page(
            "findings",
            "repo, check_id, message, path, first_seen, new, line, line_hash",
            repo=repo,
            check=check,
            new=new,
            offset=offset,
            limit=limit,
        )
        page = [
            {"repo": name, **finding_of_row(*columns, line=line, line_hash=line_hash)}
            for name, *columns, line, line_hash in rows
        ]
        return page, total

    def accepted_findings(
        self,
        *,
        repo: str | None = None,
        check: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the findings the baseline accepts, as the last assessment of each repo
        saw them, by repo then order found, and how many there are in all (``statehub
        findings --accepted``, ``statehub accept``).

        Each is ``{repo, check, message, path, line, line_hash}``; ``repo`` and ``check``
        keep one repo (exact name) or one check id. ``offset`` findings are skipped, then at
        most ``limit`` (None: every one) are read, as :meth:`standing_findings` does.
        """
        rows, total = self._page(
            "accepted_findings",
            "repo, check_id, message, path, line, line_hash",
            repo=repo,
            check=check,
            offset=offset,
            limit=limit,
        )
        page = [
            {
                "repo": name,
                "check": check_id,
                "message": message,
                "path": path,
                "line": line,
                "line_hash": line_hash,
            }
            for name, check_id, message, path, line, line_hash in rows
        ]
        return page, total

    def _page(
        self,
        table: str,
        columns: str,
        *,
        repo: str | None,
        check: str | None,
        new: bool = False,
        offset: int,
        limit: int | None,
    ) -> tuple[list[tuple[Any, ...]], int]:
        """``columns`` of a page of ``table`` (``findings`` or ``accepted_findings``), by repo
        then order found, and how many rows match in all: one repo, one check id, the new
        findings only; ``offset`` rows skipped, then at most ``limit`` (None: every one)."""
        clauses = ["repo = ?", "check_id = ?", "new = 1"]
        wanted = [repo is not None, check is not None, new]
        where = " AND ".join(clause for clause, on in zip(clauses, wanted, strict=True) if on)
        where = f" WHERE {where}" if where else ""
        params = [value for value in (repo, check) if value is not None]
        with self._guard() as connection:
            total = int(
                connection.execute(f"SELECT count(*) FROM {table}{where}", params).fetchone()[0]  # noqa: S608
            )
            rows = connection.execute(
                f"SELECT {columns} FROM {table}{where} ORDER BY repo, seq LIMIT ? OFFSET ?",  # noqa: S608
                (*params, -1 if limit is None else limit, offset),
            ).fetchall()
        return rows, total

    def accepted_counts(self) -> dict[str, int]:
        """How many findings the baseline accepts in each repo's standing assessment."""
        # Raw SQL: every sweep counts them, the unchanged re-sweep too (module docstring).
        with self._guard() as connection:
            rows = connection.execute(
                "SELECT repo, count(*) FROM accepted_findings GROUP BY repo"
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}


def finding_of_row(
    check_id: str,
    message: str,
    path: str | None,
    first_seen: str | None,
    new: int,
    *,
    line: int | None = None,
    line_hash: str | None = None,
) -> dict[str, Any]:
    """A finding of a standing assessment, from its row of ``findings``."""
    return {
        "check": check_id,
        "message": message,
        "path": path,
        "line": line,
        "line_hash": line_hash,
        "new": bool(new),
        "first_seen": first_seen,
    }


def assessment_of_row(
    repo: str,
    path: str,
    head: str | None,
    fingerprint: str | None,
    assessed_at: str,
    *,
    watch: str,
    findings: list[dict[str, Any]],
) -> Assessment:
    """A standing assessment, from its row of ``repo_assessments`` and its findings."""
    return Assessment(
        repo=repo,
        path=path,
        head=head,
        fingerprint=fingerprint,
        assessed_at=assessed_at,
        findings=findings,
        watch=tuple(json.loads(watch)),
    )
