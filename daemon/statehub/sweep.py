"""One sweep: select the repos, skip the unchanged, keep the budget, hold the lock, record.

:func:`run_sweep` is the single entry point used by the command line, the HTTP API and the
daemon. It never waits for another sweep: when the lock is held it records a lock-skipped
event at once. Every sweep appends exactly one progress event (section 5 of the contract).
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statehub import gitstate
from statehub.checks import AUTOMATION_ERROR, Finding, RepoContext, assess, printable
from statehub.errors import FetchError, RepoError, UsageError
from statehub.lock import SweepLock
from statehub.retention import maybe_prune
from statehub.settings import EffectiveChecks, Settings
from statehub.store import Assessment, ProgressEvent, Store, iso, utc_now

EVENT_ALL = "consistency_sweep_remote_all"
EVENT_CHOSEN = "consistency_sweep"
EVENT_TYPES = (EVENT_ALL, EVENT_CHOSEN)

# hub_state key holding the sweep in progress; found at the next start, it means the
# holder died (kill -9, power loss) and an "interrupted" event is written for it.
_IN_PROGRESS = "sweep_in_progress"

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, repo)`` after each repo of a sweep."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """A repo of the fleet: its unique name and its folder."""

    name: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class SweepRequest:
    """What was asked of one sweep, as recorded in its event."""

    event_type: str
    source: str
    max_seconds: int
    remote: bool


@dataclass(frozen=True, kw_only=True)
class Fleet:
    targets: tuple[Target, ...]
    warnings: tuple[str, ...] = ()


@dataclass(kw_only=True)
class RepoOutcome:
    """What assessing one repo gave."""

    target: Target
    kind: str  # 'assessed', 'clean', 'missing'
    head: str | None = None
    fingerprint: str | None = None
    watch: tuple[str, ...] = ()  # the untracked files, part of the fingerprint
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.check == AUTOMATION_ERROR]


def discover(settings: Settings) -> Fleet:
    """Every repo under ``roots`` and in ``paths``, less ``exclude``, with unique names.

    A folder directly below a root is a repo when it holds a ``.git`` entry; a configured
    path is listed even when missing (it becomes skipped_missing).
    """
    found: list[Path] = []
    for root in settings.repos.roots:
        folder = settings.resolve(root)
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue  # a missing root has no repos; `config check` says so
        found.extend(entry for entry in entries if _holds_git(entry))
    found.extend(settings.resolve(path) for path in settings.repos.paths)

    targets: list[Target] = []
    seen_paths: set[Path] = set()
    taken: dict[str, int] = {}
    warnings: list[str] = []
    for path in found:
        if path in seen_paths:
            continue
        seen_paths.add(path)
        name = printable(path.name)  # a folder name that is not UTF-8 gets \xNN escapes
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.repos.exclude):
            continue
        count = taken.get(name, 0) + 1
        taken[name] = count
        if count > 1:
            warnings.append(f"two repos are named {name!r}: {path} is called {name}~{count}")
            name = f"{name}~{count}"
        targets.append(Target(name=name, path=path))
    return Fleet(targets=tuple(targets), warnings=tuple(warnings))


def _holds_git(entry: Path) -> bool:
    try:
        return entry.is_dir() and os.path.lexists(entry / ".git")
    except OSError:
        return False


def assess_target(
    target: Target,
    checks: EffectiveChecks,
    *,
    remote: bool,
    fetch_timeout: float,
    standing: Assessment | None = None,
) -> RepoOutcome:
    """Assess one repo; unchanged since ``standing`` means a clean skip. Never raises.

    Any failure to read the repo (or a failed fetch) is a C-00 finding of the outcome.
    """
    try:
        probe = gitstate.probe(target.path)
    except RepoError as exc:
        return _errored(target, checks, str(exc))
    if probe.kind is gitstate.Kind.MISSING:
        return RepoOutcome(target=target, kind="missing")
    if probe.kind is gitstate.Kind.NOT_WORKTREE:
        findings = [Finding(check="C-12", message=probe.reason)] if checks.enabled("C-12") else []
        return RepoOutcome(target=target, kind="assessed", findings=findings)

    errors: list[Finding] = []
    if remote:
        try:
            gitstate.fetch(target.path, timeout=fetch_timeout)
        except FetchError as exc:
            if checks.enabled(AUTOMATION_ERROR):
                errors.append(Finding(check=AUTOMATION_ERROR, message=str(exc)))
        except RepoError as exc:
            return _errored(target, checks, str(exc))
    if not errors and _unchanged(target, checks, standing):
        return RepoOutcome(target=target, kind="clean")
    return _read_and_assess(target, checks, errors)


def _read_and_assess(target: Target, checks: EffectiveChecks, errors: list[Finding]) -> RepoOutcome:
    """Read the repo's git state and run the catalogue on it; ``errors`` come first."""
    try:
        state = gitstate.read_state(
            target.path, default_branch=checks.default_branch, settings_digest=checks.digest()
        )
    except RepoError as exc:
        return _errored(target, checks, str(exc))
    ctx = RepoContext(name=target.name, root=target.path, settings=checks, git=state)
    try:
        findings = assess(ctx)
    except Exception as exc:  # a bug in one check must not stop the fleet
        return _errored(target, checks, f"a check failed: {exc!r}")
    return RepoOutcome(
        target=target,
        kind="assessed",
        head=state.short_head,
        fingerprint=state.fingerprint,
        watch=state.untracked,
        findings=errors + findings,
    )


def _unchanged(target: Target, checks: EffectiveChecks, standing: Assessment | None) -> bool:
    """True when the repo's fingerprint is the one of its standing assessment.

    The fingerprint is computed from file stats alone, so a clean skip costs a few stat
    calls per file and no status walk. An automation error is always retried.
    """
    if standing is None or standing.fingerprint is None or standing.status == "error":
        return False
    try:
        current = gitstate.fingerprint(
            target.path, settings_digest=checks.digest(), watch=standing.watch
        )
    except RepoError:
        return False  # read_state will say what is wrong, as a C-00
    return current == standing.fingerprint


def _errored(target: Target, checks: EffectiveChecks, message: str) -> RepoOutcome:
    findings = (
        [Finding(check=AUTOMATION_ERROR, message=message)]
        if checks.enabled(AUTOMATION_ERROR)
        else []
    )
    return RepoOutcome(target=target, kind="assessed", findings=findings)


def select(settings: Settings, names: Sequence[str] | None) -> tuple[list[Target], list[str]]:
    """The targets of a sweep: all (``names`` is None) or the named ones.

    Returns the targets found and the asked-for names that were not found (deduplicated).
    """
    fleet = discover(settings)
    if names is None:
        return list(fleet.targets), []
    by_name = {target.name: target for target in fleet.targets}
    chosen: list[Target] = []
    unknown: list[str] = []
    for name in dict.fromkeys(names):
        if name in by_name:
            chosen.append(by_name[name])
        else:
            unknown.append(name)
    return chosen, unknown


def run_sweep(
    settings: Settings,
    *,
    repos: Sequence[str] | None = None,
    remote: bool = False,
    max_seconds: int | None = None,
    source: str = "manual",
    progress: ProgressCallback | None = None,
    store: Store | None = None,
) -> ProgressEvent:
    """Run one sweep and return its recorded event (a lock-skipped one if another runs).

    ``repos`` None sweeps the whole fleet (event ``consistency_sweep_remote_all``), else the
    named repos (``consistency_sweep``). Raises UsageError for an unknown repo name and
    StoreError when the database cannot be used; every other failure is a C-00 in the event.
    """
    budget = max_seconds if max_seconds is not None else settings.sweep.max_seconds
    event_type = EVENT_ALL if repos is None else EVENT_CHOSEN
    own_store = store is None
    db = store if store is not None else Store.open(settings.database_path)
    try:
        targets, not_found = select(settings, repos)
        known = db.assessed_repos()
        if any(name not in known for name in not_found):
            missing = ", ".join(name for name in not_found if name not in known)
            raise UsageError(f"unknown repo: {missing} (not configured, never assessed)")
        # Named repos known only from earlier sweeps are gone; for the whole fleet, so is
        # every repo of an earlier sweep that is no longer configured or found.
        current = {target.name for target in targets}
        gone = not_found if repos is not None else sorted(known - current)
        request = SweepRequest(
            event_type=event_type, source=source, max_seconds=budget, remote=remote
        )
        lock = SweepLock(settings.database_path)
        if not lock.acquire():
            return _record_lock_skipped(db, request)
        with lock:
            _record_interrupted(db)
            event = _sweep_locked(settings, db, request, targets, gone, progress=progress)
            maybe_prune(db, settings)  # at most once a day; never raises
            return event
    finally:
        if own_store:
            db.close()


def _base_detail(source: str, budget: int, remote: bool) -> dict[str, Any]:
    """Every key of a sweep's detail (contract section 5), with the values of an empty sweep."""
    return {
        "source": source,
        "run_id": uuid.uuid4().hex,
        "lock_skipped": False,
        "started_at": None,
        "finished_at": None,
        "duration_seconds": 0.0,
        "max_seconds": budget,
        "remote": remote,
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


def _record_lock_skipped(db: Store, request: SweepRequest) -> ProgressEvent:
    now = utc_now()
    detail = _base_detail(request.source, request.max_seconds, request.remote)
    detail.update(
        lock_skipped=True,
        started_at=iso(now),
        finished_at=iso(now),
        assessment_failures=db.count_failing_repos(),
    )
    return db.append_event(request.event_type, detail, created_at=now)


def _record_interrupted(db: Store) -> None:
    """Write the event of a sweep whose holder died before recording it (found at start)."""
    marker = db.get_state(_IN_PROGRESS)
    if marker is None:
        return
    earlier = json.loads(marker)
    now = utc_now()
    detail = _base_detail(earlier["source"], earlier["max_seconds"], earlier["remote"])
    message = (
        "the sweep was interrupted before it finished (its process died or its database failed)"
    )
    detail.update(
        run_id=earlier["run_id"],
        started_at=earlier["started_at"],
        finished_at=iso(now),
        interrupted=True,
        exit_code=1,
        automation_error=True,
        automation_errors=[{"repo": None, "check": AUTOMATION_ERROR, "message": message}],
        assessment_failures=db.count_failing_repos(),
    )
    # One transaction: a crash between the two would record the same sweep twice.
    db.append_event(earlier["event_type"], detail, created_at=now, clear_state=_IN_PROGRESS)


def _sweep_locked(
    settings: Settings,
    db: Store,
    request: SweepRequest,
    targets: list[Target],
    gone: list[str],
    *,
    progress: ProgressCallback | None,
) -> ProgressEvent:
    started = utc_now()
    clock = time.monotonic()
    deadline = clock + request.max_seconds
    detail = _base_detail(request.source, request.max_seconds, request.remote)
    detail["started_at"] = iso(started)
    db.set_state(
        _IN_PROGRESS,
        json.dumps(
            {
                "run_id": detail["run_id"],
                "event_type": request.event_type,
                "source": request.source,
                "started_at": detail["started_at"],
                "max_seconds": request.max_seconds,
                "remote": request.remote,
            }
        ),
    )

    standing = db.assessments()
    # Least recently assessed first, so a budget that runs out rotates through the fleet.
    targets = sorted(
        targets,
        key=lambda t: (standing[t.name].assessed_at if t.name in standing else "", t.name),
    )

    processed: list[RepoOutcome] = []
    clean: list[str] = []
    missing_names: list[str] = list(gone)
    over_budget: list[str] = []
    for done, target in enumerate(targets, start=1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            over_budget.append(target.name)
            continue
        checks = settings.checks_for(target.name)
        outcome = assess_target(
            target,
            checks,
            remote=request.remote,
            fetch_timeout=min(settings.sweep.fetch_timeout_seconds, remaining),
            standing=standing.get(target.name),
        )
        if outcome.kind == "missing":
            missing_names.append(target.name)
        elif outcome.kind == "clean":
            clean.append(target.name)
        else:
            processed.append(outcome)
        if progress is not None:
            progress(done, len(targets), target.name)

    assessed_at = iso(utc_now())
    db.save_assessments(
        [
            Assessment(
                repo=outcome.target.name,
                path=printable(str(outcome.target.path)),
                head=outcome.head,
                fingerprint=outcome.fingerprint,
                assessed_at=assessed_at,
                findings=[finding.as_dict() for finding in outcome.findings],
                watch=outcome.watch,
            )
            for outcome in processed
        ]
    )
    _touch_clean(db, clean, assessed_at)
    db.forget_repos(missing_names)

    errors = [
        {"repo": outcome.target.name, "check": AUTOMATION_ERROR, "message": finding.message}
        for outcome in processed
        for finding in outcome.errors
    ]
    finished = utc_now()
    detail.update(
        finished_at=iso(finished),
        duration_seconds=round(time.monotonic() - clock, 3),
        repos_total=len(targets) + len(gone),
        repos_processed=[
            {
                "repo": outcome.target.name,
                "head": outcome.head,
                "findings": [finding.as_dict() for finding in outcome.findings],
            }
            for outcome in processed
        ],
        skipped_clean=clean,
        skipped_missing=missing_names,
        skipped_budget=over_budget,
        exit_code=1 if errors else 0,
        automation_error=bool(errors),
        automation_errors=errors,
        assessment_failures=db.count_failing_repos(),
    )
    return db.append_event(
        request.event_type, detail, created_at=finished, clear_state=_IN_PROGRESS
    )


def _touch_clean(db: Store, names: Iterable[str], assessed_at: str) -> None:
    """A clean skip counts as assessed now, for the least-recently-assessed order."""
    db.mark_assessed(list(names), assessed_at)
