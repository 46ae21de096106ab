"""The compact encoding of events: the two long lists of a detail stored apart (migration 3).

A whole-fleet event names every repo; stored whole, a year of events would repeat the
fleet's entries tens of thousands of times. :func:`compact_detail` keeps each distinct
``repos_processed`` entry and each distinct fleet once (``sweep_entries``,
``repo_lists``), and the event refers to them; :func:`read_events` makes details whole
again in Python, as the view ``progress_events`` does in SQL for outside tools.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from statehub.contract import Detail
from statehub.store.records import ProgressEvent

# The columns of sweep_events from which read_events() rebuilds whole details in Python (the
# view progress_events does the same in SQL, for outside tools, much more slowly).
STORED_DETAIL = "detail, entries, fleet, clean_bits"


def detail_field(key: str) -> str:
    """The SQL of one key of an event's stored ``detail`` (a name of :class:`Detail`): a
    JSON boolean comes back as 0/1, a missing key as None."""
    return f"json_extract(detail, '$.{key}')"


_ENTRY_KEYS = ["repo", "head", "reassessed", "findings"]
# An entry whose findings the event's bound cut (issue 25, migration 8).
_CUT_ENTRY_KEYS = [*_ENTRY_KEYS, "findings_total", "truncated"]

StoredEntry = tuple[str, str | None, bool, str, int | None]
"""One entry as stored apart: repo, head, reassessed, findings JSON, findings_total (None
for an entry that lists every finding of its repo)."""


@dataclass(frozen=True, kw_only=True)
class CompactDetail:
    """An event's detail with its two long lists stored apart (migration 3)."""

    head: dict[str, Any]  # the detail, ``repos_processed`` and ``skipped_clean`` empty
    entries: list[StoredEntry]
    fleet: list[str]  # every repo the event names, in name order
    clean_bits: str  # which of them are in skipped_clean: hex, 4 repos a digit, low bit first


def compact_detail(detail: dict[str, Any]) -> CompactDetail | None:
    """The compact form of ``detail``, or None when the view could not give it back exactly.

    It applies when every ``repos_processed`` entry is ``{repo, head, reassessed,
    findings}`` in that order (with ``findings_total`` and ``"truncated": true`` after them
    on a cut entry), every repo is named once, and ``skipped_clean`` is in name order: then
    the view rebuilds both lists from the entries, the fleet (every repo the event names)
    and a bit set of the clean ones. Anything else is stored whole.
    """
    processed = detail.get(Detail.REPOS_PROCESSED)
    lists = [
        detail.get(key)
        for key in (Detail.SKIPPED_CLEAN, Detail.SKIPPED_MISSING, Detail.SKIPPED_BUDGET)
    ]
    if not isinstance(processed, list) or not all(isinstance(names, list) for names in lists):
        return None
    entries = [compact_entry(entry) for entry in processed]
    clean: list[Any] = lists[0] or []
    if not all(isinstance(name, str) for name in clean):
        return None
    named = [entry[0] for entry in entries if entry is not None]
    named += [name for names in lists for name in names or []]
    fleet = sorted(name for name in named if isinstance(name, str))
    exact = (
        None not in entries
        and len(fleet) == len(named) == len(set(named))
        and clean == sorted(clean)  # the view gives it back in name order
    )
    if not exact:
        return None
    chosen = set(clean)
    digits = [0] * ((len(fleet) + 3) // 4)
    for index, name in enumerate(fleet):
        if name in chosen:
            digits[index // 4] |= 1 << (index % 4)
    head_detail = {**detail, Detail.REPOS_PROCESSED: [], Detail.SKIPPED_CLEAN: []}
    return CompactDetail(
        head=head_detail,
        entries=[entry for entry in entries if entry is not None],
        fleet=fleet,
        clean_bits="".join(f"{digit:x}" for digit in digits),
    )


def compact_entry(entry: Any) -> StoredEntry | None:
    """One ``repos_processed`` entry as stored apart, or None when it has another shape."""
    if not (isinstance(entry, dict) and list(entry) in (_ENTRY_KEYS, _CUT_ENTRY_KEYS)):
        return None
    repo, head, reassessed, findings = (entry[key] for key in _ENTRY_KEYS)
    total = entry.get("findings_total")
    cut_as_stored = "truncated" not in entry or (
        entry["truncated"] is True and type(total) is int  # not a bool: the view gives ints
    )
    if (
        isinstance(repo, str)
        and (head is None or isinstance(head, str))
        and isinstance(reassessed, bool)
        and isinstance(findings, list)
        and cut_as_stored
    ):
        return repo, head, reassessed, to_json(findings), total
    return None


def store_lists(
    connection: sqlite3.Connection, compact: CompactDetail
) -> tuple[list[list[int]], int]:
    """Store the entries and the fleet of one event once each; their references."""
    refs = []
    for repo, head, reassessed, findings, total in compact.entries:
        # A whole entry's digest is what it was before migration 8, so it still meets the
        # entries stored then; a cut one's holds its total.
        held = [repo, head, findings] if total is None else [repo, head, findings, total]
        digest = hashlib.sha256(to_json(held).encode()).hexdigest()
        row = connection.execute(
            "INSERT INTO sweep_entries (digest, repo, head, findings, findings_total,"
            " last_event) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (digest) DO UPDATE"
            " SET repo = repo RETURNING id",
            (digest, repo, head, findings, total),
        ).fetchone()
        refs.append([int(row[0]), int(reassessed)])
    names = to_json(compact.fleet)
    row = connection.execute(
        "INSERT INTO repo_lists (digest, names, last_event) VALUES (?, ?, 0)"
        " ON CONFLICT (digest) DO UPDATE SET digest = digest RETURNING id",
        (hashlib.sha256(names.encode()).hexdigest(), names),
    ).fetchone()
    return refs, int(row[0])


def mark_used(
    connection: sqlite3.Connection, event_id: int, entry_ids: list[int], fleet: int | None
) -> None:
    """Record ``event_id`` as the last event naming these entries and this fleet (pruning
    drops what no remaining event names)."""
    for chunk in chunks(entry_ids):
        connection.execute(
            f"UPDATE sweep_entries SET last_event = ? WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
            (event_id, *chunk),
        )
    connection.execute("UPDATE repo_lists SET last_event = ? WHERE id = ?", (event_id, fleet))


def read_events(
    connection: sqlite3.Connection, rows: Sequence[Sequence[Any]]
) -> list[ProgressEvent]:
    """Events from rows ``(id, event_type, created_at, detail, entries, fleet, clean_bits)``,
    each detail made whole again: what the view progress_events gives, without its cost."""
    wanted_entries: set[int] = set()
    wanted_fleets: set[int] = set()
    parsed = []
    for row in rows:
        refs = None if row[4] is None else json.loads(row[4])
        parsed.append((row, refs))
        if refs is not None:
            wanted_entries.update(int(ref[0]) for ref in refs)
            wanted_fleets.add(int(row[5]))
    entries: dict[int, tuple[str, str | None, Any, int | None]] = {}
    for chunk in chunks(sorted(wanted_entries)):
        for entry_id, repo, head, findings, total in connection.execute(
            "SELECT id, repo, head, findings, findings_total FROM sweep_entries"  # noqa: S608
            f" WHERE id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            entries[int(entry_id)] = (repo, head, json.loads(findings), total)
    fleets: dict[int, list[str]] = {}
    for chunk in chunks(sorted(wanted_fleets)):
        for fleet_id, names in connection.execute(
            f"SELECT id, names FROM repo_lists WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        ):
            fleets[int(fleet_id)] = json.loads(names)
    events = []
    for row, refs in parsed:
        detail = json.loads(row[3])
        if refs is not None:
            processed = []
            for entry_id, reassessed in refs:
                repo, head, findings, total = entries[int(entry_id)]
                entry = {
                    "repo": repo,
                    "head": head,
                    "reassessed": bool(reassessed),
                    "findings": findings,
                }
                if total is not None:  # cut by the event's bound (issue 25)
                    entry |= {"findings_total": total, "truncated": True}
                processed.append(entry)
            bits = str(row[6])
            detail[Detail.REPOS_PROCESSED] = processed
            detail[Detail.SKIPPED_CLEAN] = [
                name
                for index, name in enumerate(fleets[int(row[5])])
                if int(bits[index // 4], 16) >> (index % 4) & 1
            ]
        events.append(ProgressEvent(id=row[0], event_type=row[1], created_at=row[2], detail=detail))
    return events


def chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def events_by_id(connection: sqlite3.Connection, ids: list[int]) -> list[ProgressEvent]:
    """The events with these ids, their details made whole."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = connection.execute(
        f"SELECT id, event_type, created_at, {STORED_DETAIL} FROM sweep_events"  # noqa: S608
        f" WHERE id IN ({marks})",
        ids,
    ).fetchall()
    return read_events(connection, rows)
