# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes kinds the collection touches, how their API paths are built, and the
labels and annotations the collection writes on them.

A fixed table instead of discovery: every kind here is built into Kubernetes,
so the paths are the same on every cluster and no discovery round trip is
spent during an incident.  The one exception, the CSI snapshot kinds
(``VolumeSnapshot``, ``VolumeSnapshotClass``), exist only where the snapshot
CRDs are installed: their API group is discovered before they are used.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

# On every object the collection creates.
MANAGED_BY = {"app.kubernetes.io/managed-by": "ragops.recovery"}
# The incident a change was made for.
INCIDENT_ANNOTATION = "ragops.io/incident-id"
# The schema version a migration Job runs (a label), or a workload's (an annotation).
VERSION_KEY = "ragops.io/migration-version"
# On what a restore replaced and keeps as evidence: the incident (as a label value).
EVIDENCE_LABEL = "ragops.io/evidence"
# On a shard's pod: whether it serves (a Service selector may drop it).
SERVING_LABEL = "ragops.io/serving"
# On a pod without a controller that a restore replaced by a fresh pod: that pod.
REPLACED_BY_LABEL = "ragops.io/replaced-by"
# The CSI snapshot API (the external-snapshotter's CRDs), where a cluster has it.
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_API = SNAPSHOT_GROUP + "/v1"


@dataclass(frozen=True)
class Kind:
    """One resource kind: its API version, plural name and scope."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    def collection_path(self, namespace: str | None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else "/apis/" + self.api_version
        if self.namespaced and namespace:
            return "%s/namespaces/%s/%s" % (prefix, namespace, self.plural)
        return "%s/%s" % (prefix, self.plural)

    def object_path(
        self, namespace: str | None, name: str, subresource: str | None = None
    ) -> str:
        path = "%s/%s" % (self.collection_path(namespace), name)
        return path + "/" + subresource if subresource else path


KINDS: t.Mapping[str, Kind] = {
    kind.kind: kind
    for kind in (
        Kind("Namespace", "v1", "namespaces", namespaced=False),
        Kind("ConfigMap", "v1", "configmaps"),
        Kind("Secret", "v1", "secrets"),
        Kind("Pod", "v1", "pods"),
        Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims"),
        Kind("PersistentVolume", "v1", "persistentvolumes", namespaced=False),
        Kind("Service", "v1", "services"),
        Kind("Event", "v1", "events"),
        Kind("ServiceAccount", "v1", "serviceaccounts"),
        Kind("Deployment", "apps/v1", "deployments"),
        Kind("StatefulSet", "apps/v1", "statefulsets"),
        Kind("Job", "batch/v1", "jobs"),
        Kind("CronJob", "batch/v1", "cronjobs"),
        Kind("VolumeSnapshot", SNAPSHOT_API, "volumesnapshots"),
        Kind("VolumeSnapshotClass", SNAPSHOT_API, "volumesnapshotclasses", False),
        Kind("Lease", "coordination.k8s.io/v1", "leases"),
    )
}


def kind_of(name: str) -> Kind:
    """The :class:`Kind` called ``name`` (for example ``ConfigMap``)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(
            "Unsupported kind %r; supported: %s" % (name, ", ".join(sorted(KINDS)))
        ) from None


@dataclass(frozen=True)
class Ref:
    """A reference to one object, used in paths and in messages."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        if self.namespace:
            return "%s %s/%s" % (self.kind, self.namespace, self.name)
        return "%s %s" % (self.kind, self.name)

    def path(self, subresource: str | None = None) -> str:
        return kind_of(self.kind).object_path(self.namespace, self.name, subresource)
