"""The workplan registry's rules: how a repo's workplans as read reconcile with its record.

Pure functions over plain data; the store applies what they decide
(:mod:`statehub.store.workplans`) and the sweep calls it with each repo it read again.

A plan is known by its key within its repo: its ``id`` when the id is usable and no
other plan of the repo has it first (in path order), else its path. So a file renamed with
the same ``id`` is one plan ``moved``, not one ``removed`` and one ``added``; a plan whose
front matter is broken (no usable id) is still recorded, under its path, with its finding.

Changes, one per plan and sweep that saw it change: ``added``, ``changed`` (its status,
title, other fields or finding), ``moved`` (its path, perhaps more) and ``removed`` (gone
from its repo's files, or its repo gone from the fleet). Each has a one-line ``summary``
such as ``STATE-WP-0064: active -> finished``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from statehub.timefmt import iso

KINDS = ("added", "changed", "moved", "removed")
LEFT_FLEET = "its repo left the fleet"
_AGE = re.compile(r"^([0-9]{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def changed_since(text: str, now: datetime) -> str:
    """The ISO-8601 UTC moment that ``--changed-since`` / ``changed_since`` names.

    An age (``30m``, ``12h``, ``7d``, ``2w``) counts back from ``now``; a date
    (``2026-12-01``) or an ISO-8601 moment is taken as it is (UTC when it has no zone).
    Raises ValueError with a message for a person.
    """
    age = _AGE.match(text.strip())
    if age:
        moment = now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{text!r} is neither an age (30m, 12h, 7d, 2w) nor a date (2026-12-01)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return iso(moment)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One workplan as the registry records it."""

    repo: str
    key: str
    id: str | None
    title: str | None
    status: str | None
    path: str
    fields: Mapping[str, str] = field(default_factory=dict)
    finding: Mapping[str, str] | None = None
    first_seen: str = ""
    changed_at: str = ""

    def label(self) -> str:
        """How a person names it: its id, else its path."""
        return self.id or self.path

    def same_content(self, other: Plan) -> bool:
        return (
            self.id == other.id
            and self.title == other.title
            and self.status == other.status
            and self.path == other.path
            and dict(self.fields) == dict(other.fields)
            and (dict(self.finding) if self.finding else None)
            == (dict(other.finding) if other.finding else None)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "id": self.id,
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "path": self.path,
            "fields": dict(self.fields),
            "finding": dict(self.finding) if self.finding else None,
            "first_seen": self.first_seen,
            "changed_at": self.changed_at,
        }


@dataclass(frozen=True, kw_only=True)
class Change:
    """One change of one plan, seen by one sweep."""

    repo: str
    key: str
    plan_id: str | None
    kind: str  # one of KINDS
    path: str
    old_path: str | None
    old_status: str | None
    new_status: str | None
    summary: str
    # 'added' by the repo's first read into the registry: the plan entered no status then
    # (the alerts of [notify] workplan_statuses skip it: Store.workplans_entering).
    first_read: bool = False


@dataclass(kw_only=True)
class Reconciled:
    """What to write for one repo: plans to insert or replace, and its changes (a plan
    ``removed`` is deleted)."""

    upsert: list[Plan] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(KINDS, 0)
        for change in self.changes:
            found[change.kind] += 1
        return found


def keyed(repo: str, read: Sequence[Mapping[str, Any]], *, now: str) -> dict[str, Plan]:
    """The plans read from a repo's files (:func:`statehub.planread.read_plans`), by key."""
    plans: dict[str, Plan] = {}
    ids: set[str] = set()
    for item in sorted(read, key=lambda item: str(item["path"])):
        wp_id = item.get("id")
        path = str(item["path"])
        if wp_id and wp_id not in ids:
            ids.add(wp_id)
            key = str(wp_id)
        else:
            key = path
        if key in plans:  # a path that is also another plan's id: keep both apart
            key = f"{path}#{len(plans)}"
        plans[key] = Plan(
            repo=repo,
            key=key,
            id=None if wp_id is None else str(wp_id),
            title=item.get("title"),
            status=item.get("status"),
            path=path,
            fields=dict(item.get("fields") or {}),
            finding=item.get("finding") or None,
            first_seen=now,
            changed_at=now,
        )
    return plans


def reconcile(
    repo: str,
    recorded: Mapping[str, Plan],
    read: Sequence[Mapping[str, Any]],
    *,
    now: str,
    first_read: bool = False,
) -> Reconciled:
    """Make ``repo``'s record (``recorded``, by key) hold exactly the plans ``read``.

    ``first_read``: the repo had never been read into the registry (its ``added`` changes
    are marked so, and alert nobody).
    """
    current = keyed(repo, read, now=now)
    out = Reconciled()
    for key, plan in current.items():
        before = recorded.get(key)
        if before is None:
            out.upsert.append(plan)
            out.changes.append(_added(plan, first_read))
            continue
        if plan.same_content(before):
            continue
        kept = replace(plan, first_seen=before.first_seen, changed_at=now)
        out.upsert.append(kept)
        out.changes.append(_changed(before, kept))
    for key, before in recorded.items():
        if key not in current:
            out.changes.append(_removed(before, None))
    return out


def leave(recorded: Mapping[str, Plan]) -> Reconciled:
    """A repo gone from the fleet: each of its plans removed (their history stays)."""
    return Reconciled(changes=[_removed(before, LEFT_FLEET) for before in recorded.values()])


def _added(plan: Plan, first_read: bool) -> Change:
    status = plan.status or "no status"
    finding = f"; {plan.finding['check']}" if plan.finding else ""
    return Change(
        repo=plan.repo,
        key=plan.key,
        plan_id=plan.id,
        kind="added",
        path=plan.path,
        old_path=None,
        old_status=None,
        new_status=plan.status,
        summary=f"{plan.label()}: added ({status}{finding})",
        first_read=first_read,
    )


def _changed(before: Plan, after: Plan) -> Change:
    parts: list[str] = []
    if before.path != after.path:
        parts.append(f"moved {before.path} -> {after.path}")
    if before.status != after.status:
        parts.append(f"{before.status or 'no status'} -> {after.status or 'no status'}")
    named = [
        name
        for name, old, new in (
            ("title", before.title, after.title),
            ("finding", before.finding, after.finding),
        )
        if old != new
    ]
    keys = sorted(set(before.fields) | set(after.fields))
    named.extend(key for key in keys if before.fields.get(key) != after.fields.get(key))
    if named:
        parts.append(", ".join(named) + " changed")
    return Change(
        repo=after.repo,
        key=after.key,
        plan_id=after.id,
        kind="moved" if before.path != after.path else "changed",
        path=after.path,
        old_path=before.path if before.path != after.path else None,
        old_status=before.status,
        new_status=after.status,
        summary=f"{after.label()}: {'; '.join(parts)}",
    )


def _removed(before: Plan, why: str | None) -> Change:
    was = before.status or "no status"
    return Change(
        repo=before.repo,
        key=before.key,
        plan_id=before.id,
        kind="removed",
        path=before.path,
        old_path=None,
        old_status=before.status,
        new_status=None,
        summary=f"{before.label()}: removed (was {was}{'; ' + why if why else ''})",
    )
