# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the golden queries: one transport per run, one session per worker.

The transport holds what every request shares (the TLS context, whose CA bundle costs
~50 ms of CPU to load, and the proxy settings); a session is one worker's connections,
kept open between its queries (HTTP/1.1 keep-alive), so a worker's next query costs no
TCP or TLS handshake.  Redirects are followed as urllib follows them, and any status
outside 2xx is an :class:`HttpStatusError`.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import typing as t
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

# As urllib: at most this many redirects, only to these schemes.
MAX_REDIRECTS = 10
REDIRECT_SCHEMES = ("http", "https")
# A reused connection that fails before any answer was closed by the server between
# two queries (its keep-alive timeout): the request goes once more on a new one.
STALE_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


@dataclass(frozen=True)
class Reply:
    """A 2xx answer: its status and at most ``limit`` bytes of its body (one more
    than the limit tells the caller it was larger)."""

    status: int
    body: bytes


class HttpStatusError(Exception):
    """An answer outside 2xx (after redirects), with the start of its body."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__("HTTP %d: %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.body = body


class RedirectRefused(http.client.HTTPException):
    """A redirect to a scheme other than http(s), which urllib refuses too."""


@dataclass(frozen=True)
class Target:
    """Where a request's connection goes, and what its request line names."""

    scheme: str
    host: str
    port: int
    path: str
    proxy: t.Optional[urllib.parse.SplitResult] = None
    tunnel: bool = False

    @property
    def endpoint(self) -> t.Tuple[t.Any, ...]:
        """What a connection is for: every path on it shares one."""
        return (self.scheme, self.host, self.port, self.proxy)

    @property
    def proxy_headers(self) -> t.Dict[str, str]:
        """Sent with each request through a plain HTTP proxy (a tunnel sends them
        once, with its CONNECT)."""
        return {} if self.proxy is None or self.tunnel else _proxy_headers(self.proxy)


@dataclass
class Transport:
    """What every query of a run shares: the TLS context and the proxies."""

    context: t.Optional[ssl.SSLContext] = None
    proxies: t.Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_url(
        cls, url: str, validate_certs: bool, ca_path: str | None, use_proxy: bool
    ) -> Transport:
        """The TLS context is made once, and only when the URL is https."""
        context = None
        if urllib.parse.urlsplit(url).scheme == "https":
            context = ssl.create_default_context(cafile=ca_path)
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return cls(context, urllib.request.getproxies() if use_proxy else {})

    def session(self) -> Session:
        return Session(self)

    def target(self, url: str) -> Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise http.client.InvalidURL("not an http(s) URL: %s" % url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        proxy = self._proxy(parts.scheme, parts.hostname)
        if proxy is None:
            return Target(parts.scheme, parts.hostname, port, path)
        if parts.scheme == "https":
            return Target("https", parts.hostname, port, path, proxy, tunnel=True)
        absolute = urllib.parse.urlunsplit(parts._replace(fragment=""))
        return Target("http", parts.hostname, port, absolute, proxy)

    def _proxy(self, scheme: str, host: str) -> urllib.parse.SplitResult | None:
        proxy = self.proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return None
        if "://" not in proxy:
            proxy = "http://" + proxy
        return urllib.parse.urlsplit(proxy)


def _proxy_headers(proxy: urllib.parse.SplitResult) -> t.Dict[str, str]:
    if proxy.username is None:
        return {}
    user = urllib.parse.unquote(proxy.username)
    password = urllib.parse.unquote(proxy.password or "")
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode("ascii")
    return {"Proxy-Authorization": "Basic " + token}


class Session:
    """One worker's connections, by host, reused from one query to the next."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.connections: t.Dict[t.Tuple[t.Any, ...], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()

    def send(
        self,
        method: str,
        url: str,
        headers: t.Mapping[str, str],
        body: bytes | None,
        timeout: float,
        limit: int,
    ) -> Reply:
        """The answer to one request, redirects followed as urllib does: any method
        on 301/302/303 becomes a GET without a body; 307/308 only for GET and HEAD."""
        seen = {url}
        for _hop in range(MAX_REDIRECTS + 1):
            status, reason, location, payload = self._exchange(
                method, url, headers, body, timeout, limit
            )
            follow = location is not None and _redirects(status, method)
            if not follow:
                if not 200 <= status < 300:
                    raise HttpStatusError(status, reason, payload)
                return Reply(status, payload)
            url = urllib.parse.urljoin(url, t.cast(str, location))
            if urllib.parse.urlsplit(url).scheme not in REDIRECT_SCHEMES:
                raise RedirectRefused("redirect to a scheme other than http(s)")
            if url in seen:
                raise HttpStatusError(status, "redirect loop", payload)
            seen.add(url)
            if method not in ("GET", "HEAD"):
                method, body = "GET", None
                headers = {
                    name: value
                    for name, value in headers.items()
                    if name.lower() not in ("content-type", "content-length")
                }
        raise HttpStatusError(status, "more than %d redirects" % MAX_REDIRECTS, b"")

    def _exchange(
        self,
        method: str,
        url: str,
        headers: t.Mapping[str, str],
        body: bytes | None,
        timeout: float,
        limit: int,
    ) -> t.Tuple[int, str, str | None, bytes]:
        target = self.transport.target(url)
        connection = self._connection(target, timeout)
        reused = connection.sock is not None
        headers = {**headers, **target.proxy_headers}
        try:
            response = self._request(connection, target, method, headers, body)
        except STALE_ERRORS:
            connection.close()
            if not reused:
                raise
            response = self._request(connection, target, method, headers, body)
        try:
            payload = response.read(limit + 1)
            if not response.isclosed():
                # Larger than the limit: the rest is never read, so the
                # connection cannot carry another request.
                connection.close()
        except BaseException:
            connection.close()
            raise
        return response.status, response.reason, response.getheader("Location"), payload

    def _request(
        self,
        connection: http.client.HTTPConnection,
        target: Target,
        method: str,
        headers: t.Mapping[str, str],
        body: bytes | None,
    ) -> http.client.HTTPResponse:
        try:
            connection.request(method, target.path, body=body, headers=dict(headers))
            return connection.getresponse()
        except BaseException:
            connection.close()
            raise

    def _connection(self, target: Target, timeout: float) -> http.client.HTTPConnection:
        connection = self.connections.get(target.endpoint)
        if connection is None:
            connection = _connect(self.transport, target)
            self.connections[target.endpoint] = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection


def _redirects(status: int, method: str) -> bool:
    if status in (301, 302, 303):
        return method in ("GET", "HEAD", "POST")
    return status in (307, 308) and method in ("GET", "HEAD")


def _connect(transport: Transport, target: Target) -> http.client.HTTPConnection:
    if target.proxy is None:
        host, port = target.host, target.port
    else:
        host = target.proxy.hostname or ""
        port = target.proxy.port or (443 if target.proxy.scheme == "https" else 80)
    # http.client sets TCP_NODELAY on every connection it opens: a request is never
    # held back waiting for the ACK of the one before on a kept-alive connection.
    if target.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, context=transport.context
        )
    else:
        connection = http.client.HTTPConnection(host, port)
    if target.proxy is not None and target.tunnel:
        connection.set_tunnel(
            target.host, target.port, headers=_proxy_headers(target.proxy)
        )
    return connection
