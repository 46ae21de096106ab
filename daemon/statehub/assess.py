"""One repo's assessment: probe, clean skip, fetch, state read, the catalogue.

Only the modules a repo needs are loaded: an unchanged repo is judged from file stats
(:mod:`statehub.gitlayout`) without loading libgit2.

This is the work that can hang or blow up on a hostile repo (libgit2 blocks on a named
pipe, a filter loads a huge file), so it runs only in a sweep's worker processes
(:mod:`statehub.worker`), under the bounds :mod:`statehub.pool` enforces. It never raises:
anything that goes wrong for a repo is a C-00 finding of its outcome.
"""

from __future__ import annotations

import hashlib

from statehub import gitlayout
from statehub.checks import EffectiveChecks, Finding, RepoContext, assess
from statehub.contract import AUTOMATION_ERROR, RepoKind
from statehub.errors import FetchError, FetchTimeout, RepoError
from statehub.outcome import RepoOutcome, RepoTask, Standing, Target, errored


def assess_task(task: RepoTask) -> RepoOutcome:
    """Assess ``task``'s repo; unchanged since its standing assessment means a clean skip."""
    return assess_target(
        task.target,
        task.checks,
        remote=task.remote,
        fetch_timeout=task.fetch_timeout,
        fetch_cut_by_budget=task.fetch_cut_by_budget,
        standing=task.standing,
    )


def assess_target(
    target: Target,
    checks: EffectiveChecks,
    *,
    remote: bool,
    fetch_timeout: float,
    fetch_cut_by_budget: bool = False,
    standing: Standing | None = None,
) -> RepoOutcome:
    """Assess one repo in this process. Never raises; a failure is a C-00 of the outcome.

    A fetch that runs out of a timeout the sweep's budget cut short
    (``fetch_cut_by_budget``) makes the repo over budget, not a C-00 (contract section 4).
    """
    try:
        probe = gitlayout.probe(target.path)
    except RepoError as exc:
        return errored(target, checks, str(exc))
    if probe.kind is gitlayout.Kind.MISSING:
        return RepoOutcome(target=target, kind=RepoKind.MISSING)
    if probe.kind is gitlayout.Kind.NOT_WORKTREE:
        return _not_worktree(target, checks, probe.reason, standing)

    errors: list[Finding] = []
    if remote:
        fetched = _fetch(target, checks, fetch_timeout, cut_by_budget=fetch_cut_by_budget)
        if isinstance(fetched, RepoOutcome):
            return fetched
        errors = fetched
    if not errors and _unchanged(target, checks, standing):
        return RepoOutcome(target=target, kind=RepoKind.UNCHANGED)
    return _read_and_assess(target, checks, errors)


def _fetch(
    target: Target, checks: EffectiveChecks, timeout: float, *, cut_by_budget: bool
) -> RepoOutcome | list[Finding]:
    """``--remote``: fetch; the C-00 of a failed fetch, or the repo's outcome when it ends here.

    A fetch that runs out of a timeout the sweep's budget cut short is over budget.
    """
    from statehub import gitfetch

    try:
        gitfetch.fetch(target.path, timeout=timeout)
    except FetchTimeout as exc:
        if cut_by_budget:
            return RepoOutcome(target=target, kind=RepoKind.OVER_BUDGET)
        return _fetch_error(checks, exc)
    except FetchError as exc:
        return _fetch_error(checks, exc)
    except RepoError as exc:
        return errored(target, checks, str(exc))
    return []


def _fetch_error(checks: EffectiveChecks, exc: FetchError) -> list[Finding]:
    if not checks.enabled(AUTOMATION_ERROR):
        return []
    return [Finding(check=AUTOMATION_ERROR, message=str(exc))]


def _read_and_assess(target: Target, checks: EffectiveChecks, errors: list[Finding]) -> RepoOutcome:
    """Read the repo's git state and run the catalogue on it; ``errors`` come first."""
    from statehub import (
        gitstate,  # libgit2: loaded on the first repo that needs a full read
        planread,  # the workplans for the registry, read where the checks are
    )

    try:
        state = gitstate.read_state(
            target.path, default_branch=checks.default_branch, settings_digest=checks.digest()
        )
    except RepoError as exc:
        return errored(target, checks, str(exc))
    ctx = RepoContext(name=target.name, root=target.path, settings=checks, git=state)
    try:
        findings, accepted = checks.partition(assess(ctx))
        plans = planread.read_plans(target.path)
    except MemoryError:
        raise  # the worker reports the memory bound
    except Exception as exc:  # a bug in one check must not stop the fleet
        return errored(target, checks, f"a check failed: {exc!r}")
    return RepoOutcome(
        target=target,
        kind=RepoKind.ASSESSED,
        head=state.short_head,
        fingerprint=state.fingerprint,
        watch=state.untracked,
        findings=errors + findings,
        accepted=accepted,
        workplans=plans,
    )


def _not_worktree(
    target: Target, checks: EffectiveChecks, reason: str, standing: Standing | None
) -> RepoOutcome:
    """C-12, or the standing C-12 reused when neither the reason nor the settings changed.

    C-12 is judged from the probe alone, so the probe's verdict is its fingerprint.
    """
    digest = hashlib.sha256(f"{reason}\0{checks.digest()}".encode()).hexdigest()
    fingerprint = f"not-worktree:{digest[:32]}"
    if standing is not None and not standing.errored and standing.fingerprint == fingerprint:
        return RepoOutcome(target=target, kind=RepoKind.UNCHANGED)
    findings = [Finding(check="C-12", message=reason)] if checks.enabled("C-12") else []
    # No work tree, no workplans: the registry holds none for it.
    return RepoOutcome(
        target=target,
        kind=RepoKind.ASSESSED,
        fingerprint=fingerprint,
        findings=findings,
        workplans=[],
    )


def _libgit2_index(target: Target) -> list[tuple[str, int]]:
    from statehub import gitstate

    return gitstate.index_entries(target.path)


def _unchanged(target: Target, checks: EffectiveChecks, standing: Standing | None) -> bool:
    """True when the repo's fingerprint is the one of its standing assessment.

    The fingerprint is computed from file stats alone, so a clean skip costs a few stat
    calls per file and no status walk. An automation error is always retried.
    """
    if standing is None or standing.fingerprint is None or standing.errored:
        return False
    try:
        current = gitlayout.fingerprint(
            target.path,
            settings_digest=checks.digest(),
            libgit2_index=lambda: _libgit2_index(target),
            watch=standing.watch,
        )
    except RepoError:
        return False  # read_state will say what is wrong, as a C-00
    return current == standing.fingerprint
