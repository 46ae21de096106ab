"""The check catalogue C-01..C-23 (C-00 is an automation error), one module per family.

Each family exposes ``run(ctx) -> list[Finding]`` and emits only the checks that are
enabled for the repo (``ctx.settings.enabled(id)``), so a disabled check costs nothing.
A finding whose path matches one of its check's ``exclude_paths`` patterns (gitignore
style, matched by pathspec) is accepted: :func:`assess` drops it.
C-12 (not the top of a non-bare work tree) is decided before any family runs, from
:func:`statehub.gitlayout.probe`, because no other check can run on such a path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statehub.contract import AUTOMATION_ERROR as AUTOMATION_ERROR  # re-exported: checks use it

if TYPE_CHECKING:
    from statehub.gitstate import GitState

# C-01: what projects name their README (issue 21); C-04 reads the Markdown ones only.
DEFAULT_README_NAMES = (
    "README.md",
    "README.rst",
    "README.txt",
    "README",
    "README.markdown",
    "README.adoc",
)
# C-22: dependency lock files, committed on purpose and growing with the dependencies
# (issue 21), matched by file name anywhere in the repo: npm, pnpm, yarn, Poetry, uv,
# Pipenv, Cargo, Go, Bundler, Composer.
DEFAULT_LOCKFILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
)
RULES_VERSION = 4
"""Bumped when what a check finds changes (2: C-21 looks for blocks, C-23 honours the allow
marker; issue 15. 3: C-23 needs key material, findings carry their line, C-11 counts a
plan the index names, a file that cannot be read is a C-00; 4: a README in any letter
case; issue 21). It is part of every
repo's fingerprint, so an upgrade re-reads each repo once instead of keeping findings that
the new rules would not give."""


@functools.lru_cache(maxsize=256)
def _path_spec(patterns: tuple[str, ...]) -> Any:
    """The compiled gitignore-style patterns (pathspec's ``GitIgnoreSpec``), cached."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def printable(text: str) -> str:
    """``text`` as valid Unicode: the bytes of a name that is not UTF-8 shown as ``\\xe9``.

    Python decodes such a file name with surrogate escapes (PEP 383), which SQLite, JSON
    output and the terminal all refuse; every name and path that leaves a sweep goes
    through here.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True, kw_only=True)
class EffectiveChecks:
    """The check settings that apply to one repo, after its override.

    Built by :meth:`statehub.settings.Settings.checks_for`; a plain data class (not a
    pydantic model) so that a worker process can rebuild it from JSON without loading the
    configuration machinery.
    """

    disabled: frozenset[str]
    workplan_id_pattern: str
    workplan_statuses: tuple[str, ...]
    max_file_kb: int
    require_workplans: bool
    default_branch: str
    # C-01: the file names that count as the README (any one present and non-empty).
    readme_names: tuple[str, ...] = DEFAULT_README_NAMES
    # Per check id, gitignore-style patterns of repo paths whose findings are accepted.
    exclude_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # C-22: the file names of dependency lock files, exempt from the size limit.
    lockfiles: tuple[str, ...] = DEFAULT_LOCKFILES
    # The repo's entries of the baseline file (statehub.baseline): (check, path or None,
    # line hashes, empty for any line). A finding they match is accepted, not reported.
    baseline: tuple[tuple[str, str | None, tuple[str, ...]], ...] = ()

    def enabled(self, check_id: str) -> bool:
        return check_id not in self.disabled

    def excluded(self, check_id: str, path: str | None) -> bool:
        """True when ``path`` matches one of ``check_id``'s exclude patterns."""
        patterns = self.exclude_paths.get(check_id)
        if not patterns or path is None:
            return False
        return bool(_path_spec(patterns).match_file(path))

    def partition(self, findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
        """``findings`` split into those reported and those the baseline accepts.

        A finding is accepted by an entry of its check and path whose line hashes hold its
        own (an entry without hashes accepts any line). C-00 is never accepted.
        """
        if not self.baseline:
            return findings, []
        accepted_by: dict[tuple[str, str | None], frozenset[str]] = {
            (check, path): frozenset(hashes) for check, path, hashes in self.baseline
        }
        reported: list[Finding] = []
        accepted: list[Finding] = []
        for finding in findings:
            hashes = accepted_by.get((finding.check, finding.path))
            if (
                finding.check != AUTOMATION_ERROR
                and hashes is not None
                and (not hashes or finding.line_hash in hashes)
            ):
                accepted.append(finding)
            else:
                reported.append(finding)
        return reported, accepted

    def lockfile(self, path: str) -> bool:
        """True when ``path``'s file name is one of :attr:`lockfiles` (C-22 exempts it)."""
        return path.rpartition("/")[2] in self.lockfiles

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_dict` reverses it."""
        return {
            "disabled": sorted(self.disabled),
            "workplan_id_pattern": self.workplan_id_pattern,
            "workplan_statuses": list(self.workplan_statuses),
            "max_file_kb": self.max_file_kb,
            "require_workplans": self.require_workplans,
            "default_branch": self.default_branch,
            "readme_names": list(self.readme_names),
            "exclude_paths": {
                check: list(patterns) for check, patterns in sorted(self.exclude_paths.items())
            },
            "lockfiles": list(self.lockfiles),
            "baseline": [[check, path, list(hashes)] for check, path, hashes in self.baseline],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EffectiveChecks:
        return cls(
            disabled=frozenset(data["disabled"]),
            workplan_id_pattern=str(data["workplan_id_pattern"]),
            workplan_statuses=tuple(data["workplan_statuses"]),
            max_file_kb=int(data["max_file_kb"]),
            require_workplans=bool(data["require_workplans"]),
            default_branch=str(data["default_branch"]),
            readme_names=tuple(data.get("readme_names", DEFAULT_README_NAMES)),
            exclude_paths={
                str(check): tuple(patterns)
                for check, patterns in data.get("exclude_paths", {}).items()
            },
            lockfiles=tuple(data.get("lockfiles", DEFAULT_LOCKFILES)),
            baseline=tuple(
                (str(check), path, tuple(hashes))
                for check, path, hashes in data.get("baseline", [])
            ),
        )

    def digest(self) -> str:
        """A short stable hash, part of a repo's fingerprint.

        It holds :data:`RULES_VERSION`; the keys added by issue 15 count only when set away
        from their defaults.
        """
        data = self.as_dict()
        data["rules"] = RULES_VERSION
        if data["readme_names"] == list(DEFAULT_README_NAMES):
            del data["readme_names"]
        if not data["exclude_paths"]:
            del data["exclude_paths"]
        if data["lockfiles"] == list(DEFAULT_LOCKFILES):
            del data["lockfiles"]
        if not data["baseline"]:  # a repo's entries changing re-reads that repo only
            del data["baseline"]
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One finding of a repo's assessment."""

    check: str
    message: str
    path: str | None = None
    # C-04, C-21, C-23: the 1-based line the finding is about (issue 21).
    line: int | None = None
    # A short hash of that line's content (of a key's body for C-23), which a baseline
    # entry holds so that an edited line is no longer accepted; never shown to people.
    line_hash: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", printable(self.message))
        if self.path is not None:
            object.__setattr__(self, "path", printable(self.path))

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "line_hash": self.line_hash,
        }

    def public_dict(self) -> dict[str, Any]:
        """What people and programs read of it: ``line`` only where it has one, and never
        the line hash (the baseline's business)."""
        shown: dict[str, Any] = {"check": self.check, "message": self.message, "path": self.path}
        if self.line is not None:
            shown["line"] = self.line
        return shown

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The finding :meth:`as_dict` gave (``line`` and ``line_hash`` may be absent)."""
        line = data.get("line")
        line_hash = data.get("line_hash")
        return cls(
            check=str(data["check"]),
            message=str(data["message"]),
            path=data["path"],
            line=int(line) if line is not None else None,
            line_hash=str(line_hash) if line_hash is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class RepoContext:
    """What a check may look at: the work tree, its git state and the effective settings."""

    name: str
    root: Path
    settings: EffectiveChecks
    git: GitState


def assess(ctx: RepoContext) -> list[Finding]:
    """Every finding of C-01..C-23 (less C-12) for one readable work tree, in catalogue order."""
    from statehub.checks import content, docs, git, workplans

    docs.forget_folders()  # folders are resolved afresh for each repo
    families: tuple[Callable[[RepoContext], list[Finding]], ...] = (
        docs.run,
        workplans.run,
        git.run,
        content.run,
    )
    excluded = ctx.settings.excluded
    findings = [
        finding
        for family in families
        for finding in family(ctx)
        if not excluded(finding.check, finding.path)
    ]
    return sorted(findings, key=lambda finding: finding.check)
