# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building blocks for snapshot tests: shard-like trees, tar streams, manifests, a store over FakeS3."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import typing as t
from pathlib import Path

from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import layout
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import (
    ArchiveInfo,
    DirEntry,
    FileEntry,
    Manifest,
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
