"""The workplans family: C-05..C-11, judged on ``workplans/*.md`` less the index.

How one defect stays one finding (section 3 of ``CONTRACT.md``): C-06..C-10 look only at
workplans whose front matter parses to a mapping (C-05 covers the rest); C-07, C-09 and
C-10 only at a field that is present and usable (C-06 covers the others); C-08 reports each
shared id once, naming every file; C-11 runs only where the index exists.

Decisions where the contract is silent:

- Front matter opens with a ``---`` line and closes at the next ``---`` or ``...`` line,
  trailing blanks allowed. A UTF-8 byte-order mark and CRLF line endings are accepted (as
  Jekyll and Hugo accept them); only the front matter must be UTF-8, not the body. Only the
  first :data:`FRONT_MATTER_LIMIT` bytes are read: a block not closed by then is unclosed,
  and flow collections nested deeper than :data:`MAX_FLOW_DEPTH` are refused unparsed.
- Field values that YAML types (ids as ints, dates, booleans) are compared as text; null,
  an empty or blank string, and a list or mapping count as "lacking" for C-06.
- C-07 uses ``re.search``, so the pattern's own anchors decide (the default is anchored).
- C-10: the file name must start with the id followed by the end of the name or by a
  character that is not a letter or digit: ``X-WP-0001-plan.md`` fits ``X-WP-0001``,
  ``X-WP-00012.md`` does not.
- C-11 is reported per workplan that the index does not name: a plan is indexed when the
  index links to it, or holds its file name (with or without ``.md``) or its ``id`` as a
  word of its own anywhere in its text (a table of plans in code spans; issue 21).
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from statehub.checks import Finding, RepoContext
from statehub.checks.docs import (
    BOM,
    DOC_READ_LIMIT,
    WorkplanFolder,
    decode_doc,
    link_path,
    markdown_links,
    read_inside,
    scan_workplans,
)

# Bytes of a workplan read to find its front matter. Real front matter is well under 2 KiB;
# the bound caps what pure-Python YAML may spend on a hostile file (~0.1 s at 16 KiB).
FRONT_MATTER_LIMIT = 16 * 1024
# PyYAML's scanner is quadratic in flow nesting ('[[[[...'): refuse deep nesting up front.
MAX_FLOW_DEPTH = 64
REQUIRED_FIELDS = ("id", "title", "status")
_PARSED_CHECKS = ("C-06", "C-07", "C-08", "C-09", "C-10")

_OPEN = re.compile(rb"---[ \t]*\r?\n")
_CLOSE = re.compile(rb"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)
_FLOW_BRACKET = re.compile(r"[\[\]{}]")
# Errors yaml.safe_load raises on hostile input besides YAMLError: a bad date (2024-13-45)
# is a ValueError (deep nesting, a RecursionError, is caught on its own).
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError)
# libyaml's parser when PyYAML was built with it (the wheels are): the same safe constructor,
# about ten times faster than the pure-Python scanner, which was most of a first sweep.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, kw_only=True)
class Workplan:
    """One workplan whose front matter parsed: its path and its fields as text."""

    path: str
    fields: dict[str, str | None]  # None: missing, null, blank or not a single value
    unusable: dict[str, str]  # field -> why it cannot be used (for C-06's message)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


class _Unparsable(Exception):
    """A workplan's front matter does not parse to a mapping; the message says why."""


FrontMatterError = _Unparsable

_LAST_PARSE: dict[str, Any] = {}
"""What the last :func:`run` parsed: ``root``, and by path each workplan's front matter (a
dict) or why it does not parse (the C-05 reason). The workplan registry takes it
(:func:`take_parsed`) instead of reading every workplan a second time."""


def take_parsed(root: Path) -> dict[str, dict[Any, Any] | str] | None:
    """The front matter the last :func:`run` parsed of ``root``'s workplans, then forgotten;
    None when it parsed none of that repo (its checks disabled, or another repo)."""
    last = dict(_LAST_PARSE)
    _LAST_PARSE.clear()
    plans: dict[str, dict[Any, Any] | str] | None = last.get("plans")
    return plans if last.get("root") == str(root) else None


def _front_matter_text(data: bytes) -> str:
    """The YAML between the opening and the closing line of a file's first bytes."""
    data = data.removeprefix(BOM)
    if not data.strip():
        raise _Unparsable("is empty")
    opening = _OPEN.match(data)
    if opening is None:
        raise _Unparsable("does not open with a '---' front matter line")
    closing = _CLOSE.search(data, opening.end())
    if closing is None:
        raise _Unparsable("has a front matter block that is never closed")
    try:
        return data[opening.end() : closing.start()].decode("utf-8")
    except UnicodeDecodeError:
        raise _Unparsable("has front matter that is not valid UTF-8") from None


def _flow_depth_exceeds(text: str, limit: int) -> bool:
    """True when ``[`` and ``{`` nest deeper than ``limit`` (quotes are not considered)."""
    depth = 0
    for bracket in _FLOW_BRACKET.finditer(text):
        depth = depth + 1 if bracket.group() in "[{" else max(depth - 1, 0)
        if depth > limit:
            return True
    return False


def _front_matter(data: bytes) -> dict[Any, Any]:
    """The front matter of a file's first bytes as a mapping. Raises _Unparsable."""
    text = _front_matter_text(data)
    if _flow_depth_exceeds(text, MAX_FLOW_DEPTH):
        raise _Unparsable("has front matter nested too deeply")
    try:
        parsed = yaml.load(text, Loader=_LOADER)  # noqa: S506  # a safe loader
    except RecursionError:
        raise _Unparsable("has front matter nested too deeply") from None
    except _YAML_ERRORS as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own depth limit
            raise _Unparsable("has front matter nested too deeply") from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _Unparsable(f"has front matter that is not valid YAML: {reason}") from None
    if not isinstance(parsed, dict):
        kind = "nothing" if parsed is None else type(parsed).__name__
        raise _Unparsable(f"has front matter that is not a mapping (it is {kind})")
    return parsed


def front_matter(data: bytes) -> dict[Any, Any]:
    """The front matter of a workplan's first bytes, parsed as C-05 parses it.

    For readers other than the checks (the workplan registry, :mod:`statehub.planread`).
    Raises :class:`FrontMatterError`, whose message says why as C-05 words it.
    """
    return _front_matter(data)


def as_text(value: Any) -> tuple[str | None, str | None]:
    """A front-matter value as text, or (None, why not), as C-06 judges it."""
    return _as_text(value)


def _as_text(value: Any) -> tuple[str | None, str | None]:
    """A field value as text, or (None, why not). Only scalars are turned into text."""
    if value is None:
        return None, "missing"
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, str | int | float | dt.date):  # dt.datetime is a dt.date
        text = str(value)
        return (text, None) if text.strip() else (None, "empty")
    # Lists, mappings, sets, !!binary: never str() them (an alias bomb would explode).
    return None, f"a {type(value).__name__}, not a single value"


def _workplan(path: str, front: dict[Any, Any]) -> Workplan:
    fields: dict[str, str | None] = {}
    unusable: dict[str, str] = {}
    for field in REQUIRED_FIELDS:
        text, why = _as_text(front.get(field))
        fields[field] = text
        if why is not None:
            unusable[field] = why
    return Workplan(path=path, fields=fields, unusable=unusable)


def _lacking(plan: Workplan) -> Finding:
    """C-06: one finding naming every required field that is unusable."""
    parts = [
        f if why in ("missing", "empty") else f"{f} ({why})" for f, why in plan.unusable.items()
    ]
    return Finding(check="C-06", message="front matter lacks " + ", ".join(parts), path=plan.path)


def _starts_with_id(name: str, wp_id: str) -> bool:
    if not name.startswith(wp_id):
        return False
    rest = name[len(wp_id) :]
    return rest == "" or not rest[0].isalnum()


def _field_findings(ctx: RepoContext, plan: Workplan) -> list[Finding]:
    """C-07, C-09 and C-10 on one parsed workplan, each only where its field is usable."""
    enabled = ctx.settings.enabled
    findings: list[Finding] = []
    wp_id, status = plan.fields["id"], plan.fields["status"]
    if enabled("C-07") and wp_id is not None:
        pattern = ctx.settings.workplan_id_pattern
        if not re.search(pattern, wp_id):  # re caches the compiled pattern
            findings.append(
                Finding(
                    check="C-07",
                    message=f"id {wp_id!r} does not match the pattern {pattern!r}",
                    path=plan.path,
                )
            )
    if enabled("C-09") and status is not None and status not in ctx.settings.workplan_statuses:
        findings.append(
            Finding(check="C-09", message=f"status {status!r} is not allowed", path=plan.path)
        )
    if enabled("C-10") and wp_id is not None and not _starts_with_id(plan.name, wp_id):
        findings.append(
            Finding(
                check="C-10",
                message=f"file name {plan.name!r} does not start with its id {wp_id!r}",
                path=plan.path,
            )
        )
    return findings


def _shared_ids(plans: list[Workplan]) -> list[Finding]:
    """C-08: one finding per id that two or more workplans share, naming them all."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for plan in plans:
        wp_id = plan.fields["id"]
        if wp_id is not None:
            by_id[wp_id].append(plan.path)
    return [
        Finding(
            check="C-08",
            message=f"id {wp_id!r} is shared by {', '.join(paths)}",
            path=paths[0],
        )
        for wp_id, paths in sorted(by_id.items(), key=lambda item: item[1][0])
        if len(paths) > 1
    ]


def _parse_all(ctx: RepoContext, folder: WorkplanFolder) -> tuple[list[Workplan], list[Finding]]:
    """Read each workplan's front matter once: the parsed ones, and C-05 for the rest."""
    plans: list[Workplan] = []
    unparsed: list[Finding] = []
    parsed: dict[str, dict[Any, Any] | str] = {}  # for take_parsed
    for path in folder.plans:
        try:
            data = read_inside(ctx.root, path, FRONT_MATTER_LIMIT)
            if data is None:
                raise _Unparsable("cannot be read (not a regular file inside the repo)")
            front = parsed[path] = _front_matter(data)
            plans.append(_workplan(path, front))
        except _Unparsable as exc:
            parsed[path] = str(exc)
            if ctx.settings.enabled("C-05"):
                unparsed.append(Finding(check="C-05", message=f"workplan {exc}", path=path))
    _LAST_PARSE.update(root=str(ctx.root), plans=parsed)
    return plans, unparsed


def _named(text: str, name: str) -> bool:
    """True when ``name`` stands in ``text`` as a word of its own: not inside a longer
    name (``X-WP-0001`` is not named by ``X-WP-00012``, nor ``plan`` by ``my-plan``)."""
    if not name:
        return False
    pattern = rf"(?<![A-Za-z0-9_\-]){re.escape(name)}(?![A-Za-z0-9_\-])"
    return re.search(pattern, text) is not None


def _unindexed(
    ctx: RepoContext, index: str, paths: tuple[str, ...], ids: dict[str, str]
) -> list[Finding]:
    """C-11: each workplan that the index does not name (issue 21).

    A plan is named by a link that resolves to it, or anywhere in the index's text (a
    table, a code span) by its file name, with or without ``.md``, or by its ``id``.
    """
    data = read_inside(ctx.root, index, DOC_READ_LIMIT)
    text = decode_doc(data or b"")
    base = posixpath.dirname(index)
    linked: set[str] = set()
    for target in markdown_links(text):
        path = link_path(target, base)
        if path is not None:
            linked.add(path)
    findings: list[Finding] = []
    for path in paths:
        name = posixpath.basename(path)
        names = (name, name.removesuffix(".md"), ids.get(path, ""))
        if path in linked or any(_named(text, candidate) for candidate in names):
            continue
        message = f"not named in {index} (no link to it, nor its file name or id)"
        findings.append(Finding(check="C-11", message=message, path=path))
    return findings


def run(ctx: RepoContext) -> list[Finding]:
    """Findings of C-05..C-11 for one repo; none where workplans do not apply."""
    _LAST_PARSE.clear()
    enabled = ctx.settings.enabled
    want_parse = any(enabled(check) for check in ("C-05", *_PARSED_CHECKS))
    if not (want_parse or enabled("C-11")):
        return []
    folder = scan_workplans(ctx.root)
    if not folder.applies(ctx.settings.require_workplans) or not folder.plans:
        return []
    plans, findings = _parse_all(ctx, folder)  # C-11 reads the ids too
    if any(enabled(check) for check in _PARSED_CHECKS):
        for plan in plans:
            if enabled("C-06") and plan.unusable:
                findings.append(_lacking(plan))
            findings.extend(_field_findings(ctx, plan))
        if enabled("C-08"):
            findings.extend(_shared_ids(plans))
    if enabled("C-11") and folder.index is not None:
        ids = {plan.path: plan.fields["id"] or "" for plan in plans}
        findings.extend(_unindexed(ctx, folder.index, folder.plans, ids))
    return findings
