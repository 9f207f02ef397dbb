"""The node agent as kubelet: pods run as processes with their env, volumes, probes, logs and restarts."""

from __future__ import annotations

import json

import pytest
from lab_support import (  # noqa: F401 - pytest finds fixtures by name
    Cluster,
    all_ready,
    bare_pod,
    cluster_fixture,
    container_pid,
    container_status,
    deployment,
    env_list,
    eventually,
    kube_fixture,
    log_events,
    process_env,
    provider_container,
)

from ragops_lab.agent.proxy import ADDRESS_ANNOTATION
from ragops_lab.runtime.httpclient import http_json

pytestmark = pytest.mark.lab


def crashing_container() -> dict[str, object]:
    """The controller exits 1 at start when the schema is older than it requires."""
    return {"name": "main", "image": "ragops-lab/controller", "env": env_list({"REQUIRED_SCHEMA_VERSION": "3"})}


def status_column(cluster: Cluster, pod: str) -> str:
    return cluster.kubectl.run("get", "pod", pod, "--no-headers").stdout.split()[2]


def test_a_crashing_container_backs_off_and_keeps_its_previous_log(cluster: Cluster) -> None:
    cluster.create(bare_pod("crasher", [crashing_container()]))
    pod = cluster.wait_object("Pod", "crasher", lambda p: container_status(p).get("restartCount", 0) >= 2
                              and "waiting" in container_status(p)["state"])
    status = container_status(pod)
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running" and status["ready"] is False
    previous = cluster.kubectl.run("logs", "crasher", "--previous").stdout
    assert log_events(previous, "schema_version_too_old")[0]["required"] == 3
    assert "CrashLoopBackOff" in cluster.kubectl.run("get", "pods").stdout
    backoff = cluster.kubectl.json("get", "events", "--field-selector", "reason=BackOff")["items"]
    assert backoff and backoff[0]["involvedObject"]["name"] == "crasher"


def test_init_containers_run_in_order_before_the_main_container(cluster: Cluster) -> None:
    mount = [{"name": "data", "mountPath": "/data"}]
    build = {"name": "build", "image": "ragops-lab/shard", "volumeMounts": mount,
             "args": ["build", "--shard", "shard-0", "--out", "/data", "--documents", "40"]}
    verify = {"name": "verify", "image": "ragops-lab/shard", "volumeMounts": mount,
              "args": ["verify", "--data-dir", "/data", "--shard", "shard-0"]}
    serve = {"name": "shard", "image": "ragops-lab/shard", "volumeMounts": mount,
             "env": env_list({"SHARD_ID": "shard-0", "DATA_DIR": "/data"}),
             "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}}
    cluster.create(bare_pod("ordered", [serve], init=[build, verify], volumes=[{"name": "data", "emptyDir": {}}]))
    pod = cluster.wait_pods("test=ordered", all_ready(1))[0]
    build_done, verify_done = (container_status(pod, name, init=True)["state"]["terminated"]
                               for name in ("build", "verify"))
    assert build_done["exitCode"] == verify_done["exitCode"] == 0
    assert build_done["finishedAt"] <= verify_done["startedAt"]
    assert json.loads(cluster.kubectl.run("logs", "ordered", "-c", "verify").stdout)["ok"] is True
    assert container_status(pod)["state"]["running"]["startedAt"] >= verify_done["finishedAt"]


def test_a_failing_init_container_blocks_the_pod_like_kubelet(cluster: Cluster) -> None:
    verify = {"name": "verify", "image": "ragops-lab/shard", "args": ["verify", "--data-dir", "/nowhere"]}
    main = provider_container()
    cluster.create(bare_pod("init-loop", [main], init=[verify]))
    cluster.create(bare_pod("init-once", [main], init=[verify], restart_policy="Never"))
    looping = cluster.wait_object("Pod", "init-loop", lambda p: container_status(p, init=True).get("restartCount", 0)
                                  >= 1 and "waiting" in container_status(p, init=True)["state"])
    assert container_status(looping, init=True)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status_column(cluster, "init-loop") == "Init:CrashLoopBackOff"
    assert container_status(looping)["state"]["waiting"]["reason"] == "PodInitializing"
    failed = cluster.wait_object("Pod", "init-once", lambda p: p["status"]["phase"] == "Failed")
    assert container_status(failed, init=True)["state"]["terminated"]["exitCode"] == 1
    assert status_column(cluster, "init-once") == "Init:Error"


def test_an_unknown_image_fails_the_pod_not_the_agent(cluster: Cluster) -> None:
    cluster.create(bare_pod("typo", [{"name": "main", "image": "ragops-lab/retreiver:1.0"}]))
    pod = cluster.wait_object("Pod", "typo", lambda p: container_status(p).get("state", {}).get("waiting", {})
                              .get("reason") in ("ErrImagePull", "ImagePullBackOff"))
    assert "ragops-lab/retreiver" in container_status(pod)["state"]["waiting"]["message"]
    assert pod["status"]["phase"] == "Pending"
    cluster.create(bare_pod("fine", [provider_container()]))
    cluster.wait_pods("test=fine", all_ready(1))


def test_env_comes_from_the_spec_refs_and_the_process_contract(cluster: Cluster) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                    "data": {"mode": "cache"}})
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
                    "stringData": {"primary": "s3cr3t"}})
    container = provider_container({"GREETING": "hi $(PROVIDER_API_KEY)"})
    container["env"] += [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "primary"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['test']"}}},
    ]
    container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    cluster.create(bare_pod("envy", [container], volumes=[{"name": "scratch", "emptyDir": {}}]))
    cluster.create(bare_pod("other", [provider_container()]))
    pods = {p["metadata"]["name"]: p for p in cluster.wait_pods("test in (envy,other)", all_ready(2))}
    env = process_env(container_pid(pods["envy"]))
    assert (env["MODE"], env["KEY"], env["GREETING"], env["MY_LABEL"]) == ("cache", "s3cr3t", "hi k", "envy")
    assert env["POD_NAME"] == "envy" and env["POD_NAMESPACE"] == cluster.namespace and env["PORT"] == "8080"
    assert env["POD_IP"] == env["MY_IP"] == pods["envy"]["status"]["podIP"] != pods["other"]["status"]["podIP"]
    assert env["KUBE_API_URL"] == cluster.kube.url and env["KUBE_TOKEN"]
    assert json.loads(env["LAB_MOUNTS"])["/scratch"].startswith(str(cluster.state_dir))


def test_a_missing_configmap_holds_the_container_until_it_exists(cluster: Cluster) -> None:
    container = provider_container()
    container["env"].append({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "mode"}}})
    cluster.create(bare_pod("patient", [container]))
    waiting = cluster.wait_object("Pod", "patient", lambda p: container_status(p).get("state", {})
                                  .get("waiting", {}).get("reason") == "CreateContainerConfigError")
    assert 'configmap "later" not found' in container_status(waiting)["state"]["waiting"]["message"]
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}, "data": {"mode": "x"}})
    cluster.wait_pods("test=patient", all_ready(1))


def status_of(url: str) -> int:
    """The HTTP status, or 0 when nothing answered."""
    try:
        return http_json("GET", url, timeout=2).status
    except (ConnectionError, TimeoutError):
        return 0


def test_a_service_gets_a_stable_address_that_follows_its_ready_pods(cluster: Cluster) -> None:
    cluster.create(deployment("api"))
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                    "spec": {"selector": {"app": "api"}, "ports": [{"port": 9000, "targetPort": "http"}]}})
    first = cluster.wait_pods("app=api", all_ready(1))[0]
    service = cluster.wait_object("Service", "api",
                                  lambda s: ADDRESS_ANNOTATION in s["metadata"].get("annotations", {}))
    address = service["metadata"]["annotations"][ADDRESS_ANNOTATION]
    assert address.endswith(":9000") and address.split(":")[0] != first["status"]["podIP"]
    eventually(lambda: status_of(f"http://{address}/readyz"), lambda status: status == 200, 5, "the address")
    cluster.delete("Pod", first["metadata"]["name"])
    replaced = cluster.wait_pods("app=api", lambda pods: all_ready(1)(pods)
                                 and pods[0]["metadata"]["uid"] != first["metadata"]["uid"])
    assert replaced[0]["status"]["podIP"] != first["status"]["podIP"]
    eventually(lambda: status_of(f"http://{address}/readyz"), lambda status: status == 200, 5, "the new pod")
