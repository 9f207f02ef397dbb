"""A stand-in for the operator that labels each vectorstore pod with its shard.

A StatefulSet annotated `lab.ragops.io/ordinal-labels` (a JSON map of label → value template with
`{ordinal}`, e.g. {"ragops.io/shard": "shard-{ordinal}"}) gets those labels on each of its pods, from
the pod's `apps.kubernetes.io/pod-index` label that the StatefulSet controller sets.
"""

from __future__ import annotations

import json
from typing import Any

from .api import Api, path_of

ORDINAL_LABELS_ANNOTATION = "lab.ragops.io/ordinal-labels"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

Obj = dict[str, Any]


def wanted_labels(statefulset: Obj, pod: Obj) -> dict[str, str]:
    raw = (statefulset["metadata"].get("annotations") or {}).get(ORDINAL_LABELS_ANNOTATION)
    index = (pod["metadata"].get("labels") or {}).get(POD_INDEX_LABEL)
    if not raw or index is None:
        return {}
    return {key: str(value).format(ordinal=index) for key, value in json.loads(raw).items()}


def controller_uid(pod: Obj) -> str:
    for reference in pod["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid", ""))
    return ""


def label_ordinals(api: Api, statefulsets: list[Obj], pods: list[Obj]) -> set[str]:
    """Label the pods that lack their labels; returns their uids (their containers wait a cycle, so that
    fieldRefs to those labels see them)."""
    labelled: set[str] = set()
    by_uid = {s["metadata"]["uid"]: s for s in statefulsets}
    for pod in pods:
        owner = by_uid.get(controller_uid(pod))
        if owner is None or pod["metadata"].get("deletionTimestamp"):
            continue
        labels = pod["metadata"].get("labels") or {}
        missing = {k: v for k, v in wanted_labels(owner, pod).items() if labels.get(k) != v}
        if missing:
            api.merge_patch(path_of(pod, "pods"), {"metadata": {"labels": missing}})
            labelled.add(pod["metadata"]["uid"])
    return labelled
