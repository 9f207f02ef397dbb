"""Pure functions of the emulator: selectors, the three patch formats, printing, protobuf."""

from __future__ import annotations

import pytest

from ragops_lab.k8s_emulator.errors import ApiError
from ragops_lab.k8s_emulator.faults import FaultInjector, rule_from_json
from ragops_lab.k8s_emulator.patch import json_merge_patch, json_patch, strategic_merge_patch
from ragops_lab.k8s_emulator.protobuf import decode
from ragops_lab.k8s_emulator.selectors import parse_field_selector, parse_label_selector
from ragops_lab.k8s_emulator.tables import human_duration, pod_status_text

LABELS = {"app": "shard", "tier": "data", "shard": "3"}


@pytest.mark.parametrize(("selector", "expected"), [
    ("", True),
    ("app=shard", True),
    ("app==shard", True),
    ("app!=shard", False),
    ("missing!=x", True),
    ("app in (shard, retriever)", True),
    ("app notin (shard)", False),
    ("missing notin (x)", True),
    ("tier", True),
    ("!tier", False),
    ("!missing", True),
    ("app=shard,tier=data,shard in (1,3)", True),
    ("app=shard,tier=web", False),
])
def test_label_selector_matches_like_the_server(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize("selector", ["app=(x)", "bad key=1", "app in (a b)", "a,,b"])
def test_label_selector_syntax_errors_are_bad_requests(selector: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_label_selector(selector)
    assert error.value.code == 400


def test_field_selectors_know_their_kind() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"},
           "status": {"phase": "Running"}}
    assert parse_field_selector("status.phase=Running,spec.nodeName=n1", "pods").matches(pod)
    assert not parse_field_selector("metadata.name!=p", "pods").matches(pod)
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}}
    assert parse_field_selector("involvedObject.kind=Pod,involvedObject.name=p", "events").matches(event)
    with pytest.raises(ApiError) as error:
        parse_field_selector("status.phase=Running", "configmaps")
    assert error.value.code == 400
    assert "field label not supported: status.phase" in error.value.message


def test_json_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": 1}}
    assert json_merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}}
    assert json_merge_patch({"a": 1}, ["x"]) == ["x"]


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a": "1", "x/y": "2"}}, "items": [1, 2, 3]}
    result = json_patch(doc, [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
        {"op": "add", "path": "/items/-", "value": 4},
        {"op": "add", "path": "/items/0", "value": 0},
        {"op": "remove", "path": "/metadata/labels/x~1y"},
        {"op": "copy", "from": "/items/1", "path": "/first"},
        {"op": "move", "from": "/first", "path": "/moved"},
    ])
    assert result == {"metadata": {"labels": {"a": "9"}}, "items": [0, 1, 2, 3, 4], "moved": 1}
    assert doc["items"] == [1, 2, 3], "the input document must not change"


def test_json_patch_failures_are_422_and_malformed_patches_400() -> None:
    with pytest.raises(ApiError) as failed_test:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert failed_test.value.code == 422
    assert failed_test.value.reason == "Invalid"
    with pytest.raises(ApiError) as missing:
        json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    assert missing.value.code == 422
    with pytest.raises(ApiError) as malformed:
        json_patch({"a": 1}, {"op": "add"})
    assert malformed.value.code == 400


def _deployment() -> dict:
    return {"metadata": {"name": "d", "finalizers": ["a"]}, "spec": {"template": {"spec": {
        "containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "sidecar", "image": "side:1"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "x"}],
    }}}}


def test_strategic_merge_merges_containers_and_env_by_name() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]},
    ]}}}}
    merged = strategic_merge_patch(_deployment(), patch, "deployments.apps")
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["image"] == "app:2"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                                    {"name": "C", "value": "3"}]
    assert containers[0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_strategic_merge_directives() -> None:
    patch = {
        "metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}],
            "volumes": [{"$patch": "replace"}, {"name": "cache", "emptyDir": {}}],
            "tolerations": [{"key": "y"}],
        }}},
    }
    merged = strategic_merge_patch(_deployment(), patch, "deployments.apps")
    spec = merged["spec"]["template"]["spec"]
    assert merged["metadata"]["finalizers"] == ["b"]
    assert [c["name"] for c in spec["containers"]] == ["sidecar", "app"]
    assert spec["containers"][1]["env"] == [{"name": "B", "value": "2"}]
    assert spec["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert spec["tolerations"] == [{"key": "y"}], "lists without a merge key are replaced"
    assert "$setElementOrder/containers" not in spec


def test_strategic_merge_container_delete_and_retain_keys() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}},
             "status": {"$retainKeys": ["replicas"], "replicas": 2}}
    original = _deployment()
    original["status"] = {"replicas": 1, "readyReplicas": 1}
    merged = strategic_merge_patch(original, patch, "deployments.apps")
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert merged["status"] == {"replicas": 2}


def test_strategic_merge_requires_the_merge_key() -> None:
    with pytest.raises(ApiError) as error:
        strategic_merge_patch(_deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
                              "deployments.apps")
    assert error.value.code == 400


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (7500, "125m"), (4 * 3600 + 300, "4h5m"),
    (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"), (400 * 86400, "400d"),
])
def test_ages_print_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _pod(status: dict) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]},
            "status": status}


def test_pod_status_column_follows_container_states() -> None:
    crashing = _pod({"phase": "Running", "initContainerStatuses": [
        {"name": "i", "state": {"terminated": {"exitCode": 0}}}],
        "containerStatuses": [{"name": "a", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
    assert pod_status_text(crashing) == ("CrashLoopBackOff", 0)
    init_waiting = _pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]})
    assert pod_status_text(init_waiting)[0] == "Init:0/1"
    init_failing = _pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i", "state": {"terminated": {"exitCode": 2}}}]})
    assert pod_status_text(init_failing)[0] == "Init:ExitCode:2"
    running = _pod({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                    "containerStatuses": [{"name": "a", "ready": True, "state": {"running": {}}}]})
    assert pod_status_text(running) == ("Running", 1)


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_configmap_decodes_to_its_json_form() -> None:
    entry = _field(1, b"key") + _field(2, b"value")
    meta = _field(1, b"settings") + _field(2, b"") + _field(7, 0) + _field(8, _field(1, 2**64 - 62135596800))
    raw = _field(1, meta) + _field(2, entry) + _field(4, 0)
    envelope = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, raw)
    assert decode(envelope) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                                "data": {"key": "value"}, "immutable": False}


def test_protobuf_refuses_what_it_does_not_know() -> None:
    envelope = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"Pod")) + _field(2, b"")
    with pytest.raises(ApiError) as unknown_kind:
        decode(envelope)
    assert unknown_kind.value.code == 415
    envelope = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, _field(99, 1))
    with pytest.raises(ApiError) as unknown_field:
        decode(envelope)
    assert unknown_field.value.code == 415


def test_fault_rules_count_down_and_match_subresources() -> None:
    faults = FaultInjector()
    faults.add(rule_from_json({"verb": "patch", "resource": "deployments", "status": 503, "times": 2}))
    assert faults.take("get", "deployments.apps", "default", "web") is None
    assert faults.take("patch", "deployments.apps/scale", "default", "web") is not None
    assert faults.take("patch", "deployments.apps", "default", "web") is not None
    assert faults.take("patch", "deployments.apps", "default", "web") is None
    assert faults.active() == []
    with pytest.raises(ApiError):
        rule_from_json({"status": 418})
    with pytest.raises(ApiError):
        rule_from_json({"verb": "explode"})
