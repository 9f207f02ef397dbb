"""The lab's storage: a default StorageClass whose claims this agent provisions as local directories.

It works as an external provisioner does with the PersistentVolume controller: the controller marks
a claim of the class with `volume.kubernetes.io/storage-provisioner`; the agent creates a hostPath PV
of the claim's size bound to it by claimRef (the controller completes the binding); a released PV
whose reclaim policy is Delete is removed with its directory, a Retain one is left alone. A claim
whose name's directory still belongs to another volume (a retained one, released by an earlier claim of
that name) gets a directory of its own, as a real provisioner gives every claim a new volume.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ragops_lab.runtime.kubeapi import KubeError
from ragops_lab.runtime.log import JsonLog

from .api import CORE, Api
from .volumes import claim_dir

PROVISIONER = "lab.ragops.io/local-dir"
STORAGE_CLASS = "lab-local"
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")

Obj = dict[str, Any]


def storage_class() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": False,
    }


def wants_volume(claim: Obj) -> bool:
    annotations = claim["metadata"].get("annotations") or {}
    return (not (claim.get("spec") or {}).get("volumeName")
            and (claim.get("status") or {}).get("phase") == "Pending"
            and any(annotations.get(key) == PROVISIONER for key in PROVISIONER_ANNOTATIONS))


def volume_for(claim: Obj, directory: Path, reclaim_policy: str) -> Obj:
    meta, spec = claim["metadata"], claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                     "labels": {"lab.ragops.io/claim-namespace": meta["namespace"]}},
        "spec": {
            "capacity": {"storage": storage}, "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": reclaim_policy, "storageClassName": spec.get("storageClassName"),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
        },
    }


class Provisioner:
    def __init__(self, api: Api, state_dir: Path, log: JsonLog) -> None:
        self.api = api
        self.state_dir = state_dir
        self.log = log

    def install(self) -> None:
        try:
            self.api.create("/apis/storage.k8s.io/v1/storageclasses", storage_class())
        except KubeError as exc:
            if exc.status != 409:
                raise

    def sync(self, claims: list[Obj], volumes: list[Obj], classes: dict[str, Obj]) -> None:
        provisioned = {(v["spec"].get("claimRef") or {}).get("uid") for v in volumes}
        taken = {str((v["spec"].get("hostPath") or {}).get("path")) for v in volumes}
        for claim in claims:
            if wants_volume(claim) and claim["metadata"]["uid"] not in provisioned:
                self._provision(claim, classes, taken)
        for volume in volumes:
            if self._releasable(volume):
                self._delete(volume)

    def _provision(self, claim: Obj, classes: dict[str, Obj], taken: set[str]) -> None:
        meta = claim["metadata"]
        chosen = classes.get(str((claim.get("spec") or {}).get("storageClassName") or "")) or storage_class()
        directory = claim_dir(self.state_dir, meta["namespace"], meta["name"])
        if str(directory) in taken:
            directory = claim_dir(self.state_dir, meta["namespace"], f"{meta['name']}-{meta['uid'][:8]}")
        directory.mkdir(parents=True, exist_ok=True)
        volume = volume_for(claim, directory, str(chosen.get("reclaimPolicy") or "Delete"))
        try:
            self.api.create(f"{CORE}/persistentvolumes", volume)
        except KubeError as exc:
            if exc.status != 409:
                raise
        self.log.info("volume_provisioned", claim=f"{meta['namespace']}/{meta['name']}",
                      volume=volume["metadata"]["name"], path=str(directory))

    @staticmethod
    def _releasable(volume: Obj) -> bool:
        ours = (volume["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
        return (ours and (volume.get("status") or {}).get("phase") == "Released"
                and volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
                and not volume["metadata"].get("deletionTimestamp"))

    def _delete(self, volume: Obj) -> None:
        path = Path(str((volume["spec"].get("hostPath") or {}).get("path", "")))
        if path.is_relative_to(self.state_dir / "pvc"):
            shutil.rmtree(path, ignore_errors=True)
        self.api.delete(f"{CORE}/persistentvolumes/{volume['metadata']['name']}")
        self.log.info("volume_deleted", volume=volume["metadata"]["name"], path=str(path))
