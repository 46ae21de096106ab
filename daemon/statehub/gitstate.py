"""Everything read from git, and the only module that touches it.

Local state is read in-process with pygit2 (libgit2): it runs no hook, fsmonitor, filter,
textconv, pager, editor or ssh command whatever the repo's config says, forks nothing per
repo and never refreshes or locks the index. Only ``--remote`` runs ``git fetch``, in a
hardened environment (see :func:`fetch`). Errors of pygit2 become :class:`GitReadError`.

libgit2 holds the GIL and opens files with a blocking ``open()``, so a named pipe where git
reads (a config include, ``.git/index``, a ``.gitignore``) would hang the whole process.
Before libgit2 sees a repo, :func:`open_repo` makes sure that every such file it will read
is a regular file (see "Files git reads"); what is not covered is listed there.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import signal
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileStatus, RepositoryOpenFlag, RepositoryState

from statehub.errors import FetchError, GitReadError
from statehub.gitconfig import expand_user, lower_name, parse_config


class Kind(enum.Enum):
    """What a configured path turned out to be."""

    MISSING = "missing"  # nothing there (skipped_missing)
    WORKTREE = "worktree"  # the top of a non-bare work tree: assess it
    NOT_WORKTREE = "not_worktree"  # exists, but bare, plain or a subfolder (C-12)


@dataclass(frozen=True, kw_only=True)
class Probe:
    kind: Kind
    reason: str = ""


# -- C-13: config keys that make git run a command -------------------------------------

# The catalogue of section 3 of the contract, and the other keys git documents as naming a
# program to run. Names are compared lower-cased; '*' stands for one subsection.
_RISKY_KEYS = frozenset(
    {
        "core.fsmonitor",
        "core.hookspath",
        "core.sshcommand",
        "core.pager",
        "core.editor",
        "core.askpass",
        "core.gitproxy",
        "core.alternaterefscommand",
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
        "remote.*.vcs",
        "sequence.editor",
        "gpg.program",
        "gpg.*.program",
        "gpg.ssh.defaultkeycommand",
        "protocol.allow",
        "protocol.*.allow",
        "hook.*.command",  # config-based hooks of newer git versions
        "uploadpack.packobjectshook",
        "interactive.difffilter",
        "difftool.*.cmd",
        "difftool.*.path",
        "mergetool.*.cmd",
        "mergetool.*.path",
        "trailer.*.command",
        "trailer.*.cmd",
        "browser.*.cmd",
        "browser.*.path",
        "man.*.cmd",
        "man.*.path",
        "sendemail.sendmailcmd",
        "sendemail.*.sendmailcmd",
    }
)
_BOOLEANS = frozenset({"", "true", "false", "yes", "no", "on", "off", "1", "0"})


def is_risky_key(name: str) -> bool:
    """True when a config key (``section.sub.key``) is one of C-13's command-running keys."""
    lowered = name.lower()
    section, _, rest = lowered.partition(".")
    subsection, dot, key = rest.rpartition(".")
    if not dot:
        return lowered in _RISKY_KEYS
    return f"{section}.*.{key}" in _RISKY_KEYS or (
        # 'gpg.ssh.defaultkeycommand': a fixed subsection
        f"{section}.{subsection}.{key}" in _RISKY_KEYS
    )


def _runs_command(name: str, value: str | None) -> bool:
    """True when the config entry ``name = value`` makes git run a command (C-13).

    Besides :func:`is_risky_key`, a few keys run a command only for some values: an alias
    or a submodule update starting with ``!``, and ``pager.<cmd>`` set to a non-boolean.
    """
    if is_risky_key(name):
        return True
    text = (value or "").strip()
    section, _, rest = name.lower().partition(".")
    key = rest.rpartition(".")[2]
    if section == "alias" or (section == "submodule" and key == "update"):
        return text.startswith("!")
    if section == "pager":
        return text.lower() not in _BOOLEANS
    return False


@dataclass(frozen=True, kw_only=True)
class RiskyKey:
    """A command-running key set in the repo's own config (C-13)."""

    key: str  # as written, e.g. 'core.fsmonitor' or 'includeIf.gitdir:~/x/.path'
    value: str
    origin: str | None = None  # the included file that sets it; None for the repo's own


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
    # changed; :func:`fingerprint` recomputes it without a status walk. Pass it
    # ``untracked`` as ``watch``.
    fingerprint: str

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
_PYGIT2_ERRORS = (pygit2.GitError, KeyError, OSError, ValueError)


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
        bare = all(
            (path / name).is_file() if name == "HEAD" else (path / name).is_dir()
            for name in ("HEAD", "objects", "refs")
        )
    except OSError as exc:
        raise GitReadError(f"cannot examine {path}: {_reason(exc)}") from exc
    if bare:
        return Probe(kind=Kind.NOT_WORKTREE, reason="a bare repository, not a work tree")
    return Probe(kind=Kind.NOT_WORKTREE, reason="not the top of a git work tree")


def open_repo(root: Path) -> pygit2.Repository:
    """Open the work tree at ``root`` exactly (no search upward). Raises GitReadError."""
    return _open(root)[0]


def read_state(root: Path, *, default_branch: str, settings_digest: str = "") -> GitState:
    """Read the git state of the work tree at ``root``. Raises GitReadError."""
    repo, layout = _open(root)
    try:
        return _read(repo, root, layout, default_branch, settings_digest)
    except _PYGIT2_ERRORS as exc:
        message = _clean_message(exc)
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


@dataclass(frozen=True, kw_only=True)
class _Layout:
    gitdir: Path
    common: Path  # the common dir of a linked work tree; else the git dir
    risky: tuple[RiskyKey, ...]
    # Size, mtime and inode of the metadata checked (config files, HEAD, index, loose refs,
    # packed-refs, info/*): a ref update or a config edit changes it.
    stamp: tuple[str, ...]


_DEVNULL = Path(os.devnull).stat()
_MAX_READ = 4 << 20  # bytes: larger git metadata of ours to parse is refused
_MAX_INCLUDE_DEPTH = 10  # git's own limit
_MAX_ALTERNATES_DEPTH = 5  # libgit2's own limit


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _not_plain(info: os.stat_result) -> str | None:
    """What a file is when reading it could block (a pipe, a socket, a device), else None."""
    mode = info.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if (info.st_dev, info.st_ino) == (_DEVNULL.st_dev, _DEVNULL.st_ino):
        return None  # include.path = /dev/null is a known idiom, and reads as empty
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _require_plain(path: Path) -> None:
    """Raise GitReadError when ``path`` exists and is not a regular file or a folder."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise GitReadError(f"cannot read {path}: {_reason(exc)}") from exc
    kind = _not_plain(info)
    if kind is not None:
        raise GitReadError(f"{path} is {kind}, not a file: reading it would block git")


def _read_file(path: Path) -> str | None:
    """The text of a small regular file; None when it is absent or a folder.

    Opened without blocking and checked first, so a named pipe raises GitReadError.
    """
    read = _read_with_stat(path)
    return None if read is None else read[0]


class _TooLargeError(GitReadError):
    pass


def _stamp(path: str, info: os.stat_result) -> str:
    return f"{path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"


def _read_with_stat(path: Path) -> tuple[str, os.stat_result] | None:
    """:func:`_read_file`, with the file's stat."""
    read = _read_bytes(path, _MAX_READ)
    return None if read is None else (read[0].decode("utf-8", "replace"), read[1])


def _read_bytes(path: Path, limit: int) -> tuple[bytes, os.stat_result] | None:
    """The bytes and stat of a regular file; None when it is absent or a folder.

    Raises GitReadError for a pipe, a socket or a device (never opened for blocking), and
    for a file larger than ``limit`` bytes.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        raise GitReadError(f"cannot read {path}: {_reason(exc)}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None
        kind = _not_plain(info)
        if kind is not None:
            raise GitReadError(f"{path} is {kind}, not a file: reading it would block git")
        if info.st_size > limit:
            raise _TooLargeError(f"{path} is too large to be git metadata ({info.st_size} bytes)")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as exc:
        raise GitReadError(f"cannot read {path}: {_reason(exc)}") from exc
    finally:
        os.close(fd)
    return b"".join(chunks), info


def _layout(root: Path) -> _Layout:
    """Find the git dir of ``root`` and check the files libgit2 will read before it does."""
    gitdir = _find_gitdir(root)
    stamp: list[str] = []
    present = _check_names(str(gitdir), _GITDIR_FILES, stamp)
    common = gitdir
    if "commondir" in present:  # a linked work tree
        common = gitdir / (_read_file(gitdir / "commondir") or "").strip()
        present |= _check_names(str(common), _GITDIR_FILES, stamp)
    for folder in {gitdir, common}:
        _check_names(f"{folder}/info", _INFO_FILES, stamp)
        _check_tree(f"{folder}/refs", stamp)
    _check_alternates(common / "objects", _MAX_ALTERNATES_DEPTH)
    _check_tree(f"{common}/objects/pack", None)

    config = _ConfigReader(stamp)
    config.read(common / "config", origin=None, depth=_MAX_INCLUDE_DEPTH)
    if "config.worktree" in present:
        config.read(gitdir / "config.worktree", origin=None, depth=_MAX_INCLUDE_DEPTH)
    for entry in config.entries:
        if entry.name in ("core.excludesfile", "core.attributesfile") and entry.value:
            _require_plain(root / expand_user(entry.value))
    risky = tuple(
        RiskyKey(key=entry.raw_name, value=entry.value or "", origin=entry.origin)
        for entry in config.entries
        if _runs_command(entry.name, entry.value)
    )
    return _Layout(gitdir=gitdir, common=common, risky=risky, stamp=tuple(stamp))


# The files of a git dir (and of its info/ folder) that libgit2 may read.
_GITDIR_FILES = frozenset(
    {
        "HEAD",
        "ORIG_HEAD",
        "FETCH_HEAD",
        "MERGE_HEAD",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "BISECT_LOG",
        "BISECT_START",
        "index",
        "config",
        "config.worktree",
        "commondir",
        "packed-refs",
        "shallow",
    }
)
_INFO_FILES = frozenset({"exclude", "attributes", "grafts", "sparse-checkout"})
# Those whose change must change the fingerprint (config files are stamped when read).
_STAMPED = frozenset({"HEAD", "index", "packed-refs", "exclude", "attributes"})


def _check_names(folder: str, names: frozenset[str], stamp: list[str]) -> set[str]:
    """The entries of ``folder`` named in ``names`` are regular files or folders.

    One scandir instead of a stat per name: the entry's type comes with it. Returns the
    names present; the stat of those in ``_STAMPED`` is added to ``stamp``.
    """
    present: set[str] = set()
    try:
        scan = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return present
    except OSError as exc:
        raise GitReadError(f"cannot read {folder}: {_reason(exc)}") from exc
    with scan:
        for entry in scan:
            name = entry.name
            if name not in names:
                continue
            present.add(name)
            if not entry.is_file(follow_symlinks=False):
                _require_plain(Path(entry.path))  # a folder, a symbolic link, or worse
            if name in _STAMPED:
                stamp.append(_stamp(entry.path, entry.stat()))
    return present


def _find_gitdir(root: Path) -> Path:
    """The git dir of the work tree ``root``: its .git folder, or where its .git file points."""
    dotgit = root / ".git"
    try:
        info = dotgit.stat()
    except FileNotFoundError:
        if dotgit.is_symlink():
            raise GitReadError(".git is a symbolic link to nothing") from None
        raise GitReadError("no .git in the folder") from None
    except OSError as exc:
        raise GitReadError(f"cannot read {dotgit}: {_reason(exc)}") from exc
    if stat.S_ISDIR(info.st_mode):
        return dotgit
    if not stat.S_ISREG(info.st_mode):
        raise GitReadError(".git is neither a folder nor a file")
    text = _read_file(dotgit) or ""
    if not text.startswith("gitdir:"):
        raise GitReadError(".git is a file that does not name a git dir ('gitdir: PATH')")
    gitdir = root / text.removeprefix("gitdir:").strip()
    if not gitdir.is_dir():
        raise GitReadError(f".git points to {gitdir}, which does not exist")
    return gitdir


def _check_alternates(objects: Path, depth: int) -> None:
    text = _read_file(objects / "info" / "alternates")
    if text is None or depth <= 0:
        return
    for line in text.splitlines():
        other = line.strip()
        if other and not other.startswith("#"):
            _check_alternates(objects / other, depth - 1)


def _check_tree(folder: str, stamp: list[str] | None) -> None:
    """Every file below ``folder`` (loose refs, packs) is a regular file.

    With ``stamp``, each file's stat is added to it.
    """
    pending = [folder]
    while pending:
        try:
            scan = os.scandir(pending.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise GitReadError(f"cannot read {folder}: {_reason(exc)}") from exc
        with scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    _require_plain(Path(entry.path))
                if stamp is not None:
                    stamp.append(_stamp(entry.path, entry.stat()))


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
                    _require_plain(Path(entry.path))
            elif entry.name != ".git" and entry.is_dir(follow_symlinks=False):
                folders.append(entry)
        for entry in folders:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if child not in tracked_dirs:
                folder = Path(entry.path)
                if (folder / ".git").exists() or (folder / ".git").is_symlink():
                    continue  # a nested repo: status shows it as one entry
                for name in _WORKTREE_FILES:
                    _require_plain(folder / name)
                if repo.path_is_ignored(child + "/"):
                    continue
            pending.append(child)


_WORKTREE_FILES = (".gitignore", ".gitattributes")


# -- The repo's own config ---------------------------------------------------------------
#
# Read here, includes followed to git's depth, and parsed by statehub.gitconfig (which says
# why libgit2's own reading is not enough for C-13).


@dataclass(frozen=True, kw_only=True)
class _ConfigEntry:
    name: str  # lower-cased section and key, subsection as written
    raw_name: str  # as written
    value: str | None  # None for a bare key (boolean true)
    origin: str | None  # the included file; None for the repo's own config


class _ConfigReader:
    """The entries of config files and of the files they include, in git's order."""

    def __init__(self, stamp: list[str]) -> None:
        self.entries: list[_ConfigEntry] = []
        self._stamp = stamp
        self._seen: set[tuple[int, int]] = set()

    def read(self, path: Path, *, origin: str | None, depth: int) -> None:
        read = _read_with_stat(path)
        if read is None:
            return
        text, info = read
        if (info.st_dev, info.st_ino) in self._seen:
            return  # an include cycle, or a file included twice: its keys are known already
        self._seen.add((info.st_dev, info.st_ino))
        self._stamp.append(_stamp(str(path), info))
        if _WORDS.isdisjoint(_WORD.findall(text.lower())):
            return  # most configs: nothing a check or the preflight needs, no parse
        for raw_name, value in parse_config(text):
            name = lower_name(raw_name)
            self.entries.append(
                _ConfigEntry(name=name, raw_name=raw_name, value=value, origin=origin)
            )
            is_include = name == "include.path" or (
                name.startswith("includeif.") and name.endswith(".path")
            )
            if is_include and value and depth > 0:
                target = expand_user(value)
                if not target.is_absolute():
                    target = path.parent / target
                self.read(target, origin=str(target), depth=depth - 1)


# Every key (or section) an entry must have for C-13 or the preflight to care about it. A key
# name is written without escapes, so a file where none appears as a word has no such entry.
_WORDS = {key.rpartition(".")[2] for key in _RISKY_KEYS}
_WORDS |= {"alias", "pager", "update", "excludesfile", "attributesfile"}
_WORD = re.compile("[a-z0-9-]+")


# -- Reading a repo -----------------------------------------------------------------------


def _open(root: Path) -> tuple[pygit2.Repository, _Layout]:
    layout = _layout(root)
    try:
        repo = pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except _PYGIT2_ERRORS as exc:
        raise GitReadError(_open_error(root, layout, exc)) from exc
    if repo.is_bare or repo.workdir is None:
        repo.free()
        raise GitReadError("a bare repository, not a work tree")
    return repo, layout


def _open_error(root: Path, layout: _Layout, exc: BaseException) -> str:
    """A readable line for a repo libgit2 refuses to open."""
    message = _clean_message(exc).removeprefix(f"{root}: ")  # the finding names the repo
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
    repo: pygit2.Repository, root: Path, layout: _Layout, default_branch: str, digest: str
) -> GitState:
    head: str | None = None
    branch: str | None = None
    try:
        head_ref = repo.references["HEAD"]
    except pygit2.GitError as exc:  # pygit2 prefixes libgit2's reason with 'HEAD: '
        raise GitReadError(_clean_message(exc).removeprefix("HEAD: ")) from exc
    if isinstance(head_ref.target, str):  # on a branch (maybe unborn)
        branch = head_ref.target.removeprefix("refs/heads/")
        branch_ref = repo.references.get(head_ref.target)
        head = None if branch_ref is None else str(branch_ref.resolve().target)
    else:
        head = str(head_ref.target)

    remote_head = repo.references.get("refs/remotes/origin/HEAD")
    if remote_head is not None and isinstance(remote_head.target, str):
        default_branch = remote_head.target.removeprefix("refs/remotes/origin/")

    regular, tracked_dirs = _index(repo, layout.gitdir, root)
    _check_worktree(repo, root, tracked_dirs)
    # Stats are taken before the status walk: a change made during the walk shows as a
    # different fingerprint next time, never as a stale clean skip.
    tracked_stats = _tracked_stats(root, layout, regular, tracked_dirs)
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
        fingerprint=_fingerprint(root, layout, digest, tracked_stats, untracked),
    )


def _is_changed(flags: int) -> bool:
    return bool(flags & _CHANGED) and not flags & FileStatus.CONFLICTED


def _index(repo: pygit2.Repository | None, gitdir: Path, root: Path) -> tuple[list[str], set[str]]:
    """The regular files of the index, in its order, and every folder that holds an entry.

    ``repo`` serves an index the parser leaves to libgit2; None opens ``root`` when needed.
    """
    try:
        read = _read_bytes(gitdir / "index", _MAX_INDEX_PARSED)
    except _TooLargeError:
        read = None
    parsed = _parse_index(read[0]) if read is not None else None
    if parsed is None:  # no index, or one this parser leaves to libgit2
        owned = repo is None
        if repo is None:
            repo = _open(root)[0]
        try:
            parsed = [(entry.path, int(entry.mode)) for entry in repo.index]
        finally:
            if owned:
                repo.free()
    regular: dict[str, None] = {}  # a conflict repeats its path, once per stage
    folders: set[str] = set()
    for path, mode in parsed:
        if mode in _REGULAR_MODES:
            regular[path] = None
        cut = path.rfind("/")
        while cut > 0 and (folder := path[:cut]) not in folders:
            folders.add(folder)
            cut = path.rfind("/", 0, cut)
    return list(regular), folders


# The index file, read here because pygit2 builds a Python object per entry (about four
# times slower). Versions 2 to 4 with SHA-1 ids; anything else (a split or sparse index,
# SHA-256, a file this parser does not account for to the byte) is left to libgit2.
# https://git-scm.com/docs/index-format
_MAX_INDEX_PARSED = 64 << 20
_ENTRY_FIXED = 62  # ten 32-bit stat fields, a 20-byte id, 16-bit flags
_EXTENDED = 0x4000
_HASH = 20


class _UnparsedIndexError(Exception):
    pass


def _parse_index(data: bytes) -> list[tuple[str, int]] | None:
    """``(path, mode)`` of every entry of an index file; None to leave it to libgit2."""
    try:
        return _index_entries(data)
    except (_UnparsedIndexError, IndexError):
        return None


def _index_entries(data: bytes) -> list[tuple[str, int]]:
    def need(condition: bool) -> None:
        if not condition:
            raise _UnparsedIndexError

    need(len(data) >= 12 + _HASH and data[:4] == b"DIRC")
    version = int.from_bytes(data[4:8], "big")
    need(version in (2, 3, 4))
    end = len(data) - _HASH
    entries: list[tuple[str, int]] = []
    previous = b""
    pos = 12
    for _ in range(int.from_bytes(data[8:12], "big")):
        start = pos
        pos += _ENTRY_FIXED
        need(pos <= end)
        mode = int.from_bytes(data[start + 24 : start + 28], "big")
        if int.from_bytes(data[pos - 2 : pos], "big") & _EXTENDED:
            pos += 2
        if version == 4:
            strip, pos = _varint(data, pos)
            need(strip <= len(previous))
            nul = data.find(b"\0", pos, end)
            need(nul >= 0)
            name = previous[: len(previous) - strip] + data[pos:nul]
            pos = nul + 1
        else:
            nul = data.find(b"\0", pos, end)
            need(nul >= 0)
            name = data[pos:nul]
            pos = start + ((nul - start + 8) & ~7)  # 1 to 8 NULs pad the entry to 8 bytes
        previous = name
        entries.append((os.fsdecode(name), mode))
    while pos < end:  # extensions: a signature, a 32-bit size, the data
        need(pos + 8 <= end and data[pos : pos + 4] not in (b"link", b"sdir"))
        pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
    need(pos == end)
    return entries


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset varint (varint.c) at ``pos``: the value and the position after it."""
    byte = data[pos]
    value = byte & 0x7F
    while byte & 0x80:
        pos += 1
        byte = data[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos + 1


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
            text = _read_file(gitdir / folder / "head-name")
            if text is not None:
                name = text.strip().removeprefix("refs/heads/")
                break
        else:
            return None
    else:
        name = (_read_file(gitdir / "BISECT_START") or "").strip()
    return name if name and repo.references.get(f"refs/heads/{name}") is not None else None


def fingerprint(root: Path, *, settings_digest: str, watch: Sequence[str] = ()) -> str:
    """The fingerprint :func:`read_state` would give, from file stats alone (no status walk).

    ``watch`` is the ``untracked`` list of the last state read. Equal fingerprints mean
    nothing an assessment reads has changed: HEAD, refs, the index, the repo's config,
    the stat of every tracked file and of every folder holding one (a new file changes its
    folder), and of the untracked files. Costs a few stat calls per file; raises
    GitReadError like read_state.
    """
    layout = _layout(root)
    regular, tracked_dirs = _index(None, layout.gitdir, root)
    stats = _tracked_stats(root, layout, regular, tracked_dirs)
    return _fingerprint(root, layout, settings_digest, stats, watch)


def _tracked_stats(
    root: Path, layout: _Layout, regular: Sequence[str], folders: set[str]
) -> list[str]:
    """Stat lines of the git dir, the work tree's folders and tracked files, in a stable order."""
    lines = [_stat_line(str(layout.gitdir))]  # MERGE_HEAD, rebase-merge/ ... come and go
    lines.append(_stat_line(str(root)))
    lines.extend(_stat_line(f"{root}/{folder}") for folder in sorted(folders))
    lines.extend(_stat_line(f"{root}/{path}") for path in regular)
    return lines


def _fingerprint(
    root: Path, layout: _Layout, digest: str, tracked_stats: Sequence[str], watch: Sequence[str]
) -> str:
    sha = hashlib.sha256()
    sha.update(os.fsencode(f"{digest}\n"))
    # os.fsencode: a file name that is not UTF-8 arrives with surrogate escapes (PEP 383),
    # which a plain str.encode() refuses.
    for key in layout.risky:
        sha.update(os.fsencode(f"{key.key}={key.value}@{key.origin}\n"))
    sha.update(os.fsencode("\n".join(layout.stamp)))
    sha.update(os.fsencode("\n".join(tracked_stats)))
    for path in watch:  # untracked files, and the folders they sit in
        sha.update(os.fsencode(_stat_line(f"{root}/{path}")))
        sha.update(os.fsencode(_stat_line(f"{root}/{path}".rpartition("/")[0])))
    return sha.hexdigest()


def _stat_line(path: str) -> str:
    """Size, mtime, ctime and inode of a path: editing, replacing or touching it changes it."""
    try:
        info = os.lstat(path)
    except OSError:
        return f"{path}:-\n"
    return f"{path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}\n"


def _clean_message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- --remote ---------------------------------------------------------------------------

# Every key through which a repo's config could make `git fetch` run a command is pinned on
# the command line, which wins over every config file (includes too) for these keys.
# Three need other means: remote.<name>.uploadpack keeps its FIRST value (git 2.39: "more
# than one uploadpack given, using the first"), so fetch gets --upload-pack; core.gitProxy
# is ignored once $GIT_PROXY_COMMAND is set, so the environment sets it empty; and
# remote.<name>.vcs (a helper run by path) is refused by allowing only the plain transports.
_FETCH_OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.sshCommand=ssh -o BatchMode=yes -o StrictHostKeyChecking=yes",
    "core.askPass=",
    "core.alternateRefsCommand=true",  # a no-op: alternates advertise no tips
    "credential.helper=",  # an empty value clears every helper read before it
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.git.allow=always",
    "protocol.ssh.allow=always",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "protocol.ext.allow=never",
    "http.saveCookies=false",
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
    except _PYGIT2_ERRORS as exc:
        raise GitReadError(_clean_message(exc)) from exc
    finally:
        repo.free()


def fetch(root: Path, *, timeout: float) -> str | None:
    """``git fetch`` the repo's remote in a hardened environment; returns the remote fetched.

    Raises FetchError on failure or when ``timeout`` seconds pass (the process group is
    killed), GitReadError when the repo cannot be read. A repo with no remote is not
    fetched and returns None.
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
        "--",
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
        raise FetchError(f"cannot run git: {_reason(exc)}") from exc
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise FetchError(f"git fetch {remote} timed out after {timeout:g} s") from None
    if process.returncode != 0:
        reason = _fetch_reason(stderr.decode("utf-8", "replace"), process.returncode)
        raise FetchError(f"git fetch {remote} failed: {reason}")
    return remote


def _fetch_reason(stderr: str, returncode: int) -> str:
    """The first 'fatal:' or 'error:' line of git's stderr, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return lines[-1] if lines else f"exit status {returncode}"
