"""One sweep: select the repos, skip the unchanged, keep the budget, hold the lock, record.

:func:`run_sweep` is the single entry point used by the command line, the HTTP API and the
daemon. It never waits for another sweep: when the lock is held it records a lock-skipped
event at once. Every sweep appends exactly one progress event (section 5 of the contract).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from statehub.cancel import Cancel, stopped_by
from statehub.checks import EffectiveChecks, printable
from statehub.contract import (
    AUTOMATION_ERROR,
    EVENT_ALL,
    EVENT_CHOSEN,
    EVENT_TYPES,
    SOURCE_MANUAL,
    Detail,
    RepoKind,
)
from statehub.errors import UsageError, WorkerError
from statehub.eventsize import fit_lists, fit_warnings
from statehub.findings import mark_new
from statehub.fleetscan import depth_reaching_all, holds_git, repos_below
from statehub.lock import SweepLock
from statehub.outcome import RepoOutcome, RepoTask, Standing, Target
from statehub.pool import WorkerPool, usable_cores
from statehub.retention import maybe_prune
from statehub.settings import Settings
from statehub.store import Assessment, ProgressEvent, StandingSummary, Store
from statehub.timefmt import iso, utc_now

__all__ = ["EVENT_ALL", "EVENT_CHOSEN", "EVENT_TYPES", "discover", "run_sweep", "select"]

_REACHED = (RepoKind.ASSESSED, RepoKind.UNCHANGED)  # not missing, not over budget

# hub_state key holding the sweep in progress; found at the next start, it means the
# holder died (kill -9, power loss) and an "interrupted" event is written for it.
_IN_PROGRESS = "sweep_in_progress"

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, repo)`` after each repo of a sweep."""


@dataclass(frozen=True, kw_only=True)
class SweepParams:
    """What was asked of one sweep, as recorded in its event (not the HTTP body of
    :class:`statehub.api.SweepRequest`, which becomes one of these)."""

    event_type: str
    source: str
    max_seconds: int
    remote: bool


@dataclass(frozen=True, kw_only=True)
class Fleet:
    targets: tuple[Target, ...]
    warnings: tuple[str, ...] = ()


def excluded(settings: Settings, name: str) -> bool:
    """True for a repo name that ``repos.exclude`` leaves out of the fleet."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.repos.exclude)


def discover(settings: Settings) -> Fleet:
    """Every repo under ``roots`` and in ``paths``, less ``exclude``, with unique names.

    A folder below a root (down to ``[repos] depth`` levels) is a repo when it holds a
    ``.git`` entry; a configured path is listed even when missing (it becomes
    skipped_missing).
    """
    found: list[Path] = []
    for root in settings.repos.roots:
        try:
            found.extend(repos_below(settings.resolve(root), settings.repos.depth))
        except OSError:
            continue  # a missing root has no repos; the sweep's warnings say so
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
        if excluded(settings, name):
            continue
        count = taken.get(name, 0) + 1
        taken[name] = count
        if count > 1:
            warnings.append(f"two repos are named {name!r}: {path} is called {name}~{count}")
            name = f"{name}~{count}"
        targets.append(Target(name=name, path=path))
    return Fleet(targets=tuple(targets), warnings=tuple(warnings))


def root_warnings(settings: Settings) -> list[str]:
    """Each root that does not exist, is not a folder or holds no repo, and a configuration
    with nothing to sweep: a sweep that sweeps nothing says why (issue 15).

    Cheap: a root is read only until its first repo, unless it holds none at its depth
    (then up to :data:`~statehub.fleetscan.MAX_DEPTH` levels, to say where they are).
    """
    warnings: list[str] = []
    depth = settings.repos.depth
    for root in settings.repos.roots:
        folder = settings.resolve(root)
        try:
            with os.scandir(folder) as entries:
                holds_repo = any(holds_git(entry) for entry in entries)
            if not holds_repo and depth > 1:
                holds_repo = bool(repos_below(folder, depth))
        except FileNotFoundError:
            warnings.append(f"repos.roots: {folder} does not exist")
            continue
        except NotADirectoryError:
            warnings.append(f"repos.roots: {folder} is not a folder")
            continue
        except OSError as exc:
            warnings.append(f"repos.roots: {folder} cannot be read ({exc.strerror})")
            continue
        if not holds_repo:
            warnings.append(_no_repo_warning(folder, depth))
    if not settings.repos.roots and not settings.repos.paths:
        warnings.append("repos: no roots and no paths are configured: there is nothing to sweep")
    return warnings


def _no_repo_warning(folder: Path, depth: int) -> str:
    """A root without a repo at its depth: where the repos are, when they sit deeper."""
    deeper = depth_reaching_all(folder)
    if deeper is None:
        within = "none of its folders has .git" if depth == 1 else f"within {depth} levels"
        return f"repos.roots: {folder} holds no git repo ({within})"
    return (
        f"repos.roots: {folder} holds repos only {deeper} levels down: "
        f"set [repos] depth = {deeper} (now {depth}), or name the folders below it as roots"
    )


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


def match_repo_names(settings: Settings, names: Sequence[str]) -> list[str]:
    """The repos meant by ``names`` as a person types them (``sweep --repo``).

    A name is a repo's name (configured, or assessed by an earlier sweep), else the one
    repo whose name it starts or ends (``click`` for ``pallets+click``). Raises UsageError
    for a name that matches several (naming them) or none (naming the closest).
    """
    available = {target.name for target in discover(settings).targets}
    if settings.database_path.exists():
        with Store.open(settings.database_path) as db:
            available |= db.assessed_repos()
    return [_match_name(name, sorted(available)) for name in names]


def _match_name(name: str, available: list[str]) -> str:
    if name in available:
        return name
    candidates = [repo for repo in available if repo.startswith(name) or repo.endswith(name)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
        raise UsageError(f"repo {name!r} matches {len(candidates)} repos: {shown}; name one")
    # Close to a whole name, or to its last part (``cluck`` to ``pallets+click``).
    parts = {repo: repo for repo in available}
    for repo in available:
        parts.setdefault(re.split(r"[+/._~-]", repo)[-1], repo)
    close = list(
        dict.fromkeys(parts[match] for match in difflib.get_close_matches(name, parts, n=3))
    )
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise UsageError(f"unknown repo: {name} (not configured, never assessed){hint}")


def run_sweep(
    settings: Settings,
    *,
    repos: Sequence[str] | None = None,
    remote: bool = False,
    max_seconds: int | None = None,
    source: str = SOURCE_MANUAL,
    progress: ProgressCallback | None = None,
    store: Store | None = None,
    cancel: Cancel | None = None,
) -> ProgressEvent:
    """Run one sweep and return its recorded event (a lock-skipped one if another runs).

    ``repos`` None sweeps the whole fleet (event ``consistency_sweep_remote_all``), else the
    named repos (``consistency_sweep``). Raises UsageError for an unknown repo name and
    StoreError when the database cannot be used; every other failure is a C-00 in the event.
    A sweep stopped by the operator (``KeyboardInterrupt``, :class:`statehub.cancel.Stopped`,
    or ``cancel`` from another thread) records its event as cancelled, then re-raises.
    """
    budget = max_seconds if max_seconds is not None else settings.sweep.max_seconds
    event_type = EVENT_ALL if repos is None else EVENT_CHOSEN
    own_store = store is None
    db = store if store is not None else Store.open(settings.database_path)
    try:
        request = SweepParams(
            event_type=event_type, source=source, max_seconds=budget, remote=remote
        )
        # Named repos are checked before the lock: a typo is a usage error even while
        # another sweep runs. The whole fleet is listed only once the lock is held, so that
        # a refused trigger is answered at once, whatever the size of the fleet.
        chosen = None if repos is None else _targets(settings, db, repos)
        lock = SweepLock(settings.database_path)
        if not lock.acquire():
            return _record_lock_skipped(db, request)
        locked_at = utc_now()  # started_at: when the lock was taken (contract section 5)
        with lock, worker_pool(settings) as pool:
            # The workers load while the fleet is listed and the store read.
            pool.start(pool.size if chosen is None else len(chosen[0]))
            targets, gone = chosen if chosen is not None else _targets(settings, db, None)
            if chosen is None and settings.repos.exclude:
                _forget_excluded(settings, db, targets)
            _record_interrupted(db)
            try:
                event = _sweep_locked(
                    settings,
                    db,
                    request,
                    targets,
                    gone,
                    pool=pool,
                    started=locked_at,
                    progress=progress,
                    cancel=cancel,
                )
            except KeyboardInterrupt as exc:  # ^C, SIGTERM, a cancel: the operator's stop
                pool.close()
                _record_unfinished(db, cancelled_by=stopped_by(exc))
                raise
            maybe_prune(db, settings)  # at most once a day; never raises
            return event
    finally:
        if own_store:
            db.close()


def _targets(
    settings: Settings, db: Store, repos: Sequence[str] | None
) -> tuple[list[Target], list[str]]:
    """The repos to sweep, and those of earlier sweeps that are gone.

    Raises UsageError for a named repo that is neither configured nor ever assessed.
    """
    targets, not_found = select(settings, repos)
    known = db.assessed_repos()
    if any(name not in known for name in not_found):
        missing = ", ".join(name for name in not_found if name not in known)
        raise UsageError(f"unknown repo: {missing} (not configured, never assessed)")
    # Named repos known only from earlier sweeps are gone; for the whole fleet, so is
    # every repo of an earlier sweep that is no longer configured or found. A repo left
    # out by `exclude` is not gone, it is no part of the fleet (contract section 4): its
    # assessment is dropped in silence (_forget_excluded).
    if repos is not None:
        return targets, not_found
    names = {target.name for target in targets}
    return targets, sorted(name for name in known - names if not excluded(settings, name))


def _forget_excluded(settings: Settings, db: Store, swept: Sequence[Target]) -> None:
    """Drop the standing assessments of repos that ``exclude`` now leaves out."""
    names = {target.name for target in swept}
    db.forget_repos(
        sorted(name for name in db.assessed_repos() - names if excluded(settings, name))
    )


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
        "repos_reassessed": 0,
        "skipped_clean": [],
        "skipped_missing": [],
        "skipped_budget": [],
        "exit_code": 0,
        "automation_error": False,
        "automation_errors": [],
        "assessment_failures": 0,
        # Added by issue 15: what the operator should know, and findings new since the
        # repo's previous assessment.
        "warnings": [],
        "new_findings": 0,
        # Added by issue 21: the findings the baseline accepts (`statehub accept`), which
        # are not reported, in total and per repo that has any.
        "accepted": {"total": 0, "repos": {}},
        # Added by issue 26: the workplan registry's changes this sweep, counted by kind.
        "workplan_changes": {"added": 0, "changed": 0, "moved": 0, "removed": 0},
        # Added by issue 25: how long the lists are, whatever the event's size bound left
        # of them (statehub.eventsize).
        "repos_need_action": 0,
        "repos_clean": 0,
        "repos_missing": 0,
        "repos_over_budget": 0,
    }


def _record_lock_skipped(db: Store, request: SweepParams) -> ProgressEvent:
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
    _record_unfinished(db, cancelled_by=None)


def _record_unfinished(db: Store, *, cancelled_by: str | None) -> None:
    """The event of the sweep in :data:`_IN_PROGRESS`, ended before its end.

    ``cancelled_by`` (a signal's name): the operator stopped it, and this process says so
    (``cancelled``, not an error); None: its process died without a word, found by the
    next sweep (``interrupted``, a C-00).
    """
    marker = db.get_state(_IN_PROGRESS)
    if marker is None:
        return
    earlier = json.loads(marker)
    now = utc_now()
    detail = _base_detail(earlier["source"], earlier["max_seconds"], earlier["remote"])
    detail.update(
        run_id=earlier["run_id"],
        started_at=earlier["started_at"],
        finished_at=iso(now),
        assessment_failures=db.count_failing_repos(),
    )
    if cancelled_by is not None:
        detail.update({Detail.CANCELLED: True, Detail.CANCELLED_BY: cancelled_by})
    else:
        message = (
            "the sweep was interrupted before it finished (its process died or its database failed)"
        )
        detail.update(
            interrupted=True,
            exit_code=1,
            automation_error=True,
            automation_errors=[{"repo": None, "check": AUTOMATION_ERROR, "message": message}],
        )
    # One transaction: a crash between the two would record the same sweep twice.
    db.append_event(earlier["event_type"], detail, created_at=now, clear_state=_IN_PROGRESS)


def _sweep_locked(
    settings: Settings,
    db: Store,
    request: SweepParams,
    targets: list[Target],
    gone: list[str],
    *,
    pool: WorkerPool,
    started: datetime,
    progress: ProgressCallback | None,
    cancel: Cancel | None = None,
) -> ProgressEvent:
    clock = time.monotonic() - (utc_now() - started).total_seconds()
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

    # Without their findings: an unchanged repo needs none of them (issue 25).
    standing = db.standing_summaries()
    # A repo never read into the workplan registry is read again, not clean-skipped, so
    # that the registry holds every repo's plans from the first sweep that has it.
    registered = db.registered_repos()
    # Least recently assessed first, so a budget that runs out rotates through the fleet.
    targets = sorted(
        targets,
        key=lambda t: (standing[t.name].assessed_at if t.name in standing else "", t.name),
    )
    checks = settings.checks_for_each(target.name for target in targets)
    tasks = [
        _task(
            settings,
            target,
            checks[target.name],
            standing.get(target.name) if target.name in registered else None,
            request.remote,
        )
        for target in targets
    ]
    outcomes, not_reached, failure = _run_pool(pool, tasks, deadline, progress, cancel)
    pool.close()  # before the writes: the lock is released soon after finished_at

    reassessed: list[RepoOutcome] = []  # read again this sweep
    reused: list[str] = []  # unchanged: the standing assessment stands
    missing_names: list[str] = list(gone)
    over_budget = [target.name for target in not_reached]
    for outcome in outcomes:
        if outcome.kind == RepoKind.MISSING:
            missing_names.append(outcome.target.name)
        elif outcome.kind == RepoKind.UNCHANGED:
            reused.append(outcome.target.name)
        elif outcome.kind == RepoKind.OVER_BUDGET:  # its fetch cut by the deadline
            over_budget.append(outcome.target.name)
        else:
            reassessed.append(outcome)

    assessed_at = iso(utc_now())
    # Each finding marked new or not against the repo's previous standing assessment.
    previous = db.assessments(repos=[outcome.target.name for outcome in reassessed])
    kept = {outcome.target.name: _unread_kept(outcome, previous) for outcome in reassessed}
    marked = {
        outcome.target.name: mark_new(
            [finding.as_dict() for finding in outcome.findings] + kept[outcome.target.name],
            previous.get(outcome.target.name),
            assessed_at,
        )
        for outcome in reassessed
    }
    # The registry first: a sweep cut between the two writes re-reads these repos (their
    # fingerprints are not saved yet) instead of clean-skipping them with a stale registry.
    plan_changes = db.reconcile_workplans(
        {o.target.name: o.workplans for o in reassessed if o.workplans is not None},
        missing_names,
        run_id=detail["run_id"],
        now=assessed_at,
    )
    db.save_assessments(
        [
            Assessment(
                repo=outcome.target.name,
                path=printable(str(outcome.target.path)),
                head=outcome.head,
                fingerprint=outcome.fingerprint,
                assessed_at=assessed_at,
                findings=marked[outcome.target.name],
                watch=outcome.watch,
                accepted=[finding.as_dict() for finding in outcome.accepted],
            )
            for outcome in reassessed
        ]
    )
    _touch_clean(db, reused, assessed_at)
    db.forget_repos(missing_names)
    needs_action, clean = _evidence(outcomes, standing, marked, db)

    # The sweep's own error first: it tells why the rest were not reached, and an event
    # whose errors the size bound cuts keeps it (statehub.eventsize).
    errors: list[dict[str, Any]] = (
        [] if failure is None else [{"repo": None, "check": AUTOMATION_ERROR, "message": failure}]
    )
    errors += [
        {"repo": outcome.target.name, "check": AUTOMATION_ERROR, "message": finding.message}
        for outcome in reassessed
        for finding in outcome.errors
    ]
    finished = utc_now()
    detail.update(
        finished_at=iso(finished),
        duration_seconds=round(time.monotonic() - clock, 3),
        repos_total=len(targets) + len(gone),
        repos_reassessed=len(reassessed),
        new_findings=sum(mark["new"] for marks in marked.values() for mark in marks),
        workplan_changes=plan_changes,
        exit_code=1 if errors else 0,
        automation_error=bool(errors),
        assessment_failures=db.count_failing_repos(),
    )
    # The lists, cut to the event's byte budget with their counts (issue 25).
    detail.update(
        fit_lists(
            errors=errors,
            need_action=needs_action,
            missing=missing_names,
            over_budget=over_budget,
            clean=clean,
            accepted=_accepted_counts(db, [o.target.name for o in outcomes if o.kind in _REACHED]),
        )
    )
    detail.update(fit_warnings(root_warnings(settings)))
    if any(entry.get("truncated") for entry in detail[Detail.REPOS_PROCESSED]):
        detail[Detail.FINDINGS_TRUNCATED] = True
    return db.append_event(
        request.event_type, detail, created_at=finished, clear_state=_IN_PROGRESS
    )


def _unread_kept(outcome: RepoOutcome, previous: dict[str, Assessment]) -> list[dict[str, Any]]:
    """The previous findings of what this read could not read: a file, or the whole repo.

    A file that a content check could not read (a C-00 naming it, issue 20) keeps what the
    last read that could read it found; so does a repo that could not be read at all (a
    C-00 and nothing else: libgit2 refused a file it had to hash, a bound was hit). A sweep
    by a user who may not read a 0600 key then leaves its C-23 standing instead of dropping
    it, so two users sweeping one repo in turn do not make the finding new at every turn.
    The C-00 says what was not read; the repo is read again at the next sweep.
    """
    last = previous.get(outcome.target.name)
    if last is None or not outcome.errors:
        return []
    if outcome.fingerprint is None and len(outcome.errors) == len(outcome.findings):
        return [finding for finding in last.findings if finding["check"] != AUTOMATION_ERROR]
    unread = {f.path for f in outcome.errors if f.path is not None}
    return [
        finding
        for finding in last.findings
        if finding["check"] in _CONTENT_CHECKS and finding.get("path") in unread
    ]


_CONTENT_CHECKS = ("C-21", "C-22", "C-23")


def _accepted_counts(db: Store, reached: list[str]) -> dict[str, Any]:
    """The event's ``accepted``: findings the baseline accepts, in total and per repo."""
    counts = db.accepted_counts()
    repos = {name: counts[name] for name in sorted(reached) if counts.get(name)}
    return {"total": sum(repos.values()), "repos": repos}


EVENT_FINDINGS_PER_REPO = 100
"""Findings of one repo an event lists at most; the entry then says ``findings_total``."""

EVENT_FINDINGS = 2_000
"""Findings one event lists at most, the whole fleet together (about 0.5 MB of JSON).

Repos keep theirs in the event's order until this is spent; every later entry lists none
(``"findings": []``, ``findings_total``, ``"truncated": true``). The bytes of the event's
lists, findings and repo names, are bounded apart (:mod:`statehub.eventsize`)."""


def _evidence(
    outcomes: list[RepoOutcome],
    standing: dict[str, StandingSummary],
    marked: dict[str, list[dict[str, Any]]],
    db: Store,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``repos_processed`` and ``skipped_clean`` (contract section 4): findings or none.

    A repo with at least one finding needs action, whether it was read again this sweep
    (``"reassessed": true``, its findings marked ``new`` against the last assessment) or its
    standing assessment was reused (``false``; nothing of it is new); every other repo
    reached is clean. ``repos_processed`` keeps the order the repos were handed out in;
    ``skipped_clean`` is in name order (the store keeps it as the rest of the fleet).
    Finding lists are cut to :data:`EVENT_FINDINGS_PER_REPO` a repo and
    :data:`EVENT_FINDINGS` an event (issue 25); the lists' bytes are bounded after
    (:func:`statehub.eventsize.fit_lists`). Of an unchanged repo, only the findings listed
    are read from ``db``.
    """
    entries: list[dict[str, Any]] = []
    clean: list[str] = []
    budget = EVENT_FINDINGS
    for outcome in outcomes:
        name = outcome.target.name
        wanted = min(EVENT_FINDINGS_PER_REPO, budget)
        if outcome.kind == RepoKind.ASSESSED:
            head, total = outcome.head, len(marked[name])
            listed = marked[name][:wanted]
        elif outcome.kind == RepoKind.UNCHANGED and name in standing:
            head, total = standing[name].head, standing[name].findings_total
            listed = db.standing_findings(repo=name, limit=wanted)[0] if total and wanted else []
        else:
            continue  # missing or over budget
        if not total:
            clean.append(name)
            continue
        budget -= len(listed)
        reassessed = outcome.kind == RepoKind.ASSESSED
        # `line` only where the finding has one (C-04, C-21, C-23; issue 21).
        findings = [
            {
                key: finding.get(key) if reassessed or key != "new" else False
                for key in ("check", "message", "path", "line", "new")
                if key != "line" or finding.get("line") is not None
            }
            for finding in listed
        ]
        entry: dict[str, Any] = {
            "repo": name,
            "head": head,
            "reassessed": reassessed,
            "findings": findings,
        }
        if len(listed) < total:
            # The rest stay in the repo's standing assessment (/repos/NAME, statehub
            # findings): no repo, nor the fleet, may make every event huge (issue 25).
            entry["findings_total"] = total
            entry["truncated"] = True
        entries.append(entry)
    return entries, sorted(clean)


def worker_pool(settings: Settings) -> WorkerPool:
    """The pool that reads repos for one sweep (or one ``statehub check``)."""
    sweep = settings.sweep
    return WorkerPool(
        size=sweep.workers or usable_cores(),
        repo_timeout=sweep.repo_timeout_seconds,
        memory_mb=sweep.repo_memory_mb,
    )


def _task(
    settings: Settings,
    target: Target,
    checks: EffectiveChecks,
    standing: StandingSummary | None,
    remote: bool,
) -> RepoTask:
    return RepoTask(
        target=target,
        checks=checks,
        remote=remote,
        fetch_timeout=settings.sweep.fetch_timeout_seconds,  # the pool shortens it to fit
        standing=None
        if standing is None
        else Standing(
            fingerprint=standing.fingerprint,
            watch=tuple(standing.watch),
            errored=standing.status == "error",
        ),
    )


def _run_pool(
    pool: WorkerPool,
    tasks: list[RepoTask],
    deadline: float,
    progress: ProgressCallback | None,
    cancel: Cancel | None = None,
) -> tuple[list[RepoOutcome], list[Target], str | None]:
    """Outcomes, targets not reached, and why the workers failed (None when they did not)."""
    seen: list[RepoOutcome] = []

    def advance(outcome: RepoOutcome) -> None:
        seen.append(outcome)
        if progress is not None:
            progress(len(seen), len(tasks), outcome.target.name)

    try:
        result = pool.run(tasks, deadline=deadline, on_outcome=advance, cancel=cancel)
    except WorkerError as exc:
        # What was assessed stands; the rest was not reached, and the sweep says why.
        done = {outcome.target.name for outcome in seen}
        rest = [task.target for task in tasks if task.target.name not in done]
        return seen, rest, str(exc)
    return result.outcomes, result.not_reached, None


def _touch_clean(db: Store, names: Iterable[str], assessed_at: str) -> None:
    """A clean skip counts as assessed now, for the least-recently-assessed order."""
    db.mark_assessed(list(names), assessed_at)
