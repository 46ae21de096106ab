"""Retention: events and runs older than retention_days are pruned, at most once a day."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract_keys import sweep_detail
from statehub.retention import LAST_PRUNE_KEY, maybe_prune, prune
from statehub.settings import load_settings
from statehub.store import ActivityRun, Store
from statehub.timefmt import iso

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "hub.db") as opened:
        yield opened


def add_event(store: Store, created: datetime) -> None:
    started = created - timedelta(seconds=2)
    store.append_event(
        "consistency_sweep_remote_all",
        sweep_detail(
            "activity-core",
            started,
            run_id=iso(created),
            finished_at=iso(created),
            duration_seconds=2.0,
            remote=True,
            repos_total=1,
            skipped_clean=["alpha"],
        ),
        created_at=created,
    )


def add_run(store: Store, fired: datetime) -> None:
    store.record_run(
        ActivityRun(
            run_id=f"run-{fired.timestamp():.0f}",
            definition_id="7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b",
            fired_at=iso(fired),
            scheduled_for=iso(fired),
            outcome="primary_healthy",
            context_snapshot={},
        )
    )


def event_times(store: Store) -> list[str]:
    return [event.created_at for event in store.events(limit=10_000, oldest_first=True)]


def test_prune_deletes_only_older_rows(store: Store) -> None:
    """Rows older than the cutoff go, the one at the cutoff and newer ones stay; counts match."""
    cutoff = NOW - timedelta(days=90)
    recent = NOW - timedelta(hours=2)  # the store's timeline reaches the clock
    for moment in (cutoff - timedelta(days=3), cutoff - timedelta(seconds=1), cutoff, recent, NOW):
        add_event(store, moment)
        add_run(store, moment)

    result = prune(store, 90, now=NOW)

    assert (result.ran, result.events_deleted, result.runs_deleted) == (True, 2, 2)
    assert result.cutoff == iso(cutoff)
    assert event_times(store) == [iso(cutoff), iso(recent), iso(NOW)]
    assert [run.fired_at for run in store.runs(limit=10)] == [iso(NOW), iso(recent), iso(cutoff)]
    assert store.get_state(LAST_PRUNE_KEY) == iso(NOW)


def test_prune_in_small_batches(store: Store) -> None:
    """A batch smaller than the backlog still deletes everything old, batch by batch."""
    for day in range(10):
        add_event(store, NOW - timedelta(days=100 + day))
        add_run(store, NOW - timedelta(days=100 + day))
    add_event(store, NOW - timedelta(hours=2))  # the store's timeline reaches the clock
    add_event(store, NOW)

    result = prune(store, 90, now=NOW, batch=3)

    assert (result.events_deleted, result.runs_deleted) == (10, 10)
    assert event_times(store) == [iso(NOW - timedelta(hours=2)), iso(NOW)]


def test_once_a_day_guard_and_force(store: Store) -> None:
    """A second prune within a day does nothing; after a day, or with force, it runs again."""
    add_event(store, NOW - timedelta(hours=2))  # the store's timeline reaches the clock
    add_event(store, NOW - timedelta(days=95))
    assert prune(store, 90, now=NOW).events_deleted == 1

    add_event(store, NOW - timedelta(days=94))
    later = NOW + timedelta(hours=23)
    skipped = prune(store, 90, now=later)
    assert (skipped.ran, skipped.events_deleted, skipped.last_prune) == (False, 0, iso(NOW))
    assert len(event_times(store)) == 2

    forced = prune(store, 90, now=later, force=True)
    assert (forced.ran, forced.events_deleted) == (True, 1)

    add_event(store, NOW - timedelta(days=93))
    assert prune(store, 90, now=later + timedelta(hours=23)).ran is False
    assert prune(store, 90, now=later + timedelta(days=1)).events_deleted == 1


def test_last_prune_in_the_future_counts_as_due(store: Store) -> None:
    """When the clock went back past the last prune, pruning is due again at once."""
    store.set_state(LAST_PRUNE_KEY, iso(NOW + timedelta(days=30)))
    add_event(store, NOW - timedelta(hours=2))
    add_event(store, NOW - timedelta(days=91))

    assert prune(store, 90, now=NOW).events_deleted == 1


def test_maybe_prune_uses_the_settings(tmp_path: Path) -> None:
    """maybe_prune prunes by hub.retention_days once, then returns None until a day passed."""
    config = tmp_path / "statehub.toml"
    config.write_text('[hub]\ndatabase = "hub.db"\nretention_days = 7\n', encoding="utf-8")
    settings = load_settings(config)
    with Store.open(settings.database_path) as store:
        add_event(store, NOW - timedelta(days=8))
        add_event(store, NOW - timedelta(days=6))
        add_event(store, NOW - timedelta(hours=2))

        first = maybe_prune(store, settings, now=NOW)
        second = maybe_prune(store, settings, now=NOW + timedelta(hours=1))

        assert first is not None
        assert first.events_deleted == 1
        assert second is None
        assert event_times(store) == [iso(NOW - timedelta(days=6)), iso(NOW - timedelta(hours=2))]


def test_maybe_prune_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database error while pruning is logged as a warning and maybe_prune returns None."""
    config = tmp_path / "statehub.toml"
    config.write_text('[hub]\ndatabase = "hub.db"\n', encoding="utf-8")
    settings = load_settings(config)
    store = Store.open(settings.database_path)
    store.close()  # every query now fails with sqlite3.ProgrammingError -> StoreError

    with caplog.at_level(logging.WARNING, logger="statehub.retention"):
        assert maybe_prune(store, settings, now=NOW) is None

    assert "pruning failed" in caplog.text


def test_invalid_arguments(store: Store) -> None:
    """A retention below one day or an empty batch is refused."""
    with pytest.raises(ValueError, match="retention_days"):
        prune(store, 0, now=NOW)
    with pytest.raises(ValueError, match="batch"):
        prune(store, 90, now=NOW, batch=0)


def test_a_clock_far_ahead_of_the_store_prunes_nothing_of_its_history(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A sweep dated 200 days ahead of the store's newest event prunes no earlier event;
    a clock that stays ahead erodes history by at most a few days a day; each is a warning."""
    for day in range(60):
        add_event(store, NOW - timedelta(days=day))
        add_run(store, NOW - timedelta(days=day))
    jumped = NOW + timedelta(days=200)
    add_event(store, jumped)
    with caplog.at_level(logging.WARNING, logger="statehub.retention"):
        first = prune(store, 90, now=jumped)
    assert (first.events_deleted, first.runs_deleted) == (0, 0)
    assert "the clock is 200.0 day(s) ahead of the newest earlier event" in caplog.text
    for day in range(1, 11):  # ten more days on the wrong clock, a sweep a day
        add_event(store, jumped + timedelta(days=day))
        prune(store, 90, now=jumped + timedelta(days=day, minutes=1))
    kept = [moment for moment in event_times(store) if moment <= iso(NOW)]
    assert len(kept) >= 60 - 3 * 11
    assert "a prune moves the cutoff at most 3.0 day(s) past the last one" in caplog.text
