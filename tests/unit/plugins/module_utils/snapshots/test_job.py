# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode over an in-memory Kubernetes API: PVC, Secret, Job, fresh pod, Service repoint, evidence."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    NotFound,
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    catalog,
    job,
    jobmode,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

NS = "rag"
CORE = "/api/v1/namespaces/rag"
SECRET = "s3cr3t-value-never-logged"


class ClusterFake(FakeTransport):
    """Jobs finish as soon as they are created (with the given log), created pods become Ready."""

    def __init__(
        self, log_lines: t.List[t.Dict[str, t.Any]], succeed: bool = True
    ) -> None:
        super().__init__()
        self.log_lines, self.succeed = log_lines, succeed

    def request(
        self,
        method: str,
        path: str,
        *,
        query: t.Sequence[t.Tuple[str, str]] = (),
        body: t.Any = None,
        content_type: str | None = None,
    ) -> t.Any:
        if method == "GET" and path.endswith("/log"):
            return "\n".join(json.dumps(line) for line in self.log_lines)
        if method == "GET" and "/pods/" in path and path not in self.objects:
            raise NotFound("pod not found", status=404)
        if method == "POST" and body.get("kind") == "Job":
            body = copy.deepcopy(body)
            condition = "Complete" if self.succeed else "Failed"
            body["status"] = {
                "succeeded" if self.succeed else "failed": 1,
                "conditions": [{"type": condition, "status": "True"}],
            }
            self.add(
                CORE + "/pods",
                {
                    "kind": "Pod",
                    "metadata": {
                        "name": body["metadata"]["name"] + "-x",
                        "labels": {"job-name": body["metadata"]["name"]},
                    },
                },
            )
        if method == "POST" and body.get("kind") == "Pod":
            body = copy.deepcopy(body)
            body["status"] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        return super().request(
            method, path, query=query, body=body, content_type=content_type
        )


def stack(fake: FakeTransport) -> None:
    labels = {
        "app": "vectorstore",
        "ragops.io/shard": "shard-2",
        "statefulset.kubernetes.io/pod-name": "vectorstore-2",
        "controller-revision-hash": "abc",
    }
    fake.add(
        "/apis/apps/v1/namespaces/rag/statefulsets",
        {"kind": "StatefulSet", "metadata": {"name": "vectorstore"}},
    )
    fake.add(
        CORE + "/pods",
        {
            "kind": "Pod",
            "metadata": {"name": "vectorstore-2", "labels": labels},
            "spec": {
                "hostname": "vectorstore-2",
                "containers": [{"name": "shard", "image": "s"}],
                "volumes": [
                    {
                        "name": "data",
                        "persistentVolumeClaim": {"claimName": "data-vectorstore-2"},
                    }
                ],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
            },
        },
    )
    fake.add(
        CORE + "/pods",
        {
            "kind": "Pod",
            "metadata": {
                "name": "vectorstore-1",
                "labels": {
                    "app": "vectorstore",
                    "ragops.io/shard": "shard-1",
                    "statefulset.kubernetes.io/pod-name": "vectorstore-1",
                },
            },
        },
    )
    fake.add(
        CORE + "/persistentvolumeclaims",
        {
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-vectorstore-2"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast"},
        },
    )
    fake.add(
        CORE + "/services",
        {
            "kind": "Service",
            "metadata": {"name": "vectorstore"},
            "spec": {"selector": {"app": "vectorstore"}},
        },
    )
    fake.add(
        CORE + "/services",
        {
            "kind": "Service",
            "metadata": {"name": "vectorstore-2"},
            "spec": {
                "selector": {"statefulset.kubernetes.io/pod-name": "vectorstore-2"}
            },
        },
    )


def request(workload: str = "StatefulSet/vectorstore") -> job.JobRequest:
    return job.JobRequest(
        namespace=NS,
        shard="shard-2",
        workload=workload,
        shard_label="ragops.io/shard",
        data_volume="data",
        image="ee:1",
        incident_id="INC-9",
        credentials={"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET},
        runner={"shard": "shard-2", "bucket": "b"},
    )


def waiter() -> Waiter:
    ticks = iter(range(10_000))
    return Waiter(
        timeout=30,
        interval=1,
        clock=Clock(now=lambda: float(next(ticks)), sleep=lambda s: None),
    )


def plan_for(
    client: K8sClient, workload: str = "StatefulSet/vectorstore"
) -> t.Tuple[job.Target, job.Plan]:
    target = job.find_target(client, request(workload))
    return target, job.make_plan(
        target, request(workload), "20261127T221003Z-1a2b", "f" * 64, 900 * 1024 * 1024
    )


def test_a_bare_pod_is_replaced_by_a_fresh_pod_on_the_new_claim() -> None:
    fake = ClusterFake(
        [
            {"event": "progress", "bytes_done": 5, "bytes_total": 10},
            {"event": "result", "restore": {"bytes": 10, "files": 2, "duration": 1.5}},
        ]
    )
    stack(fake)
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    target, plan = plan_for(client, "Pod/vectorstore-2")
    assert (
        plan.claim_name == "data-vectorstore-2-r-20261127t221003z-1a2b"
        and plan.claim_size == "1080Mi"
    )
    done = job.restore_in_cluster(
        client, request("Pod/vectorstore-2"), plan, target, waiter()
    )
    claim = fake.objects[CORE + "/persistentvolumeclaims/" + plan.claim_name]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["metadata"]["annotations"]["ragops.io/manifest-sha256"] == "f" * 64
    job_object = fake.objects["/apis/batch/v1/namespaces/rag/jobs/" + plan.job_name]
    assert SECRET not in json.dumps(job_object)
    container = job_object["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["python3", "-m", job.RUNNER]
    assert (
        json.loads(container["env"][0]["value"])["snapshot_id"]
        == "20261127T221003Z-1a2b"
    )
    assert (
        fake.objects[CORE + "/secrets/ragops-restore-shard-2-s3"]["stringData"][
            "AWS_SECRET_ACCESS_KEY"
        ]
        == SECRET
    )
    pod = fake.objects[CORE + "/pods/" + plan.pod_name]
    assert (
        pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == plan.claim_name
    )
    assert (
        "statefulset.kubernetes.io/pod-name" not in pod["metadata"]["labels"]
        and "hostname" not in pod["spec"]
    )
    selector = fake.objects[CORE + "/services/vectorstore-2"]["spec"]["selector"]
    assert selector == {"ragops.io/restore-pod": plan.pod_name}
    assert fake.objects[CORE + "/services/vectorstore"]["spec"]["selector"] == {
        "app": "vectorstore"
    }
    old = fake.objects[CORE + "/persistentvolumeclaims/data-vectorstore-2"]
    assert old["metadata"]["labels"]["ragops.io/evidence"] == "inc-9"
    replaced = fake.objects[CORE + "/pods/vectorstore-2"]["metadata"]["labels"]
    assert replaced["ragops.io/replaced-by"] == plan.pod_name
    assert replaced["ragops.io/serving"] == "false"
    assert done["run"]["bytes"] == 10 and done["pod"] == plan.pod_name
    assert not [c for c in fake.writes() if c[0] == "DELETE"]


def test_a_failed_job_reports_the_runner_error_and_changes_nothing_else() -> None:
    fake = ClusterFake(
        [
            {
                "event": "error",
                "msg": "Failed to restore shard shard-2: no verified snapshot",
                "quarantined": ["s1"],
                "tried": [
                    {
                        "snapshot_id": "s1",
                        "outcome": "failed verification",
                        "reason": "bad",
                    }
                ],
            }
        ],
        succeed=False,
    )
    stack(fake)
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    target, plan = plan_for(client)
    with pytest.raises(RecoveryError) as caught:
        job.restore_in_cluster(client, request(), plan, target, waiter())
    assert "no verified snapshot" in caught.value.msg and caught.value.partial[
        "quarantined"
    ] == ["s1"]
    assert fake.objects[CORE + "/services/vectorstore-2"]["spec"]["selector"] == {
        "statefulset.kubernetes.io/pod-name": "vectorstore-2"
    }
    assert "ragops.io/evidence" not in (
        fake.objects[CORE + "/persistentvolumeclaims/data-vectorstore-2"][
            "metadata"
        ].get("labels")
        or {}
    )


def test_already_restored_and_names() -> None:
    fake = ClusterFake([])
    stack(fake)
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    target = plan_for(client)[0]
    assert job.already_restored(target, "f" * 64) is False
    assert job.dns_name("Data_Vector", "r", "20261127T221003Z-1a2b" * 4).islower()
    assert len(job.dns_name("x" * 100)) == 63
    assert job.claim_size(0, 20) == "64Mi"
    with pytest.raises(RecoveryError, match="Invalid workload"):
        job.parse_workload("ReplicaSet/x")


def test_a_restore_jobs_pod_is_never_taken_for_the_shards_pod() -> None:
    fake = ClusterFake([])
    stack(fake)
    fake.add(
        CORE + "/pods",
        {
            "kind": "Pod",
            "metadata": {
                "name": "ragops-restore-shard-2-s-2-abcde",
                "creationTimestamp": "2099-01-01T00:00:00Z",
                "labels": {
                    "ragops.io/shard": "shard-2",
                    "job-name": "ragops-restore-shard-2-s-2",
                },
            },
            "spec": {
                "volumes": [
                    {
                        "name": "restore",
                        "persistentVolumeClaim": {
                            "claimName": "data-vectorstore-2-r-s-2"
                        },
                    }
                ]
            },
        },
    )
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    assert plan_for(client)[0].pod_name == "vectorstore-2"


def test_restore_started_creates_the_job_and_repoints_nothing() -> None:
    fake = ClusterFake([{"event": "progress", "bytes_done": 5, "bytes_total": 10}])
    stack(fake)
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    target, plan = plan_for(client)
    started = job.restore_started(client, request(), plan, target)
    assert (
        started["run"]["name"] == plan.job_name
        and started["run"]["state"] == "succeeded"
    )
    assert started["run"]["progress"]["bytes_done"] == 5
    assert CORE + "/persistentvolumeclaims/" + plan.claim_name in fake.objects
    assert plan.pod_name == "vectorstore-2" and plan.bind_claim == "data-vectorstore-2"
    assert not [c for c in fake.writes() if c[0] == "DELETE" or "/pods" in c[1]]
    assert fake.objects[CORE + "/services/vectorstore-2"]["spec"]["selector"] == {
        "statefulset.kubernetes.io/pod-name": "vectorstore-2"
    }
    again = job.restore_started(client, request(), plan, target)
    assert again["run"]["name"] == plan.job_name
    assert len([c for c in fake.writes() if c[0] == "POST" and "/jobs" in c[1]]) == 1


def test_check_mode_summary_names_the_claim_its_size_and_the_job() -> None:
    fake = ClusterFake([])
    stack(fake)
    target, plan = plan_for(K8sClient(fake, Retrier(sleep=lambda s: None)))
    snapshot = catalog.Snapshot("20261127T221003Z-1a2b", {}, status=catalog.VERIFIED)
    outcome = jobmode.JobOutcome(
        True, snapshot, target, plan, [], [], request(), check_mode=True
    )
    summary = outcome.to_result()["summary"]
    assert summary == (
        "restore (check mode): would restore snapshot 20261127T221003Z-1a2b into a new "
        "PVC data-vectorstore-2-r-20261127t221003z-1a2b of %s by the Job %s, then bind "
        "its volume to the claim data-vectorstore-2 of StatefulSet/vectorstore; the old "
        "volume would be kept (Retain) as evidence" % (plan.claim_size, plan.job_name)
    )
    applied = jobmode.JobOutcome(True, snapshot, target, plan, [], [], request())
    assert "would" not in applied.to_result()["summary"]


def test_check_mode_summary_of_a_bare_pod_keeps_its_claim() -> None:
    fake = ClusterFake([])
    stack(fake)
    client = K8sClient(fake, Retrier(sleep=lambda s: None))
    target, plan = plan_for(client, "Pod/vectorstore-2")
    snapshot = catalog.Snapshot("20261127T221003Z-1a2b", {}, status=catalog.VERIFIED)
    outcome = jobmode.JobOutcome(
        True,
        snapshot,
        target,
        plan,
        [],
        [],
        request("Pod/vectorstore-2"),
        check_mode=True,
    )
    assert outcome.to_result()["summary"].endswith(
        "; the PVC data-vectorstore-2 would be kept as evidence"
    )
