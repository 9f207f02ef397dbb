"""End-to-end fixtures: a Kubernetes API emulator per test worker and a real ansible-playbook runner."""

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

from ragops_lab.k8s_emulator import EmulatorServer  # noqa: E402


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    token = uuid.uuid4().hex
    with EmulatorServer(token=token, forbidden_token="forbidden-" + token) as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        yield Cluster(server, kubeconfig, token)


@pytest.fixture
def cluster(emulator: Cluster) -> Iterator[Cluster]:
    """The emulator with a fresh namespace for this test; faults are cleared afterwards."""
    namespace = "e2e-" + uuid.uuid4().hex[:8]
    emulator.namespace = namespace
    emulator.kubectl("create", "namespace", namespace)
    yield emulator
    emulator.server.clear_faults()


@pytest.fixture
def runner(cluster: Cluster, tmp_path: Path) -> Runner:
    return Runner(cluster, tmp_path)
