"""The baseline: findings accepted as they stand, recorded by ``statehub accept`` (issue 21).

A TOML file, reviewed in a pull request like any other, one ``[[accepted]]`` table per
repo, check and path::

    [[accepted]]
    repo = "api"
    check = "C-23"
    path = "tests/certs/server.key"
    line_hashes = ["9f2c01d4b6a8e3f7"]

``line_hashes`` holds, for a finding with a line (C-04, C-21, C-23), a hash of that line's
content (of the key's body for C-23): once the line is edited, the finding no longer
matches and is reported again. An entry without ``line_hashes`` accepts every finding of
that check and path (``path`` left out: the findings without a path, C-14..C-20). C-00 is
never accepted.

The file is configuration, read by the process that sweeps; each repo's entries travel to
its worker in :class:`statehub.checks.EffectiveChecks`, which sets accepted findings apart.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from statehub.errors import ConfigError

MAX_BASELINE_BYTES = 16 * 1024 * 1024
HEADER = """\
# Findings accepted as they stand, written by `statehub accept` (review it like code).
# One entry per repo, check and path; line_hashes pins the content of a finding's line
# (a key's body for C-23): an edited line is reported again. Remove an entry to report
# its findings again; `statehub accept --prune` drops the entries of findings now gone.
"""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One accepted repo, check and path (None: the check's findings without a path)."""

    repo: str
    check: str
    path: str | None
    # Empty: every finding of this check and path is accepted, whatever its line.
    line_hashes: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.repo, self.check, self.path or ""


@dataclass(frozen=True)
class Baseline:
    """Every entry of a baseline file, by repo, check and path."""

    entries: Mapping[tuple[str, str, str], Entry] = field(default_factory=dict)

    def for_repo(self, repo: str) -> tuple[tuple[str, str | None, tuple[str, ...]], ...]:
        """The repo's entries as ``(check, path, line_hashes)``, sorted (for its worker)."""
        return self._by_repo.get(repo, ())

    @cached_property
    def _by_repo(self) -> dict[str, tuple[tuple[str, str | None, tuple[str, ...]], ...]]:
        # Grouped once: a sweep asks for every repo's entries, and a large fleet's baseline
        # may hold tens of thousands.
        grouped: dict[str, list[tuple[str, str | None, tuple[str, ...]]]] = {}
        for key, entry in sorted(self.entries.items()):
            grouped.setdefault(key[0], []).append(
                (entry.check, entry.path, tuple(sorted(entry.line_hashes)))
            )
        return {repo: tuple(entries) for repo, entries in grouped.items()}

    def __len__(self) -> int:
        return len(self.entries)


_cache: dict[str, tuple[tuple[int, int, int], Baseline]] = {}


def load(path: Path) -> Baseline:
    """The baseline at ``path``; empty when there is no such file.

    Cached by the file's identity and modification time: a sweep asks once per repo.
    Raises ConfigError naming the file for one that is not a regular file, too large, not
    TOML, or whose entries are malformed.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return Baseline()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read ({exc.strerror})") from None
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    from statehub.configread import read_regular_file

    raw = read_regular_file(path, shown=str(path), key="", limit=MAX_BASELINE_BYTES)
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), "", f"is not a TOML file: {exc}") from None
    baseline = Baseline(_entries(path, document.get("accepted", [])))
    _cache[str(path)] = (stamp, baseline)
    return baseline


def _entries(path: Path, items: Any) -> dict[tuple[str, str, str], Entry]:
    if not isinstance(items, list):
        raise ConfigError(str(path), "accepted", "must be an array of tables ([[accepted]])")
    entries: dict[tuple[str, str, str], Entry] = {}
    for number, item in enumerate(items, 1):
        where = f"accepted #{number}"
        if not isinstance(item, dict) or set(item) - {"repo", "check", "path", "line_hashes"}:
            raise ConfigError(str(path), where, "keys are repo, check, path, line_hashes")
        repo, check, entry_path = item.get("repo"), item.get("check"), item.get("path")
        hashes = item.get("line_hashes", [])
        if not isinstance(repo, str) or not isinstance(check, str):
            raise ConfigError(str(path), where, "repo and check are required strings")
        if entry_path is not None and not isinstance(entry_path, str):
            raise ConfigError(str(path), where, "path is a string")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ConfigError(str(path), where, "line_hashes is a list of strings")
        entry = Entry(
            repo=repo, check=check, path=entry_path or None, line_hashes=frozenset(hashes)
        )
        entries[entry.key] = merge(entries.get(entry.key), entry)
    return entries


def merge(old: Entry | None, new: Entry) -> Entry:
    """Two entries of one repo, check and path as one: their hashes, or all when one is."""
    if old is None:
        return new
    if not old.line_hashes or not new.line_hashes:
        return Entry(repo=new.repo, check=new.check, path=new.path)
    return Entry(
        repo=new.repo,
        check=new.check,
        path=new.path,
        line_hashes=old.line_hashes | new.line_hashes,
    )


def entry_of(repo: str, finding: Mapping[str, Any]) -> Entry:
    """The entry that accepts one finding of ``repo`` (a dict of the store's form)."""
    line_hash = finding.get("line_hash")
    return Entry(
        repo=repo,
        check=str(finding["check"]),
        path=finding.get("path"),
        line_hashes=frozenset([line_hash]) if line_hash else frozenset(),
    )


def text(entries: Iterable[Entry]) -> str:
    """The baseline file's TOML text: the header, then the entries sorted."""
    parts = [HEADER]
    for entry in sorted(entries, key=lambda item: item.key):
        # JSON strings are valid TOML basic strings (both escape with backslashes).
        lines = [
            "[[accepted]]",
            f"repo = {json.dumps(entry.repo, ensure_ascii=False)}",
            f"check = {json.dumps(entry.check)}",
        ]
        if entry.path is not None:
            lines.append(f"path = {json.dumps(entry.path, ensure_ascii=False)}")
        if entry.line_hashes:
            hashes = ", ".join(json.dumps(h) for h in sorted(entry.line_hashes))
            lines.append(f"line_hashes = [{hashes}]")
        parts.append("\n" + "\n".join(lines) + "\n")
    return "".join(parts)


def write(path: Path, entries: Iterable[Entry]) -> None:
    """Replace the baseline file atomically (a reader sees the old file or the new one)."""
    data = text(entries).encode("utf-8")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            str(path), "checks.baseline", f"cannot be written ({exc.strerror})"
        ) from None
    _cache.pop(str(path), None)


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """What one ``statehub accept`` did to the baseline file."""

    path: Path
    findings: int  # reported findings now accepted
    repos: int  # repos they are in
    entries: int  # entries in the file afterwards
    pruned: int  # entries (or their line hashes) dropped by --prune


def accept(
    path: Path,
    reported: Mapping[str, list[dict[str, Any]]],
    accepted: Mapping[str, list[dict[str, Any]]],
    *,
    repos: frozenset[str] | None = None,
    checks: frozenset[str] | None = None,
    prune: bool = False,
) -> Accepted:
    """Add the ``reported`` findings (by repo, as the store holds them) to the baseline.

    ``repos`` and ``checks`` keep some (None: all); C-00 is never accepted. With ``prune``,
    entries of that selection whose findings are gone (neither reported nor accepted now)
    are dropped, and so are line hashes no finding has any more.
    """

    def chosen(repo: str, check: str) -> bool:
        return (repos is None or repo in repos) and (checks is None or check in checks)

    entries = dict(load(path).entries)
    count, touched = 0, set()
    for repo, findings in sorted(reported.items()):
        for finding in findings:
            if finding["check"] == "C-00" or not chosen(repo, finding["check"]):
                continue
            entry = entry_of(repo, finding)
            entries[entry.key] = merge(entries.get(entry.key), entry)
            count += 1
            touched.add(repo)
    pruned = _prune(entries, (reported, accepted), chosen) if prune else 0
    write(path, entries.values())
    return Accepted(
        path=path, findings=count, repos=len(touched), entries=len(entries), pruned=pruned
    )


def _prune(
    entries: dict[tuple[str, str, str], Entry],
    tables: tuple[Mapping[str, list[dict[str, Any]]], ...],
    chosen: Callable[[str, str], bool],
) -> int:
    """Drop, in place, the chosen entries (or their line hashes) no finding has now.

    Returns how many entries were dropped or narrowed.
    """
    standing: dict[tuple[str, str, str], set[str | None]] = {}
    for table in tables:
        for repo, findings in table.items():
            for finding in findings:
                standing.setdefault(entry_of(repo, finding).key, set()).add(
                    finding.get("line_hash")
                )
    pruned = 0
    for key, entry in list(entries.items()):
        if not chosen(entry.repo, entry.check):
            continue
        seen = standing.get(key)
        if seen is not None and (not entry.line_hashes or entry.line_hashes <= seen):
            continue
        pruned += 1
        kept = frozenset(h for h in entry.line_hashes if seen and h in seen)
        if kept:
            entries[key] = Entry(
                repo=entry.repo, check=entry.check, path=entry.path, line_hashes=kept
            )
        else:  # gone, or every line it pinned changed: what stands now is not accepted
            del entries[key]
    return pruned
