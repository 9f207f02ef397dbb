# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot manifest: build it, parse it strictly, and check paths (pure, no I/O).

The manifest lists every directory and regular file of the snapshot with size
and SHA-256, and the archive with its size, SHA-256 and a CRC-32 of each
fixed-size chunk.  The chunk checksums only let a ranged download notice a part
damaged in transit and fetch it again; what a restore trusts is the SHA-256 of
every file.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import typing as t
import unicodedata
import zlib
from dataclasses import dataclass, field

from ..errors import SnapshotInvalid

FORMAT = "ragops-snapshot/1"
CHUNK_SIZE = 8 * 1024 * 1024
HEX64 = frozenset("0123456789abcdef")
# Sizes and times are what a 64-bit off_t and time_t hold.
INT64 = (-(2**63), 2**63 - 1)
SIZES = (0, INT64[1])
MODES = (0, 0o7777)
# A zstd block expands to at most 128 KiB and takes at least 4 bytes (an RLE block):
# no zstd stream holds more than 32768 times its own size.
MAX_ZSTD_RATIO = 32768


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    mode: int = 0o644
    mtime: int = 0


@dataclass(frozen=True)
class DirEntry:
    path: str
    mode: int = 0o755


@dataclass(frozen=True)
class ArchiveInfo:
    name: str
    size: int
    sha256: str
    chunk_size: int
    chunk_crc32: t.Tuple[str, ...]
    compression: str = "zstd"


@dataclass(frozen=True)
class Manifest:
    shard: str
    snapshot_id: str
    created: str
    archive: ArchiveInfo
    files: t.Tuple[FileEntry, ...]
    directories: t.Tuple[DirEntry, ...]
    source: t.Mapping[str, t.Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def member_count(self) -> int:
        return len(self.files) + len(self.directories)

    def to_dict(self) -> t.Dict[str, t.Any]:
        archive = self.archive
        return {
            "format": FORMAT,
            "shard": self.shard,
            "snapshot_id": self.snapshot_id,
            "created": self.created,
            "source": dict(self.source),
            "archive": {
                "name": archive.name,
                "size": archive.size,
                "sha256": archive.sha256,
                "compression": archive.compression,
                "chunk_size": archive.chunk_size,
                "chunk_crc32": list(archive.chunk_crc32),
            },
            "content": {
                "files": len(self.files),
                "directories": len(self.directories),
                "bytes": self.total_bytes,
            },
            "directories": [{"path": d.path, "mode": d.mode} for d in self.directories],
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "sha256": f.sha256,
                    "mode": f.mode,
                    "mtime": f.mtime,
                }
                for f in self.files
            ],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n").encode(
            "utf-8"
        )

    def summary(self) -> t.Dict[str, t.Any]:
        """What results report about a snapshot: no per-file lists."""
        return {
            "snapshot_id": self.snapshot_id,
            "shard": self.shard,
            "created": self.created,
            "files": len(self.files),
            "directories": len(self.directories),
            "bytes": self.total_bytes,
            "archive_size": self.archive.size,
            "archive_sha256": self.archive.sha256,
            "source": dict(self.source),
        }


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checksums_text(manifest: Manifest) -> bytes:
    """``SHA256SUMS``: the file list in the format ``sha256sum -c`` reads."""
    return "".join("%s  %s\n" % (f.sha256, f.path) for f in manifest.files).encode(
        "utf-8"
    )


def path_problem(path: str) -> str | None:
    """What makes ``path`` unfit for a snapshot, or None when it is a relative,
    normalised UTF-8 path with no ``..``, ``.`` or empty segment, no backslash and no
    control character (names a restore, ``tar`` and ``sha256sum -c`` all take as
    they are)."""
    if not path:
        return "the name is empty"
    control = next((c for c in path if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return "the name holds the control character %r" % control
    if "\\" in path:
        return "the name holds a backslash"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in path):
        return "the name is not valid UTF-8"
    if path.startswith("/"):
        return "the path is absolute"
    if posixpath.normpath(path) != path or any(
        part in ("", ".", "..") for part in path.split("/")
    ):
        return "the path is not normalised or has a '..' segment"
    return None


def _invalid(reason: str) -> SnapshotInvalid:
    return SnapshotInvalid(
        "The snapshot manifest is invalid: %s" % reason, reason=reason
    )


def _require(
    data: t.Mapping[str, t.Any], key: str, kind: type | t.Tuple[type, ...], where: str
) -> t.Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(
            "%s.%s is missing or not a %s"
            % (where, key, getattr(kind, "__name__", kind))
        )
    return value


def _bounded(
    data: t.Mapping[str, t.Any], key: str, where: str, bounds: t.Tuple[int, int]
) -> int:
    """The integer ``data[key]``, which must lie within ``bounds``."""
    value = _require(data, key, int, where)
    if not bounds[0] <= value <= bounds[1]:
        raise _invalid(
            "%s.%s is out of range (%d to %d)" % (where, key, bounds[0], bounds[1])
        )
    return t.cast(int, value)


def _sha(value: t.Any, where: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= HEX64:
        raise _invalid("%s is not a lowercase hex SHA-256" % where)
    return value


def _crc(value: t.Any, where: str) -> str:
    if not isinstance(value, str) or len(value) != 8 or not set(value) <= HEX64:
        raise _invalid("%s is not a lowercase hex CRC-32" % where)
    return value


def crc32(data: bytes | memoryview) -> str:
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


def _parse_archive(data: t.Mapping[str, t.Any]) -> ArchiveInfo:
    archive = _require(data, "archive", dict, "manifest")
    size = _bounded(archive, "size", "archive", SIZES)
    chunk_size = _bounded(archive, "chunk_size", "archive", (1, SIZES[1]))
    chunks = _require(archive, "chunk_crc32", list, "archive")
    if len(chunks) != -(-size // chunk_size):
        raise _invalid(
            "archive size, chunk_size and the number of chunk checksums do not agree"
        )
    if archive.get("compression") != "zstd":
        raise _invalid(
            "archive.compression %r is not supported" % archive.get("compression")
        )
    return ArchiveInfo(
        name=_require(archive, "name", str, "archive"),
        size=size,
        sha256=_sha(archive.get("sha256"), "archive.sha256"),
        chunk_size=chunk_size,
        chunk_crc32=tuple(
            _crc(c, "archive.chunk_crc32[%d]" % i) for i, c in enumerate(chunks)
        ),
    )


E = t.TypeVar("E")


def _entries(
    items: t.List[t.Any], name: str, parse: t.Callable[[t.Mapping[str, t.Any], str], E]
) -> t.Tuple[E, ...]:
    """Each object of the list ``name``, parsed by ``parse`` (given where it stands)."""
    entries = []
    for index, item in enumerate(items):
        where = "%s[%d]" % (name, index)
        if not isinstance(item, dict):
            raise _invalid(where + " is not an object")
        entries.append(parse(item, where))
    return tuple(entries)


def _dir_entry(item: t.Mapping[str, t.Any], where: str) -> DirEntry:
    path = _require(item, "path", str, where)
    return DirEntry(path, _bounded(item, "mode", where, MODES))


def _file_entry(item: t.Mapping[str, t.Any], where: str) -> FileEntry:
    return FileEntry(
        _require(item, "path", str, where),
        _bounded(item, "size", where, SIZES),
        _sha(item.get("sha256"), where + ".sha256"),
        _bounded(item, "mode", where, MODES),
        _bounded(item, "mtime", where, INT64) if item.get("mtime") is not None else 0,
    )


def check_tree(files: t.Sequence[FileEntry], dirs: t.Sequence[DirEntry]) -> None:
    """Every path is safe and unique, and every parent of an entry is a listed
    directory."""
    dir_paths = {d.path for d in dirs}
    seen: t.Set[str] = set()
    for path in [d.path for d in dirs] + [f.path for f in files]:
        problem = path_problem(path)
        if problem:
            raise _invalid("unsafe path %r: %s" % (path, problem))
        if path in seen:
            raise _invalid("path %r is listed twice" % path)
        seen.add(path)
        parent = posixpath.dirname(path)
        if parent and parent not in dir_paths:
            raise _invalid("the parent of %r is not a listed directory" % path)


def _source(value: t.Any) -> t.Dict[str, t.Any]:
    return dict(value) if isinstance(value, dict) else {}


def parse(
    raw: bytes, shard: str | None = None, snapshot_id: str | None = None
) -> Manifest:
    """The :class:`Manifest` in ``raw``, or :class:`SnapshotInvalid` saying what is
    wrong with it."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise _invalid("not valid JSON (%s)" % error) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _invalid("format is not %s" % FORMAT)
    manifest = Manifest(
        shard=_require(data, "shard", str, "manifest"),
        snapshot_id=_require(data, "snapshot_id", str, "manifest"),
        created=_require(data, "created", str, "manifest"),
        archive=_parse_archive(data),
        files=_entries(_require(data, "files", list, "manifest"), "files", _file_entry),
        directories=_entries(
            _require(data, "directories", list, "manifest"), "directories", _dir_entry
        ),
        source=_source(data.get("source")),
    )
    check_tree(manifest.files, manifest.directories)
    if manifest.total_bytes > MAX_ZSTD_RATIO * manifest.archive.size:
        raise _invalid(
            "its files' %d bytes cannot come out of a %d-byte zstd archive"
            % (manifest.total_bytes, manifest.archive.size)
        )
    if shard is not None and manifest.shard != shard:
        raise _invalid("it belongs to shard %r, not %r" % (manifest.shard, shard))
    if snapshot_id is not None and manifest.snapshot_id != snapshot_id:
        raise _invalid(
            "it names snapshot %r but is stored under %r"
            % (manifest.snapshot_id, snapshot_id)
        )
    return manifest
