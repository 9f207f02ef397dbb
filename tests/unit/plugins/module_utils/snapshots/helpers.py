# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building blocks for snapshot tests: shard-like trees, tar streams, manifests, a store over FakeS3."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import typing as t
from datetime import datetime, timezone
from pathlib import Path

import zstandard

from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    layout,
    restore,
    swap,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    store as catalog_store,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.create import (
    CreateRequest,
    create_snapshot,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import (
    ArchiveInfo,
    DirEntry,
    FileEntry,
    Manifest,
    crc32,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
    Transfer,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)

LOCATION = layout.ShardLocation("snaps", "snapshots", "shard-1")


def make_tree(root: Path, files: int = 6, seed: int = 1) -> Path:
    """A small shard data directory: nested segments, some random (incompressible), some repetitive."""
    (root / "index" / "segments").mkdir(parents=True, exist_ok=True)
    for number in range(files):
        payload = hashlib.sha256(b"%d-%d" % (seed, number)).digest() * (50 * number + 1)
        (root / "index" / "segments" / ("seg-%03d.bin" % number)).write_bytes(
            payload + os.urandom(100 * number)
        )
    (root / "index" / "meta.json").write_text('{"shard": "shard-1", "seed": %d}' % seed)
    (root / "empty.lock").write_bytes(b"")
    return root


def store(fake: FakeS3 | None = None, **transfer: t.Any) -> S3Store:
    settings = Transfer(**dict({"concurrency": 2, "attempts": 3}, **transfer))
    return S3Store(
        fake or FakeS3(), "snaps", settings, Retrier(sleep=lambda seconds: None)
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_for(files: dict[str, bytes], dirs: t.Sequence[str] = ()) -> Manifest:
    archive = ArchiveInfo("data.tar.zst", 0, sha(b""), 8 << 20, ())
    return Manifest(
        "shard-1",
        "s1",
        "2026-11-27T10:00:00Z",
        archive,
        tuple(FileEntry(p, len(d), sha(d)) for p, d in files.items()),
        tuple(DirEntry(p) for p in dirs),
    )


def tar_bytes(members: t.Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


Member = t.Tuple[tarfile.TarInfo, t.Optional[bytes]]


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return info, (data if info.size else None)


def archive_of(tar: bytes) -> bytes:
    """``tar`` compressed the way snapshot_create compresses (zstd with a frame checksum)."""
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(tar)


def tar_of(
    fake: FakeS3, snapshot_id: str, location: layout.ShardLocation = LOCATION
) -> bytes:
    """The tar stream inside a stored snapshot's ``data.tar.zst``."""
    data = fake.objects[location.key(snapshot_id, layout.ARCHIVE)]
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def edit_manifest(
    fake: FakeS3,
    snapshot_id: str,
    edit: t.Callable[[dict[str, t.Any]], t.Any],
    location: layout.ShardLocation = LOCATION,
) -> None:
    """Change a stored manifest in place (JSON in, JSON out)."""
    key = location.key(snapshot_id, layout.MANIFEST)
    data = json.loads(fake.objects[key])
    edit(data)
    fake.objects[key] = json.dumps(data).encode()


def republish(
    fake: FakeS3,
    snapshot_id: str,
    tar: bytes,
    location: layout.ShardLocation = LOCATION,
) -> None:
    """Replace a stored snapshot's archive with ``tar``, and its manifest's archive
    fields with the new archive's, so the catalog calls it verified."""
    data = archive_of(tar)
    fake.objects[location.key(snapshot_id, layout.ARCHIVE)] = data

    def point_at_new_archive(manifest: dict[str, t.Any]) -> None:
        size = manifest["archive"]["chunk_size"]
        manifest["archive"].update(
            size=len(data),
            sha256=sha(data),
            chunk_crc32=[crc32(data[i : i + size]) for i in range(0, len(data), size)],
        )

    edit_manifest(fake, snapshot_id, point_at_new_archive, location)


def staging_left(parent: Path) -> list[str]:
    """Staging directories a restore left beside its targets under ``parent``."""
    return sorted(p.name for p in parent.iterdir() if swap.STAGING_TAG in p.name)


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def snapshot(
    s3: S3Store, root: Path, snapshot_id: str, created: str = "2026-11-27T10:00:00Z"
) -> None:
    create_snapshot(
        s3,
        CreateRequest(LOCATION, str(root), snapshot_id, created, source={"host": "t"}),
    )


def tree_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".ragops-restore.json"
    }


def restore_into(
    s3: S3Store, dest: Path, snapshot_id: str | None = None
) -> restore.Outcome:
    order, skipped = restore.candidates(
        catalog_store.load(s3, LOCATION, NOW, 300), snapshot_id, True
    )
    request = restore.RestoreRequest(LOCATION, str(dest), "2026-11-27T12:00:00Z")
    outcome = restore.plan_local(request, order, skipped, False)
    if outcome.changed:
        outcome = restore.restore_latest(
            s3, request, order, {"incident_id": "INC-1"}, outcome
        )
    return outcome
