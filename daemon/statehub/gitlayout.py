"""The cheap half of reading git: what a path is, its git dir, and its fingerprint.

Everything here is file stats and small reads of git metadata, done with plain system
calls and never with libgit2: :func:`probe` says whether a path is a work tree,
:func:`read_layout` finds the git dir and makes sure that every file libgit2 will read is a
regular file (a named pipe would block it), collecting the repo's own command-running
config keys (C-13) on the way, and :func:`fingerprint` tells from stats alone whether
anything an assessment reads has changed. :mod:`statehub.gitstate` reads the full state
with libgit2; :mod:`statehub.gitfetch` runs ``--remote``'s fetch. All three run in a
sweep's worker processes only (:mod:`statehub.worker`).

Files git reads, checked before libgit2 opens anything: the .git entry and its gitdir file,
the config and every file it includes, the fixed files of the git dir (HEAD, index,
packed-refs, info/*, alternates), loose refs and pack files, the files named by
core.excludesFile and core.attributesFile, and (in gitstate) every .gitignore and
.gitattributes of the folders a status walk visits. Not covered: loose objects,
submodules, and a file system that stops answering; the worker's time bound covers those.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import stat
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from statehub.errors import GitReadError
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
        "imap.tunnel",  # git imap-send runs it as a shell command
        "guitool.*.cmd",
        "instaweb.httpd",
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
    if section == "sendemail":
        # toCmd, ccCmd, headerCmd, sendmailCmd ... of a section or an identity; and an
        # smtpServer given as an absolute path is a sendmail-like program to run.
        return key.endswith("cmd") or (key == "smtpserver" and text.startswith("/"))
    return False


@dataclass(frozen=True, kw_only=True)
class RiskyKey:
    """A command-running key set in the repo's own config (C-13)."""

    key: str  # as written, e.g. 'core.fsmonitor' or 'includeIf.gitdir:~/x/.path'
    value: str
    origin: str | None = None  # the included file that sets it; None for the repo's own
    # The repo's own config file it comes from (or that includes it): its config, its
    # config.worktree, or a git dir's elsewhere; empty when unknown.
    file: str = ""


_REGULAR_MODES = (0o100644, 0o100755)


def probe(path: Path) -> Probe:
    """Say what ``path`` is, without opening anything a repo controls.

    Raises GitReadError when the path exists but cannot be examined (a symlink loop, no
    permission).
    """
    try:
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            if os.path.lexists(path):
                path.stat()  # raises the real reason: a dangling link
            return Probe(kind=Kind.MISSING)
        if not stat.S_ISDIR(info.st_mode):
            return Probe(kind=Kind.NOT_WORKTREE, reason="not a folder")
        if os.path.lexists(f"{path}/.git"):
            return Probe(kind=Kind.WORKTREE)
        bare = all(
            (path / name).is_file() if name == "HEAD" else (path / name).is_dir()
            for name in ("HEAD", "objects", "refs")
        )
    except OSError as exc:
        raise GitReadError(f"cannot examine {path}: {os_reason(exc)}") from exc
    if bare:
        return Probe(kind=Kind.NOT_WORKTREE, reason="a bare repository, not a work tree")
    return Probe(kind=Kind.NOT_WORKTREE, reason="not the top of a git work tree")


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where a work tree's git data is, and what its config and metadata files say."""

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


def os_reason(exc: OSError) -> str:
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


def require_plain(path: Path) -> None:
    """Raise GitReadError when ``path`` exists and is not a regular file or a folder."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise GitReadError(f"cannot read {path}: {os_reason(exc)}") from exc
    kind = _not_plain(info)
    if kind is not None:
        raise GitReadError(f"{path} is {kind}, not a file: reading it would block git")


def read_file(path: Path) -> str | None:
    """The text of a small regular file; None when it is absent or a folder.

    Opened without blocking and checked first, so a named pipe raises GitReadError.
    """
    read = _read_with_stat(path)
    return None if read is None else read[0]


class TooLargeError(GitReadError):
    pass


def _stamp(path: str, info: os.stat_result) -> str:
    return f"{path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"


def _read_with_stat(path: Path) -> tuple[str, os.stat_result] | None:
    """:func:`read_file`, with the file's stat."""
    read = read_bytes(path, _MAX_READ)
    return None if read is None else (read[0].decode("utf-8", "replace"), read[1])


def read_bytes(path: Path, limit: int) -> tuple[bytes, os.stat_result] | None:
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
        raise GitReadError(f"cannot read {path}: {os_reason(exc)}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None
        kind = _not_plain(info)
        if kind is not None:
            raise GitReadError(f"{path} is {kind}, not a file: reading it would block git")
        if info.st_size > limit:
            raise TooLargeError(f"{path} is too large to be git metadata ({info.st_size} bytes)")
        # One read for a file of the size its stat gave; one that grew since, or a read
        # cut short (a network file system may), goes on to the end.
        data = os.read(fd, info.st_size + 1)
        if len(data) != info.st_size:
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError as exc:
        raise GitReadError(f"cannot read {path}: {os_reason(exc)}") from exc
    finally:
        os.close(fd)
    return data, info


def read_layout(root: Path) -> Layout:
    """Find the git dir of ``root`` and check the files libgit2 will read before it does."""
    gitdir = _find_gitdir(root)
    stamp: list[str] = []
    present = _check_names(str(gitdir), _GITDIR_FILES, stamp)
    common = gitdir
    if "commondir" in present:  # a linked work tree
        common = gitdir / (read_file(gitdir / "commondir") or "").strip()
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
            require_plain(root / expand_user(entry.value))
    risky = tuple(
        RiskyKey(key=entry.raw_name, value=entry.value or "", origin=entry.origin, file=entry.file)
        for entry in config.entries
        if _runs_command(entry.name, entry.value)
    )
    return Layout(gitdir=gitdir, common=common, risky=risky, stamp=tuple(stamp))


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
        raise GitReadError(f"cannot read {folder}: {os_reason(exc)}") from exc
    with scan:
        for entry in scan:
            name = entry.name
            if name not in names:
                continue
            present.add(name)
            if not entry.is_file(follow_symlinks=False):
                require_plain(Path(entry.path))  # a folder, a symbolic link, or worse
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
        raise GitReadError(f"cannot read {dotgit}: {os_reason(exc)}") from exc
    if stat.S_ISDIR(info.st_mode):
        return dotgit
    if not stat.S_ISREG(info.st_mode):
        raise GitReadError(".git is neither a folder nor a file")
    text = read_file(dotgit) or ""
    if not text.startswith("gitdir:"):
        raise GitReadError(".git is a file that does not name a git dir ('gitdir: PATH')")
    gitdir = root / text.removeprefix("gitdir:").strip()
    try:
        target = gitdir.stat()
    except FileNotFoundError:
        raise GitReadError(f".git points to {gitdir}, which does not exist") from None
    except OSError as exc:
        reason = os_reason(exc)
        raise GitReadError(f".git points to {gitdir}, which cannot be read: {reason}") from exc
    if not stat.S_ISDIR(target.st_mode):
        kind = _not_plain(target) or "a file"
        raise GitReadError(f".git points to {gitdir}, which is {kind}, not a git dir")
    return gitdir


def _check_alternates(objects: Path, depth: int) -> None:
    text = read_file(objects / "info" / "alternates")
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
            raise GitReadError(f"cannot read {folder}: {os_reason(exc)}") from exc
        with scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    require_plain(Path(entry.path))
                if stamp is not None:
                    stamp.append(_stamp(entry.path, entry.stat()))


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
    file: str  # the repo's own config file read (that includes ``origin``)


class _ConfigReader:
    """The entries of config files and of the files they include, in git's order."""

    def __init__(self, stamp: list[str]) -> None:
        self.entries: list[_ConfigEntry] = []
        self._stamp = stamp
        self._seen: set[tuple[int, int]] = set()

    def read(self, path: Path, *, origin: str | None, depth: int, file: str = "") -> None:
        file = file or str(path)
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
                _ConfigEntry(name=name, raw_name=raw_name, value=value, origin=origin, file=file)
            )
            is_include = name == "include.path" or (
                name.startswith("includeif.") and name.endswith(".path")
            )
            if is_include and value and depth > 0:
                target = expand_user(value)
                if not target.is_absolute():
                    target = path.parent / target
                self.read(target, origin=str(target), depth=depth - 1, file=file)


# Every key (or section) an entry must have for C-13 or the preflight to care about it. A key
# name is written without escapes, so a file where none appears as a word has no such entry.
_WORDS = {key.rpartition(".")[2] for key in _RISKY_KEYS}
_WORDS |= {"alias", "pager", "update", "excludesfile", "attributesfile", "sendemail"}
_WORD = re.compile("[a-z0-9-]+")


# -- Reading a repo -----------------------------------------------------------------------

IndexReader = Callable[[], list[tuple[str, int]]]
"""Reads ``(path, mode)`` of every index entry with libgit2: for an index the parser leaves."""


def index_paths(gitdir: Path, libgit2_index: IndexReader) -> tuple[list[str], set[str]]:
    """The regular files of the index, in its order, and every folder that holds an entry.

    ``libgit2_index`` reads an index that :func:`_parse_index` leaves to libgit2.
    """
    try:
        read = read_bytes(gitdir / "index", _MAX_INDEX_PARSED)
    except TooLargeError:
        read = None
    parsed = _parse_index(read[0]) if read is not None else None
    if parsed is None:  # no index, or one this parser leaves to libgit2
        parsed = libgit2_index()
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
_HEADER = struct.Struct(">II")  # version, entry count
_MODE_FLAGS = struct.Struct(">I32xH")  # from an entry's mode: mode, (uid, gid, size, id), flags
_SIZE = struct.Struct(">I")


class _UnparsedIndexError(Exception):
    pass


def _parse_index(data: bytes) -> list[tuple[str, int]] | None:
    """``(path, mode)`` of every entry of an index file; None to leave it to libgit2."""
    try:
        return _index_entries(data)
    except (_UnparsedIndexError, IndexError, struct.error):
        return None


def _index_entries(data: bytes) -> list[tuple[str, int]]:
    # Written for speed (an unchanged repo's clean skip parses its index): no helper
    # calls per entry, the fixed fields unpacked in place.
    if len(data) < 12 + _HASH or data[:4] != b"DIRC":
        raise _UnparsedIndexError
    version, count = _HEADER.unpack_from(data, 4)
    if version not in (2, 3, 4):
        raise _UnparsedIndexError
    end = len(data) - _HASH
    names: list[bytes] = []
    modes: list[int] = []
    previous = b""
    pos = 12
    find = data.find
    for _ in range(count):
        start = pos
        pos += _ENTRY_FIXED
        if pos > end:
            raise _UnparsedIndexError
        mode, flags = _MODE_FLAGS.unpack_from(data, start + 24)
        if flags & _EXTENDED:
            pos += 2
        if version == 4:
            strip, pos = _varint(data, pos)
            nul = find(b"\0", pos, end)
            if strip > len(previous) or nul < 0:
                raise _UnparsedIndexError
            name = previous[: len(previous) - strip] + data[pos:nul]
            pos = nul + 1
            previous = name
        else:
            nul = find(b"\0", pos, end)
            if nul < 0:
                raise _UnparsedIndexError
            name = data[pos:nul]
            pos = start + ((nul - start + 8) & ~7)  # 1 to 8 NULs pad the entry to 8 bytes
        names.append(name)
        modes.append(mode)
    while pos < end:  # extensions: a signature, a 32-bit size, the data
        if pos + 8 > end or data[pos : pos + 4] in (b"link", b"sdir"):
            raise _UnparsedIndexError
        pos += 8 + _SIZE.unpack_from(data, pos + 4)[0]
    if pos != end:
        raise _UnparsedIndexError
    # os.fsdecode, inlined: a name that is not UTF-8 keeps its bytes as surrogate escapes.
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return [(name.decode(encoding, errors), mode) for name, mode in zip(names, modes, strict=True)]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset varint (varint.c) at ``pos``: the value and the position after it."""
    byte = data[pos]
    value = byte & 0x7F
    while byte & 0x80:
        pos += 1
        byte = data[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos + 1


def fingerprint(
    root: Path, *, settings_digest: str, libgit2_index: IndexReader, watch: Sequence[str] = ()
) -> str:
    """The fingerprint a full state read would give, from file stats alone (no status walk).

    ``watch`` is the ``untracked`` list of the last state read. Equal fingerprints mean
    nothing an assessment reads has changed: HEAD, refs, the index, the repo's config,
    the stat of every tracked file and of every folder holding one (a new file changes its
    folder), and of the untracked files. Costs a few stat calls per file; raises
    GitReadError like a state read.
    """
    layout = read_layout(root)
    regular, tracked_dirs = index_paths(layout.gitdir, libgit2_index)
    stats = tracked_stats(root, layout, regular, tracked_dirs)
    return combine_fingerprint(root, layout, settings_digest, stats, watch)


def tracked_stats(
    root: Path, layout: Layout, regular: Sequence[str], folders: set[str]
) -> list[str]:
    """Stat lines of the git dir, the work tree's folders and tracked files, in a stable order."""
    base = f"{root}/"
    paths = [str(layout.gitdir), str(root)]  # MERGE_HEAD, rebase-merge/ ... come and go
    paths.extend(base + folder for folder in sorted(folders))
    paths.extend(base + path for path in regular)
    return _stat_lines(paths)


def combine_fingerprint(
    root: Path, layout: Layout, digest: str, tracked_stats: Sequence[str], watch: Sequence[str]
) -> str:
    sha = hashlib.sha256()
    sha.update(os.fsencode(f"{digest}\n"))
    # os.fsencode: a file name that is not UTF-8 arrives with surrogate escapes (PEP 383),
    # which a plain str.encode() refuses.
    for key in layout.risky:
        sha.update(os.fsencode(f"{key.key}={key.value}@{key.origin}\n"))
    sha.update(os.fsencode("\n".join(layout.stamp)))
    sha.update(os.fsencode("\n".join(tracked_stats)))
    # The untracked files, each followed by the folder it sits in.
    watched = [f"{root}/{path}" for path in watch]
    paths = (each for file in watched for each in (file, file.rpartition("/")[0]))
    sha.update(os.fsencode("".join(_stat_lines(paths))))
    return sha.hexdigest()


def _stat_lines(paths: Iterable[str]) -> list[str]:
    """Size, mtime, ctime and inode of each path: editing, replacing or touching it changes it.

    One loop without a call per path: a clean skip stats every tracked file.
    """
    lstat = os.lstat
    lines: list[str] = []
    for path in paths:
        try:
            info = lstat(path)
        except OSError:
            lines.append(f"{path}:-\n")
            continue
        lines.append(f"{path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}\n")
    return lines
