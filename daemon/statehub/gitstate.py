"""Everything read from git, and the only module that touches it.

Local state is read in-process with pygit2 (libgit2): it runs no hook, fsmonitor, filter,
textconv, pager, editor or ssh command whatever the repo's config says, forks nothing per
repo and never refreshes or locks the index. Only ``--remote`` runs ``git fetch``, in a
hardened environment (see :func:`fetch`). Errors of pygit2 become :class:`GitReadError`.
"""

from __future__ import annotations

import enum
import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileStatus, RepositoryOpenFlag, RepositoryState

from statehub.errors import FetchError, GitReadError


class Kind(enum.Enum):
    """What a configured path turned out to be."""

    MISSING = "missing"  # nothing there (skipped_missing)
    WORKTREE = "worktree"  # the top of a non-bare work tree: assess it
    NOT_WORKTREE = "not_worktree"  # exists, but bare, plain or a subfolder (C-12)


@dataclass(frozen=True, kw_only=True)
class Probe:
    kind: Kind
    reason: str = ""


# Keys that make git run a command, as C-13 lists them (section 3 of the contract).
# Names are compared lower-cased; '*' stands for one subsection.
_RISKY_KEYS = (
    "core.fsmonitor",
    "core.hookspath",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "core.gitproxy",
    "credential.helper",
    "credential.*.helper",
    "include.path",
    "includeif.*.path",
    "filter.*.clean",
    "filter.*.smudge",
    "filter.*.process",
    "diff.*.textconv",
    "diff.*.command",
    "diff.external",
    "merge.*.driver",
    "remote.*.uploadpack",
    "remote.*.receivepack",
    "sequence.editor",
    "gpg.program",
    "gpg.*.program",
    "protocol.allow",
    "protocol.*.allow",
)


def is_risky_key(name: str) -> bool:
    """True when a config key (``section.sub.key``) is one of C-13's command-running keys."""
    lowered = name.lower()
    section, _, rest = lowered.partition(".")
    for pattern in _RISKY_KEYS:
        p_section, _, p_rest = pattern.partition(".")
        if section != p_section:
            continue
        if "." not in p_rest:
            # 'core.pager': no subsection, or 'credential.helper' for any URL subsection
            # is covered by the '*' form below.
            if rest == p_rest:
                return True
            continue
        p_sub, _, p_key = p_rest.rpartition(".")
        sub, _, key = rest.rpartition(".")
        if p_sub == "*" and sub and key == p_key:
            return True
    return False


@dataclass(frozen=True, kw_only=True)
class GitState:
    """A snapshot of one work tree's git state, as the checks and the fingerprint need it."""

    head: str | None  # full hex id of HEAD's commit; None on an unborn branch
    branch: str | None  # short branch name; None when HEAD is detached
    default_branch: str  # from origin/HEAD, else the configured default
    upstream: str | None  # e.g. 'origin/main'; None without one
    ahead: int
    behind: int
    changed: tuple[str, ...]  # tracked files modified, staged, deleted, or newly staged
    untracked: tuple[str, ...]  # untracked and not ignored
    unmerged: tuple[str, ...]  # paths with conflicts
    operation: str | None  # 'merge', 'rebase', 'cherry-pick', 'revert', 'bisect' or None
    risky_config: tuple[tuple[str, str], ...]  # (key, value) set in the repo's own config
    tracked_files: tuple[str, ...]  # regular files in the index (no symlinks, no submodules)
    fingerprint: str  # changes whenever anything above (or a changed file) changes

    @property
    def short_head(self) -> str | None:
        return self.head[:7] if self.head else None


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
_REGULAR_MODES = (0o100644, 0o100755)


def probe(path: Path) -> Probe:
    """Say what ``path`` is, without opening anything a repo controls.

    Raises GitReadError when the path exists but cannot be examined (a symlink loop, no
    permission).
    """
    try:
        if not path.exists():
            if os.path.lexists(path):
                path.stat()  # raises the real reason: a dangling link or a loop
            return Probe(kind=Kind.MISSING)
        if not path.is_dir():
            return Probe(kind=Kind.NOT_WORKTREE, reason="not a folder")
        if os.path.lexists(path / ".git"):
            return Probe(kind=Kind.WORKTREE)
    except OSError as exc:
        raise GitReadError(f"cannot examine {path}: {exc.strerror or exc}") from exc
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir():
        return Probe(kind=Kind.NOT_WORKTREE, reason="a bare repository, not a work tree")
    return Probe(kind=Kind.NOT_WORKTREE, reason="not the top of a git work tree")


def open_repo(root: Path) -> pygit2.Repository:
    """Open the work tree at ``root`` exactly (no search upward). Raises GitReadError."""
    try:
        repo = pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except (pygit2.GitError, KeyError, OSError, ValueError) as exc:
        raise GitReadError(_clean_message(exc)) from exc
    if repo.is_bare or repo.workdir is None:
        raise GitReadError("a bare repository, not a work tree")
    return repo


def read_state(root: Path, *, default_branch: str, settings_digest: str = "") -> GitState:
    """Read the git state of the work tree at ``root``. Raises GitReadError."""
    repo = open_repo(root)
    try:
        return _read(repo, root, default_branch, settings_digest)
    except (pygit2.GitError, KeyError, OSError, ValueError) as exc:
        raise GitReadError(_clean_message(exc)) from exc
    finally:
        repo.free()


def _read(repo: pygit2.Repository, root: Path, default_branch: str, digest: str) -> GitState:
    gitdir = Path(repo.path)
    head: str | None = None
    branch: str | None = None
    if not repo.head_is_unborn:
        head = str(repo.head.target)
    if not repo.head_is_detached:
        target = repo.references["HEAD"].target
        branch = str(target).removeprefix("refs/heads/")

    remote_head = repo.references.get("refs/remotes/origin/HEAD")
    if remote_head is not None and isinstance(remote_head.target, str):
        default_branch = remote_head.target.removeprefix("refs/remotes/origin/")

    upstream: str | None = None
    ahead = behind = 0
    if branch is not None:
        local = repo.branches.local.get(branch)
        if local is not None:
            upstream_name = _upstream_name(repo, branch)
            if upstream_name is not None:
                upstream = upstream_name.removeprefix("refs/remotes/")
                upstream_ref = repo.references.get(upstream_name)
                if upstream_ref is not None and head is not None:
                    ahead, behind = repo.ahead_behind(head, upstream_ref.target)
                elif head is not None:
                    # The upstream was never fetched: every local commit is unpushed.
                    ahead = sum(1 for _ in repo.walk(head))

    changed: list[str] = []
    untracked: list[str] = []
    unmerged: list[str] = []
    status = repo.status(untracked_files="all", ignored=False)
    for path, flags in status.items():
        if flags & FileStatus.CONFLICTED:
            unmerged.append(path)
        elif flags & _CHANGED:
            changed.append(path)
        elif flags & FileStatus.WT_NEW:
            untracked.append(path)

    tracked = tuple(
        entry.path for entry in repo.index if entry.mode in _REGULAR_MODES
    )
    operation = _OPERATIONS.get(RepositoryState(repo.state()))
    risky = _risky_config(gitdir)

    fingerprint = _fingerprint(
        repo, root, gitdir, head, branch, operation, status, digest, default_branch
    )
    return GitState(
        head=head,
        branch=branch,
        default_branch=default_branch,
        upstream=upstream,
        ahead=ahead,
        behind=behind,
        changed=tuple(sorted(changed)),
        untracked=tuple(sorted(untracked)),
        unmerged=tuple(sorted(unmerged)),
        operation=operation,
        risky_config=risky,
        tracked_files=tracked,
        fingerprint=fingerprint,
    )


def _upstream_name(repo: pygit2.Repository, branch: str) -> str | None:
    """``refs/remotes/<remote>/<branch>`` from branch.<b>.remote/merge, even if never fetched."""
    config = repo.config
    try:
        remote = config[f"branch.{branch}.remote"]
        merge = config[f"branch.{branch}.merge"]
    except KeyError:
        return None
    if remote == ".":
        return str(merge)
    return f"refs/remotes/{remote}/{str(merge).removeprefix('refs/heads/')}"


def _common_dir(gitdir: Path) -> Path:
    commondir = gitdir / "commondir"
    if commondir.is_file():
        return (gitdir / commondir.read_text(encoding="utf-8").strip()).resolve()
    return gitdir


def _risky_config(gitdir: Path) -> tuple[tuple[str, str], ...]:
    """The command-running keys set in the repo's own config file, includes followed."""
    config_file = _common_dir(gitdir) / "config"
    if not config_file.is_file():
        return ()
    config = pygit2.Config(str(config_file))
    found = [(entry.name, entry.value or "") for entry in config if is_risky_key(entry.name)]
    return tuple(found)


def _fingerprint(
    repo: pygit2.Repository,
    root: Path,
    gitdir: Path,
    head: str | None,
    branch: str | None,
    operation: str | None,
    status: dict[str, FileStatus],
    digest: str,
    default_branch: str,
) -> str:
    """HEAD, refs, index, the work tree's status and the check settings, hashed.

    A changed file's size and mtime are included, so editing an already-modified file
    changes the fingerprint; an unchanged tracked file is what HEAD says it is.
    """
    sha = hashlib.sha256()
    sha.update(f"{head}|{branch}|{operation}|{default_branch}|{digest}\n".encode())
    for ref in repo.references.iterator():
        sha.update(f"{ref.name}={ref.target}\n".encode())
    common = _common_dir(gitdir)
    for meta in (gitdir / "index", common / "config", gitdir / "info" / "exclude"):
        sha.update(_stat_key(meta))
    for path in sorted(status):
        sha.update(f"{path}:{int(status[path])}:".encode())
        sha.update(_stat_key(root / path))
    return sha.hexdigest()


def _stat_key(path: Path) -> bytes:
    try:
        info = path.lstat()
    except OSError:
        return b"-\n"
    return f"{info.st_size}:{info.st_mtime_ns}\n".encode()


def _clean_message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- --remote ---------------------------------------------------------------------------

# Every key through which a repo's config could make `git fetch` run a command is pinned on
# the command line, which wins over every config file (includes too) for these keys.
# Two exceptions need other means: remote.<name>.uploadpack keeps its FIRST value (git
# 2.39: "more than one uploadpack given, using the first"), so fetch gets --upload-pack;
# core.gitProxy is ignored once $GIT_PROXY_COMMAND is set, so the environment sets it empty.
_FETCH_OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.sshCommand=ssh -o BatchMode=yes -o StrictHostKeyChecking=yes",
    "core.askPass=",
    "credential.helper=",
    "protocol.ext.allow=never",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.recurseSubmodules=false",
    "submodule.recurse=false",
    "diff.external=",
    "core.pager=cat",
)


def fetch_env() -> dict[str, str]:
    """The environment of a fetch: no prompt, no askpass, no inherited git overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "SSH_ASKPASS"))
        or key.startswith(("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        GIT_PROXY_COMMAND="",
        SSH_ASKPASS="/bin/false",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
    )
    return env


def remote_to_fetch(root: Path) -> str | None:
    """The remote a fetch should update: the current branch's, else ``origin``, else none."""
    repo = open_repo(root)
    try:
        names = list(repo.remotes.names())
        if not repo.head_is_detached and not repo.head_is_unborn:
            branch = repo.head.shorthand
            try:
                remote = str(repo.config[f"branch.{branch}.remote"])
            except KeyError:
                remote = ""
            if remote in names:
                return remote
        return "origin" if "origin" in names else (names[0] if names else None)
    finally:
        repo.free()


def fetch(root: Path, *, timeout: float) -> str | None:
    """``git fetch`` the repo's remote in a hardened environment; returns the remote fetched.

    Raises FetchError on failure or when ``timeout`` seconds pass (the process group is
    killed). A repo with no remote is not fetched and returns None.
    """
    remote = remote_to_fetch(root)
    if remote is None:
        return None
    command = ["git"]
    for override in _FETCH_OVERRIDES:
        command += ["-c", override]
    command += [
        "-C",
        str(root),
        "fetch",
        "--quiet",
        "--no-recurse-submodules",
        "--prune",
        "--upload-pack=git-upload-pack",
        remote,
    ]
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=fetch_env(),
            start_new_session=True,  # so a timeout can kill ssh and helpers with it
        )
    except OSError as exc:
        raise FetchError(f"cannot run git: {exc.strerror or exc}") from exc
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise FetchError(f"git fetch {remote} timed out after {timeout:g} s") from None
    if process.returncode != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        raise FetchError(f"git fetch {remote} failed: {reason}")
    return remote
