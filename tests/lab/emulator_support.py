"""Fixtures and helpers shared by the emulator's tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from ragops_lab.k8s_emulator import EmulatorServer

TOKEN = "lab-token"
FORBIDDEN_TOKEN = "lab-forbidden-token"


def kubectl_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "kubectl"
    return str(beside_python) if beside_python.exists() else shutil.which("kubectl")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    url: str, method: str, path: str, body: Any = None, token: str | None = TOKEN,
    content_type: str = "application/json", headers: dict[str, str] | None = None,
) -> RawResponse:
    """One HTTP request without any client library in between."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return RawResponse(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return RawResponse(error.code, dict(error.headers), error.read())


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    log_dir = tmp_path / "pod-logs"
    log_dir.mkdir()
    with EmulatorServer(token=TOKEN, forbidden_token=FORBIDDEN_TOKEN, log_dir=log_dir) as server:
        yield server


@pytest.fixture(name="api_client")
def api_client_fixture(emulator: EmulatorServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    """A client configured from the written kubeconfig (TLS with the emulator's CA)."""
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(str(kubeconfig))
    yield api
    api.close()


@pytest.fixture(name="plain_client")
def plain_client_fixture(emulator: EmulatorServer) -> Iterator[client.ApiClient]:
    """A client talking plain HTTP with the bearer token, as the lab's own programs do."""
    configuration = client.Configuration(host=emulator.url, api_key={"authorization": f"Bearer {TOKEN}"})
    api = client.ApiClient(configuration)
    yield api
    api.close()


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = binary
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


@pytest.fixture(name="kubectl")
def kubectl_fixture(emulator: EmulatorServer, tmp_path: Path) -> Kubectl:
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    return Kubectl(binary, kubeconfig, tmp_path / "kube-cache")


def deployment(name: str, image: str = "registry.local/app:1", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "env": [{"name": "MODE", "value": "serve"}, {"name": "LEVEL", "value": "info"}],
                }]},
            },
        },
    }


def pod(name: str, labels: dict[str, str] | None = None, containers: tuple[str, ...] = ("main",)) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": c, "image": "registry.local/shard:1"} for c in containers]},
    }
