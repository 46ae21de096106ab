"""Logging for the daemon: one line per event on stderr, journald-aware.

With ``$JOURNAL_STREAM`` set (systemd connected stderr to the journal) each line starts
with its syslog priority, ``<3>`` error .. ``<7>`` debug, and carries no timestamp: journald
stamps it and ``journalctl -p warning`` filters on the prefix (sd-daemon(3)). Otherwise a
line is ``2026-11-27T10:15:00.041Z WARNING logger: message``. An exception is its type and
first line of reason; its traceback only at debug level (``STATEHUB_LOG_LEVEL=debug``),
folded like any multi-line message into its one line with `` | `` (one journal entry),
and control characters in a message (an escape sequence in a repo's file name) are
written out as ``\\x1b`` (:func:`statehub.safetext.visible`).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from statehub.safetext import visible
from statehub.timefmt import iso

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

# Set to `debug` (or info, warning, error) it overrides every process's level: a sweep's
# workers then log git's own lines of a failed fetch (docs/runbook.md).
LEVEL_VARIABLE = "STATEHUB_LOG_LEVEL"

# Libraries whose INFO lines are chatter here: APScheduler logs every job it runs (the
# watchdog heartbeat included), httpx every request.
_QUIET = ("apscheduler", "httpx", "httpcore")


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (the nearest one at or above it)."""
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class OneLineFormatter(logging.Formatter):
    """``<p>logger: message`` for journald, else ``timestamp LEVEL logger: message``."""

    def __init__(self, *, journal: bool, tracebacks: bool = False) -> None:
        super().__init__()
        self.journal = journal
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and self.tracebacks:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        elif record.exc_info and record.exc_info[1] is not None:
            # A traceback only at debug level: otherwise the exception's one line of reason.
            error = record.exc_info[1]
            reason = str(error).splitlines()[0] if str(error) else ""
            text = f"{text}: {type(error).__name__}" + (f": {reason}" if reason else "")
        text = " | ".join(visible(line) for line in text.splitlines() if line.strip())
        if self.journal:
            return f"<{priority(record.levelno)}>{record.name}: {text}"
        moment = iso(_utc(record.created))
        return f"{moment} {record.levelname} {record.name}: {text}"


def _utc(created: float) -> datetime:
    return datetime.fromtimestamp(created, UTC)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg] # TextIO stream
    """The handler :func:`setup_logging` installs (and replaces when called again)."""


def setup_logging(*, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every log record to stderr (or ``stream``), one line each; idempotent.

    Handlers installed by others (a test harness) are left in place. ``$STATEHUB_LOG_LEVEL``
    overrides ``level``.
    """
    named = logging.getLevelNamesMapping().get(os.environ.get(LEVEL_VARIABLE, "").upper())
    if named is not None:
        level = named
    handler = _OurHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        OneLineFormatter(
            journal=bool(os.environ.get("JOURNAL_STREAM")), tracebacks=level <= logging.DEBUG
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
