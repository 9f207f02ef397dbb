"""Fixtures for the node agent and lab tests: a real control plane with the node agent, and whole labs.

A test module shares one cluster (the upstream control plane and the agent, as the lab runs them);
each test gets a namespace of its own in it. Every fixture uses its own temporary state directory
and free ports, so the tests can run in parallel (pytest -n 2).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pytest

from ragops_lab.agent.api import APPS, BATCH, CORE, Api, object_path
from ragops_lab.cluster import KubeCluster
from ragops_lab.kube.kubectl import kubectl_binary
from ragops_lab.lab import Lab
from ragops_lab.runtime.kubeapi import pod_is_ready

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


class Kubectl:
    """kubectl as built with the control plane, against one kubeconfig."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = str(kubectl_binary())
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(cache_dir)}
        self.cache_dir = cache_dir

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--cache-dir", str(self.cache_dir), *args],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=60, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@dataclass
class Cluster:
    """One test's namespace in a cluster of the lab (control plane and node agent)."""

    kube: KubeCluster
    api: Api
    namespace: str
    kubectl: Kubectl

    @property
    def state_dir(self) -> Path:
        """The agent's state: volumes, claims' directories."""
        return self.kube.paths.root

    def path(self, kind: str, name: str = "", subresource: str = "") -> str:
        prefix, plural = KINDS[kind]
        return object_path(prefix, plural, self.namespace, name, subresource)

    def create(self, obj: Obj) -> Obj:
        return self.api.create(self.path(obj["kind"]), obj)

    def get(self, kind: str, name: str) -> Obj | None:
        return self.api.get(self.path(kind, name))

    def pods(self, selector: str = "") -> list[Obj]:
        return self.api.list(CORE, "pods", self.namespace, selector)[0]

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


@pytest.fixture(scope="module", name="kube")
def kube_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """The control plane and the node agent, shared by a test module."""
    with KubeCluster(tmp_path_factory.mktemp("kube")) as kube:
        yield kube


def namespace_for(test_name: str) -> str:
    """A DNS label from the test's name (at most 63 characters)."""
    return re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:50].rstrip("-")


@pytest.fixture(name="cluster")
def cluster_fixture(kube: KubeCluster, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A namespace of this test's own; deleted afterwards, so its pods stop."""
    namespace = namespace_for(request.node.name)
    api = kube.api()
    api.create(f"{CORE}/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kube.wait_for_service_account(namespace)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    try:
        yield Cluster(kube, api, namespace, Kubectl(kubeconfig, tmp_path / "kube-cache"))
    finally:
        api.delete(f"{CORE}/namespaces/{namespace}")


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


@pytest.fixture(name="lab", scope="module")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab per test module, shared by its tests that leave it as they found it (stopped with the module:
    an idle control plane left running would slow every other module on the worker)."""
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


def processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line holds `marker` (a test's own, to find what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
