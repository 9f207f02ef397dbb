# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create and restore through the engine over an in-memory S3, with faults injected per call."""

from __future__ import annotations

import errno
import json
import os
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    ApiError,
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    archive,
    layout,
    restore,
    store,
    swap,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.archive import (
    SourceChanged,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    Body,
    FakeS3,
    client_error,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    NOW,
    make_tree,
    restore_into,
    snapshot,
    tree_of,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    store as make_store,
)


def test_round_trip_marker_and_idempotence(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    source = make_tree(tmp_path / "src", files=12)
    snapshot(s3, source, "s1")
    names = sorted(k.rsplit("/", 1)[1] for k in fake.objects)
    assert names == ["SHA256SUMS", "data.tar.zst", "manifest.json"]
    dest = tmp_path / "dest"
    outcome = restore_into(s3, dest)
    assert (
        outcome.changed
        and outcome.restored is not None
        and outcome.restored.files == 14
    )
    assert tree_of(dest) == tree_of(source)
    marker = json.loads((dest / ".ragops-restore.json").read_text())
    assert marker["snapshot_id"] == "s1" and len(marker["manifest_sha256"]) == 64
    assert restore_into(s3, dest).changed is False
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_existing_target_is_swapped_and_kept_as_previous(
    tmp_path: Path, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "corrupt.seg").write_bytes(b"garbage")
    outcome = restore_into(s3, dest)
    assert outcome.restored is not None and outcome.restored.previous is not None
    assert Path(outcome.restored.previous, "corrupt.seg").read_bytes() == b"garbage"
    assert not (dest / "corrupt.seg").exists()


def test_corrupt_newest_is_quarantined_and_older_restored(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "old", seed=1), "s-old", "2026-11-26T10:00:00Z")
    snapshot(s3, make_tree(tmp_path / "new", seed=2), "s-new", "2026-11-27T10:00:00Z")
    key = LOCATION.key("s-new", layout.ARCHIVE)
    damaged = bytearray(fake.objects[key])
    damaged[len(damaged) // 2] ^= 0x01
    fake.objects[key] = bytes(damaged)
    dest = tmp_path / "dest"
    outcome = restore_into(s3, dest)
    assert [a.outcome for a in outcome.attempts] == ["failed verification", "restored"]
    assert "do not match the manifest" in outcome.attempts[0].reason
    assert outcome.quarantined == ["s-new"]
    assert (
        json.loads(fake.objects[LOCATION.key("s-new", layout.QUARANTINE_MARKER)])[
            "incident_id"
        ]
        == "INC-1"
    )
    assert key in fake.objects
    assert tree_of(dest) == tree_of(tmp_path / "old")
    assert store.load(s3, LOCATION, NOW, 300)["s-new"].status == "quarantined"


def test_a_part_damaged_in_transit_is_fetched_again(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "src", files=20), "s1")
    flipped = []

    def flip_once(operation: str, kwargs: dict[str, t.Any]) -> t.Any:
        if "Range" in kwargs and not flipped:
            flipped.append(kwargs["Range"])
            first, last = kwargs["Range"].split("=")[1].split("-")
            data = bytearray(fake.objects[kwargs["Key"]][int(first) : int(last) + 1])
            data[7] ^= 0x80
            return {"Body": Body(bytes(data)), "ContentLength": len(data)}
        return None

    fake.faults.append(("GetObject", flip_once))
    outcome = restore_into(s3, tmp_path / "dest")
    assert outcome.restored is not None and outcome.restored.refetched_parts == 1
    assert outcome.quarantined == []


def test_truncated_body_and_slowdown_are_retried(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    fake.fail("GetObject", client_error(503, "SlowDown", "GetObject"), times=2)
    short = []

    def truncate_once(operation: str, kwargs: dict[str, t.Any]) -> t.Any:
        if "Range" in kwargs and not short:
            short.append(1)
            return {"Body": Body(b"abc"), "ContentLength": 3}
        return None

    fake.faults.append(("GetObject", truncate_once))
    outcome = restore_into(s3, tmp_path / "dest")
    assert outcome.restored is not None and tree_of(tmp_path / "dest") == tree_of(
        tmp_path / "src"
    )


def test_s3_that_stays_down_fails_clearly_and_leaves_target(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("old")
    order = restore.candidates(store.load(s3, LOCATION, NOW, 300), None, True)[0]
    fake.fail("GetObject", client_error(503, "SlowDown", "GetObject"), times=100)
    with pytest.raises(ApiError) as caught:
        restore.restore_latest(
            s3,
            restore.RestoreRequest(LOCATION, str(dest), "t"),
            order,
            {},
            restore.Outcome(True, None),
        )
    assert (
        "SlowDown" in caught.value.msg
        and caught.value.partial["target_unchanged"] is True
    )
    assert tree_of(dest) == {"keep": b"old"}
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    assert LOCATION.key("s1", layout.QUARANTINE_MARKER) not in fake.objects


def test_full_disk_mid_write_leaves_target_untouched(
    tmp_path: Path, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot(s3, make_tree(tmp_path / "src", files=10), "s1")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("old")
    real_write, budget = os.write, [20_000]

    def write(fd: int, data: t.Any) -> int:
        budget[0] -= len(data)
        if budget[0] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(archive.os, "write", write)
    with pytest.raises(RecoveryError, match="no space left on device"):
        restore_into(s3, dest)
    assert tree_of(dest) == {"keep": b"old"}
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_not_enough_space_is_refused_before_download(
    tmp_path: Path, s3: S3Store, fake: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    real = os.statvfs

    class Tiny:
        def __init__(self, path: str) -> None:
            self.f_frsize, self.f_bavail = real(path).f_frsize, 1

    monkeypatch.setattr(restore.os, "statvfs", Tiny)
    with pytest.raises(RecoveryError, match="free"):
        restore_into(s3, tmp_path / "dest")
    assert not any("Range" in call[1] for call in fake.calls)


def test_interrupted_staging_is_resumed_by_swap_only(
    tmp_path: Path, s3: S3Store, fake: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    dest = tmp_path / "dest"

    def crash(*args: t.Any, **kwargs: t.Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(swap, "swap_in", crash)
    with pytest.raises(KeyboardInterrupt):
        restore_into(s3, dest)
    assert not dest.exists() and [p for p in tmp_path.iterdir() if "staging" in p.name]
    monkeypatch.undo()
    reads = len(fake.calls)
    outcome = restore_into(s3, dest)
    assert outcome.restored is not None and outcome.restored.resumed is True
    assert not any("Range" in call[1] for call in fake.calls[reads:])
    assert tree_of(dest) == tree_of(tmp_path / "src")


def test_a_stale_half_staging_is_discarded(tmp_path: Path, s3: S3Store) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    stale = tmp_path / ".dest.ragops-staging-0123456789abcdef"
    stale.mkdir()
    (stale / "half").write_text("x")
    restore_into(s3, tmp_path / "dest")
    assert not stale.exists()


def test_mount_point_target_is_filled_in_place_only_when_empty(
    tmp_path: Path, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot(s3, make_tree(tmp_path / "src"), "s1")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "lost+found").mkdir()
    monkeypatch.setattr(
        swap.os.path, "ismount", lambda path: os.path.abspath(path) == str(volume)
    )
    outcome = restore_into(s3, volume)
    assert outcome.restored is not None and tree_of(volume) == tree_of(tmp_path / "src")
    assert (
        sorted(os.listdir(volume))[-1] == "lost+found"
        or (volume / ".ragops-restore.json").exists()
    )
    (volume / ".ragops-restore.json").unlink()
    with pytest.raises(RecoveryError, match="mount point that already holds data"):
        restore_into(s3, volume)


def test_source_changing_during_create_publishes_nothing(
    tmp_path: Path, fake: FakeS3, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_tree(tmp_path / "src")
    real_add = archive.TarWriter.add_file

    def add_and_touch(self: archive.TarWriter, path: str, *args: t.Any) -> t.Any:
        entry = real_add(self, path, *args)
        if path.endswith("seg-001.bin"):
            (source / "index" / "new-segment.bin").write_bytes(b"written meanwhile")
        return entry

    monkeypatch.setattr(archive.TarWriter, "add_file", add_and_touch)
    with pytest.raises(SourceChanged, match=r"new-segment\.bin was added"):
        snapshot(s3, source, "s1")
    assert fake.objects == {} and fake.uploads == {}


def test_a_file_growing_while_read_is_detected(
    tmp_path: Path, s3: S3Store, fake: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_tree(tmp_path / "src")
    monkeypatch.setattr(
        os,
        "fstat",
        lambda fd, real=os.fstat: type(
            "S",
            (),
            {
                "st_ino": real(fd).st_ino,
                "st_size": real(fd).st_size + 1,
                "st_mtime_ns": real(fd).st_mtime_ns,
            },
        )(),
    )
    with pytest.raises(SourceChanged, match="changed while the snapshot was taken"):
        snapshot(s3, source, "s1")
    assert fake.objects == {}


def test_links_in_the_source_are_refused(tmp_path: Path, s3: S3Store) -> None:
    source = make_tree(tmp_path / "src")
    (source / "index" / "link").symlink_to("/etc/passwd")
    with pytest.raises(RecoveryError, match="not a regular file or directory"):
        snapshot(s3, source, "s1")


def test_existing_snapshot_id_is_not_overwritten(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    source = make_tree(tmp_path / "src")
    snapshot(s3, source, "s1")
    before = dict(fake.objects)
    with pytest.raises(RecoveryError, match="already exists"):
        snapshot(s3, source, "s1")
    assert fake.objects == before


def test_listing_is_paged_and_hold_is_read(tmp_path: Path) -> None:
    fake = FakeS3(page_size=2)
    s3 = make_store(fake)
    for number in range(3):
        snapshot(
            s3,
            make_tree(tmp_path / str(number), files=1),
            "s%d" % number,
            "2026-11-2%dT10:00:00Z" % number,
        )
    assert store.set_hold(s3, LOCATION, {"incident_id": "INC-9"}) is True
    assert store.set_hold(s3, LOCATION, {"incident_id": "INC-10"}) is False
    assert len(store.load(s3, LOCATION, NOW, 300)) == 3
    assert sum(1 for call in fake.calls if call[0] == "ListObjectsV2") >= 5
    assert store.read_hold(s3, LOCATION)["incident_id"] == "INC-9"  # type: ignore[index]


def test_exchange_swaps_two_directories_and_mounts_are_recognised(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from-a").write_text("a")
    (tmp_path / "b" / "from-b").write_text("b")
    if swap.exchange(str(tmp_path / "a"), str(tmp_path / "b")):
        assert (tmp_path / "a" / "from-b").exists() and (
            tmp_path / "b" / "from-a"
        ).exists()
    assert (
        swap.is_mount("/proc") is True and swap.is_mount(str(tmp_path / "a")) is False
    )
    with pytest.raises(ValueError, match="not a staging directory"):
        swap.remove_tree(str(tmp_path / "a"))
