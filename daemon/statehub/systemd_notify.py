"""systemd notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING through ``sdnotify``.

Without ``$NOTIFY_SOCKET`` (outside systemd) every call is a no-op. sdnotify encodes each
message as Latin-1 and silently drops one that does not encode, so STATUS text is made
plain printable ASCII here first. The watchdog interval is half of ``$WATCHDOG_USEC``
(sd_watchdog_enabled(3)), and only when ``$WATCHDOG_PID`` is unset or names this process.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Mapping
from typing import Protocol

from sdnotify import SystemdNotifier


class _Socket(Protocol):
    def notify(self, state: str) -> None: ...


def ascii_status(text: str) -> str:
    """``text`` as one line of printable ASCII: accents dropped, anything else a ``?``."""
    folded = unicodedata.normalize("NFKD", text)
    out: list[str] = []
    for char in folded:
        if unicodedata.combining(char):
            continue
        if char in "\r\n\t":
            out.append(" ")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None for none."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # the watchdog belongs to another process (a wrapper that exec'd us)
    return int(usec) / 2 / 1_000_000


class Notifier:
    """What the daemon tells systemd. Every method is safe to call outside systemd."""

    def __init__(self, socket: _Socket | None = None) -> None:
        if socket is None and os.environ.get("NOTIFY_SOCKET"):
            socket = SystemdNotifier()
        self._socket = socket

    def close(self) -> None:
        """Close the notify socket (a no-op for one passed in or when there is none)."""
        if isinstance(self._socket, SystemdNotifier) and self._socket.socket is not None:
            self._socket.socket.close()
        self._socket = None

    def _send(self, *fields: str) -> None:
        if self._socket is not None:
            self._socket.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        self._send("READY=1", "STATUS=" + ascii_status(status))

    def status(self, status: str) -> None:
        self._send("STATUS=" + ascii_status(status))

    def reloading(self) -> None:
        # MONOTONIC_USEC is required with Type=notify-reload (systemd 253) and ignored before.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str) -> None:
        self._send("STOPPING=1", "STATUS=" + ascii_status(status))

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")
