"""JSON over HTTP as the programs and the lab call each other: every status is a result, only
transport failures raise."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
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
# Answer heads larger than these are refused, as http.client refuses them.
_MAX_LINE = 65536
_MAX_HEADERS = 100
# Seconds an exchange past its deadline still waits for the rest of an answer already arriving.
_LAST_LOOK = 0.005


class KeepAliveClient:
    """JSON over HTTP/1.1 over a pool of kept-alive connections, as a service's HTTP client keeps
    them: a call takes an idle connection to its host (or opens one) and gives it back once answered,
    so a call on a warm connection costs no TCP handshake and no new thread on the server's side.

    `send` puts a request on the wire and returns at once; its `Exchange.result()` reads the answer.
    A caller that fans out sends every request first and then reads the answers, so the peers work
    side by side without a thread per request (what an event-loop client does). Same results and
    errors as `http_json`; https is pooled when the client has a TLS context, and otherwise goes
    through `http_json`."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, int], list[PooledConnection]] = {}
        self._lock = threading.Lock()
        # With a TLS context, https connections are pooled too (each one's handshake done once).
        self._context = context

    def call(self, method: str, url: str, body: Any = None, timeout: float = 5.0,
             headers: Mapping[str, str] | None = None) -> HttpResult:
        return self.send(method, url, body, timeout, headers).result()

    def send(self, method: str, url: str, body: Any = None, timeout: float = 5.0,
             headers: Mapping[str, str] | None = None) -> Exchange:
        """The request sent (or its failure kept for `result()`), within `timeout` seconds overall."""
        parts = urllib.parse.urlsplit(url)
        tls = parts.scheme == "https" and self._context is not None
        if not (parts.scheme == "http" or tls) or not parts.hostname:
            return Exchange.done(lambda: http_json(method, url, body, headers, timeout, self._context))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host, port = parts.hostname, parts.port or (443 if tls else 80)
        data = None if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: application/json"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if data is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (data or b"")
        exchange = Exchange(self, f"{method} {url}", method, request,
                            self._take(host, port, self._context if tls else None), time.monotonic() + timeout)
        exchange.start()
        return exchange

    def _take(self, host: str, port: int, context: ssl.SSLContext | None) -> PooledConnection:
        with self._lock:
            idle = self._idle.get((host, port))
            connection = idle.pop() if idle else None
        return connection or PooledConnection(host, port, context)

    def _give_back(self, connection: PooledConnection) -> None:
        if connection.sock is None:  # closed after an error, or by the server's answer
            return
        with self._lock:
            self._idle.setdefault((connection.host, connection.port), []).append(connection)


class Exchange:
    """One request on a pooled connection: sent by `start`, answered by `result` (once)."""

    def __init__(self, client: KeepAliveClient | None, label: str, method: str, request: bytes,
                 connection: PooledConnection | None, deadline: float) -> None:
        self._client = client
        self._label = label
        self._method = method
        self._request = request
        self._connection = connection
        self._deadline = deadline
        self._failure: BaseException | None = None
        self._reused = False
        self._answer: Callable[[], HttpResult] | None = None

    @classmethod
    def done(cls, answer: Callable[[], HttpResult]) -> Exchange:
        """An exchange answered by a whole call of its own (https)."""
        exchange = cls(None, "", "", b"", None, 0.0)
        exchange._answer = answer
        return exchange

    def start(self) -> None:
        assert self._connection is not None
        self._reused = self._connection.sock is not None
        try:
            self._connection.put(self._request, self._remaining())
        except _STALE as err:
            if not self._reused:
                self._failure = err
                return
            self._reused = False  # the peer closed it while idle: once more, on a new connection
            try:
                self._connection.put(self._request, self._remaining())
            except (OSError, http.client.HTTPException) as again:
                self._failure = again
        except (OSError, http.client.HTTPException) as err:
            self._failure = err

    def result(self) -> HttpResult:
        """The answer; raises TimeoutError past the deadline and Unreachable when the peer could not be
        reached or broke the exchange off."""
        if self._answer is not None:
            return self._answer()
        connection = self._connection
        assert connection is not None
        try:
            if self._failure is not None:
                raise self._failure
            try:
                answer = connection.get(self._method, self._reading_time())
            except _STALE:
                if not self._reused:
                    raise
                connection.put(self._request, self._remaining())
                answer = connection.get(self._method, self._reading_time())
        except TimeoutError as err:
            connection.close()
            raise TimeoutError(f"{self._label} timed out") from err
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise Unreachable(f"{self._label}: {err}") from err
        finally:
            if self._client is not None:
                self._client._give_back(connection)
        return answer

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no time left")
        return remaining

    def _reading_time(self) -> float:
        """The time left to read the answer; past the deadline, an answer already received (read
        after another one that took all the time) is still taken, a missing one is not waited for."""
        return max(self._deadline - time.monotonic(), _LAST_LOOK)


class PooledConnection:
    """One kept-alive HTTP/1.1 connection of the pool (over TLS with a context): a request goes out
    as one write, and the answer's head is read as plain lines (Content-Length, chunked, or until the
    peer closes)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.sock: socket.socket | None = None
        self._reader: Any = None
        self.connect_timeout: float | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        # Requests and answers are whole writes: nothing is gained by holding one back for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self._reader = sock.makefile("rb")

    def close(self) -> None:
        sock, reader, self.sock, self._reader = self.sock, self._reader, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def put(self, request: bytes, timeout: float) -> None:
        try:
            if self.sock is None:
                self.connect_timeout = timeout
                self.connect()
            assert self.sock is not None
            self.sock.settimeout(timeout)
            self.sock.sendall(request)
        except BaseException:
            self.close()
            raise

    def get(self, method: str, timeout: float) -> HttpResult:
        """The answer to the request sent last; the connection stays open unless the answer closes it."""
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            status, headers, body, keep = _read_answer(self._reader, method)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return _result(status, body, list(headers.items()))


def _read_answer(reader: Any, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body, and whether the connection can carry another request."""
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
        code = rest.split(" ", 1)[0]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(line.decode("iso-8859-1", "replace"))
        headers = _read_head(reader)
        if int(code) >= 200:  # a 1xx is an interim answer: the real one follows
            break
    status = int(code)
    keep = headers.get("connection", "").lower() != "close" and (
        version != "HTTP/1.0" or headers.get("connection", "").lower() == "keep-alive")
    if method == "HEAD" or status in (204, 304):
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _read_chunked(reader), keep
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = reader.read(length)
        if len(body) != length:
            raise http.client.IncompleteRead(body, length - len(body))
        return status, headers, body, keep
    return status, headers, reader.read(), False


def _read_head(reader: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("iso-8859-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def _read_chunked(reader: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = reader.readline(_MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError as err:
            raise http.client.IncompleteRead(b"".join(chunks)) from err
        if size == 0:
            _read_head(reader)  # the trailer
            return b"".join(chunks)
        chunk = reader.read(size)
        if len(chunk) != size:
            raise http.client.IncompleteRead(b"".join(chunks) + chunk, size - len(chunk))
        chunks.append(chunk)
        reader.readline(_MAX_LINE + 1)  # the CRLF after each chunk
