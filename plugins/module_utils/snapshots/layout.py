# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a snapshot's objects live in the bucket, and how snapshot ids are formed.

``<prefix>/<shard>/<snapshot-id>/`` holds ``data.tar.zst``, ``SHA256SUMS`` and
``manifest.json`` (written last: its presence marks the snapshot complete), and
``QUARANTINED`` once a restore found the snapshot corrupt.  ``<prefix>/<shard>/HOLD``
is the incident hold: while it exists nothing of that shard is pruned.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

ARCHIVE = "data.tar.zst"
MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"
QUARANTINE_MARKER = "QUARANTINED"
HOLD = "HOLD"
SNAPSHOT_OBJECTS = (MANIFEST, ARCHIVE, CHECKSUMS, QUARANTINE_MARKER)

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHARD_PATTERN = ID_PATTERN


def new_snapshot_id(now: datetime | None = None) -> str:
    """A sortable id: UTC creation time to the second plus a short random suffix."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def valid_name(value: str) -> bool:
    """Shard and snapshot ids become key segments: letters, digits, ``.``, ``_`` and
    ``-`` only."""
    return bool(ID_PATTERN.match(value)) and value not in (".", "..")


@dataclass(frozen=True)
class ShardLocation:
    """A shard's snapshots: the bucket and the key prefix under which they live."""

    bucket: str
    prefix: str
    shard: str

    @property
    def shard_prefix(self) -> str:
        base = self.prefix.strip("/")
        return "%s/%s/" % (base, self.shard) if base else "%s/" % self.shard

    def key(self, snapshot_id: str, name: str) -> str:
        return "%s%s/%s" % (self.shard_prefix, snapshot_id, name)

    @property
    def hold_key(self) -> str:
        return self.shard_prefix + HOLD

    def url(self, snapshot_id: str | None = None) -> str:
        """``s3://bucket/prefix/shard/[id/]`` for messages (never a presigned URL)."""
        return "s3://%s/%s%s" % (
            self.bucket,
            self.shard_prefix,
            snapshot_id + "/" if snapshot_id else "",
        )

    def split(self, key: str) -> tuple[str, str] | None:
        """``(snapshot_id, object name)`` for a key of one of this shard's snapshots,
        else None."""
        if not key.startswith(self.shard_prefix):
            return None
        rest = key[len(self.shard_prefix) :]
        snapshot_id, sep, name = rest.partition("/")
        if not sep or "/" in name or not valid_name(snapshot_id):
            return None
        return snapshot_id, name
