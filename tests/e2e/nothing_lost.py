"""What every faulted run must leave behind, whatever the fault: nothing the incident needs is lost.

``before = nothing_lost.record(lab)`` before the run, ``nothing_lost.check(lab, before)`` after it (and after
any re-run). The check lists every breach at once:

- no PersistentVolume deleted, or pointed at other data (its uid and its local path are kept); no claim
  name that existed gone (the restore's swap re-creates the shard's claim under the same name);
- no S3 object deleted or overwritten (key and ETag): snapshots, their markers, evidence bundles and
  their manifests, the run's records; only an incident's ``HOLD`` on pruning comes and goes;
- no half-written object under a final name: a snapshot's manifest (written last) names an archive
  that is there at the size the manifest gives; an evidence bundle's manifest has its bundle beside it;
- no local file (reports, timelines, evidence folders given to :func:`record`) deleted;
- every entry of the shard registry valid JSON, in a state the runbook knows;
- the incident lock released, or held only for an incident whose run is still alive.
"""

from __future__ import annotations

import json
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from harness import ROOT

from ragops_lab import stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.lab import Lab

sys.path.insert(0, str(ROOT / "build" / "collections"))
from ansible_collections.ragops.recovery.plugins.module_utils.shards.rules import STATES

COORDINATION = "/apis/coordination.k8s.io/v1"
INCIDENT_ANNOTATION = "ragops.io/incident-id"
# Objects that come and go by design: an incident's hold on pruning a shard's snapshots.
TRANSIENT_KEYS = ("/HOLD",)
SNAPSHOT_MANIFEST = "/manifest.json"
SNAPSHOT_ARCHIVE = "/data.tar.zst"
EVIDENCE_MANIFEST = ".manifest.json"
EVIDENCE_BUNDLE = ".tar.gz"
Obj = dict[str, t.Any]


@dataclass(frozen=True)
class Before:
    """What was there before the run."""

    volumes: dict[str, tuple[str, str]]
    claims: set[str]
    objects: dict[str, str]
    files: set[str] = field(default_factory=set)
    folders: tuple[Path, ...] = ()


def volumes(lab: Lab) -> dict[str, tuple[str, str]]:
    """Each PersistentVolume: its uid and the local path its data is at."""
    found = lab.api().list(CORE, "persistentvolumes", "", "")[0]
    return {v["metadata"]["name"]: (v["metadata"]["uid"], ((v["spec"].get("hostPath") or {}).get("path") or ""))
            for v in found}


def claims(lab: Lab) -> set[str]:
    return {c["metadata"]["name"] for c in lab.api().list(CORE, "persistentvolumeclaims", stack.NAMESPACE, "")[0]}


def s3_objects(lab: Lab) -> dict[str, str]:
    """Every key of the lab's bucket with its ETag."""
    s3 = lab.s3()
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents") or []}


def local_files(folders: t.Sequence[Path]) -> set[str]:
    return {str(path) for folder in folders if folder.exists() for path in folder.rglob("*") if path.is_file()}


def record(lab: Lab, *folders: Path) -> Before:
    """The state a run must not lose: volumes, claims, S3 objects and the files under ``folders``."""
    return Before(volumes(lab), claims(lab), s3_objects(lab), local_files(folders), tuple(folders))


# --- the checks -------------------------------------------------------------------------------------------------


def lost_volumes(before: Before, now: dict[str, tuple[str, str]], claims_now: set[str]) -> list[str]:
    found = []
    for name, (uid, path) in sorted(before.volumes.items()):
        if name not in now:
            found.append("PersistentVolume %s (uid %s) was deleted" % (name, uid))
        elif now[name] != (uid, path):
            found.append("PersistentVolume %s was replaced: %s -> %s" % (name, (uid, path), now[name]))
    found += ["PersistentVolumeClaim %s is gone" % name for name in sorted(before.claims - claims_now)]
    return found


def lost_objects(before: Before, now: dict[str, str]) -> list[str]:
    found = []
    for key, etag in sorted(before.objects.items()):
        if key.endswith(TRANSIENT_KEYS):
            continue
        if key not in now:
            found.append("S3 object %s was deleted" % key)
        elif now[key] != etag:
            found.append("S3 object %s was overwritten (ETag %s -> %s)" % (key, etag, now[key]))
    return found


def half_written(lab: Lab, now: dict[str, str]) -> list[str]:
    """Final names whose object is incomplete: what a reader would take for a whole snapshot or bundle."""
    s3 = lab.s3()
    client, found = s3.client(), []
    for key in sorted(now):
        if key.endswith(SNAPSHOT_MANIFEST):
            archive = key[: -len(SNAPSHOT_MANIFEST)] + SNAPSHOT_ARCHIVE
            manifest = json.loads(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
            size = (manifest.get("archive") or {}).get("size")
            if archive not in now:
                found.append("snapshot manifest %s names no archive" % key)
            elif client.head_object(Bucket=s3.bucket, Key=archive)["ContentLength"] != size:
                found.append("snapshot archive %s is not the %s bytes its manifest gives" % (archive, size))
        elif key.endswith(EVIDENCE_MANIFEST):
            bundle = key[: -len(EVIDENCE_MANIFEST)] + EVIDENCE_BUNDLE
            if bundle not in now:
                found.append("evidence manifest %s has no bundle %s" % (key, bundle))
    return found


def bad_registry_entries(lab: Lab) -> list[str]:
    configmap = lab.api().get(object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)) or {}
    found = []
    for shard, text in sorted((configmap.get("data") or {}).items()):
        try:
            entry = json.loads(text)
        except ValueError:
            found.append("registry entry %s is not JSON: %r" % (shard, text[:80]))
            continue
        if not isinstance(entry, dict) or entry.get("state") not in STATES:
            found.append("registry entry %s is in no state of the runbook: %r" % (shard, entry))
    return found


def held_locks(lab: Lab, alive: t.Collection[str]) -> list[str]:
    """Leases held for an incident whose run is no longer alive."""
    found = []
    for lease in lab.api().list(COORDINATION, "leases", stack.NAMESPACE, "")[0]:
        holder = (lease.get("spec") or {}).get("holderIdentity")
        incident = ((lease["metadata"].get("annotations") or {}).get(INCIDENT_ANNOTATION)) or ""
        if holder and incident not in alive:
            found.append("Lease %s is held by %s for %s, whose run is over" % (lease["metadata"]["name"], holder,
                                                                           incident or "no incident"))
    return found


def problems(lab: Lab, before: Before, alive: t.Collection[str] = ()) -> list[str]:
    """Every breach of the promise, empty when nothing was lost; ``alive``: incidents whose run still runs."""
    now = s3_objects(lab)
    return [*lost_volumes(before, volumes(lab), claims(lab)),
            *lost_objects(before, now),
            *half_written(lab, now),
            *("local file %s was deleted" % path for path in sorted(before.files - local_files(before.folders))),
            *bad_registry_entries(lab),
            *held_locks(lab, alive)]


def check(lab: Lab, before: Before, alive: t.Collection[str] = ()) -> None:
    found = problems(lab, before, alive)
    assert found == [], "lost or left unsafe:\n  " + "\n  ".join(found)
