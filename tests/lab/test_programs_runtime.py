"""The shared program runtime: mounts, Service resolution, routing, logging and start-up gates."""

from __future__ import annotations

import http.client
import http.server
import itertools
import json
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from programs_fakes import (
    FakeKube,
    capture_log,
    free_port,
    get,
    json_lines,
    post,
    program_env,
    serving,
    start_program,
    wait_http,
)

from ragops_lab.runtime import httpclient
from ragops_lab.runtime.env import ConfigError, PodEnv, resolve_path
from ragops_lab.runtime.gates import Gates, enforce_schema_at_start
from ragops_lab.runtime.httpclient import KeepAliveClient, http_json
from ragops_lab.runtime.resolve import ResolveError, TtlCache, service_url, shard_url
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, ok


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.close()


def test_resolve_path_uses_the_longest_mount() -> None:
    mounts = {"/data": "/lab/pvc/data-0", "/data/cache": "/lab/tmp/cache", "/etc/cfg": "/lab/cm"}
    assert resolve_path("/data/index/meta.json", mounts) == Path("/lab/pvc/data-0/index/meta.json")
    assert resolve_path("/data/cache/x", mounts) == Path("/lab/tmp/cache/x")
    assert resolve_path("/data", mounts) == Path("/lab/pvc/data-0")
    assert resolve_path("/database/x", mounts) == Path("/database/x")
    assert resolve_path("/elsewhere", {}) == Path("/elsewhere")


def test_resolve_path_reads_lab_mounts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MOUNTS", '{"/data": "/lab/pvc/7"}')
    assert resolve_path("/data/a") == Path("/lab/pvc/7/a")


def test_pod_env_defaults_and_bad_mounts() -> None:
    pod = PodEnv.from_env({"POD_NAME": "vectorstore-2", "PORT": "9000"})
    assert (pod.name, pod.namespace, pod.ip, pod.port) == ("vectorstore-2", "default", "127.0.0.1", 9000)
    assert pod.mounts == {}
    with pytest.raises(ConfigError):
        PodEnv.from_env({"LAB_MOUNTS": "[1]"})
    with pytest.raises(ConfigError):
        PodEnv.from_env({"PORT": "http"})


def test_service_url_keeps_ip_hosts(kube: FakeKube) -> None:
    assert service_url("http://127.0.1.7:8080/search", kube.client()) == "http://127.0.1.7:8080/search"
    assert service_url("http://localhost:1/x", kube.client()) == "http://localhost:1/x"


def test_service_url_picks_a_ready_pod_and_the_target_port(kube: FakeKube) -> None:
    kube.service("retriever", {"app": "retriever"}, port=8080, target_port=9090)
    kube.pod("retriever-a", {"app": "retriever"}, "127.0.1.3", ready=False)
    kube.pod("retriever-b", {"app": "retriever"}, "127.0.1.4")
    kube.pod("other", {"app": "generator"}, "127.0.1.5")
    assert service_url("http://retriever:8080/search?x=1", kube.client()) == "http://127.0.1.4:9090/search?x=1"
    assert service_url("http://retriever.rag.svc.cluster.local:8080/", kube.client()) == "http://127.0.1.4:9090/"
    assert kube.auth_headers[-1] == "Bearer test-token"


def test_service_url_resolves_a_named_target_port(kube: FakeKube) -> None:
    kube.service("provider", {"app": "provider"}, port=80, target_port="http")
    kube.pod("provider-0", {"app": "provider"}, "127.0.1.9", ports={"http": 8123})
    assert service_url("provider", kube.client()) == "http://127.0.1.9:8123"


def test_service_url_fails_without_a_service_or_ready_pod(kube: FakeKube) -> None:
    with pytest.raises(ResolveError, match="not found"):
        service_url("http://missing:8080", kube.client())
    kube.service("lonely", {"app": "lonely"})
    kube.pod("lonely-0", {"app": "lonely"}, ready=False)
    with pytest.raises(ResolveError, match="no Ready pod"):
        service_url("http://lonely:8080", kube.client())


def test_shard_url_template() -> None:
    assert shard_url("http://vectorstore-{ordinal}:8080", "shard-2") == "http://vectorstore-2:8080"
    assert shard_url("http://{shard}.stores:8080", "shard-2") == "http://shard-2.stores:8080"


def test_ttl_cache_refetches_after_the_ttl() -> None:
    now = [0.0]
    fetches = itertools.count(1)
    cache = TtlCache(lambda: next(fetches), ttl=1.0, clock=lambda: now[0])
    assert cache.get() == 1
    now[0] = 0.5
    assert cache.get() == 1
    now[0] = 1.0
    assert cache.get() == 2


def _echo(request: Request) -> Response:
    if request.params["name"] == "teapot":
        raise HttpError(418, "short and stout", {"X-Why": "tea"})
    if request.params["name"] == "bug":
        raise RuntimeError("boom")
    return ok({"name": request.params["name"], "body": request.json(), "q": request.query})


def test_router_serves_json_and_maps_errors() -> None:
    log, stream = capture_log("test")
    router = add_health(Router().add("POST", "/things/{name}", _echo), lambda: (False, {"reason": "warming up"}))
    with serving(App("test", router, log)) as app:
        assert post(f"{app.url}/things/a?x=1", {"v": 1}).body == {"name": "a", "body": {"v": 1}, "q": {"x": "1"}}
        teapot = post(f"{app.url}/things/teapot")
        assert (teapot.status, teapot.body, teapot.headers["x-why"]) == (418, {"error": "short and stout"}, "tea")
        assert post(f"{app.url}/things/bug").status == 500
        assert get(f"{app.url}/things/a").status == 405
        assert get(f"{app.url}/nowhere").status == 404
        assert get(f"{app.url}/healthz").body == {"status": "ok"}
        ready = get(f"{app.url}/readyz")
        assert (ready.status, ready.body) == (503, {"ready": False, "reason": "warming up"})
    assert stream.events("request_failed")[0]["error"] == "RuntimeError('boom')"


def test_bad_json_body_is_a_400() -> None:
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/things/{name}", _echo), log)) as app:
        assert post(f"{app.url}/things/a").status == 200
        assert http_json("POST", f"{app.url}/things/a", [1, 2]).status == 400


def test_json_log_lines_carry_bound_fields() -> None:
    log, stream = capture_log("shard")
    log.bind(shard="shard-2").error("index_load_failed", error="checksum mismatch")
    event = stream.events()[0]
    assert {k: event[k] for k in ("level", "program", "event", "shard", "error")} == {
        "level": "error", "program": "shard", "event": "index_load_failed", "shard": "shard-2",
        "error": "checksum mismatch"}
    assert event["ts"].endswith("Z")


def test_schema_gate(kube: FakeKube) -> None:
    log, stream = capture_log("retriever")
    gates = Gates.from_env({"REQUIRED_SCHEMA_VERSION": "3"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_version_too_old")[0]["found"] == 0
    kube.configmap("rag-schema", {"version": "2"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_version_too_old")[-1]["found"] == 2
    kube.configmap("rag-schema", {"version": "3"})
    assert enforce_schema_at_start(gates, kube.client(), log)
    assert stream.events("schema_ok")[-1]["version"] == 3
    assert enforce_schema_at_start(Gates.from_env({}), kube.client(), log)
    kube.configmap("rag-schema", {"version": "three"})
    assert not enforce_schema_at_start(gates, kube.client(), log)
    assert "non-numeric" in stream.events("schema_check_failed")[0]["error"]
    with pytest.raises(ConfigError):
        Gates.from_env({"REQUIRED_SCHEMA_VERSION": "two"})


@pytest.mark.parametrize(("program", "env"), [
    ("provider", {"PROVIDER_NAME": "backup", "PROVIDER_API_KEY": "k"}),
    ("retriever", {"REQUIRED_SCHEMA_VERSION": "1"}),
    ("generator", {"RETRIEVER_URL": "http://127.0.0.1:9", "PROVIDER_URL_PRIMARY": "http://127.0.0.1:9"}),
    ("controller", {}),
    ("indexer", {}),
])
def test_every_server_program_honours_the_process_contract(kube: FakeKube, program: str, env: dict[str, str]) -> None:
    """Started as `python -m`, configured by env alone, JSON logs on stdout, exit 0 on SIGTERM."""
    kube.configmap("rag-schema", {"version": "1"})
    port = free_port()
    process = start_program(program, program_env(**kube.env(), POD_NAME=f"{program}-0", POD_IP="127.0.0.1",
                                                 PORT=str(port), **env), *(["serve"] if program == "indexer" else []))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert get(f"http://127.0.0.1:{port}/healthz").body == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    events = json_lines(out)
    assert {e["program"] for e in events} == {program}
    assert [e["event"] for e in events][-3:] == ["listening", "stopping", "stopped"]


def _raw_exchange(url: str, request: bytes, until: bytes = b"}") -> bytes:
    """What the server sends back on one connection for `request`, read until it ends with `until`
    or closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while not received.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _headers_echo(request: Request) -> Response:
    return ok({"headers": request.headers, "body": request.json()})


def test_request_heads_are_read_as_http_1_and_connections_are_kept() -> None:
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/h", _headers_echo), log)) as app:
        connection = http.client.HTTPConnection(app.host, app.port, timeout=5)
        for number in range(2):
            body = json.dumps({"n": number}).encode()
            connection.putrequest("POST", "/h")
            connection.putheader("X-Dup", "one")
            connection.putheader("x-dup", "two")
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert answer["headers"]["x-dup"] == "one, two" and answer["body"] == {"n": number}
            assert response.getheader("Connection") is None and connection.sock is not None
        connection.close()
        # An HTTP/1.0 request without keep-alive gets its answer, told and followed by the close.
        closed = _raw_exchange(app.url, b"POST /h HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", until=b"\0")
        assert closed.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in closed
        assert closed.endswith(b'"body": {}}')


def test_a_malformed_or_oversized_request_head_is_refused() -> None:
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/things/{name}", _echo), log)) as app:
        no_colon = _raw_exchange(app.url, b"POST /things/a HTTP/1.1\r\nHost t\r\n\r\n", until=b"\0")
        assert no_colon.startswith(b"HTTP/1.1 400 ")
        many = b"".join(b"X-%d: v\r\n" % n for n in range(101))
        too_many = _raw_exchange(app.url, b"POST /things/a HTTP/1.1\r\n" + many + b"\r\n", until=b"\0")
        assert too_many.startswith(b"HTTP/1.1 431 ")
        # Anything but METHOD TARGET HTTP/1.x goes through http.server's own parsing and its answers.
        assert b"Error code: 505" in _raw_exchange(app.url, b"POST /things/a HTTP/2.0\r\n\r\n", until=b"\0")


def test_a_client_expecting_100_continue_gets_it_before_sending_its_body() -> None:
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/things/{name}", _echo), log)) as app:
        host, port = app.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /things/a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")
            sock.sendall(b"{}")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


def test_an_answer_goes_out_as_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    original = socketserver._SocketWriter.write

    def counting(self: socketserver._SocketWriter, data: bytes) -> int:
        writes.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", counting)
    log, _ = capture_log("test")
    with serving(App("test", Router().add("POST", "/things/{name}", _echo), log)) as app:
        assert post(f"{app.url}/things/a", {"v": 1}).status == 200
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b'{"name": "a", "body": {"v": 1}, "q": {}}')


def _slow_echo(seconds: float) -> Router:
    def answer(request: Request) -> Response:
        time.sleep(seconds)
        return ok({"path": request.path})

    return Router().add("POST", "/slow", answer).add("GET", "/chunked", answer)


def test_requests_sent_together_are_answered_side_by_side() -> None:
    log, _ = capture_log("test")
    client = KeepAliveClient()
    with serving(App("a", _slow_echo(0.4), log)) as first, serving(App("b", _slow_echo(0.4), log)) as second:
        started = time.monotonic()
        sent = [client.send("POST", f"{app.url}/slow", {}, timeout=5) for app in (first, second)]
        answers = [exchange.result() for exchange in sent]
        elapsed = time.monotonic() - started
    assert [a.body for a in answers] == [{"path": "/slow"}, {"path": "/slow"}]
    assert elapsed < 0.75  # both servers worked at once: not 0.8 s one after the other


def test_requests_sent_together_share_one_deadline() -> None:
    log, _ = capture_log("test")
    client = KeepAliveClient()
    with serving(App("a", _slow_echo(2.0), log)) as first, serving(App("b", _slow_echo(2.0), log)) as second:
        started = time.monotonic()
        sent = [client.send("POST", f"{app.url}/slow", {}, timeout=0.5) for app in (first, second)]
        for exchange in sent:
            with pytest.raises(TimeoutError, match="timed out"):
                exchange.result()
        elapsed = time.monotonic() - started
    assert elapsed < 0.9  # the second answer's wait ended with the first's: not 0.5 s after it


class _ChunkedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b'{"a": ', b"[1, 2]", b"}"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = b'{"closing": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_pool_reads_chunked_answers_and_drops_connections_the_server_closes() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    opened: list[int] = []
    connect = httpclient.PooledConnection.connect

    def counting(self: httpclient.PooledConnection) -> None:
        opened.append(self.port)
        connect(self)

    client = KeepAliveClient()
    try:
        with mock.patch.object(httpclient.PooledConnection, "connect", counting):
            assert [client.call("GET", url + "/").body for _ in range(2)] == [{"a": [1, 2]}] * 2
            assert len(opened) == 1  # the chunked answer was read to its end: the connection was reused
            assert client.call("POST", url + "/", {}).body == {"closing": True}
        # The answer that said close took its connection with it: nothing idle is left to reuse.
        assert len(opened) == 1 and not client._idle[("127.0.0.1", server.server_address[1])]
    finally:
        server.shutdown()
        server.server_close()


def test_the_api_client_keeps_its_connection_between_reads(kube: FakeKube) -> None:
    opened: list[int] = []
    connect = httpclient.PooledConnection.connect

    def counting(self: httpclient.PooledConnection) -> None:
        opened.append(self.port)
        connect(self)

    kube.configmap("rag-schema", {"version": "1"})
    client = kube.client()
    with mock.patch.object(httpclient.PooledConnection, "connect", counting):
        assert [client.configmap_data("rag-schema") for _ in range(3)] == [{"version": "1"}] * 3
    assert len(opened) == 1
