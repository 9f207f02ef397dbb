# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode of ``snapshot_create``: a shard snapshotted by a Job next to its volume; the
data never flows through the controller.

1. The shard's serving pod (it must be Ready: a shard that does not serve may hold a
   damaged index) and the PVC mounted at its data volume.
2. The source (:mod:`.volumesource`): a CSI VolumeSnapshot of that PVC, restored into
   a clone PVC, where the cluster offers a VolumeSnapshotClass for the claim's driver;
   else the live PVC itself, mounted read-only on the shard pod's node, with the shard
   quiesced through its admin endpoint while the Job copies it.
3. A Job in the execution environment image running :mod:`.createrun`: the same
   streaming code as ``mode=local``, logging JSON lines.  The VolumeSnapshot and its
   clone are owned by the Job, and the Job is removed ``job_ttl`` seconds after it
   finished, so the garbage collector cleans up without a delete permission.
"""

from __future__ import annotations

import json
import posixpath
import typing as t
from dataclasses import dataclass, field

from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_succeeded, pod_ready
from ..k8s.resources import MANAGED_BY, SNAPSHOT_API, SNAPSHOT_GROUP, Ref
from ..waiter import Waiter
from . import jobkit, volumesource
from .job import SNAPSHOT_ANNOTATION, claim_of, dns_name

MOUNT_PATH = "/snapshot"
RUNNER = "ansible_collections.ragops.recovery.plugins.module_utils.snapshots.createrun"
CONFIG_VARIABLE = "RAGOPS_SNAPSHOT"
SOURCE_VOLUME = "source"
# A claim that only one pod may mount: the live volume cannot be read beside the shard.
ONE_POD_ONLY = "ReadWriteOncePod"


@dataclass(frozen=True)
class SnapshotJobRequest:
    """The shard, where its data is, and how to run the snapshot Job."""

    namespace: str
    shard: str
    shard_label: str
    data_volume: str
    image: str
    snapshot_id: str
    source: str = volumesource.AUTO
    volume_snapshot_class: str | None = None
    claim: str | None = None
    data_path: str = ""
    s3_secret: str | None = None
    job_ttl: int = 86400
    credentials: t.Mapping[str, str] = field(default_factory=dict)
    runner: t.Mapping[str, t.Any] = field(default_factory=dict)
    quiesce: t.Mapping[str, t.Any] = field(default_factory=dict)
    wait: bool = True
    check_mode: bool = False


@dataclass(frozen=True)
class Source:
    """The shard's serving pod and its data claim, and what the Job reads."""

    pod: Obj
    claim: Obj
    choice: volumesource.SourceChoice

    @property
    def claim_name(self) -> str:
        return str(self.claim["metadata"]["name"])

    @property
    def live(self) -> bool:
        return self.choice.method == volumesource.LIVE


def _serving_pod(client: K8sClient, request: SnapshotJobRequest) -> Obj:
    pods = jobkit.shard_pods(
        client, request.namespace, request.shard_label, request.shard
    )
    where = "%s=%s in %s" % (request.shard_label, request.shard, request.namespace)
    if not pods:
        raise RecoveryError(
            "Failed to snapshot shard %s: no pod of it (label %s)"
            % (request.shard, where),
            resource="pods " + where,
            reason="shard pod not found",
            next_step="Check shard_label and that the shard's workload runs a pod.",
        )
    if not pod_ready(pods[0]):
        raise RecoveryError(
            "Failed to snapshot shard %s: its pod %s is not Ready, and a shard that "
            "does not serve may hold a damaged index"
            % (request.shard, pods[0]["metadata"]["name"]),
            resource="Pod %s/%s" % (request.namespace, pods[0]["metadata"]["name"]),
            reason="shard not serving",
            next_step="Recover the shard first (re-open or restore); its last "
            "verified snapshot stays the recovery point.",
        )
    return pods[0]


def find_source(client: K8sClient, request: SnapshotJobRequest) -> Source:
    """The shard's serving pod, its data claim and the source the Job will read."""
    pod = _serving_pod(client, request)
    claim_name = request.claim or claim_of(pod, request.data_volume)
    claim = client.get(Ref("PersistentVolumeClaim", claim_name, request.namespace))
    choice = volumesource.detect(
        client, claim, request.source, request.volume_snapshot_class
    )
    modes = (claim.get("spec") or {}).get("accessModes") or []
    if choice.method == volumesource.LIVE and ONE_POD_ONLY in modes:
        raise RecoveryError(
            "Failed to snapshot shard %s: claim %s is %s, so no Job can read it beside "
            "the shard's pod (%s)"
            % (request.shard, claim_name, ONE_POD_ONLY, choice.reason),
            resource="PersistentVolumeClaim %s/%s" % (request.namespace, claim_name),
            reason="live volume cannot be mounted twice",
            next_step="Offer a VolumeSnapshotClass for the claim's CSI driver "
            "(source: volume_snapshot), or snapshot in local mode inside the pod.",
        )
    return Source(pod, claim, choice)


@dataclass(frozen=True)
class SnapshotPlan:
    """The names of what a job-mode snapshot creates."""

    namespace: str
    shard: str
    snapshot_id: str
    job_name: str
    secret_name: str
    clone_name: str | None

    def to_dict(self) -> Obj:
        view: Obj = {"job": self.job_name, "snapshot_id": self.snapshot_id}
        if self.clone_name:
            view.update(volume_snapshot=self.clone_name, clone_claim=self.clone_name)
        return view


def make_plan(request: SnapshotJobRequest, source: Source) -> SnapshotPlan:
    job_name = dns_name("ragops-snapshot", request.shard, request.snapshot_id)
    return SnapshotPlan(
        request.namespace,
        request.shard,
        request.snapshot_id,
        job_name,
        request.s3_secret or dns_name("ragops-snapshot", request.shard, "s3"),
        None if source.live else job_name,
    )


def quiesce_config(request: SnapshotJobRequest, source: Source) -> Obj | None:
    """How the Job holds the shard's writes (the live volume only): the shard's own
    address unless a URL is given."""
    if not source.live:
        return None
    options = dict(request.quiesce)
    url = options.pop("url", None)
    if not url:
        ip = (source.pod.get("status") or {}).get("podIP")
        if not ip:
            raise RecoveryError(
                "Failed to plan the quiesce of shard %s: pod %s has no IP"
                % (request.shard, source.pod["metadata"]["name"]),
                reason="pod has no IP",
                next_step="Give quiesce.url (the shard's admin URL as the Job "
                "reaches it).",
            )
        url = "http://%s:%d" % (ip, options.get("port") or 8080)
    options.pop("port", None)
    return dict(options, url=url)


def runner_config(request: SnapshotJobRequest, source: Source) -> Obj:
    """The Job's configuration (``RAGOPS_SNAPSHOT``, no secrets)."""
    pod = source.pod
    described = {
        "host": (pod.get("spec") or {}).get("nodeName") or "",
        "path": "/" + request.data_path.strip("/"),
        "claim": source.claim_name,
        "pod": pod["metadata"]["name"],
        "method": source.choice.method,
    }
    return dict(
        request.runner,
        snapshot_id=request.snapshot_id,
        path=posixpath.join(MOUNT_PATH, request.data_path.strip("/")).rstrip("/"),
        source=described,
        quiesce=quiesce_config(request, source),
    )


def _node_affinity(node: str) -> Obj:
    """Run on the shard pod's node: a ReadWriteOnce volume is mounted there."""
    term = {
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]
    }
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [term]
            }
        }
    }


def job_body(
    plan: SnapshotPlan, request: SnapshotJobRequest, source: Source, config: Obj
) -> Obj:
    container = {
        "name": "snapshot",
        "image": request.image,
        "args": ["python3", "-m", RUNNER],
        "env": [
            {"name": CONFIG_VARIABLE, "value": json.dumps(config, sort_keys=True)},
            *jobkit.credential_env(plan.secret_name),
        ],
        "volumeMounts": [
            {"name": SOURCE_VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}
        ],
    }
    claim = plan.clone_name or source.claim_name
    spec: Obj = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {
                "name": SOURCE_VOLUME,
                "persistentVolumeClaim": {"claimName": claim, "readOnly": source.live},
            }
        ],
    }
    shard_spec = source.pod.get("spec") or {}
    # The Job reads the files as the shard's pod does.
    if shard_spec.get("securityContext"):
        spec["securityContext"] = shard_spec["securityContext"]
    if source.live and shard_spec.get("nodeName"):
        spec["affinity"] = _node_affinity(shard_spec["nodeName"])
    return jobkit.shard_job(
        plan.job_name,
        plan.namespace,
        plan.shard,
        {SNAPSHOT_ANNOTATION: plan.snapshot_id},
        spec,
        ttlSecondsAfterFinished=request.job_ttl,
    )


def _owned_by(job: Obj) -> t.List[Obj]:
    meta = job["metadata"]
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": meta["name"],
            "uid": meta.get("uid", ""),
        }
    ]


def clone_bodies(plan: SnapshotPlan, source: Source, job: Obj) -> t.List[Obj]:
    """The VolumeSnapshot of the shard's claim and the claim restored from it, both
    owned by the Job."""
    name = t.cast(str, plan.clone_name)
    meta = {
        "name": name,
        "namespace": plan.namespace,
        "labels": dict(MANAGED_BY, **{"ragops.io/shard": plan.shard}),
        "ownerReferences": _owned_by(job),
    }
    spec = source.claim.get("spec") or {}
    size = ((source.claim.get("status") or {}).get("capacity") or {}).get(
        "storage"
    ) or ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    clone_spec: Obj = {
        "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "dataSource": {
            "apiGroup": SNAPSHOT_GROUP,
            "kind": "VolumeSnapshot",
            "name": name,
        },
    }
    if spec.get("storageClassName"):
        clone_spec["storageClassName"] = spec["storageClassName"]
    return [
        {
            "apiVersion": SNAPSHOT_API,
            "kind": "VolumeSnapshot",
            "metadata": dict(meta),
            "spec": {
                "volumeSnapshotClassName": source.choice.snapshot_class,
                "source": {"persistentVolumeClaimName": source.claim_name},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": dict(meta),
            "spec": clone_spec,
        },
    ]


def start(
    client: K8sClient, request: SnapshotJobRequest, plan: SnapshotPlan, source: Source
) -> None:
    """Create the credentials Secret, the Job and, for a VolumeSnapshot, the snapshot
    and its clone; what an earlier run created is reused."""
    if not request.s3_secret:
        jobkit.put_secret(
            client,
            jobkit.credentials_secret(
                plan.secret_name, plan.namespace, request.credentials
            ),
        )
    config = runner_config(request, source)
    jobkit.ensure(client, job_body(plan, request, source, config))
    if plan.clone_name:
        job = client.get(Ref("Job", plan.job_name, plan.namespace))
        for body in clone_bodies(plan, source, job):
            jobkit.ensure(client, body)


def failure(plan: SnapshotPlan, seen: jobkit.JobProgress) -> RecoveryError:
    return jobkit.job_failure(
        plan.namespace,
        plan.job_name,
        "snapshot shard " + plan.shard,
        seen,
        {"job": plan.to_dict(), "published": False},
    )


@dataclass
class SnapshotJobOutcome:
    """The source chosen, the objects planned and what the Job did."""

    changed: bool
    plan: SnapshotPlan
    source: Source
    url: str
    run: Obj = field(default_factory=dict)
    result: Obj | None = None

    def to_result(self) -> Obj:
        job: Obj = {
            "plan": self.plan.to_dict(),
            "source": self.source.choice.to_dict(),
            "pod": self.source.pod["metadata"]["name"],
            "claim": self.source.claim_name,
            "run": self.run,
        }
        if self.result is None:
            planned = {
                "snapshot_id": self.plan.snapshot_id,
                "shard": self.plan.shard,
                "url": self.url,
            }
            return {"changed": self.changed, "snapshot": planned, "job": job}
        job["quiesce"] = self.result.get("quiesce")
        return {
            "changed": self.changed,
            "snapshot": self.result.get("snapshot"),
            "duration": self.result.get("duration"),
            "throughput_mb_s": self.result.get("throughput_mb_s"),
            "job": job,
        }


def snapshot_by_job(
    client: K8sClient, request: SnapshotJobRequest, url: str, waiter: Waiter
) -> SnapshotJobOutcome:
    """Snapshot the shard by a Job (only plan it in check mode; only start it
    without ``wait``)."""
    source = find_source(client, request)
    plan = make_plan(request, source)
    outcome = SnapshotJobOutcome(True, plan, source, url)
    if request.check_mode:
        return outcome
    start(client, request, plan, source)
    if not request.wait:
        outcome.run = jobkit.job_state(client, plan.namespace, plan.job_name)
        return outcome
    job, seen, duration = jobkit.follow_job(
        client, plan.namespace, plan.job_name, waiter
    )
    result = seen.result or {}
    if not job_succeeded(job) or result.get("event") != "result":
        raise failure(plan, seen)
    outcome.run = {"name": plan.job_name, "state": "succeeded", "duration": duration}
    outcome.result = result
    outcome.changed = bool(result.get("changed", True))
    return outcome
