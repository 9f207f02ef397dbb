# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The strict extractor refuses everything but listed regular files and directories, and caps bytes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
    SnapshotInvalid,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.archive import (
    CappedSource,
    Extractor,
    TarWriter,
    stream_limit,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import (
    DirEntry,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    manifest_for,
    member,
    tar_bytes,
)


def extract(
    tmp_path: Path, members: list, files: dict[str, bytes], dirs: tuple[str, ...] = ()
) -> Path:
    root = tmp_path / "staging"
    root.mkdir(parents=True)
    manifest = manifest_for(files, dirs)
    Extractor(str(root), manifest).run(
        CappedSource(tar_bytes(members), stream_limit(manifest))
    )
    return root


def test_listed_files_and_directories_are_extracted_with_modes(tmp_path: Path) -> None:
    root = extract(
        tmp_path,
        [member("d", kind=tarfile.DIRTYPE), member("d/a", b"alpha")],
        {"d/a": b"alpha"},
        ("d",),
    )
    assert (root / "d" / "a").read_bytes() == b"alpha"
    assert oct((root / "d").stat().st_mode & 0o777) == oct(0o755)


@pytest.mark.parametrize(
    ("name", "kind", "link", "why"),
    [
        ("/etc/passwd", tarfile.REGTYPE, "", "unsafe path"),
        ("../escape", tarfile.REGTYPE, "", "unsafe path"),
        ("d/../../escape", tarfile.REGTYPE, "", "unsafe path"),
        ("link", tarfile.SYMTYPE, "/etc/passwd", "non-regular"),
        ("hard", tarfile.LNKTYPE, "d/a", "non-regular"),
        ("dev", tarfile.CHRTYPE, "", "non-regular"),
        ("fifo", tarfile.FIFOTYPE, "", "non-regular"),
        ("unlisted", tarfile.REGTYPE, "", "not listed"),
    ],
)
def test_dangerous_or_unlisted_members_are_refused(
    tmp_path: Path, name: str, kind: bytes, link: str, why: str
) -> None:
    members = [
        member("d", kind=tarfile.DIRTYPE),
        member(name, b"x" if kind == tarfile.REGTYPE else b"", kind, link),
    ]
    with pytest.raises(SnapshotInvalid) as caught:
        extract(tmp_path, members, {"d/a": b"alpha"}, ("d",))
    assert why in caught.value.msg
    assert (
        not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    )
    assert not os.path.lexists(tmp_path / "staging" / "link")


def test_a_member_larger_than_listed_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(SnapshotInvalid, match="has size 9, the manifest says 5"):
        extract(tmp_path, [member("a", b"123456789")], {"a": b"12345"})
    assert not (tmp_path / "staging" / "a").exists()


def test_duplicate_member_and_wrong_content_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotInvalid, match="appears twice"):
        extract(tmp_path, [member("a", b"abc"), member("a", b"abc")], {"a": b"abc"})
    with pytest.raises(SnapshotInvalid, match="does not match its SHA-256"):
        extract(tmp_path / "2", [member("a", b"abd")], {"a": b"abc"})


def test_missing_member_and_truncated_stream_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotInvalid, match="lacks 1 listed entries"):
        extract(tmp_path, [member("a", b"abc")], {"a": b"abc", "b": b"x"})
    root = tmp_path / "t"
    root.mkdir()
    data = tar_bytes([member("a", b"abc" * 1000)]).getvalue()[:1500]
    with pytest.raises(SnapshotInvalid, match="ended"):
        Extractor(str(root), manifest_for({"a": b"abc" * 1000})).run(io.BytesIO(data))


def test_decompression_bomb_fails_on_the_byte_cap(tmp_path: Path) -> None:
    manifest = manifest_for({"a": b"abc"})
    tar = tar_bytes([member("a", b"abc")]).getvalue()
    bomb = zstandard.ZstdCompressor().compress(tar + b"\0" * (256 << 20))
    assert len(bomb) < 100_000
    root = tmp_path / "s"
    root.mkdir()
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(bomb), read_across_frames=True
    )
    source = CappedSource(reader, stream_limit(manifest))
    Extractor(str(root), manifest).run(source)
    with pytest.raises(SnapshotInvalid, match="expands to more than"):
        while source.read(1 << 20):
            pass
    assert source.count < 4 << 20


def test_extraction_needs_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("x")
    with pytest.raises(RecoveryError, match="not empty"):
        Extractor(str(tmp_path), manifest_for({}))


def test_writer_output_is_read_back_by_gnu_tar_layout(tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = TarWriter(out)
    writer.add_directory(DirEntry("dir"), 0)
    long_name = "dir/" + "n" * 150
    digest = writer.add_file(long_name, io.BytesIO(b"payload"), 7, 0o640, 1_700_000_000)
    writer.close()
    assert out.tell() % 10240 == 0
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = tar.getnames()
        assert names == ["dir", long_name]
        assert tar.extractfile(long_name).read() == b"payload"  # type: ignore[union-attr]
    assert (
        digest.hexdigest()
        == "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"
    )
