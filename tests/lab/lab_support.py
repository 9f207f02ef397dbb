"""Fixtures for the node agent and lab tests: an emulator with an in-process agent, and whole labs.

Every fixture uses its own temporary state directory, free ports and a pod network of its own, so the
tests can run in parallel (pytest -n 2).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pytest
from emulator_support import Kubectl, kubectl_binary

from ragops_lab.agent.api import APPS, BATCH, CORE, Api, object_path
from ragops_lab.agent.node import AgentConfig, NodeAgent
from ragops_lab.k8s_emulator import EmulatorServer
from ragops_lab.lab import Lab
from ragops_lab.runtime import JsonLog, pod_is_ready

TOKEN = "agent-test-token"
NS = "default"
KINDS = MappingProxyType({
    "Pod": (CORE, "pods"), "ConfigMap": (CORE, "configmaps"), "Secret": (CORE, "secrets"),
    "Service": (CORE, "services"), "Deployment": (APPS, "deployments"), "StatefulSet": (APPS, "statefulsets"),
    "Job": (BATCH, "jobs"),
})

T = TypeVar("T")
Obj = dict[str, Any]


def eventually(fetch: Callable[[], T], check: Callable[[T], bool], timeout: float = 20.0, what: str = "") -> T:
    """Fetch until `check` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value: {value!r}")
        time.sleep(0.05)
        value = fetch()
    return value


@dataclass
class Cluster:
    """An emulator with the node agent running beside it."""

    emulator: EmulatorServer
    api: Api
    state_dir: Path
    log_dir: Path
    kubectl: Kubectl

    def path(self, kind: str, name: str = "", subresource: str = "") -> str:
        prefix, plural = KINDS[kind]
        return object_path(prefix, plural, NS, name, subresource)

    def create(self, obj: Obj) -> Obj:
        return self.api.create(self.path(obj["kind"]), obj)

    def get(self, kind: str, name: str) -> Obj | None:
        return self.api.get(self.path(kind, name))

    def pods(self, selector: str = "") -> list[Obj]:
        return self.api.list(CORE, "pods", NS, selector)[0]

    def merge_patch(self, kind: str, name: str, patch: Obj, subresource: str = "") -> None:
        self.api.merge_patch(self.path(kind, name, subresource), patch)

    def strategic_patch(self, kind: str, name: str, patch: Obj) -> None:
        """A patch merging lists by key (containers by name, env by name), as kubectl patch does."""
        self.api.call("PATCH", self.path(kind, name), patch, "application/strategic-merge-patch+json")

    def delete(self, kind: str, name: str) -> None:
        self.api.delete(self.path(kind, name))

    def wait_pods(self, selector: str, check: Callable[[list[Obj]], bool], timeout: float = 20.0) -> list[Obj]:
        return eventually(lambda: self.pods(selector), check, timeout, f"pods {selector}")

    def wait_object(self, kind: str, name: str, check: Callable[[Obj], bool], timeout: float = 20.0) -> Obj:
        found = eventually(lambda: self.get(kind, name) or {}, lambda o: bool(o) and check(o), timeout,
                           f"{kind} {name}")
        return found


def all_ready(count: int) -> Callable[[list[Obj]], bool]:
    return lambda pods: len(pods) == count and all(pod_is_ready(p) for p in pods)


def container_status(pod: Obj, name: str = "", init: bool = False) -> Obj:
    statuses = (pod.get("status") or {}).get("initContainerStatuses" if init else "containerStatuses") or []
    return next((s for s in statuses if not name or s["name"] == name), {})


def container_pid(pod: Obj, name: str = "") -> int:
    return int(str(container_status(pod, name)["containerID"]).removeprefix("lab://"))


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


@pytest.fixture(name="cluster")
def cluster_fixture(tmp_path: Path) -> Iterator[Cluster]:
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("kubectl is not installed")
    log_dir = tmp_path / "pod-logs"
    with EmulatorServer(token=TOKEN, log_dir=log_dir) as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        config = AgentConfig(emulator.url, TOKEN, tmp_path / "state", log_dir)
        agent = NodeAgent(config, JsonLog("agent", io.StringIO()))
        stopping = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stopping,), name="node-agent", daemon=True)
        thread.start()
        try:
            yield Cluster(emulator, Api(emulator.url, TOKEN), tmp_path / "state", log_dir,
                          Kubectl(binary, kubeconfig, tmp_path / "kube-cache"))
        finally:
            stopping.set()
            thread.join(30)


# --- objects --------------------------------------------------------------------------------------


def env_list(env: dict[str, str]) -> list[Obj]:
    return [{"name": k, "value": v} for k, v in env.items()]


def provider_container(env: dict[str, str] | None = None) -> Obj:
    """The quickest lab program to start: the provider stand-in, with its readiness probe."""
    return {"name": "main", "image": "ragops-lab/provider", "ports": [{"name": "http", "containerPort": 8080}],
            "env": env_list({"PROVIDER_API_KEY": "k", **(env or {})}),
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1}}


def deployment(name: str, replicas: int = 1, env: dict[str, str] | None = None) -> Obj:
    labels = {"app": name}
    pod_spec = {"terminationGracePeriodSeconds": 2, "containers": [provider_container(env)]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def job(name: str, env: dict[str, str], backoff_limit: int = 1) -> Obj:
    container = {"name": "migrate", "image": "ragops-lab/migrate", "env": env_list(env)}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff_limit,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}


def bare_pod(name: str, containers: list[Obj], init: list[Obj] | None = None, restart_policy: str = "Always",
             volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": containers, "restartPolicy": restart_policy, "terminationGracePeriodSeconds": 2}
    if init:
        spec["initContainers"] = init
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": name}}, "spec": spec}


def log_events(text: str, event: str) -> list[Obj]:
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("event") == event]


# --- whole labs -----------------------------------------------------------------------------------


@contextmanager
def running_lab(root: Path) -> Iterator[Lab]:
    """A lab started in `root` and stopped afterwards; a failed start shows its timeline."""
    lab = Lab(root)
    output = io.StringIO()
    try:
        lab.up(output)
    except Exception as exc:
        raise AssertionError(f"lab up failed:\n{output.getvalue()}") from exc
    try:
        yield lab
    finally:
        lab.down(out=None)


@pytest.fixture(name="lab", scope="session")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab per test worker, shared by the tests that leave it as they found it."""
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as lab:
        yield lab


@pytest.fixture(name="fresh_lab")
def fresh_lab_fixture(tmp_path: Path) -> Iterator[Lab]:
    """A lab of its own, for a test that breaks it beyond repair."""
    with running_lab(tmp_path / "state") as lab:
        yield lab


def listening_sockets() -> set[tuple[str, int]]:
    """(ip, port) of every listening IPv4 TCP socket on this machine, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":
            continue
        hex_ip, hex_port = fields[1].split(":")
        octets = [str(int(hex_ip[i:i + 2], 16)) for i in (6, 4, 2, 0)]
        found.add((".".join(octets), int(hex_port, 16)))
    return found
