"""The official Python client (typed and dynamic) against the emulator."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from emulator_support import (  # noqa: F401 - pytest finds fixtures by name
    api_client_fixture,
    deployment,
    emulator_fixture,
    plain_client_fixture,
    pod,
    raw_request,
)
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from ragops_lab.k8s_emulator import EmulatorServer

NS = "default"


def _status(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def test_create_read_list_with_label_and_field_selectors(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for name, tier in (("alpha", "data"), ("beta", "web"), ("gamma", "data")):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"tier": tier}},
                                               "data": {"k": name}})
    created = core.read_namespaced_config_map("beta", NS)
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.api_version == "v1" and created.kind == "ConfigMap"

    def names(**kwargs: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(NS, **kwargs).items]

    assert names(label_selector="tier=data") == ["alpha", "gamma"]
    assert names(label_selector="tier!=data,tier") == ["beta"]
    assert names(label_selector="tier in (web,other)") == ["beta"]
    assert names(label_selector="!tier") == ["kube-root-ca.crt"]
    assert names(field_selector="metadata.name=gamma") == ["gamma"]
    assert names(label_selector="tier=data", field_selector="metadata.name!=alpha") == ["gamma"]
    with pytest.raises(ApiException) as error:
        core.list_namespaced_config_map(NS, field_selector="data.k=alpha")
    assert error.value.status == 400


def test_pods_get_server_defaults_and_status_phase_selector(plain_client: client.ApiClient) -> None:
    core = client.CoreV1Api(plain_client)
    created = core.create_namespaced_pod(NS, pod("shard-0", {"app": "shard"}))
    assert created.status.phase == "Pending"
    assert created.spec.service_account_name == "default"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    assert created.metadata.generation == 1
    core.create_namespaced_pod(NS, pod("shard-1", {"app": "shard"}))
    core.patch_namespaced_pod_status("shard-1", NS, {"status": {"phase": "Running", "containerStatuses": [
        {"name": "main", "ready": True, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}})
    running = core.list_namespaced_pod(NS, field_selector="status.phase=Running").items
    assert [p.metadata.name for p in running] == ["shard-1"]
    assert running[0].status.container_statuses[0].restart_count == 0, "zero values are filled in"
    everywhere = core.list_pod_for_all_namespaces(label_selector="app=shard")
    assert len(everywhere.items) == 2 and everywhere.kind == "PodList"


def test_invalid_objects_are_422(api_client: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as no_containers:
        core.create_namespaced_pod(NS, {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert no_containers.value.status == 422
    assert _status(no_containers.value)["reason"] == "Invalid"
    broken = deployment("web")
    broken["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as mismatch:
        apps.create_namespaced_deployment(NS, broken)
    assert mismatch.value.status == 422
    with pytest.raises(ApiException) as bad_name:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "Not_Valid"}})
    assert bad_name.value.status == 422


def test_three_patch_types(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, deployment("web"))
    strategic = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/app:2", "env": [{"name": "LEVEL", "value": "debug"}]}]}}}})
    container = strategic.spec.template.spec.containers[0]
    assert container.image == "registry.local/app:2"
    assert [(e.name, e.value) for e in container.env] == [("MODE", "serve"), ("LEVEL", "debug")]
    assert strategic.metadata.generation == 2
    merged = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"owner": "ops"}}},
                                              _content_type="application/merge-patch+json")
    assert merged.metadata.labels == {"app": "web", "owner": "ops"}
    assert merged.metadata.generation == 2, "metadata changes do not bump generation"
    jsonpatched = apps.patch_namespaced_deployment("web", NS, [
        {"op": "test", "path": "/metadata/labels/owner", "value": "ops"},
        {"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert jsonpatched.spec.replicas == 3
    with pytest.raises(ApiException) as failed:
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert failed.value.status == 422
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3


def test_stale_resource_version_conflicts(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_config_map(NS, {"metadata": {"name": "registry"}, "data": {"s0": "serving"}})
    core.patch_namespaced_config_map("registry", NS, {"data": {"s0": "quarantined"}})
    stale = first.to_dict(serialize=True)
    stale["data"] = {"s0": "restoring"}
    with pytest.raises(ApiException) as replaced:
        core.replace_namespaced_config_map("registry", NS, stale)
    assert replaced.value.status == 409
    body = _status(replaced.value)
    assert (body["kind"], body["status"], body["reason"]) == ("Status", "Failure", "Conflict")
    with pytest.raises(ApiException) as patched:
        stale_patch = {"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"s0": "restoring"}}
        core.patch_namespaced_config_map("registry", NS, stale_patch)
    assert patched.value.status == 409
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "registry"}})
    assert _status(exists.value)["reason"] == "AlreadyExists"
    assert core.read_namespaced_config_map("registry", NS).data == {"s0": "quarantined"}


def test_unchanged_update_keeps_resource_version(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    again = core.patch_namespaced_config_map("same", NS, {"data": {"a": "1"}})
    assert again.metadata.resource_version == created.metadata.resource_version


def test_delete_then_not_found(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "gone"}})
    answer = core.delete_namespaced_config_map("gone", NS)
    assert answer["status"] == "Success"
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("gone", NS)
    body = _status(error.value)
    assert error.value.status == 404
    assert (body["reason"], body["details"]["name"], body["details"]["kind"]) == ("NotFound", "gone", "configmaps")


def test_dry_run_persists_nothing(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "keep"}, "data": {"a": "1"}})
    before = core.list_namespaced_config_map(NS).metadata.resource_version
    dry_created = core.create_namespaced_config_map(NS, {"metadata": {"name": "ghost"}}, dry_run="All")
    assert dry_created.metadata.name == "ghost"
    dry_patched = core.patch_namespaced_config_map("keep", NS, {"data": {"a": "2"}}, dry_run="All")
    assert dry_patched.data == {"a": "2"}
    core.delete_namespaced_config_map("keep", NS, dry_run="All")
    assert core.read_namespaced_config_map("keep", NS).data == {"a": "1"}
    assert core.read_namespaced_config_map("keep", NS).metadata.resource_version == created.metadata.resource_version
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("ghost", NS)
    assert core.list_namespaced_config_map(NS).metadata.resource_version == before


def test_watch_receives_added_modified_deleted(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        stream = watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=start,
                                      label_selector="watched=yes", timeout_seconds=3)
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.2)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w", "labels": {"watched": "yes"}}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "ignored"}})
    core.patch_namespaced_config_map("w", NS, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("w", NS, {"metadata": {"labels": {"watched": "no"}}})
    follower.join(10)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")], "leaving the selector reads as DELETED"


def test_watch_ends_after_timeout_seconds(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    emulator.registry.store.put(("configmaps", NS, "seeded"), {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "seeded", "namespace": NS, "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"}}, "ADDED")
    core = client.CoreV1Api(api_client)
    started = time.monotonic()
    events = [e["object"].metadata.name
              for e in watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1)]
    assert events == ["kube-root-ca.crt", "seeded"], "a watch without resourceVersion starts with the current state"
    assert 0.9 <= time.monotonic() - started < 3


def test_watch_from_an_expired_version_gets_410(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    emulator.emulator.store._history.clear()  # as if the history had been trimmed
    core.create_namespaced_config_map(NS, {"metadata": {"name": "late"}})
    with pytest.raises(ApiException) as error:
        for _event in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="1",
                                           timeout_seconds=2):
            pass
    assert error.value.status == 410


def test_scale_subresource(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, deployment("web"))
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert (scale.kind, scale.spec.replicas, scale.status.replicas, scale.status.selector) == ("Scale", 1, 0, "app=web")
    scaled = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4
    stateful = {**deployment("db"), "kind": "StatefulSet"}
    stateful["spec"]["serviceName"] = "db"
    created = apps.create_namespaced_stateful_set(NS, stateful)
    assert created.status.replicas == 0
    scale = apps.read_namespaced_stateful_set_scale("db", NS)
    scale.spec.replicas = 0
    assert apps.replace_namespaced_stateful_set_scale("db", NS, scale).spec.replicas == 0


def test_status_subresource_separates_spec_and_status(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, {**deployment("web"), "status": {"readyReplicas": 5}})
    assert apps.read_namespaced_deployment("web", NS).status.ready_replicas is None
    apps.patch_namespaced_deployment_status("web", NS, {"spec": {"replicas": 7}, "status": {
        "readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}})
    current = apps.read_namespaced_deployment("web", NS)
    assert (current.spec.replicas, current.status.ready_replicas) == (1, 1)
    apps.patch_namespaced_deployment("web", NS, {"status": {"readyReplicas": 9}})
    assert apps.read_namespaced_deployment("web", NS).status.ready_replicas == 1


def test_pod_logs_current_previous_and_from_files(emulator: EmulatorServer, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(NS, pod("shard-0", containers=("main", "sidecar")))
    emulator.set_log(NS, "shard-0", "main", "one\ntwo\nthree\n")
    emulator.set_log(NS, "shard-0", "main", "crashed: index corrupt\n", previous=True)
    assert core.read_namespaced_pod_log("shard-0", NS, container="main") == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("shard-0", NS, container="main", tail_lines=1) == "three\n"
    assert core.read_namespaced_pod_log("shard-0", NS, container="main", previous=True) == "crashed: index corrupt\n"
    with pytest.raises(ApiException) as no_container:
        core.read_namespaced_pod_log("shard-0", NS)
    assert no_container.value.status == 400
    with pytest.raises(ApiException) as no_previous:
        core.read_namespaced_pod_log("shard-0", NS, container="sidecar", previous=True)
    assert no_previous.value.status == 400
    log_dir = emulator.emulator.logs.log_dir
    assert log_dir is not None
    (log_dir / NS / "shard-0").mkdir(parents=True)
    (log_dir / NS / "shard-0" / "sidecar.log").write_text("from the node agent\n")
    assert core.read_namespaced_pod_log("shard-0", NS, container="sidecar") == "from the node agent\n"
    result = raw_request(emulator.url, "POST", f"/_emulator/logs/{NS}/shard-0/sidecar?append=true", b"more\n",
                         content_type="text/plain")
    assert result.status == 200
    assert core.read_namespaced_pod_log("shard-0", NS, container="sidecar") == "more\n"


def test_generate_name_and_deletecollection(api_client: client.ApiClient) -> None:
    batch = client.BatchV1Api(api_client)
    job = {"metadata": {"generateName": "migrate-", "labels": {"run": "m1"}}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "m", "image": "registry.local/migrate:1"}]}}}}
    names = {batch.create_namespaced_job(NS, job).metadata.name for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("migrate-") and len(n) == len("migrate-") + 5 for n in names)
    created = batch.read_namespaced_job(names.pop(), NS)
    assert created.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    batch.delete_collection_namespaced_job(NS, label_selector="run=m1")
    assert batch.list_namespaced_job(NS).items == []


def test_namespaces_must_exist_and_deleting_one_empties_it(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("drill", {"metadata": {"name": "x"}})
    assert missing.value.status == 404
    assert _status(missing.value)["message"] == 'namespaces "drill" not found'
    namespace = core.create_namespace({"metadata": {"name": "drill"}})
    assert namespace.status.phase == "Active"
    assert {s.metadata.name for s in core.list_namespaced_service_account("drill").items} == {"default"}
    core.create_namespaced_config_map("drill", {"metadata": {"name": "x"}})
    core.delete_namespace("drill")
    assert core.list_namespaced_config_map("drill").items == []
    with pytest.raises(ApiException):
        core.read_namespace("drill")


def test_garbage_collection_follows_owner_references(api_client: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    owner = apps.create_namespaced_deployment(NS, deployment("web"))
    reference = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner.metadata.uid,
                 "controller": True}
    for name in ("web-a", "web-b"):
        body = pod(name, {"app": "web"})
        body["metadata"]["ownerReferences"] = [reference]
        core.create_namespaced_pod(NS, body)
    orphan_owner = apps.create_namespaced_deployment(NS, deployment("keep"))
    kept = pod("keep-a")
    kept["metadata"]["ownerReferences"] = [{**reference, "name": "keep", "uid": orphan_owner.metadata.uid}]
    core.create_namespaced_pod(NS, kept)
    apps.delete_namespaced_deployment("web", NS)
    apps.delete_namespaced_deployment("keep", NS, propagation_policy="Orphan")
    remaining = core.list_namespaced_pod(NS).items
    assert [p.metadata.name for p in remaining] == ["keep-a"]
    assert remaining[0].metadata.owner_references is None


def test_finalizers_hold_deletion(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": "data", "finalizers": ["lab/keep"]},
                                                        "spec": {"accessModes": ["ReadWriteOnce"],
                                                                 "resources": {"requests": {"storage": "1Gi"}}}})
    core.delete_namespaced_persistent_volume_claim("data", NS)
    held = core.read_namespaced_persistent_volume_claim("data", NS)
    assert held.metadata.deletion_timestamp is not None and held.status.phase == "Pending"
    core.patch_namespaced_persistent_volume_claim("data", NS, {"metadata": {"finalizers": None}},
                                                  _content_type="application/merge-patch+json")
    with pytest.raises(ApiException):
        core.read_namespaced_persistent_volume_claim("data", NS)


def test_events_by_involved_object_and_paging(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for index, target in enumerate(("shard-0", "shard-1", "shard-0")):
        core.create_namespaced_event(NS, {"metadata": {"name": f"ev-{index}"}, "reason": "BackOff",
                                          "involvedObject": {"kind": "Pod", "name": target, "namespace": NS},
                                          "type": "Warning", "message": "Back-off restarting failed container"})
    found = core.list_namespaced_event(NS, field_selector="involvedObject.name=shard-0,involvedObject.kind=Pod")
    assert [e.metadata.name for e in found.items] == ["ev-0", "ev-2"]
    first = core.list_namespaced_event(NS, limit=2)
    assert len(first.items) == 2 and first.metadata._continue and first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_event(NS, limit=2, _continue=first.metadata._continue)
    assert [e.metadata.name for e in rest.items] == ["ev-2"] and not rest.metadata._continue


def test_secrets_encode_string_data(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    secret = core.create_namespaced_secret(NS, {"metadata": {"name": "provider"}, "stringData": {"key": "s3cr3t"}})
    assert (secret.type, secret.data, secret.string_data) == ("Opaque", {"key": "czNjcjN0"}, None)


def test_dynamic_client_get_and_patch(api_client: client.ApiClient, tmp_path: Path) -> None:
    dynamic = DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
    deployments = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(body=deployment("web"), namespace=NS)
    fetched = deployments.get(name="web", namespace=NS)
    assert fetched.spec.replicas == 1
    patched = deployments.patch(name="web", namespace=NS, body={"spec": {"replicas": 2}},
                                content_type="application/merge-patch+json")
    assert patched.spec.replicas == 2 and patched.metadata.generation == 2
    pods = dynamic.resources.get(api_version="v1", kind="Pod")
    assert "log" in pods.subresources and "scale" in deployments.subresources
    assert dynamic.resources.get(api_version="v1", kind="Namespace").namespaced is False
