# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drill's scratch namespace: created labelled as the drill's with a time to
live, and deleted only when it carries that label, never the production namespace.

A namespace the drill did not create (no ``ragops.io/restore-drill`` label, or
another drill's) is refused both ways, so that a typo in an inventory cannot delete
a namespace of the stack or of anyone else.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from datetime import datetime

from ..audit import timestamp, utc_now
from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import MANAGED_BY, Ref
from ..snapshots.catalog import shifted
from ..waiter import Waiter

# On the scratch namespace and everything the drill creates in it: the drill's id.
DRILL_LABEL = "ragops.io/restore-drill"
# On the scratch namespace: the namespace whose shards it restores.
DRILL_OF_LABEL = "ragops.io/drill-of"
# On the scratch namespace: when it may be deleted by anyone cleaning up after a
# drill that could not (a killed run, a namespace kept on failure).
EXPIRES_ANNOTATION = "ragops.io/expires-at"
TTL_ANNOTATION = "ragops.io/ttl-seconds"
# Namespaces no drill may use, whatever the production namespace is.
RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Scratch:
    """The scratch namespace of one drill of ``production``."""

    name: str
    drill_id: str
    production: str
    ttl: int = 86400

    def labels(self) -> t.Dict[str, str]:
        return dict(
            MANAGED_BY, **{DRILL_LABEL: self.drill_id, DRILL_OF_LABEL: self.production}
        )

    def body(self, now: datetime) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.name,
                "labels": self.labels(),
                "annotations": {
                    TTL_ANNOTATION: str(self.ttl),
                    EXPIRES_ANNOTATION: timestamp(shifted(now, self.ttl)),
                },
            },
        }


def _refuse(msg: str, reason: str, next_step: str) -> RecoveryError:
    return RecoveryError(msg, reason=reason, next_step=next_step)


def check(scratch: Scratch) -> Scratch:
    """``scratch`` as given, or the error that says what is wrong with it."""
    if scratch.name == scratch.production:
        raise _refuse(
            "Refusing to use the production namespace %s as the drill's scratch "
            "namespace" % scratch.production,
            "scratch namespace is the production namespace",
            "Give the drill a namespace of its own (the default is "
            "<production>-drill-<drill id>).",
        )
    if scratch.name in RESERVED or scratch.name.startswith("kube-"):
        raise _refuse(
            "Refusing to use the system namespace %s as the drill's scratch "
            "namespace" % scratch.name,
            "reserved namespace",
            "Give the drill a namespace of its own.",
        )
    if not DNS_LABEL.match(scratch.name):
        raise _refuse(
            "Invalid scratch namespace %r: a namespace name is at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
            % scratch.name,
            "invalid namespace name",
            "Shorten or rename the scratch namespace.",
        )
    if not LABEL_VALUE.match(scratch.drill_id):
        raise _refuse(
            "Invalid drill id %r: it becomes a label value (at most 63 letters, "
            "digits, '-', '_' and '.', starting and ending with a letter or digit)"
            % scratch.drill_id,
            "invalid drill id",
            "Use a drill id such as 20261207t1500z.",
        )
    if scratch.ttl < 60:
        raise _refuse(
            "ttl must be at least 60 seconds, not %d" % scratch.ttl,
            "invalid ttl",
            "Give the scratch namespace time to outlive the drill.",
        )
    return scratch


def owned(namespace: Obj, scratch: Scratch) -> bool:
    """The namespace is this drill's: labelled with its id and production namespace."""
    labels = namespace["metadata"].get("labels") or {}
    return (
        labels.get(DRILL_LABEL) == scratch.drill_id
        and labels.get(DRILL_OF_LABEL) == scratch.production
    )


def not_ours(namespace: Obj, scratch: Scratch) -> RecoveryError:
    labels = namespace["metadata"].get("labels") or {}
    found = {k: labels[k] for k in (DRILL_LABEL, DRILL_OF_LABEL) if k in labels}
    return RecoveryError(
        "Namespace %s exists and is not the scratch namespace of drill %s of %s "
        "(its drill labels: %s)"
        % (scratch.name, scratch.drill_id, scratch.production, found or "none"),
        resource="Namespace " + scratch.name,
        reason="namespace not created by this drill",
        next_step="Choose another scratch namespace; the drill only uses and deletes "
        "a namespace it created.",
    )


@dataclass
class Outcome:
    """What a present or absent run did (or would do, in check mode)."""

    changed: bool
    scratch: Scratch
    state: str
    namespace: Obj | None = None
    duration: float = 0.0

    def to_result(self) -> Obj:
        meta = (self.namespace or {}).get("metadata") or {}
        return {
            "changed": self.changed,
            "namespace": {
                "name": self.scratch.name,
                "drill_id": self.scratch.drill_id,
                "production": self.scratch.production,
                "state": self.state,
                "labels": meta.get("labels") or self.scratch.labels(),
                "expires_at": (meta.get("annotations") or {}).get(EXPIRES_ANNOTATION),
            },
            "duration": self.duration,
            "summary": "scratch namespace %s: %s" % (self.scratch.name, self.state),
        }


def present(client: K8sClient, scratch: Scratch, check_mode: bool) -> Outcome:
    """Create the scratch namespace unless this drill's exists already."""
    found = client.get_or_none(Ref("Namespace", check(scratch).name))
    if found is not None:
        if not owned(found, scratch):
            raise not_ours(found, scratch)
        return Outcome(False, scratch, "present", found)
    body = scratch.body(utc_now())
    created = client.create(body, dry_run=check_mode)
    state = "would be created" if check_mode else "created"
    return Outcome(True, scratch, state, created)


def absent(
    client: K8sClient, scratch: Scratch, check_mode: bool, waiter: Waiter | None
) -> Outcome:
    """Delete the scratch namespace (and with it everything the drill created in it)
    if it is this drill's; wait until it is gone when ``waiter`` is given."""
    ref = Ref("Namespace", check(scratch).name)
    found = client.get_or_none(ref)
    if found is None:
        return Outcome(False, scratch, "absent")
    if not owned(found, scratch):
        raise not_ours(found, scratch)
    uid = found["metadata"].get("uid")
    if check_mode:
        client.delete(ref, uid=uid, dry_run=True)
        return Outcome(True, scratch, "would be deleted", found)
    deleting = bool(found["metadata"].get("deletionTimestamp"))
    if not deleting:
        client.delete(ref, uid=uid)
    if waiter is None:
        return Outcome(not deleting, scratch, "deleting", found)
    outcome = waiter.until(
        str(ref),
        lambda: client.get_or_none(ref),
        lambda namespace: namespace is None,
        next_step="kubectl get namespace %s -o yaml (its finalizers and the "
        "conditions say what holds it)" % scratch.name,
    )
    return Outcome(not deleting, scratch, "deleted", found, outcome.duration)
