"""Faults in the API path: an HTTPS proxy in front of kube-apiserver that answers chosen requests
with an error (500, 503, 504, 409, 429, 401, 403, 404) or slowly, and forwards everything else.

A test points its kubeconfig at the proxy; the API server itself is never changed. A rule matches by
verb, resource (a rule for `pods` also matches `pods/status`), namespace and name (for a create, the
name in the object sent), the way the API server's request info names a request, and applies `times`
times (-1: until cleared). A rule with `forward` lets the request through first and answers with the
error afterwards: the write was done, its answer lost (a create then answers 409 AlreadyExists, as its
repeat would). Watches and other streamed answers are forwarded as they arrive. Every resource request
is recorded (`FaultInjector.requests`), so a test can tell which writes a run made.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"})
STATUSES = frozenset({0, 401, 403, 404, 409, 429, 500, 503, 504})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                        "proxy-connection", "content-length"})
REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
CHUNK = 65536

Obj = dict[str, Any]


class FaultError(ValueError):
    """A fault rule that cannot be applied as given."""


@dataclass
class FaultRule:
    """One rule; ``times`` counts down, -1 keeps the rule until it is cleared; status 0 only delays."""

    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    name: str | None = None
    status: int = 500
    times: int = 1
    delay: float = 0.0
    retry_after: int | None = None
    message: str | None = None
    forward: bool = False

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        if self.verb != "*" and self.verb != verb and not (self.verb == "delete" and verb == "deletecollection"):
            return False
        if self.resource != "*" and self.resource not in resource_names(resource):
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.name is None or self.name == name

    def to_dict(self) -> Obj:
        return asdict(self)


def resource_names(resource: str) -> set[str]:
    """A rule for "deployments" also matches "deployments.apps" and "deployments/scale"."""
    base, _, sub = resource.partition("/")
    plural = base.split(".", 1)[0]
    names = {resource, base, plural}
    if sub:
        names |= {f"{plural}/{sub}"}
    return names


def rule_from_spec(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise FaultError("a fault is a mapping of FaultRule fields")
    unknown = set(spec) - set(FaultRule.__dataclass_fields__)
    if unknown:
        raise FaultError(f"unknown fault fields: {sorted(unknown)}")
    rule = FaultRule(**spec)
    if rule.verb not in VERBS:
        raise FaultError(f"verb must be one of {sorted(VERBS)}")
    if rule.status not in STATUSES:
        raise FaultError(f"status must be one of {sorted(STATUSES)}")
    if not isinstance(rule.times, int) or rule.times == 0 or rule.times < -1:
        raise FaultError("times must be a positive integer, or -1 for every request")
    if not isinstance(rule.delay, (int, float)) or rule.delay < 0:
        raise FaultError("delay must be a non-negative number of seconds")
    return rule


@dataclass(frozen=True)
class RequestInfo:
    """What the API server's request-info resolver makes of a request (resource paths only)."""

    verb: str
    resource: str
    namespace: str
    name: str


def created_name(body: bytes | None) -> str:
    """The name in the object a create sends (empty when it has none or is not JSON)."""
    try:
        sent = json.loads(body or b"{}")
    except ValueError:
        return ""
    meta = sent.get("metadata") if isinstance(sent, dict) else None
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def request_info(method: str, target: str, body: bytes | None = None) -> RequestInfo | None:
    """None for non-resource paths (/version, /readyz, discovery)."""
    parts = urllib.parse.urlsplit(target)
    segments = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/") if s]
    if len(segments) >= 2 and segments[0] == "api":
        rest = segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        rest = segments[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    query = dict(urllib.parse.parse_qsl(parts.query))
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method in ("GET", "HEAD"):
        verb = "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = verbs.get(method, method.lower())
    if verb == "create" and not name:
        name = created_name(body)
    return RequestInfo(verb, resource, namespace, name)


def fault_status(rule: FaultRule, info: RequestInfo) -> tuple[Obj, dict[str, str]]:
    """The Status body and headers the API server would send for this error."""
    plural = info.resource.split("/", 1)[0]
    messages = {
        401: "Unauthorized",
        403: f"{plural} is forbidden: injected fault",
        404: f'{plural} "{info.name}" not found',
        409: f'Operation cannot be fulfilled on {plural} "{info.name}": the object has been modified; '
             "please apply your changes to the latest version and try again",
        429: "Too many requests, please try again later.",
        500: "Internal error occurred: injected fault",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted",
    }
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": rule.message or messages[rule.status], "reason": REASONS[rule.status],
                 "code": rule.status}
    headers: dict[str, str] = {}
    if rule.status == 409 and info.verb == "create" and rule.message is None:
        body.update(reason="AlreadyExists", message=f'{plural} "{info.name}" already exists')
    if rule.status in (404, 409):
        body["details"] = {"name": info.name, "kind": plural}
    retry_after = rule.retry_after if rule.retry_after is not None else (1 if rule.status == 429 else None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        body.setdefault("details", {})["retryAfterSeconds"] = retry_after
    return body, headers


class FaultInjector:
    """Thread-safe list of rules consulted before each request is forwarded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.applied: list[tuple[str, str, str, str, int]] = []
        self.requests: list[RequestInfo] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, info: RequestInfo) -> FaultRule | None:
        """Record the request and consume one use of the first matching rule, if any."""
        with self._lock:
            self.requests.append(info)
            for rule in self._rules:
                if rule.matches(info.verb, info.resource, info.namespace, info.name):
                    if rule.times > 0:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    self.applied.append((info.verb, info.resource, info.namespace, info.name, rule.status))
                    return rule
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: urllib.parse.SplitResult
    upstream_context: ssl.SSLContext
    faults: FaultInjector
    stopping: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        info = request_info(self.command, self.path, body)
        rule = self.server.faults.take(info) if info is not None else None
        if rule is not None and rule.delay:
            self.server.stopping.wait(rule.delay)
        if rule is not None and rule.status and info is not None:
            if rule.forward:
                self._forward(body, reply=False)
            status, headers = fault_status(rule, info)
            self._send_json(rule.status, status, headers)
            return
        self._forward(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def _send_json(self, code: int, body: Obj, headers: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes | None, reply: bool = True) -> None:
        """Send the request to the API server and its answer back (``reply=False``: drop the answer)."""
        upstream = self.server.upstream
        connection = http.client.HTTPSConnection(upstream.hostname or "127.0.0.1", upstream.port,
                                                 context=self.server.upstream_context, timeout=330)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            if not reply:
                connection.getresponse().read()
                return
            answer = connection.getresponse()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            length = answer.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
                self.end_headers()
                self.wfile.write(answer.read())
            else:
                self._stream(answer)
        except OSError as exc:
            if not reply:
                return
            self._send_json(502, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 502,
                                  "message": f"fault proxy: upstream failed: {exc}"}, {})
        finally:
            connection.close()

    def _stream(self, answer: http.client.HTTPResponse) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while data := answer.read1(CHUNK):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Forwarded requests are not logged; the rules applied are in FaultInjector.applied."""


class ApiFaultProxy:
    """An HTTPS proxy on 127.0.0.1 in front of `upstream` (the API server's https URL)."""

    def __init__(self, upstream: str, upstream_ca: Path, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.faults = FaultInjector()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.upstream = urllib.parse.urlsplit(upstream)
        self.server.upstream_context = ssl.create_default_context(cafile=str(upstream_ca))
        self.server.faults = self.faults
        self.server.stopping = threading.Event()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="api-fault-proxy", daemon=True)
        self._thread.start()

    def add_fault(self, **spec: Any) -> FaultRule:
        """Fields of FaultRule: verb, resource, namespace, name, status, times, delay, retry_after, message."""
        rule = rule_from_spec(spec)
        self.faults.add(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    def close(self) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
