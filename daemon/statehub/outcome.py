"""What crosses between a sweep and its worker processes: a repo to assess, and the outcome.

Both travel as one line of JSON each way. JSON, not pickle: a worker reads hostile repos
with libgit2, and nothing it sends back may be able to run code in the process that holds
the lock and writes the store. File names that are not UTF-8 travel as Python's surrogate
escapes, which :mod:`json` writes as ``\\udcXX`` and reads back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statehub.checks import EffectiveChecks, Finding
from statehub.contract import AUTOMATION_ERROR, REPO_KINDS, RepoKind


@dataclass(frozen=True, kw_only=True)
class Target:
    """A repo of the fleet: its unique name and its folder."""

    name: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class Standing:
    """What a repo's last assessment left that decides a clean skip."""

    fingerprint: str | None
    watch: tuple[str, ...]  # the untracked files, part of the fingerprint
    errored: bool  # a C-00 is always retried


@dataclass(frozen=True, kw_only=True)
class RepoTask:
    """One repo for a worker: what to read, with which settings, and how long a fetch may take."""

    target: Target
    checks: EffectiveChecks
    remote: bool = False
    fetch_timeout: float = 20.0
    # The fetch timeout was cut short to end within the sweep's budget: a fetch that runs
    # out of it is over budget, not an error of the repo's (contract section 4).
    fetch_cut_by_budget: bool = False
    standing: Standing | None = None

    def as_dict(self) -> dict[str, Any]:
        standing = self.standing
        return {
            "name": self.target.name,
            "path": str(self.target.path),
            "checks": self.checks.as_dict(),
            "remote": self.remote,
            "fetch_timeout": self.fetch_timeout,
            "fetch_cut_by_budget": self.fetch_cut_by_budget,
            "standing": None
            if standing is None
            else {
                "fingerprint": standing.fingerprint,
                "watch": list(standing.watch),
                "errored": standing.errored,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoTask:
        standing = data.get("standing")
        return cls(
            target=Target(name=str(data["name"]), path=Path(data["path"])),
            checks=EffectiveChecks.from_dict(data["checks"]),
            remote=bool(data["remote"]),
            fetch_timeout=float(data["fetch_timeout"]),
            fetch_cut_by_budget=bool(data.get("fetch_cut_by_budget", False)),
            standing=None
            if standing is None
            else Standing(
                fingerprint=standing["fingerprint"],
                watch=tuple(standing["watch"]),
                errored=bool(standing["errored"]),
            ),
        )


@dataclass(kw_only=True)
class RepoOutcome:
    """What assessing one repo gave."""

    target: Target
    kind: str  # a RepoKind: assessed, unchanged (findings reused), missing, over_budget
    head: str | None = None
    fingerprint: str | None = None
    watch: tuple[str, ...] = ()  # the untracked files, part of the fingerprint
    findings: list[Finding] = field(default_factory=list)
    # Findings the baseline accepts (statehub.baseline): kept apart, never reported.
    accepted: list[Finding] = field(default_factory=list)
    # The repo's workplans as read this time (statehub.planread), for the registry; None
    # when its files were not read (a clean skip, an error): the registry keeps its record.
    workplans: list[dict[str, Any]] | None = None

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.check == AUTOMATION_ERROR]

    def as_dict(self) -> dict[str, Any]:
        """The worker's reply; the target is known to the sweep already."""
        return {
            "kind": self.kind,
            "head": self.head,
            "fingerprint": self.fingerprint,
            "watch": list(self.watch),
            "findings": [finding.as_dict() for finding in self.findings],
            "accepted": [finding.as_dict() for finding in self.accepted],
            "workplans": self.workplans,
        }

    @classmethod
    def from_dict(cls, target: Target, data: dict[str, Any]) -> RepoOutcome:
        kind = data["kind"]
        if kind not in REPO_KINDS:
            raise ValueError(f"unknown outcome kind {kind!r}")
        return cls(
            target=target,
            kind=kind,
            head=data["head"],
            fingerprint=data["fingerprint"],
            watch=tuple(str(path) for path in data["watch"]),
            findings=[Finding.from_dict(f) for f in data["findings"]],
            accepted=[Finding.from_dict(f) for f in data.get("accepted", [])],
            workplans=_workplans(data.get("workplans")),
        )


def _workplans(data: Any) -> list[dict[str, Any]] | None:
    """The workplans of a worker's reply, every value checked to be text (or None)."""
    if data is None:
        return None

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    plans: list[dict[str, Any]] = []
    for plan in data:
        finding = plan.get("finding")
        plans.append(
            {
                "path": str(plan["path"]),
                "id": text(plan.get("id")),
                "title": text(plan.get("title")),
                "status": text(plan.get("status")),
                "fields": {str(k): str(v) for k, v in (plan.get("fields") or {}).items()},
                "finding": None
                if not finding
                else {"check": str(finding["check"]), "message": str(finding["message"])},
            }
        )
    return plans


def errored(target: Target, checks: EffectiveChecks, message: str) -> RepoOutcome:
    """The outcome of a repo that could not be assessed: one C-00 (unless C-00 is disabled)."""
    findings = (
        [Finding(check=AUTOMATION_ERROR, message=message)]
        if checks.enabled(AUTOMATION_ERROR)
        else []
    )
    return RepoOutcome(target=target, kind=RepoKind.ASSESSED, findings=findings)
