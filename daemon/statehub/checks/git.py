"""The git-state family: C-13..C-20, judged from the :class:`GitState` already read."""

from __future__ import annotations

from statehub.checks import Finding, RepoContext


def _preview(paths: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def run(ctx: RepoContext) -> list[Finding]:
    """Findings of C-13..C-20 for one repo."""
    git = ctx.git
    enabled = ctx.settings.enabled
    findings: list[Finding] = []

    if enabled("C-13"):
        findings.extend(
            Finding(
                check="C-13",
                message=f"the repo's config sets {key} = {value!r}, which runs a command",
                path=".git/config",
            )
            for key, value in git.risky_config
        )
    if enabled("C-14") and git.changed:
        findings.append(
            Finding(
                check="C-14",
                message=f"{len(git.changed)} tracked file(s) modified or staged: "
                + _preview(git.changed),
            )
        )
    if enabled("C-15") and git.untracked:
        findings.append(
            Finding(
                check="C-15",
                message=f"{len(git.untracked)} untracked file(s) not ignored: "
                + _preview(git.untracked),
            )
        )
    if enabled("C-16"):
        if git.operation is not None:
            findings.append(Finding(check="C-16", message=f"a {git.operation} is in progress"))
        elif git.unmerged:
            findings.append(
                Finding(
                    check="C-16",
                    message=f"{len(git.unmerged)} unmerged path(s): " + _preview(git.unmerged),
                )
            )
    if enabled("C-17"):
        if git.branch is None:
            findings.append(Finding(check="C-17", message="HEAD is detached"))
        elif git.branch != git.default_branch:
            findings.append(
                Finding(
                    check="C-17",
                    message=f"on branch {git.branch!r}, not the default {git.default_branch!r}",
                )
            )
    if git.branch is None:
        return findings  # C-18..C-20 judge a branch; C-17 covers a detached HEAD
    if git.upstream is None:
        if enabled("C-18"):
            findings.append(
                Finding(check="C-18", message=f"branch {git.branch!r} has no upstream")
            )
        return findings
    if enabled("C-19") and git.ahead:
        findings.append(
            Finding(
                check="C-19",
                message=f"{git.ahead} commit(s) not pushed to {git.upstream}",
            )
        )
    if enabled("C-20") and git.behind:
        findings.append(
            Finding(
                check="C-20",
                message=f"{git.behind} commit(s) behind {git.upstream} (as of the last fetch)",
            )
        )
    return findings
