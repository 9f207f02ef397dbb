"""Workloads through the upstream controllers onto the node agent: what the lab adds makes them work —
pods run and report status (Jobs count failures, rollouts wait for readiness), claims are provisioned
as directories, the shard-labelling operator labels StatefulSet pods before their containers start."""

from __future__ import annotations

import json

import pytest
from lab_support import (  # noqa: F401 - pytest finds fixtures by name
    Cluster,
    Obj,
    all_ready,
    cluster_fixture,
    container_status,
    deployment,
    env_list,
    eventually,
    job,
    kube_fixture,
)

from ragops_lab.runtime.kubeapi import pod_is_ready
from ragops_lab.services import is_running

pytestmark = pytest.mark.lab


def shard_statefulset(replicas: int) -> Obj:
    """Shard pods whose init container builds a small index on each pod's own claim."""
    labels = {"app": "vs"}
    mount = [{"name": "data", "mountPath": "/data"}]
    shard_env = [{"name": "SHARD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ragops.io/shard']"}}}]
    build = {"name": "build", "image": "ragops-lab/shard", "env": shard_env, "volumeMounts": mount,
             "args": ["build", "--shard", "$(SHARD_ID)", "--out", "/data", "--if-missing", "--documents", "40"]}
    serve = {"name": "shard", "image": "ragops-lab/shard", "volumeMounts": mount,
             "env": [*shard_env, *env_list({"DATA_DIR": "/data"})], "ports": [{"containerPort": 8080}],
             "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "vs", "annotations": {"lab.ragops.io/ordinal-labels":
                                                   json.dumps({"ragops.io/shard": "shard-{ordinal}"})}},
        "spec": {"replicas": replicas, "serviceName": "vs", "selector": {"matchLabels": labels},
                 "podManagementPolicy": "Parallel",
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": 2, "initContainers": [build],
                                       "containers": [serve]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}]},
    }


def names(pods: list[Obj]) -> list[str]:
    return sorted(str(p["metadata"]["name"]) for p in pods)


def test_statefulset_pods_get_stable_names_claims_and_ordered_scaling(cluster: Cluster) -> None:
    cluster.create(shard_statefulset(2))
    pods = cluster.wait_pods("app=vs", all_ready(2))
    assert names(pods) == ["vs-0", "vs-1"]
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "vs", True)
    assert pods[1]["metadata"]["labels"]["ragops.io/shard"] == "shard-1"
    claim = cluster.api.get(f"/api/v1/namespaces/{cluster.namespace}/persistentvolumeclaims/data-vs-1") or {}
    assert claim["status"]["phase"] == "Bound" and claim["status"]["capacity"] == {"storage": "2Gi"}
    assert (cluster.state_dir / "pvc" / cluster.namespace / "data-vs-1" / "index" / "checksums.json").is_file()
    status = cluster.wait_object("StatefulSet", "vs", lambda s: s.get("status", {}).get("readyReplicas") == 2)
    assert status["status"]["currentRevision"] == status["status"]["updateRevision"]

    cluster.merge_patch("StatefulSet", "vs", {"spec": {"replicas": 3}})
    assert names(cluster.wait_pods("app=vs", all_ready(3))) == ["vs-0", "vs-1", "vs-2"]
    cluster.merge_patch("StatefulSet", "vs", {"spec": {"replicas": 1}})
    assert names(cluster.wait_pods("app=vs", all_ready(1))) == ["vs-0"]
    claims = cluster.api.list("/api/v1", "persistentvolumeclaims", cluster.namespace)[0]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-vs-0", "data-vs-1", "data-vs-2"]
    rollout = cluster.kubectl.run("rollout", "status", "statefulset/vs", "--timeout=20s")
    assert "roll" in rollout.stdout or "complete" in rollout.stdout


def test_statefulset_template_change_replaces_pods_highest_first(cluster: Cluster) -> None:
    cluster.create(shard_statefulset(2))
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.wait_pods("app=vs", all_ready(2))}
    cluster.merge_patch("StatefulSet", "vs", {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}})
    replaced_order: list[str] = []

    def all_replaced(pods: list[Obj]) -> bool:
        for pod in pods:
            meta = pod["metadata"]
            if before[meta["name"]] != meta["uid"] and meta["name"] not in replaced_order:
                replaced_order.append(str(meta["name"]))
        return len(replaced_order) == 2 and all_ready(2)(pods)

    cluster.wait_pods("app=vs", all_replaced, timeout=30)
    assert replaced_order == ["vs-1", "vs-0"]
    cluster.kubectl.run("rollout", "status", "statefulset/vs", "--timeout=30s")


def test_deployment_scales_and_rolls_one_pod_at_a_time(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    first = cluster.wait_pods("app=web", all_ready(2))
    assert all(p["metadata"]["name"].startswith("web-") for p in first)
    cluster.strategic_patch("Deployment", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": env_list({"MODEL": "m2"})}]}}}})
    seen: list[tuple[int, int]] = []

    def rolled() -> bool:
        # Pods being deleted are listed until the agent has stopped them; the surge counts the others.
        pods = [p for p in cluster.pods("app=web") if not p["metadata"].get("deletionTimestamp")]
        seen.append((len(pods), sum(1 for p in pods if pod_is_ready(p))))
        new = [p for p in pods if p["metadata"]["uid"] not in {q["metadata"]["uid"] for q in first}]
        return len(pods) == 2 and len(new) == 2 and all(pod_is_ready(p) for p in pods)

    cluster.wait_pods("app=web", lambda _: rolled())
    assert max(total for total, _ in seen) <= 3, "maxSurge 25% of 2 allows one extra pod"
    assert min(ready for _, ready in seen) >= 2, "maxUnavailable 25% of 2 keeps both available"
    cluster.kubectl.run("rollout", "status", "deployment/web", "--timeout=20s")
    cluster.merge_patch("Deployment", "web", {"spec": {"replicas": 0}})
    cluster.wait_pods("app=web", lambda pods: not pods)
    # The API omits a zero replica count from the status.
    status = cluster.wait_object("Deployment", "web", lambda d: d["status"].get("replicas", 0) == 0
                                 and d["status"].get("observedGeneration") == d["metadata"]["generation"])
    assert "readyReplicas" not in status["status"]


def test_deleting_the_owner_stops_its_pods(cluster: Cluster) -> None:
    cluster.create(deployment("gone"))
    pid = int(str(container_status(cluster.wait_pods("app=gone", all_ready(1))[0])["containerID"])[6:])
    cluster.delete("Deployment", "gone")
    cluster.wait_pods("app=gone", lambda pods: not pods)
    eventually(lambda: is_running(pid), lambda running: not running, 10, "the pod's process to stop")


def test_job_completes_and_records_success(cluster: Cluster) -> None:
    cluster.create(job("migrate", {"TARGET_SCHEMA_VERSION": "2"}))
    done = cluster.wait_object("Job", "migrate", lambda j: j["status"].get("succeeded") == 1)
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions["Complete"] == "True" and done["status"].get("completionTime")
    pod = cluster.pods("job-name=migrate")[0]
    assert pod["metadata"]["name"].startswith("migrate-") and len(pod["metadata"]["name"]) == len("migrate-") + 5
    assert pod["status"]["phase"] == "Succeeded"
    assert container_status(pod)["state"]["terminated"]["reason"] == "Completed"
    schema = cluster.get("ConfigMap", "rag-schema") or {}
    assert schema["data"]["version"] == "2"
    cluster.kubectl.run("wait", "--for=condition=complete", "job/migrate", "--timeout=5s")


def test_job_retries_up_to_its_backoff_limit_then_fails(cluster: Cluster) -> None:
    cluster.create(job("broken", {"TARGET_SCHEMA_VERSION": "1", "FAIL_AT_VERSION": "1"}, backoff_limit=1))
    failed = cluster.wait_object("Job", "broken", lambda j: any(
        c["type"] == "Failed" and c["status"] == "True" for c in j["status"].get("conditions") or []))
    assert failed["status"]["failed"] == 2
    assert next(c for c in failed["status"]["conditions"] if c["type"] == "Failed")["reason"] == "BackoffLimitExceeded"
    pods = cluster.pods("job-name=broken")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    assert container_status(pods[0])["state"]["terminated"]["exitCode"] == 1
