# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-module tests of the snapshot modules through main(), over an in-memory S3."""

from __future__ import annotations

import functools
import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import layout
from ansible_collections.ragops.recovery.plugins.modules import (
    snapshot_create,
    snapshot_info,
    snapshot_prune,
    snapshot_restore,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    make_tree,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
BASE = {
    "shard": "shard-1",
    "bucket": "snaps",
    "endpoint_url": "http://127.0.0.1:1",
    "access_key": "AKIDTEST",
    "secret_key": SECRET,
}
run = functools.partial(run_main, hidden=[SECRET], **BASE)


@pytest.fixture
def fake(s3_api: FakeS3) -> FakeS3:
    return s3_api


def test_create_check_mode_uploads_nothing_then_creates(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_tree(tmp_path / "data", files=3)
    planned = run(snapshot_create, capsys, path=str(source), _ansible_check_mode=True)
    assert (
        planned["changed"] is True
        and planned["snapshot"]["files"] == 5
        and fake.objects == {}
    )
    created = run(snapshot_create, capsys, path=str(source), snapshot_id="s1")
    assert created["changed"] is True and created["snapshot"]["snapshot_id"] == "s1"
    assert created["snapshot"]["url"] == "s3://snaps/snapshots/shard-1/s1/"
    again = run(snapshot_create, capsys, path=str(source), snapshot_id="s1")
    assert again["changed"] is False and again["snapshot"]["status"] == "verified"


def test_create_reports_a_missing_directory(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(snapshot_create, capsys, path=str(tmp_path / "nope"))
    assert result["failed"] is True and result["msg"].startswith("Failed to snapshot")
    assert "next_step" in result


def test_info_reports_recovery_point_skips_and_query(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_tree(tmp_path / "data", files=2)
    run(snapshot_create, capsys, path=str(source), snapshot_id="s1")
    fake.objects["snapshots/shard-1/s2/data.tar.zst"] = b"partial"
    info = run(snapshot_info, capsys, _ansible_check_mode=True)
    assert info["changed"] is False and info["recovery_point"]["snapshot_id"] == "s1"
    assert info["unverified"] == [
        {
            "snapshot_id": "s2",
            "status": "incomplete",
            "reason": "no manifest.json (upload unfinished or failed)",
        }
    ]
    queried = run(snapshot_info, capsys, query="[?verified].snapshot_id")
    assert queried["snapshots"] == ["s1"]
    bad = run(snapshot_info, capsys, query="length(@)")
    assert bad["failed"] is True and "must return a list" in bad["msg"]


def test_restore_check_diff_apply_rerun(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_tree(tmp_path / "data", files=2)
    run(snapshot_create, capsys, path=str(source), snapshot_id="s1")
    dest = tmp_path / "restored"
    planned = run(
        snapshot_restore,
        capsys,
        dest=str(dest),
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert planned["changed"] is True and not dest.exists()
    assert planned["diff"] == {
        "before": {"snapshot_id": None},
        "after": {"snapshot_id": "s1"},
    }
    applied = run(snapshot_restore, capsys, dest=str(dest))
    assert applied["changed"] is True and applied["restore"]["files"] == 4
    assert (dest / "index" / "meta.json").read_text() == (
        source / "index" / "meta.json"
    ).read_text()
    again = run(snapshot_restore, capsys, dest=str(dest))
    assert again["changed"] is False and "restore" not in again


def test_restore_with_no_snapshot_fails_with_next_step(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(snapshot_restore, capsys, dest=str(tmp_path / "d"))
    assert result["failed"] is True and "no verified snapshot" in result["msg"]
    assert "snapshot_info" in result["next_step"]


def test_restore_of_a_corrupt_named_snapshot_quarantines_it(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        snapshot_create,
        capsys,
        path=str(make_tree(tmp_path / "data", files=2)),
        snapshot_id="s1",
    )
    key = "snapshots/shard-1/s1/data.tar.zst"
    fake.objects[key] = fake.objects[key][:-1] + bytes([fake.objects[key][-1] ^ 1])
    result = run(
        snapshot_restore,
        capsys,
        dest=str(tmp_path / "d"),
        snapshot_id="s1",
        incident_id="INC-3",
        s3_attempts=1,
    )
    assert result["failed"] is True and result["quarantined"] == ["s1"]
    assert result["tried"][0]["outcome"] == "failed verification"
    assert "snapshots/shard-1/s1/" + layout.QUARANTINE_MARKER in fake.objects
    assert not (tmp_path / "d").exists()


def put_snapshot(
    fake: FakeS3,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    snapshot_id: str,
    created: str,
) -> None:
    run(
        snapshot_create,
        capsys,
        path=str(make_tree(tmp_path / snapshot_id, files=1)),
        snapshot_id=snapshot_id,
    )
    key = "snapshots/shard-1/%s/manifest.json" % snapshot_id
    manifest = json.loads(fake.objects[key])
    manifest["created"] = created
    fake.objects[key] = json.dumps(manifest).encode()


def test_prune_check_apply_rerun_and_only_planned_keys(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    for number, created in enumerate(
        [
            "2026-10-01T00:00:00Z",
            "2026-10-20T00:00:00Z",
            "2026-11-20T00:00:00Z",
            "2026-11-25T00:00:00Z",
        ]
    ):
        put_snapshot(fake, tmp_path, capsys, "s%d" % number, created)
    fake.objects["snapshots/shard-1/s0/notes.txt"] = b"someone else's file"
    fake.objects["snapshots/other.txt"] = b"not a snapshot"
    before = dict(fake.objects)
    planned = run(
        snapshot_prune,
        capsys,
        retention_days=14,
        keep_verified=2,
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert planned["changed"] is True and [
        p["snapshot_id"] for p in planned["pruned"]
    ] == ["s1", "s0"]
    assert (
        planned["diff"]["after"]["snapshots"] == ["s2", "s3"] and fake.objects == before
    )
    applied = run(snapshot_prune, capsys, retention_days=14, keep_verified=2)
    assert sorted(set(before) - set(fake.objects)) == sorted(applied["deleted_keys"])
    assert (
        "snapshots/shard-1/s0/notes.txt" in fake.objects
        and "snapshots/other.txt" in fake.objects
    )
    assert applied["deleted_keys"][0].endswith("s1/manifest.json")
    assert (
        run(snapshot_prune, capsys, retention_days=14, keep_verified=2)["changed"]
        is False
    )


def test_prune_never_runs_under_a_hold(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    put_snapshot(fake, tmp_path, capsys, "s0", "2026-01-01T00:00:00Z")
    put_snapshot(fake, tmp_path, capsys, "s1", "2026-11-25T00:00:00Z")
    held = run(
        snapshot_prune, capsys, hold="set", incident_id="INC-5", reason="restore"
    )
    assert held["changed"] is True and held["hold"]["incident_id"] == "INC-5"
    assert (
        run(snapshot_prune, capsys, hold="set", incident_id="INC-5")["changed"] is False
    )
    before = dict(fake.objects)
    result = run(snapshot_prune, capsys, retention_days=7, keep_verified=1)
    assert (
        result["changed"] is False and result["pruned"] == [] and fake.objects == before
    )
    assert "incident hold" in json.dumps(result["warnings"])
    released = run(snapshot_prune, capsys, hold="release")
    assert released["changed"] is True and released["hold"] is None
    assert [
        p["snapshot_id"]
        for p in run(snapshot_prune, capsys, retention_days=7, keep_verified=1)[
            "pruned"
        ]
    ] == ["s0"]


def test_a_hold_set_while_the_prune_runs_stops_it_before_its_next_snapshot(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recovery of the shard sets its hold after the prune read it: the prune reads it
    again before each snapshot it deletes, finishes the one it began and keeps the rest."""
    for snapshot_id, created in (
        ("s0", "2026-01-01T00:00:00Z"),
        ("s1", "2026-01-02T00:00:00Z"),
        ("s2", "2026-11-25T00:00:00Z"),
    ):
        put_snapshot(fake, tmp_path, capsys, snapshot_id, created)
    hold = json.dumps({"incident_id": "INC-7"}).encode()

    def hold_set_meanwhile(operation: str, kwargs: t.Dict[str, t.Any]) -> str:
        fake.objects["snapshots/shard-1/HOLD"] = hold
        return "remove"

    fake.faults.append(("DeleteObject", hold_set_meanwhile))
    result = run(snapshot_prune, capsys, retention_days=7, keep_verified=1)

    # Newest first: s1 was being deleted when the hold was set, s0 is kept.
    assert [p["snapshot_id"] for p in result["pruned"]] == ["s1"]
    assert not [key for key in fake.objects if "/s1/" in key]
    assert {"s0", "s2"} <= {k.split("/")[2] for k in fake.objects if "/s" in k}
    spared = [k for k in result["kept"] if k["snapshot_id"] == "s0"]
    assert spared == [
        {
            "snapshot_id": "s0",
            "status": "verified",
            "reason": "incident hold set while pruning",
        }
    ]
    assert result["hold"]["incident_id"] == "INC-7" and result["changed"] is True
    assert "was set while the prune ran (incident INC-7)" in json.dumps(
        result["warnings"]
    )


def test_info_prune_and_restore_get_past_a_malformed_manifest(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    put_snapshot(fake, tmp_path, capsys, "s0", "2026-11-20T00:00:00Z")
    put_snapshot(fake, tmp_path, capsys, "s1", "2026-11-25T00:00:00Z")
    put_snapshot(fake, tmp_path, capsys, "s2", "0001-01-01T00:00:00+14:00")
    key = "snapshots/shard-1/s1/manifest.json"
    manifest = json.loads(fake.objects[key])
    manifest["files"][0]["mtime"] = "yesterday"
    fake.objects[key] = json.dumps(manifest).encode()
    info = run(snapshot_info, capsys)
    assert "failed" not in info and info["recovery_point"]["snapshot_id"] == "s0"
    reasons = {u["snapshot_id"]: u["reason"] for u in info["unverified"]}
    assert "files[0].mtime is missing or not a int" in reasons["s1"]
    assert "not a time since 1970" in reasons["s2"]
    pruned = run(snapshot_prune, capsys, retention_days=7, keep_verified=1)
    assert "failed" not in pruned and pruned["pruned"] == []
    assert {k["snapshot_id"] for k in pruned["kept"]} == {"s0", "s1", "s2"}
    restored = run(snapshot_restore, capsys, dest=str(tmp_path / "d"))
    assert restored["changed"] is True and restored["snapshot"]["snapshot_id"] == "s0"


def test_create_refuses_a_name_the_restore_would_refuse(
    tmp_path: Path, fake: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_tree(tmp_path / "data", files=2)
    (source / "index" / "segment\n1").write_bytes(b"x")
    for check_mode in (True, False):
        result = run(
            snapshot_create, capsys, path=str(source), _ansible_check_mode=check_mode
        )
        assert result["failed"] is True and "'index/segment\\n1'" in result["msg"]
        assert "control character" in result["msg"] and result["next_step"]
    assert fake.objects == {} and fake.uploads == {}
