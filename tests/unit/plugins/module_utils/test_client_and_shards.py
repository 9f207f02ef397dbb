# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    ApiError,
    Conflict,
    RecoveryError,
    RegistryCorrupt,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
    forbidden_step,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.resources import (
    Ref,
    kind_of,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.transport import (
    error_for_status,
)
from ansible_collections.ragops.recovery.plugins.module_utils.redaction import scrub
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.shards.registry import (
    Registry,
    describe_shards,
    label_shard_pods,
    mark_shard,
)
from ansible_collections.ragops.recovery.plugins.module_utils.shards.rules import (
    MarkRequest,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

CM = "/api/v1/namespaces/rag/configmaps"
PODS = "/api/v1/namespaces/rag/pods"
WHERE = Registry("rag", "rag-shard-registry")
NOW = "2026-11-27T10:00:00Z"


def entry(state: str) -> str:
    return json.dumps({"state": state, "reason": "", "since": "2026-11-01T00:00:00Z"})


@pytest.fixture
def api() -> FakeTransport:
    fake = FakeTransport()
    fake.add(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-shard-registry", "namespace": "rag"},
            "data": {
                "shard-0": entry("serving"),
                "shard-1": entry("serving"),
                "shard-9": "{oops",
            },
        },
    )
    for index in range(2):
        fake.add(
            PODS,
            {
                "metadata": {
                    "name": "vectorstore-%d" % index,
                    "labels": {"ragops.io/shard": "shard-%d" % index},
                },
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {
                            "restartCount": 2,
                            "lastState": {"terminated": {"reason": "Error"}},
                        }
                    ],
                },
            },
        )
    return fake


def client(api: FakeTransport) -> K8sClient:
    return K8sClient(api, Retrier(sleep=lambda s: None, rand=lambda: 0.0))


def registry_data(api: FakeTransport) -> dict[str, str]:
    return api.objects[CM + "/rag-shard-registry"]["data"]


def test_paths_follow_the_api_groups() -> None:
    assert Ref("ConfigMap", "x", "ns").path() == "/api/v1/namespaces/ns/configmaps/x"
    assert (
        Ref("StatefulSet", "vs", "ns").path("scale")
        == "/apis/apps/v1/namespaces/ns/statefulsets/vs/scale"
    )
    assert kind_of("Namespace").collection_path("ignored") == "/api/v1/namespaces"
    with pytest.raises(ValueError, match="Unsupported kind"):
        kind_of("Gadget")


def test_error_bodies_are_scrubbed_and_classified() -> None:
    body = json.dumps(
        {"kind": "Status", "message": "bad token Bearer abc.def.ghi for user"}
    )
    error = error_for_status(401, body, None)
    assert "abc.def" not in error.msg and "<redacted>" in error.msg
    assert isinstance(error_for_status(409, "{}", None), Conflict)
    assert error_for_status(429, "slow down", "7").retry_after == 7.0
    assert scrub('{"password": "hunter2"}') == '{"password": "<redacted>"}'


def test_mark_writes_only_the_shard_key(api: FakeTransport) -> None:
    outcome = mark_shard(
        client(api),
        WHERE,
        "shard-0",
        MarkRequest("quarantined", reason="io"),
        now=NOW,
        check_mode=False,
    )
    assert outcome.plan.changed and not outcome.registry_created
    data = registry_data(api)
    assert json.loads(data["shard-0"])["state"] == "quarantined"
    assert data["shard-1"] == entry("serving") and data["shard-9"] == "{oops"


def test_check_mode_sends_a_dry_run_and_stores_nothing(api: FakeTransport) -> None:
    before = json.dumps(api.objects, sort_keys=True)
    outcome = mark_shard(
        client(api),
        WHERE,
        "shard-0",
        MarkRequest("quarantined"),
        now=NOW,
        check_mode=True,
    )
    assert outcome.plan.changed
    assert json.dumps(api.objects, sort_keys=True) == before
    assert all(("dryRun", "All") in call[2] for call in api.writes())


def test_conflicts_are_re_read_and_re_applied(api: FakeTransport) -> None:
    api.fail("PUT", "/rag-shard-registry", Conflict("modified", status=409), times=3)
    k8s = client(api)
    mark_shard(
        k8s, WHERE, "shard-0", MarkRequest("quarantined"), now=NOW, check_mode=False
    )
    assert json.loads(registry_data(api)["shard-0"])["state"] == "quarantined"
    assert [call[0] for call in api.calls].count("PUT") == 4


def test_a_conflict_storm_ends_in_a_clear_failure(api: FakeTransport) -> None:
    api.fail("PUT", "/rag-shard-registry", Conflict("modified", status=409), times=10)
    with pytest.raises(Conflict) as error:
        mark_shard(
            client(api),
            WHERE,
            "shard-0",
            MarkRequest("quarantined"),
            now=NOW,
            check_mode=False,
        )
    assert error.value.msg.startswith(
        "Failed to replace ConfigMap rag/rag-shard-registry: HTTP 409"
    )


def test_a_patch_answered_409_is_sent_again_unless_it_names_a_version(
    api: FakeTransport,
) -> None:
    api.add(
        "/api/v1/persistentvolumes",
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}},
    )
    pv = Ref("PersistentVolume", "pv-1")
    api.fail("PATCH", "/pv-1", Conflict("modified", status=409), times=2)
    retain = {"spec": {"persistentVolumeReclaimPolicy": "Retain"}}
    patched = client(api).patch(pv, retain)
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert [call[0] for call in api.calls].count("PATCH") == 3
    api.fail("PATCH", "/pv-1", Conflict("modified", status=409), times=10)
    with pytest.raises(Conflict, match="Failed to patch PersistentVolume pv-1"):
        client(api).patch(pv, retain)
    guarded = {"metadata": {"resourceVersion": "7", "labels": {"a": "b"}}}
    api.faults.clear()
    api.fail("PATCH", "/pv-1", Conflict("modified", status=409))
    with pytest.raises(Conflict):
        client(api).patch(pv, guarded)
    assert [call[0] for call in api.calls].count("PATCH") == 9


def test_a_conflict_storm_names_the_object_its_conflicts_and_the_next_step(
    api: FakeTransport,
) -> None:
    api.fail("PUT", "/rag-shard-registry", Conflict("modified", status=409), times=10)
    api.fail("PATCH", "/rag-shard-registry", Conflict("modified", status=409), times=10)
    ref = Ref("ConfigMap", "rag-shard-registry", "rag")
    writes = (
        lambda: client(api).update(ref, lambda obj: dict(obj, data={"a": "b"})),
        lambda: client(api).patch(ref, {"data": {"a": "b"}}),
    )
    for write in writes:
        with pytest.raises(Conflict) as error:
            write()
        assert error.value.msg.endswith("(answered 409 Conflict 5 times in a row)")
        assert error.value.resource == "ConfigMap rag/rag-shard-registry"
        assert error.value.next_step.startswith(
            "Something else keeps changing ConfigMap rag/rag-shard-registry: find that"
        )
        assert error.value.to_result()["next_step"] == error.value.next_step


def test_server_errors_are_retried_then_named(api: FakeTransport) -> None:
    api.fail(
        "PUT",
        "/rag-shard-registry",
        ApiError("unavailable", status=503, reason="unavailable"),
        times=2,
    )
    mark_shard(
        client(api),
        WHERE,
        "shard-0",
        MarkRequest("quarantined"),
        now=NOW,
        check_mode=False,
    )
    api.fail(
        "PUT",
        "/rag-shard-registry",
        ApiError("unavailable", status=503, reason="unavailable"),
        times=9,
    )
    with pytest.raises(ApiError) as error:
        mark_shard(
            client(api),
            WHERE,
            "shard-0",
            MarkRequest("restoring"),
            now=NOW,
            check_mode=False,
        )
    assert error.value.msg == (
        "Failed to replace ConfigMap rag/rag-shard-registry: HTTP 503: unavailable "
        "(after 5 attempts)"
    )
    assert error.value.resource == "ConfigMap rag/rag-shard-registry"


def test_unknown_shard_is_refused_listing_known_ones(api: FakeTransport) -> None:
    with pytest.raises(
        RecoveryError,
        match=r"Shard shard-7 is not in .* \(known shards: shard-0, shard-1, shard-9\)",
    ):
        mark_shard(
            client(api),
            WHERE,
            "shard-7",
            MarkRequest("quarantined"),
            now=NOW,
            check_mode=False,
        )
    outcome = mark_shard(
        client(api),
        WHERE,
        "shard-7",
        MarkRequest("quarantined"),
        now=NOW,
        check_mode=False,
        register=True,
    )
    assert outcome.plan.transition == "unregistered -> quarantined"


def test_corrupt_entry_is_never_overwritten(api: FakeTransport) -> None:
    with pytest.raises(RegistryCorrupt):
        mark_shard(
            client(api),
            WHERE,
            "shard-9",
            MarkRequest("quarantined", force=True),
            now=NOW,
            check_mode=False,
        )
    assert registry_data(api)["shard-9"] == "{oops"
    assert api.writes() == []


def test_missing_registry_fails_unless_asked_to_create(api: FakeTransport) -> None:
    other = Registry("rag", "other-registry")
    with pytest.raises(RecoveryError, match="does not exist") as error:
        mark_shard(
            client(api),
            other,
            "shard-0",
            MarkRequest("serving"),
            now=NOW,
            check_mode=False,
        )
    assert "create_registry=true" in (error.value.next_step or "")
    planned = mark_shard(
        client(api),
        other,
        "shard-0",
        MarkRequest("serving"),
        now=NOW,
        check_mode=True,
        create_registry=True,
    )
    assert planned.registry_created and CM + "/other-registry" not in api.objects
    mark_shard(
        client(api),
        other,
        "shard-0",
        MarkRequest("serving"),
        now=NOW,
        check_mode=False,
        create_registry=True,
    )
    assert (
        json.loads(api.objects[CM + "/other-registry"]["data"]["shard-0"])["state"]
        == "serving"
    )


def test_pod_labels_follow_the_state(api: FakeTransport) -> None:
    changes = label_shard_pods(
        client(api),
        "rag",
        "shard-0",
        "ragops.io/shard",
        serving=False,
        check_mode=False,
    )
    assert changes == [
        {"name": "vectorstore-0", "before": None, "after": "false", "changed": True}
    ]
    again = label_shard_pods(
        client(api),
        "rag",
        "shard-0",
        "ragops.io/shard",
        serving=False,
        check_mode=False,
    )
    assert again[0]["changed"] is False
    assert (
        api.objects[PODS + "/vectorstore-0"]["metadata"]["labels"]["ragops.io/serving"]
        == "false"
    )


def test_a_pod_a_restore_replaced_is_not_relabelled_serving(api: FakeTransport) -> None:
    replaced = {"ragops.io/shard": "shard-0", "ragops.io/replaced-by": "vs-0-r-s-1"}
    api.add(PODS, {"kind": "Pod", "metadata": {"name": "vs-0", "labels": replaced}})
    fresh = {"ragops.io/shard": "shard-0", "ragops.io/restore-of": "vs-0"}
    api.add(PODS, {"kind": "Pod", "metadata": {"name": "vs-0-r-s-1", "labels": fresh}})
    changes = label_shard_pods(
        client(api), "rag", "shard-0", "ragops.io/shard", serving=True, check_mode=False
    )
    after = {change["name"]: change["after"] for change in changes}
    assert after == {"vectorstore-0": "true", "vs-0": "false", "vs-0-r-s-1": "true"}
    labels = api.objects[PODS + "/vs-0"]["metadata"]["labels"]
    assert labels["ragops.io/serving"] == "false"


def test_describe_joins_entries_with_pods(api: FakeTransport) -> None:
    report = describe_shards(client(api), WHERE, [], "ragops.io/shard")
    by_shard = {view["shard"]: view for view in report["shards"]}
    assert report["registry"]["invalid_entries"] == ["shard-9"]
    assert by_shard["shard-0"]["serving"] is True
    pod = by_shard["shard-0"]["pods"][0]
    assert (
        pod["name"],
        pod["ready"],
        pod["restarts"],
        pod["last_termination_reason"],
    ) == ("vectorstore-0", True, 2, "Error")
    assert by_shard["shard-9"]["state"] == "invalid"
    missing = describe_shards(
        client(api), Registry("rag", "nope"), ["shard-0"], "ragops.io/shard"
    )
    assert missing["registry"]["exists"] is False
    assert missing["shards"][0]["state"] == "unregistered"


# The Status message kube-apiserver v1.37 sends when RBAC refuses a request (as the lab's tests see it).
FORBIDDEN = (
    'configmaps "rag-shard-registry" is forbidden: User "system:serviceaccount:rag:ragops-recovery" '
    'cannot update resource "configmaps" in API group "" in the namespace "rag"'
)


def test_an_rbac_refusal_names_the_verb_the_resource_and_the_shipped_roles(
    api: FakeTransport,
) -> None:
    body = json.dumps(
        {"kind": "Status", "code": 403, "reason": "Forbidden", "message": FORBIDDEN}
    )
    api.fail("PUT", "/rag-shard-registry", error_for_status(403, body, None))
    client = K8sClient(api, Retrier(sleep=lambda _: None))
    with pytest.raises(ApiError) as raised:
        client.update(
            Ref("ConfigMap", "rag-shard-registry", "rag"),
            lambda obj: dict(obj, data={"a": "b"}),
        )
    error = raised.value
    assert error.msg.startswith(
        "Failed to replace ConfigMap rag/rag-shard-registry: forbidden by RBAC (HTTP 403"
    )
    assert error.next_step.startswith(
        'Grant verb "update" on resource "configmaps" (API group "") in namespace '
        '"rag" to system:serviceaccount:rag:ragops-recovery'
    )
    assert "ragops-recovery-shard (meta/rbac/shard-recovery.yaml" in error.next_step


def test_a_refusal_at_the_cluster_scope_names_the_cluster_role_and_its_binding() -> (
    None
):
    reason = (
        'persistentvolumes "pv-1" is forbidden: User '
        '"system:serviceaccount:rag:ragops-recovery" cannot patch resource '
        '"persistentvolumes" in API group "" at the cluster scope'
    )
    step = forbidden_step(reason) or ""
    assert step.startswith(
        'Grant verb "patch" on the cluster-scoped resource "persistentvolumes"'
    )
    assert "ragops-recovery-volumes (meta/rbac/shard-recovery.yaml)" in step
    assert (
        "kubectl create clusterrolebinding ragops-recovery-volumes-rag --clusterrole "
        "ragops-recovery-volumes --serviceaccount rag:ragops-recovery" in step
    )


def test_a_refused_namespace_names_the_restore_drills_cluster_role() -> None:
    reason = (
        'namespaces is forbidden: User "system:serviceaccount:rag:ragops-recovery" '
        'cannot create resource "namespaces" in API group "" at the cluster scope'
    )
    step = forbidden_step(reason) or ""
    assert "ragops-recovery-drill (meta/rbac/restore-drill.yaml)" in step
    assert (
        "kubectl create clusterrolebinding ragops-recovery-drill-rag --clusterrole "
        "ragops-recovery-drill --serviceaccount rag:ragops-recovery" in step
    )


def test_a_403_that_names_no_rule_keeps_the_credentials_hint(
    api: FakeTransport,
) -> None:
    api.fail("GET", "/rag-shard-registry", error_for_status(403, "forbidden", None))
    with pytest.raises(ApiError) as raised:
        K8sClient(api, Retrier(sleep=lambda _: None)).get(
            Ref("ConfigMap", "rag-shard-registry", "rag")
        )
    assert "the credentials were rejected (HTTP 403" in raised.value.msg
