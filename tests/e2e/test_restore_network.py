"""The network between the restore Job (in the cluster) and S3 during real runs of Scenario A.

One lab for the module (its shards snapshotted first) and one network namespace joined to this host by a
veth pair.  The lab setting ``pod-netns.json`` (``Lab.place_pods``) starts the restore Job's pod inside the
namespace, where it reaches S3 only through the fault proxy listening on the host's end of the pair; the
controller's own S3 calls stay on the host.  Each test breaks a shard of its own and runs
playbooks/vectorstore_shard_recovery.yml by ansible-playbook while the link is faulted: its bandwidth shaped
with ``tc`` (tbf), packets dropped and a connection reset by nftables rules inside the namespace (this kernel
has no netem), or every packet from the store dropped.  Restores are compared file by file with the snapshot's
manifest (size and SHA-256), and nothing may be lost (tests/e2e/nothing_lost.py).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime

import nothing_lost
import pytest
from harness import Result, Runner
from test_faults_system import (
    ARCHIVE,
    RESTORE_TASK,
    dns_name,
    newest_verified,
    restore_pods,
    restored_exactly,
    settled,
    snapshot_manifest,
    through,
)
from test_shard_recovery import PLAYBOOK, Obj, claim_of, lab_fixture, recovery_options, reports_dir, runner_fixture  # noqa: F401 - pytest finds the fixtures lab and runner by name
from test_shard_recovery_paths import task_result
from test_snapshot_network import WHY_NOT, Link, made_link, sh

from ragops_lab import faults, stack
from ragops_lab.faultproxy import FaultProxy
from ragops_lab.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]
MIB = 1024 * 1024
# What the restore Job's S3 client waits for a connection, and how many attempts each call gets
# (plugins/module_utils/snapshots/s3.py Transfer; the Job's defaults, jobrun.DEFAULTS).
CONNECT_TIMEOUT = 10.0
S3_ATTEMPTS = 5
# The jittered backoff between those attempts is at most 0.5 + 1 + 2 + 4 s (retry.RetryPolicy).
BACKOFF_CEILING = 7.5
# The restore Job's pods: the first and the one more its backoffLimit allows.
JOB_PODS = 2


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    with made_link() as made:
        # Segments of at most one packet into the namespace, as on a wire: the shards' archives are small, and
        # the veth pair would otherwise carry one in a few 64 KiB segments, which a loss rule meets or misses whole.
        sh("ip", "link", "set", "dev", made.host_dev, "gso_max_size", "1500")
        yield made


@pytest.fixture(scope="module")
def s3_proxy(lab: Lab, link: Link) -> Iterator[FaultProxy]:
    """The fault proxy on the host's end of the veth pair, in front of the lab's S3: the runs of this module
    reach S3 through it, the controller over the host's own address, the restore Job's pod over the link."""
    with FaultProxy(lab.s3().url, host=link.host_ip) as running:
        yield running


@pytest.fixture
def faulted(lab: Lab, link: Link, s3_proxy: FaultProxy) -> Iterator[Link]:
    """The link for one test, put back after it: no rule, no shaping, no pod placed in the namespace."""
    settled(lab)
    s3_proxy.clear()
    yield link
    lab.place_pods({})
    link.inside("nft", "flush table inet ragops_fault")
    for where in ([], ["ip", "netns", "exec", link.namespace]):
        device = link.inner_dev if where else link.host_dev
        subprocess.run([*where, "tc", "qdisc", "del", "dev", device, "root"], capture_output=True, check=False)
    s3_proxy.clear()


def behind_the_link(lab: Lab, link: Link, shard: str) -> str:
    """Place the pods of the restore Job that recovers ``shard`` (it restores the newest verified snapshot)
    in the link's namespace; the Job's name."""
    job = dns_name("ragops-restore", shard, newest_verified(lab, shard))
    lab.place_pods({"job-name=%s" % job: link.namespace})
    return job


def sent_to_the_pod(link: Link) -> int:
    """Bytes the host's end of the link has sent into the namespace."""
    return int(json.loads(sh("ip", "-s", "-j", "link", "show", "dev", link.host_dev))[0]["stats64"]["tx"]["bytes"])


def archive_reads(proxy: FaultProxy, shard: str) -> list[float]:
    """When each GET of ``shard``'s archives arrived at the proxy."""
    return [at for at, method, path, _ in proxy.requests
            if method == "GET" and path.split("?")[0].endswith(ARCHIVE) and "/%s/" % shard in path]


def recover_behind(runner: Runner, lab: Lab, shard: str, incident: str, proxy: FaultProxy) -> Result:
    return runner.run(PLAYBOOK, extra=recovery_options(lab, shard, incident, **through(proxy)), timeout=900)


# --- a bandwidth limit ----------------------------------------------------------------------------------------


def shape(link: Link, kilobits: int, burst: int) -> None:
    """Both directions of the link limited to ``kilobits`` per second, with a bucket of ``burst`` bytes (a few
    packets: the shards' archives are small, so a larger bucket would let one through unshaped)."""
    tbf = ["root", "tbf", "rate", "%dkbit" % kilobits, "burst", str(burst), "latency", "400ms"]
    sh("tc", "qdisc", "replace", "dev", link.host_dev, *tbf)
    link.inside("tc", "qdisc", "replace", "dev", link.inner_dev, *tbf)


def test_a_bandwidth_limit_slows_the_restore_jobs_transfer_and_it_restores_exactly(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy, faulted: Link) -> None:
    shard, incident, kilobits, burst = "shard-0", "INC-N1", 256, 4096
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    snapshot_id = newest_verified(lab, shard)
    archive = snapshot_manifest(lab, shard, snapshot_id)["archive"]["size"]
    behind_the_link(lab, faulted, shard)
    shape(faulted, kilobits, burst)
    sent_before = sent_to_the_pod(faulted)

    recovered = recover_behind(runner, lab, shard, incident, s3_proxy)

    assert recovered.returncode == 0, recovered.stdout[-5000:]
    run = task_result(recovered, RESTORE_TASK)["job"]["run"]
    # The archive crossed the shaped link, taking at least the time the link's rate allows and not much more:
    # the restore slows with the link, without a cliff (no timeout, no repeated read).
    assert sent_to_the_pod(faulted) - sent_before >= archive
    link_seconds = (archive - burst) / (kilobits * 1000 / 8)
    assert 0.85 * link_seconds <= run["restore_duration"] <= 2 * link_seconds + 5, (run, archive)
    assert len(archive_reads(s3_proxy, shard)) == math.ceil(archive / (16 * MIB)), s3_proxy.requests
    assert restored_exactly(lab, shard) == snapshot_id
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before)


# --- packet loss and a connection reset ------------------------------------------------------------------------


def reset_once_after(link: Link, received: int) -> None:
    """Reset one connection to the store (at most one a minute) once it has carried ``received`` bytes from it:
    the pod's next packet on it is answered by a TCP reset, so its read fails at once (conntrack accounting is
    switched on in the namespace for the count)."""
    link.inside("sysctl", "-q", "-w", "net.netfilter.nf_conntrack_acct=1")
    link.inside("nft", "add chain inet ragops_fault output { type filter hook output priority 0 ; }")
    link.inside("nft", "add rule inet ragops_fault output ip daddr %s ct reply bytes > %d limit rate 1/minute "
                       "burst 1 packets counter reject with tcp reset" % (link.host_ip, received))


def counters(link: Link) -> dict[str, int]:
    """The packets each fault rule has hit, by the verdict of its rule (drop, reject)."""
    listing = json.loads(link.inside("nft", "-j", "list", "table", "inet", "ragops_fault"))
    found: dict[str, int] = {}
    for item in listing["nftables"]:
        expressions = item.get("rule", {}).get("expr", [])
        hits = sum(e["counter"]["packets"] for e in expressions if "counter" in e)
        for verdict in ("drop", "reject"):
            if any(verdict in e for e in expressions):
                found[verdict] = found.get(verdict, 0) + hits
    return found


def test_packet_loss_and_a_reset_are_retried_by_the_restore_job_and_it_restores_exactly(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy, faulted: Link) -> None:
    shard, incident = "shard-1", "INC-N2"
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    snapshot_id = newest_verified(lab, shard)
    archive = snapshot_manifest(lab, shard, snapshot_id)["archive"]["size"]
    behind_the_link(lab, faulted, shard)
    # Every tenth packet from the store lost, and one connection reset once it has carried a quarter of the archive.
    faulted.nft("numgen inc mod 10 == 9 counter drop")
    reset_once_after(faulted, archive // 4)

    recovered = recover_behind(runner, lab, shard, incident, s3_proxy)

    assert recovered.returncode == 0, recovered.stdout[-5000:]
    hits = counters(faulted)
    assert hits.get("drop", 0) >= 1 and hits.get("reject", 0) >= 1, hits
    # The reset read was repeated: more reads of the archive than its parts (16 MiB each, the Job's default).
    parts = math.ceil(archive / (16 * MIB))
    assert len(archive_reads(s3_proxy, shard)) > parts, s3_proxy.requests
    assert restored_exactly(lab, shard) == snapshot_id
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before)


# --- the store gone silent -------------------------------------------------------------------------------------


def pod_seconds(pod: Obj) -> float:
    """How long the pod's container ran, from the times its status gives (whole seconds)."""
    state = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0].get("state") or {}
    ended = state.get("terminated") or {}
    started, finished = (datetime.fromisoformat(ended[key].replace("Z", "+00:00")) for key in ("startedAt",
                                                                                              "finishedAt"))
    return (finished - started).total_seconds()


def test_a_store_gone_silent_fails_the_restore_job_within_its_bound_naming_the_endpoint_then_a_rerun_restores(
        lab: Lab, runner: Runner, s3_proxy: FaultProxy, faulted: Link) -> None:
    shard, incident = "shard-2", "INC-N3"
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    job = behind_the_link(lab, faulted, shard)
    faulted.nft("counter drop")
    options = recovery_options(lab, shard, incident, **through(s3_proxy))
    started = time.monotonic()
    process = runner.start(PLAYBOOK, extra=options)
    try:
        code = process.wait(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    elapsed = time.monotonic() - started
    output = " ".join((runner.workdir / "started.log").read_text().split())

    assert code != 0, output[-5000:]
    # Each pod of the Job gives up on its first call: every attempt waits out the connect timeout.  The slack
    # is the pod's own start (an interpreter and boto3 on a loaded machine), and for the run its other steps.
    pods = restore_pods(lab, shard)
    assert len(pods) == JOB_PODS, pods
    bound = S3_ATTEMPTS * CONNECT_TIMEOUT + BACKOFF_CEILING
    assert all(0.9 * (S3_ATTEMPTS * CONNECT_TIMEOUT) <= pod_seconds(pod) <= bound + 15 for pod in pods), \
        [pod_seconds(pod) for pod in pods]
    assert elapsed < JOB_PODS * (bound + 15) + 180, elapsed
    endpoint = s3_proxy.url.removeprefix("http://")
    assert "Failed to restore shard %s in Job %s/%s: Failed to list" % (shard, stack.NAMESPACE, job) in output, \
        output[-5000:]
    assert endpoint in output and "Check that the S3 endpoint (endpoint_url) is reachable" in output, output[-5000:]
    assert faulted.counters()[0] >= 2
    assert stack.registry_entry(lab.api(), shard)["state"] != "serving"
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before, alive={incident})

    # The store answers again: a re-run of the incident starts the failed Job again and restores the shard.
    faulted.inside("nft", "flush table inet ragops_fault")
    archive = snapshot_manifest(lab, shard, newest_verified(lab, shard))["archive"]["size"]
    sent_before = sent_to_the_pod(faulted)
    rerun = runner.run(PLAYBOOK, extra=options, timeout=900)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    assert sent_to_the_pod(faulted) - sent_before >= archive  # the re-run's Job read it over the link
    restored_exactly(lab, shard)
    assert claim_of(lab, shard) == old_claim
    nothing_lost.check(lab, before)
