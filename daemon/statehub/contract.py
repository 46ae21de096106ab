"""The contract's names: event types, detail keys, outcomes, sources, C-00.

Every string that a user, a script or the verbatim SQL of the runbook reads back (a key of
an event's ``detail``, an outcome of ``activity_runs``, a source) is spelled here once and
imported where it is written or read, so that two modules cannot drift apart on a name.
The meanings are those of the contract (sections 4, 5 and 8); this module imports nothing.
"""

from __future__ import annotations

from typing import Final

# -- section 3: the automation error --------------------------------------------------

AUTOMATION_ERROR: Final = "C-00"
"""The check id of an automation error: the sweep could not assess a repo (or itself)."""

# -- section 5: the progress event ----------------------------------------------------

EVENT_ALL: Final = "consistency_sweep_remote_all"
"""The event type of a sweep of the whole fleet (the only one that covers a slot)."""
EVENT_CHOSEN: Final = "consistency_sweep"
"""The event type of a sweep of chosen repos."""
EVENT_TYPES: Final = (EVENT_ALL, EVENT_CHOSEN)

SWEEP_RESULT_KEY: Final = EVENT_ALL
"""The key of ``activity_runs.context_snapshot`` that holds the run's sweep detail."""


class Detail:
    """The keys of a sweep's ``detail`` (contract section 5)."""

    SOURCE: Final = "source"
    RUN_ID: Final = "run_id"
    LOCK_SKIPPED: Final = "lock_skipped"
    STARTED_AT: Final = "started_at"
    FINISHED_AT: Final = "finished_at"
    DURATION_SECONDS: Final = "duration_seconds"
    MAX_SECONDS: Final = "max_seconds"
    REMOTE: Final = "remote"
    REPOS_TOTAL: Final = "repos_total"
    REPOS_PROCESSED: Final = "repos_processed"
    """The repos that need action: a finding, re-read this sweep or reused."""
    REPOS_REASSESSED: Final = "repos_reassessed"
    """How many repos were read again this sweep (the others' assessments were reused)."""
    SKIPPED_CLEAN: Final = "skipped_clean"
    """The repos with no finding, re-read or reused."""
    SKIPPED_MISSING: Final = "skipped_missing"
    """Configured repos that are gone (a repo left out by ``exclude`` is not missing)."""
    SKIPPED_BUDGET: Final = "skipped_budget"
    """Repos not reached, or not finished (read or fetch cut), within ``max_seconds``."""
    EXIT_CODE: Final = "exit_code"
    AUTOMATION_ERROR: Final = "automation_error"
    AUTOMATION_ERRORS: Final = "automation_errors"
    ASSESSMENT_FAILURES: Final = "assessment_failures"
    WARNINGS: Final = "warnings"
    NEW_FINDINGS: Final = "new_findings"
    """Findings new since their repo's previous assessment."""
    ACCEPTED: Final = "accepted"
    """The findings the baseline accepts (not reported): ``{"total", "repos"}``."""
    WORKPLAN_CHANGES: Final = "workplan_changes"
    """The workplan registry's changes this sweep, by kind: added, changed, moved, removed."""
    INTERRUPTED: Final = "interrupted"
    """Only on the event of a sweep whose process died, written by the next sweep."""
    CANCELLED: Final = "cancelled"
    """Only on the event of a sweep the operator stopped, written at once by its process."""
    CANCELLED_BY: Final = "cancelled_by"
    """With ``cancelled``: the signal that stopped it (``SIGINT``, ``SIGTERM``)."""
    FINDINGS_TRUNCATED: Final = "findings_truncated"
    """Only when an entry of ``repos_processed`` lists fewer findings than its repo has."""
    # Issue 25: an event's lists are cut to a byte budget; these say how long they were.
    REPOS_NEED_ACTION: Final = "repos_need_action"
    """How many repos need action, listed in ``repos_processed`` or not."""
    REPOS_CLEAN: Final = "repos_clean"
    """How many repos are clean, named in ``skipped_clean`` or not."""
    REPOS_MISSING: Final = "repos_missing"
    """How many repos are missing, named in ``skipped_missing`` or not."""
    REPOS_OVER_BUDGET: Final = "repos_over_budget"
    """How many repos were over budget, named in ``skipped_budget`` or not."""
    REPOS_TRUNCATED: Final = "repos_truncated"
    """Only when a list of repos (``repos_processed``, ``skipped_*``) names fewer than its
    count: the rest are in their standing assessments (``/repos``, ``statehub findings``)."""
    AUTOMATION_ERRORS_TOTAL: Final = "automation_errors_total"
    """Only when ``automation_errors`` lists fewer than occurred: how many did."""
    WARNINGS_TOTAL: Final = "warnings_total"
    """Only when ``warnings`` was cut to its bound (its last line then says how many more):
    how many warnings the sweep had."""


_ONLY_WHEN_CUT_OR_TRUE: Final = frozenset(
    {
        "INTERRUPTED",
        "CANCELLED",
        "CANCELLED_BY",
        "FINDINGS_TRUNCATED",
        "REPOS_TRUNCATED",
        "AUTOMATION_ERRORS_TOTAL",
        "WARNINGS_TOTAL",
    }
)
DETAIL_KEYS: Final = frozenset(
    value
    for name, value in vars(Detail).items()
    if name.isupper() and name not in _ONLY_WHEN_CUT_OR_TRUE
)
"""Every key of a sweep's detail (``interrupted``, ``cancelled``, ``findings_truncated``,
``repos_truncated`` are added only when true, ``automation_errors_total`` only when
``automation_errors`` is cut)."""


class SweepOutcome:
    """What one progress event says of its sweep (``status``, ``compare``, the page)."""

    COMPLETED: Final = "completed"
    AUTOMATION_ERROR: Final = "automation_error"
    """It ran, with at least one C-00."""
    INTERRUPTED: Final = "interrupted"
    CANCELLED: Final = "cancelled"
    """Stopped by the operator (``cancelled_by``): it did not run to its end, not an error."""
    LOCK_SKIPPED: Final = "lock_skipped"


# -- section 5: sources ---------------------------------------------------------------

SOURCE_MANUAL: Final = "manual"
"""A person at the command line or a POST without a source: never a scheduler."""
SOURCE_CLUSTER: Final = "activity-core"
SOURCE_DAEMON: Final = "local-daemon"
SOURCE_FALLBACK: Final = "local-fallback"
SOURCE_TIMER: Final = "local-timer"
SOURCE_CANARY: Final = "canary"
"""``statehub schedule run-now --force``: covers a slot, never doubles one."""
NOT_SCHEDULERS: Final = frozenset({SOURCE_MANUAL, SOURCE_CANARY})
"""Sources that are not a scheduler: their sweeps never make a slot doubled."""

# -- section 8: the processes that run the schedule --------------------------------

HEARTBEAT_PREFIX: Final = "heartbeat:"
"""hub_state keys ``heartbeat:<process>`` (``daemon``, ``worker``): the process's record of
itself, which every status surface reads (:mod:`statehub.statusmodel`)."""

# -- section 8: outcomes of a run of the schedule (activity_runs.outcome) -------------


class RunOutcome:
    """``activity_runs.outcome``: what a run of the schedule did."""

    SWEPT: Final = "swept"
    FAILED: Final = "failed"
    """It swept, and its sweep had an automation error."""
    LOCK_SKIPPED: Final = "lock_skipped"
    CANCELLED: Final = "cancelled"
    MISSED: Final = "missed"
    ERROR: Final = "error"
    """It failed before any sweep was recorded."""
    # Decisions not to sweep: rows of schedule_decisions, not of activity_runs (issue 20).
    OVERLAP_SKIPPED: Final = "overlap_skipped"
    PRIMARY_HEALTHY: Final = "primary_healthy"
    DISABLED: Final = "disabled"


RUN_OUTCOMES: Final = (
    RunOutcome.SWEPT,
    RunOutcome.FAILED,
    RunOutcome.LOCK_SKIPPED,
    RunOutcome.CANCELLED,
    RunOutcome.MISSED,
    RunOutcome.ERROR,
)
"""The outcomes of a run of the definition: the rows of ``activity_runs``."""
DECISIONS: Final = (RunOutcome.PRIMARY_HEALTHY, RunOutcome.OVERLAP_SKIPPED, RunOutcome.DISABLED)
"""A scheduler's decisions not to sweep: the rows of ``schedule_decisions``."""


# -- section 4: what one repo's assessment gave (the worker's answer) -----------------


class RepoKind:
    """The kind of one repo's outcome in a sweep."""

    ASSESSED: Final = "assessed"
    """Read again: its findings are this sweep's."""
    UNCHANGED: Final = "unchanged"
    """Its fingerprint is that of its standing assessment: nothing read, findings reused."""
    MISSING: Final = "missing"
    OVER_BUDGET: Final = "over_budget"
    """Its read or fetch was cut by the sweep's own deadline: ``skipped_budget``."""


REPO_KINDS: Final = frozenset(
    {RepoKind.ASSESSED, RepoKind.UNCHANGED, RepoKind.MISSING, RepoKind.OVER_BUDGET}
)
