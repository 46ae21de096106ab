"""The workplan registry's rules on plain data: keys, change summaries, --changed-since."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from statehub.planregistry import changed_since, keyed, reconcile

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def plan(path: str, wp_id: str | None, status: str | None = "active", **fields: str) -> dict:
    return {"path": path, "id": wp_id, "title": "T", "status": status, "fields": fields}


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("7d", "2026-11-30T12:00:00.000Z"),
        ("12h", "2026-12-07T00:00:00.000Z"),
        ("30m", "2026-12-07T11:30:00.000Z"),
        ("2w", "2026-11-23T12:00:00.000Z"),
        ("2026-12-01", "2026-12-01T00:00:00.000Z"),
        ("2026-12-01T10:00:00+02:00", "2026-12-01T08:00:00.000Z"),
    ],
)
def test_changed_since_reads_ages_and_dates(text: str, moment: str) -> None:
    """An age counts back from now; a date without a zone is UTC."""
    assert changed_since(text, NOW) == moment


def test_changed_since_refuses_other_text() -> None:
    """Anything else is a ValueError whose message names the forms accepted."""
    with pytest.raises(ValueError, match="neither an age"):
        changed_since("yesterday", NOW)


def test_move_and_status_change_is_one_moved_change() -> None:
    """A renamed file whose status also moved is one change naming both."""
    before = keyed("r", [plan("workplans/a.md", "X-WP-0001")], now="t0")
    result = reconcile("r", before, [plan("workplans/b.md", "X-WP-0001", "finished")], now="t1")
    [change] = result.changes
    assert change.kind == "moved"
    assert change.summary == "X-WP-0001: moved workplans/a.md -> workplans/b.md; active -> finished"
    assert [(p.first_seen, p.changed_at) for p in result.upsert] == [("t0", "t1")]


def test_other_keys_changing_are_named() -> None:
    """A change of another scalar key names the key, not its values."""
    before = keyed("r", [plan("workplans/a.md", "X-WP-0001", owner="ana")], now="t0")
    result = reconcile("r", before, [plan("workplans/a.md", "X-WP-0001", owner="bo")], now="t1")
    assert [c.summary for c in result.changes] == ["X-WP-0001: owner changed"]


def test_same_plans_change_nothing() -> None:
    """Reading the same plans again gives no change and nothing to write."""
    before = keyed("r", [plan("workplans/a.md", "X-WP-0001")], now="t0")
    result = reconcile("r", before, [plan("workplans/a.md", "X-WP-0001")], now="t1")
    assert (result.changes, result.upsert) == ([], [])
