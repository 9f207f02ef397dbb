"""Snapshots end to end: real ansible-playbook runs against SeaweedFS, with an HTTP fault proxy in front of it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import BIN, ROOT, Runner, task

from ragops_lab.faultproxy import FaultProxy, Rule
from ragops_lab.s3 import S3Endpoint, SeaweedFS
from ragops_lab.services import stop_daemon


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    state = tmp_path_factory.mktemp("seaweedfs")
    weed = SeaweedFS(state, state / "weed.pid", state / "weed.log")
    try:
        yield weed.wait_until_ready(weed.start(owner=state), state)
    finally:
        stop_daemon(weed.pid_file, state, 20)
        weed.cleanup_sockets()


@pytest.fixture
def proxy(s3: S3Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3.url) as running:
        yield running


class Shard:
    """One test's shard: its S3 settings (through the proxy), a prefix of its own and a data directory."""

    def __init__(self, s3: S3Endpoint, proxy: FaultProxy, runner: Runner, root: Path) -> None:
        self.s3, self.proxy, self.runner, self.root = s3, proxy, runner, root
        self.prefix = "e2e-" + uuid.uuid4().hex[:8]
        self.data = make_shard_data(root / "data")
        self.client = s3.client()

    def auth(self, **extra: t.Any) -> dict[str, t.Any]:
        return dict({"endpoint_url": self.proxy.url, "access_key": self.s3.access_key,
                     "secret_key": self.s3.secret_key, "kubeconfig": str(self.runner.cluster.kubeconfig)}, **extra)

    def args(self, **extra: t.Any) -> dict[str, t.Any]:
        return dict({"shard": "shard-2", "bucket": self.s3.bucket, "prefix": self.prefix}, **extra)

    def play(self, tasks: list[dict[str, t.Any]], **kwargs: t.Any) -> dict[str, t.Any]:
        done = self.runner.play(tasks, auth=self.auth(), **kwargs)
        assert self.s3.secret_key not in done.stdout
        assert self.s3.secret_key not in json.dumps(done.results)
        return done.results

    def key(self, snapshot_id: str, name: str) -> str:
        return "%s/shard-2/%s/%s" % (self.prefix, snapshot_id, name)

    def get(self, key: str) -> bytes:
        return t.cast(bytes, self.client.get_object(Bucket=self.s3.bucket, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.s3.bucket, Key=key, Body=data)

    def listing(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.s3.bucket, Prefix=self.prefix + "/")
        return sorted(item["Key"] for item in answer.get("Contents") or [])

    def create(self, snapshot_id: str, path: Path | None = None) -> dict[str, t.Any]:
        results = self.play([task("create", "snapshot_create", **self.args(path=str(path or self.data),
                                                                            snapshot_id=snapshot_id))])
        assert results["create"]["changed"] is True, results
        return t.cast(t.Dict[str, t.Any], results["create"])

    def create_many(self, snapshots: dict[str, Path]) -> None:
        """Several snapshots in one playbook run."""
        results = self.play([task("create " + snapshot_id, "snapshot_create",
                                  **self.args(path=str(path), snapshot_id=snapshot_id))
                             for snapshot_id, path in snapshots.items()])
        assert all(results["create " + snapshot_id]["changed"] for snapshot_id in snapshots), results

    def restore(self, dest: Path, **extra: t.Any) -> dict[str, t.Any]:
        results = self.play([task("restore", "snapshot_restore", **self.args(dest=str(dest), **extra))])
        return t.cast(t.Dict[str, t.Any], results["restore"])


def make_shard_data(root: Path, seed: int = 0, files: int = 40) -> Path:
    """Index-like data: segments of mixed compressibility in nested directories, plus metadata."""
    import random

    generator = random.Random(seed)
    for number in range(files):
        directory = root / "index" / ("segments-%d" % (number % 3))
        directory.mkdir(parents=True, exist_ok=True)
        size = generator.choice([0, 100, 5_000, 60_000, 400_000])
        noise = generator.randbytes(size // 2)
        (directory / ("seg-%04d.bin" % number)).write_bytes(noise + bytes(size - len(noise)))
    (root / "index" / "meta.json").write_text(json.dumps({"seed": seed, "files": files}))
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".ragops-restore.json"}


@pytest.fixture
def shard(s3: S3Endpoint, proxy: FaultProxy, runner: Runner, tmp_path: Path) -> Shard:
    return Shard(s3, proxy, runner, tmp_path)


def test_create_info_restore_check_apply_rerun(shard: Shard, tmp_path: Path) -> None:
    planned = shard.play([task("create", "snapshot_create", **shard.args(path=str(shard.data)))], check=True)
    assert planned["create"]["changed"] is True and planned["create"]["snapshot"]["files"] == 41
    assert shard.listing() == []
    created = shard.create("s-1")
    assert [k.rsplit("/", 1)[1] for k in shard.listing()] == ["SHA256SUMS", "data.tar.zst", "manifest.json"]
    again = shard.play([task("create", "snapshot_create", **shard.args(path=str(shard.data), snapshot_id="s-1"))])
    assert again["create"]["changed"] is False

    info = shard.play([task("info", "snapshot_info", **shard.args())], check=True)["info"]
    assert info["recovery_point"]["snapshot_id"] == "s-1" and info["unverified"] == [] and info["hold"] is None

    dest = tmp_path / "restored" / "shard-2"
    dest.parent.mkdir()
    checked = shard.play([task("restore", "snapshot_restore", **shard.args(dest=str(dest)))], check=True,
                         diff=True)["restore"]
    assert checked["changed"] is True and not dest.exists()
    restored = shard.restore(dest)
    assert restored["changed"] is True and restored["restore"]["files"] == created["snapshot"]["files"]
    assert tree(dest) == tree(shard.data)
    assert shard.restore(dest)["changed"] is False


DOC = ROOT / "docs" / "snapshots.md"
HAND_TOOLS = ("s5cmd", "zstd", "tar", "sha256sum")


def documented_commands() -> list[str]:
    """The commands of docs/snapshots.md's "Restore by hand", in order, as a reader would type them."""
    section = DOC.read_text().split("## Restore by hand", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def modes(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (oct(p.stat().st_mode & 0o7777), int(p.stat().st_mtime) if p.is_file() else 0)
            for p in sorted(root.rglob("*")) if p.name != ".ragops-restore.json"}


@pytest.mark.skipif(any(shutil.which(tool, path="%s:%s" % (BIN, os.environ.get("PATH", ""))) is None
                        for tool in HAND_TOOLS), reason="s5cmd, zstd, tar or sha256sum is not installed")
def test_the_documented_restore_by_hand_checks_before_it_extracts_and_matches_the_collection(
        shard: Shard, tmp_path: Path) -> None:
    (shard.data / "index" / "tool").write_bytes(b"#!/bin/sh\n")
    (shard.data / "index" / "tool").chmod(0o4755)
    (shard.data / "index" / "segments-0").chmod(0o3775)
    shard.create("s-1")
    commands = documented_commands()
    assert commands[0].startswith("S=s3://") and commands[1].startswith("E=https://")
    commands[0] = "S=s3://%s/%s/shard-2/s-1" % (shard.s3.bucket, shard.prefix)
    commands[1] = "E=%s" % shard.s3.url
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")), AWS_ACCESS_KEY_ID=shard.s3.access_key,
               AWS_SECRET_ACCESS_KEY=shard.s3.secret_key, AWS_REGION=shard.s3.region)
    work = tmp_path / "by-hand"
    work.mkdir()
    script = "set -eo pipefail\n" + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "data.tar.zst: OK" in lines and "all files verified" in lines
    counts = [line for line in lines if re.fullmatch(r"\d+ \d+", line.strip())]
    assert len(counts) == 2 and counts[0].split() == counts[1].split() == ["42", "4"], lines
    by_hand = work / "restored"
    assert tree(by_hand) == tree(shard.data)
    restored = tmp_path / "collection"
    assert shard.restore(restored)["changed"] is True
    assert modes(by_hand) == modes(restored)
    assert modes(restored)["index/tool"][0] == "0o755" and modes(restored)["index/segments-0"][0] == "0o775"

    # A damaged archive stops the documented commands before anything is extracted.
    corrupt(shard, shard.key("s-1", "data.tar.zst"))
    again = tmp_path / "damaged"
    again.mkdir()
    done = subprocess.run(["bash", "-c", script], cwd=again, env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode != 0 and "data.tar.zst: FAILED" in done.stdout
    assert not (again / "restored").exists()


@pytest.mark.parametrize("rule", [
    Rule("status", ranged=True, times=2),
    Rule("flip", ranged=True, offset=4321),
    Rule("truncate", ranged=True, offset=1000),
    Rule("stall", ranged=True, offset=1000, stall_seconds=20),
], ids=["slowdown-503", "flipped-bits", "truncated-body", "stalled-connection"])
def test_faults_in_transit_are_retried_and_the_restore_is_exact(shard: Shard, tmp_path: Path, rule: Rule) -> None:
    shard.create("s-1")
    shard.proxy.add(rule)
    result = shard.restore(tmp_path / "dest", s3_read_timeout=2)
    assert result["changed"] is True and not result.get("failed"), result
    assert rule.applied == rule.times and result["quarantined"] == []
    assert result["restore"]["refetched_parts"] == rule.times
    assert tree(tmp_path / "dest") == tree(shard.data)


def corrupt(shard: Shard, key: str) -> None:
    data = bytearray(shard.get(key))
    data[len(data) // 3] ^= 0x01
    shard.put(key, bytes(data))


def test_a_corrupt_newest_snapshot_is_quarantined_and_the_older_one_restored(shard: Shard, tmp_path: Path) -> None:
    shard.create_many({"s-1": shard.data, "s-2": make_shard_data(tmp_path / "newer", seed=1)})
    corrupt(shard, shard.key("s-2", "data.tar.zst"))
    dest = tmp_path / "dest"
    result = shard.restore(dest, incident_id="INC-42", s3_attempts=2)
    assert [a["outcome"] for a in result["tried"]] == ["failed verification", "restored"]
    assert result["quarantined"] == ["s-2"] and result["snapshot"]["snapshot_id"] == "s-1"
    assert tree(dest) == tree(shard.data)
    marker = json.loads(shard.get(shard.key("s-2", "QUARANTINED")))
    assert marker["incident_id"] == "INC-42"
    assert shard.key("s-2", "data.tar.zst") in shard.listing()
    info = shard.play([task("info", "snapshot_info", **shard.args())])["info"]
    assert info["unverified"][0]["status"] == "quarantined" and info["recovery_point"]["snapshot_id"] == "s-1"


def test_missing_malformed_and_future_manifests_are_skipped(shard: Shard, tmp_path: Path) -> None:
    shard.create_many({"s-1": shard.data, **{snapshot_id: make_shard_data(tmp_path / snapshot_id, seed=number)
                                             for number, snapshot_id in enumerate(("s-2", "s-3", "s-4"))}})
    shard.client.delete_object(Bucket=shard.s3.bucket, Key=shard.key("s-2", "manifest.json"))
    shard.put(shard.key("s-3", "manifest.json"), b'{"format": "ragops-snapshot/1", "files": [')
    future = json.loads(shard.get(shard.key("s-4", "manifest.json")))
    future["created"] = "2099-01-01T00:00:00Z"
    shard.put(shard.key("s-4", "manifest.json"), json.dumps(future).encode())
    info = shard.play([task("info", "snapshot_info", **shard.args())])["info"]
    reasons = {item["snapshot_id"]: item["status"] for item in info["unverified"]}
    assert reasons == {"s-2": "incomplete", "s-3": "invalid", "s-4": "future"}
    result = shard.restore(tmp_path / "dest")
    assert result["snapshot"]["snapshot_id"] == "s-1" and tree(tmp_path / "dest") == tree(shard.data)


def test_s3_that_stays_down_fails_clearly_and_leaves_the_target(shard: Shard, tmp_path: Path) -> None:
    shard.create("s-1")
    dest = make_shard_data(tmp_path / "dest", seed=7, files=3)
    before = tree(dest)
    shard.proxy.add(Rule("status", ranged=True, times=1000))
    result = shard.restore(dest, s3_attempts=2)
    assert result["msg"].startswith("Failed to read") and "SlowDown" in result["msg"] and "restore" not in result
    assert result["target_unchanged"] is True
    assert result["next_step"] and tree(dest) == before
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)],
                             capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_fails_clearly_and_leaves_the_target(shard: Shard, tmp_path: Path) -> None:
    small = make_shard_data(tmp_path / "small", seed=3, files=1)
    for number in range(400):  # 400 files of 100 bytes need 400 blocks: more than the disk has
        (small / ("doc-%03d.json" % number)).write_bytes(b"x" * 100)
    shard.create("s-1", small)
    with tmpfs(tmp_path / "disk", "800k") as mounted:
        if not mounted:
            pytest.skip("tmpfs cannot be mounted here")
        dest = tmp_path / "disk" / "shard-2"
        dest.mkdir()
        (dest / "old.seg").write_bytes(b"old data")
        result = shard.restore(dest)
        assert "no space left on device" in result["msg"] and "restore" not in result, result
        assert tree(dest) == {"old.seg": b"old data"}
        assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["shard-2"]


def test_prune_lists_in_check_mode_and_never_prunes_under_a_hold(shard: Shard, tmp_path: Path) -> None:
    shard.create_many({"s-%d" % number: shard.data for number in range(4)})
    for number, created in enumerate(["2026-09-01", "2026-10-01", "2026-11-20", "2026-11-25"]):
        key = shard.key("s-%d" % number, "manifest.json")
        manifest = json.loads(shard.get(key))
        manifest["created"] = created + "T00:00:00Z"
        shard.put(key, json.dumps(manifest).encode())
    shard.put(shard.prefix + "/shard-2/s-0/notes.txt", b"not ours")
    prune = task("prune", "snapshot_prune", **shard.args(retention_days=14, keep_verified=2))
    before = shard.listing()
    planned = shard.play([prune], check=True)["prune"]
    assert [p["snapshot_id"] for p in planned["pruned"]] == ["s-1", "s-0"] and shard.listing() == before
    held = shard.play([task("hold", "snapshot_prune", **shard.args(hold="set", incident_id="INC-9")), prune])
    assert held["hold"]["changed"] is True and held["prune"]["changed"] is False
    assert shard.listing() == sorted([*before, shard.prefix + "/shard-2/HOLD"])
    done = shard.play([task("release", "snapshot_prune", **shard.args(hold="release")), prune])
    assert done["release"]["changed"] is True and done["prune"]["changed"] is True
    after = shard.listing()
    assert shard.prefix + "/shard-2/HOLD" not in after
    assert sorted(set(before) - set(after)) == sorted(done["prune"]["deleted_keys"])
    assert shard.prefix + "/shard-2/s-0/notes.txt" in after
    assert [k for k in after if "/s-2/" in k or "/s-3/" in k] == [k for k in before if "/s-2/" in k or "/s-3/" in k]
    assert shard.play([prune])["prune"]["changed"] is False
