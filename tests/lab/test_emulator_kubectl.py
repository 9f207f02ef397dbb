"""The real kubectl binary against the emulator, through the kubeconfig it writes."""

from __future__ import annotations

import json
from pathlib import Path

from emulator_support import (  # noqa: F401 - pytest finds fixtures by name
    Kubectl,
    deployment,
    emulator_fixture,
    kubectl_fixture,
    pod,
    raw_request,
)

from ragops_lab.k8s_emulator import EmulatorServer

NS = "default"


def _crashlooping_pod(emulator: EmulatorServer) -> None:
    created = raw_request(emulator.url, "POST", f"/api/v1/namespaces/{NS}/pods", pod("shard-0", {"app": "shard"}))
    assert created.status == 201
    status = {"status": {"phase": "Running", "containerStatuses": [{
        "name": "main", "ready": False, "restartCount": 4, "image": "registry.local/shard:1", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:00:00Z"}}}]}}
    answer = raw_request(emulator.url, "PATCH", f"/api/v1/namespaces/{NS}/pods/shard-0/status", status,
                         content_type="application/merge-patch+json")
    assert answer.status == 200


def _create_deployment(emulator: EmulatorServer) -> None:
    created = raw_request(emulator.url, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment("web"))
    assert created.status == 201


def test_get_pods_prints_server_side_table(emulator: EmulatorServer, kubectl: Kubectl) -> None:
    _crashlooping_pod(emulator)
    lines = kubectl.run("get", "pods").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["shard-0", "0/1", "CrashLoopBackOff", "4"]
    wide = kubectl.run("get", "pods", "-A", "-o", "wide", "-l", "app=shard").stdout.splitlines()
    assert wide[0].split()[:2] == ["NAMESPACE", "NAME"] and "NODE" in wide[0]
    selected = kubectl.run("get", "pods", "--field-selector", "status.phase=Running", "-o", "name").stdout
    assert selected.split() == ["pod/shard-0"]
    refused = kubectl.run("get", "pods", "--field-selector", "spec.unknown=x", check=False)
    assert refused.returncode != 0 and "field label not supported" in refused.stderr


def test_get_json_and_yaml(kubectl: Kubectl) -> None:
    kubectl.run("create", "configmap", "settings", "--from-literal=mode=serve")
    listed = kubectl.json("get", "configmaps")
    assert listed["kind"] == "List"
    assert {i["metadata"]["name"] for i in listed["items"]} == {"kube-root-ca.crt", "settings"}
    single = kubectl.json("get", "configmap", "settings")
    assert single["data"] == {"mode": "serve"} and single["metadata"]["resourceVersion"]
    assert "mode: serve" in kubectl.run("get", "cm", "settings", "-o", "yaml").stdout


def test_protobuf_create_commands_store_what_kubectl_meant(kubectl: Kubectl) -> None:
    """kubectl's typed clients post protobuf: compare with the JSON of a client-side dry run."""
    commands = [
        (["create", "deployment", "web", "--image=registry.local/web:1", "--replicas=0", "--port=80"],
         ["deploy", "web"]),
        (["create", "job", "migrate", "--image=registry.local/migrate:1"], ["job", "migrate"]),
        (["create", "service", "clusterip", "web", "--tcp=80:8080"], ["svc", "web"]),
        (["create", "secret", "generic", "provider", "--from-literal=key=s3cr3t"], ["secret", "provider"]),
        (["create", "namespace", "drill"], ["ns", "drill"]),
        (["create", "serviceaccount", "runner"], ["sa", "runner"]),
    ]
    for command, target in commands:
        intended = json.loads(kubectl.run(*command, "--dry-run=client", "-o", "json").stdout)
        kubectl.run(*command)
        stored = kubectl.json("get", *target)
        _assert_contains(intended, stored, target[0])


def _assert_contains(expected: object, actual: object, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            if value is not None and key != "status":
                assert key in actual, f"{where}.{key} missing"
                _assert_contains(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (want, have) in enumerate(zip(expected, actual, strict=True)):
            _assert_contains(want, have, f"{where}[{index}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


def test_apply_then_reapply_changed(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(deployment("web")))
    assert "deployment.apps/web created" in kubectl.run("apply", "-f", str(manifest)).stdout
    assert "unchanged" in kubectl.run("apply", "-f", str(manifest)).stdout
    changed = deployment("web", image="registry.local/app:2")
    changed["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "read-only"}]
    manifest.write_text(json.dumps(changed))
    assert "deployment.apps/web configured" in kubectl.run("apply", "-f", str(manifest)).stdout
    stored = kubectl.json("get", "deployment", "web")
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/app:2"
    assert container["env"] == [{"name": "MODE", "value": "read-only"}], "apply deletes what left the manifest"
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    assert stored["metadata"]["generation"] == 2


def test_patch_scale_delete(kubectl: Kubectl, emulator: EmulatorServer) -> None:
    _create_deployment(emulator)
    kubectl.run("patch", "deployment", "web", "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"LEVEL","value":"debug"}]}]}}}}')
    kubectl.run("patch", "deployment", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"owner":"ops"}}}')
    kubectl.run("patch", "deployment", "web", "--type", "json", "-p",
                '[{"op":"test","path":"/metadata/labels/owner","value":"ops"},'
                '{"op":"add","path":"/metadata/annotations","value":{"ragops.io/incident":"INC-1"}}]')
    failed = kubectl.run("patch", "deployment", "web", "--type", "json", "-p",
                         '[{"op":"test","path":"/metadata/labels/owner","value":"nobody"}]', check=False)
    assert failed.returncode != 0 and "test operation failed" in failed.stderr
    assert "scaled" in kubectl.run("scale", "deployment", "web", "--replicas=3").stdout
    stored = kubectl.json("get", "deployment", "web")
    assert stored["spec"]["replicas"] == 3
    assert stored["metadata"]["labels"]["owner"] == "ops"
    assert stored["metadata"]["annotations"] == {"ragops.io/incident": "INC-1"}
    assert stored["spec"]["template"]["spec"]["containers"][0]["env"][-1] == {"name": "LEVEL", "value": "debug"}
    lines = kubectl.run("get", "deploy").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:2] == ["web", "0/3"]
    assert "deleted" in kubectl.run("delete", "deployment", "web").stdout
    assert kubectl.run("get", "deploy", "web", check=False).returncode != 0


def test_logs_and_previous_logs(kubectl: Kubectl, emulator: EmulatorServer) -> None:
    _crashlooping_pod(emulator)
    emulator.set_log(NS, "shard-0", "main", "opened index\nserving\n")
    emulator.set_log(NS, "shard-0", "main", "IOError: segment 7 corrupt\n", previous=True)
    assert kubectl.run("logs", "shard-0").stdout == "opened index\nserving\n"
    assert kubectl.run("logs", "shard-0", "--previous").stdout == "IOError: segment 7 corrupt\n"
    assert kubectl.run("logs", "shard-0", "--tail=1").stdout == "serving\n"


def test_wait_for_condition(kubectl: Kubectl, emulator: EmulatorServer) -> None:
    _create_deployment(emulator)
    status = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    raw_request(emulator.url, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web/status", status,
                content_type="application/merge-patch+json")
    assert "condition met" in kubectl.run("wait", "--for=condition=Available", "deploy/web", "--timeout=10s").stdout
