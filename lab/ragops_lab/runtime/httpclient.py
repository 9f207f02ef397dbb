"""JSON over HTTP as the programs and the lab call each other: every status is a result, only
transport failures raise."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]


class Unreachable(ConnectionError):
    """The peer refused the connection or its name did not resolve."""


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> HttpResult:
    """Send a JSON request; any HTTP status is a result, only transport failures raise.

    Raises TimeoutError when the peer does not answer in time and Unreachable when it cannot be
    reached, so callers can classify failures the way an SRE would.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return _result(response.status, response.read(), response.headers.items())
    except urllib.error.HTTPError as err:
        return _result(err.code, err.read(), err.headers.items())
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise TimeoutError(f"{method} {url} timed out") from err
        raise Unreachable(f"{method} {url}: {err.reason}") from err
    except ConnectionError as err:
        raise Unreachable(f"{method} {url}: {err}") from err


def _result(status: int, raw: bytes, header_items: Sequence[tuple[str, str]]) -> HttpResult:
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return HttpResult(status, parsed, {k.lower(): v for k, v in header_items})


def error_text(result: HttpResult) -> str:
    """A short description of an error answer for logs and error maps."""
    body = result.body
    detail = body.get("error", body) if isinstance(body, dict) else body
    return f"HTTP {result.status}: {detail}"


# A kept-alive connection the peer closed since its last answer fails like this before any answer:
# the request goes once more on a new connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class KeepAliveClient:
    """JSON over HTTP/1.1 over a pool of kept-alive connections, as a service's HTTP client keeps
    them: a call takes an idle connection to its host (or opens one) and gives it back once answered,
    so a call on a warm connection costs no TCP handshake and no new thread on the server's side.
    Same results and errors as `http_json` (https goes through `http_json`)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _take(self, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get((host, port))
            connection = idle.pop() if idle else None
        if connection is None:
            connection = PooledConnection(host, port, timeout=timeout)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:  # closed after an error, or by the server's answer
            return
        with self._lock:
            self._idle.setdefault((connection.host, connection.port), []).append(connection)

    def call(self, method: str, url: str, body: Any = None, timeout: float = 5.0) -> HttpResult:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return http_json(method, url, body, timeout=timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {})}
        connection = self._take(parts.hostname, parts.port or 80, timeout)
        try:
            return self._exchange(connection, method, path, data, headers)
        except TimeoutError as err:
            raise TimeoutError(f"{method} {url} timed out") from err
        except (OSError, http.client.HTTPException) as err:
            raise Unreachable(f"{method} {url}: {err}") from err
        finally:
            self._give_back(connection)

    @staticmethod
    def _exchange(connection: http.client.HTTPConnection, method: str, path: str, data: bytes | None,
                  headers: Mapping[str, str]) -> HttpResult:
        reused = connection.sock is not None
        try:
            return _round_trip(connection, method, path, data, headers)
        except _STALE:
            if not reused:
                raise
        return _round_trip(connection, method, path, data, headers)


def _round_trip(connection: http.client.HTTPConnection, method: str, path: str, data: bytes | None,
                headers: Mapping[str, str]) -> HttpResult:
    try:
        connection.request(method, path, body=data, headers=dict(headers))
        response = connection.getresponse()
        return _result(response.status, response.read(), response.getheaders())
    except BaseException:
        connection.close()
        raise


class PooledConnection(http.client.HTTPConnection):
    """A connection of the pool (http.client sets TCP_NODELAY on it when it connects)."""
