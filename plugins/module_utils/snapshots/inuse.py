# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who else mounts the shard's claim: a restore never takes a claim over from a pod
that is not the shard's own.

The restored volume takes over the claim the shard's controller mounts (:mod:`.rebind`):
the claim is released and the pods that mount it are restarted.  The shard's own pods
come back on the restored volume; any other pod that mounts the claim (an operator's
debug pod, a backup agent, a copy of the shard run by hand, another controller's pod)
would be deleted with no controller to start it again, or keep the old claim alive.
So such a pod stops the restore before the claim is touched, named in the error.
"""

from __future__ import annotations

import typing as t

from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj

# A pod in one of these phases has ended: it holds no volume.
ENDED_PHASES = ("Succeeded", "Failed")


def mounts(pod: Obj, claim: str) -> bool:
    """The pod has a volume from the claim."""
    return any(
        (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim
        for volume in (pod.get("spec") or {}).get("volumes") or []
    )


def holds(pod: Obj) -> bool:
    """The pod is scheduled, has not ended and is not being deleted."""
    scheduled = (pod.get("spec") or {}).get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    deleting = pod["metadata"].get("deletionTimestamp")
    return bool(scheduled) and phase not in ENDED_PHASES and not deleting


def controller_of(pod: Obj) -> t.Tuple[str, str] | None:
    """The kind and name of the pod's controller, if it has one."""
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("kind")), str(owner.get("name"))
    return None


def is_the_shards(pod: Obj, kind: str, name: str) -> bool:
    """The pod is run by the shard's workload: a StatefulSet's own pod, or a
    Deployment's (through its ReplicaSet ``<deployment>-<hash>``)."""
    owner = controller_of(pod)
    if owner is None:
        return False
    owner_kind, owner_name = owner
    if owner_kind == kind and owner_name == name:
        return True
    return (
        kind == "Deployment"
        and owner_kind == "ReplicaSet"
        and owner_name.startswith(name + "-")
    )


def describe(pod: Obj) -> str:
    """``Pod ns/name (no controller)`` or ``Pod ns/name (run by Job/x)``."""
    meta = pod["metadata"]
    owner = controller_of(pod)
    by = "run by %s/%s" % owner if owner else "no controller"
    return "Pod %s/%s (%s)" % (meta.get("namespace"), meta["name"], by)


def other_users(
    client: K8sClient, namespace: str, claim: str, kind: str, name: str
) -> t.List[Obj]:
    """The pods that hold the claim and are not run by the shard's workload."""
    return [
        pod
        for pod in client.list("Pod", namespace)
        if mounts(pod, claim) and holds(pod) and not is_the_shards(pod, kind, name)
    ]


def refuse_if_used(
    client: K8sClient, namespace: str, claim: str, kind: str, name: str
) -> None:
    """Raise, naming them, while pods other than the shard's own hold its claim."""
    users = other_users(client, namespace, claim, kind, name)
    if not users:
        return
    named = ", ".join(describe(pod) for pod in users)
    raise RecoveryError(
        "Refusing to restore onto claim %s/%s: it is still mounted by %s, which %s "
        "not run by %s/%s"
        % (namespace, claim, named, "is" if len(users) == 1 else "are", kind, name),
        resource="PersistentVolumeClaim %s/%s" % (namespace, claim),
        reason="claim mounted by a pod that is not the shard's",
        next_step="Find out what %s does (kubectl -n %s describe pod %s); once it is "
        "done with the volume, delete it or let it end, then run again. The shard's "
        "claim and its volume were left as they are; a restored volume already made "
        "is kept and used by the next run."
        % (
            "it" if len(users) == 1 else "each",
            namespace,
            " ".join(pod["metadata"]["name"] for pod in users),
        ),
        partial={"mounted_by": [pod["metadata"]["name"] for pod in users]},
    )
