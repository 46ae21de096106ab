"""The git-state family: C-13..C-20, judged from the :class:`GitState` already read.

One defect gives one finding: unmerged paths are C-16 (not C-14); C-18..C-20 judge a branch,
so a detached HEAD is C-17 alone; C-19 and C-20 need an upstream (C-18 covers none). A rebase
or a bisect detaches HEAD as part of its work: the branch it started from is judged instead.
"""

from __future__ import annotations

from statehub.checks import Finding, RepoContext
from statehub.gitconfig import quotable
from statehub.gitlayout import RiskyKey
from statehub.gitstate import GitState


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _preview(paths: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _risky(key: RiskyKey, root_prefix: str) -> Finding:
    # Never the value itself: at most its first word, from the repo's own files (issue 12).
    if key.origin is None:
        # Its true file: .git/config, a linked work tree's config.worktree, or the config of
        # a git dir elsewhere (a .git file pointing out of the work tree).
        path = key.file.removeprefix(root_prefix) if key.file else ".git/config"
        where = "the repo's config" if path == ".git/config" else path
        from_repo = True
    else:
        shown = key.origin.removeprefix(root_prefix)
        from_repo = shown != key.origin
        where, path = f"{shown}, included by the repo's config,", shown
    quoted = quotable(key.value, from_repo=from_repo)
    # repr() keeps the quoted word on one line.
    setting = key.key if quoted is None else f"{key.key} = {quoted!r}"
    message = f"{where} sets {setting}, a key that can make git run a command"
    return Finding(check="C-13", message=message, path=path)


def run(ctx: RepoContext) -> list[Finding]:
    """Findings of C-13..C-20 for one repo."""
    git = ctx.git
    enabled = ctx.settings.enabled
    findings: list[Finding] = []

    if enabled("C-13"):
        prefix = f"{ctx.root}/"
        findings.extend(_risky(key, prefix) for key in git.risky_config)
    if enabled("C-14") and git.changed:
        message = f"{_count(len(git.changed), 'tracked file')} modified or staged: "
        findings.append(Finding(check="C-14", message=message + _preview(git.changed)))
    if enabled("C-15") and git.untracked:
        message = f"{_count(len(git.untracked), 'untracked file')} not ignored: "
        findings.append(Finding(check="C-15", message=message + _preview(git.untracked)))
    if enabled("C-16") and (git.operation is not None or git.unmerged):
        findings.append(Finding(check="C-16", message=_operation(git)))
    if enabled("C-17"):
        if git.branch is None:
            at = f" at {git.short_head}" if git.short_head else ""
            findings.append(Finding(check="C-17", message=f"HEAD is detached{at}"))
        elif git.branch != git.default_branch:
            message = f"on branch {git.branch!r}, not the default branch {git.default_branch!r}"
            findings.append(Finding(check="C-17", message=message))
    if git.branch is None:
        return findings  # C-18..C-20 judge a branch; C-17 covers a detached HEAD
    if git.upstream is None or git.upstream_gone:
        if enabled("C-18"):
            findings.append(Finding(check="C-18", message=_no_upstream(git)))
        return findings
    if enabled("C-19") and git.ahead:
        message = f"{_count(git.ahead, 'commit')} not pushed to {git.upstream}"
        findings.append(Finding(check="C-19", message=message))
    if enabled("C-20") and git.behind:
        message = f"{_count(git.behind, 'commit')} behind {git.upstream} (as of the last fetch)"
        findings.append(Finding(check="C-20", message=message))
    return findings


def _operation(git: GitState) -> str:
    unmerged = ""
    if git.unmerged:
        unmerged = f"{_count(len(git.unmerged), 'unmerged path')}: {_preview(git.unmerged)}"
    if git.operation is None:
        return unmerged
    of_branch = f" of branch {git.branch!r}" if git.operation == "rebase" and git.branch else ""
    message = f"a {git.operation}{of_branch} is in progress"
    return f"{message} ({unmerged})" if unmerged else message


def _no_upstream(git: GitState) -> str:
    if git.upstream_gone:
        return f"branch {git.branch!r} has no upstream: {git.upstream} is gone (or never fetched)"
    return f"branch {git.branch!r} has no upstream"
