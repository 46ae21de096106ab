"""A finding's identity across assessments: the rule that says which findings are new.

"New" has one meaning on every surface (the event, the API, ``status``, the page, alerts):
new since the repo's previous assessment. It is decided once, when an assessment is
saved, and stored with the finding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statehub.store import Assessment


def _place(finding: dict[str, Any]) -> tuple[str, str | None]:
    return finding["check"], finding.get("path")


def mark_new(
    findings: Sequence[dict[str, Any]], previous: Assessment | None, assessed_at: str
) -> list[dict[str, Any]]:
    """``findings`` with ``new`` and ``first_seen`` set against the repo's previous assessment.

    A finding is the one of the previous assessment with the same check, path and message;
    or, where each holds exactly one finding of that check and path, the same check and
    path (a message that only counts, ``3 blocks in all``, may change without the finding
    being new). A finding with no earlier one is new and first seen now; one that had an
    earlier one keeps its first sighting. A repo assessed for the first time has nothing
    new (a first sweep would otherwise mark the whole fleet), though its findings are first
    seen now.
    """
    earlier_ones = list(previous.findings) if previous else []
    exact = {(*_place(item), item["message"]): item for item in earlier_ones}
    places_before = Counter(_place(item) for item in earlier_ones)
    places_now = Counter(_place(item) for item in findings)
    single = {_place(item): item for item in earlier_ones if places_before[_place(item)] == 1}
    marked: list[dict[str, Any]] = []
    for finding in findings:
        place = _place(finding)
        earlier = exact.get((*place, finding["message"]))
        if earlier is None and places_now[place] == 1:
            earlier = single.get(place)
        first_seen = None
        if earlier is not None and previous is not None:
            first_seen = earlier.get("first_seen") or previous.assessed_at
        marked.append(
            {
                "check": finding["check"],
                "message": finding["message"],
                "path": finding["path"],
                "line": finding.get("line"),
                "line_hash": finding.get("line_hash"),
                "new": previous is not None and earlier is None,
                "first_seen": first_seen or assessed_at,
            }
        )
    return marked
