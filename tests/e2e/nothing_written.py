"""What a run in check mode must leave as it found it: the stack's objects in the cluster, every key in the
lab's bucket, and the files under the folders a run could write to (its working directory, the report and
timeline folders, the collection's own tree)."""

from __future__ import annotations

import typing as t
from pathlib import Path

from harness import ROOT

from ragops_lab import stack
from ragops_lab.agent.api import APPS, BATCH, CORE
from ragops_lab.lab import Lab

COORDINATION = "/apis/coordination.k8s.io/v1"
# Every kind a recovery creates or changes; status is left out (the node agent keeps writing it).
KINDS = ((CORE, "configmaps"), (CORE, "secrets"), (CORE, "persistentvolumeclaims"), (CORE, "pods"),
         (CORE, "services"), (APPS, "deployments"), (APPS, "statefulsets"), (BATCH, "jobs"),
         (COORDINATION, "leases"))
# The collection's tree: a default under playbook_dir or role_path writes into the installed collection.
COLLECTION_DIRS = (ROOT / "playbooks", ROOT / "roles")
Obj = dict[str, t.Any]


def objects(lab: Lab) -> Obj:
    """Each object of the stack's namespace by kind and name: labels, annotations, spec and data."""
    api, found = lab.api(), {}
    for prefix, plural in KINDS:
        for item in api.list(prefix, plural, stack.NAMESPACE)[0]:
            meta = item["metadata"]
            found["%s/%s" % (plural, meta["name"])] = {
                "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                "spec": item.get("spec"), "data": item.get("data")}
    return found


def s3_keys(lab: Lab) -> dict[str, tuple[int, str]]:
    """Every key of the lab's bucket with its size and ETag."""
    s3 = lab.s3()
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return {item["Key"]: (item["Size"], item["ETag"]) for page in pages for item in page.get("Contents") or []}


def files(*roots: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots``, files with their size and modification time; a root's part
    under ``skip`` is left out unless the root itself is inside it. A folder's own time is left out: the
    test harness writes and removes its results file in the working directory."""
    found: dict[str, tuple[int, int]] = {}
    for root in (*roots, *COLLECTION_DIRS):
        skipping = [skipped for skipped in skip if not root.is_relative_to(skipped)]
        for path in [root, *root.rglob("*")] if root.exists() else []:
            if not any(path.is_relative_to(skipped) for skipped in skipping):
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns) if path.is_file() else (-1, 0)
    return found


def state(lab: Lab, *roots: Path) -> Obj:
    """The cluster, the bucket and the files under ``roots`` (the lab's own state folder left out)."""
    return {"objects": objects(lab), "s3": s3_keys(lab), "files": files(*roots, skip=(lab.paths.root,))}


def changes(before: Obj, after: Obj) -> list[str]:
    """What differs, by kind of store and name: empty when nothing was written."""
    found = []
    for store in before:
        was, now = before[store], after[store]
        for name in sorted(set(was) | set(now)):
            if was.get(name) != now.get(name):
                how = "added" if name not in was else "removed" if name not in now else "changed"
                found.append("%s: %s %s" % (store, name, how))
    return found
