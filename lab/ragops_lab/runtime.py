"""Shared plumbing for the lab programs: pod environment, Kubernetes reads, logging and HTTP serving.

Every program reads its configuration from environment variables the way a container does, logs
one JSON object per line to stdout (the pod log) and serves JSON over HTTP with the same health
conventions, so the node agent and the collection can treat all of them alike.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

T = TypeVar("T")

DEFAULT_PORT = 8080
RESOLVE_TTL_SECONDS = 1.0
DEFAULT_SHARD_URL_TEMPLATE = "http://vectorstore-{ordinal}:8080"
SHUTDOWN_POLL_SECONDS = 0.05


class ConfigError(ValueError):
    """An environment variable or argument has a value the program cannot use."""


class KubeError(RuntimeError):
    """The Kubernetes API answered with an error status or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {status or 'unreachable'}: {message}")
        self.status = status


class ResolveError(RuntimeError):
    """A Service name could not be turned into the address of a Ready pod."""


class HttpError(Exception):
    """Raised by a route handler to answer with an error status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body if isinstance(body, dict) else {"error": str(body)}
        self.headers = dict(headers or {})


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ConfigError(f"not an ISO 8601 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- environment -------------------------------------------------------------------------------


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_choice(env: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    value = env_str(env, name, default).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(env: Mapping[str, str], name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(env, name, default).split(",") if item.strip()]


def parse_mounts(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        mounts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"LAB_MOUNTS is not JSON: {exc}") from exc
    if not isinstance(mounts, dict) or not all(isinstance(v, str) for v in mounts.values()):
        raise ConfigError("LAB_MOUNTS must be a JSON object of mountPath to local directory")
    return {str(k): v for k, v in mounts.items()}


@dataclass(frozen=True)
class PodEnv:
    """What the node agent tells every pod about itself."""

    name: str
    namespace: str
    ip: str
    port: int
    kube_api_url: str
    kube_token: str
    mounts: dict[str, str] = field(default_factory=dict)
    kube_ca_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_port: int = DEFAULT_PORT) -> PodEnv:
        return cls(
            name=env_str(env, "POD_NAME", "lab-pod"),
            namespace=env_str(env, "POD_NAMESPACE", "default"),
            ip=env_str(env, "POD_IP", "127.0.0.1"),
            port=env_int(env, "PORT", default_port),
            kube_api_url=env_str(env, "KUBE_API_URL"),
            kube_token=env_str(env, "KUBE_TOKEN"),
            mounts=parse_mounts(env.get("LAB_MOUNTS", "")),
            kube_ca_file=env_str(env, "KUBE_CA_FILE"),
        )

    def kube(self) -> KubeClient:
        return KubeClient(self.kube_api_url, self.kube_token, self.namespace, ca_file=self.kube_ca_file)


def resolve_path(container_path: str, mounts: Mapping[str, str] | None = None) -> Path:
    """Map a path inside the container to the local directory playing its volume.

    The longest mountPath that is a whole-component prefix wins, as with nested volume mounts;
    a path that no mount covers is returned unchanged.
    """
    table = parse_mounts(os.environ.get("LAB_MOUNTS", "")) if mounts is None else mounts
    target = Path(container_path)
    best: tuple[int, Path] | None = None
    for mount_path, local_dir in table.items():
        mount = Path(mount_path)
        if target == mount or mount in target.parents:
            depth = len(mount.parts)
            if best is None or depth > best[0]:
                best = (depth, Path(local_dir) / target.relative_to(mount))
    return best[1] if best else target


# --- logging -----------------------------------------------------------------------------------


class JsonLog:
    """One JSON object per line: the pod log a real service would write."""

    def __init__(self, program: str, stream: TextIO | None = None, **fields: object) -> None:
        self._program = program
        self._stream = stream
        self._fields = fields
        self._lock = threading.Lock()

    def bind(self, **fields: object) -> JsonLog:
        child = JsonLog(self._program, self._stream, **{**self._fields, **fields})
        child._lock = self._lock
        return child

    def info(self, event: str, **fields: object) -> None:
        self._write("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._write("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._write("error", event, fields)

    def _write(self, level: str, event: str, fields: Mapping[str, object]) -> None:
        record: dict[str, object] = {"ts": utc_now(), "level": level, "program": self._program, "event": event}
        record.update(self._fields)
        record.update(fields)
        line = json.dumps(record, default=str, sort_keys=False)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


# --- HTTP client -------------------------------------------------------------------------------


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


# --- Kubernetes --------------------------------------------------------------------------------


class KubeClient:
    """The few REST calls the lab programs make against the Kubernetes API."""

    def __init__(self, base_url: str, token: str, namespace: str, timeout: float = 5.0, ca_file: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.timeout = timeout
        # The API server's certificate is trusted through the CA bundle the node agent names.
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def path(self, plural: str, name: str = "", namespace: str | None = None) -> str:
        ns = urllib.parse.quote(namespace or self.namespace)
        suffix = f"/{urllib.parse.quote(name)}" if name else ""
        return f"/api/v1/namespaces/{ns}/{plural}{suffix}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        if not self.base_url:
            raise KubeError(0, "KUBE_API_URL is not set")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            result = http_json(method, self.base_url + path, body, headers, self.timeout, self.context)
        except (TimeoutError, Unreachable) as exc:
            raise KubeError(0, str(exc)) from exc
        if result.status >= 400:
            message = result.body.get("message", result.body) if isinstance(result.body, dict) else result.body
            raise KubeError(result.status, f"{method} {path}: {message}")
        return result.body

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_optional(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The named object, or None when the API says it does not exist."""
        try:
            obj = self.get(self.path(plural, name, namespace))
        except KubeError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    def configmap_data(self, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap, or None when it does not exist."""
        obj = self.get_optional("configmaps", name)
        return None if obj is None else dict(obj.get("data") or {})


def is_ip_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def split_service_host(host: str, default_namespace: str) -> tuple[str, str]:
    """`svc`, `svc.ns`, `svc.ns.svc` and `svc.ns.svc.cluster.local` → (service, namespace)."""
    labels = host.split(".")
    if len(labels) == 1:
        return labels[0], default_namespace
    return labels[0], labels[1]


def _target_port(service: Mapping[str, Any], url_port: int | None, pod: Mapping[str, Any]) -> int:
    ports = service.get("spec", {}).get("ports") or []
    if not ports:
        raise ResolveError(f"Service {service['metadata']['name']} has no ports")
    matching = [p for p in ports if url_port is None or p.get("port") == url_port]
    if not matching:
        raise ResolveError(f"Service {service['metadata']['name']} has no port {url_port}")
    target = matching[0].get("targetPort", matching[0].get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    raise ResolveError(f"named targetPort {target!r} not found in pod {pod['metadata']['name']}")


def service_url(name_or_url: str, kube: KubeClient | None = None) -> str:
    """Turn a URL whose host is a Service name into the URL of one of its Ready pods.

    An IP host (or localhost) is returned unchanged. Raises ResolveError when the Service is
    missing or has no Ready pod, which is what makes a dependency "not ready".
    """
    url = name_or_url if "://" in name_or_url else f"http://{name_or_url}"
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if is_ip_host(host):
        return url
    client = kube or PodEnv.from_env(os.environ).kube()
    name, namespace = split_service_host(host, client.namespace)
    try:
        service = client.get_optional("services", name, namespace)
        if service is None:
            raise ResolveError(f"Service {namespace}/{name} not found")
        selector = service.get("spec", {}).get("selector") or {}
        if not selector:
            raise ResolveError(f"Service {namespace}/{name} has no selector")
        query = urllib.parse.urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())})
        pods = client.get(client.path("pods", namespace=namespace) + "?" + query).get("items") or []
    except KubeError as exc:
        raise ResolveError(f"cannot resolve Service {namespace}/{name}: {exc}") from exc
    ready = sorted((p for p in pods if pod_is_ready(p)), key=lambda p: p["metadata"]["name"])
    if not ready:
        raise ResolveError(f"Service {namespace}/{name} has no Ready pod")
    pod = ready[0]
    port = _target_port(service, parts.port, pod)
    netloc = f"{pod['status']['podIP']}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def shard_url(template: str, shard: str) -> str:
    """The URL of a shard from a template with `{shard}` and `{ordinal}` (shard-2 → 2)."""
    match = re.search(r"(\d+)$", shard)
    return template.format(shard=shard, ordinal=match.group(1) if match else shard)


class TtlCache(Generic[T]):
    """A value fetched at most once per `ttl` seconds; a failed fetch is retried on next use."""

    def __init__(self, fetch: Callable[[], T], ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None

    def get(self) -> T:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._value[0] >= self._ttl:
                self._value = (now, self._fetch())
            return self._value[1]


class ServiceResolver:
    """service_url with a short per-URL cache, so hot paths do not hit the API on every call."""

    def __init__(self, kube: KubeClient, ttl: float = RESOLVE_TTL_SECONDS) -> None:
        self._kube = kube
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, TtlCache[str]] = {}

    def resolve(self, url: str) -> str:
        with self._lock:
            entry = self._cache.get(url)
            if entry is None:
                entry = TtlCache(lambda: service_url(url, self._kube), self._ttl)
                self._cache[url] = entry
        return entry.get()


# --- start-up gates shared by retriever, generator and controller ------------------------------


@dataclass(frozen=True)
class Gates:
    """Schema version required at start and Services that must be ready before this one is."""

    required_schema: int | None
    schema_configmap: str
    wait_for: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_required: int | None = None) -> Gates:
        raw = env_str(env, "REQUIRED_SCHEMA_VERSION")
        if raw and not raw.isdigit():
            raise ConfigError(f"REQUIRED_SCHEMA_VERSION must be a whole number, got {raw!r}")
        required = int(raw) if raw else default_required
        return cls(required, env_str(env, "SCHEMA_CONFIGMAP", "rag-schema"), tuple(env_list(env, "WAIT_FOR")))


def read_schema_version(kube: KubeClient, configmap: str) -> int:
    """The schema version recorded in the ConfigMap; 0 when it or its key does not exist."""
    data = kube.configmap_data(configmap)
    raw = (data or {}).get("version", "0").strip()
    if not raw.isdigit():
        raise ConfigError(f"ConfigMap {configmap} holds a non-numeric schema version {raw!r}")
    return int(raw)


def enforce_schema_at_start(gates: Gates, kube: KubeClient, log: JsonLog) -> bool:
    """Check the schema once at start-up; log the reason the program must exit when it is too old."""
    if gates.required_schema is None:
        return True
    try:
        found = read_schema_version(kube, gates.schema_configmap)
    except (KubeError, ConfigError) as exc:
        log.error("schema_check_failed", configmap=gates.schema_configmap, error=str(exc))
        return False
    if found >= gates.required_schema:
        log.info("schema_ok", configmap=gates.schema_configmap, version=found, required=gates.required_schema)
        return True
    log.error(
        "schema_version_too_old",
        configmap=gates.schema_configmap,
        required=gates.required_schema,
        found=found,
        hint=f"run the migration job (ragops-lab/migrate) with TARGET_SCHEMA_VERSION={gates.required_schema}",
    )
    return False


def dependency_status(wait_for: Sequence[str], resolver: ServiceResolver) -> dict[str, str]:
    """Each awaited Service → "ready" or why it is not."""
    status = {}
    for name in wait_for:
        try:
            resolver.resolve(f"http://{name}")
            status[name] = "ready"
        except ResolveError as exc:
            status[name] = str(exc)
    return status


# --- HTTP serving ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; a 400 for anything else."""
        try:
            parsed = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HttpError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise HttpError(400, "request body must be a JSON object")
        return parsed


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


Handler = Callable[[Request], Response]
Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class Router:
    """Method + path routing with `{name}` path parameters."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> Router:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))
        return self

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed = True
                continue
            return handler(replace(request, params=match.groupdict()))
        raise HttpError(405 if allowed else 404, f"no route for {request.method} {request.path}")


def add_health(router: Router, readiness: Readiness) -> Router:
    """The liveness and readiness endpoints every lab program serves."""

    def readyz(_: Request) -> Response:
        ready, detail = readiness()
        return Response(200 if ready else 503, {"ready": ready, **detail})

    router.add("GET", "/healthz", lambda _: ok({"status": "ok"}))
    return router.add("GET", "/readyz", readyz)


@dataclass
class App:
    """A program's HTTP surface plus the background loops that run beside it."""

    name: str
    router: Router
    log: JsonLog
    stopping: threading.Event = field(default_factory=threading.Event)
    background: Sequence[Callable[[threading.Event], None]] = ()


def _handler_class(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(urllib.parse.parse_qsl(parts.query)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            self._send(_dispatch(app, request))

        def _send(self, response: Response) -> None:
            payload = json.dumps(response.body).encode()
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                app.log.warning("client_went_away", path=self.path)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Access logs stay out of the pod log; programs log the events that matter."""

    return Handler


def _dispatch(app: App, request: Request) -> Response:
    try:
        return app.router.dispatch(request)
    except HttpError as err:
        return Response(err.status, err.body, err.headers)
    except Exception as exc:  # a handler bug must become a logged 500, not a dead connection
        app.log.error("request_failed", method=request.method, path=request.path, error=repr(exc))
        return Response(500, {"error": f"internal error: {exc}"})


class _Server(ThreadingHTTPServer):
    # The default accept queue of 5 overflows when a caller fans out dozens of queries at once,
    # which a real service's listen backlog would absorb.
    request_queue_size = 128


class RunningApp:
    """An App served on a background thread; used by `run_app` and by tests."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        self.server = _Server((host, port), _handler_class(app))
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        # a short poll keeps shutdown (SIGTERM, tests) quick; the cost is a few idle wake-ups a second
        serve = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,),
                                 name=f"{app.name}-http", daemon=True)
        self._threads = [serve]
        self._threads += [
            threading.Thread(target=loop, args=(app.stopping,), name=f"{app.name}-bg", daemon=True)
            for loop in app.background
        ]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self.app.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout)


def run_app(app: App, pod: PodEnv) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully; returns the exit code."""
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        running = RunningApp(app, pod.ip, pod.port)
    except OSError as exc:
        app.log.error("bind_failed", address=f"{pod.ip}:{pod.port}", error=str(exc))
        return 1
    app.log.info("listening", address=f"{pod.ip}:{pod.port}", pod=pod.name, namespace=pod.namespace)
    stop_requested.wait()
    app.log.info("stopping", reason="signal")
    running.stop()
    app.log.info("stopped")
    return 0


def main_guard(program: str, body: Callable[[], int]) -> int:
    """Run a program's main body, turning configuration errors into a clear log line and exit 2."""
    try:
        return body()
    except ConfigError as exc:
        JsonLog(program).error("invalid_config", error=str(exc))
        return 2
