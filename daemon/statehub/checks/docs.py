"""The documents family: C-01..C-04, and the Markdown and file helpers the workplans share.

Decisions where the contract is silent (section 3 of ``CONTRACT.md``):

- C-01 wants one of ``[checks] readme_names`` (default ``README.md``, ``README.rst``,
  ``README.txt``, ``README``, ``README.markdown``, ``README.adoc``; issues 15 and 21), in
  any letter case (``Readme.md``, ``readme.md``: GitHub and npm read them), judging the
  first of them present; C-04 reads it only when it is Markdown (``.md``, ``.markdown``):
  the links of reStructuredText or AsciiDoc are not read.
- C-02 wants the exact name ``AGENTS.md``; a file that holds only whitespace (or only a
  byte-order mark) is empty. An ``agents.md`` in another case does not count, but the
  message names it so the fix is obvious.
- The workplans index is ``workplans/README.md`` in any letter case, because the contract
  calls ``README.md`` "in any case" *the* human index: ``workplans/readme.md`` satisfies
  C-03 and is the file C-04 and C-11 read. When two spellings exist, ``README.md`` wins.
- Files are read from the work tree. A symlink is followed only while it stays inside the
  repo; anything else (a folder, a FIFO, a link leading out) is "not a file". Documents are
  read up to :data:`DOC_READ_LIMIT`; links beyond it are not checked.
- C-04: a link starting with ``/`` is relative to the repo root (as on GitHub and GitLab);
  a ``?query`` is ignored like a ``#fragment``; targets are URL-decoded. A link that leaves
  the repo (``../../x``) is always a finding: nothing outside the root is ever looked at.
  A link to a folder is fine. One finding per distinct broken path in a file, and none
  for a link to what C-01..C-03 already report missing.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from statehub.checks import Finding, RepoContext

DOC_READ_LIMIT = 1024 * 1024  # bytes of README.md, AGENTS.md or the index that are read
BOM = b"\xef\xbb\xbf"

WORKPLANS = "workplans"
INDEX_NAME = "README.md"
_ROOT_DOCS = (("C-01", "README.md"), ("C-02", "AGENTS.md"))
README_CHECK = "C-01"


def _markdown(name: str) -> bool:
    """True for a Markdown file name (``.md``, ``.markdown``): the documents C-04 reads."""
    return name.lower().endswith((".md", ".markdown"))


def _readme_name(accepted: tuple[str, ...], root_names: set[str], *, any_case: bool) -> str:
    """The document judged: the first accepted name present at the root, else the first.

    With ``any_case`` (the README), a name in another letter case counts when no exact one
    is present: ``Readme.md`` and ``readme.md`` are READMEs to GitHub and npm alike.
    """
    for name in accepted:
        if name in root_names:
            return name
    if any_case:
        by_case = {name.lower(): name for name in sorted(root_names, reverse=True)}
        for name in accepted:
            if name.lower() in by_case:
                return by_case[name.lower()]
    return accepted[0]


# -- reading files inside the repo ------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    """True when the real path ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=1024)
def _real_folder(path: str) -> str:
    return os.path.realpath(path)


def forget_folders() -> None:
    """Drop the folders resolved so far (:func:`real_path`'s cache)."""
    _real_folder.cache_clear()


def real_path(path: str) -> str:
    """``os.path.realpath(path)``, with the folders' resolution cached.

    A repo's documents and link targets share a few folders; resolving each of them once
    instead of once per file was a tenth of a first sweep. Only the last component is
    looked at afresh (a symlink there is resolved in full).
    """
    folder, _, name = path.rpartition("/")
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    candidate = f"{_real_folder(folder or '/').rstrip('/')}/{name}"
    try:
        if stat.S_ISLNK(os.lstat(candidate).st_mode):
            return os.path.realpath(candidate)
    except (OSError, ValueError):
        pass  # missing: as realpath does, the path as it stands
    return candidate


def read_inside(root: Path, rel: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of the regular file ``rel`` of the work tree, else None.

    None means missing, not a regular file, unreadable, or a symlink that leads out of the
    repo: reading never touches a file outside the root.
    """
    root_real = _real_folder(str(root))
    try:
        real = real_path(f"{root_real}/{rel}")
    except (OSError, ValueError):
        return None
    if not _inside(real, root_real):
        return None
    return read_regular(real, limit)


def read_regular(path: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of ``path`` when it is a regular file, not behind a symlink.

    Opened without blocking, so a named pipe or a device is never waited on; None when the
    file is missing, not regular or unreadable.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return read_prefix(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_prefix(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of an open file (fewer at its end)."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def decode_doc(data: bytes) -> str:
    """A document's text: a BOM dropped, bad bytes replaced (links are still found)."""
    return data.removeprefix(BOM).decode("utf-8", errors="replace")


# -- the workplans folder ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WorkplanFolder:
    """What ``workplans/`` holds: whether it is a folder, its index and its workplans."""

    present: bool  # something named 'workplans' exists at the root
    is_folder: bool  # ... and it is a real folder (not a file, not a symlink)
    index: str | None  # repo-relative path of the index, README.md in any case
    plans: tuple[str, ...]  # repo-relative paths of the workplans, sorted

    def applies(self, require_workplans: bool) -> bool:
        """True when C-03 and the workplan checks apply to the repo."""
        return require_workplans or self.present


def scan_workplans(root: Path) -> WorkplanFolder:
    """List ``workplans/`` once: ``*.md`` entries (not recursive), the index set apart."""
    folder = root / WORKPLANS
    try:
        info = folder.lstat()
    except OSError:
        return WorkplanFolder(present=False, is_folder=False, index=None, plans=())
    if not stat.S_ISDIR(info.st_mode):
        return WorkplanFolder(present=True, is_folder=False, index=None, plans=())
    indexes: list[str] = []
    plans: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower() == INDEX_NAME.lower():
                    if entry.is_file():  # a symlink is vetted when read
                        indexes.append(entry.name)
                elif entry.name.endswith(".md") and entry.is_file():
                    plans.append(f"{WORKPLANS}/{entry.name}")
    except OSError:
        return WorkplanFolder(present=True, is_folder=True, index=None, plans=())
    index = None
    if indexes:
        # The exact spelling wins; otherwise the first in code-point order, for stability.
        name = INDEX_NAME if INDEX_NAME in indexes else min(indexes)
        index = f"{WORKPLANS}/{name}"
    return WorkplanFolder(present=True, is_folder=True, index=index, plans=tuple(sorted(plans)))


# -- Markdown links ---------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r"(`{3,}|~{3,})[ \t]*")
_LIST_ITEM = re.compile(r"([-+*]|[0-9]{1,9}[.)])( +|$)")
_QUOTE = re.compile(r" {0,3}> ?")
_BACKTICKS = re.compile(r"`+")
_ESCAPE = re.compile(r"\\.")
_BRACKET = re.compile(r"[\[\]]")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# What follows '](' : a destination (<...> or a run with balanced parentheses), an optional
# title, then ')'. Every repetition is possessive (Python 3.11+), so a long run of blanks
# or of destination characters is matched once and never re-split on failure: a failed
# attempt costs its length, not its cube.
_SPACE = r"[ \t]*+(?:\n[ \t]*+)?+"
_TITLE = r"(?:\"(?:[^\"\\]|\\.)*+\"|'(?:[^'\\]|\\.)*+'|\((?:[^()\\]|\\.)*+\))"
_INLINE_TAIL = re.compile(
    _SPACE
    + r"(?:<([^<>\n]*+)>|((?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*+\))*+))"
    + rf"(?:[ \t\n]++{_TITLE})?"
    + _SPACE
    + r"\)"
)
# '[label]: destination "title"' on a line of its own; '[^1]:' is a footnote, not a link.
_DEFINITION = re.compile(
    r"^ {0,3}\[(?!\^)(?:[^\[\]\\\n]|\\.){1,999}+\]:[ \t]*+(?:<([^<>\n]*+)>|(\S++))",
    re.MULTILINE,
)
_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _indent(line: str) -> tuple[int, str]:
    """The width of a line's leading whitespace (tabs to 4) and the rest of the line."""
    content = line.lstrip(" \t")
    return len(line[: len(line) - len(content)].expandtabs(4)), content


class _Blocks:
    """Splits Markdown into paragraphs of prose, leaving out code and HTML comments.

    A deliberately small subset of CommonMark: fenced blocks (``` and ~~~), indented code
    (four columns past the enclosing list item, not continuing a paragraph), block quotes,
    list items, HTML comments. Good enough to tell a link from an example of one.
    """

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._lines: list[str] = []
        self._list_indents: list[int] = []
        self._fence: tuple[str, int, int] | None = None  # marker char, length, max indent
        self._in_comment = False

    def feed(self, line: str) -> None:
        # Every block-quote marker at the start of the line, matched in place: cutting them
        # off one slice at a time is quadratic in a line of a million '>'.
        start = 0
        while quote := _QUOTE.match(line, start):
            start = quote.end()
        line = line[start:]
        if self._fence is not None:
            self._feed_fenced(line)
            return
        if self._in_comment:
            end = line.find("-->")
            if end < 0:
                return
            self._in_comment = False
            line = line[end + 3 :]
        if not line.strip():
            self._flush()
            return
        indent, content = _indent(line)
        item = _LIST_ITEM.match(content)
        in_paragraph = bool(self._lines)
        if not in_paragraph or item:  # a lazy continuation line keeps its list item
            while self._list_indents and indent < self._list_indents[-1]:
                self._list_indents.pop()
        base = self._list_indents[-1] if self._list_indents else 0
        if indent - base >= 4 and not in_paragraph:
            return  # an indented code block
        fence = _FENCE_OPEN.fullmatch(content) if indent - base <= 3 else None
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            self._flush()
            marker = fence.group(1)
            self._fence = (marker[0], len(marker), indent + 3)
            return
        if item:
            self._flush()
            spaces = len(item.group(2))
            width = len(item.group(1)) + (spaces if 1 <= spaces <= 4 else 1)
            self._list_indents.append(indent + width)
            content = content[item.end() :]
        self._add_text(content)

    def _feed_fenced(self, line: str) -> None:
        assert self._fence is not None
        char, length, max_indent = self._fence
        indent, content = _indent(line)
        close = _FENCE_CLOSE.fullmatch(content)
        if (
            close
            and indent <= max_indent
            and close.group(1)[0] == char
            and len(close.group(1)) >= length
        ):
            self._fence = None

    def _add_text(self, content: str) -> None:
        # A comment left open runs on over the next lines; cut the line at its first
        # opener past the last '-->', so every '<!--' kept is closed on its own line.
        prose = _blank_code_spans(content)
        start = prose.find("<!--", prose.rfind("-->") + 1)
        if start >= 0:
            self._in_comment = True
            content = content[:start]
        self._lines.append(content)

    def _flush(self) -> None:
        if self._lines:
            self.paragraphs.append("\n".join(self._lines))
            self._lines = []

    def close(self) -> list[str]:
        self._flush()
        return self.paragraphs


def _blank_code_spans(text: str) -> str:
    """The text with each inline code span replaced by spaces of the same length.

    A run of n backticks opens a span that the next run of exactly n backticks closes;
    without one it is literal. Runs are indexed by length, so this stays O(n log n).
    """
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    if len(runs) < 2:
        return text
    by_length: dict[int, list[int]] = {}
    for number, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(number)
    pieces: list[str] = []
    position = 0
    number = 0
    while number < len(runs):
        start, end = runs[number]
        same = by_length[end - start]
        later = bisect.bisect_right(same, number)
        if later == len(same):
            number += 1
            continue
        closing = same[later]
        pieces.append(text[position:start])
        pieces.append(" " * (runs[closing][1] - start))
        position = runs[closing][1]
        number = closing + 1
    pieces.append(text[position:])
    return "".join(pieces)


def _clean_target(raw: str) -> str:
    return _UNESCAPE.sub(r"\1", raw.strip())


def _paragraph_links(paragraph: str) -> list[str]:
    """Link destinations of one paragraph: inline links, images and definitions."""
    text = _COMMENT.sub(lambda m: " " * len(m.group()), _blank_code_spans(paragraph))
    targets: list[str] = []
    for match in _DEFINITION.finditer(text):
        targets.append(_clean_target(match.group(1) or match.group(2) or ""))
    if "](" not in text:
        return targets
    # Brackets are paired on a copy where escapes ('\[') are masked, same length.
    masked = _ESCAPE.sub("\0\0", text)
    openers: list[int] = []
    skip_to = 0
    for bracket in _BRACKET.finditer(masked):
        position = bracket.start()
        if position < skip_to:
            continue
        if bracket.group() == "[":
            openers.append(position)
            continue
        if not openers:
            continue
        openers.pop()
        if masked.startswith("(", position + 1):
            tail = _INLINE_TAIL.match(text, position + 2)
            if tail:
                targets.append(_clean_target(tail.group(1) or tail.group(2) or ""))
                skip_to = tail.end()
    return targets


@functools.lru_cache(maxsize=8)
def markdown_links(text: str) -> tuple[str, ...]:
    """Every link destination of a Markdown text, outside code and HTML comments.

    Inline links and images (``[t](x "title")``, ``![a](<x y.png>)``) and reference
    definitions (``[x]: target``); escapes undone, the title dropped. Cached, because the
    workplans index is read by C-04 and by C-11.
    """
    blocks = _Blocks()
    for line in text.splitlines():
        blocks.feed(line)
    return tuple(target for para in blocks.close() for target in _paragraph_links(para))


def link_path(target: str, base: str) -> str | None:
    """The repo-relative path a relative link points to; None for links not to a file path.

    ``base`` is the folder of the document holding the link (``""`` for the root). External
    links (any ``scheme:``, ``//host``), pure anchors and empty targets give None. The
    fragment and query are dropped, the rest URL-decoded and normalised; a result that
    starts with ``../`` (or is ``..``) leaves the repo.
    """
    if not target or target.startswith(("#", "//")) or _SCHEME.match(target):
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    if path.startswith("/"):
        base, path = "", path.lstrip("/")
    return posixpath.normpath(posixpath.join(base, path)) if path else "."


def leaves_repo(path: str) -> bool:
    """True when a normalised repo-relative path climbs above the root."""
    return path == ".." or path.startswith("../")


# -- the checks -------------------------------------------------------------------------


def _root_doc(
    ctx: RepoContext, check: str, accepted: tuple[str, ...], root_names: set[str]
) -> Finding | None:
    """C-01/C-02: none of the accepted names present, not a file, or empty."""
    name = _readme_name(accepted, root_names, any_case=check == README_CHECK)
    if name not in root_names:
        wanted = {n.lower() for n in accepted}
        others = sorted(n for n in root_names if n.lower() in wanted)
        found = ", ".join(repr(n) for n in others)
        if len(accepted) > 1:
            message = f"no README at the root (one of {', '.join(accepted)})"
            hint = f"; found {found}, in another case" if others else ""
        else:
            message = f"{name} is missing"
            hint = f" (found {found}; the name must be {name})" if others else ""
        return Finding(check=check, message=message + hint, path=name)
    data = read_inside(ctx.root, name, DOC_READ_LIMIT)
    if data is None:
        return Finding(check=check, message=f"{name} is not a readable file", path=name)
    if not data.removeprefix(BOM).strip():
        return Finding(check=check, message=f"{name} is empty", path=name)
    return None


def _workplans_folder(folder: WorkplanFolder) -> Finding | None:
    """C-03: no ``workplans/`` folder, or no index in it."""
    if not folder.present:
        return Finding(check="C-03", message="workplans/ folder is missing", path=WORKPLANS)
    if not folder.is_folder:
        return Finding(check="C-03", message="workplans is not a folder", path=WORKPLANS)
    if folder.index is None:
        return Finding(
            check="C-03",
            message="workplans/ has no index README.md",
            path=f"{WORKPLANS}/{INDEX_NAME}",
        )
    return None


def _exists_inside(root_real: str, path: str) -> bool:
    """True when ``path`` names a file or folder of the work tree, without leaving it."""
    if "\0" in path:
        return False
    real = real_path(f"{root_real}/{path}")
    return _inside(real, root_real) and Path(real).exists()


def _covered(path: str, covered: set[str]) -> bool:
    return any(path == gone or path.startswith(gone + "/") for gone in covered)


def _broken_links(ctx: RepoContext, doc: str, root_real: str, covered: set[str]) -> list[Finding]:
    """C-04 for one document: each distinct relative link that points to no file.

    A link to a path that C-01..C-03 already report missing (``AGENTS.md``, the workplans
    folder or index) is left to that finding: one defect, one finding.
    """
    data = read_inside(ctx.root, doc, DOC_READ_LIMIT)
    if data is None:
        return []
    base = posixpath.dirname(doc)
    findings: list[Finding] = []
    seen: set[str] = set()  # resolved paths: 'x.md' and './x.md' are one broken link
    text = decode_doc(data)
    for target in markdown_links(text):
        path = link_path(target, base)
        if path is None or path in seen:
            continue
        seen.add(path)
        if leaves_repo(path):
            message = f"link {target!r} points outside the repo"
        elif not _exists_inside(root_real, path) and not _covered(path, covered):
            message = f"link {target!r} points to no file"
        else:
            continue
        line, line_hash = _line_of(text, target)
        where = f" (line {line})" if line is not None else ""
        findings.append(
            Finding(check="C-04", message=message + where, path=doc, line=line, line_hash=line_hash)
        )
    return findings


def _line_of(text: str, target: str) -> tuple[int | None, str | None]:
    """The 1-based line where ``target`` first appears in ``text``, and a hash of that line.

    The target is searched as written after ``](`` or ``]:`` first, then anywhere; a target
    spelled with escapes that were undone is not found (None).
    """
    at = -1
    for lead in ("](", "]: ", "]:", "](<", "]: <"):
        at = text.find(lead + target)
        if at >= 0:
            break
    if at < 0:
        at = text.find(target)
    if at < 0:
        return None, None
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    line = text[start : end if end >= 0 else len(text)].strip()
    digest = hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return text.count("\n", 0, at) + 1, digest


def run(ctx: RepoContext) -> list[Finding]:
    """Findings of C-01..C-04 for one repo."""
    enabled = ctx.settings.enabled
    findings: list[Finding] = []
    root_names: set[str] = set()
    if enabled("C-01") or enabled("C-02") or enabled("C-04"):
        try:
            root_names = {entry.name for entry in ctx.root.iterdir()}
        except OSError:
            root_names = set()
    readme = _readme_name(ctx.settings.readme_names, root_names, any_case=True)
    wanted = ((README_CHECK, ctx.settings.readme_names), ("C-02", ("AGENTS.md",)))
    for check, accepted in wanted:
        if enabled(check) and (finding := _root_doc(ctx, check, accepted, root_names)):
            findings.append(finding)

    folder = scan_workplans(ctx.root) if enabled("C-03") or enabled("C-04") else None
    if (
        folder is not None
        and enabled("C-03")
        and folder.applies(ctx.settings.require_workplans)
        and (found := _workplans_folder(folder))
    ):
        findings.append(found)

    if enabled("C-04"):
        # C-04 reads Markdown: a README.rst or a plain README holds no Markdown links.
        root_docs = (readme, *(name for _, name in _ROOT_DOCS[1:]))
        docs = [name for name in root_docs if name in root_names and _markdown(name)]
        if folder is not None and folder.index is not None:
            docs.append(folder.index)
        root_real = _real_folder(str(ctx.root))
        covered = {finding.path for finding in findings if finding.path is not None}
        for doc in docs:
            findings.extend(_broken_links(ctx, doc, root_real, covered))
    return findings
