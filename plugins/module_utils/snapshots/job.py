# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job mode: restore a shard inside the cluster, next to its volume, and put the shard
back on it.

1. A **new** PVC, sized from the manifest plus headroom, labelled with the shard and
   annotated with the snapshot and its manifest digest (which later runs compare, so a
   repeat is a no-op).
2. A restore Job running the collection's own local restore (:mod:`.jobrun`) in the
   execution environment image, with the new PVC mounted at ``/restore``; it logs its
   progress as JSON lines.
3. The shard back on the new PVC: a Deployment's pod template is patched; the pod of a
   StatefulSet (whose claim names cannot change) or a bare pod is replaced by a fresh
   pod on the new PVC, and the Services that selected only the old pod are repointed to
   it.  The old pod and PVC stay.
4. The old PVC labelled ``ragops.io/evidence=<incident id>``; it is never deleted.
"""

from __future__ import annotations

import copy
import json
import math
import re
import typing as t
from dataclasses import dataclass, field

from ..errors import NotFound, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_finished, job_succeeded, pod_ready
from ..k8s.resources import INCIDENT_ANNOTATION, MANAGED_BY, Ref
from ..waiter import Waiter

MOUNT_PATH = "/restore"
RUNNER = "ansible_collections.ragops.recovery.plugins.module_utils.snapshots.jobrun"
SNAPSHOT_ANNOTATION = "ragops.io/snapshot-id"
MANIFEST_ANNOTATION = "ragops.io/manifest-sha256"
EVIDENCE_LABEL = "ragops.io/evidence"
RESTORE_POD_LABEL = "ragops.io/restore-pod"
RESTORE_OF_LABEL = "ragops.io/restore-of"
PREVIOUS_SELECTOR = "ragops.io/previous-selector"
# Labels a controller puts on the pods it owns; a fresh pod must not carry them.
CONTROLLER_LABELS = (
    "statefulset.kubernetes.io/pod-name",
    "controller-revision-hash",
    "apps.kubernetes.io/pod-index",
    "pod-template-hash",
)
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MIB = 1024 * 1024
# The collection's execution environment: the restore Job runs the collection's own code
# in it.
RESTORE_IMAGE = "ghcr.io/ragops/recovery-ee:0.1.0"


def dns_name(*parts: str) -> str:
    """A DNS-1123 name from ``parts``: lowercase, ``-`` for anything else, at most 63
    characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return name[:63].rstrip("-")


def parse_workload(text: str) -> t.Tuple[str, str]:
    kind, sep, name = text.partition("/")
    if not sep or kind not in ("StatefulSet", "Deployment", "Pod") or not name:
        raise RecoveryError(
            "Invalid workload %r: use StatefulSet/<name>, Deployment/<name> or "
            "Pod/<name>" % text,
            reason="invalid workload",
        )
    return kind, name


def claim_of(pod: Obj, volume: str) -> str:
    for item in (pod.get("spec") or {}).get("volumes") or []:
        if item.get("name") == volume and item.get("persistentVolumeClaim"):
            return str(item["persistentVolumeClaim"]["claimName"])
    raise RecoveryError(
        "Pod %s has no PersistentVolumeClaim volume named %s"
        % (pod["metadata"]["name"], volume),
        resource="Pod " + pod["metadata"]["name"],
        reason="data volume not found",
        next_step="Set data_volume to the name of the pod's volume that holds the "
        "shard's data.",
    )


def claim_size(total_bytes: int, headroom_percent: int) -> str:
    """The new PVC's request: the data plus headroom, in MiB, at least 64 MiB."""
    return "%dMi" % max(
        64, math.ceil(total_bytes * (1 + headroom_percent / 100.0) / MIB)
    )


@dataclass(frozen=True)
class JobRequest:
    """Everything job mode needs besides the snapshot: where the shard runs and how
    to run the Job."""

    namespace: str
    shard: str
    workload: str
    shard_label: str
    data_volume: str
    image: str
    incident_id: str
    headroom: int = 20
    storage_class: str | None = None
    s3_secret: str | None = None
    credentials: t.Mapping[str, str] = field(default_factory=dict)
    runner: t.Mapping[str, t.Any] = field(default_factory=dict)
    claim: str | None = None


@dataclass(frozen=True)
class Target:
    """Where the shard runs now: its workload, its current pod and that pod's data
    claim."""

    kind: str
    name: str
    pod: Obj
    claim: Obj

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


def _run_by_job(pod: Obj) -> bool:
    """A Job's pod (a restore, an indexer) carries the shard's label but never serves
    the shard."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    return (
        "job-name" in labels
        or "batch.kubernetes.io/job-name" in labels
        or any(
            owner.get("kind") == "Job" for owner in meta.get("ownerReferences") or []
        )
    )


def _shard_pods(
    client: K8sClient, namespace: str, shard_label: str, shard: str
) -> t.List[Obj]:
    pods = [
        p
        for p in client.list(
            "Pod", namespace, label_selector="%s=%s" % (shard_label, shard)
        )
        if not p["metadata"].get("deletionTimestamp") and not _run_by_job(p)
    ]
    # The latest fresh pod of an earlier restore, if any, is the one serving now.
    return sorted(
        pods,
        key=lambda p: (
            RESTORE_OF_LABEL in (p["metadata"].get("labels") or {}),
            p["metadata"].get("creationTimestamp") or "",
        ),
        reverse=True,
    )


def find_target(client: K8sClient, request: JobRequest) -> Target:
    """The shard's workload, its serving pod and that pod's data claim."""
    kind, name = parse_workload(request.workload)
    namespace, shard, shard_label = (
        request.namespace,
        request.shard,
        request.shard_label,
    )
    if kind == "Pod":
        pods = [client.get(Ref("Pod", name, namespace))]
    else:
        client.get(Ref(kind, name, namespace))
        pods = _shard_pods(client, namespace, shard_label, shard)
    if not pods:
        raise RecoveryError(
            "No pod of shard %s (label %s=%s) in %s"
            % (shard, shard_label, shard, namespace),
            resource="%s %s/%s" % (kind, namespace, name),
            reason="shard pod not found",
            next_step="Check shard_label and that the workload runs a pod for the "
            "shard.",
        )
    claim_name = request.claim or claim_of(pods[0], request.data_volume)
    claim = client.get(Ref("PersistentVolumeClaim", claim_name, namespace))
    return Target(kind, name, pods[0], claim)


def already_restored(target: Target, manifest_sha256: str) -> bool:
    """The shard's pod runs Ready on a PVC restored from this very manifest."""
    annotations = target.claim["metadata"].get("annotations") or {}
    return annotations.get(MANIFEST_ANNOTATION) == manifest_sha256 and pod_ready(
        target.pod
    )


@dataclass(frozen=True)
class Plan:
    """The objects a job-mode restore creates, named from the shard and the snapshot."""

    namespace: str
    shard: str
    snapshot_id: str
    manifest_sha256: str
    incident_id: str
    claim_name: str
    claim_size: str
    job_name: str
    secret_name: str
    pod_name: str

    def annotations(self) -> t.Dict[str, str]:
        return {
            SNAPSHOT_ANNOTATION: self.snapshot_id,
            MANIFEST_ANNOTATION: self.manifest_sha256,
            INCIDENT_ANNOTATION: self.incident_id,
        }

    def to_dict(self) -> t.Dict[str, str]:
        return {
            "claim": self.claim_name,
            "size": self.claim_size,
            "job": self.job_name,
            "pod": self.pod_name,
            "snapshot_id": self.snapshot_id,
        }


def make_plan(
    target: Target,
    request: JobRequest,
    snapshot_id: str,
    manifest_sha256: str,
    total_bytes: int,
) -> Plan:
    """The names and size of what restoring ``snapshot_id`` for ``target`` creates."""
    base_claim = target.claim["metadata"]["name"].split("-r-")[0]
    base_pod = (
        target.pod["metadata"].get("labels", {}).get(RESTORE_OF_LABEL)
        or target.pod_name
    )
    shard = request.shard
    return Plan(
        request.namespace,
        shard,
        snapshot_id,
        manifest_sha256,
        request.incident_id,
        claim_name=dns_name(base_claim, "r", snapshot_id),
        claim_size=claim_size(total_bytes, request.headroom),
        job_name=dns_name("ragops-restore", shard, snapshot_id),
        secret_name=request.s3_secret or dns_name("ragops-restore", shard, "s3"),
        pod_name=dns_name(base_pod, "r", snapshot_id),
    )


def claim_body(plan: Plan, old: Obj, storage_class: str | None) -> Obj:
    spec = old.get("spec") or {}
    body: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": plan.claim_name,
            "namespace": plan.namespace,
            "labels": dict(MANAGED_BY, **{"ragops.io/shard": plan.shard}),
            "annotations": plan.annotations(),
        },
        "spec": {
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": plan.claim_size}},
        },
    }
    storage_class = storage_class or spec.get("storageClassName")
    if storage_class:
        body["spec"]["storageClassName"] = storage_class
    return body


def secret_body(plan: Plan, credentials: t.Mapping[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": plan.secret_name,
            "namespace": plan.namespace,
            "labels": dict(MANAGED_BY),
        },
        "stringData": {key: value for key, value in credentials.items() if value},
    }


def job_body(plan: Plan, image: str, config: t.Mapping[str, t.Any]) -> Obj:
    env: t.List[Obj] = [
        {"name": "RAGOPS_RESTORE", "value": json.dumps(dict(config, dest=MOUNT_PATH))}
    ]
    for key in CREDENTIAL_KEYS:
        ref = {
            "name": plan.secret_name,
            "key": key,
            "optional": key == "AWS_SESSION_TOKEN",
        }
        env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    container = {
        "name": "restore",
        "image": image,
        "args": ["python3", "-m", RUNNER],
        "env": env,
        "volumeMounts": [{"name": "restore", "mountPath": MOUNT_PATH}],
    }
    labels = dict(MANAGED_BY, **{"ragops.io/shard": plan.shard})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": plan.job_name,
            "namespace": plan.namespace,
            "labels": labels,
            "annotations": plan.annotations(),
        },
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "restore",
                            "persistentVolumeClaim": {"claimName": plan.claim_name},
                        }
                    ],
                },
            },
        },
    }


def ensure(client: K8sClient, obj: Obj) -> bool:
    """Create ``obj`` unless an object of that name exists (an earlier, interrupted
    run); True if created."""
    meta = obj["metadata"]
    if (
        client.get_or_none(Ref(obj["kind"], meta["name"], meta["namespace"]))
        is not None
    ):
        return False
    client.create(obj)
    return True


def put_secret(client: K8sClient, body: Obj) -> None:
    """Create the credentials Secret, or bring an existing one of ours up to date."""
    ref = Ref("Secret", body["metadata"]["name"], body["metadata"]["namespace"])
    if client.get_or_none(ref) is None:
        client.create(body)
    else:
        client.patch(ref, {"stringData": body["stringData"]})


@dataclass
class JobProgress:
    """What the restore Job's log said last."""

    progress: Obj = field(default_factory=dict)
    result: Obj | None = None

    def read(self, log: str) -> None:
        for line in log.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "progress":
                self.progress = event
            elif isinstance(event, dict) and event.get("event") in ("result", "error"):
                self.result = event


def job_log(client: K8sClient, namespace: str, job: str) -> str:
    """The last lines of the log of the Job's newest pod; empty when there is none."""
    pods = client.list("Pod", namespace, label_selector="job-name=%s" % job)
    if not pods:
        return ""
    newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    try:
        return client.pod_log(namespace, newest["metadata"]["name"], tail_lines=50)
    except (NotFound, RecoveryError):
        return ""


def wait_for_job(
    client: K8sClient, plan: Plan, waiter: Waiter
) -> t.Tuple[Obj, JobProgress, float]:
    """Wait until the Job finishes, reading its progress lines on every poll."""
    seen = JobProgress()
    ref = Ref("Job", plan.job_name, plan.namespace)

    def fetch() -> Obj:
        job = client.get(ref)
        seen.read(job_log(client, plan.namespace, plan.job_name))
        return job

    outcome = waiter.until(
        str(ref),
        fetch,
        job_finished,
        next_step="kubectl -n %s logs job/%s" % (plan.namespace, plan.job_name),
    )
    if not seen.result:
        seen.read(job_log(client, plan.namespace, plan.job_name))
    return outcome.value, seen, outcome.duration


def job_failure(plan: Plan, seen: JobProgress) -> RecoveryError:
    error = seen.result or {}
    where = "%s/%s" % (plan.namespace, plan.job_name)
    return RecoveryError(
        "Failed to restore shard %s in Job %s: %s"
        % (plan.shard, where, error.get("msg") or "the Job failed"),
        resource="Job " + where,
        reason=error.get("reason") or "restore Job failed",
        next_step=error.get("next_step")
        or "Read the Job's log: kubectl -n %s logs job/%s"
        % (plan.namespace, plan.job_name),
        partial={
            "job": plan.to_dict(),
            "tried": error.get("tried") or [],
            "quarantined": error.get("quarantined") or [],
            "shard_unchanged": True,
        },
    )


def fresh_pod(target: Target, plan: Plan, data_volume: str) -> Obj:
    """A copy of the shard's pod on the new claim, without the labels its controller
    owns."""
    old = target.pod
    spec = copy.deepcopy(old.get("spec") or {})
    for key in ("nodeName", "hostname", "subdomain"):
        spec.pop(key, None)
    for volume in spec.get("volumes") or []:
        if volume.get("name") == data_volume:
            volume["persistentVolumeClaim"] = {"claimName": plan.claim_name}
    labels = {
        k: v
        for k, v in (old["metadata"].get("labels") or {}).items()
        if k not in CONTROLLER_LABELS
    }
    labels.update(
        {
            RESTORE_POD_LABEL: plan.pod_name,
            RESTORE_OF_LABEL: labels.get(RESTORE_OF_LABEL) or target.pod_name,
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": plan.pod_name,
            "namespace": plan.namespace,
            "labels": labels,
            "annotations": plan.annotations(),
        },
        "spec": spec,
    }


def _selects(selector: t.Mapping[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(
        labels.get(key) == value for key, value in selector.items()
    )


def repoint_services(
    client: K8sClient, target: Target, plan: Plan, shard_label: str
) -> t.List[Obj]:
    """Services whose selector picks the old pod and no pod of another shard now
    select the fresh pod."""
    pods = client.list("Pod", plan.namespace)
    changes = []
    for service in client.list("Service", plan.namespace):
        selector = (service.get("spec") or {}).get("selector") or {}
        others = [
            p
            for p in pods
            if _selects(selector, p)
            and (p["metadata"].get("labels") or {}).get(shard_label) != plan.shard
        ]
        if not _selects(selector, target.pod) or others:
            continue
        patch = {
            "metadata": {
                "annotations": {PREVIOUS_SELECTOR: json.dumps(selector, sort_keys=True)}
            },
            "spec": {
                "selector": dict(
                    {key: None for key in selector},
                    **{RESTORE_POD_LABEL: plan.pod_name},
                )
            },
        }
        client.patch(Ref("Service", service["metadata"]["name"], plan.namespace), patch)
        changes.append(
            {
                "kind": "Service",
                "name": service["metadata"]["name"],
                "selector_before": selector,
                "selector_after": {RESTORE_POD_LABEL: plan.pod_name},
            }
        )
    return changes


def repoint_deployment(
    client: K8sClient, target: Target, plan: Plan, data_volume: str
) -> t.List[Obj]:
    def mutate(deployment: Obj) -> Obj:
        template = deployment["spec"]["template"]
        for volume in template["spec"].get("volumes") or []:
            if volume.get("name") == data_volume:
                volume["persistentVolumeClaim"] = {"claimName": plan.claim_name}
        template.setdefault("metadata", {}).setdefault("annotations", {}).update(
            plan.annotations()
        )
        return deployment

    client.update(Ref("Deployment", target.name, plan.namespace), mutate)
    return [
        {
            "kind": "Deployment",
            "name": target.name,
            "claim_before": target.claim["metadata"]["name"],
            "claim_after": plan.claim_name,
        }
    ]


def label_evidence(client: K8sClient, target: Target, plan: Plan) -> Obj:
    name = target.claim["metadata"]["name"]
    value = dns_name(plan.incident_id) or "unknown"
    client.patch(
        Ref("PersistentVolumeClaim", name, plan.namespace),
        {
            "metadata": {
                "labels": {EVIDENCE_LABEL: value},
                "annotations": {
                    "ragops.io/evidence-reason": "replaced by restore of snapshot %s"
                    % plan.snapshot_id
                },
            }
        },
    )
    return {"claim": name, "label": "%s=%s" % (EVIDENCE_LABEL, value)}


def _put_back(
    client: K8sClient, request: JobRequest, target: Target, plan: Plan
) -> t.List[Obj]:
    if target.kind == "Deployment":
        return repoint_deployment(client, target, plan, request.data_volume)
    ensure(client, fresh_pod(target, plan, request.data_volume))
    return [
        {"kind": "Pod", "name": plan.pod_name, "replaces": target.pod_name},
        *repoint_services(client, target, plan, request.shard_label),
    ]


def _serving_pod(
    client: K8sClient, request: JobRequest, plan: Plan, waiter: Waiter
) -> Obj:
    def fetch() -> t.List[Obj]:
        pods = _shard_pods(
            client, request.namespace, request.shard_label, request.shard
        )
        return [
            p
            for p in pods
            if claim_of_or_none(p, request.data_volume) == plan.claim_name
        ]

    outcome = waiter.until(
        "a Ready pod of shard %s on PVC %s" % (request.shard, plan.claim_name),
        fetch,
        lambda pods: any(pod_ready(p) for p in pods),
        next_step="kubectl -n %s describe pod -l %s=%s"
        % (request.namespace, request.shard_label, request.shard),
    )
    return next(p for p in outcome.value if pod_ready(p))


def claim_of_or_none(pod: Obj, volume: str) -> str | None:
    try:
        return claim_of(pod, volume)
    except RecoveryError:
        return None


def start_restore(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target
) -> None:
    """Create the new PVC, the credentials Secret and the restore Job; those of an
    earlier run are reused."""
    ensure(client, claim_body(plan, target.claim, request.storage_class))
    if not request.s3_secret:
        put_secret(client, secret_body(plan, request.credentials))
    runner = dict(
        request.runner,
        snapshot_id=plan.snapshot_id,
        fallback=False,
        incident_id=request.incident_id,
    )
    ensure(client, job_body(plan, request.image, runner))


def restore_started(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target
) -> Obj:
    """Start the restore (``wait: false``) and say where it stands; nothing is
    repointed yet."""
    start_restore(client, request, plan, target)
    job = client.get(Ref("Job", plan.job_name, plan.namespace))
    seen = JobProgress()
    seen.read(job_log(client, plan.namespace, plan.job_name))
    state = (
        ("failed" if not job_succeeded(job) else "succeeded")
        if job_finished(job)
        else "running"
    )
    return {"run": {"name": plan.job_name, "state": state, "progress": seen.progress}}


def restore_in_cluster(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target, waiter: Waiter
) -> Obj:
    """Create the PVC, run the restore Job, put the shard on the new PVC and wait
    until it is Ready."""
    start_restore(client, request, plan, target)
    job, seen, duration = wait_for_job(client, plan, waiter)
    if (
        not job_succeeded(job)
        or not seen.result
        or seen.result.get("event") != "result"
    ):
        raise job_failure(plan, seen)
    evidence = label_evidence(client, target, plan)
    changes = _put_back(client, request, target, plan)
    pod = _serving_pod(client, request, plan, waiter)
    restored = seen.result.get("restore") or {}
    return {
        "run": {
            "name": plan.job_name,
            "duration": duration,
            "bytes": restored.get("bytes"),
            "files": restored.get("files"),
            "throughput_mb_s": restored.get("throughput_mb_s"),
            "restore_duration": restored.get("duration"),
        },
        "repointed": changes,
        "evidence": evidence,
        "pod": pod["metadata"]["name"],
    }
