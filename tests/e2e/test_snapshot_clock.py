"""The controller's clock far ahead or behind: real ansible-playbook runs under libfaketime (the
library PyPI's libfaketime ships, preloaded into ansible-playbook and so into its modules) against
SeaweedFS.  Retention and the recovery-point check refuse to act on a clock the S3 store contradicts;
nothing is deleted."""

from __future__ import annotations

import json
import os
import typing as t
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import test_snapshots
from harness import Cluster, Runner, task
from nothing_lost_s3 import assert_nothing_half_written
from test_snapshots import Shard

from ragops_lab.faultproxy import FaultProxy
from ragops_lab.s3 import S3Endpoint

s3 = test_snapshots.s3  # the fixture: SeaweedFS for the module

libfaketime = pytest.importorskip("libfaketime", reason="libfaketime (requirements-test.txt) is not installed")


@pytest.fixture
def proxy(s3: S3Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3.url) as running:
        yield running


def faked(offset: str) -> dict[str, str]:
    """The environment that runs a process (and its children) ``offset`` (``+10m``, ``-730d``) off the
    real clock; the monotonic clock is left alone, so timeouts still hold."""
    needed, env = libfaketime.get_reload_information()
    assert needed, "libfaketime does not need a preload here"
    return dict(env, FAKETIME=offset, DONT_FAKE_MONOTONIC="1")


def shard_at(s3: S3Endpoint, proxy: FaultProxy, tmp_path: Path, offset: str | None) -> Shard:
    runner = Runner(Cluster(server=None, kubeconfig=tmp_path / "no-kubeconfig", token=""), tmp_path)
    if offset:
        runner.env.update(faked(offset))
    return Shard(s3, proxy, runner, tmp_path)


def seed(shard: Shard) -> list[str]:
    """Four snapshots created a month apart (the newest now), as months of nightly runs leave."""
    shard.create_many({"s-%d" % number: shard.data for number in range(4)})
    now = datetime.now(timezone.utc)
    for number, days in enumerate([90, 60, 30, 0]):
        key = shard.key("s-%d" % number, "manifest.json")
        manifest = json.loads(shard.get(key))
        manifest["created"] = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        shard.put(key, json.dumps(manifest).encode())
    return shard.listing()


PRUNE = {"retention_days": 7, "keep_verified": 1}


def names_the_clock(result: dict[str, t.Any]) -> bool:
    text = " ".join(str(result.get(key) or "") for key in ("msg", "next_step"))
    return result.get("failed") is True and "clock" in text


def prune_and_info_off_by(s3: S3Endpoint, proxy: FaultProxy, tmp_path: Path,
                          offset: str) -> tuple[Shard, list[str], dict[str, t.Any]]:
    """A shard seeded on the real clock, its listing, and the results of snapshot_prune and
    snapshot_info run on a clock ``offset`` off."""
    honest = shard_at(s3, proxy, tmp_path / "honest", None)
    before = seed(honest)
    skewed = shard_at(s3, proxy, tmp_path / "skewed", offset)
    skewed.prefix = honest.prefix
    results = skewed.play([task("prune", "snapshot_prune", **skewed.args(**PRUNE)),
                           task("info", "snapshot_info", **skewed.args())])
    return honest, before, results


@pytest.mark.parametrize("offset", ["+10m", "-10m"])
def test_a_clock_minutes_off_the_stores_is_refused_by_prune_and_the_recovery_point(
        s3: S3Endpoint, proxy: FaultProxy, tmp_path: Path, offset: str) -> None:
    honest, before, results = prune_and_info_off_by(s3, proxy, tmp_path, offset)
    for name, action in (("prune", "prune the snapshots"), ("info", "read the recovery point")):
        result = results[name]
        assert names_the_clock(result) and result["reason"] == "implausible clock", result
        assert result["msg"].startswith("Refusing to %s of shard shard-2: this host's clock" % action)
        assert ("ahead of" if offset.startswith("+") else "behind") in result["msg"]
        assert 540 <= abs(result["clock_offset"]) <= 660
    assert honest.listing() == before
    # The same run on an honest clock prunes what retention plans.
    done = honest.play([task("prune", "snapshot_prune", **honest.args(**PRUNE))])["prune"]
    assert done["changed"] is True and done["deleted_keys"], done
    assert_nothing_half_written(honest.client, s3.bucket, honest.prefix + "/")


@pytest.mark.parametrize("offset", ["+730d", "-730d"])
def test_a_clock_years_off_deletes_nothing_and_names_the_clock(
        s3: S3Endpoint, proxy: FaultProxy, tmp_path: Path, offset: str) -> None:
    honest, before, results = prune_and_info_off_by(s3, proxy, tmp_path, offset)
    # Refused by the collection's own rule, or earlier by the store (RequestTimeTooSkewed): either way
    # the task fails saying the clock is the cause.
    assert names_the_clock(results["prune"]) and names_the_clock(results["info"]), results
    assert "recovery_point" not in results["info"]
    assert honest.listing() == before
    assert_nothing_half_written(honest.client, s3.bucket, honest.prefix + "/")


def test_faketime_reaches_the_modules(tmp_path: Path) -> None:
    """The preload is inherited by ansible-playbook's module processes (a check of the mechanism)."""
    runner = Runner(Cluster(server=None, kubeconfig=tmp_path / "none", token=""), tmp_path)
    runner.env.update(faked("+730d"))
    playbook = tmp_path / "date.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        "    - ansible.builtin.command: date -u +%Y\n      register: year\n"
                        "    - ansible.builtin.debug:\n        msg: 'YEAR={{ year.stdout }}'\n")
    done = runner.run(playbook)
    real = int(os.popen("date -u +%Y").read())
    assert "YEAR=%d" % (real + 2) in done.stdout or "YEAR=%d" % (real + 1) in done.stdout, done.stdout
