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

from ..argspec import EE_IMAGE
from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.quantity import to_bytes
from ..k8s.readiness import job_succeeded, pod_ready
from ..k8s.resources import (
    EVIDENCE_LABEL,
    INCIDENT_ANNOTATION,
    MANAGED_BY,
    REPLACED_BY_LABEL,
    SERVING_LABEL,
    Ref,
)
from ..waiter import Waiter
from . import inuse, jobkit, rebind
from .jobkit import (
    JobProgress,
    credential_env,
    credentials_secret,
    ensure,
    follow_job,
    job_state,
    put_secret,
    shard_pods,
)

MOUNT_PATH = "/restore"
RUNNER = "ansible_collections.ragops.recovery.plugins.module_utils.snapshots.jobrun"
SNAPSHOT_ANNOTATION = "ragops.io/snapshot-id"
MANIFEST_ANNOTATION = "ragops.io/manifest-sha256"
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
MIB = 1024 * 1024
# The collection's execution environment (argspec.EE_IMAGE, as `make ee` tags it): the
# restore Job runs the collection's own code in it.
RESTORE_IMAGE = EE_IMAGE


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


def claim_size(total_bytes: int, headroom_percent: int, minimum: int = 0) -> str:
    """The new PVC's request: the data plus headroom, in MiB, at least 64 MiB and at
    least ``minimum`` bytes (the replaced claim's request, which its volume must
    fit)."""
    return "%dMi" % max(
        64,
        math.ceil(total_bytes * (1 + headroom_percent / 100.0) / MIB),
        math.ceil(minimum / MIB),
    )


def requested_bytes(claim: Obj) -> int:
    """The storage a claim requests, in bytes (0 when it names none)."""
    spec = claim.get("spec") or {}
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    name = claim["metadata"]["name"]
    return to_bytes(request, "request of claim %s" % name) if request else 0


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


def _no_pod(request: JobRequest, kind: str, name: str) -> RecoveryError:
    namespace, shard, label = request.namespace, request.shard, request.shard_label
    return RecoveryError(
        "No pod of shard %s (label %s=%s) in %s" % (shard, label, shard, namespace),
        resource="%s %s/%s" % (kind, namespace, name),
        reason="shard pod not found",
        next_step="Check shard_label and that the workload runs a pod for the shard.",
    )


def _resumed_claim(client: K8sClient, request: JobRequest) -> str | None:
    """The claim an interrupted rebind was replacing, from the restored volume."""
    selector = "%s=%s,%s=%s" % (
        rebind.RESTORED_FOR_LABEL,
        dns_name(request.incident_id) or "unknown",
        request.shard_label,
        request.shard,
    )
    for volume in client.list("PersistentVolume", None, label_selector=selector):
        claim = (volume.get("spec") or {}).get("claimRef") or {}
        restore_claim = volume["metadata"]["labels"].get(rebind.RESTORE_CLAIM_LABEL)
        if claim.get("namespace") == request.namespace and claim.get("name") not in (
            None,
            restore_claim,
        ):
            return str(claim["name"])
    return None


def _claim_pods(client: K8sClient, namespace: str, claim: str) -> t.List[Obj]:
    return [
        p
        for p in client.list("Pod", namespace)
        if rebind.mounts(p, claim)
        and not jobkit.run_by_job(p)
        and not p["metadata"].get("deletionTimestamp")
    ]


def find_target(client: K8sClient, request: JobRequest) -> Target:
    """The shard's workload, its serving pod and that pod's data claim.

    While a rebind is under way the controller's new pod may wait unscheduled,
    without the shard's label yet, and its claim may be gone for a moment: the claim
    is then the one the restored volume is pre-bound to.
    """
    kind, name = parse_workload(request.workload)
    namespace = request.namespace
    if kind == "Pod":
        pods = [client.get(Ref("Pod", name, namespace))]
    else:
        client.get(Ref(kind, name, namespace))
        pods = shard_pods(client, namespace, request.shard_label, request.shard)
    claim_name = request.claim or (
        claim_of(pods[0], request.data_volume) if pods else None
    )
    if claim_name is None and kind != "Pod":
        claim_name = _resumed_claim(client, request)
        pods = _claim_pods(client, namespace, claim_name) if claim_name else []
    if claim_name is None:
        raise _no_pod(request, kind, name)
    ref = Ref("PersistentVolumeClaim", claim_name, namespace)
    claim = client.get_or_none(ref) if kind != "Pod" else client.get(ref)
    claim = claim or {"metadata": {"name": claim_name, "namespace": namespace}}
    return Target(kind, name, pods[0] if pods else {"metadata": {"name": ""}}, claim)


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
    bind_claim: str = ""

    def annotations(self) -> t.Dict[str, str]:
        return {
            SNAPSHOT_ANNOTATION: self.snapshot_id,
            MANIFEST_ANNOTATION: self.manifest_sha256,
            INCIDENT_ANNOTATION: self.incident_id,
        }

    def to_dict(self) -> t.Dict[str, str]:
        planned = {
            "claim": self.claim_name,
            "size": self.claim_size,
            "job": self.job_name,
            "pod": self.pod_name,
            "snapshot_id": self.snapshot_id,
        }
        if self.bind_claim:
            planned["bind_claim"] = self.bind_claim
        return planned


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
    size = claim_size(total_bytes, request.headroom, requested_bytes(target.claim))
    controlled = target.kind != "Pod"
    return Plan(
        request.namespace,
        shard,
        snapshot_id,
        manifest_sha256,
        request.incident_id,
        claim_name=dns_name(base_claim, "r", snapshot_id),
        claim_size=size,
        job_name=dns_name("ragops-restore", shard, snapshot_id),
        secret_name=request.s3_secret or dns_name("ragops-restore", shard, "s3"),
        pod_name=target.pod_name
        if controlled
        else dns_name(base_pod, "r", snapshot_id),
        bind_claim=target.claim["metadata"]["name"] if controlled else "",
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
    if spec.get("volumeMode"):
        body["spec"]["volumeMode"] = spec["volumeMode"]
    storage_class = storage_class or spec.get("storageClassName")
    if storage_class:
        body["spec"]["storageClassName"] = storage_class
    return body


def secret_body(plan: Plan, credentials: t.Mapping[str, str]) -> Obj:
    return credentials_secret(plan.secret_name, plan.namespace, credentials)


def job_body(plan: Plan, image: str, config: t.Mapping[str, t.Any]) -> Obj:
    env: t.List[Obj] = [
        {"name": "RAGOPS_RESTORE", "value": json.dumps(dict(config, dest=MOUNT_PATH))},
        *credential_env(plan.secret_name),
    ]
    container = {
        "name": "restore",
        "image": image,
        "args": ["python3", "-m", RUNNER],
        "env": env,
        "volumeMounts": [{"name": "restore", "mountPath": MOUNT_PATH}],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": "restore", "persistentVolumeClaim": {"claimName": plan.claim_name}}
        ],
    }
    return jobkit.shard_job(
        plan.job_name, plan.namespace, plan.shard, plan.annotations(), pod_spec
    )


def wait_for_job(
    client: K8sClient, plan: Plan, waiter: Waiter
) -> t.Tuple[Obj, JobProgress, float]:
    """Wait until the Job finishes, reading its progress lines on every poll."""
    return follow_job(client, plan.namespace, plan.job_name, waiter)


def job_failure(plan: Plan, seen: JobProgress, job: Obj | None = None) -> RecoveryError:
    error = seen.result or {}
    partial = {
        "job": plan.to_dict(),
        "tried": error.get("tried") or [],
        "quarantined": error.get("quarantined") or [],
        "shard_unchanged": True,
    }
    return jobkit.job_failure(
        plan.namespace, plan.job_name, "restore shard " + plan.shard, seen, partial, job
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
    """A pod without a controller: a fresh pod on the new PVC takes its place."""
    ensure(client, fresh_pod(target, plan, request.data_volume))
    client.patch(
        Ref("Pod", target.pod_name, plan.namespace),
        {
            "metadata": {
                "labels": {SERVING_LABEL: "false", REPLACED_BY_LABEL: plan.pod_name}
            }
        },
    )
    return [
        {"kind": "Pod", "name": plan.pod_name, "replaces": target.pod_name},
        *repoint_services(client, target, plan, request.shard_label),
    ]


def _serving_pod(
    client: K8sClient, request: JobRequest, claim: str, waiter: Waiter
) -> Obj:
    def fetch() -> t.List[Obj]:
        pods = shard_pods(client, request.namespace, request.shard_label, request.shard)
        return [p for p in pods if claim_of_or_none(p, request.data_volume) == claim]

    outcome = waiter.until(
        "a Ready pod of shard %s on PVC %s" % (request.shard, claim),
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


def restore_runner(
    runner: t.Mapping[str, t.Any], plan: Plan, incident_id: str
) -> t.Dict[str, t.Any]:
    """The restore Job's configuration: the planned snapshot alone (the module, not
    the Job, falls back to an older one), under the incident's id."""
    return dict(
        runner, snapshot_id=plan.snapshot_id, fallback=False, incident_id=incident_id
    )


def start_restore(
    client: K8sClient,
    request: JobRequest,
    plan: Plan,
    target: Target,
    waiter: Waiter | None = None,
) -> None:
    """Create the new PVC, the credentials Secret and the restore Job; those of an
    earlier run are reused, but a Job of an earlier run that failed is started again
    (when the run waits for it)."""
    ensure(client, claim_body(plan, target.claim, request.storage_class))
    if not request.s3_secret:
        put_secret(client, secret_body(plan, request.credentials))
    runner = restore_runner(request.runner, plan, request.incident_id)
    body = job_body(plan, request.image, runner)
    if waiter is not None:
        jobkit.retry_failed(client, body, waiter)
    ensure(client, body)


def restore_started(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target
) -> Obj:
    """Start the restore (``wait: false``) and say where it stands; nothing is
    repointed yet."""
    start_restore(client, request, plan, target)
    return {"run": job_state(client, plan.namespace, plan.job_name)}


def rebind_of(request: JobRequest, plan: Plan) -> rebind.Rebind:
    """The rebind that puts the restored volume under the shard's controller."""
    annotations = plan.annotations()
    marker = {MANIFEST_ANNOTATION: annotations.pop(MANIFEST_ANNOTATION)}
    return rebind.Rebind(
        namespace=plan.namespace,
        shard=plan.shard,
        shard_label=request.shard_label,
        claim=plan.bind_claim,
        restore_claim=plan.claim_name,
        job=plan.job_name,
        snapshot_id=plan.snapshot_id,
        incident_id=plan.incident_id,
        incident_label=dns_name(plan.incident_id) or "unknown",
        annotations=annotations,
        marker=marker,
    )


def _run_job(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target, waiter: Waiter
) -> Obj:
    """Run the restore Job (or pick up the one already run) and say what it did."""
    start_restore(client, request, plan, target, waiter)
    job, seen, duration = wait_for_job(client, plan, waiter)
    if (
        not job_succeeded(job)
        or not seen.result
        or seen.result.get("event") != "result"
    ):
        raise job_failure(plan, seen, job)
    restored = seen.result.get("restore") or {}
    return {
        "name": plan.job_name,
        "duration": duration,
        "bytes": restored.get("bytes"),
        "files": restored.get("files"),
        "throughput_mb_s": restored.get("throughput_mb_s"),
        "restore_duration": restored.get("duration"),
    }


def _restore_beside(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target, waiter: Waiter
) -> Obj:
    """A pod without a controller: a fresh pod on the new PVC replaces it."""
    run = _run_job(client, request, plan, target, waiter)
    evidence = label_evidence(client, target, plan)
    changes = _put_back(client, request, target, plan)
    pod = _serving_pod(client, request, plan.claim_name, waiter)
    return {
        "run": run,
        "repointed": changes,
        "evidence": evidence,
        "pod": pod["metadata"]["name"],
    }


def restore_in_cluster(
    client: K8sClient, request: JobRequest, plan: Plan, target: Target, waiter: Waiter
) -> Obj:
    """Restore into a new PVC by a Job, put the shard on it and wait until it is
    Ready.

    A StatefulSet's or Deployment's shard keeps its claim name: the restored volume
    is bound to it (see :mod:`.rebind`) and the controller starts the pod.  A
    rebind that was interrupted after the restore was verified does not run the Job
    again.
    """
    if target.kind == "Pod":
        return _restore_beside(client, request, plan, target, waiter)
    where = rebind_of(request, plan)
    # Checked before the Job runs and again before the claim is released.
    in_use = (client, plan.namespace, where.claim, target.kind, target.name)
    inuse.refuse_if_used(*in_use)
    if rebind.labelled_restored(client, where) is None:
        run = _run_job(client, request, plan, target, waiter)
    else:
        run = {"name": plan.job_name, "resumed": True}
    inuse.refuse_if_used(*in_use)
    outcome = rebind.put_under_controller(client, where, waiter)
    pod = _serving_pod(client, request, where.claim, waiter)
    steps = outcome.steps + rebind.finish(client, where, outcome.restored)
    return {
        "run": run,
        "steps": steps,
        "evidence": {
            "volume": outcome.evidence,
            "claim": where.claim,
            "label": "%s=%s" % (EVIDENCE_LABEL, where.incident_label),
        },
        "volume": outcome.restored,
        "pod": pod["metadata"]["name"],
    }
