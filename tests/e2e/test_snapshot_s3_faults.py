"""Faults between the collection and S3, injected by the fault proxy into real ansible-playbook runs of
the snapshot modules against SeaweedFS: a part that never arrives whole, throttling with Retry-After,
credentials that expire mid-transfer, a store that refuses checksum headers.  After each run the bucket
holds no half-written object under a final name."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_snapshots
from harness import Cluster, Runner, task
from nothing_lost_s3 import assert_nothing_half_written
from test_snapshots import Shard, make_shard_data, tree

from ragops_lab.faultproxy import ANY_METHOD, FaultProxy, Rule, error_body
from ragops_lab.s3 import S3Endpoint

s3 = test_snapshots.s3  # the fixture: SeaweedFS for the module

MIB = 1024 * 1024
TOO_MANY_REQUESTS = error_body("TooManyRequests", "Please reduce your request rate.")
EXPIRED = error_body("ExpiredToken", "The provided token has expired.")
MD5_REFUSED = error_body("InvalidArgument", "Unsupported header 'Content-MD5' received for this API call.")
CHECKSUM_REFUSED = error_body("InvalidArgument", "Unsupported header 'x-amz-checksum-crc32' received.")


@pytest.fixture
def proxy(s3: S3Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3.url) as running:
        yield running


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    """Local-mode snapshot runs need S3 only: no control plane is started for them."""
    return Runner(Cluster(server=None, kubeconfig=tmp_path / "no-kubeconfig", token=""), tmp_path)


@pytest.fixture
def shard(s3: S3Endpoint, proxy: FaultProxy, runner: Runner, tmp_path: Path) -> Shard:
    return Shard(s3, proxy, runner, tmp_path)


def big_shard_data(root: Path, megabytes: int) -> Path:
    """Incompressible data over several 8 MiB parts, so that a fault can land mid-transfer."""
    generator = random.Random(megabytes)
    (root / "index").mkdir(parents=True)
    for number in range(megabytes):
        (root / "index" / ("seg-%03d.bin" % number)).write_bytes(generator.randbytes(MIB))
    return root


def target(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A restore target holding data of its own, and that data."""
    dest = make_shard_data(tmp_path / "dest", seed=7, files=3)
    return dest, tree(dest)


def no_staging(tmp_path: Path) -> bool:
    return not [p for p in tmp_path.iterdir() if "staging" in p.name]


def assert_nothing_lost(shard: Shard) -> None:
    assert_nothing_half_written(shard.client, shard.s3.bucket, shard.prefix + "/")


def test_a_part_truncated_on_every_attempt_fails_naming_the_part(shard: Shard, tmp_path: Path) -> None:
    shard.create("s-1", big_shard_data(tmp_path / "big", 12))
    dest, before = target(tmp_path)
    rule = shard.proxy.add(Rule("truncate", ranged=True, times=1000, offset=1000))
    result = shard.restore(dest, s3_attempts=3, s3_read_timeout=5)
    assert result.get("failed") and "restore" not in result, result
    assert result["msg"].startswith("Failed to read part 1 (bytes 0-8388607) of s3://"), result["msg"]
    assert any(why in result["reason"] for why in ("IncompleteRead", "short read")), result["reason"]
    assert result["attempts"] == 3 and rule.applied >= 3
    assert "Part 1 never arrived whole" in result["next_step"] and "target was left unchanged" in result["next_step"]
    assert result["target_unchanged"] is True and tree(dest) == before and no_staging(tmp_path)
    assert_nothing_lost(shard)


def waits_after(proxy: FaultProxy, action: str) -> list[float]:
    """For each request that met ``action``: the seconds until the next request of the same path."""
    seen = list(proxy.requests)
    waits = []
    for index, (arrived, _, path, met) in enumerate(seen):
        if met == action:
            later = [when for when, _, other, _ in seen[index + 1:] if other == path]
            waits.append(later[0] - arrived if later else float("inf"))
    return waits


def test_throttling_with_429_honours_retry_after_then_is_exact(shard: Shard, tmp_path: Path) -> None:
    throttled = Rule("status", method="PUT", key_suffix="manifest.json", status=429, body=TOO_MANY_REQUESTS,
                     headers=(("Retry-After", "2"),))
    shard.proxy.add(throttled)
    created = shard.create("s-1")
    assert created["changed"] is True and throttled.applied == 1
    reading = Rule("status", ranged=True, times=2, status=429, body=TOO_MANY_REQUESTS, headers=(("Retry-After", "2"),))
    shard.proxy.add(reading)
    result = shard.restore(tmp_path / "dest", s3_attempts=4)
    assert result["changed"] is True and not result.get("failed"), result
    assert reading.applied == 2 and tree(tmp_path / "dest") == tree(shard.data)
    # Each repeat came at least the 2 seconds the store asked for, and not much later.
    waits = waits_after(shard.proxy, "status")
    assert len(waits) == 3 and all(2.0 <= wait < 6.0 for wait in waits), waits
    assert_nothing_lost(shard)


def test_credentials_expiring_mid_upload_fail_naming_them_and_publish_nothing(shard: Shard, tmp_path: Path) -> None:
    data = big_shard_data(tmp_path / "big", 20)
    shard.create("s-1", data)
    requests = len(shard.proxy.requests)
    shard.proxy.requests.clear()
    expired = shard.proxy.add(Rule("status", method=ANY_METHOD, after=requests // 2, times=10_000, status=403,
                                   body=EXPIRED))
    results = shard.play([task("create", "snapshot_create", **shard.args(path=str(data), snapshot_id="s-2"))])
    failed = results["create"]
    assert failed.get("failed") and expired.applied >= 1, failed
    assert "ExpiredToken" in failed["msg"] and failed["status"] == 403
    assert "credentials" in failed["next_step"] and "expired" in failed["next_step"]
    assert "No snapshot was published" in failed["next_step"]
    assert shard.key("s-2", "manifest.json") not in shard.listing()
    assert_nothing_lost(shard)


def test_credentials_expiring_mid_restore_fail_naming_them_and_leave_the_target(
        shard: Shard, tmp_path: Path) -> None:
    shard.create("s-1", big_shard_data(tmp_path / "big", 20))
    dest, before = target(tmp_path)
    shard.proxy.requests.clear()
    assert shard.restore(tmp_path / "clean")["changed"] is True
    ranged = [entry for entry in shard.proxy.requests if entry[1] == "GET" and "data.tar.zst" in entry[2]]
    shard.proxy.add(Rule("status", method=ANY_METHOD, after=len(shard.proxy.requests) - len(ranged) + 1,
                         times=10_000, status=403, body=EXPIRED))
    shard.proxy.requests.clear()
    result = shard.restore(dest)
    assert result.get("failed") and "ExpiredToken" in result["msg"] and result["status"] == 403, result
    assert "credentials" in result["next_step"] and "target was left unchanged" in result["next_step"]
    assert result["target_unchanged"] is True and tree(dest) == before and no_staging(tmp_path)
    assert_nothing_lost(shard)


def test_a_store_that_refuses_content_md5_is_written_without_it_and_read_back_exact(
        shard: Shard, tmp_path: Path) -> None:
    refused = shard.proxy.add(Rule("status", method="PUT", header="Content-MD5", times=10_000, status=400,
                                   body=MD5_REFUSED))
    checksums = shard.proxy.add(Rule("status", method=ANY_METHOD, header="x-amz-checksum-", times=10_000,
                                     status=400, body=CHECKSUM_REFUSED))
    data = big_shard_data(tmp_path / "big", 10)
    created = shard.create("s-1", data)
    # Every body's SHA-256 is signed, which the store checks: neither header is ever sent.
    assert created["changed"] is True and refused.applied == 0 and checksums.applied == 0, created
    result = shard.restore(tmp_path / "dest")
    assert result["changed"] is True and tree(tmp_path / "dest") == tree(data)
    assert checksums.applied == 0
    assert_nothing_lost(shard)


def test_a_bad_digest_answer_fails_the_create_and_publishes_nothing(shard: Shard, tmp_path: Path) -> None:
    bad_digest = error_body("BadDigest", "The Content-MD5 you specified did not match what we received.")
    shard.proxy.add(Rule("status", method="PUT", times=10_000, status=400, body=bad_digest))
    results = shard.play([task("create", "snapshot_create", **shard.args(path=str(shard.data), snapshot_id="s-1"))])
    assert results["create"].get("failed") and "BadDigest" in results["create"]["msg"], results
    assert shard.listing() == [] or shard.key("s-1", "manifest.json") not in shard.listing()
    assert_nothing_lost(shard)
