"""End-to-end fixtures: a real Kubernetes control plane per test worker, behind an API fault proxy,
and a real ansible-playbook runner."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
# The lab's own test support (lab_support.py: whole labs as fixtures), shared with the tests that need a lab.
sys.path.insert(0, str(ROOT / "tests" / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Cluster, Runner  # noqa: E402

from ragops_lab.cluster import KubeCluster  # noqa: E402


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One control plane and node agent per test module; the tests reach it through a fault proxy. Stopped
    with the module: an idle control plane left running would slow every other module on the worker."""
    root = tmp_path_factory.mktemp("kube")
    with KubeCluster(root / "cluster") as running:
        proxy = running.fault_proxy()
        try:
            kubeconfig = running.write_kubeconfig(root / "kubeconfig", url=proxy.url)
            yield Cluster(proxy, kubeconfig, running.admin_token, ca_file=running.paths.ca_bundle)
        finally:
            proxy.close()


@pytest.fixture
def cluster(kube: Cluster) -> Iterator[Cluster]:
    """The cluster with a fresh namespace for this test; faults are cleared afterwards."""
    namespace = "e2e-" + uuid.uuid4().hex[:8]
    kube.namespace = namespace
    kube.kubectl("create", "namespace", namespace)
    kube.wait_for_service_account("default")
    yield kube
    kube.server.clear_faults()
    kube.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def runner(cluster: Cluster, tmp_path: Path) -> Runner:
    return Runner(cluster, tmp_path)
