"""The lab's Kubernetes: go.mod generation, the control plane's PKI, and the API fault proxy, the last
against a real kube-apiserver."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragops_lab.cluster import KubeCluster
from ragops_lab.kube import build
from ragops_lab.kube.faults import ApiFaultProxy, FaultError, request_info, rule_from_spec
from ragops_lab.kube.kubectl import kubectl_binary
from ragops_lab.kube.pki import LabCA, ca_certificates

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/spf13/cobra v1.10.2
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/utils v0.0.0-20260626114624-be93311217bd
)

require k8s.io/kube-openapi v0.0.0-20260721132016-d427ff9ee9ad // indirect

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_go_mod_replaces_every_staging_module_with_its_published_twin() -> None:
    release = build.Release.parse("1.37.2")
    text = build.go_mod_text(release, UPSTREAM_GO_MOD)
    assert build.staging_modules(UPSTREAM_GO_MOD) == ["k8s.io/api", "k8s.io/client-go"]
    assert "\tk8s.io/api => k8s.io/api v0.37.2\n" in text and "\tk8s.io/client-go => k8s.io/client-go v0.37.2\n" in text
    assert "require k8s.io/kubernetes v1.37.2" in text and "godebug default=go1.26" in text
    assert "k8s.io/utils =>" not in text
    assert build.pinned_release(text) == release


def test_the_committed_go_mod_covers_the_release_it_pins() -> None:
    go_mod = (build.MODULE_DIR / "go.mod").read_text()
    release = build.pinned_release(go_mod)
    assert release.minor == 37  # the kubernetes Python client in requirements.txt is 37.x
    for name in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/kubectl"):
        assert f"\t{name} => {name} {release.staging_version}\n" in go_mod
    assert sorted(p.name for p in build.MODULE_DIR.iterdir()) == ["go.mod", "go.sum", "main.go"]


def test_a_release_that_is_not_one_is_refused() -> None:
    with pytest.raises(build.BuildError, match="not a Kubernetes release"):
        build.Release.parse("latest")


def test_the_build_key_follows_the_module_files(tmp_path: Path) -> None:
    for name in build.MODULE_FILES:
        (tmp_path / name).write_text(name)
    before = build.module_key(tmp_path)
    (tmp_path / "go.sum").write_text("changed")
    assert build.module_key(tmp_path) != before


def test_the_binary_reports_the_pinned_release() -> None:
    done = subprocess.run([str(kubectl_binary()), "version", "--client", "-o", "json"], capture_output=True,
                          text=True, check=True)
    release = build.pinned_release((build.MODULE_DIR / "go.mod").read_text())
    assert json.loads(done.stdout)["clientVersion"]["gitVersion"] == release.version


def test_only_ca_certificates_are_kept_from_a_bundle(tmp_path: Path) -> None:
    ca = LabCA(tmp_path)
    leaf = ca.issue("leaf", "leaf", hosts=("127.0.0.1",))
    bundle = leaf.cert.read_bytes() + ca.cert.read_bytes()
    assert ca_certificates(bundle) == [ca.cert.read_bytes()]


@pytest.mark.parametrize(("method", "target", "expected"), [
    ("GET", "/api/v1/namespaces/rag/configmaps/reg", ("get", "configmaps", "rag", "reg")),
    ("GET", "/api/v1/namespaces/rag/pods?labelSelector=a%3Db", ("list", "pods", "rag", "")),
    ("GET", "/api/v1/namespaces/rag/pods?watch=true", ("watch", "pods", "rag", "")),
    ("PATCH", "/api/v1/namespaces/rag/pods/p/status", ("patch", "pods/status", "rag", "p")),
    ("PUT", "/apis/apps/v1/namespaces/rag/deployments/g/scale", ("update", "deployments/scale", "rag", "g")),
    ("POST", "/apis/batch/v1/namespaces/rag/jobs", ("create", "jobs", "rag", "")),
    ("DELETE", "/api/v1/namespaces/rag/pods", ("deletecollection", "pods", "rag", "")),
    ("GET", "/api/v1/namespaces/rag", ("get", "namespaces", "", "rag")),
    ("GET", "/api/v1/nodes/lab-node", ("get", "nodes", "", "lab-node")),
])
def test_requests_are_named_as_the_api_server_names_them(method: str, target: str,
                                                         expected: tuple[str, ...]) -> None:
    info = request_info(method, target)
    assert info is not None and (info.verb, info.resource, info.namespace, info.name) == expected


def test_non_resource_paths_are_never_faulted() -> None:
    assert request_info("GET", "/version") is None and request_info("GET", "/apis/apps/v1") is None


def test_malformed_fault_rules_are_refused() -> None:
    for spec in ({"status": 418}, {"times": 0}, {"verb": "frobnicate"}, {"colour": "red"}, {"delay": -1}):
        with pytest.raises(FaultError):
            rule_from_spec(spec)


# --- the proxy in front of a real API server ------------------------------------------------------


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        cluster.start_control_plane()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(name="proxy")
def proxy_fixture(cluster: KubeCluster) -> Iterator[ApiFaultProxy]:
    proxy = cluster.fault_proxy()
    yield proxy
    proxy.close()


def call(cluster: KubeCluster, url: str, method: str = "GET", body: object = None) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {cluster.admin_token}", "Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=str(cluster.paths.ca_bundle))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_fault_answers_as_the_api_server_would_then_requests_pass(cluster: KubeCluster,
                                                                     proxy: ApiFaultProxy) -> None:
    proxy.add_fault(verb="list", resource="configmaps", namespace="default", status=429, times=1, retry_after=2)
    url = f"{proxy.url}/api/v1/namespaces/default/configmaps"
    status, body = call(cluster, url)
    assert status == 429 and body["reason"] == "TooManyRequests" and body["kind"] == "Status"
    status, body = call(cluster, url)
    assert status == 200 and body["kind"] == "ConfigMapList"


def test_a_conflict_on_update_reaches_kubectl(cluster: KubeCluster, proxy: ApiFaultProxy, tmp_path: Path) -> None:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig", url=proxy.url)
    kubectl = [str(kubectl_binary()), "--kubeconfig", str(config), "-n", "default"]
    subprocess.run([*kubectl, "create", "configmap", "faulted", "--from-literal=a=1"], check=True,
                   capture_output=True)
    proxy.add_fault(verb="patch", resource="configmaps", name="faulted", status=409, times=-1)
    done = subprocess.run([*kubectl, "label", "configmap", "faulted", "x=y"], capture_output=True, text=True)
    assert done.returncode != 0 and "Operation cannot be fulfilled" in done.stderr
    proxy.clear_faults()
    subprocess.run([*kubectl, "label", "configmap", "faulted", "x=y"], check=True, capture_output=True)


def test_a_watch_streams_through_the_proxy(cluster: KubeCluster, proxy: ApiFaultProxy) -> None:
    context = ssl.create_default_context(cafile=str(cluster.paths.ca_bundle))
    request = urllib.request.Request(f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=20",
                                     headers={"Authorization": f"Bearer {cluster.admin_token}"})
    events: list[dict[str, object]] = []

    def watch() -> None:
        with urllib.request.urlopen(request, timeout=20, context=context) as answer:
            for line in answer:
                events.append(json.loads(line))
                if any((e.get("object") or {}).get("metadata", {}).get("name") == "watched"  # type: ignore[union-attr]
                       for e in events):
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    call(cluster, f"{cluster.url}/api/v1/namespaces/default/configmaps", "POST",
         {"metadata": {"name": "watched"}, "data": {"a": "1"}})
    watcher.join(20)
    assert not watcher.is_alive(), "the watch never saw the new ConfigMap"
