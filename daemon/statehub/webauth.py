"""Who may use the API: failed attempts throttled per client, browser sessions, proxies.

- **The client.** A request's client is the peer of its connection. Only when ``[api]
  trusted_proxies`` names the peer are ``X-Forwarded-For`` (the nearest address that is not
  a trusted proxy) and ``X-Forwarded-Proto`` believed: otherwise any client could name
  itself anyone, or claim https (:func:`client_of`, :func:`is_https`).
- **The throttle.** :class:`Throttle` counts failed credentials (a wrong bearer token, a
  wrong login) per client: after ``[api] auth_failures_per_minute`` (default
  :data:`MAX_FAILURES`) within :data:`WINDOW_SECONDS` its next attempts are answered 429
  without being checked, until the oldest failure leaves the window. Each lockout is one
  warning line; the counts are the Prometheus counters ``statehub_auth_failures_total`` and
  ``statehub_auth_refused_total``.
- **Sessions.** A browser that logged in holds a random session id (:class:`Sessions`),
  valid for :data:`SESSION_SECONDS` and revoked by logging out; the server keeps at most
  :data:`MAX_SESSIONS` (the oldest go first). Each session has its own CSRF token, which the
  logout form sends back. A session dies with the process, and with a change of token.

Used by :mod:`statehub.api` (the bearer check) and :mod:`statehub.page` (the login).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.datastructures import Headers
from starlette.types import Scope

log = logging.getLogger("statehub.api")

MAX_FAILURES = 10
"""Failed attempts a client may make within :data:`WINDOW_SECONDS` before it waits."""
WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000
"""Clients the throttle remembers at most (the least recent forgotten first)."""
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _trusted(address: str, trusted: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(trusted)))


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def client_of(scope: Scope, trusted: Sequence[str]) -> str:
    """The client's address: the peer, or what a trusted proxy says of the client."""
    peer = _peer(scope)
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = Headers(scope=scope).get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):  # each proxy appends: the nearest untrusted hop is the client
        if not _trusted(hop, trusted):
            return hop[:64]
    return peer


def is_https(scope: Scope, trusted: Sequence[str]) -> bool:
    """True when the client reached us over https (as a trusted proxy says, if one)."""
    if scope.get("scheme") == "https":
        return True
    if not trusted or not _trusted(_peer(scope), trusted):
        return False
    return Headers(scope=scope).get("x-forwarded-proto", "").strip().lower() == "https"


class Throttle:
    """Failed attempts per client in a sliding window; thread-safe."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS):
        self.max_failures = max_failures
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self.failures_total = 0
        self.refused_total = 0

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before its next attempt is checked (0: none)."""
        now = time.monotonic()
        with self._lock:
            seen = self._failures.get(client)
            if seen is None:
                return 0.0
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) < self.max_failures:
                return 0.0
            self.refused_total += 1
            return max(1.0, seen[0] + self.window - now)

    def failed(self, client: str, what: str) -> None:
        """``client`` gave a wrong credential (``what``: 'bearer token', 'login')."""
        now = time.monotonic()
        with self._lock:
            self.failures_total += 1
            seen = self._failures.pop(client, None) or collections.deque()
            self._failures[client] = seen  # the most recent last
            seen.append(now)
            while len(seen) > self.max_failures:
                seen.popleft()
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)
            locked = len(seen) == self.max_failures and seen[0] > now - self.window
        if locked:
            log.warning(
                "client %s: %d wrong %s(s) within %g s; its attempts are refused (429) for up "
                "to %g s",
                client,
                self.max_failures,
                what,
                self.window,
                self.window,
            )


class ThrottleCollector(Collector):
    """The throttle's counts as Prometheus counters."""

    def __init__(self, throttle: Throttle) -> None:
        self._throttle = throttle

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "statehub_auth_failures",
            "Wrong bearer tokens and logins since the server started",
            value=self._throttle.failures_total,
        )
        yield CounterMetricFamily(
            "statehub_auth_refused",
            "Attempts answered 429 unchecked: their client failed too often",
            value=self._throttle.refused_total,
        )


@dataclass(frozen=True)
class Session:
    expires: float  # time.monotonic()
    csrf: str
    token_digest: bytes  # the token it was opened with: a new token ends it


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Sessions:
    """The browser sessions of this process: random ids, an expiry, revocable."""

    def __init__(self, *, seconds: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.seconds = seconds
        self.limit = limit
        self._open: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._lock = threading.Lock()

    def open(self, token: str) -> str:
        """A new session for a browser that gave ``token``; its id (the cookie's value)."""
        sid = secrets.token_urlsafe(32)
        session = Session(
            expires=time.monotonic() + self.seconds,
            csrf=secrets.token_urlsafe(24),
            token_digest=token_digest(token),
        )
        with self._lock:
            self._open[sid] = session
            while len(self._open) > self.limit:
                self._open.popitem(last=False)
        return sid

    def find(self, sid: str, token: str) -> Session | None:
        """The live session ``sid`` opened with ``token``, or None."""
        with self._lock:
            session = self._open.get(sid)
            if session is None:
                return None
            if session.expires <= time.monotonic() or not hmac.compare_digest(
                session.token_digest, token_digest(token)
            ):
                del self._open[sid]
                return None
            return session

    def close(self, sid: str) -> None:
        with self._lock:
            self._open.pop(sid, None)


def cookie_values(headers: Headers, name: str) -> Iterable[str]:
    """The values of every cookie ``name`` the request carries."""
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            yield value
