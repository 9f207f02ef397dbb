"""shard_mark and shard_info through real ansible-playbook runs against the lab's Kubernetes control plane."""

from __future__ import annotations

import json
import typing as t

import pytest
from harness import Cluster, Runner, registry_manifest, task

QUARANTINE = {"shard": "shard-2", "state": "quarantined", "reason": "index checksum mismatch",
              "incident_id": "INC-1", "changed_by": "e2e", "label_pods": True}


def pod(name: str, shard: str) -> dict[str, t.Any]:
    """A shard pod that no node can take, so it stays Pending and only its labels matter."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"ragops.io/shard": shard, "ragops.io/serving": "true"}},
            "spec": {"nodeSelector": {"ragops.io/e2e": "no-such-node"},
                     "containers": [{"name": "shard", "image": "ragops-lab/shard"}]}}


@pytest.fixture
def stack(cluster: Cluster) -> Cluster:
    cluster.apply(registry_manifest({"shard-%d" % i: {"state": "serving"} for i in range(4)}))
    cluster.apply(pod("vectorstore-2", "shard-2"))
    return cluster


def test_check_mode_changes_nothing_then_apply_then_rerun_is_unchanged(stack: Cluster, runner: Runner) -> None:
    before = stack.get("configmap", "rag-shard-registry")
    planned = runner.play([task("mark", "shard_mark", **QUARANTINE)], check=True, diff=True)
    mark = planned.results["mark"]
    assert mark["changed"] is True and not mark.get("failed"), planned.stdout
    assert mark["diff"]["after"]["state"] == "quarantined"
    assert '+    "state": "quarantined"' in planned.stdout or '"state": "quarantined"' in planned.stdout
    after_check = stack.get("configmap", "rag-shard-registry")
    assert after_check["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert stack.get("pod", "vectorstore-2")["metadata"]["labels"]["ragops.io/serving"] == "true"

    applied = runner.play([task("mark", "shard_mark", **QUARANTINE)])
    assert applied.results["mark"]["changed"] is True
    entry = stack.registry()["shard-2"]
    assert (entry["state"], entry["previous_state"], entry["incident_id"]) == ("quarantined", "serving", "INC-1")
    assert stack.registry()["shard-1"] == {"state": "serving"}
    assert stack.get("pod", "vectorstore-2")["metadata"]["labels"]["ragops.io/serving"] == "false"

    again = runner.play([task("mark", "shard_mark", **QUARANTINE)])
    assert again.results["mark"]["changed"] is False
    assert again.changed == 0


def test_shard_info_joins_registry_and_pods_in_check_mode(stack: Cluster, runner: Runner) -> None:
    done = runner.play([task("info", "shard_info", shards=["shard-2", "shard-3"])], check=True)
    shards = {item["shard"]: item for item in done.results["info"]["shards"]}
    assert done.results["info"]["changed"] is False
    assert shards["shard-2"]["pods"][0]["name"] == "vectorstore-2"
    assert shards["shard-2"]["pods"][0]["phase"] == "Pending"
    assert shards["shard-3"]["pods"] == [] and shards["shard-3"]["serving"] is True


def test_runbook_order_is_enforced_and_force_is_recorded(stack: Cluster, runner: Runner) -> None:
    runner.play([task("mark", "shard_mark", **QUARANTINE)])
    refused = runner.play([task("serve", "shard_mark", shard="shard-2", state="serving")])
    assert refused.results["serve"]["failed"] is True
    assert "Refusing to move shard shard-2 from quarantined to serving" in refused.results["serve"]["msg"]
    assert stack.registry()["shard-2"]["state"] == "quarantined"
    forced = runner.play([task("serve", "shard_mark", shard="shard-2", state="serving", force=True)])
    assert forced.results["serve"]["forced"] is True
    assert "Forced shard shard-2 transition quarantined -> serving" in forced.stdout
    assert stack.registry()["shard-2"]["forced_transition"] == "quarantined -> serving"


def test_unknown_shard_and_missing_registry_are_clear_errors(stack: Cluster, runner: Runner) -> None:
    done = runner.play([
        task("unknown", "shard_mark", shard="shard-9", state="quarantined"),
        task("missing", "shard_mark", shard="shard-0", state="quarantined", registry="no-such-registry"),
    ])
    assert "Shard shard-9 is not in the shard registry" in done.results["unknown"]["msg"]
    assert "register=true" in done.results["unknown"]["next_step"]
    assert "does not exist" in done.results["missing"]["msg"]
    assert "create_registry=true" in done.results["missing"]["next_step"]
    assert "shard-9" not in stack.registry()


def test_invalid_json_entry_is_never_overwritten(stack: Cluster, runner: Runner) -> None:
    stack.apply(registry_manifest({"shard-0": {"state": "serving"}, "shard-1": "{half written"}))
    done = runner.play([task("mark", "shard_mark", shard="shard-1", state="quarantined", force=True),
                        task("info", "shard_info")])
    assert done.results["mark"]["failed"] is True
    assert "not valid JSON" in done.results["mark"]["msg"]
    assert stack.registry()["shard-1"] == "{half written"
    assert done.results["info"]["registry"]["invalid_entries"] == ["shard-1"]


def test_a_409_storm_is_absorbed(stack: Cluster, runner: Runner) -> None:
    stack.server.add_fault(verb="update", resource="configmaps", name="rag-shard-registry", status=409, times=3)
    done = runner.play([task("mark", "shard_mark", **QUARANTINE)])
    assert done.results["mark"]["changed"] is True, done.stdout
    assert stack.registry()["shard-2"]["state"] == "quarantined"


def test_server_errors_are_retried_then_fail_naming_the_resource(stack: Cluster, runner: Runner) -> None:
    stack.server.add_fault(verb="patch", resource="pods", status=503, times=2)
    recovered = runner.play([task("mark", "shard_mark", **QUARANTINE)])
    assert recovered.results["mark"]["changed"] is True, recovered.stdout
    assert stack.get("pod", "vectorstore-2")["metadata"]["labels"]["ragops.io/serving"] == "false"
    stack.server.add_fault(verb="update", resource="configmaps", status=500, times=-1)
    failed = runner.play([task("mark", "shard_mark", shard="shard-2", state="restoring")])
    result = failed.results["mark"]
    assert result["failed"] is True
    assert result["msg"].startswith("Failed to replace ConfigMap %s/rag-shard-registry: HTTP 500" % stack.namespace)
    assert result["msg"].endswith("(after 5 attempts)")
    stack.server.clear_faults()
    assert stack.registry()["shard-2"]["state"] == "quarantined"


def test_unreachable_api_and_rejected_credentials(stack: Cluster, runner: Runner) -> None:
    url, ca_cert = stack.server.url, str(stack.ca_file)
    unreachable = {"host": "http://127.0.0.1:9", "api_key": "x", "request_timeout": 2}
    # A token the API server does not know (401), and a real one that RBAC grants nothing (403).
    wrong = {"host": url, "ca_cert": ca_cert, "api_key": "not-the-token"}
    forbidden = {"host": url, "ca_cert": ca_cert, "api_key": stack.unprivileged_token()}
    results = {}
    for name, auth in (("unreachable", unreachable), ("wrong", wrong), ("forbidden", forbidden)):
        done = runner.play([task(name, "shard_info")], auth=auth)
        results[name] = done.results[name]
    assert "the Kubernetes API could not be reached" in results["unreachable"]["msg"]
    assert results["unreachable"]["status"] == 0
    assert "credentials were rejected (HTTP 401" in results["wrong"]["msg"]
    assert "forbidden by RBAC (HTTP 403" in results["forbidden"]["msg"]
    assert results["forbidden"]["next_step"].startswith('Grant verb "get" on resource "configmaps"')
    assert "not-the-token" not in json.dumps(results)


def test_create_registry_only_when_asked(cluster: Cluster, runner: Runner) -> None:
    args = {"shard": "shard-0", "state": "serving", "create_registry": True}
    planned = runner.play([task("create", "shard_mark", **args)], check=True)
    assert planned.results["create"]["registry"]["created"] is True
    assert cluster.kubectl("get", "configmap", "rag-shard-registry", "-n", cluster.namespace, check=False) == ""
    runner.play([task("create", "shard_mark", **args)])
    assert cluster.registry()["shard-0"]["state"] == "serving"
    again = runner.play([task("create", "shard_mark", **args)])
    assert again.results["create"]["changed"] is False
