"""Retention: progress events and activity runs older than ``hub.retention_days`` go.

Pruning deletes in batches of ids, each batch its own short write transaction, so a sweep
that records its event meanwhile waits for one batch at most, never for the whole prune.
It runs at most once a day (the time of the last prune is kept in ``hub_state``); call
:func:`maybe_prune` after a sweep's event is recorded.

A clock that jumped ahead must not delete history (issue 25: 200 days ahead, one sweep
pruned every earlier event). The cutoff is therefore bounded twice: by the store's own
timeline (the newest event recorded before this sweep; when the clock is more than a day
ahead of it, the cutoff is taken from it instead) and by the last prune's cutoff (kept in
``hub_state``: a prune moves it at most :data:`MAX_STEP` further), so even a clock that
stays wrong erodes history no faster than a few days a day. A capped prune logs a warning.

The file is never vacuumed here: SQLite keeps the freed pages on its free list and reuses
them for the next events, so once the retention window is full the file stays flat.
``VACUUM`` (which rewrites the whole file under an exclusive lock) is left to an operator.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from statehub.errors import StoreError
from statehub.settings import Settings
from statehub.store import Store
from statehub.timefmt import iso, parse_iso, utc_now

LAST_PRUNE_KEY = "retention_last_prune"
LAST_CUTOFF_KEY = "retention_last_cutoff"
PRUNE_INTERVAL = timedelta(days=1)
MAX_STEP = timedelta(days=3)
"""How much further than the last prune's cutoff one prune may go."""
AHEAD = timedelta(days=1)
"""A clock more than this ahead of the store's newest earlier event is not believed."""
THIS_SWEEP = timedelta(hours=1)
"""Events this recent are the sweep that calls the prune, not the store's timeline."""
DEFAULT_BATCH = 500

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PruneResult:
    """What one call of :func:`prune` did; ``ran`` is False when it was not due yet."""

    ran: bool
    cutoff: str
    events_deleted: int
    runs_deleted: int
    last_prune: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "cutoff": self.cutoff,
            "events_deleted": self.events_deleted,
            "runs_deleted": self.runs_deleted,
            "last_prune": self.last_prune,
        }


def prune(
    store: Store,
    retention_days: int,
    now: datetime | None = None,
    batch: int = DEFAULT_BATCH,
    *,
    force: bool = False,
) -> PruneResult:
    """Delete events and runs older than ``retention_days`` before ``now``, once a day.

    Unless ``force``, nothing is deleted when the last prune (kept in ``hub_state``) is less
    than a day old; ``ran`` is then False. A last prune in the future (the clock went back)
    counts as due. Raises StoreError when the database cannot be written.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    moment = now or utc_now()
    cutoff = moment - timedelta(days=retention_days)
    last = store.get_state(LAST_PRUNE_KEY)
    if not force and not _due(last, moment):
        return PruneResult(
            ran=False, cutoff=iso(cutoff), events_deleted=0, runs_deleted=0, last_prune=last
        )
    cutoff = _bounded_cutoff(store, cutoff, moment, retention_days)
    events = _drain(lambda: store.delete_events_before(cutoff, limit=batch), batch)
    runs = _drain(lambda: store.delete_runs_before(cutoff, limit=batch), batch)
    store.delete_workplan_changes_before(iso(cutoff))  # the registry's history (issue 26)
    stamp = iso(moment)
    store.set_state(LAST_PRUNE_KEY, stamp)
    store.set_state(LAST_CUTOFF_KEY, iso(cutoff))
    return PruneResult(
        ran=True, cutoff=iso(cutoff), events_deleted=events, runs_deleted=runs, last_prune=stamp
    )


def maybe_prune(
    store: Store, settings: Settings, *, now: datetime | None = None
) -> PruneResult | None:
    """Prune by ``hub.retention_days`` when a day has passed since the last prune.

    Meant to be called after a sweep's event is recorded. Returns None when not due, and
    when the database refused (logged as a warning: housekeeping never fails a sweep, and
    the next call tries again because the last-prune time was not moved).
    """
    try:
        result = prune(store, settings.hub.retention_days, now)
    except StoreError as exc:
        log.warning("retention: pruning failed, will retry after the next sweep: %s", exc)
        return None
    if not result.ran:
        return None
    if result.events_deleted or result.runs_deleted:
        log.info(
            "retention: deleted %d event(s) and %d run(s) older than %s",
            result.events_deleted,
            result.runs_deleted,
            result.cutoff,
        )
    return result


def _bounded_cutoff(
    store: Store, cutoff: datetime, moment: datetime, retention_days: int
) -> datetime:
    """``cutoff``, unless the store's timeline or the last cutoff says the clock ran ahead."""
    bounds: list[tuple[datetime, str]] = []
    earlier = store.newest_created_before(moment - THIS_SWEEP)
    if earlier is not None:
        newest = parse_iso(earlier)
        if moment - newest > AHEAD:
            bounds.append(
                (
                    newest + AHEAD - timedelta(days=retention_days),
                    f"the clock is {_days(moment - newest)} ahead of the newest earlier event",
                )
            )
    last_cutoff = store.get_state(LAST_CUTOFF_KEY)
    if last_cutoff is not None:
        with contextlib.suppress(ValueError):
            bounds.append(
                (
                    parse_iso(last_cutoff) + MAX_STEP,
                    f"a prune moves the cutoff at most {_days(MAX_STEP)} past the last one",
                )
            )
    for bound, reason in sorted(bounds):
        if bound < cutoff:
            log.warning(
                "retention: pruning only before %s, not %s: %s (is the clock right?)",
                iso(bound),
                iso(cutoff),
                reason,
            )
            return bound
    return cutoff


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:.1f} day(s)"


def _due(last: str | None, now: datetime) -> bool:
    if last is None:
        return True
    try:
        previous = parse_iso(last)
    except ValueError:
        return True
    return previous > now or now - previous >= PRUNE_INTERVAL


def _drain(delete_batch: Callable[[], int], batch: int) -> int:
    """Call ``delete_batch`` until a batch comes back short; the total deleted."""
    total = 0
    while True:
        deleted = delete_batch()
        total += deleted
        if deleted < batch:
            return total
