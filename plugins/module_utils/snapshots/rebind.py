# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restored volume taken over by the claim the shard's controller mounts.

A StatefulSet names its pods' claims ``<template>-<set>-<ordinal>`` and a Deployment
names its claim in its pod template; pointing either at a new claim changes the
workload (and a GitOps tool would put it back).  So the restored volume takes the
claim's name instead, and the controller starts the shard's pod on it.  In order,
each step checked first so that a re-run continues where a run stopped:

1. ``keep evidence``: the old volume's reclaim policy becomes ``Retain`` and it is
   labelled with the incident, so releasing its claim keeps its data;
2. ``keep restored``: the same for the restored volume, which also records the claim
   to re-create (labels and spec of the old one);
3. ``free restored``: the restore Job (whose pod holds the restore claim) and the
   restore claim are deleted; the restored volume is released, its data kept;
4. ``pre-bind``: the restored volume's ``claimRef`` names the shard's claim, without
   a uid, so only a claim of that name can bind it;
5. ``release claim``: the shard's claim is deleted; it goes once no scheduled pod
   uses it (its volume stays, step 1);
6. ``restart pods``: the pods that mount it are deleted; their controller creates
   them again and they wait, unschedulable, until the claim exists;
7. ``claim``: the claim is created again on the restored volume (when the
   StatefulSet controller re-created it first from its template, that claim binds
   the pre-bound volume just the same);
8. ``bound``: the claim is bound to the restored volume.

Up to step 4 the shard is untouched.  After step 5 the old volume is kept as
evidence and the error of any later failure says how to put it back.
:func:`restore_policy` finally gives the restored volume its class's reclaim policy
back, once the controller's pod is Ready on it.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field

from ..errors import Conflict, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.quantity import to_bytes
from ..k8s.resources import EVIDENCE_LABEL, INCIDENT_ANNOTATION, MANAGED_BY, Ref
from ..waiter import Waiter

RESTORE_CLAIM_LABEL = "ragops.io/restore-claim"
RESTORED_FOR_LABEL = "ragops.io/restored-for"
# The claim to re-create on the restored volume (JSON: labels and spec).
CLAIM_ANNOTATION = "ragops.io/claim"
# A volume's reclaim policy before the collection set it to Retain.
POLICY_ANNOTATION = "ragops.io/reclaim-policy-before"
EVIDENCE_CLAIM_ANNOTATION = "ragops.io/evidence-claim"
EVIDENCE_REASON_ANNOTATION = "ragops.io/evidence-reason"
RESTORE_JOB_ANNOTATION = "ragops.io/restore-job"
RETAIN = "Retain"
CLAIM_SPEC_FIELDS = ("accessModes", "storageClassName", "volumeMode")


@dataclass(frozen=True)
class Rebind:
    """The shard's claim and the restore whose volume replaces the claim's volume."""

    namespace: str
    shard: str
    shard_label: str
    claim: str
    restore_claim: str
    job: str
    snapshot_id: str
    incident_id: str
    incident_label: str
    annotations: t.Mapping[str, str] = field(default_factory=dict)
    # Written on the claim last, once the controller's pod is Ready on it: a run that
    # finds it has nothing left to do.
    marker: t.Mapping[str, str] = field(default_factory=dict)

    def claim_ref(self, name: str) -> Ref:
        return Ref("PersistentVolumeClaim", name, self.namespace)

    @property
    def restored_selector(self) -> str:
        return "%s=%s,%s=%s" % (
            RESTORE_CLAIM_LABEL,
            self.restore_claim,
            RESTORED_FOR_LABEL,
            self.incident_label,
        )

    @property
    def evidence_selector(self) -> str:
        return "%s=%s,%s=%s" % (
            EVIDENCE_LABEL,
            self.incident_label,
            self.shard_label,
            self.shard,
        )


@dataclass
class Step:
    """One step of the rebind: the object it changes, how, and whether it ran."""

    name: str
    target: str
    change: str
    status: str = "planned"

    def to_dict(self) -> Obj:
        return {
            "step": self.name,
            "object": self.target,
            "change": self.change,
            "status": self.status,
        }


@dataclass
class State:
    """The claims and volumes of a rebind as they are now."""

    claim: Obj | None
    restore_claim: Obj | None
    restored: Obj | None
    old: Obj | None


def _name(obj: Obj | None) -> str:
    return str((obj or {}).get("metadata", {}).get("name") or "")


def _volume_name(claim: Obj | None) -> str:
    return str(((claim or {}).get("spec") or {}).get("volumeName") or "")


def _volume_ref(name: str) -> Ref:
    return Ref("PersistentVolume", name)


def labelled_restored(client: K8sClient, rebind: Rebind) -> Obj | None:
    """The restored volume once step 2 labelled it: the restore was verified."""
    found = client.list(
        "PersistentVolume", None, label_selector=rebind.restored_selector
    )
    return found[0] if found else None


def read_state(client: K8sClient, rebind: Rebind) -> State:
    claim = client.get_or_none(rebind.claim_ref(rebind.claim))
    restore_claim = client.get_or_none(rebind.claim_ref(rebind.restore_claim))
    restored = labelled_restored(client, rebind)
    if restored is None and _volume_name(restore_claim):
        restored = client.get(_volume_ref(_volume_name(restore_claim)))
    old = None
    if _volume_name(claim) and _volume_name(claim) != _name(restored):
        old = client.get_or_none(_volume_ref(_volume_name(claim)))
    if old is None:
        found = client.list(
            "PersistentVolume", None, label_selector=rebind.evidence_selector
        )
        old = next((v for v in found if _name(v) != _name(restored)), None)
    return State(claim, restore_claim, restored, old)


def describe(rebind: Rebind, old: str, restored: str) -> t.Dict[str, Step]:
    """Every step with the object it changes and how, in order (the plan and the
    run both name them from here)."""
    claim = "PersistentVolumeClaim %s/%s" % (rebind.namespace, rebind.claim)
    steps = [
        Step(
            "keep evidence",
            "PersistentVolume %s" % old,
            "reclaim policy Retain; label %s=%s"
            % (EVIDENCE_LABEL, rebind.incident_label),
        ),
        Step(
            "keep restored",
            "PersistentVolume %s" % restored,
            "reclaim policy Retain; label %s=%s"
            % (RESTORE_CLAIM_LABEL, rebind.restore_claim),
        ),
        Step(
            "free restored",
            "Job %s, PersistentVolumeClaim %s" % (rebind.job, rebind.restore_claim),
            "deleted (the restored volume is kept: Retain)",
        ),
        Step(
            "pre-bind",
            "PersistentVolume %s" % restored,
            "claimRef %s/%s" % (rebind.namespace, rebind.claim),
        ),
        Step("release claim", claim, "deleted (its volume %s is kept: Retain)" % old),
        Step(
            "restart pods",
            "pods mounting %s" % rebind.claim,
            "deleted; their controller creates them again on the re-created claim",
        ),
        Step("claim", claim, "created on volume %s" % restored),
        Step("bound", claim, "bound to volume %s" % restored),
        Step(
            "reclaim policy",
            "PersistentVolume %s" % restored,
            "its class's reclaim policy again, once the shard's pod is Ready",
        ),
        Step("mark restored", claim, "annotated %s" % ", ".join(rebind.marker)),
    ]
    return {step.name: step for step in steps}


def _step(rebind: Rebind, name: str, old: Obj | None, restored: Obj | None) -> Step:
    old_name = _name(old) or "(the claim's old volume)"
    restored_name = _name(restored) or "(the volume of %s)" % rebind.restore_claim
    return describe(rebind, old_name, restored_name)[name]


def claim_template(claim: Obj) -> Obj:
    """What the claim is re-created with: its labels and the spec a volume must
    fit."""
    spec = claim.get("spec") or {}
    labels = {
        key: value
        for key, value in (claim["metadata"].get("labels") or {}).items()
        if key != EVIDENCE_LABEL
    }
    kept = {key: spec[key] for key in CLAIM_SPEC_FIELDS if spec.get(key)}
    requests = (spec.get("resources") or {}).get("requests") or {}
    if requests.get("storage"):
        kept["resources"] = {"requests": {"storage": requests["storage"]}}
    return {"labels": labels, "spec": kept}


def _patch_volume(
    client: K8sClient, volume: Obj, labels: Obj, annotations: Obj, policy: str
) -> bool:
    """Set labels, annotations and the reclaim policy; False when all were set."""
    meta = volume["metadata"]
    have = dict(meta.get("labels") or {}, **(meta.get("annotations") or {}))
    wanted = dict(labels, **annotations)
    if (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == policy and (
        all(have.get(key) == value for key, value in wanted.items())
    ):
        return False
    client.patch(
        _volume_ref(_name(volume)),
        {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {"persistentVolumeReclaimPolicy": policy},
        },
    )
    return True


def _policy_before(volume: Obj) -> Obj:
    """The annotation that remembers the reclaim policy, unless one already does."""
    annotations = volume["metadata"].get("annotations") or {}
    if POLICY_ANNOTATION in annotations:
        return {}
    policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or ""
    return {POLICY_ANNOTATION: policy}


def keep_evidence(client: K8sClient, rebind: Rebind, state: State) -> Step:
    old = state.old
    step = _step(rebind, "keep evidence", old, state.restored)
    if old is None and not _is_old(state.claim, t.cast(Obj, state.restored)):
        step.status = "already done"
        return step
    if old is None:
        raise RecoveryError(
            "Failed to find the volume of claim %s/%s to keep as evidence"
            % (rebind.namespace, rebind.claim),
            resource=str(rebind.claim_ref(rebind.claim)),
            reason="claim has no bound volume",
            next_step="Check the claim with kubectl -n %s describe pvc %s; the "
            "restore replaces only a bound volume." % (rebind.namespace, rebind.claim),
        )
    labels = {EVIDENCE_LABEL: rebind.incident_label, rebind.shard_label: rebind.shard}
    annotations = dict(
        _policy_before(old),
        **{
            EVIDENCE_CLAIM_ANNOTATION: "%s/%s" % (rebind.namespace, rebind.claim),
            EVIDENCE_REASON_ANNOTATION: "replaced by restore of snapshot %s"
            % rebind.snapshot_id,
            INCIDENT_ANNOTATION: rebind.incident_id,
        },
    )
    changed = _patch_volume(client, old, labels, annotations, RETAIN)
    step.status = "done" if changed else "already done"
    return step


def _claim_record(rebind: Rebind, state: State, restored: Obj) -> str:
    """The claim to re-create, as recorded on the restored volume or read now."""
    recorded = (restored["metadata"].get("annotations") or {}).get(CLAIM_ANNOTATION)
    if recorded:
        return str(recorded)
    claim = state.claim
    if claim is None or _volume_name(claim) in ("", _name(restored)):
        raise RecoveryError(
            "Failed to read claim %s/%s to re-create it on the restored volume %s"
            % (rebind.namespace, rebind.claim, _name(restored)),
            resource=str(rebind.claim_ref(rebind.claim)),
            reason="claim missing before the restored volume was prepared",
            next_step="Check the shard's claim (kubectl -n %s get pvc %s) and its "
            "workload, then run the restore again." % (rebind.namespace, rebind.claim),
        )
    return json.dumps(claim_template(claim), sort_keys=True)


def keep_restored(client: K8sClient, rebind: Rebind, state: State) -> Step:
    restored = t.cast(Obj, state.restored)
    step = _step(rebind, "keep restored", state.old, restored)
    labels = dict(
        MANAGED_BY,
        **{
            RESTORE_CLAIM_LABEL: rebind.restore_claim,
            RESTORED_FOR_LABEL: rebind.incident_label,
            rebind.shard_label: rebind.shard,
        },
    )
    annotations = dict(
        _policy_before(restored),
        **rebind.annotations,
        **{
            CLAIM_ANNOTATION: _claim_record(rebind, state, restored),
            RESTORE_JOB_ANNOTATION: rebind.job,
        },
    )
    changed = _patch_volume(client, restored, labels, annotations, RETAIN)
    step.status = "done" if changed else "already done"
    return step


def free_restored(
    client: K8sClient, rebind: Rebind, state: State, waiter: Waiter
) -> Step:
    """Delete the restore Job, its pods and the restore claim; the volume stays."""
    step = _step(rebind, "free restored", state.old, state.restored)
    claim = state.restore_claim
    if claim is None:
        step.status = "already done"
        return step
    ns = rebind.namespace
    client.delete(Ref("Job", rebind.job, ns), propagation="Background")
    for pod in client.list("Pod", ns, label_selector="job-name=%s" % rebind.job):
        client.delete(Ref("Pod", _name(pod), ns), uid=pod["metadata"].get("uid"))
    ref = rebind.claim_ref(rebind.restore_claim)
    client.delete(ref, uid=claim["metadata"].get("uid"))
    waiter.until(
        "%s to be deleted" % ref,
        lambda: client.get_or_none(ref),
        lambda found: found is None,
        next_step="kubectl -n %s describe pvc %s (a pod that still mounts it keeps "
        "it)" % (ns, rebind.restore_claim),
    )
    step.status = "done"
    return step


def pre_bind(client: K8sClient, rebind: Rebind, state: State) -> Step:
    restored = t.cast(Obj, state.restored)
    step = _step(rebind, "pre-bind", state.old, restored)
    ref = (restored.get("spec") or {}).get("claimRef") or {}
    if (ref.get("namespace"), ref.get("name")) == (rebind.namespace, rebind.claim):
        step.status = "already done"
        return step
    claim_ref = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": rebind.namespace,
        "name": rebind.claim,
        "uid": None,
        "resourceVersion": None,
    }
    client.patch(_volume_ref(_name(restored)), {"spec": {"claimRef": claim_ref}})
    step.status = "done"
    return step


def _template(restored: Obj) -> Obj:
    text = (restored["metadata"].get("annotations") or {}).get(CLAIM_ANNOTATION)
    try:
        return t.cast(Obj, json.loads(text or ""))
    except ValueError:
        raise RecoveryError(
            "The restored volume %s does not record the claim to re-create "
            "(annotation %s)" % (_name(restored), CLAIM_ANNOTATION),
            resource="PersistentVolume %s" % _name(restored),
            reason="restored volume not prepared",
            next_step="Run the restore again: the volume is prepared before the "
            "claim is replaced.",
        ) from None


def misfits(restored: Obj, template: Obj) -> t.List[str]:
    """Why the claim could not bind the restored volume (empty when it can)."""
    spec = restored.get("spec") or {}
    wanted = template.get("spec") or {}
    problems = []
    request = ((wanted.get("resources") or {}).get("requests") or {}).get("storage")
    capacity = (spec.get("capacity") or {}).get("storage") or "0"
    if request and to_bytes(capacity, "capacity") < to_bytes(request, "request"):
        problems.append("capacity %s is below the request %s" % (capacity, request))
    for key in ("storageClassName", "volumeMode"):
        if wanted.get(key) and spec.get(key) and wanted[key] != spec[key]:
            problems.append("%s %s, the claim wants %s" % (key, spec[key], wanted[key]))
    missing = set(wanted.get("accessModes") or []) - set(spec.get("accessModes") or [])
    if missing:
        problems.append("access modes lack %s" % ", ".join(sorted(missing)))
    return problems


def check_fits(rebind: Rebind, restored: Obj) -> None:
    problems = misfits(restored, _template(restored))
    if problems:
        raise RecoveryError(
            "The restored volume %s cannot bind claim %s/%s: %s"
            % (_name(restored), rebind.namespace, rebind.claim, "; ".join(problems)),
            resource="PersistentVolume %s" % _name(restored),
            reason="restored volume does not fit the claim",
            next_step="The shard's claim and pods are unchanged. Restore again with "
            "storage_class and size_headroom that fit the claim; the restored volume "
            "is kept (Retain) and can be deleted.",
        )


def _is_old(claim: Obj | None, restored: Obj) -> bool:
    """The claim still holds the old volume (it has not been re-created yet)."""
    return claim is not None and _volume_name(claim) not in ("", _name(restored))


def release_claim(client: K8sClient, rebind: Rebind, state: State) -> Step:
    step = _step(rebind, "release claim", state.old, state.restored)
    claim = state.claim
    restored = t.cast(Obj, state.restored)
    if not _is_old(claim, restored) or t.cast(Obj, claim)["metadata"].get(
        "deletionTimestamp"
    ):
        step.status = "already done"
        return step
    meta = t.cast(Obj, claim)["metadata"]
    client.delete(rebind.claim_ref(rebind.claim), uid=meta.get("uid"))
    step.status = "done"
    return step


def mounts(pod: Obj, claim: str) -> bool:
    return any(
        (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim
        for volume in (pod.get("spec") or {}).get("volumes") or []
    )


def restart_pods(client: K8sClient, rebind: Rebind, state: State) -> Step:
    """Delete the scheduled pods that keep the old claim; their controller re-creates
    them."""
    step = _step(rebind, "restart pods", state.old, state.restored)
    if not _is_old(state.claim, t.cast(Obj, state.restored)):
        step.status = "already done"
        return step
    deleted = []
    for pod in client.list("Pod", rebind.namespace):
        meta = pod["metadata"]
        scheduled = (pod.get("spec") or {}).get("nodeName")
        if (
            mounts(pod, rebind.claim)
            and scheduled
            and not meta.get("deletionTimestamp")
        ):
            client.delete(
                Ref("Pod", meta["name"], rebind.namespace), uid=meta.get("uid")
            )
            deleted.append(meta["name"])
    step.target = "Pod %s" % ", ".join(deleted) if deleted else step.target
    step.status = "done" if deleted else "already done"
    return step


def wait_released(
    client: K8sClient, rebind: Rebind, state: State, waiter: Waiter
) -> None:
    """Until the old claim is gone (once no scheduled pod uses it)."""
    if not _is_old(state.claim, t.cast(Obj, state.restored)):
        return
    uid = t.cast(Obj, state.claim)["metadata"].get("uid")
    ref = rebind.claim_ref(rebind.claim)
    waiter.until(
        "%s to be released by its pods" % ref,
        lambda: client.get_or_none(ref),
        lambda found: found is None or found["metadata"].get("uid") != uid,
        next_step="kubectl -n %s get pods -o wide; a pod that still mounts claim %s "
        "keeps it" % (rebind.namespace, rebind.claim),
    )


def claim_body(rebind: Rebind, restored: Obj) -> Obj:
    template = _template(restored)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": rebind.claim,
            "namespace": rebind.namespace,
            "labels": template.get("labels") or {},
            "annotations": dict(rebind.annotations),
        },
        "spec": dict(template.get("spec") or {}, volumeName=_name(restored)),
    }


def recreate_claim(client: K8sClient, rebind: Rebind, restored: Obj) -> Step:
    """The claim on the restored volume: created, or annotated when the StatefulSet
    controller created it first."""
    step = _step(rebind, "claim", None, restored)
    ref = rebind.claim_ref(rebind.claim)
    current = client.get_or_none(ref)
    if current is None:
        try:
            client.create(claim_body(rebind, restored))
            step.status = "done"
            return step
        except Conflict:
            # The StatefulSet controller created it from its template meanwhile.
            current = client.get(ref)
    annotations = current["metadata"].get("annotations") or {}
    if all(annotations.get(k) == v for k, v in rebind.annotations.items()):
        step.status = "already done"
        return step
    client.patch(ref, {"metadata": {"annotations": dict(rebind.annotations)}})
    step.change = "annotated (its controller created it; it binds the pre-bound volume)"
    step.status = "done"
    return step


def wait_bound(
    client: K8sClient, rebind: Rebind, restored: Obj, waiter: Waiter
) -> Step:
    ref = rebind.claim_ref(rebind.claim)

    def bound(claim: Obj | None) -> bool:
        volume = _volume_name(claim)
        if volume and volume != _name(restored):
            raise RecoveryError(
                "Claim %s/%s was bound to volume %s instead of the restored volume %s"
                % (rebind.namespace, rebind.claim, volume, _name(restored)),
                resource=str(ref),
                reason="claim bound to another volume",
                next_step="kubectl -n %s describe pvc %s."
                % (rebind.namespace, rebind.claim),
            )
        phase = ((claim or {}).get("status") or {}).get("phase")
        return volume == _name(restored) and phase == "Bound"

    waiter.until(
        "%s to bind the restored volume %s" % (ref, _name(restored)),
        lambda: client.get_or_none(ref),
        bound,
        next_step="kubectl -n %s describe pvc %s" % (rebind.namespace, rebind.claim),
    )
    step = _step(rebind, "bound", None, restored)
    step.status = "done"
    return step


def way_back(rebind: Rebind, restored: str) -> str:
    """What to do after a failure once the shard's claim was released."""
    return (
        "Run the restore again to continue: every step is checked first. The old "
        "volume is kept (kubectl get pv -l %s); the restored one is %s. To put the old "
        "volume back instead: kubectl -n %s delete pvc %s; kubectl patch pv OLD -p "
        '\'{"spec":{"claimRef":null}}\'; then create claim %s with '
        "spec.volumeName OLD."
        % (
            rebind.evidence_selector,
            restored,
            rebind.namespace,
            rebind.claim,
            rebind.claim,
        )
    )


def restore_policy(client: K8sClient, rebind: Rebind, restored: str) -> Step:
    """The restored volume, now the claim's, gets its reclaim policy back."""
    volume = client.get(_volume_ref(restored))
    before = (volume["metadata"].get("annotations") or {}).get(POLICY_ANNOTATION)
    step = _step(rebind, "reclaim policy", None, volume)
    if not before:
        step.status = "already done"
        return step
    client.patch(
        _volume_ref(restored),
        {
            "metadata": {"annotations": {POLICY_ANNOTATION: None}},
            "spec": {"persistentVolumeReclaimPolicy": before},
        },
    )
    step.status = "done"
    return step


def finish(client: K8sClient, rebind: Rebind, restored: str) -> t.List[Obj]:
    """Once the controller's pod is Ready: the volume's own reclaim policy back, then
    the claim marked restored."""
    policy = restore_policy(client, rebind, restored)
    ref = rebind.claim_ref(rebind.claim)
    client.patch(ref, {"metadata": {"annotations": dict(rebind.marker)}})
    marked = _step(rebind, "mark restored", None, None)
    marked.status = "done"
    return [policy.to_dict(), marked.to_dict()]


def planned(rebind: Rebind, claim: Obj) -> t.List[Obj]:
    """The steps a rebind would take for the shard's claim as it is now."""
    old = _volume_name(claim) or "(the claim's volume)"
    restored = "(the volume of %s)" % rebind.restore_claim
    steps = describe(rebind, old, restored)
    return [step.to_dict() for step in steps.values()]


def _prepare(
    client: K8sClient, rebind: Rebind, waiter: Waiter, steps: t.List[Step]
) -> State:
    """Steps 1 to 4, which leave the shard as it is; the state after them."""
    state = read_state(client, rebind)
    if state.restored is None:
        raise RecoveryError(
            "Failed to find the restored volume of claim %s/%s"
            % (rebind.namespace, rebind.restore_claim),
            resource=str(rebind.claim_ref(rebind.restore_claim)),
            reason="restored volume not found",
            next_step="Run the restore again: it restores into a new claim first.",
        )
    steps.append(keep_evidence(client, rebind, state))
    steps.append(keep_restored(client, rebind, state))
    steps.append(free_restored(client, rebind, state, waiter))
    state = read_state(client, rebind)
    steps.append(pre_bind(client, rebind, state))
    state = read_state(client, rebind)
    check_fits(rebind, t.cast(Obj, state.restored))
    return state


@dataclass(frozen=True)
class Rebound:
    """The restored volume now bound to the claim, the evidence volume, the steps."""

    restored: str
    evidence: str
    steps: t.List[Obj]


def put_under_controller(client: K8sClient, rebind: Rebind, waiter: Waiter) -> Rebound:
    """Bind the restored volume to the shard's claim; the volumes and the steps.

    A failure after the claim was released carries the steps and the way back.
    """
    steps: t.List[Step] = []
    state = _prepare(client, rebind, waiter, steps)
    restored = t.cast(Obj, state.restored)
    try:
        steps.append(release_claim(client, rebind, state))
        steps.append(restart_pods(client, rebind, state))
        wait_released(client, rebind, state, waiter)
        steps.append(recreate_claim(client, rebind, restored))
        steps.append(wait_bound(client, rebind, restored, waiter))
    except RecoveryError as error:
        error.partial = dict(error.partial, steps=[s.to_dict() for s in steps])
        error.next_step = "%s %s" % (
            error.next_step or "",
            way_back(rebind, _name(restored)),
        )
        raise
    return Rebound(
        _name(restored), _name(state.old), [step.to_dict() for step in steps]
    )
