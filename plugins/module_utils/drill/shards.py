# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One shard of a restore drill: its newest verified snapshot restored into a new PVC
of the scratch namespace by the same restore Job an incident uses
(:mod:`..snapshots.job`), then a shard pod from the production workload's own pod
template started on it, behind a Service of its own for the golden queries.

Nothing of the production namespace is written: the workload (and, for a Deployment,
its data claim) is only read for the pod template and the volume's size and class.
The times are the cluster's: the restore from the Job's creation to its completion,
the start from the pod's creation to its Ready condition.
"""

from __future__ import annotations

import copy
import typing as t
from dataclasses import dataclass, field
from datetime import datetime

from ..audit import timestamp
from ..errors import Conflict, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.readiness import job_succeeded, pod_ready
from ..k8s.resources import MANAGED_BY, Ref
from ..snapshots import catalog, job, jobkit, layout, restore, store
from ..snapshots.s3 import S3Store
from ..waiter import Waiter
from .scratch import DRILL_LABEL

# On the drill's shard pod, which its Service selects.
DRILL_POD_LABEL = "ragops.io/drill-pod"


@dataclass(frozen=True)
class ShardRequest:
    """One shard to restore into the scratch namespace, and how."""

    namespace: str
    scratch: str
    drill_id: str
    shard: str
    workload: str
    shard_label: str
    data_volume: str
    image: str
    location: layout.ShardLocation
    headroom: int = 20
    storage_class: str | None = None
    address_annotation: str | None = None
    future_tolerance: int = 300
    snapshot_id: str | None = None
    credentials: t.Mapping[str, str] = field(default_factory=dict)
    runner: t.Mapping[str, t.Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    """What the production workload says a shard pod and its volume look like."""

    workload: str
    pod: Obj
    claim: Obj


def _data_claim_template(workload: Obj, volume: str) -> Obj | None:
    for claim in (workload.get("spec") or {}).get("volumeClaimTemplates") or []:
        if (claim.get("metadata") or {}).get("name") == volume:
            return t.cast(Obj, claim)
    return None


def _no_data_volume(request: ShardRequest) -> RecoveryError:
    return RecoveryError(
        "%s in %s has no volume %s for the shard's data"
        % (request.workload, request.namespace, request.data_volume),
        resource="%s %s" % (request.workload, request.namespace),
        reason="data volume not found",
        next_step="Set data_volume to the volume (or volumeClaimTemplate) that holds "
        "the shard's data.",
    )


def read_template(client: K8sClient, request: ShardRequest) -> Template:
    """The production workload's pod template and its data claim (read only)."""
    kind, name = job.parse_workload(request.workload)
    if kind == "Pod":
        raise RecoveryError(
            "A restore drill starts its shard pods from a controller's pod template; "
            "%s is a bare pod" % request.workload,
            reason="unsupported workload",
            next_step="Give workload as StatefulSet/<name> or Deployment/<name>.",
        )
    workload = client.get(Ref(kind, name, request.namespace))
    pod = copy.deepcopy((workload.get("spec") or {}).get("template") or {})
    claim = _data_claim_template(workload, request.data_volume)
    if claim is None:
        volumes = (pod.get("spec") or {}).get("volumes") or []
        found = next((v for v in volumes if v.get("name") == request.data_volume), None)
        source = (found or {}).get("persistentVolumeClaim") or {}
        if not source.get("claimName"):
            raise _no_data_volume(request)
        ref = Ref("PersistentVolumeClaim", source["claimName"], request.namespace)
        claim = client.get(ref)
    return Template(name, pod, claim)


def choose_snapshot(
    s3: S3Store, request: ShardRequest, now: datetime
) -> t.Tuple[catalog.Snapshot | None, t.List[restore.Attempt]]:
    """The shard's newest verified snapshot (a drill tries no older one: the newest
    is what a restore would use), or None with why each snapshot was skipped.

    A named snapshot (the one a started restore uses) is taken as long as its
    manifest reads: its restore Job, not the catalog, says whether it restores.
    """
    if request.snapshot_id:
        found = store.load(
            s3, request.location, now, request.future_tolerance, request.snapshot_id
        )
        named = found.get(request.snapshot_id)
        if named is not None and named.manifest is not None:
            return named, []
        return None, restore.unverified(found)
    order, skipped = restore.load_candidates(
        s3, request.location, None, False, request.future_tolerance
    )
    return (order[0] if order else None), skipped


def make_plan(
    request: ShardRequest, template: Template, snapshot: catalog.Snapshot
) -> job.Plan:
    """The names and size of what the drill creates for the shard."""
    total = t.cast(t.Any, snapshot.manifest).total_bytes
    base = job.dns_name(template.workload, request.shard)
    size = job.claim_size(total, request.headroom, job.requested_bytes(template.claim))
    return job.Plan(
        request.scratch,
        request.shard,
        snapshot.snapshot_id,
        snapshot.manifest_sha256,
        request.drill_id,
        claim_name=job.dns_name(request.data_volume, base),
        claim_size=size,
        job_name=job.dns_name("ragops-restore", request.shard, snapshot.snapshot_id),
        secret_name=job.dns_name("ragops-restore", request.shard, "s3"),
        pod_name=base,
    )


def _labelled(obj: Obj, drill_id: str) -> Obj:
    """``obj`` (and its pod template) labelled with the drill's id."""
    obj["metadata"].setdefault("labels", {})[DRILL_LABEL] = drill_id
    template = (obj.get("spec") or {}).get("template")
    if template:
        template.setdefault("metadata", {}).setdefault("labels", {})[DRILL_LABEL] = (
            drill_id
        )
    return obj


def pod_body(request: ShardRequest, template: Template, plan: job.Plan) -> Obj:
    """The shard pod as production runs it, on the restored claim."""
    spec = copy.deepcopy(template.pod.get("spec") or {})
    volumes = [
        v for v in spec.get("volumes") or [] if v.get("name") != request.data_volume
    ]
    volumes.append(
        {
            "name": request.data_volume,
            "persistentVolumeClaim": {"claimName": plan.claim_name},
        }
    )
    spec["volumes"] = volumes
    labels = dict((template.pod.get("metadata") or {}).get("labels") or {})
    labels.update(MANAGED_BY)
    labels.update({request.shard_label: request.shard, DRILL_POD_LABEL: plan.pod_name})
    metadata = {
        "name": plan.pod_name,
        "namespace": plan.namespace,
        "labels": labels,
        "annotations": plan.annotations(),
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return _labelled(pod, request.drill_id)


def service_body(request: ShardRequest, pod: Obj) -> Obj:
    """A Service in front of the drill's shard pod, one port per container port."""
    ports = [
        {
            "name": port.get("name") or "port-%d" % port["containerPort"],
            "port": port["containerPort"],
            "targetPort": port["containerPort"],
        }
        for container in pod["spec"].get("containers") or []
        for port in container.get("ports") or []
    ]
    if not ports:
        raise RecoveryError(
            "The pod template of %s declares no container port to query the shard on"
            % request.workload,
            reason="no container port",
            next_step="Declare the shard's query port in its pod template.",
        )
    name = pod["metadata"]["name"]
    labels = dict(MANAGED_BY, **{request.shard_label: request.shard})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": request.scratch, "labels": labels},
        "spec": {"selector": {DRILL_POD_LABEL: name}, "ports": ports},
    }
    return _labelled(service, request.drill_id)


def create_once(client: K8sClient, obj: Obj) -> bool:
    """Create ``obj`` unless it exists (an earlier call of the same drill); creates
    only, so that the drill needs no right to read Secrets."""
    try:
        client.create(obj)
    except Conflict:
        return False
    return True


def start_restore(
    client: K8sClient, request: ShardRequest, template: Template, plan: job.Plan
) -> bool:
    """The new PVC, the credentials Secret and the restore Job; True when created."""
    claim = job.claim_body(plan, template.claim, request.storage_class)
    secret = job.secret_body(plan, request.credentials)
    runner = job.restore_runner(request.runner, plan, request.drill_id)
    restore_job = job.job_body(plan, request.image, runner)
    created = [
        create_once(client, _labelled(obj, request.drill_id))
        for obj in (claim, secret, restore_job)
    ]
    return any(created)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one Kubernetes timestamp to another; None when one is missing."""
    begun, ended = catalog.parse_time(start or ""), catalog.parse_time(end or "")
    if begun is None or ended is None:
        return None
    return (ended - begun).total_seconds()


def ready_since(pod: Obj) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return t.cast(t.Optional[str], condition.get("lastTransitionTime"))
    return None


@dataclass
class ShardOutcome:
    """A shard's restore in the drill: its snapshot, where it runs, how long it took,
    or why it failed."""

    request: ShardRequest
    snapshot: catalog.Snapshot | None
    now: datetime
    plan: job.Plan | None = None
    changed: bool = False
    state: str = "planned"
    restore_seconds: float | None = None
    start_seconds: float | None = None
    url: str = ""
    error: Obj = field(default_factory=dict)
    tried: t.List[restore.Attempt] = field(default_factory=list)
    quarantined: t.List[str] = field(default_factory=list)

    @property
    def rpo_seconds(self) -> float | None:
        created = self.snapshot.created if self.snapshot else None
        return (self.now - created).total_seconds() if created else None

    def to_dict(self) -> Obj:
        snapshot = self.snapshot
        return {
            "shard": self.request.shard,
            "namespace": self.request.scratch,
            "state": self.state,
            "restored": self.state == "ready",
            "snapshot_id": snapshot.snapshot_id if snapshot else None,
            "snapshot_created": timestamp(snapshot.created)
            if snapshot and snapshot.created
            else None,
            "rpo_seconds": self.rpo_seconds,
            "restore_seconds": self.restore_seconds,
            "start_seconds": self.start_seconds,
            "url": self.url,
            "plan": self.plan.to_dict() if self.plan else {},
            "error": self.error,
            "tried": [attempt.to_dict() for attempt in self.tried],
            "quarantined": self.quarantined,
        }


def no_snapshot_error(request: ShardRequest, outcome: ShardOutcome) -> Obj:
    error = restore.no_snapshot(
        restore.RestoreRequest(request.location, "", ""),
        restore.Outcome(False, None, attempts=outcome.tried),
    )
    return {"msg": error.msg, "reason": error.reason, "next_step": error.next_step}


def failed_job(outcome: ShardOutcome, seen: jobkit.JobProgress, s3: S3Store) -> None:
    """Record a failed restore Job: its error, what it tried and quarantined.

    The log read is the Job's last pod: a retried pod finds the snapshot already
    quarantined by the first one, so the bucket says whether it was.
    """
    plan = t.cast(job.Plan, outcome.plan)
    error = job.job_failure(plan, seen)
    outcome.state = "restore failed"
    outcome.error = {
        "msg": error.msg,
        "reason": error.reason,
        "next_step": error.next_step,
    }
    outcome.tried += [restore.Attempt(**a) for a in error.partial.get("tried") or []]
    marked = list(error.partial.get("quarantined") or [])
    location = outcome.request.location
    if plan.snapshot_id not in marked and store.is_quarantined(
        s3, location, plan.snapshot_id
    ):
        marked.append(plan.snapshot_id)
    outcome.quarantined += marked


def plan_shard(
    client: K8sClient, s3: S3Store, request: ShardRequest, now: datetime
) -> t.Tuple[ShardOutcome, Template]:
    """The snapshot chosen and the objects planned for it; nothing is written."""
    template = read_template(client, request)
    snapshot, skipped = choose_snapshot(s3, request, now)
    outcome = ShardOutcome(request, snapshot, now, tried=skipped)
    if snapshot is None:
        outcome.state = "no snapshot"
        outcome.error = no_snapshot_error(request, outcome)
    else:
        outcome.plan = make_plan(request, template, snapshot)
    return outcome, template


def await_restore(
    client: K8sClient, s3: S3Store, outcome: ShardOutcome, waiter: Waiter
) -> bool:
    """Wait for the shard's restore Job; True when it restored the snapshot."""
    plan = t.cast(job.Plan, outcome.plan)
    finished, seen = jobkit.follow_job(client, plan.namespace, plan.job_name, waiter)[
        :2
    ]
    result = seen.result or {}
    if not job_succeeded(finished) or result.get("event") != "result":
        failed_job(outcome, seen, s3)
        return False
    outcome.restore_seconds = seconds_between(
        finished["metadata"].get("creationTimestamp"),
        (finished.get("status") or {}).get("completionTime"),
    )
    outcome.tried.append(restore.Attempt(plan.snapshot_id, "restored"))
    return True


def service_url(request: ShardRequest, service: Obj) -> str:
    """Where the controller reaches the Service: the address a proxy or ingress
    controller wrote into ``address_annotation``, else the cluster's DNS name."""
    if request.address_annotation:
        annotations = service["metadata"].get("annotations") or {}
        address = annotations.get(request.address_annotation)
        return "http://%s" % address if address else ""
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    return "http://%s.%s.svc:%s" % (meta["name"], meta["namespace"], port)


def start_shard(
    client: K8sClient,
    request: ShardRequest,
    template: Template,
    outcome: ShardOutcome,
    waiter: Waiter,
) -> None:
    """The shard pod on the restored claim and its Service, waited for until the
    pod is Ready and the Service has an address."""
    pod = pod_body(request, template, t.cast(job.Plan, outcome.plan))
    service = service_body(request, pod)
    for obj in (pod, service):
        create_once(client, obj)
    name = pod["metadata"]["name"]
    pod_ref = Ref("Pod", name, request.scratch)
    ready = waiter.until(
        str(pod_ref),
        lambda: client.get(pod_ref),
        pod_ready,
        next_step="kubectl -n %s describe pod %s" % (request.scratch, name),
    ).value
    outcome.start_seconds = seconds_between(
        ready["metadata"].get("creationTimestamp"), ready_since(ready)
    )
    service_ref = Ref("Service", name, request.scratch)
    found = waiter.until(
        "an address of %s" % service_ref,
        lambda: client.get(service_ref),
        lambda current: bool(service_url(request, current)),
        next_step="Check that %s is set on the drill's Services, or leave "
        "address_annotation unset to use the cluster's DNS names."
        % request.address_annotation,
    ).value
    outcome.url = service_url(request, found)
    outcome.state = "ready"


def restore_shard(
    client: K8sClient,
    s3: S3Store,
    request: ShardRequest,
    waiter: Waiter,
    *,
    now: datetime,
    wait: bool = True,
    check_mode: bool = False,
) -> ShardOutcome:
    """Restore the shard into the scratch namespace and start it there (``wait``),
    or only start its restore Job; in check mode only the plan."""
    outcome, template = plan_shard(client, s3, request, now)
    if outcome.plan is None:
        return outcome
    if check_mode:
        job_ref = Ref("Job", outcome.plan.job_name, request.scratch)
        outcome.changed = client.get_or_none(job_ref) is None
        return outcome
    outcome.changed = start_restore(client, request, template, outcome.plan)
    outcome.state = "restoring"
    if wait and await_restore(client, s3, outcome, waiter):
        start_shard(client, request, template, outcome, waiter)
    return outcome
