"""A planted store for the status page tests: known slots, known findings, known runs.

:func:`plant` writes, through :class:`statehub.store.Store`, a real SQLite file whose last
six hours of 15-minute slots are all covered by ``activity-core`` except one *missed*
slot, with one *doubled* slot (a ``local-fallback`` sweep beside the primary's), one
automation error and one lock-skipped event; standing assessments with a C-00, a C-13 and
a message that holds markup; runs of the daemon; a heartbeat. Times are relative to the
moment of planting, and the page labels each cell with its slot's start, so a test that
crosses a slot boundary still finds the planted slots where they belong.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api_support import ApiServer
from contract_keys import sweep_detail
from gitfleet import write_config
from statehub.store import ActivityRun, Assessment, Store
from statehub.timefmt import iso, utc_now

SLOT = timedelta(minutes=15)
DEFINITION = "7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b"
MISSED_AGO = 5  # slots before the running one
DOUBLED_AGO = 8
ERROR_AGO = 10
SKIPPED_AGO = 3
COVERED_SLOTS = 24  # six hours; the store "exists" from the first of them
HOSTILE = "<script>alert('x')</script>"


@dataclass(frozen=True)
class Planted:
    missed: datetime
    doubled: datetime
    error: datetime
    store_since: datetime
    c00_repo: str
    c00_message: str


def slot_label(start: datetime) -> str:
    """How the page labels a slot (``data-slot``): ``2026-12-02T10:15Z``."""
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# What every planted sweep saw unless it says otherwise: four repos, one of them reassessed.
FLEET: dict[str, Any] = {
    "repos_total": 4,
    "repos_processed": [{"repo": "alpha-svc", "head": "1a2b3c4", "findings": [{"check": "C-09"}]}],
    "skipped_clean": ["gamma-docs"],
    "assessment_failures": 2,
}


def detail(source: str, started: datetime, **changes: Any) -> dict[str, Any]:
    """A planted sweep's detail: :data:`FLEET`'s, with ``changes``."""
    return sweep_detail(source, started, **(FLEET | changes))


def plant(database: Path, now: datetime | None = None) -> Planted:
    """Fill ``database`` (created if needed) as the module docstring says."""
    moment = now or utc_now()
    running = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    first = running - COVERED_SLOTS * SLOT
    with Store.open(database) as store:
        for ago in range(COVERED_SLOTS, -1, -1):
            start = running - ago * SLOT
            started = min(start + timedelta(seconds=10), moment)
            if ago == MISSED_AGO:
                continue
            # The older half swept clean; the newer half found failing repos.
            changes: dict[str, Any] = {"assessment_failures": 0 if ago > 12 else 2}
            if ago == ERROR_AGO:
                changes |= {
                    "exit_code": 1,
                    "automation_error": True,
                    "automation_errors": [
                        {"repo": "broken-repo", "check": "C-00", "message": "planted"}
                    ],
                }
            store.append_event(
                "consistency_sweep_remote_all",
                detail("activity-core", started, **changes),
                created_at=started + timedelta(seconds=3),
            )
            if ago == DOUBLED_AGO:
                late = start + timedelta(minutes=2)
                store.append_event(
                    "consistency_sweep_remote_all",
                    detail("local-fallback", late),
                    created_at=late + timedelta(seconds=3),
                )
            if ago == SKIPPED_AGO:
                late = start + timedelta(seconds=11)
                store.append_event(
                    "consistency_sweep_remote_all",
                    detail("local-daemon", late, lock_skipped=True, duration_seconds=0.0),
                    created_at=late,
                )
        # The newest sweep found C-13 in beta-lib for the first time: "new".
        store.append_event(
            "consistency_sweep_remote_all",
            detail(
                "activity-core",
                moment,
                repos_processed=[
                    {"repo": "alpha-svc", "findings": [{"check": "C-09"}]},
                    {"repo": "beta-lib", "findings": [{"check": "C-13"}, {"check": "C-15"}]},
                ],
            ),
            created_at=moment,
        )
        c00 = "cannot read .git: planted corruption"
        store.save_assessments(
            [
                Assessment(
                    repo="alpha-svc",
                    path="/srv/repos/alpha-svc",
                    head="1a2b3c4",
                    fingerprint=None,
                    assessed_at=iso(moment - timedelta(minutes=30)),
                    findings=[
                        {"check": "C-09", "message": HOSTILE, "path": "workplans/X-WP-0001.md"}
                    ],
                ),
                Assessment(
                    repo="beta-lib",
                    path="/srv/repos/beta-lib",
                    head="5d6e7f8",
                    fingerprint=None,
                    assessed_at=iso(moment - timedelta(minutes=5)),
                    # C-13 is new since beta-lib's previous assessment; C-15 is not.
                    findings=[
                        {
                            "check": "C-13",
                            "message": "core.fsmonitor is set",
                            "path": None,
                            "new": True,
                        },
                        {"check": "C-15", "message": "2 untracked files", "path": None},
                    ],
                ),
                Assessment(
                    repo="broken-repo",
                    path="/srv/repos/broken-repo",
                    head=None,
                    fingerprint=None,
                    assessed_at=iso(moment - timedelta(minutes=10)),
                    findings=[{"check": "C-00", "message": c00, "path": None}],
                ),
                Assessment(
                    repo="gamma-docs",
                    path="/srv/repos/gamma-docs",
                    head="9a8b7c6",
                    fingerprint=None,
                    assessed_at=iso(moment - timedelta(minutes=1)),
                    findings=[],
                ),
            ]
        )
        for ago, outcome in ((1, "primary_healthy"), (2, "primary_healthy"), (3, "lock_skipped")):
            slot = running - ago * SLOT
            store.record_run(
                ActivityRun(
                    run_id=f"run-{ago}",
                    definition_id=DEFINITION,
                    fired_at=iso(slot + timedelta(seconds=1)),
                    scheduled_for=iso(slot),
                    outcome=outcome,
                    context_snapshot={"source": "local-fallback", "duration_seconds": 0.2},
                )
            )
        store.set_state("heartbeat:daemon", iso(moment))
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute(
            "UPDATE schema_migrations SET applied_at = ? WHERE version = 1", (iso(first),)
        )
        connection.commit()
    return Planted(
        missed=running - MISSED_AGO * SLOT,
        doubled=running - DOUBLED_AGO * SLOT,
        error=running - ERROR_AGO * SLOT,
        store_since=first,
        c00_repo="broken-repo",
        c00_message=c00,
    )


@contextlib.contextmanager
def planted_server(
    folder: Path, *, token: str | None = None, api_lines: str = ""
) -> Iterator[tuple[ApiServer, Planted]]:
    """``statehub serve`` on a loopback port of its choosing over a freshly planted store; with
    ``token``, a token file holding it (the page then asks for a login); ``api_lines`` are
    more lines of ``[api]``."""
    fleet = folder / "fleet"
    fleet.mkdir(parents=True, exist_ok=True)
    api = "port = 0"
    if token is not None:
        (folder / "token").write_text(f"{token}\n", encoding="utf-8")
        api += '\ntoken_file = "token"'
    api += f"\n{api_lines}" if api_lines else ""
    config = write_config(folder, roots=[fleet], api=api)
    planted = plant(folder / "statehub.db")
    with ApiServer(config) as server:
        yield server, planted
