"""The keys of a progress event as section 5 of the contract shows them."""

EVENT_KEYS = {"id", "event_type", "created_at", "detail"}
DETAIL_KEYS = {
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
}
