"""A repo's workplans as the registry records them (runs in a worker only).

For each ``workplans/*.md`` but the index: its path, ``id``, ``title``, ``status``, the other
front-matter keys whose values are plain scalars (text, numbers, dates, booleans) as text,
and the finding that keeps it from the registry's full record: C-05 when its front matter
does not parse, C-06 when it lacks a usable ``id``, ``title`` or ``status``. The front matter
is read and parsed exactly as the workplan checks read it (:mod:`statehub.checks.workplans`).

What a hostile repo can make of it is bounded: :data:`MAX_FIELDS` keys per plan, values cut
at :data:`MAX_VALUE` characters, at most :data:`MAX_PLANS` plans per repo; lists, mappings
and other non-scalar values are left out (never turned into text: an alias bomb).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statehub.checks import printable
from statehub.checks.docs import read_inside, scan_workplans
from statehub.checks.workplans import (
    FRONT_MATTER_LIMIT,
    REQUIRED_FIELDS,
    FrontMatterError,
    as_text,
    front_matter,
    take_parsed,
)

MAX_FIELDS = 32
MAX_VALUE = 500
MAX_PLANS = 5000


def read_plans(root: Path) -> list[dict[str, Any]]:
    """Every workplan of the work tree at ``root``, in path order, as JSON-ready dicts.

    Each has ``path``, ``id``, ``title``, ``status`` (None when unusable), ``fields`` (the
    other scalar keys) and ``finding`` (``{"check", "message"}`` or None). What the workplan
    checks just parsed of this repo is taken as they parsed it, not read again.
    """
    parsed = take_parsed(root)
    if parsed is None:
        parsed = {path: _parse(root, path) for path in scan_workplans(root).plans[:MAX_PLANS]}
    return [_plan(path, parsed[path]) for path in sorted(parsed)[:MAX_PLANS]]


def _parse(root: Path, path: str) -> dict[Any, Any] | str:
    """A workplan's front matter, or why it does not parse (C-05's words)."""
    data = read_inside(root, path, FRONT_MATTER_LIMIT)
    if data is None:
        return "cannot be read (not a regular file inside the repo)"
    try:
        return front_matter(data)
    except FrontMatterError as exc:
        return str(exc)


def _plan(path: str, front: dict[Any, Any] | str) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "path": printable(path),
        "id": None,
        "title": None,
        "status": None,
        "fields": {},
        "finding": None,
    }
    if isinstance(front, str):
        plan["finding"] = _c05(front)
        return plan
    lacking: list[str] = []
    for key in REQUIRED_FIELDS:
        text, why = as_text(front.get(key))
        plan[key] = None if text is None else _cut(text)
        if why is not None:
            lacking.append(key)
    fields: dict[str, str] = {}
    for key, value in front.items():
        if len(fields) >= MAX_FIELDS:
            break
        if not isinstance(key, str) or key in REQUIRED_FIELDS:
            continue
        text, _ = as_text(value)
        if text is not None:
            fields[_cut(key)] = _cut(text)
    plan["fields"] = fields
    if lacking:
        plan["finding"] = {
            "check": "C-06",
            "message": "front matter lacks " + ", ".join(lacking),
        }
    return plan


def _c05(reason: str) -> dict[str, str]:
    return {"check": "C-05", "message": printable(f"workplan {reason}")}


def _cut(text: str) -> str:
    return printable(text[:MAX_VALUE])
