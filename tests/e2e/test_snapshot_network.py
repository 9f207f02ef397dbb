"""The network between the controller and S3: bandwidth limits, packet loss, resets and a store that
goes silent.  Each test makes a network namespace joined to this host by a veth pair; ansible-playbook
runs inside the namespace and reaches SeaweedFS through the fault proxy listening on the host's end of
the pair.  Bandwidth is shaped with ``tc`` (tbf); losses and resets are nftables rules in the namespace
(this kernel has no netem).  Every restore is compared byte for byte and checked with ``sha256sum -c``
against the snapshot's SHA256SUMS."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import subprocess
import time
import typing as t
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_snapshots
from harness import Cluster, Runner
from nothing_lost_s3 import assert_nothing_half_written
from test_snapshots import Shard, tree

from ragops_lab.faultproxy import FaultProxy
from ragops_lab.s3 import S3Endpoint

s3 = test_snapshots.s3  # the fixture: SeaweedFS for the module

MIB = 1024 * 1024


def can_make_namespaces() -> str | None:
    """Why this host cannot run the tests (None: it can)."""
    for tool in ("ip", "tc", "nft", "sha256sum"):
        if shutil.which(tool) is None:
            return "%s is not installed (make tools installs nftables)" % tool
    name = "ragops-probe-" + uuid.uuid4().hex[:6]
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return "ip netns add is refused here: %s" % made.stderr.strip()
    subprocess.run(["ip", "netns", "delete", name], check=False)
    return None


WHY_NOT = can_make_namespaces()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def sh(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, "%s: %s" % (" ".join(command), done.stderr)
    return done.stdout


@dataclass
class Link:
    """A namespace and the veth pair to it: ``host_ip`` on this host's end, ``inner_ip`` inside."""

    namespace: str
    host_dev: str
    inner_dev: str
    host_ip: str
    inner_ip: str

    def inside(self, *command: str) -> str:
        return sh("ip", "netns", "exec", self.namespace, *command)

    def nft(self, rule: str) -> None:
        self.inside("nft", "add rule inet ragops_fault input ip saddr %s %s" % (self.host_ip, rule))

    def shape(self, rate: str) -> None:
        """Both directions limited to ``rate`` (``16mbit``)."""
        tbf = ["root", "tbf", "rate", rate, "burst", "64kb", "latency", "200ms"]
        sh("tc", "qdisc", "replace", "dev", self.host_dev, *tbf)
        self.inside("tc", "qdisc", "replace", "dev", self.inner_dev, *tbf)

    def counters(self) -> list[int]:
        """The packets each fault rule has hit, in the order the rules were added."""
        listing = json.loads(self.inside("nft", "-j", "list", "table", "inet", "ragops_fault"))
        return [expr["counter"]["packets"] for item in listing["nftables"] if "rule" in item
                for expr in item["rule"]["expr"] if "counter" in expr]


@contextlib.contextmanager
def made_link() -> Iterator[Link]:
    """A namespace joined to this host by a veth pair, with an empty nftables chain for faults inside;
    removed on the way out."""
    tag = uuid.uuid4().hex[:6]
    subnet = random.randint(1, 250)
    made = Link("ragops-" + tag, "rg%sh" % tag, "rg%sn" % tag, "10.231.%d.1" % subnet, "10.231.%d.2" % subnet)
    sh("ip", "netns", "add", made.namespace)
    try:
        sh("ip", "link", "add", made.host_dev, "type", "veth", "peer", "name", made.inner_dev)
        sh("ip", "link", "set", made.inner_dev, "netns", made.namespace)
        sh("ip", "addr", "add", made.host_ip + "/30", "dev", made.host_dev)
        sh("ip", "link", "set", made.host_dev, "up")
        made.inside("ip", "addr", "add", made.inner_ip + "/30", "dev", made.inner_dev)
        made.inside("ip", "link", "set", made.inner_dev, "up")
        made.inside("ip", "link", "set", "lo", "up")
        made.inside("nft", "add table inet ragops_fault")
        made.inside("nft", "add chain inet ragops_fault input { type filter hook input priority 0 ; }")
        yield made
    finally:
        subprocess.run(["ip", "link", "delete", made.host_dev], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "delete", made.namespace], capture_output=True, check=False)


@pytest.fixture
def link() -> Iterator[Link]:
    with made_link() as made:
        yield made


@dataclass
class NamespacedRunner(Runner):
    """Runs ansible-playbook inside the namespace."""

    namespace: str = ""

    def command(self, playbook: Path, **kwargs: t.Any) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super().command(playbook, **kwargs)]


@pytest.fixture
def shard(s3: S3Endpoint, link: Link, tmp_path: Path) -> Iterator[Shard]:
    with FaultProxy(s3.url, host=link.host_ip) as proxy:
        runner = NamespacedRunner(Cluster(server=None, kubeconfig=tmp_path / "none", token=""), tmp_path,
                                  namespace=link.namespace)
        made = Shard(s3, proxy, runner, tmp_path)
        shutil.rmtree(made.data)
        made.data = random_data(tmp_path / "data", 6)
        yield made


def random_data(root: Path, megabytes: int) -> Path:
    generator = random.Random(megabytes)
    (root / "index").mkdir(parents=True)
    for number in range(megabytes * 4):
        (root / "index" / ("seg-%03d.bin" % number)).write_bytes(generator.randbytes(MIB // 4))
    return root


def exact(shard: Shard, dest: Path, snapshot_id: str) -> None:
    """Byte for byte the source, and ``sha256sum -c`` of the snapshot's SHA256SUMS passes in it."""
    assert tree(dest) == tree(shard.data)
    sums = dest.parent / ("%s.SHA256SUMS" % dest.name)
    sums.write_bytes(shard.get(shard.key(snapshot_id, "SHA256SUMS")))
    done = subprocess.run(["sha256sum", "--strict", "-c", str(sums)], cwd=dest, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stdout.count(": OK") == len(tree(shard.data)), done.stdout + done.stderr
    assert_nothing_half_written(shard.client, shard.s3.bucket, shard.prefix + "/")


def test_bandwidth_limits_slow_the_transfer_smoothly_and_the_restore_is_exact(
        shard: Shard, link: Link, tmp_path: Path) -> None:
    link.shape("64mbit")
    assert shard.create("s-1")["changed"] is True
    rates = {}
    for megabits in (64, 16):
        link.shape("%dmbit" % megabits)
        dest = tmp_path / ("dest-%d" % megabits)
        restored = shard.restore(dest)
        assert restored["changed"] is True and not restored.get("failed"), restored
        rates[megabits] = restored["restore"]["throughput_mb_s"]
        exact(shard, dest, "s-1")
        # The link's rate caps the transfer, and most of it is used: it degrades with the link, no cliff.
        assert 0.3 * megabits / 8 <= rates[megabits] <= 1.15 * megabits / 8, rates
    assert rates[16] < rates[64] / 2, rates


def test_packet_loss_and_a_reset_are_retried_and_the_restore_is_exact(
        shard: Shard, link: Link, tmp_path: Path) -> None:
    # One reset of a connection carrying data (at most one a minute), and 3% of packets lost, both ways
    # of the transfer seen from inside: answers from the store are dropped or reset on arrival.
    link.nft('tcp flags ! fin,syn,rst meta length > 1000 limit rate 1/minute burst 1 packets counter '
             'reject with tcp reset')
    link.nft("numgen random mod 100 < 3 counter drop")
    assert shard.create("s-1")["changed"] is True
    dest = tmp_path / "dest"
    restored = shard.restore(dest, s3_attempts=6, s3_read_timeout=5)
    assert restored["changed"] is True and not restored.get("failed"), restored
    exact(shard, dest, "s-1")
    resets, drops = link.counters()
    assert resets >= 1 and drops >= 1, (resets, drops)


def test_a_store_gone_silent_fails_cleanly_within_the_deadline(shard: Shard, link: Link, tmp_path: Path) -> None:
    assert shard.create("s-1")["changed"] is True
    dest = random_data(tmp_path / "dest", 1)
    before = tree(dest)
    link.nft("counter drop")
    started = time.monotonic()
    result = shard.restore(dest, s3_attempts=2, s3_read_timeout=2)
    elapsed = time.monotonic() - started
    # Two attempts, each at most the 10 s connect timeout, plus one backoff and the playbook's own start.
    assert elapsed < 45, elapsed
    assert result.get("failed") and result["msg"].startswith("Failed to list"), result
    assert "endpoint" in result["next_step"] and result["attempts"] == 2
    assert tree(dest) == before and not [p for p in tmp_path.iterdir() if "staging" in p.name]
    assert link.counters()[0] >= 2
