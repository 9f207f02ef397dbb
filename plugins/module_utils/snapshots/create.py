# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create a snapshot as one stream: walk → tar → zstd → multipart upload, then
SHA256SUMS and the manifest.

Nothing is copied to a temporary file.  Each file is hashed while it is archived; a file
whose size, mtime or inode changes during the run, or a tree that gains or loses
entries, fails the snapshot before its manifest is written, so a torn snapshot is never
published.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import stat
import time
import typing as t
from dataclasses import dataclass, field

from ..errors import ApiError, RecoveryError, SnapshotInvalid
from . import layout
from .archive import COPY_SIZE, SourceChanged, TarWriter
from .manifest import (
    CHUNK_SIZE,
    ArchiveInfo,
    DirEntry,
    FileEntry,
    Manifest,
    checksums_text,
    parse,
    path_problem,
)
from .s3 import MultipartSink, S3Store
from .stage import Stage

try:
    import zstandard
except ImportError as error:
    ZSTD_IMPORT_ERROR: ImportError | None = error
else:
    ZSTD_IMPORT_ERROR = None

ZSTD_REQUIREMENT = "zstandard"
NOT_PUBLISHED = (
    "No snapshot was published: snapshot %s has no manifest (it is written last) "
    "and a restore skips it."
)
# Written by a restore into the target; never part of a snapshot.
RESTORE_MARKER = ".ragops-restore.json"


@dataclass(frozen=True)
class Scanned:
    """One entry of the source tree as first seen: what must not change until the
    manifest is written."""

    path: str
    is_dir: bool
    size: int
    mode: int
    mtime_ns: int
    inode: int


def _entry(root: str, rel: str, info: os.stat_result) -> Scanned:
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise RecoveryError(
            "Failed to snapshot %s: %s is not a regular file or directory"
            % (root, rel),
            resource=os.path.join(root, rel),
            reason="links, devices and sockets are not archived",
            next_step="Remove or move the entry out of the data directory, then retry.",
        )
    return Scanned(
        rel,
        stat.S_ISDIR(info.st_mode),
        0 if stat.S_ISDIR(info.st_mode) else info.st_size,
        stat.S_IMODE(info.st_mode),
        info.st_mtime_ns,
        info.st_ino,
    )


def _check_name(root: str, rel: str) -> None:
    """Refuse a name that a restore would refuse, before anything is uploaded."""
    problem = path_problem(rel)
    if problem:
        raw = os.fsencode(rel)
        raise RecoveryError(
            "Failed to snapshot %s: %s cannot be archived: %s"
            % (root, repr(raw)[1:], problem),  # the bytes on disk, escaped
            resource=os.path.join(root, raw.decode("utf-8", "backslashreplace")),
            reason="unfit file name",
            next_step="Rename the entry (no backslash, control character or "
            "non-UTF-8 byte) or move it out of the data directory, then retry.",
        )


def scan(root: str) -> t.List[Scanned]:
    """Directories and regular files under ``root``, parents before children, in a
    stable order."""
    if not os.path.isdir(root):
        raise RecoveryError(
            "Failed to snapshot %s: it is not a directory" % root,
            resource=root,
            reason="source missing",
            next_step="Check the path of the shard's data directory.",
        )
    found: t.List[Scanned] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(os.path.join(root, rel_dir)) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            rel = name if not rel_dir else rel_dir + "/" + name
            if rel == RESTORE_MARKER:
                continue
            _check_name(root, rel)
            item = _entry(root, rel, os.lstat(os.path.join(root, rel)))
            found.append(item)
            if item.is_dir:
                pending.append(rel)
    return found


def _changed(before: t.Sequence[Scanned], after: t.Sequence[Scanned]) -> str | None:
    old = {item.path: item for item in before}
    new = {item.path: item for item in after}
    for path in sorted(set(old) | set(new)):
        if path not in new:
            return "%s was removed" % path
        if path not in old:
            return "%s was added" % path
        if not new[path].is_dir and new[path] != old[path]:
            return "%s was modified" % path
    return None


@dataclass
class ArchiveHasher:
    """Counts and hashes the compressed stream on its way to the upload, in a stage
    of its own."""

    sink: MultipartSink
    size: int = 0
    digest: t.Any = field(default_factory=hashlib.sha256)

    def __post_init__(self) -> None:
        self.stage: Stage[bytes] = Stage(
            self._consume, depth=16, name="snapshot-archive"
        )

    def _consume(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.sink.write(data)

    def write(self, data: bytes) -> int:
        self.stage.put(bytes(data))
        return len(data)


@dataclass(frozen=True)
class CreateRequest:
    location: layout.ShardLocation
    root: str
    snapshot_id: str
    created: str
    level: int = 3
    # zstd's worker threads; 0 for compression_threads()'s default.
    threads: int = 0
    source: t.Mapping[str, t.Any] = field(default_factory=dict)
    # Told the file bytes archived so far and the total after each file.
    progress: t.Callable[[int, int], None] | None = None


def compression_threads(given: int = 0) -> int:
    """zstd's worker threads: ``given``, else one fewer than the CPUs this process may
    run on.

    Compression is the largest CPU cost of a snapshot, but not the only one: the files'
    and the archive's SHA-256, the upload's signing and the tar stream need a CPU too
    (and on a small host the store itself), and zstd on every CPU starves them.  On
    one CPU that is 0: zstd compresses in the thread that writes the tar stream.
    """
    if given:
        return given
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # a platform without CPU affinity
        cpus = os.cpu_count() or 1
    return max(cpus - 1, 0)


def _archive_file(writer: TarWriter, root: str, item: Scanned) -> t.Any:
    fd = os.open(
        os.path.join(root, item.path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    )
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if (before.st_ino, before.st_size, before.st_mtime_ns) != (
            item.inode,
            item.size,
            item.mtime_ns,
        ):
            raise SourceChanged(
                "File %s changed while the snapshot was taken" % item.path,
                resource=item.path,
                reason="modified during the snapshot",
            )
        digest = writer.add_file(
            item.path, handle, item.size, item.mode, item.mtime_ns // 1_000_000_000
        )
        after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (item.size, item.mtime_ns):
        raise SourceChanged(
            "File %s changed while the snapshot was taken" % item.path,
            resource=item.path,
            reason="modified during the snapshot",
        )
    return digest


def _stream_tree(
    request: CreateRequest, tree: t.Sequence[Scanned], hasher: ArchiveHasher
) -> t.List[FileEntry]:
    """Tar and compress the tree; files are hashed in one stage, the compressed
    stream in another."""
    compressor = zstandard.ZstdCompressor(
        level=request.level,
        threads=compression_threads(request.threads),
        write_checksum=True,
    )
    hashing: Stage[t.Tuple[t.Any, bytes]] = Stage(
        lambda item: item[0].update(item[1]), name="snapshot-hash"
    )
    digests: t.List[t.Tuple[Scanned, t.Any]] = []
    total = sum(item.size for item in tree)
    done = 0
    try:
        with compressor.stream_writer(
            t.cast(t.IO[bytes], hasher),
            write_size=COPY_SIZE,
            closefd=False,
            write_return_read=True,
        ) as stream:
            writer = TarWriter(
                stream, hash_chunk=lambda digest, data: hashing.put((digest, data))
            )
            for item in tree:
                if item.is_dir:
                    writer.add_directory(
                        DirEntry(item.path, item.mode), item.mtime_ns // 1_000_000_000
                    )
                else:
                    digests.append((item, _archive_file(writer, request.root, item)))
                    done += item.size
                    if request.progress is not None:
                        request.progress(done, total)
            writer.close()
            stream.flush(zstandard.FLUSH_FRAME)
        hashing.close()
    finally:
        hashing.stop()
    return [
        FileEntry(
            item.path,
            item.size,
            digest.hexdigest(),
            item.mode,
            item.mtime_ns // 1_000_000_000,
        )
        for item, digest in digests
    ]


def upload_archive(
    store: S3Store,
    request: CreateRequest,
    tree: t.Sequence[Scanned],
    executor: concurrent.futures.Executor,
) -> t.Tuple[ArchiveInfo, t.List[FileEntry]]:
    """Stream the tree into ``data.tar.zst``; the upload is aborted (never completed)
    on any failure."""
    sink = MultipartSink(
        store,
        request.location.key(request.snapshot_id, layout.ARCHIVE),
        CHUNK_SIZE,
        executor,
    )
    hasher = ArchiveHasher(sink)
    try:
        files = _stream_tree(request, tree, hasher)
        hasher.stage.close()
        change = _changed(tree, scan(request.root))
        if change:
            raise SourceChanged(
                "The data directory changed while the snapshot was taken: %s" % change,
                resource=request.root,
                reason="modified during the snapshot",
            )
        chunks = sink.finish()
    except BaseException:
        hasher.stage.stop()
        sink.abort()
        raise
    return ArchiveInfo(
        layout.ARCHIVE,
        hasher.size,
        hasher.digest.hexdigest(),
        CHUNK_SIZE,
        tuple(chunks),
    ), files


@dataclass(frozen=True)
class Created:
    manifest: Manifest
    manifest_sha256: str
    duration: float

    def to_result(self, url: str) -> t.Dict[str, t.Any]:
        """The module result for the snapshot published at ``url``."""
        snapshot = dict(
            self.manifest.summary(), url=url, manifest_sha256=self.manifest_sha256
        )
        rate = self.manifest.total_bytes / self.duration / 1e6 if self.duration else 0.0
        return {
            "changed": True,
            "snapshot": snapshot,
            "duration": self.duration,
            "throughput_mb_s": round(rate, 1),
        }


def _check_own_manifest(store: S3Store, request: CreateRequest, raw: bytes) -> None:
    """Publish nothing that a restore would call invalid: the manifest is read back
    as a restore reads it, and on failure the uploaded archive is deleted."""
    try:
        parse(raw, request.location.shard, request.snapshot_id)
    except SnapshotInvalid as error:
        store.delete(request.location.key(request.snapshot_id, layout.ARCHIVE))
        raise RecoveryError(
            "Failed to publish snapshot %s: a restore would refuse its manifest (%s)"
            % (request.snapshot_id, error.reason),
            resource=request.location.url(request.snapshot_id),
            reason="manifest would not verify",
            next_step="Nothing was published; fix what the reason names in the data "
            "directory and retry.",
        ) from None


def create_snapshot(store: S3Store, request: CreateRequest) -> Created:
    """Upload the archive, then ``SHA256SUMS``, then ``manifest.json`` only if none
    exists yet; an S3 failure on the way says that nothing was published."""
    try:
        return _publish(store, request)
    except ApiError as error:
        error.next_step = " ".join(
            filter(None, [error.next_step, NOT_PUBLISHED % request.snapshot_id])
        )
        raise


def _publish(store: S3Store, request: CreateRequest) -> Created:
    started = time.monotonic()
    location = request.location
    if store.exists(location.key(request.snapshot_id, layout.MANIFEST)):
        raise RecoveryError(
            "Failed to create snapshot %s: it already exists" % request.snapshot_id,
            resource=location.url(request.snapshot_id),
            reason="snapshot id taken",
            next_step="Run again without snapshot_id (a new id is generated) or with "
            "another id.",
        )
    tree = scan(request.root)
    workers = max(1, store.transfer.concurrency)
    with concurrent.futures.ThreadPoolExecutor(
        workers, thread_name_prefix="snapshot-upload"
    ) as executor:
        archive, files = upload_archive(store, request, tree, executor)
    manifest = Manifest(
        request.location.shard,
        request.snapshot_id,
        request.created,
        archive,
        tuple(files),
        tuple(DirEntry(item.path, item.mode) for item in tree if item.is_dir),
        dict(request.source),
    )
    raw = manifest.to_bytes()
    _check_own_manifest(store, request, raw)
    store.put_bytes(
        location.key(request.snapshot_id, layout.CHECKSUMS), checksums_text(manifest)
    )
    if not store.put_bytes(
        location.key(request.snapshot_id, layout.MANIFEST), raw, exclusive=True
    ):
        raise RecoveryError(
            "Failed to publish snapshot %s: a manifest already exists at %s"
            % (request.snapshot_id, location.url(request.snapshot_id)),
            resource=location.url(request.snapshot_id),
            reason="another writer used the same snapshot id",
            next_step="Run again without snapshot_id (a new id is generated) or with "
            "another id.",
        )
    return Created(
        manifest, hashlib.sha256(raw).hexdigest(), round(time.monotonic() - started, 3)
    )


def describe_tree(tree: t.Sequence[Scanned]) -> t.Dict[str, int]:
    """What a snapshot of ``tree`` would hold (for check mode)."""
    files = [item for item in tree if not item.is_dir]
    return {
        "files": len(files),
        "directories": len(tree) - len(files),
        "bytes": sum(f.size for f in files),
    }
