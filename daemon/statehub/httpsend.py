"""One outgoing HTTP POST with bounds: a deadline for the whole request, no answer body read.

httpx's timeouts bound each read and write, not a request: a receiver that sends a byte
every two seconds held an alert forever under a 5 s timeout, and every later alert queued
behind it (issue 25). Here every read, write and connect of the request is given what is
left of one deadline; past it the request fails with ``httpx.TimeoutException``. The answer's
body is never read (the status line says whether it was delivered), so a receiver that
answers gigabytes costs nothing: at most the header block, which h11 caps at 16 KiB.

httpx exposes no network backend of its own, so the one of each connection pool a client
holds is wrapped (:func:`bounded_client`); the environment's proxies (``HTTPS_PROXY``) still
apply. Used by :mod:`statehub.alerts` for pings and webhook posts.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import typing
from collections.abc import Iterable

import httpcore
import httpx

from statehub import __version__

ANSWER_HEADERS_LIMIT = 16 * 1024
"""Bytes of an answer's header block at most (h11's own cap on an incomplete event)."""

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "statehub_http_deadline", default=None
)


def _left(timeout: float | None) -> float | None:
    """``timeout`` shortened to what is left of the current request's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, _left(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client() -> httpx.Client:
    """An httpx client whose requests through :func:`post` keep to one deadline each."""
    client = httpx.Client(headers={"User-Agent": f"statehub/{__version__}"})
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None:
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


def post(
    client: httpx.Client, url: str, *, content: bytes, content_type: str, timeout: float
) -> int:
    """POST ``content`` to ``url``; the answer's status code. The whole request (connect,
    send, the answer's headers) must end within ``timeout`` seconds; the answer's body is
    not read. Raises ``httpx.HTTPError`` (``httpx.TimeoutException`` past the deadline)."""
    token = _deadline.set(time.monotonic() + timeout)
    try:
        request = client.build_request(
            "POST", url, content=content, headers={"Content-Type": content_type}, timeout=timeout
        )
        answer = client.send(request, stream=True)
        answer.close()  # the connection goes with the unread body
        return answer.status_code
    finally:
        _deadline.reset(token)
