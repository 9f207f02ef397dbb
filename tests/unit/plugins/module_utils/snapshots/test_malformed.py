# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Malformed manifests and archives: every one is classified invalid or quarantined,
never an unhandled exception, and the restore goes on to the next verified snapshot."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import typing as t
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
    SnapshotInvalid,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    archive,
    catalog,
    layout,
    restore,
    store,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.archive import (
    CappedSource,
    Extractor,
    stream_limit,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    NOW,
    edit_manifest,
    make_tree,
    manifest_for,
    republish,
    restore_into,
    snapshot,
    staging_left,
    tar_of,
    tree_of,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# JSON tokens that json.dumps never writes but a manifest may hold: floats beyond
# double range, integers too long to parse, nesting deeper than the parser's stack.
RAW_TOKENS = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "9" * 5000,
    "[" * 100_000 + "]" * 100_000,
    "1.5",
    "-0",
    '"\\ud800"',
    "9223372036854775808",
    "-9223372036854775809",
]
RAW = "\x00raw:"
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,3})?", fullmatch=True)
    | st.sampled_from(["2026-11-27T10:00:00Z", "0001-01-01T00:00:00+14:00"])
    | st.sampled_from(["9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"])
    | st.sampled_from([RAW + token for token in RAW_TOKENS]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS: t.List[t.Tuple[t.Union[str, int], ...]] = [
    ("files", 0, "size"),
    ("files", 0, "mtime"),
    ("files", 0, "mode"),
    ("files", 0, "path"),
    ("files", 0, "sha256"),
    ("files",),
    ("directories", 0, "mode"),
    ("directories", 0, "path"),
    ("directories",),
    ("archive", "size"),
    ("archive", "chunk_size"),
    ("archive", "chunk_crc32"),
    ("archive", "sha256"),
    ("archive", "compression"),
    ("archive",),
    ("created",),
    ("shard",),
    ("snapshot_id",),
    ("format",),
    ("source",),
]


def set_field(data: t.Any, field: t.Sequence[t.Union[str, int]], value: t.Any) -> None:
    for step in field[:-1]:
        data = data[step]
    data[field[-1]] = value


def dump_with_raw_tokens(data: t.Any) -> bytes:
    """JSON text of ``data`` where each ``RAW`` string becomes the token it carries."""
    text = json.dumps(data)
    for token in RAW_TOKENS:
        text = text.replace(json.dumps(RAW + token), token)
    return text.encode("utf-8")


def two_snapshots(s3: S3Store, root: Path) -> None:
    """``s-old`` and, a day later, ``s-new``: both verified."""
    snapshot(
        s3, make_tree(root / "old", files=3, seed=1), "s-old", "2026-11-26T10:00:00Z"
    )
    snapshot(s3, make_tree(root / "new", files=3, seed=2), "s-new")


def listing_survives(s3: S3Store) -> t.Dict[str, catalog.Snapshot]:
    """What snapshot_info and snapshot_prune do with the shard's listing."""
    found = store.load(s3, LOCATION, NOW, 300)
    views = [s.to_dict(NOW) for s in catalog.newest_first(found.values())]
    json.dumps(views)
    catalog.recovery_point(found.values(), NOW)
    plan = catalog.retention_plan(found.values(), retention_days=7, keep_verified=1)
    assert "s-old" not in [s.snapshot_id for s in plan.delete]
    return found


def test_fuzzed_manifest_fields_are_classified_and_never_crash_a_listing(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    two_snapshots(s3, tmp_path)
    key = LOCATION.key("s-new", layout.MANIFEST)
    good = json.loads(fake.objects[key])

    @FUZZ
    @given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
    @example(field=("files", 0, "mtime"), value="1764281403")
    @example(field=("files", 0, "mtime"), value=RAW + "1e400")
    @example(field=("files", 0, "mtime"), value=2**64)
    @example(field=("files", 0, "size"), value=2**62)
    @example(field=("created",), value="0001-01-01T00:00:00+14:00")
    @example(field=("archive",), value=RAW + "[" * 100_000 + "]" * 100_000)
    def check(field: t.Tuple[t.Union[str, int], ...], value: t.Any) -> None:
        data = json.loads(json.dumps(good))
        set_field(data, field, value)
        fake.objects[key] = dump_with_raw_tokens(data)
        found = listing_survives(s3)
        assert found["s-old"].verified
        verdict = found["s-new"]
        assert verdict.status in (catalog.VERIFIED, catalog.INVALID, catalog.FUTURE)
        assert verdict.verified or verdict.reason
        order, skipped = restore.candidates(found, None, True)
        assert order[-1].snapshot_id == "s-old" and skipped == []

    check()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (("files", 0, "mtime"), "1764281403", "mtime is missing or not a int"),
        (("files", 0, "mtime"), 1.5, "mtime is missing or not a int"),
        (("files", 0, "mtime"), 2**63, "mtime is out of range"),
        (("files", 0, "size"), -1, "size is out of range"),
        (("files", 0, "size"), 2**40, "cannot come out of a"),
        (("files", 0, "mode"), 0o10000, "mode is out of range"),
        (("files", 0, "path"), "index\\meta.json", "holds a backslash"),
        (("created",), "0001-01-01T00:00:00+14:00", "not a time since 1970"),
    ],
)
def test_malformed_fields_make_the_snapshot_invalid_with_a_reason(
    tmp_path: Path,
    fake: FakeS3,
    s3: S3Store,
    field: t.Tuple[t.Union[str, int], ...],
    value: t.Any,
    reason: str,
) -> None:
    two_snapshots(s3, tmp_path)
    edit_manifest(fake, "s-new", lambda data: set_field(data, field, value))
    found = listing_survives(s3)
    assert found["s-new"].status == catalog.INVALID
    assert reason in found["s-new"].reason
    outcome = restore_into(s3, tmp_path / "dest")
    assert outcome.snapshot is not None and outcome.snapshot.snapshot_id == "s-old"
    assert tree_of(tmp_path / "dest") == tree_of(tmp_path / "old")


def pax_tar(records: t.Mapping[str, str], data: bytes = b"alpha") -> bytes:
    """A pax tar of directory ``d`` and file ``d/a`` whose pax header carries
    ``records``, written by Python's tarfile."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("d")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        info = tarfile.TarInfo("d/a")
        info.size, info.mode, info.pax_headers = len(data), 0o644, dict(records)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def extract_outcome(tar: bytes) -> str:
    """``ok`` or the reason of the SnapshotInvalid; anything else is raised."""
    with tempfile.TemporaryDirectory() as parent:
        root = Path(parent, "staging")
        root.mkdir()
        manifest = manifest_for({"d/a": b"alpha"}, ("d",))
        try:
            Extractor(str(root), manifest).run(
                CappedSource(io.BytesIO(tar), stream_limit(manifest))
            )
        except SnapshotInvalid as error:
            outcome = t.cast(str, error.reason)
        else:
            assert (root / "d" / "a").read_bytes() == b"alpha"
            outcome = "ok"
        assert sorted(p.name for p in Path(parent).iterdir()) == ["staging"]
    return outcome


PAX_KEYS = ["size", "mtime", "atime", "ctime", "uid", "gid", "path", "uname"]
PAX_VALUES = (
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
    | st.from_regex(r"[-+]?[0-9]{0,25}(\.[0-9]{0,4})?", fullmatch=True)
    | st.sampled_from(["5", "d/a", "d", "../a", "1e3", "0x5", "\u0665", "9" * 5000])
)


@FUZZ
@given(key=st.sampled_from(PAX_KEYS), value=PAX_VALUES)
@example(key="size", value="abc")
@example(key="size", value="\u0665")
@example(key="size", value="9" * 5000)
@example(key="size", value="-5")
@example(key="mtime", value="1.5e9")
@example(key="mtime", value="1700000000.25")
def test_fuzzed_pax_records_are_refused_or_harmless(key: str, value: str) -> None:
    outcome = extract_outcome(pax_tar({key: value}))
    five = value.isascii() and value.isdigit() and len(value) < 20 and int(value) == 5
    if key == "size" and not five:
        assert outcome != "ok"
    if key in ("mtime", "uid", "gid", "atime", "ctime") and not value.isdigit():
        assert outcome != "ok" or value.lstrip("-").replace(".", "", 1).isdigit()


def patched(tar: bytes, needle: bytes, replacement: bytes) -> bytes:
    """``tar`` with ``needle`` replaced byte for byte (same length), so every header
    size and checksum still holds."""
    assert len(needle) == len(replacement) and tar.count(needle) == 1
    return tar.replace(needle, replacement)


@pytest.mark.parametrize(
    ("needle", "replacement"),
    [
        (b"size=5\n", b"size=x\n"),
        (b"mtime=1\n", b"mtime=\xff\n"),
        (b"11 mtime=1\n", b"99 mtime=1\n"),
        (b"11 mtime=1\n", b"1x mtime=1\n"),
        (b"11 mtime=1\n", b"11 mtime=1 "),
        (b"path=d/a\n", b"path=d/\xff\n"),
    ],
)
def test_byte_patched_pax_headers_are_refused(
    needle: bytes, replacement: bytes
) -> None:
    tar = pax_tar({"size": "5", "mtime": "1", "path": "d/a"})
    assert extract_outcome(tar) == "ok"
    assert extract_outcome(patched(tar, needle, replacement)) == "malformed tar header"


def with_checksum(block: bytearray) -> bytearray:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return block


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=4 * 512 - 1),
    value=st.integers(min_value=0, max_value=255),
    fix_checksum=st.booleans(),
)
def test_fuzzed_header_bytes_never_escape(
    position: int, value: int, fix_checksum: bool
) -> None:
    data = bytearray(pax_tar({"mtime": "1700000000.5"}))
    data[position] = value
    if fix_checksum:
        start = position - position % 512
        data[start : start + 512] = with_checksum(data[start : start + 512])
    extract_outcome(bytes(data))


def test_negative_and_directory_sizes_are_refused() -> None:
    tar = bytearray(pax_tar({}))
    first = bytearray(tar[:512])
    first[124:136] = b"\xff" * 12  # base-256: -1
    assert extract_outcome(bytes(with_checksum(first)) + tar[512:]) == (
        "malformed tar header"
    )
    first[124:136] = b"%011o\0" % 512
    assert extract_outcome(bytes(with_checksum(first)) + tar[512:]) == (
        "malformed tar header"
    )


def test_a_malformed_pax_size_quarantines_the_newest_and_restores_the_older(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    two_snapshots(s3, tmp_path)
    good = tar_of(fake, "s-new")
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(good)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        members = source.getmembers()
        target = next(m for m in members if m.isfile() and m.size)
        target.pax_headers = {"size": "%dx" % target.size}
        for member in members:
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
    republish(fake, "s-new", out.getvalue())
    assert store.load(s3, LOCATION, NOW, 300)["s-new"].verified
    dest = tmp_path / "dest"
    outcome = restore_into(s3, dest)
    assert [a.outcome for a in outcome.attempts] == ["failed verification", "restored"]
    assert "not a number" in outcome.attempts[0].reason
    assert outcome.quarantined == ["s-new"]
    assert tree_of(dest) == tree_of(tmp_path / "old")
    assert staging_left(tmp_path) == []


def test_an_mtime_the_platform_cannot_set_quarantines_and_falls_back(
    tmp_path: Path, fake: FakeS3, s3: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_snapshots(s3, tmp_path)
    edit_manifest(fake, "s-new", lambda d: d["files"][0].update(mtime=2**40))
    real_utime = archive.os.utime

    def utime_of_a_32_bit_time_t(path: str, times: t.Tuple[int, int]) -> None:
        if not -(2**31) <= times[1] < 2**31:
            raise OverflowError("timestamp out of range for platform time_t")
        real_utime(path, times)

    monkeypatch.setattr(archive.os, "utime", utime_of_a_32_bit_time_t)
    outcome = restore_into(s3, tmp_path / "dest")
    assert [a.outcome for a in outcome.attempts] == ["failed verification", "restored"]
    assert (
        "mtime (1099511627776) this platform cannot set" in outcome.attempts[0].reason
    )
    assert outcome.quarantined == ["s-new"]
    assert tree_of(tmp_path / "dest") == tree_of(tmp_path / "old")
    assert staging_left(tmp_path) == []


def test_fuzzed_manifest_mtimes_restore_or_fall_back(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    two_snapshots(s3, tmp_path)
    key = LOCATION.key("s-new", layout.MANIFEST)
    good = fake.objects[key]
    marker = LOCATION.key("s-new", layout.QUARANTINE_MARKER)

    @settings(max_examples=40, deadline=None)
    @given(
        value=st.integers(min_value=-(2**64), max_value=2**64)
        | st.floats()
        | st.text(max_size=12)
        | st.none()
    )
    @example(value=2**63)
    @example(value=-(2**63))
    @example(value="1764281403")
    def check(value: t.Any) -> None:
        data = json.loads(good)
        data["files"][0]["mtime"] = value
        fake.objects[key] = json.dumps(data).encode()
        fake.objects.pop(marker, None)
        with tempfile.TemporaryDirectory(dir=tmp_path) as parent:
            outcome = restore_into(s3, Path(parent, "dest"))
            assert outcome.snapshot is not None
            assert staging_left(Path(parent)) == []
        if outcome.snapshot.snapshot_id == "s-new":
            assert value is None or (
                isinstance(value, int)
                and not isinstance(value, bool)
                and -(2**63) <= value < 2**63
            )
        else:
            assert outcome.attempts[-1].outcome == "restored"

    check()


def test_a_shard_without_a_verified_snapshot_says_why_for_each(
    tmp_path: Path, fake: FakeS3, s3: S3Store
) -> None:
    two_snapshots(s3, tmp_path)
    edit_manifest(fake, "s-new", lambda d: d["files"][0].update(mtime="soon"))
    del fake.objects[LOCATION.key("s-old", layout.MANIFEST)]
    request = restore.RestoreRequest(LOCATION, str(tmp_path / "dest"), "t")
    order, skipped = restore.candidates(store.load(s3, LOCATION, NOW, 300), None, True)
    with pytest.raises(RecoveryError) as caught:
        restore.local_restore(
            s3, request, order, skipped, None, check_mode=False, force=False
        )
    message = caught.value.msg
    assert "no verified snapshot could be restored (none is verified: " in message
    assert "s-new skipped: invalid: files[0].mtime is missing or not a int" in message
    assert "s-old skipped: incomplete: no manifest.json" in message
    tried = caught.value.partial["tried"]
    assert sorted(a["snapshot_id"] for a in tried) == ["s-new", "s-old"]


def test_an_empty_shard_says_that_no_snapshot_exists(
    tmp_path: Path, s3: S3Store
) -> None:
    request = restore.RestoreRequest(LOCATION, str(tmp_path / "dest"), "t")
    with pytest.raises(RecoveryError, match=r"no snapshot exists under s3://snaps/"):
        restore.local_restore(s3, request, [], [], None, check_mode=True, force=False)
