"""The content family: C-21..C-23, read from the work-tree copies of tracked files.

Reading is bounded and never follows a link: a file is opened only when every folder on its
path is a real folder and the file itself a regular file (``lstat``, then ``O_NOFOLLOW``);
a tracked file gone from the work tree, or replaced by a link, folder or FIFO, is skipped.
A regular file that cannot be read (no permission, an I/O error) is not skipped in silence:
it is a C-00 naming it (issue 20, "nothing unread is clean"), so that a sweep by a user who
may not read a 0600 key never passes where its owner's sweep finds the key.
C-22 needs only ``lstat``.

Decisions where the contract is silent:

- At most :data:`CONTENT_READ_LIMIT` bytes of a file are read, once, for C-21 and C-23
  together: a file up to that size is scanned whole, a larger one (already a C-22 finding
  under the default limit) only its first MiB. So a 50 MB file costs one bounded read.
- Binary (a NUL byte, or bytes that are not UTF-8) is judged on that same prefix; a
  multi-byte character cut by the bound does not make a file binary.
- C-23 scans binary files too: a key pasted into any file is a leak, and a substring
  search of at most 1 MiB is cheap. A key is its opening line followed by key material
  (issue 21): for an armoured key (``-----BEGIN ... PRIVATE KEY-----``, PGP's ``... KEY
  BLOCK``, RFC 4716's ``---- BEGIN ...``), optional headers (``Proc-Type: 4,ENCRYPTED``),
  at least :data:`MIN_KEY_CHARS` characters of base64 lines, then the END line; for a PuTTY
  key file, its header line, then a ``Private-Lines: N`` line and N base64 lines. The code
  around a key written into source is looked through: indentation, a comment sign, quotes,
  a Python bytes prefix, commas and ``+`` between string pieces, ``\\n`` escapes (a key
  in one JSON string). A marker line alone (a detector's pattern, a PEM parser, prose) is
  no key. One finding per file names the first key's line and counts the others.
- C-21 looks for a conflict *block* (issue 15): a ``<<<<<<<`` line, then a ``=======``
  line, then a ``>>>>>>>`` line, in that order. A lone separator is a reStructuredText
  heading underline as often as not, and a lone opener or closer is prose about git; none
  of them is a finding. The finding names the first block's opening line.
- C-23 honours the inline allow marker of detect-secrets, the ecosystem's convention for
  test keys: ``pragma: allowlist secret`` on the header's line, or
  ``pragma: allowlist nextline secret`` on the line above it, accepts that one key.
- C-22 compares the apparent size (``st_size``); a file starting with the Git LFS pointer
  line is exempt, and so is a dependency lock file (``[checks] lockfiles``, issue 21):
  committed on purpose, it only grows.
- Path excludes (``exclude_paths``) are applied to every family's findings by
  :func:`statehub.checks.assess`; here they also spare the read of a file whose C-21 and
  C-23 are both excluded.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from statehub.checks import AUTOMATION_ERROR, Finding, RepoContext
from statehub.checks.docs import read_prefix

CONTENT_READ_LIMIT = 1024 * 1024
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"

# A conflict marker is a whole line: seven '<', '=' or '>' then a space or the line's end.
_MARKER = re.compile(rb"^(<{7}|={7}|>{7})(?: |\r?$)", re.MULTILINE)
ALLOW_MARKER = b"pragma: allowlist secret"
ALLOW_NEXT_MARKER = b"pragma: allowlist nextline secret"
_MARKER_RUNS = (b"<<<<<<<", b"=======", b">>>>>>>")
# The PuTTY marker is spelled in two pieces so that this file, scanned by statehub itself
# (tests/test_dogfood.py), does not hold it; '[-]' does the same in the patterns.
_PUTTY = b"PuTTY-User-Key" + b"-File-"
# A PEM (or ssh.com) armour line: five dashes, or four and a blank, as in RFC 4716.
_BEGIN = re.compile(
    rb"-{4,5} ?BEGIN ((?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?) ?-{4,5}"
    rb"|PuTTY-User-Key[-]File-[0-9]+:"
)
_END = re.compile(rb"-{4,5} ?END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)? ?-{4,5}")
# One line of a key's body once the code around it is taken off: leading blanks, a comment
# sign, an opening quote (with a Python prefix), then base64, then closing quotes, commas,
# a string concatenation or a line continuation.
_BODY_LINE = re.compile(
    rb"[ \t]*+(?:#|//|;|\*|--)?[ \t]*+(?:[bBrRuU]{0,2}[\"'`])?"
    rb"(?P<b64>[A-Za-z0-9+/]{1,200}={0,2}|=[A-Za-z0-9+/]{4})"
    rb"[\"'`]?[ \t]*+[,;+)\\]?[ \t]*+\r?"
)
# A header of an armoured block (RFC 1421, RFC 4880, RFC 4716, PuTTY): "Name: value".
_HEADER_LINE = re.compile(rb"[ \t]*+(?:[#;*]|//)?[ \t]*+[\"']?[A-Za-z][A-Za-z0-9-]{0,40}: ")
_PRIVATE_LINES = re.compile(rb"[^A-Za-z]{0,8}Private-Lines: ?([0-9]{1,4})")
MIN_KEY_CHARS = 64
"""Base64 characters a key's body holds at least: an Ed25519 key in PKCS#8, the smallest
common private key, is 48 bytes, 64 characters. A header with less under it (``MIIE...``
in documentation) is an example, not a key."""
MIN_PUTTY_CHARS = 40  # an Ed25519 PuTTY key's private lines: 48 characters
MAX_KEY_LINES = 400  # a 4096-bit RSA PGP key with subkeys is about 200 lines
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


@dataclass(frozen=True, kw_only=True)
class KeyBlock:
    """A private key found in a file: where it opens, its kind, a digest of its body."""

    line: int  # 1-based line of its BEGIN (or PuTTY header) line
    kind: str  # "RSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK", "PuTTY key file", ...
    digest: str  # of its base64 body: an edited key is another key


def _lines_after(data: bytes, match: re.Match[bytes]) -> Iterator[bytes]:
    """The lines that follow a BEGIN marker (at most :data:`MAX_KEY_LINES` and one), one
    at a time: a marker followed by no key costs the lines up to the first that is none.

    A key written as one string with ``\\n`` escapes (JSON, a literal in code) is split on
    them; a key on one line between its BEGIN and END markers, on blanks; any other key's
    lines are the file's next lines.
    """
    line_end = data.find(b"\n", match.end())
    line_end = len(data) if line_end < 0 else line_end
    rest = data[match.end() : line_end].replace(b"\\r", b"")
    pieces = rest.split(b"\\n")
    if len(pieces) > 1 and not all(_blank(piece) for piece in pieces[1:]):
        yield from pieces[: MAX_KEY_LINES + 1]  # more than the string's end after the escape
        return
    end_marker = _END.search(rest)
    if end_marker is not None:
        yield from rest[: end_marker.start()].split()
        yield end_marker.group()
        return
    position = line_end + 1
    for _ in range(MAX_KEY_LINES + 1):
        if position >= len(data):
            return
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end
        yield data[position:end]
        position = end + 1


def _blank(line: bytes) -> bool:
    """A line with nothing but blanks and the code around a string (quotes, commas)."""
    return not line.strip(b" \t\r\"'`,;+()\\")


def _pem_body(lines: Iterator[bytes]) -> list[bytes] | None:
    """The base64 lines of an armoured key up to its END line; None when it is no key.

    Headers (``Proc-Type: 4,ENCRYPTED``, ``Version:``) and blanks may come before the body;
    after it, only its END line.
    """
    body: list[bytes] = []
    for raw in lines:
        line = raw.replace(b"\\n", b"").replace(b"\\r", b"")
        if _END.search(line):
            return body if sum(map(len, body)) >= MIN_KEY_CHARS else None
        if _blank(line):
            continue
        if not body and _HEADER_LINE.match(line):
            continue
        part = _BODY_LINE.fullmatch(line)
        if part is None:
            return None
        body.append(part.group("b64"))
    return None


def _putty_body(lines: Iterator[bytes]) -> list[bytes] | None:
    """The private lines of a PuTTY key file; None when its header is not followed by them."""
    for raw in lines:
        line = raw.replace(b"\\n", b"").replace(b"\\r", b"")
        private = _PRIVATE_LINES.match(line)
        if private is None:
            if _HEADER_LINE.match(line) or _BODY_LINE.fullmatch(line):
                continue  # Encryption:, Comment:, Public-Lines: and the public lines
            return None
        count = int(private.group(1))
        body: list[bytes] = []
        for body_raw in itertools.islice(lines, count):
            part = _BODY_LINE.fullmatch(body_raw.replace(b"\\n", b"").replace(b"\\r", b""))
            if part is None:
                return None
            body.append(part.group("b64"))
        enough = count > 0 and len(body) == count and sum(map(len, body)) >= MIN_PUTTY_CHARS
        return body if enough else None
    return None


def private_keys(data: bytes) -> list[KeyBlock]:
    """The private keys in ``data`` that no allow marker accepts, in order.

    A key is its opening line followed by key material (see the module's docstring); a
    marker line alone (a detector's pattern, a parser, documentation) is none.
    """
    if not any(hint in data for hint in _KEY_HINTS):
        return []
    keys: list[KeyBlock] = []
    counted, line_number = 0, 1  # lines counted up to the last key: linear, not quadratic
    for match in _BEGIN.finditer(data):
        line, before = _line_around(data, match.start())
        if ALLOW_MARKER in line or ALLOW_NEXT_MARKER in before:
            continue
        lines = _lines_after(data, match)
        putty = match.group(1) is None
        body = _putty_body(lines) if putty else _pem_body(lines)
        if body is None:
            continue
        line_number += data.count(b"\n", counted, match.start())
        counted = match.start()
        keys.append(
            KeyBlock(
                line=line_number,
                kind="PuTTY key file" if putty else match.group(1).decode("ascii"),
                digest=content_digest(b"".join(body)),
            )
        )
    return keys


def content_digest(data: bytes) -> str:
    """The short hash a baseline keeps of a finding's line (or of a key's body)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _blocks_digest(data: bytes, blocks: list[int]) -> str:
    """The hash of the first conflict block's text, from its opening to its closing line,
    and of the number of blocks: an edit of the block, or another block, changes it."""
    start = 0
    for _ in range(blocks[0] - 1):
        start = data.index(b"\n", start) + 1
    closer = data.find(b"\n>>>>>>>", start)
    end = data.find(b"\n", closer + 1) if closer >= 0 else -1
    block = data[start : end if end >= 0 else len(data)]
    return content_digest(block + f"\0{len(blocks)}".encode())


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
        """The first ``limit`` bytes of the regular file ``rel``.

        None when it is gone or no longer a regular file (a link, a FIFO: never waited on
        nor followed). Raises :class:`Unreadable` when it is a regular file this process
        may not read or whose read fails.
        """
        try:
            fd = os.open(f"{self.root}/{rel}", _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise Unreadable(exc.strerror or str(exc)) from None
        except ValueError:  # a NUL in the name: no such file can exist
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return read_prefix(fd, limit)
        except OSError as exc:
            raise Unreadable(exc.strerror or str(exc)) from None
        finally:
            os.close(fd)


class Unreadable(Exception):
    """A tracked regular file that cannot be read; the message says why."""


# Errors of open() that mean the file is not there to read as a regular file: gone, a
# symlink refused by O_NOFOLLOW, a folder on its path that is no longer one.
_GONE = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR})


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
            findings.append(
                Finding(
                    check="C-21",
                    message=message,
                    path=path,
                    line=blocks[0],
                    line_hash=_blocks_digest(data, blocks),
                )
            )
    limit_kb = ctx.settings.max_file_kb
    if (
        enabled("C-22")
        and size > limit_kb * 1024
        and not data.startswith(LFS_POINTER)
        and not ctx.settings.lockfile(path)
    ):
        size_kb = -(-size // 1024)  # rounded up, so it never reads as equal to the limit
        message = f"file is {size_kb} KB, over the {limit_kb} KB limit"
        findings.append(Finding(check="C-22", message=message, path=path))
    if enabled("C-23") and (keys := private_keys(data)):
        first = keys[0]
        more = f" ({len(keys)} keys in all)" if len(keys) > 1 else ""
        findings.append(
            Finding(
                check="C-23",
                message=f"holds a private key ({first.kind}) at line {first.line}{more}",
                path=path,
                line=first.line,
                line_hash=content_digest(" ".join(key.digest for key in keys).encode()),
            )
        )
    return findings


def _unread(path: str, reason: str) -> Finding:
    """The C-00 of a tracked file the content checks could not read (issue 20)."""
    reason = reason[:1].lower() + reason[1:]
    message = f"{path}: cannot be read for C-21..C-23 ({reason}); its content is not judged"
    return Finding(check=AUTOMATION_ERROR, message=message, path=path)


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
        try:
            data = reader.head(path, min(want, size)) if want else b""
        except Unreadable as exc:
            if enabled(AUTOMATION_ERROR):
                findings.append(_unread(path, str(exc)))
            continue
        if data is None:
            continue
        findings.extend(_judge(ctx, path, size, data))
    return findings
