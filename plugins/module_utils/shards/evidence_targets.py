# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an evidence bundle goes, written once: a local folder and/or an S3 key.

Each location gets the bundle and its manifest beside it.  A location that already
holds the bundle is left as it is, so a re-run of a recovery keeps the first evidence.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass

from ..audit import timestamp, utc_now
from ..errors import RecoveryError
from ..k8s.client import K8sClient, Obj
from ..snapshots import layout, store
from ..snapshots.params import check_name
from ..snapshots.s3 import S3Store
from . import evidence
from .admin import HttpCall

SUFFIX = ".tar.gz"
MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class Targets:
    """The bundle's name, its local path and its S3 key (``None`` where not asked
    for)."""

    name: str
    path: str | None
    key: str | None
    s3: S3Store | None

    @classmethod
    def of(
        cls,
        request: evidence.EvidenceRequest,
        name: str | None,
        dest: str | None,
        prefix: str,
        s3: S3Store | None,
    ) -> Targets:
        incident = check_name("incident_id", request.incident_id)
        default = (
            "evidence-" + check_name("shard", request.shard)
            if request.shard
            else "evidence"
        )
        name = check_name("name", name or default)
        path = os.path.join(dest, incident, name + SUFFIX) if dest else None
        base = "/".join(part for part in (prefix.strip("/"), incident, name) if part)
        return cls(name, path, base + SUFFIX if s3 is not None else None, s3)

    def existing(self) -> bool:
        """Whether every requested location already holds the bundle."""
        local = self.path is None or os.path.exists(self.path)
        remote = self.s3 is None or self.s3.exists(t.cast(str, self.key))
        return local and remote

    def view(self) -> Obj:
        view: Obj = {"name": self.name}
        if self.path:
            view["path"] = self.path
        if self.s3 is not None:
            view["s3_uri"] = "s3://%s/%s" % (self.s3.bucket, self.key)
        return view

    def write(self, bundle: bytes, listing: bytes) -> None:
        if self.path and not os.path.exists(self.path):
            write_once_local(self.path[: -len(SUFFIX)] + MANIFEST_SUFFIX, listing)
            if not write_once_local(self.path, bundle):
                raise refuse_existing(self.path)
        if self.s3 is not None and not self.s3.exists(t.cast(str, self.key)):
            key = t.cast(str, self.key)
            if not self.s3.put_bytes(key, bundle, exclusive=True):
                raise refuse_existing("s3://%s/%s" % (self.s3.bucket, key))
            self.s3.put_bytes(
                key[: -len(SUFFIX)] + MANIFEST_SUFFIX, listing, exclusive=True
            )


def write_once_local(path: str, data: bytes) -> bool:
    """Create ``path`` with ``data``; False (and nothing written) when it already
    exists."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return True


def refuse_existing(location: str) -> RecoveryError:
    return RecoveryError(
        "Refusing to overwrite the evidence at %s" % location,
        resource=location,
        reason="an evidence bundle of this name was written meanwhile",
        next_step="Keep the existing bundle; collect again under another name (option "
        "name).",
    )


def snapshot_listing(
    s3: S3Store | None, request: evidence.EvidenceRequest
) -> t.List[Obj] | None:
    """The shard's snapshots with their status, as ``snapshot_info`` reports them."""
    if s3 is None or not request.shard:
        return None
    location = layout.ShardLocation(
        s3.bucket, request.snapshot_prefix or "", request.shard
    )
    now = utc_now()
    found = store.load(s3, location, now, 300)
    return [found[key].to_dict(now) for key in sorted(found)]


def collect(
    client: t.Callable[[], K8sClient],
    call: HttpCall,
    request: evidence.EvidenceRequest,
    targets: Targets,
    snapshots: t.Callable[[], S3Store | None],
    *,
    check_mode: bool,
) -> Obj:
    """Gather and write the bundle unless every location holds it already.

    ``snapshots`` opens the store of the shard's snapshots, called only when gathering;
    ``client`` makes the Kubernetes client, called only for a shard's evidence.
    """
    if targets.existing():
        return {"changed": False, "evidence": dict(targets.view(), existed=True)}
    if check_mode:
        return {"changed": True, "evidence": dict(targets.view(), existed=False)}
    bundle = evidence.gather(
        client, call, request, snapshot_listing(snapshots(), request)
    )
    now = utc_now()
    listing = evidence.manifest(bundle, request, timestamp(now))
    data = evidence.archive(bundle, listing, now.timestamp())
    targets.write(data, evidence.json_bytes(listing))
    written = {
        "existed": False,
        "sha256": evidence.sha256(data),
        "size": len(data),
        "files": sorted(bundle.files),
        "errors": bundle.errors,
    }
    return {"changed": True, "evidence": dict(targets.view(), **written)}
