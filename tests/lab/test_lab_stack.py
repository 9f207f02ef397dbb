"""The whole lab: the RAG stack runs on the real control plane and the node agent, and every fault shows the
symptom the runbook describes. Tests share one lab per worker; each breaks a shard no other test uses
(shard-0 serves the answer tests) or puts back what it changed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from lab_support import Obj, container_status, eventually, lab_fixture, log_events  # noqa: F401 - pytest finds fixtures by name

from ragops_lab import corpus, faults, stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.lab import Lab, kubectl
from ragops_lab.programs.shard import load_index
from ragops_lab.runtime.httpclient import Unreachable, http_json

pytestmark = pytest.mark.lab


def golden(shard: str) -> list[Obj]:
    queries = yaml.safe_load((corpus.DATA_DIR / corpus.GOLDEN_FILE).read_text())["queries"]
    return [q for q in queries if q.get("shard") == shard and q["must_pass"]]


def pod_named(lab: Lab, name: str) -> Obj:
    return lab.api().get(object_path(CORE, "pods", stack.NAMESPACE, name)) or {}


def test_every_pod_is_running_and_ready(lab: Lab) -> None:
    table = kubectl(lab.paths.kubeconfig, "get", "pods", "-n", "rag-lab", "--no-headers").stdout
    rows = {line.split()[0]: line.split()[1:3] for line in table.splitlines()}
    assert {f"vectorstore-{n}" for n in range(4)} <= set(rows)
    assert len(rows) == 10 and all(row == ["1/1", "Running"] for row in rows.values()), table
    claims = kubectl(lab.paths.kubeconfig, "get", "pvc", "--no-headers").stdout
    assert claims.count("Bound") == 4


def test_the_generator_answers_citing_the_expected_documents(lab: Lab) -> None:
    generator = lab.endpoints().services["generator"]
    for query in golden("shard-0"):
        answer = stack.ask(generator, str(query["text"]))
        best = max(query["relevance"].items(), key=lambda item: item[1])[0]
        assert answer["status"] == 200 and answer["mode"] == "normal", answer
        assert best in answer["citations"] and f"[{best}]" in answer["answer"], answer


@pytest.fixture
def shard_3_quarantined(lab: Lab) -> Iterator[None]:
    """The registry entry shard_mark writes, put back to serving afterwards."""
    path = object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)
    before = stack.registry_entry(lab.api(), "shard-3")
    entry = {"state": "quarantined", "reason": "lab test", "incident_id": "TEST-1", "since": "2025-01-15T00:00:00Z",
             "changed_by": "test", "previous_state": "serving"}
    lab.api().merge_patch(path, {"data": {"shard-3": json.dumps(entry, sort_keys=True)}})
    yield
    lab.api().merge_patch(path, {"data": {"shard-3": json.dumps(before, sort_keys=True)}})


@pytest.mark.usefixtures("shard_3_quarantined")
def test_a_quarantined_shard_is_no_longer_queried(lab: Lab) -> None:
    retriever = lab.endpoints().services["retriever"]
    query = str(golden("shard-3")[0]["text"])
    result = eventually(lambda: stack.search(retriever, query), lambda r: "shard-3" in r["shards_skipped"], 5,
                        "the retriever to see the registry change")
    assert result["shards_skipped"] == {"shard-3": "quarantined"}
    assert result["shards_queried"] == ["shard-0", "shard-1", "shard-2"]
    assert all(r["shard"] != "shard-3" for r in result["results"])
    retriever_pod = faults.pods_of(lab.api(), "retriever")[0]
    logged = log_events(faults.pod_log(lab.api(), retriever_pod["metadata"]["name"], 5), "query")[-1]
    assert "shard-3" not in logged["shards"] and logged["skipped"] == {"shard-3": "quarantined"}


@pytest.fixture
def generator_on_backup(lab: Lab) -> Iterator[None]:
    faults.set_env(lab.api(), "generator", "generator", {"PROVIDER": "backup"})
    yield
    faults.set_env(lab.api(), "generator", "generator", {"PROVIDER": "primary"})
    eventually(lambda: stack.not_ready(lab.api()), lambda waiting: not waiting, 20, "the generator back on primary")


def test_changing_the_generator_provider_restarts_it_with_that_provider(
    lab: Lab, request: pytest.FixtureRequest,
) -> None:
    before = faults.pods_of(lab.api(), "generator")[0]["metadata"]["uid"]
    request.getfixturevalue("generator_on_backup")
    rollout = kubectl(lab.paths.kubeconfig, "rollout", "status", "deployment/generator", "--timeout=30s")
    assert rollout.returncode == 0, rollout.stderr
    pods = faults.pods_of(lab.api(), "generator")
    assert len(pods) == 1 and pods[0]["metadata"]["uid"] != before
    generator = lab.endpoints().services["generator"]
    answer = eventually(lambda: ask_through_service(generator, "Miqusul exporter notes"),
                        lambda a: a["status"] == 200, 10)
    assert answer["provider"] == "backup"


def ask_through_service(url: str, question: str) -> dict[str, object]:
    """The answer, or status 0 while the Service still routes to the pod that was replaced (its
    EndpointSlice follows the rollout a moment later, as kube-proxy's rules do)."""
    try:
        return stack.ask(url, question)
    except (Unreachable, TimeoutError):
        return {"status": 0}


def test_s3_stores_and_lists_objects(lab: Lab) -> None:
    s3 = lab.s3()
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="lab-test/a.txt", Body=b"snapshot bytes")
    assert client.get_object(Bucket=s3.bucket, Key="lab-test/a.txt")["Body"].read() == b"snapshot bytes"
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="lab-test/")
    assert [o["Key"] for o in listed["Contents"]] == ["lab-test/a.txt"]
    client.delete_object(Bucket=s3.bucket, Key="lab-test/a.txt")


@pytest.mark.parametrize(("fault", "shard", "error"), [
    ("corrupt-shard", "shard-1", "checksum mismatch in vectors.bin"),
    ("truncate-shard", "shard-2", "truncated index file vectors.bin"),
])
def test_a_damaged_index_shows_in_the_log_readiness_and_results(lab: Lab, fault: str, shard: str, error: str) -> None:
    reported = faults.inject(lab, fault, [shard])
    name = f"vectorstore-{shard[-1]}"
    assert error in reported
    pod = pod_named(lab, name)
    assert container_status(pod)["ready"] is False
    readiness = http_json("GET", f"http://{pod['status']['podIP']}:8080/readyz")
    assert readiness.status == 503 and error in readiness.body["reason"]
    assert error in kubectl(lab.paths.kubeconfig, "logs", name).stdout
    result = stack.search(lab.endpoints().services["retriever"], str(golden(shard)[0]["text"]))
    assert shard in result["errors"] and shard not in {r["shard"] for r in result["results"]}


def test_a_killed_shard_is_restarted_and_keeps_its_previous_log(lab: Lab) -> None:
    reported = faults.inject(lab, "kill-shard", ["shard-3"])
    assert "SIGKILL" in reported
    pod = pod_named(lab, "vectorstore-3")
    status = container_status(pod, "shard")
    assert status["restartCount"] >= 1 and status["lastState"]["terminated"]["exitCode"] == 137
    previous = kubectl(lab.paths.kubeconfig, "logs", "vectorstore-3", "-c", "shard", "--previous").stdout
    assert log_events(previous, "listening")
    eventually(lambda: stack.not_ready(lab.api()), lambda waiting: "Pod/vectorstore-3" not in waiting, 10)


def test_a_stale_index_has_sound_files_and_is_recovered_by_a_reopen(lab: Lab) -> None:
    reported = faults.inject(lab, "stale-index", ["shard-3"])
    assert "index_corruption_detected" in reported and "/admin/reopen" in reported
    pod = pod_named(lab, "vectorstore-3")
    assert container_status(pod, "shard")["ready"] is False
    url = f"http://{pod['status']['podIP']}:8080"
    assert http_json("GET", f"{url}/readyz").status == 503
    load_index(faults.shard_volume(lab.api(), "shard-3"), "shard-3")  # the files verify again
    result = stack.search(lab.endpoints().services["retriever"], str(golden("shard-3")[0]["text"]))
    assert "shard-3" in result["errors"]
    assert http_json("POST", f"{url}/admin/reopen", {}).status == 200
    eventually(lambda: container_status(pod_named(lab, "vectorstore-3"), "shard"), lambda s: s["ready"], 10)


@pytest.fixture
def primary_restored(lab: Lab) -> Iterator[None]:
    yield
    faults.inject(lab, "provider-outage", ["primary", "none"])


@pytest.mark.usefixtures("primary_restored")
@pytest.mark.parametrize(("mode", "kind"), [("503", "server_error"), ("429", "rate_limited"), ("401", "auth")])
def test_a_provider_outage_fails_the_generator_calls(lab: Lab, mode: str, kind: str) -> None:
    reported = faults.inject(lab, "provider-outage", ["primary", mode])
    assert f"/v1/models answers HTTP {mode}" in reported
    answer = stack.ask(lab.endpoints().services["generator"], "How do I rotate the ingress certificate?")
    assert answer["status"] == 502 and answer["error"]["kind"] == kind and answer["error"]["provider"] == "primary"
