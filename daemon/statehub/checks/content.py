"""The content family: C-21..C-23, read from the work-tree copies of tracked files.

Reading is bounded and never follows a link: a file is opened only when every folder on its
path is a real folder and the file itself a regular file (``lstat``, then ``O_NOFOLLOW``);
a tracked file gone from the work tree, or replaced by a link, folder or FIFO, is skipped,
and so is one that cannot be read (no permission). C-22 needs only ``lstat``.

Decisions where the contract is silent:

- At most :data:`CONTENT_READ_LIMIT` bytes of a file are read, once, for C-21 and C-23
  together: a file up to that size is scanned whole, a larger one (already a C-22 finding
  under the default limit) only its first MiB. So a 50 MB file costs one bounded read.
- Binary (a NUL byte, or bytes that are not UTF-8) is judged on that same prefix; a
  multi-byte character cut by the bound does not make a file binary.
- C-23 scans binary files too: a key pasted into any file is a leak, and a substring
  search of at most 1 MiB is cheap. A file that merely mentions a key's header line (a PEM
  parser, say) is reported as well: the contract asks for the header anywhere.
- C-21 looks for a conflict *block* (issue 15): a ``<<<<<<<`` line, then a ``=======``
  line, then a ``>>>>>>>`` line, in that order. A lone separator is a reStructuredText
  heading underline as often as not, and a lone opener or closer is prose about git; none
  of them is a finding. The finding names the first block's opening line.
- C-23 honours the inline allow marker of detect-secrets, the ecosystem's convention for
  test keys: ``pragma: allowlist secret`` on the header's line, or
  ``pragma: allowlist nextline secret`` on the line above it, accepts that one key.
- C-22 compares the apparent size (``st_size``); a file starting with the Git LFS pointer
  line is exempt.
- Path excludes (``exclude_paths``) are applied to every family's findings by
  :func:`statehub.checks.assess`; here they also spare the read of a file whose C-21 and
  C-23 are both excluded.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat

from statehub.checks import Finding, RepoContext
from statehub.checks.docs import read_regular

CONTENT_READ_LIMIT = 1024 * 1024
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"

# A conflict marker is a whole line: seven '<', '=' or '>' then a space or the line's end.
_MARKER = re.compile(rb"^(<{7}|={7}|>{7})(?: |\r?$)", re.MULTILINE)
ALLOW_MARKER = b"pragma: allowlist secret"
ALLOW_NEXT_MARKER = b"pragma: allowlist nextline secret"
_MARKER_RUNS = (b"<<<<<<<", b"=======", b">>>>>>>")
# The PuTTY marker is spelled in two pieces so that this file, scanned by statehub itself
# (tests/test_dogfood.py), does not hold it; '[-]' does the same in the pattern.
_PUTTY = b"PuTTY-User-Key" + b"-File-"
_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key[-]File-"
)
_KEY_HINTS = (b"PRIVATE KEY", _PUTTY)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _is_text(data: bytes, truncated: bool) -> bool:
    """True when a file's first bytes hold no NUL and decode as UTF-8."""
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut in two by the read bound is not a sign of binary content.
        return truncated and exc.reason == "unexpected end of data" and exc.end == len(data)
    return True


def conflict_blocks(data: bytes) -> list[int]:
    """The 1-based line numbers where the conflict blocks of a text open.

    A block is an opening ``<<<<<<<`` line, a later ``=======`` line and a later
    ``>>>>>>>`` line; an opener met before the block closes starts the block afresh (the
    earlier one was never closed), and a closer without a separator closes nothing.
    """
    if not all(run in data for run in _MARKER_RUNS):
        return []
    blocks: list[int] = []
    opened: int | None = None  # offset of the current block's opening line
    separated = False
    for match in _MARKER.finditer(data):
        kind = match.group(1)[:1]
        if kind == b"<":
            opened, separated = match.start(), False
        elif kind == b"=":
            separated = opened is not None
        elif opened is not None and separated:
            blocks.append(data.count(b"\n", 0, opened) + 1)
            opened, separated = None, False
        else:
            opened, separated = None, False
    return blocks


def _line_around(data: bytes, offset: int) -> tuple[bytes, bytes]:
    """The line holding ``offset`` and the line before it (empty for the first line)."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    line = data[start : end if end != -1 else len(data)]
    before = data[data.rfind(b"\n", 0, max(start - 1, 0)) + 1 : max(start - 1, 0)]
    return line, before


def private_key(data: bytes) -> str | None:
    """The first private-key header found in ``data`` that no allow marker accepts, or None."""
    if not any(hint in data for hint in _KEY_HINTS):
        return None
    for match in _PRIVATE_KEY.finditer(data):
        line, before = _line_around(data, match.start())
        if ALLOW_MARKER in line or ALLOW_NEXT_MARKER in before:
            continue
        return match.group().decode("ascii")
    return None


class _Reader:
    """Opens tracked files of one work tree without following any symlink.

    Paths are joined with "/": tracked paths are posix and statehub runs on POSIX only.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._real_dirs: dict[str, bool] = {"": True}

    def _is_real_dir(self, rel_dir: str) -> bool:
        """True when ``rel_dir`` and each folder above it is a folder, not a link."""
        known = self._real_dirs.get(rel_dir)
        if known is None:
            known = self._is_real_dir(posixpath.dirname(rel_dir))
            if known:
                try:
                    known = stat.S_ISDIR(os.lstat(f"{self.root}/{rel_dir}").st_mode)
                except OSError:
                    known = False
            self._real_dirs[rel_dir] = known
        return known

    def size(self, rel: str) -> int | None:
        """The size of the regular file ``rel``; None when it is gone or not a regular file."""
        if not self._is_real_dir(posixpath.dirname(rel)):
            return None
        try:
            info = os.lstat(f"{self.root}/{rel}")
        except (OSError, ValueError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def head(self, rel: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the regular file ``rel``; None when it cannot be read."""
        return read_regular(f"{self.root}/{rel}", limit)


def _judge(ctx: RepoContext, path: str, size: int, data: bytes) -> list[Finding]:
    """C-21..C-23 for one tracked file, from its size and its first bytes."""
    enabled = ctx.settings.enabled
    findings: list[Finding] = []
    truncated = size > len(data)
    if enabled("C-21") and data and _is_text(data, truncated):
        blocks = conflict_blocks(data)
        if blocks:
            more = f" ({len(blocks)} blocks in all)" if len(blocks) > 1 else ""
            message = f"conflict block at line {blocks[0]}{more}"
            findings.append(Finding(check="C-21", message=message, path=path))
    limit_kb = ctx.settings.max_file_kb
    if enabled("C-22") and size > limit_kb * 1024 and not data.startswith(LFS_POINTER):
        size_kb = -(-size // 1024)  # rounded up, so it never reads as equal to the limit
        message = f"file is {size_kb} KB, over the {limit_kb} KB limit"
        findings.append(Finding(check="C-22", message=message, path=path))
    if enabled("C-23") and (header := private_key(data)):
        findings.append(Finding(check="C-23", message=f"holds a private key ({header})", path=path))
    return findings


def run(ctx: RepoContext) -> list[Finding]:
    """Findings of C-21..C-23 for one repo; each file is read at most once, bounded."""
    enabled = ctx.settings.enabled
    scan = enabled("C-21") or enabled("C-23")
    if not (scan or enabled("C-22")):
        return []
    oversize = ctx.settings.max_file_kb * 1024
    reader = _Reader(str(ctx.root))
    findings: list[Finding] = []
    excluded = ctx.settings.excluded
    for path in ctx.git.tracked_files:
        size = reader.size(path)
        if not size:  # gone, not a regular file, or empty: nothing to find
            continue
        # Without C-21/C-23, only an oversized file is opened, for the LFS pointer line.
        read_it = scan and not (excluded("C-21", path) and excluded("C-23", path))
        want = CONTENT_READ_LIMIT if read_it else (len(LFS_POINTER) if size > oversize else 0)
        data = reader.head(path, min(want, size)) if want else b""
        if data is None:
            continue
        findings.extend(_judge(ctx, path, size, data))
    return findings
