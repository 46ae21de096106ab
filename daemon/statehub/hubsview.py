"""The status page's fleet section: ``statehub temporal hubs`` as the page shows it.

Only when the configuration has a ``[temporal]`` section and the extra is installed; the
SDK is imported then, never otherwise. Temporal is read at most every
:data:`FRESH_SECONDS` per address and namespace (the page refreshes itself), within
:data:`READ_SECONDS`; a Temporal that does not answer is one line on the section, never
a failed page.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from statehub.errors import StatehubError
from statehub.settings import Settings

FRESH_SECONDS = 30.0
READ_SECONDS = 8.0

_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def configured(settings: Settings) -> bool:
    """True when the configuration names a ``[temporal]`` section (file or environment)."""
    return "temporal" in settings.model_fields_set


def fleet_section(settings: Settings) -> dict[str, Any] | None:
    """The fleet view for the page (``hubs``, ``quiet``...), ``error`` when unreadable;
    None when ``[temporal]`` is not configured."""
    if not configured(settings):
        return None
    key = (settings.temporal.address, settings.temporal.namespace)
    with _lock:  # one reader at a time; the others wait and get its answer
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < FRESH_SECONDS:
            return cached[1]
        document = _read(settings)
        _cache[key] = (time.monotonic(), document)
        return document


def _read(settings: Settings) -> dict[str, Any]:
    empty: dict[str, Any] = {
        "address": settings.temporal.address,
        "namespace": settings.temporal.namespace,
        "read_at": None,
        "hubs": [],
        "quiet": [],
    }
    try:
        from statehub.temporal import require

        require()
        from statehub.temporal.hubs import fleet

        async def bounded() -> dict[str, Any]:
            return await asyncio.wait_for(fleet(settings), READ_SECONDS)

        return asyncio.run(bounded())
    except StatehubError as exc:
        return {**empty, "error": str(exc)}
    except TimeoutError:
        return {**empty, "error": f"Temporal did not answer within {READ_SECONDS:.0f} s"}
