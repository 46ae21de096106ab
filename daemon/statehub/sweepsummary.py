"""One sweep in words: the counts of its event, in the contract's meanings (section 4).

Every surface that tells what a sweep did reads it here: ``statehub sweep`` on a terminal,
``schedule run-now``, the daemon's log line, the pings of ``[notify]`` and the status page.

- **re-read**: repos read again this sweep; **reused**: unchanged repos whose standing
  assessment was reused, nothing read;
- **need action**: repos with at least one finding (``repos_processed``, re-read or reused);
  **clean**: repos with none (``skipped_clean``);
- **missing**: configured repos that are gone; **over budget**: repos not reached, or whose
  read or fetch the sweep's deadline cut (``skipped_budget``: not an error);
- **with findings**: the fleet's repos whose assessment has a C-01..C-23 finding (of the
  chosen repos, for a sweep of chosen repos), and how many findings are **new** since
  their repo's previous assessment; **automation errors**: the C-00s.

An event's lists may be cut to its size bound (issue 25, :mod:`statehub.eventsize`): the
counts are read from its totals (``repos_need_action``, ``repos_clean``, ``repos_missing``,
``repos_over_budget``, ``automation_errors_total``), and from the lists' lengths in events
written before them (:func:`counted`; :func:`list_counts` gives them all, for the Temporal
run's result).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from statehub.contract import AUTOMATION_ERROR, EVENT_CHOSEN, Detail


@dataclass(frozen=True, kw_only=True)
class SweepSummary:
    """The counts of one sweep's detail."""

    source: str
    lock_skipped: bool
    interrupted: bool
    chosen: bool  # a sweep of chosen repos, not the whole fleet
    reread: int
    reused: int
    need_action: int
    clean: int
    missing: int
    over_budget: int
    with_findings: int
    new_findings: int
    accepted: int  # findings the baseline file accepts (statehub accept)
    automation_errors: int
    duration_seconds: float

    @classmethod
    def of(cls, detail: Mapping[str, Any], *, event_type: str = "") -> SweepSummary:
        """The summary of a sweep's ``detail``; ``event_type`` tells a sweep of chosen repos.

        Events written before ``repos_reassessed`` existed count every repo that needs
        action as re-read.
        """
        processed = detail.get(Detail.REPOS_PROCESSED) or []
        need_action = counted(detail, Detail.REPOS_NEED_ACTION, Detail.REPOS_PROCESSED)
        clean = counted(detail, Detail.REPOS_CLEAN, Detail.SKIPPED_CLEAN)
        reached = need_action + clean
        reread = int(detail.get(Detail.REPOS_REASSESSED, need_action))
        chosen = event_type == EVENT_CHOSEN
        if chosen:
            # An entry whose list the event's bound cut (issue 25) counts as failing, and so
            # does a repo the event left unlisted: their unlisted findings are C-01..C-23
            # unless a repo has hundreds of C-00s.
            failing = (need_action - len(processed)) + sum(
                1
                for item in processed
                if item.get("truncated")
                or any(f.get("check") != AUTOMATION_ERROR for f in item.get("findings") or [])
            )
        else:
            failing = int(detail.get(Detail.ASSESSMENT_FAILURES) or 0)
        return cls(
            source=str(detail.get(Detail.SOURCE) or "(none)"),
            lock_skipped=bool(detail.get(Detail.LOCK_SKIPPED)),
            interrupted=bool(detail.get(Detail.INTERRUPTED)),
            chosen=chosen,
            reread=reread,
            reused=max(reached - reread, 0),
            need_action=need_action,
            clean=clean,
            missing=counted(detail, Detail.REPOS_MISSING, Detail.SKIPPED_MISSING),
            over_budget=counted(detail, Detail.REPOS_OVER_BUDGET, Detail.SKIPPED_BUDGET),
            with_findings=failing,
            new_findings=int(detail.get(Detail.NEW_FINDINGS) or 0),
            accepted=int((detail.get(Detail.ACCEPTED) or {}).get("total") or 0),
            automation_errors=counted(
                detail, Detail.AUTOMATION_ERRORS_TOTAL, Detail.AUTOMATION_ERRORS
            ),
            duration_seconds=float(detail.get(Detail.DURATION_SECONDS) or 0.0),
        )

    def words(self) -> str:
        """The sweep in one line: ``3 re-read, 15 reused, 0 missing, 0 over budget in 1.2 s;
        2 need action, 16 clean; 2 repo(s) with findings (1 new), 0 automation error(s)``."""
        if self.lock_skipped:
            return "lock-skipped: another sweep was running"
        if self.interrupted:
            return "interrupted: its process died before it finished (C-00)"
        new = f" ({self.new_findings} new)" if self.new_findings else ""
        return (
            f"{self.reread} re-read, {self.reused} reused, {self.missing} missing, "
            f"{self.over_budget} over budget in {self.duration_seconds:.1f} s; "
            f"{self.need_action} need action, {self.clean} clean; "
            f"{self.with_findings} repo(s) with findings{new}, "
            f"{f'{self.accepted} accepted finding(s), ' if self.accepted else ''}"
            f"{self.automation_errors} automation error(s)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts for ``--json`` documents, with :meth:`words` as ``text``."""
        return {**asdict(self), "text": self.words()}


COUNTED_LISTS: tuple[tuple[str, str], ...] = (
    (Detail.REPOS_NEED_ACTION, Detail.REPOS_PROCESSED),
    (Detail.REPOS_CLEAN, Detail.SKIPPED_CLEAN),
    (Detail.REPOS_MISSING, Detail.SKIPPED_MISSING),
    (Detail.REPOS_OVER_BUDGET, Detail.SKIPPED_BUDGET),
    (Detail.AUTOMATION_ERRORS_TOTAL, Detail.AUTOMATION_ERRORS),
)
"""The lists of a detail that the event's size bound may cut, each as ``(the key of its
count, its key)``."""


def list_counts(detail: Mapping[str, Any]) -> dict[str, int]:
    """How many items each list of :data:`COUNTED_LISTS` had, under the key of its count
    (``repos_need_action``, ..., ``automation_errors_total``), whether the event cut it or
    not (:func:`counted`): never the number listed."""
    return {
        count_key: counted(detail, count_key, list_key) for count_key, list_key in COUNTED_LISTS
    }


def counted(detail: Mapping[str, Any], count_key: str, list_key: str) -> int:
    """How many items a list of ``detail`` had: its count when the event has one (its list
    may be cut, issue 25), else the list's length (an event written before the counts)."""
    count = detail.get(count_key)
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    items = detail.get(list_key)
    return len(items) if isinstance(items, list) else 0


def sweep_words(detail: Mapping[str, Any], *, event_type: str = "") -> str:
    """:meth:`SweepSummary.words` of one sweep's detail."""
    return SweepSummary.of(detail, event_type=event_type).words()
