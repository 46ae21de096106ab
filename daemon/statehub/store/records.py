"""The store's record types: a progress event, a standing assessment, an activity run.

Frozen, keyword-only data classes, each with the plain-dict form that the API and
``--json`` print; each maps one-to-one onto what a reader of the database sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from statehub.contract import AUTOMATION_ERROR


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """One row of ``progress_events``: a sweep, lock-skipped ones too."""

    id: int
    event_type: str
    created_at: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "created_at": self.created_at,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class Assessment:
    """A repo's standing assessment: the findings of its last completed assessment."""

    repo: str
    path: str
    head: str | None
    fingerprint: str | None
    assessed_at: str
    findings: list[dict[str, Any]]
    # The untracked files when it was assessed: their stats are part of the fingerprint.
    watch: tuple[str, ...] = ()
    # Findings the baseline accepts (statehub.baseline): stored apart, never reported.
    accepted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``error`` (a C-00), ``findings`` (C-01..C-23) or ``ok``."""
        checks = {finding["check"] for finding in self.findings}
        if AUTOMATION_ERROR in checks:
            return "error"
        return "findings" if checks else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "head": self.head,
            "status": self.status,
            "assessed_at": self.assessed_at,
            # The line hash is for the baseline file (statehub.baseline), not for readers.
            "findings": [
                {key: value for key, value in finding.items() if key != "line_hash"}
                for finding in self.findings
            ],
        }


@dataclass(frozen=True, kw_only=True)
class StandingSummary:
    """What a sweep needs of a repo's standing assessment before it reads the repo, without
    its findings: a repo may hold a hundred thousand, and an unchanged one needs none of
    them (issue 25)."""

    repo: str
    head: str | None
    fingerprint: str | None
    assessed_at: str
    watch: tuple[str, ...]
    status: str  # as stored: ``error`` (a C-00), ``findings`` or ``ok``
    findings_total: int


@dataclass(frozen=True, kw_only=True)
class ActivityRun:
    """One row of ``activity_runs``: a fire of the daemon's schedule definition."""

    run_id: str
    definition_id: str
    fired_at: str
    scheduled_for: str
    outcome: str
    context_snapshot: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "definition_id": self.definition_id,
            "fired_at": self.fired_at,
            "scheduled_for": self.scheduled_for,
            "outcome": self.outcome,
            "context_snapshot": self.context_snapshot,
        }
