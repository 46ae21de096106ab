"""Finding repos under a root: folders holding a ``.git`` entry, down to ``[repos] depth``.

Only names and entry types are read (``os.scandir``), never a repo's files: the process
that sweeps or serves may call it. A repo is not searched further (its subfolders are its
own), nor is a hidden folder (``.origins``, ``.cache``) or a link to a folder below the
first level, so that a link cannot make the walk loop.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_DEPTH = 3
"""``[repos] depth`` is at most this: deeper trees are named by their own roots."""


def holds_git(entry: os.DirEntry[str]) -> bool:
    """A folder (or a link to one) with a ``.git`` entry (folder or file) in it."""
    try:
        return entry.is_dir() and os.path.lexists(f"{entry.path}/.git")
    except OSError:
        return False


def repos_below(folder: Path, depth: int = 1) -> list[Path]:
    """The repos under ``folder``, at most ``depth`` levels down, sorted by path.

    Raises OSError when ``folder`` itself cannot be listed (missing, not a folder, no
    permission); a subfolder that cannot be listed is passed over.
    """
    found: list[Path] = []
    _walk(folder, depth, found, top=True)
    return found


def _walk(folder: Path, depth: int, found: list[Path], *, top: bool) -> None:
    try:
        with os.scandir(folder) as scan:  # the entry's type comes with it: no stat
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        if top:
            raise
        return
    for entry in entries:
        if holds_git(entry):
            found.append(folder / entry.name)
        elif depth > 1 and _descend(entry):
            _walk(folder / entry.name, depth - 1, found, top=False)


def _descend(entry: os.DirEntry[str]) -> bool:
    try:
        return not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def depth_reaching_all(folder: Path, limit: int = MAX_DEPTH) -> int | None:
    """The depth (1..``limit``) that finds every repo under ``folder`` within ``limit``
    levels, or None when there is none. Never raises: a folder that cannot be listed holds
    no repo.
    """
    try:
        found = repos_below(folder, limit)
    except OSError:
        return None
    if not found:
        return None
    return max(len(path.relative_to(folder).parts) for path in found)
