"""The full git state of a work tree, read in-process with pygit2 (libgit2).

libgit2 runs no hook, fsmonitor, filter, textconv, pager, editor or ssh command whatever the
repo's config says, forks nothing per repo and never refreshes or locks the index. It holds
the GIL and opens files with a blocking ``open()``, so :func:`statehub.gitlayout.read_layout`
checks the files it will read first, and the whole read runs in a sweep's worker process
under a time and memory bound (:mod:`statehub.worker`). Errors of pygit2 become
:class:`GitReadError`.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileStatus, RepositoryOpenFlag, RepositoryState

from statehub.errors import GitReadError
from statehub.gitlayout import (
    Layout,
    RiskyKey,
    combine_fingerprint,
    index_paths,
    read_file,
    read_layout,
    require_plain,
    tracked_stats,
)


@dataclass(frozen=True, kw_only=True)
class GitState:
    """A snapshot of one work tree's git state, as the checks and the fingerprint need it."""

    head: str | None  # full hex id of HEAD's commit; None on an unborn branch
    # The current branch; None when HEAD is detached. While a rebase or a bisect (which
    # detach HEAD) is in progress, the branch it started from.
    branch: str | None
    default_branch: str  # from origin/HEAD, else the configured default
    upstream: str | None  # e.g. 'origin/main'; None without one
    upstream_gone: bool  # an upstream is configured but its remote-tracking ref is absent
    ahead: int
    behind: int
    changed: tuple[str, ...]  # tracked files modified, staged, deleted, or newly staged
    untracked: tuple[str, ...]  # untracked and not ignored
    unmerged: tuple[str, ...]  # paths with conflicts
    operation: str | None  # 'merge', 'rebase', 'cherry-pick', 'revert', 'bisect', 'am'
    risky_config: tuple[RiskyKey, ...]  # set in the repo's own config, includes followed
    tracked_files: tuple[str, ...]  # regular files in the index, not unmerged
    # Changes whenever anything above (or the content of a file the checks read) may have
    # changed; :func:`statehub.gitlayout.fingerprint` recomputes it without a status walk. Pass it
    # ``untracked`` as ``watch``.
    fingerprint: str

    @property
    def short_head(self) -> str | None:
        return self.head[:7] if self.head else None


def _fit_pack_windows() -> None:
    """Scale libgit2's pack windows to this process's address-space cap, if it has one.

    libgit2 maps pack files in windows of up to 1 GiB (8 GiB in all) on 64-bit hosts;
    under a worker's cap (``[sweep] repo_memory_mb``) one such window alone would fail.
    """
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        pygit2.settings.mwindow_size = max(1 << 20, limit // 16)
        pygit2.settings.mwindow_mapped_limit = max(4 << 20, limit // 4)


_fit_pack_windows()

_OPERATIONS = {
    RepositoryState.MERGE: "merge",
    RepositoryState.REVERT: "revert",
    RepositoryState.REVERT_SEQUENCE: "revert",
    RepositoryState.CHERRYPICK: "cherry-pick",
    RepositoryState.CHERRYPICK_SEQUENCE: "cherry-pick",
    RepositoryState.BISECT: "bisect",
    RepositoryState.REBASE: "rebase",
    RepositoryState.REBASE_INTERACTIVE: "rebase",
    RepositoryState.REBASE_MERGE: "rebase",
    RepositoryState.APPLY_MAILBOX: "am",
    RepositoryState.APPLY_MAILBOX_OR_REBASE: "rebase",
}

_CHANGED = (
    FileStatus.INDEX_NEW
    | FileStatus.INDEX_MODIFIED
    | FileStatus.INDEX_DELETED
    | FileStatus.INDEX_RENAMED
    | FileStatus.INDEX_TYPECHANGE
    | FileStatus.WT_MODIFIED
    | FileStatus.WT_DELETED
    | FileStatus.WT_TYPECHANGE
    | FileStatus.WT_RENAMED
)

PYGIT2_ERRORS = (pygit2.GitError, KeyError, OSError, ValueError)
_WORKTREE_FILES = (".gitignore", ".gitattributes")


def index_entries(root: Path) -> list[tuple[str, int]]:
    """``(path, mode)`` of every index entry, read by libgit2. Raises GitReadError.

    For an index that :mod:`statehub.gitlayout`'s parser leaves to libgit2 (split, sparse).
    """
    repo = _open(root)[0]
    try:
        return _index_entries(repo)
    except PYGIT2_ERRORS as exc:
        raise GitReadError(clean_message(exc)) from exc
    finally:
        repo.free()


def _index_entries(repo: pygit2.Repository) -> list[tuple[str, int]]:
    return [(entry.path, int(entry.mode)) for entry in repo.index]


def open_repo(root: Path) -> pygit2.Repository:
    """Open the work tree at ``root`` exactly (no search upward). Raises GitReadError."""
    return _open(root)[0]


def read_state(root: Path, *, default_branch: str, settings_digest: str = "") -> GitState:
    """Read the git state of the work tree at ``root``. Raises GitReadError."""
    repo, layout = _open(root)
    try:
        return _read(repo, root, layout, default_branch, settings_digest)
    except PYGIT2_ERRORS as exc:
        message = clean_message(exc)
        if message.startswith("failed to read index"):
            # libgit2 says "'…/index' no longer exists" of an index too short to parse.
            message = f"cannot read {layout.gitdir / 'index'}: it is truncated or corrupt"
        raise GitReadError(message) from exc
    finally:
        repo.free()


# -- Files git reads ----------------------------------------------------------------------
#
# Checked before libgit2 opens anything: the .git entry and its gitdir file, the config and
# every file it includes, the fixed files of the git dir (HEAD, index, packed-refs, info/*,
# alternates), loose refs and pack files, the files named by core.excludesFile and
# core.attributesFile, and every .gitignore and .gitattributes of the folders a status walk
# visits. Not covered: loose objects and submodules (a named pipe there still hangs), and a
# file system that stops answering. Isolating the read in a child process would cover all.


def _check_worktree(repo: pygit2.Repository, root: Path, tracked_dirs: set[str]) -> None:
    """Every .gitignore and .gitattributes a status walk would read is a regular file.

    Walks the folders libgit2 visits: tracked ones, and untracked ones not ignored. A
    folder's own files are checked before libgit2 is asked whether anything in it is
    ignored, since asking reads them.
    """
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(root / rel) as scan:
                entries = list(scan)
        except OSError:
            continue  # libgit2 reports what matters about an unreadable folder
        folders: list[os.DirEntry[str]] = []
        for entry in entries:
            if entry.name in _WORKTREE_FILES:
                if not entry.is_file():
                    require_plain(Path(entry.path))
            elif entry.name != ".git" and entry.is_dir(follow_symlinks=False):
                folders.append(entry)
        for entry in folders:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if child not in tracked_dirs:
                folder = Path(entry.path)
                if (folder / ".git").exists() or (folder / ".git").is_symlink():
                    continue  # a nested repo: status shows it as one entry
                for name in _WORKTREE_FILES:
                    require_plain(folder / name)
                # libgit2 cannot be asked of a name that is not UTF-8 (pygit2 takes str):
                # such a folder is walked as if not ignored, which checks more, never less.
                if _is_utf8(child) and repo.path_is_ignored(child + "/"):
                    continue
            pending.append(child)


def _is_utf8(name: str) -> bool:
    """False for a file name whose bytes are not UTF-8 (held as surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open(root: Path) -> tuple[pygit2.Repository, Layout]:
    layout = read_layout(root)
    try:
        repo = pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except PYGIT2_ERRORS as exc:
        raise GitReadError(_open_error(root, layout, exc)) from exc
    if repo.is_bare or repo.workdir is None:
        repo.free()
        raise GitReadError("a bare repository, not a work tree")
    return repo, layout


def _open_error(root: Path, layout: Layout, exc: BaseException) -> str:
    """A readable line for a repo libgit2 refuses to open."""
    message = clean_message(exc).removeprefix(f"{root}: ")  # the finding names the repo
    if "not owned by current user" in message:
        owners = []
        for path in (root, layout.gitdir):
            try:
                owners.append(path.stat().st_uid)
            except OSError:
                continue
        stranger = next((uid for uid in owners if uid != os.geteuid()), None)
        owner = f"uid {stranger}" if stranger is not None else "another user"
        return (
            f"dubious ownership: {root} belongs to {owner}, not to uid {os.geteuid()} "
            f"that runs statehub (if it is trusted: git config --global --add "
            f"safe.directory {root})"
        )
    return message


def _read(
    repo: pygit2.Repository, root: Path, layout: Layout, default_branch: str, digest: str
) -> GitState:
    head: str | None = None
    branch: str | None = None
    try:
        head_ref = repo.references["HEAD"]
    except pygit2.GitError as exc:  # pygit2 prefixes libgit2's reason with 'HEAD: '
        raise GitReadError(clean_message(exc).removeprefix("HEAD: ")) from exc
    if isinstance(head_ref.target, str):  # on a branch (maybe unborn)
        branch = head_ref.target.removeprefix("refs/heads/")
        branch_ref = repo.references.get(head_ref.target)
        head = None if branch_ref is None else str(branch_ref.resolve().target)
    else:
        head = str(head_ref.target)

    remote_head = repo.references.get("refs/remotes/origin/HEAD")
    if remote_head is not None and isinstance(remote_head.target, str):
        default_branch = remote_head.target.removeprefix("refs/remotes/origin/")

    regular, tracked_dirs = index_paths(layout.gitdir, lambda: _index_entries(repo))
    _check_worktree(repo, root, tracked_dirs)
    # Stats are taken before the status walk: a change made during the walk shows as a
    # different fingerprint next time, never as a stale clean skip.
    stats = tracked_stats(root, layout, regular, tracked_dirs)
    status = repo.status(untracked_files="all", ignored=False)
    changed = sorted(path for path, flags in status.items() if _is_changed(flags))
    untracked = sorted(path for path, flags in status.items() if flags == FileStatus.WT_NEW)
    unmerged = sorted(path for path, flags in status.items() if flags & FileStatus.CONFLICTED)
    conflicted = set(unmerged)

    operation = _OPERATIONS.get(RepositoryState(repo.state()))
    tip = head
    if branch is None and operation in ("rebase", "bisect"):
        branch = _operation_branch(repo, layout.gitdir, operation)
        if branch is not None:
            tip = str(repo.references[f"refs/heads/{branch}"].resolve().target)
    upstream, gone, ahead, behind = _upstream(repo, branch, tip)

    return GitState(
        head=head,
        branch=branch,
        default_branch=default_branch,
        upstream=upstream,
        upstream_gone=gone,
        ahead=ahead,
        behind=behind,
        changed=tuple(changed),
        untracked=tuple(untracked),
        unmerged=tuple(unmerged),
        operation=operation,
        risky_config=layout.risky,
        tracked_files=tuple(path for path in regular if path not in conflicted),
        fingerprint=combine_fingerprint(root, layout, digest, stats, untracked),
    )


def _is_changed(flags: int) -> bool:
    return bool(flags & _CHANGED) and not flags & FileStatus.CONFLICTED


def _upstream(
    repo: pygit2.Repository, branch: str | None, tip: str | None
) -> tuple[str | None, bool, int, int]:
    """``(upstream, gone, ahead, behind)`` of a local branch whose commit is ``tip``."""
    local = repo.branches.local.get(branch) if branch is not None else None
    if local is None:
        return None, False, 0, 0
    try:
        name = str(local.upstream_name)
    except (KeyError, pygit2.GitError):
        return None, False, 0, 0
    upstream = name.removeprefix("refs/remotes/").removeprefix("refs/heads/")
    target = repo.references.get(name)
    if target is None:
        return upstream, True, 0, 0
    if tip is None:
        return upstream, False, 0, 0
    ahead, behind = repo.ahead_behind(tip, target.resolve().target)
    return upstream, False, ahead, behind


def _operation_branch(repo: pygit2.Repository, gitdir: Path, operation: str) -> str | None:
    """The branch a rebase or a bisect started from, if it started on one."""
    if operation == "rebase":
        for folder in ("rebase-merge", "rebase-apply"):
            text = read_file(gitdir / folder / "head-name")
            if text is not None:
                name = text.strip().removeprefix("refs/heads/")
                break
        else:
            return None
    else:
        name = (read_file(gitdir / "BISECT_START") or "").strip()
    return name if name and repo.references.get(f"refs/heads/{name}") is not None else None


def clean_message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
