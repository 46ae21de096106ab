"""An event's size bound (issue 25): its long lists cut to a byte budget, their counts kept.

A sweep's event names every repo of the fleet (``repos_processed``, ``skipped_clean``,
``skipped_missing``, ``skipped_budget``), every C-00 (``automation_errors``) and every repo
with accepted findings (``accepted.repos``). Counts of items do not bound bytes (a message
or a path can be kilobytes long), so each item is measured as it is listed, as compact JSON
with ASCII escapes: never fewer bytes than the UTF-8 that the API answers or the store keeps.

The lists share :data:`EVENT_LIST_BYTES`, spent in this order, each list cut at its tail:
``automation_errors`` (at most half of it, so that the repos that need action are named
too; the caller puts the sweep's own errors first), ``repos_processed`` (their findings at
most :data:`EVENT_FINDINGS_BYTES`), ``skipped_missing``, ``skipped_budget``,
``skipped_clean``, ``accepted.repos``. The counts stay exact: ``repos_need_action``,
``repos_clean``, ``repos_missing``, ``repos_over_budget`` always, ``repos_truncated: true``
when a list of repos was cut, ``automation_errors_total`` when the errors were, and
``"truncated": true`` in ``accepted`` when its repos were. What the event leaves out stays
in the standing assessments (``GET /repos``, ``statehub findings``). Its ``warnings`` have a
budget of their own (:func:`fit_warnings`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from statehub.contract import Detail

T = TypeVar("T")

EVENT_LIST_BYTES = 900_000
"""Bytes of compact JSON the lists of one event hold at most, together: with its
``warnings`` (:data:`EVENT_WARNINGS_BYTES`) and its other keys (about 2 KB) the event stays
under 1 MB whatever the fleet."""

EVENT_WARNINGS_BYTES = 50_000
"""Bytes of an event's ``warnings`` (a line for each configured root that holds no repo):
a configuration may name 10,000 roots."""

EVENT_FINDINGS_BYTES = 400_000
"""Bytes of findings the entries of ``repos_processed`` list at most, together: long
messages and paths in the first entries leave room to name the repos after them."""


def json_bytes(item: object) -> int:
    """The size of ``item`` as compact JSON with ASCII escapes, in bytes (an upper bound of
    its UTF-8 form)."""
    return len(json.dumps(item, separators=(",", ":")))


def prefix(items: Sequence[T], room: int) -> tuple[list[T], int]:
    """The longest head of ``items`` that fits in ``room`` bytes (each item and its comma),
    and the bytes it takes."""
    used = 0
    for index, item in enumerate(items):
        size = json_bytes(item) + 1
        if used + size > room:
            return list(items[:index]), used
        used += size
    return list(items), used


def fit_warnings(warnings: Sequence[str]) -> dict[str, Any]:
    """An event's ``warnings`` within :data:`EVENT_WARNINGS_BYTES`, a mapping to update the
    detail with. When cut, a last line says how many more there are (``statehub config
    check`` lists them all) and ``warnings_total`` counts them."""
    kept, _ = prefix(warnings, EVENT_WARNINGS_BYTES)
    if len(kept) == len(warnings):
        return {Detail.WARNINGS: kept}
    more = len(warnings) - len(kept)
    kept.append(f"... and {more} more warning(s): statehub config check lists them all")
    return {Detail.WARNINGS: kept, Detail.WARNINGS_TOTAL: len(warnings)}


def _entries(entries: Sequence[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], int]:
    """The head of ``repos_processed`` that fits in ``room`` bytes, their findings within
    :data:`EVENT_FINDINGS_BYTES`: listed in order until spent, then none (the entry keeps
    ``findings_total`` and ``"truncated": true``, as with the count bounds of the sweep)."""
    listed: list[dict[str, Any]] = []
    used = 0
    findings_room = EVENT_FINDINGS_BYTES
    for whole in entries:
        findings = whole["findings"]
        kept, spent = prefix(findings, findings_room)
        entry = whole
        if len(kept) < len(findings):
            findings_room = 0  # every later entry lists none
            entry = {
                **whole,
                "findings": kept,
                "findings_total": whole.get("findings_total", len(findings)),
                "truncated": True,
            }
        else:
            findings_room -= spent
        size = json_bytes(entry) + 1
        if used + size > room:
            break
        listed.append(entry)
        used += size
    return listed, used


def fit_lists(
    *,
    errors: Sequence[dict[str, Any]],
    need_action: Sequence[dict[str, Any]],
    missing: Sequence[str],
    over_budget: Sequence[str],
    clean: Sequence[str],
    accepted: Mapping[str, Any],
) -> dict[str, Any]:
    """The detail's lists and their counts, cut to :data:`EVENT_LIST_BYTES` (module
    docstring); a mapping to update the detail with."""
    room = EVENT_LIST_BYTES
    listed_errors, used = prefix(errors, room // 2)
    room -= used
    entries, used = _entries(need_action, room)
    room -= used
    repo_lists = {
        Detail.SKIPPED_MISSING: missing,
        Detail.SKIPPED_BUDGET: over_budget,
        Detail.SKIPPED_CLEAN: clean,
    }
    names: dict[str, list[str]] = {}
    for key, items in repo_lists.items():
        names[key], used = prefix(items, room)
        room -= used
    accepted_repos = list(accepted["repos"].items())
    kept_accepted, _ = prefix(accepted_repos, room)
    fitted: dict[str, Any] = {
        Detail.REPOS_PROCESSED: entries,
        **names,
        Detail.AUTOMATION_ERRORS: listed_errors,
        Detail.REPOS_NEED_ACTION: len(need_action),
        Detail.REPOS_CLEAN: len(clean),
        Detail.REPOS_MISSING: len(missing),
        Detail.REPOS_OVER_BUDGET: len(over_budget),
        Detail.ACCEPTED: {"total": accepted["total"], "repos": dict(kept_accepted)},
    }
    if len(kept_accepted) < len(accepted_repos):
        fitted[Detail.ACCEPTED]["truncated"] = True
    if len(entries) < len(need_action) or any(
        len(names[key]) < len(items) for key, items in repo_lists.items()
    ):
        fitted[Detail.REPOS_TRUNCATED] = True
    if len(listed_errors) < len(errors):
        fitted[Detail.AUTOMATION_ERRORS_TOTAL] = len(errors)
    return fitted
