"""Faults, authentication, control endpoints and the server's life cycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from emulator_support import (  # noqa: F401 - pytest finds fixtures by name
    FORBIDDEN_TOKEN,
    TOKEN,
    api_client_fixture,
    emulator_fixture,
    raw_request,
)
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ragops_lab.k8s_emulator import EmulatorServer

NS = "default"
LAB_DIR = Path(__file__).resolve().parents[2] / "lab"


def test_500_n_times_then_success(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "registry"}})
    answer = raw_request(emulator.url, "POST", "/_emulator/faults",
                         {"verb": "patch", "resource": "configmaps", "name": "registry", "status": 500, "times": 2})
    assert answer.status == 201
    for _ in range(2):
        with pytest.raises(ApiException) as error:
            core.patch_namespaced_config_map("registry", NS, {"data": {"s0": "quarantined"}})
        assert error.value.status == 500
    assert core.read_namespaced_config_map("registry", NS).data is None, "reads were not faulted"
    patched = core.patch_namespaced_config_map("registry", NS, {"data": {"s0": "quarantined"}})
    assert patched.data == {"s0": "quarantined"}
    assert raw_request(emulator.url, "GET", "/_emulator/faults").json() == {"faults": []}


def test_429_carries_retry_after(emulator: EmulatorServer) -> None:
    emulator.add_fault(verb="list", resource="pods", status=429, retry_after=7)
    throttled = raw_request(emulator.url, "GET", f"/api/v1/namespaces/{NS}/pods")
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "7"
    body = throttled.json()
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 7)
    assert raw_request(emulator.url, "GET", f"/api/v1/namespaces/{NS}/pods").status == 200
    emulator.add_fault(verb="*", resource="*", status=503, times=-1)
    emulator.clear_faults()
    assert raw_request(emulator.url, "GET", f"/api/v1/namespaces/{NS}/pods").status == 200


def test_409_fault_is_a_proper_conflict(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    emulator.add_fault(verb="patch", resource="deployments/scale", status=409)
    raw_request(emulator.url, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    with pytest.raises(ApiException) as error:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    assert error.value.status == 409
    assert '"reason":"Conflict"' in error.value.body
    assert apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}}).spec.replicas == 2


def test_slow_answers_and_listing_clearing_faults(emulator: EmulatorServer) -> None:
    emulator.add_fault(verb="get", resource="configmaps", status=0, delay=1.5, times=-1)
    started = time.monotonic()
    slow = raw_request(emulator.url, "GET", f"/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt")
    assert slow.status == 200 and time.monotonic() - started >= 1.5
    active = raw_request(emulator.url, "GET", "/_emulator/faults").json()["faults"]
    assert [(f["verb"], f["times"], f["delay"]) for f in active] == [("get", -1, 1.5)]
    assert raw_request(emulator.url, "DELETE", "/_emulator/faults").status == 200
    started = time.monotonic()
    raw_request(emulator.url, "GET", f"/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt")
    assert time.monotonic() - started < 1.5, "the delay is gone once the faults are cleared"
    assert raw_request(emulator.url, "POST", "/_emulator/faults", {"status": 418}).status == 400


def test_authentication_and_authorization(emulator: EmulatorServer, tmp_path: Path) -> None:
    path = f"/api/v1/namespaces/{NS}/configmaps"
    for token in (None, "wrong"):
        refused = raw_request(emulator.url, "GET", path, token=token)
        assert refused.status == 401 and refused.json()["reason"] == "Unauthorized"
    forbidden = raw_request(emulator.url, "GET", path, token=FORBIDDEN_TOKEN)
    assert forbidden.status == 403
    assert forbidden.json()["message"].startswith('configmaps is forbidden: User "')
    assert raw_request(emulator.url, "GET", "/api", token=FORBIDDEN_TOKEN).status == 403
    assert raw_request(emulator.url, "GET", "/_emulator/faults", token=None).status == 401
    assert raw_request(emulator.url, "GET", "/healthz", token=None).body == b"ok"
    configuration = client.Configuration(host=emulator.url, api_key={"authorization": "Bearer wrong"})
    with client.ApiClient(configuration) as wrong, pytest.raises(ApiException) as error:
        client.CoreV1Api(wrong).list_namespaced_config_map(NS)
    assert error.value.status == 401


def test_unknown_paths_and_methods_answer_with_status(emulator: EmulatorServer) -> None:
    unknown = raw_request(emulator.url, "GET", "/apis/example.com/v1/widgets")
    assert unknown.status == 404 and unknown.json()["kind"] == "Status"
    wrong_method = raw_request(emulator.url, "PUT", f"/api/v1/namespaces/{NS}/configmaps", {})
    assert wrong_method.status == 405 and wrong_method.json()["reason"] == "MethodNotAllowed"
    no_body = raw_request(emulator.url, "POST", f"/api/v1/namespaces/{NS}/configmaps", b"{not json")
    assert no_body.status == 400 and no_body.json()["reason"] == "BadRequest"
    unsupported = raw_request(emulator.url, "PATCH", f"/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt",
                              {"data": {}}, content_type="application/json")
    assert unsupported.status == 415


def test_reset_keeps_only_the_default_namespace(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "drill"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "registry"}})
    emulator.add_fault(verb="get", status=503, times=-1)
    assert raw_request(emulator.url, "POST", "/_emulator/reset").status == 200
    assert [n.metadata.name for n in core.list_namespace().items] == ["default"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["kube-root-ca.crt"]
    assert raw_request(emulator.url, "GET", "/_emulator/faults").json() == {"faults": []}


def test_in_process_start_and_stop_leaves_no_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    server = EmulatorServer(token=TOKEN).start()
    try:
        assert raw_request(server.url, "GET", "/healthz", token=None).status == 200
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        watcher = threading.Thread(target=raw_request, args=(
            server.url, "GET", f"/api/v1/namespaces/{NS}/pods?watch=true&timeoutSeconds=30"))
        watcher.start()
        time.sleep(0.2)
    finally:
        server.stop()
    watcher.join(5)
    assert not watcher.is_alive(), "stopping ends open watches"
    assert set(threading.enumerate()) <= before


def test_command_line_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    url_file, kubeconfig = tmp_path / "url", tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "ragops_lab.k8s_emulator", "--port", "0", "--token", TOKEN,
         "--url-file", str(url_file), "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(LAB_DIR)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url_file.read_text().strip() == url
        with config.new_client_from_config(str(kubeconfig)) as api:
            assert [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items] == ["default"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0
    assert not url_file.exists() and kubeconfig.exists()
