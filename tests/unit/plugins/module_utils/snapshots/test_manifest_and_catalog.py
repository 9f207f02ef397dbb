# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest parsing and the catalog's verdicts, recovery point and retention plan (pure)."""

from __future__ import annotations

import json
import typing as t
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.audit import timestamp
from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    SnapshotInvalid,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    catalog,
    layout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.manifest import (
    ArchiveInfo,
    Manifest,
    checksums_text,
    parse,
    path_problem,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    ObjectInfo,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    LOCATION,
    manifest_for,
    sha,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def good_manifest(
    snapshot_id: str = "s1", created: str = "2026-11-27T10:00:00Z", size: int = 10
) -> Manifest:
    base = manifest_for({"d/a": b"alpha", "b": b"beta"}, ("d",))
    archive = ArchiveInfo(
        "data.tar.zst", size, sha(b"x"), 8 << 20, ("0badf00d",) if size else ()
    )
    return Manifest(
        "shard-1",
        snapshot_id,
        created,
        archive,
        base.files,
        base.directories,
        {"host": "h"},
    )


def test_manifest_round_trips_and_lists_checksums() -> None:
    manifest = good_manifest()
    assert parse(manifest.to_bytes(), "shard-1", "s1") == manifest
    assert checksums_text(manifest).decode().splitlines()[0] == "%s  d/a" % sha(
        b"alpha"
    )


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("files"), "files is missing"),
        (lambda d: d.update(format="other/1"), "format is not"),
        (lambda d: d["files"].append(dict(d["files"][0])), "listed twice"),
        (
            lambda d: d["files"].append(
                {"path": "../x", "size": 1, "sha256": "0" * 64, "mode": 420}
            ),
            "unsafe path",
        ),
        (
            lambda d: d["files"].append(
                {"path": "nodir/x", "size": 1, "sha256": "0" * 64, "mode": 420}
            ),
            "parent",
        ),
        (lambda d: d["files"][0].update(sha256="XYZ"), "not a lowercase hex SHA-256"),
        (
            lambda d: d["archive"].update(chunk_crc32=["XYZ"]),
            "not a lowercase hex CRC-32",
        ),
        (lambda d: d["archive"].update(size=10 << 20), "do not agree"),
        (lambda d: d.update(shard="shard-9"), "belongs to shard"),
    ],
)
def test_malformed_manifests_are_rejected_with_a_reason(
    mutate: t.Callable[[dict], t.Any], reason: str
) -> None:
    data = json.loads(good_manifest().to_bytes())
    mutate(data)
    with pytest.raises(SnapshotInvalid, match=reason):
        parse(json.dumps(data).encode(), "shard-1", "s1")


def test_not_json_is_rejected() -> None:
    with pytest.raises(SnapshotInvalid, match="not valid JSON"):
        parse(b'{"format": "ragops-snapshot/1", "files": [', "shard-1")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("a/b", True),
        ("a", True),
        ("/a", False),
        ("a/../b", False),
        ("./a", False),
        ("a//b", False),
        ("", False),
        ("a\nb", False),
        ("..", False),
        ("a\\b", False),
        ("a\tb", False),
        ("a\x7fb", False),
        ("a\x85b", False),
        ("a\udce9b", False),
        ("üñï ✓/*-x", True),
    ],
)
def test_path_problem(path: str, ok: bool) -> None:
    assert (path_problem(path) is None) is ok


def snapshot_objects(
    snapshot_id: str,
    manifest: Manifest | None,
    modified: str = "2026-11-27T10:00:00Z",
    extra: t.Sequence[str] = (),
) -> t.List[ObjectInfo]:
    objects = [
        ObjectInfo(
            LOCATION.key(snapshot_id, layout.ARCHIVE),
            manifest.archive.size if manifest else 5,
            modified,
        )
    ]
    if manifest is not None:
        objects.append(
            ObjectInfo(LOCATION.key(snapshot_id, layout.MANIFEST), 100, modified)
        )
    objects += [
        ObjectInfo(LOCATION.key(snapshot_id, name), 10, modified) for name in extra
    ]
    return objects


def build(
    specs: t.Sequence[t.Tuple[str, str, t.Sequence[str]]],
) -> t.Dict[str, catalog.Snapshot]:
    """Snapshots from (id, created or '' for incomplete, extra object names)."""
    listing: t.List[ObjectInfo] = [
        ObjectInfo(LOCATION.hold_key, 5, "2026-11-27T10:00:00Z")
    ]
    manifests = {}
    for snapshot_id, created, extra in specs:
        manifest = good_manifest(snapshot_id, created) if created else None
        if manifest:
            manifests[snapshot_id] = manifest.to_bytes()
        listing += snapshot_objects(
            snapshot_id, manifest, created or "2026-11-01T00:00:00Z", extra
        )
    snapshots = catalog.group(listing, LOCATION)
    for snapshot in snapshots.values():
        catalog.classify(
            snapshot, manifests.get(snapshot.snapshot_id), "shard-1", NOW, 300
        )
    return snapshots


def test_classification_reasons_and_recovery_point() -> None:
    snapshots = build(
        [
            ("old", "2026-11-20T10:00:00Z", ()),
            ("newer", "2026-11-27T09:00:00Z", ()),
            ("broken", "2026-11-27T10:00:00Z", (layout.QUARANTINE_MARKER,)),
            ("future", "2026-11-27T13:00:00Z", ()),
            ("partial", "", ()),
        ]
    )
    status = {k: v.status for k, v in snapshots.items()}
    assert status == {
        "old": "verified",
        "newer": "verified",
        "broken": "quarantined",
        "future": "future",
        "partial": "incomplete",
    }
    assert "in the future" in snapshots["future"].reason
    point = catalog.recovery_point(snapshots.values(), NOW)
    assert point == {
        "snapshot_id": "newer",
        "created": "2026-11-27T09:00:00Z",
        "age_seconds": 3 * 3600,
    }
    assert [s.snapshot_id for s in catalog.verified(snapshots.values())] == [
        "newer",
        "old",
    ]


def test_archive_size_mismatch_and_missing_archive_are_invalid() -> None:
    manifest = good_manifest("s1")
    listing = [
        ObjectInfo(LOCATION.key("s1", layout.ARCHIVE), 3, "2026-11-27T10:00:00Z"),
        ObjectInfo(LOCATION.key("s1", layout.MANIFEST), 100, "2026-11-27T10:00:00Z"),
        ObjectInfo(LOCATION.key("s2", layout.MANIFEST), 100, "2026-11-27T10:00:00Z"),
    ]
    snapshots = catalog.group(listing, LOCATION)
    catalog.classify(snapshots["s1"], manifest.to_bytes(), "shard-1", NOW, 300)
    catalog.classify(
        snapshots["s2"], good_manifest("s2").to_bytes(), "shard-1", NOW, 300
    )
    assert "has 3 bytes, the manifest says 10" in snapshots["s1"].reason
    assert "data.tar.zst does not" in snapshots["s2"].reason


def days_ago(days: float) -> str:
    return timestamp(NOW - timedelta(days=days))


def test_retention_is_measured_from_the_newest_verified_snapshot() -> None:
    # Snapshots stopped 30 days ago: measured from the clock all would expire; from the newest verified, few do.
    snapshots = build(
        [
            ("d30", days_ago(30), ()),
            ("d35", days_ago(35), ()),
            ("d40", days_ago(40), ()),
            ("d50", days_ago(50), ()),
            ("d60", days_ago(60), ()),
        ]
    )
    plan = catalog.retention_plan(
        snapshots.values(), retention_days=14, keep_verified=2
    )
    assert [s.snapshot_id for s in plan.delete] == ["d50", "d60"]
    assert (
        dict((s.snapshot_id, why) for s, why in plan.keep)["d40"] == "within retention"
    )


def test_retention_keeps_the_minimum_of_verified_and_evidence() -> None:
    snapshots = build(
        [
            ("v1", days_ago(1), ()),
            ("q", days_ago(40), (layout.QUARANTINE_MARKER,)),
            ("v60", days_ago(60), ()),
            ("v70", days_ago(70), ()),
            ("old-partial", "", ()),
            ("future", timestamp(NOW + timedelta(days=2)), ()),
        ]
    )
    plan = catalog.retention_plan(snapshots.values(), retention_days=7, keep_verified=3)
    assert [s.snapshot_id for s in plan.delete] == ["old-partial"]
    kept = {s.snapshot_id: why for s, why in plan.keep}
    assert (
        "newest verified" in kept["v70"]
        and "evidence" in kept["q"]
        and "future" in kept["future"]
    )
    assert catalog.deletion_order(snapshots["v60"]) == ["manifest.json", "data.tar.zst"]


def test_nothing_is_pruned_without_a_verified_snapshot() -> None:
    snapshots = build(
        [("partial", "", ()), ("q", days_ago(90), (layout.QUARANTINE_MARKER,))]
    )
    plan = catalog.retention_plan(snapshots.values(), retention_days=7, keep_verified=1)
    assert plan.delete == [] and plan.anchor is None


def test_layout_splits_only_this_shards_snapshot_keys() -> None:
    assert LOCATION.split("snapshots/shard-1/s1/manifest.json") == (
        "s1",
        "manifest.json",
    )
    assert LOCATION.split("snapshots/shard-1/HOLD") is None
    assert LOCATION.split("snapshots/shard-10/s1/manifest.json") is None
    assert LOCATION.split("snapshots/shard-1/s1/x/y") is None
    assert layout.valid_name(layout.new_snapshot_id(NOW)) and layout.new_snapshot_id(
        NOW
    ).startswith("20261127T1200")
