"""Helpers shared by the tests of the check families: a real repo, its context, its ids."""

from __future__ import annotations

from pathlib import Path

from gitfleet import good_files, make_repo
from statehub.checks import Finding, RepoContext
from statehub.gitstate import read_state
from statehub.settings import Settings


def context(root: Path, settings: Settings | None = None) -> RepoContext:
    """The context a sweep would give the checks for the repo at ``root``."""
    settings = settings or Settings()
    return RepoContext(
        name=root.name,
        root=root,
        settings=settings.checks_for(root.name),
        git=read_state(root, default_branch="main"),
    )


def repo_with(tmp_path: Path, changes: dict[str, str | bytes | None] | None = None) -> Path:
    """A good repo ``r`` (no origin) with some files changed, or left out where None."""
    files = good_files("r")
    for path, content in (changes or {}).items():
        if content is None:
            files.pop(path, None)
        else:
            files[path] = content
    return make_repo(tmp_path, "r", files, with_origin=False)


def ids(findings: list[Finding]) -> list[str]:
    return [finding.check for finding in findings]
