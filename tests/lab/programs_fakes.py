"""Test helpers for the lab programs: a tiny fake Kubernetes API, log capture and process control.

The fake API answers only what the programs ask for (ConfigMaps, Services, pods by label
selector; create and replace with resourceVersion conflicts), so the programs' unit tests run
without a control plane; the lab's tests run the same programs on the real one.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragops_lab import corpus
from ragops_lab.programs import shard
from ragops_lab.runtime.httpclient import HttpResult, http_json
from ragops_lab.runtime.kubeapi import KubeClient
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.server import App, Request, Response, Router, RunningApp, ok

LAB_DIR = Path(__file__).resolve().parents[2] / "lab"
NAMESPACE = "rag"


class LogCapture(io.StringIO):
    """A JsonLog stream whose lines can be read back as events."""

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]
        return [r for r in records if event is None or r["event"] == event]


def capture_log(program: str) -> tuple[JsonLog, LogCapture]:
    stream = LogCapture()
    return JsonLog(program, stream), stream


def _status(code: int, reason: str, message: str) -> Response:
    return Response(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                           "reason": reason, "message": message})


def _matches(labels: dict[str, str], selector: str) -> bool:
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return all(labels.get(k) == v for k, v in wanted.items())


class FakeKube:
    """ConfigMaps, Services and pods in memory behind the Kubernetes REST paths the programs use."""

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.auth_headers: list[str] = []
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        router = Router()
        router.add("GET", "/api/v1/namespaces/{ns}/{plural}", self._list)
        router.add("POST", "/api/v1/namespaces/{ns}/{plural}", self._create)
        router.add("GET", "/api/v1/namespaces/{ns}/{plural}/{name}", self._get)
        router.add("PUT", "/api/v1/namespaces/{ns}/{plural}/{name}", self._replace)
        log, self.log = capture_log("fake-kube")
        self._running = RunningApp(App("fake-kube", router, log), "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return self._running.url

    def client(self) -> KubeClient:
        return KubeClient(self.url, "test-token", self.namespace)

    def env(self) -> dict[str, str]:
        return {"KUBE_API_URL": self.url, "KUBE_TOKEN": "test-token", "POD_NAMESPACE": self.namespace}

    def close(self) -> None:
        self._running.stop()

    # fixtures

    def store(self, plural: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        with self._lock:
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {}).update(namespace=ns, resourceVersion=str(next(self._versions)))
            self.objects[(plural, ns, stored["metadata"]["name"])] = stored
            return copy.deepcopy(stored)

    def configmap(self, name: str, data: dict[str, str]) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        return self.store("configmaps", body)

    def configmap_data(self, name: str) -> dict[str, str] | None:
        with self._lock:
            obj = self.objects.get(("configmaps", self.namespace, name))
            return None if obj is None else dict(obj.get("data") or {})

    def delete(self, plural: str, name: str) -> None:
        with self._lock:
            self.objects.pop((plural, self.namespace, name), None)

    def service(self, name: str, selector: dict[str, str], port: int = 8080, target_port: int | str = 8080) -> None:
        self.store("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                                "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target_port}]}})

    def pod(self, name: str, labels: dict[str, str], ip: str = "127.0.0.1", ready: bool = True,
            ports: dict[str, int] | None = None) -> None:
        container = {"name": "main", "image": "ragops-lab/test",
                     "ports": [{"name": n, "containerPort": p} for n, p in (ports or {}).items()]}
        self.store("pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [container]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        })

    def expose(self, name: str, url: str) -> None:
        """A Service `name` with one Ready pod answering at the loopback `url`."""
        host, port = url.removeprefix("http://").split(":")
        self.service(name, {"app": name}, 8080, int(port))
        self.pod(f"{name}-0", {"app": name}, host)

    # handlers

    def _seen(self, request: Request) -> None:
        self.auth_headers.append(request.headers.get("authorization", ""))

    def _list(self, request: Request) -> Response:
        self._seen(request)
        ns, plural = request.params["ns"], request.params["plural"]
        selector = request.query.get("labelSelector", "")
        with self._lock:
            items = [copy.deepcopy(o) for (p, n, _), o in sorted(self.objects.items())
                     if p == plural and n == ns and _matches(o["metadata"].get("labels") or {}, selector)]
        return ok({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})

    def _get(self, request: Request) -> Response:
        self._seen(request)
        key = (request.params["plural"], request.params["ns"], request.params["name"])
        with self._lock:
            obj = self.objects.get(key)
        if obj is None:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        return ok(copy.deepcopy(obj))

    def _create(self, request: Request) -> Response:
        self._seen(request)
        body = request.json()
        key = (request.params["plural"], request.params["ns"], body["metadata"]["name"])
        with self._lock:
            exists = key in self.objects
        if exists:
            return _status(409, "AlreadyExists", f'{key[0]} "{key[2]}" already exists')
        return ok(self.store(key[0], body, key[1]), status=201)

    def _replace(self, request: Request) -> Response:
        self._seen(request)
        body = request.json()
        key = (request.params["plural"], request.params["ns"], request.params["name"])
        with self._lock:
            current = self.objects.get(key)
        if current is None:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        if body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", "the object has been modified; apply your changes to the latest version")
        return ok(self.store(key[0], body, key[1]))


# --- serving and processes ---------------------------------------------------------------------


def registry_entry(state: str = "serving", **fields: str) -> str:
    return json.dumps({"state": state, "reason": "", "since": "2025-01-15T00:00:00Z", **fields})


@contextmanager
def shard_servers(root: Path, docs: list[corpus.Document]) -> Iterator[dict[str, RunningApp]]:
    """Every shard of the corpus built under `root` and served in-process, by shard id."""
    running: dict[str, RunningApp] = {}
    try:
        for shard_id in corpus.shard_ids():
            volume = root / shard_id
            shard.build_shard_index(corpus.CorpusSpec(), shard_id, volume, documents=docs)
            config = shard.ShardConfig(shard_id=shard_id, data_dir=volume, integrity_check_seconds=0)
            service = shard.ShardService(config, capture_log("shard")[0])
            service.open_index()
            running[shard_id] = RunningApp(service.app(), "127.0.0.1", 0)
        yield running
    finally:
        for app in running.values():
            app.stop()


@contextmanager
def serving(app: App) -> Iterator[RunningApp]:
    running = RunningApp(app, "127.0.0.1", 0)
    try:
        yield running
    finally:
        running.stop()


def get(url: str, timeout: float = 5.0) -> HttpResult:
    return http_json("GET", url, timeout=timeout)


def post(url: str, body: Any = None, timeout: float = 5.0, headers: dict[str, str] | None = None) -> HttpResult:
    return http_json("POST", url, body if body is not None else {}, headers, timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def program_env(**extra: str) -> dict[str, str]:
    """A clean environment for a program process: the lab on PYTHONPATH plus what the test sets."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**base, "PYTHONPATH": str(LAB_DIR), "PYTHONUNBUFFERED": "1", **extra}


def start_program(module: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", f"ragops_lab.programs.{module}", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_program(module: str, env: dict[str, str], *args: str,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"ragops_lab.programs.{module}", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_http(url: str, timeout: float = 10.0) -> None:
    """Wait until a server answers at all (any status)."""

    def answers() -> bool:
        try:
            get(url, timeout=0.5)
        except (ConnectionError, TimeoutError):
            return False
        return True

    wait_until(answers, timeout, interval=0.05)
