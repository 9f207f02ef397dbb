# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an incident left behind: evidence bundles in S3, and the postmortem entries,
golden-set reports and evidence written into report folders on the controller.

Each lists what exists and nothing more: ``evidence_collect`` writes
``<prefix>/<incident>/<name>.tar.gz`` with its manifest beside it; the scenario roles
write their reports under ``<report folder>/<incident>/``.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone

from ..shards.evidence_targets import MANIFEST_SUFFIX, SUFFIX
from ..snapshots.s3 import S3Store

# A report folder holds at most this many files per incident in the listing.
MAX_FILES = 100


@dataclass(frozen=True)
class Artifact:
    """One file or object: where it is, what it is, its size and when it was
    written."""

    location: str
    kind: str
    size: int
    modified: str

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {
            "location": self.location,
            "kind": self.kind,
            "size": self.size,
            "modified": self.modified,
        }


def kind_of(name: str) -> str:
    """``evidence``, ``evidence-manifest``, ``postmortem``, ``timeline`` or
    ``report``."""
    base = os.path.basename(name)
    if base.endswith(MANIFEST_SUFFIX):
        return "evidence-manifest"
    # A run's records in the evidence store: its postmortem entry, timeline and reports.
    if base.endswith(SUFFIX) and base.startswith("postmortem"):
        return "postmortem"
    if base.endswith(SUFFIX) or base.startswith(("evidence", "stack-before")):
        return "evidence"
    if base.startswith("postmortem"):
        return "postmortem"
    if base.startswith("timeline"):
        return "timeline"
    return "report"


def evidence_prefix(prefix: str, incident_id: str) -> str:
    """Where ``evidence_collect`` puts the incident's bundles, as a listing prefix."""
    return "/".join(part for part in (prefix.strip("/"), incident_id) if part) + "/"


def list_evidence(store: S3Store, prefix: str, incident_id: str) -> t.List[Artifact]:
    """The incident's evidence objects in S3, by key."""
    found = store.list(evidence_prefix(prefix, incident_id))
    return [
        Artifact(
            "s3://%s/%s" % (store.bucket, item.key),
            kind_of(item.key),
            item.size,
            item.last_modified,
        )
        for item in sorted(found, key=lambda item: item.key)
    ]


def _modified(path: str) -> str:
    moment = datetime.fromtimestamp(os.path.getmtime(path), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_reports(folders: t.Sequence[str], incident_id: str) -> t.List[Artifact]:
    """The files under ``<folder>/<incident>/`` of each report folder, by path."""
    found: t.List[Artifact] = []
    for folder in folders:
        root = os.path.join(os.path.expanduser(folder), incident_id)
        paths = sorted(
            os.path.join(here, name)
            for here, _dirs, names in os.walk(root)
            for name in names
        )
        found += [
            Artifact(path, kind_of(path), os.path.getsize(path), _modified(path))
            for path in paths[:MAX_FILES]
        ]
    return found
