# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a snapshot Job reads the shard's data: a CSI VolumeSnapshot of the shard's
PVC where the cluster offers one for the claim's driver, else the live volume (with
the shard quiesced while it is copied).

:func:`choose` is the pure decision over what the cluster said; :func:`detect` asks
the cluster (the ``snapshot.storage.k8s.io`` API group, the VolumeSnapshotClasses and
the claim's CSI driver) and calls it.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import ApiError, RecoveryError
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import SNAPSHOT_GROUP

AUTO = "auto"
VOLUME_SNAPSHOT = "volume_snapshot"
LIVE = "live"
SOURCES = (AUTO, VOLUME_SNAPSHOT, LIVE)
# Set on a claim by the PV controller: the provisioner (the CSI driver) that made it.
PROVISIONER_ANNOTATIONS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"


@dataclass(frozen=True)
class SourceChoice:
    """The source a snapshot Job reads, and why it was chosen."""

    method: str
    reason: str
    snapshot_class: str | None = None

    def to_dict(self) -> Obj:
        view: Obj = {"method": self.method, "reason": self.reason}
        if self.snapshot_class:
            view["volume_snapshot_class"] = self.snapshot_class
        return view


@dataclass(frozen=True)
class ClusterView:
    """What the cluster said: whether it serves the snapshot API, its classes
    (``None``: they could not be read) and the claim."""

    api_present: bool
    classes: t.Sequence[Obj] | None
    claim: Obj


def provisioner_of(claim: Obj) -> str | None:
    annotations = claim["metadata"].get("annotations") or {}
    return next(
        (annotations[key] for key in PROVISIONER_ANNOTATIONS if annotations.get(key)),
        None,
    )


def _class_for(driver: str, classes: t.Sequence[Obj]) -> t.Tuple[str | None, str]:
    """The class to use for ``driver`` (the default one first, then by name) and
    what was found."""
    matching = sorted(
        (c for c in classes if c.get("driver") == driver),
        key=lambda c: (
            (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
            != "true",
            c["metadata"]["name"],
        ),
    )
    if not matching:
        return None, "no VolumeSnapshotClass for the claim's CSI driver %s" % driver
    name = str(matching[0]["metadata"]["name"])
    return name, "VolumeSnapshotClass %s (CSI driver %s)" % (name, driver)


def _offer(view: ClusterView, named_class: str | None) -> t.Tuple[str | None, str]:
    """The VolumeSnapshotClass the cluster offers for the claim (``None`` and why
    not)."""
    claim_name = view.claim["metadata"]["name"]
    if not view.api_present:
        return None, "the cluster has no VolumeSnapshot API (%s)" % SNAPSHOT_GROUP
    driver = provisioner_of(view.claim)
    if view.classes is None:
        if named_class:
            return named_class, "VolumeSnapshotClass %s (as given)" % named_class
        return None, (
            "the VolumeSnapshotClasses cannot be read (forbidden): name one with "
            "volume_snapshot_class, or grant list on volumesnapshotclasses"
        )
    if named_class:
        found = [c for c in view.classes if c["metadata"]["name"] == named_class]
        if not found:
            return None, "VolumeSnapshotClass %s does not exist" % named_class
        if driver and found[0].get("driver") != driver:
            return None, "VolumeSnapshotClass %s is for driver %s, claim %s is %s" % (
                named_class,
                found[0].get("driver"),
                claim_name,
                driver,
            )
        return named_class, "VolumeSnapshotClass %s (as given)" % named_class
    if not driver:
        return None, (
            "claim %s names no provisioner (a statically provisioned volume)"
            % claim_name
        )
    return _class_for(driver, view.classes)


def choose(
    requested: str, view: ClusterView, named_class: str | None = None
) -> SourceChoice:
    """The source for ``requested`` (auto, volume_snapshot or live) given what the
    cluster offers; asking for a VolumeSnapshot the cluster cannot make fails."""
    if requested == LIVE:
        return SourceChoice(LIVE, "asked for the live volume (source: live)")
    snapshot_class, reason = _offer(view, named_class)
    if snapshot_class:
        return SourceChoice(VOLUME_SNAPSHOT, reason, snapshot_class)
    if requested == VOLUME_SNAPSHOT:
        raise RecoveryError(
            "Failed to plan a VolumeSnapshot of claim %s: %s"
            % (view.claim["metadata"]["name"], reason),
            resource="PersistentVolumeClaim " + view.claim["metadata"]["name"],
            reason=reason,
            next_step="Use source: auto or live (the live volume, with the shard "
            "quiesced while it is copied), or install a VolumeSnapshotClass for the "
            "claim's CSI driver.",
        )
    return SourceChoice(LIVE, reason + ": the live volume, quiesced")


def _classes(client: K8sClient) -> t.List[Obj] | None:
    try:
        return client.list("VolumeSnapshotClass", None)
    except ApiError as error:
        if error.status in (401, 403):
            return None
        if error.status == 404:
            return []
        raise


def detect(
    client: K8sClient, claim: Obj, requested: str, named_class: str | None = None
) -> SourceChoice:
    """Ask the cluster what it offers for ``claim`` and choose (see :func:`choose`)."""
    if requested == LIVE:
        return choose(LIVE, ClusterView(False, [], claim))
    present = client.api_group(SNAPSHOT_GROUP) is not None
    classes = _classes(client) if present else []
    return choose(requested, ClusterView(present, classes, claim), named_class)
