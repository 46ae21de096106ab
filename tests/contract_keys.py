"""The keys of a progress event as section 5 of the contract shows them, and a sweep's
detail of that shape for tests that plant events."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from statehub.timefmt import iso

EVENT_KEYS = {"id", "event_type", "created_at", "detail"}
DETAIL_KEYS = {
    "accepted",
    "source",
    "run_id",
    "lock_skipped",
    "started_at",
    "finished_at",
    "duration_seconds",
    "max_seconds",
    "remote",
    "repos_total",
    "repos_processed",
    "repos_reassessed",
    "skipped_clean",
    "skipped_missing",
    "skipped_budget",
    "exit_code",
    "automation_error",
    "automation_errors",
    "assessment_failures",
    "warnings",  # issue 15
    "new_findings",  # issue 15
    "workplan_changes",  # issue 26
    "repos_need_action",  # issue 25
    "repos_clean",  # issue 25
    "repos_missing",  # issue 25
    "repos_over_budget",  # issue 25
}


def sweep_detail(source: str, started: datetime, **changes: Any) -> dict[str, Any]:
    """The detail of a sweep by ``source`` that started at ``started`` and took 3 seconds:
    local, nothing assessed, no error, unless ``changes`` say otherwise (copied, so that
    two details never share a list)."""
    record: dict[str, Any] = {
        "source": source,
        "run_id": f"{source}-{started.timestamp():.0f}",
        "lock_skipped": False,
        "started_at": iso(started),
        "finished_at": iso(started + timedelta(seconds=3)),
        "duration_seconds": 3.0,
        "max_seconds": 300,
        "remote": False,
        "repos_total": 0,
        "repos_processed": [],
        "skipped_clean": [],
        "skipped_missing": [],
        "skipped_budget": [],
        "exit_code": 0,
        "automation_error": False,
        "automation_errors": [],
        "assessment_failures": 0,
    }
    record.update(copy.deepcopy(changes))
    return record
