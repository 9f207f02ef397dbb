# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming tar: a writer that hashes each file on the way, and a strict reader that
extracts.

The reader does not use :mod:`tarfile`'s extraction (which has had filter
bypasses): it parses headers itself, accepts only regular files and directories
that the manifest lists, writes them with ``O_EXCL|O_NOFOLLOW`` into an empty
staging directory, and counts the bytes it actually writes against the manifest.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import typing as t
from dataclasses import dataclass, field

from ..errors import RecoveryError, SnapshotInvalid
from .manifest import DirEntry, FileEntry, Manifest, path_problem

BLOCK = 512
RECORD = 20 * BLOCK
COPY_SIZE = 1024 * 1024
MAX_PAX_HEADER = 64 * 1024
MAX_LONG_NAME = 4096
FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
# The pax records that hold numbers: counts, and times (which may be signed and
# fractional).
PAX_COUNTS = frozenset(("size", "uid", "gid"))
PAX_NUMBERS = PAX_COUNTS | frozenset(("mtime", "atime", "ctime"))


class Readable(t.Protocol):
    """A binary file (a raw or buffered file, ``BytesIO``)."""

    def read(self, size: int = -1, /) -> bytes | None: ...


class Sink(t.Protocol):
    def write(self, data: bytes) -> t.Any: ...


class Source(t.Protocol):
    def read(self, size: int = -1) -> bytes: ...


class SourceChanged(RecoveryError):
    """A file changed, appeared or vanished while it was being archived."""


def _padding(size: int) -> int:
    return (BLOCK - size % BLOCK) % BLOCK


def _header(name: str, kind: bytes, size: int, mode: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode & 0o7777, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


@dataclass
class TarWriter:
    """Writes a POSIX (pax) tar stream of directories and regular files into
    ``sink``."""

    sink: Sink
    hash_chunk: t.Callable[[t.Any, bytes], None] = lambda digest, data: digest.update(
        data
    )
    offset: int = 0

    def _emit(self, data: bytes) -> None:
        self.sink.write(data)
        self.offset += len(data)

    def add_directory(self, entry: DirEntry, mtime: int) -> None:
        self._emit(_header(entry.path, tarfile.DIRTYPE, 0, entry.mode, mtime))

    def add_file(
        self, path: str, handle: Readable, size: int, mode: int, mtime: int
    ) -> t.Any:
        """Copy exactly ``size`` bytes of ``handle``; a file that grew or shrank is
        refused.

        Returns the file's SHA-256 object, fed through ``hash_chunk`` (possibly in
        another thread: read its digest once that thread has finished).
        """
        self._emit(_header(path, tarfile.REGTYPE, size, mode, mtime))
        digest, remaining = hashlib.sha256(), size
        while remaining:
            # A new bytes object per read, filled by the kernel: the hashing stage may
            # still hold the previous one, and no copy is made on the way.
            chunk = handle.read(min(remaining, COPY_SIZE))
            if not chunk:
                raise SourceChanged(
                    "File %s shrank while it was archived" % path,
                    resource=path,
                    reason="size changed during the snapshot",
                )
            self.hash_chunk(digest, chunk)
            self._emit(chunk)
            remaining -= len(chunk)
        if handle.read(1):
            raise SourceChanged(
                "File %s grew while it was archived" % path,
                resource=path,
                reason="size changed during the snapshot",
            )
        self._emit(b"\0" * _padding(size))
        return digest

    def close(self) -> None:
        """End-of-archive blocks, padded to a whole record as tar itself writes."""
        end = self.offset + 2 * BLOCK
        self._emit(b"\0" * (2 * BLOCK + (RECORD - end % RECORD) % RECORD))


def read_exact(source: Source, size: int) -> bytes:
    """``size`` bytes of ``source``; a short read means the archive ended early."""
    chunks, remaining = [], size
    while remaining:
        data = source.read(remaining)
        if not data:
            raise SnapshotInvalid(
                "The archive ended in the middle of a member",
                reason="truncated archive",
            )
        chunks.append(data)
        remaining -= len(data)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass
class CappedSource:
    """Counts what ``source`` yields and fails once it yields more than ``limit``
    bytes (decompression bombs)."""

    source: Source
    limit: int
    count: int = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise SnapshotInvalid(
                "The archive expands to more than the %d bytes its manifest allows"
                % self.limit,
                reason="decompressed size exceeds the manifest (decompression bomb or "
                "wrong manifest)",
            )
        return data


@dataclass(frozen=True)
class Member:
    name: str
    kind: bytes
    size: int


def _malformed(what: str) -> SnapshotInvalid:
    return SnapshotInvalid(
        "A tar header is malformed: %s" % what, reason="malformed tar header"
    )


def _pax_record(data: bytes, pos: int) -> t.Tuple[str, str, int]:
    """The pax record ``"<length> <key>=<value>\\n"`` at ``pos``: key, value and
    the position of the next record."""
    length_text, space = data[pos : pos + 21].partition(b" ")[:2]
    if not space or not length_text.isdigit() or len(length_text) > 20:
        raise _malformed("a pax record has no decimal length")
    end = pos + int(length_text)
    if end > len(data) or end <= pos + len(length_text) + 2 or data[end - 1] != 10:
        raise _malformed("a pax record's length does not match its text")
    key, equals, value = data[pos + len(length_text) + 1 : end - 1].partition(b"=")
    if not equals or not key:
        raise _malformed("a pax record has no key=value")
    try:
        return key.decode("utf-8"), value.decode("utf-8"), end
    except UnicodeDecodeError:
        raise _malformed("a pax record is not UTF-8") from None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20


def _pax_number(key: str, value: str) -> None:
    """Numeric pax records must be numbers as tar reads them: counts are whole and
    not negative, times may have a sign and a fraction."""
    whole, dot, fraction = value[value.startswith("-") :].partition(".")
    numeric = (
        _digits(value)
        if key in PAX_COUNTS
        else _digits(whole) and (not dot or _digits(fraction))
    )
    if not numeric:
        raise _malformed("the pax %s record %r is not a number" % (key, value[:40]))


def _pax_records(data: bytes) -> t.Dict[str, str]:
    records, pos = {}, 0
    while pos < len(data):
        key, value, pos = _pax_record(data, pos)
        if key in PAX_NUMBERS:
            _pax_number(key, value)
        records[key] = value
    return records


def _extended(source: Source, info: tarfile.TarInfo, limit: int) -> bytes:
    if not 0 <= info.size <= limit:
        raise SnapshotInvalid(
            "An extended tar header of %d bytes is larger than allowed" % info.size,
            reason="oversized tar header",
        )
    data = read_exact(source, info.size + _padding(info.size))
    return data[: info.size]


def _long_name(source: Source, info: tarfile.TarInfo) -> str:
    try:
        return _extended(source, info, MAX_LONG_NAME).rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("a GNU long name is not UTF-8") from None


def _member(info: tarfile.TarInfo, overrides: t.Mapping[str, str]) -> Member:
    size = int(overrides["size"]) if "size" in overrides else info.size
    if size < 0:
        raise _malformed("member %r has a negative size" % info.name)
    if info.type == tarfile.DIRTYPE and size:
        raise _malformed("directory %r carries data" % info.name)
    return Member(overrides.get("path", info.name), info.type, size)


def next_member(source: Source) -> Member | None:
    """The next member header (pax and GNU long names applied), or None at the end of
    the archive."""
    overrides: t.Dict[str, str] = {}
    while True:
        block = read_exact(source, BLOCK)
        if block == b"\0" * BLOCK:
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise SnapshotInvalid(
                "A tar header is invalid: %s" % error, reason="malformed tar header"
            ) from None
        if info.type == tarfile.XHDTYPE:
            overrides.update(_pax_records(_extended(source, info, MAX_PAX_HEADER)))
        elif info.type == tarfile.GNUTYPE_LONGNAME:
            overrides["path"] = _long_name(source, info)
        else:
            return _member(info, overrides)


@dataclass
class ExtractStats:
    files: int = 0
    directories: int = 0
    bytes_written: int = 0


@dataclass
class Extractor:
    """Extracts a tar stream into the empty directory ``root``, admitting only what
    ``manifest`` lists.

    ``progress`` is called with the number of file bytes written so far, after each
    file.  Each chunk written is hashed through ``hash_chunk`` (which may hand it to
    another thread); ``drain`` waits for that hashing, and every file's SHA-256 is
    compared before :meth:`run` returns.
    """

    root: str
    manifest: Manifest
    progress: t.Callable[[int], None] = lambda written: None
    hash_chunk: t.Callable[[t.Any, bytes], None] = lambda digest, data: digest.update(
        data
    )
    drain: t.Callable[[], None] = lambda: None
    stats: ExtractStats = field(default_factory=ExtractStats)
    done: t.Set[str] = field(default_factory=set)
    hashed: t.List[t.Tuple[FileEntry, t.Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.files = {f.path: f for f in self.manifest.files}
        self.dirs = {d.path: d for d in self.manifest.directories}
        if os.listdir(self.root):
            raise RecoveryError(
                "Refusing to extract into %s: it is not empty" % self.root,
                resource=self.root,
            )

    def run(self, source: Source) -> ExtractStats:
        while True:
            member = next_member(source)
            if member is None:
                break
            self._admit(source, member)
        self._check_complete()
        self.drain()
        self._check_digests()
        self._finish_modes()
        return self.stats

    def _check_digests(self) -> None:
        for entry, digest in self.hashed:
            if digest.hexdigest() != entry.sha256:
                raise SnapshotInvalid(
                    "File %s does not match its SHA-256 in the manifest" % entry.path,
                    resource=entry.path,
                    reason="file checksum mismatch",
                )

    def _refuse(self, member: Member, why: str) -> SnapshotInvalid:
        return SnapshotInvalid(
            "Refusing archive member %r: %s" % (member.name, why),
            resource=member.name,
            reason="archive member " + why,
        )

    def _admit(self, source: Source, member: Member) -> None:
        name = (
            member.name[:-1]
            if member.kind == tarfile.DIRTYPE and member.name.endswith("/")
            else member.name
        )
        problem = path_problem(name)
        if problem:
            raise self._refuse(member, "has an unsafe path (%s)" % problem)
        if member.kind not in FILE_TYPES and member.kind != tarfile.DIRTYPE:
            raise self._refuse(member, "is a link, device or other non-regular member")
        if name in self.done:
            raise self._refuse(member, "appears twice")
        parent = os.path.dirname(name)
        if parent and parent not in self.done:
            raise self._refuse(member, "comes before its directory")
        if member.kind == tarfile.DIRTYPE:
            if name not in self.dirs:
                raise self._refuse(member, "is not listed in the manifest")
            os.mkdir(os.path.join(self.root, name), 0o700)
            self.stats.directories += 1
        else:
            self._write_file(source, name, self._listed_file(member, name))
        self.done.add(name)

    def _listed_file(self, member: Member, name: str) -> FileEntry:
        entry = self.files.get(name)
        if entry is None:
            raise self._refuse(member, "is not listed in the manifest")
        if member.size != entry.size:
            raise self._refuse(
                member, "has size %d, the manifest says %d" % (member.size, entry.size)
            )
        return entry

    def _write_file(self, source: Source, name: str, entry: FileEntry) -> None:
        path = os.path.join(self.root, name)
        fd = os.open(
            path,
            os.O_WRONLY
            | os.O_CREAT
            | os.O_EXCL
            | os.O_NOFOLLOW
            | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
        try:
            self.hashed.append((entry, self._copy(source, fd, entry)))
            os.fchmod(fd, entry.mode & 0o777)
        finally:
            os.close(fd)
        if entry.mtime:
            self._set_mtime(path, entry)
        read_exact(source, _padding(entry.size))
        self.stats.files += 1
        self.progress(self.stats.bytes_written)

    @staticmethod
    def _set_mtime(path: str, entry: FileEntry) -> None:
        try:
            os.utime(path, (entry.mtime, entry.mtime))
        except (OverflowError, ValueError):
            raise SnapshotInvalid(
                "File %s has an mtime (%d) this platform cannot set"
                % (entry.path, entry.mtime),
                resource=entry.path,
                reason="mtime out of the platform's range",
            ) from None

    def _copy(self, source: Source, fd: int, entry: FileEntry) -> t.Any:
        digest, remaining = hashlib.sha256(), entry.size
        while remaining:
            data = source.read(min(remaining, COPY_SIZE))
            if not data:
                raise SnapshotInvalid(
                    "The archive ended inside %s" % entry.path,
                    reason="truncated archive",
                )
            self.hash_chunk(digest, data)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
                self._count(written)
            remaining -= len(data)
        return digest

    def _count(self, written: int) -> None:
        self.stats.bytes_written += written
        if self.stats.bytes_written > self.manifest.total_bytes:
            raise SnapshotInvalid(
                "More bytes were written than the manifest lists",
                reason="byte cap exceeded",
            )

    def _check_complete(self) -> None:
        missing = sorted((set(self.files) | set(self.dirs)) - self.done)
        if missing:
            raise SnapshotInvalid(
                "The archive lacks %d listed entries, first %r"
                % (len(missing), missing[0]),
                reason="archive incomplete",
            )

    def _finish_modes(self) -> None:
        for entry in sorted(
            self.dirs.values(), key=lambda d: d.path.count("/"), reverse=True
        ):
            os.chmod(os.path.join(self.root, entry.path), entry.mode & 0o777)


def stream_limit(manifest: Manifest) -> int:
    """How many decompressed bytes a genuine archive of ``manifest`` can have: data
    plus headers and padding."""
    return (
        manifest.total_bytes
        + (manifest.member_count + 1) * (3 * BLOCK + 2 * MAX_LONG_NAME)
        + 2 * RECORD
    )
