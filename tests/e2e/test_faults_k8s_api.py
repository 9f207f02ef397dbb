"""Faults of the Kubernetes API during real runs of Scenario A, through the API fault proxy.

One lab for the module; the playbook reaches the API server through the proxy in front of it
(lab/ragops_lab/kube/faults.py) under the ServiceAccount of the shipped Roles. A first, clean run records
every kind of write the recovery makes; the next run answers the first write of each kind with 409 (a
create as if its answer had been lost: the object made, then 409 AlreadyExists) and must still converge;
another gets 429 and 5xx on reads and on the writes that are safe to repeat. A token revoked mid-run, or a
RoleBinding deleted mid-run, fails the run naming the identity or the permission, loses nothing, and a
re-run with working credentials finishes the recovery.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nothing_lost
import pytest
import yaml
from harness import Result, Runner
from test_faults_controller import end_state, kill_point_reached
from test_shard_recovery import PLAYBOOK, claim_of, lab_fixture, recover, recovery_options, reports_dir, runner_fixture  # noqa: F401 - pytest finds the fixtures lab and runner by name
from test_shard_recovery_paths import eventually, lock_holder

from ragops_lab import faults, rbac, stack
from ragops_lab.drills import shard_recovery
from ragops_lab.kube.faults import ApiFaultProxy, RequestInfo
from ragops_lab.kube.kubectl import kubectl
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
WRITES = ("create", "update", "patch")
READS = ("get", "list")
SHARD_RECOVERY_ROLES = "shard-recovery"
Obj = dict[str, t.Any]


@dataclass
class Proxied:
    proxy: ApiFaultProxy
    kubeconfig: Path
    writes: set[tuple[str, str]]


def kubeconfig_token(path: Path) -> str:
    return str(yaml.safe_load(path.read_text())["users"][0]["user"]["token"])


@pytest.fixture(scope="module")
def proxied(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """The proxy, and a kubeconfig at it for the ServiceAccount the lab's inventory uses."""
    proxy = lab.cluster.fault_proxy()
    token = kubeconfig_token(lab.rbac_kubeconfigs().union)
    path = lab.cluster.write_kubeconfig(tmp_path_factory.mktemp("proxied") / "kubeconfig", token=token,
                                        url=proxy.url, namespace=stack.NAMESPACE)
    try:
        yield Proxied(proxy, path, set())
    finally:
        proxy.close()


def writes_of(requests: t.Sequence[RequestInfo]) -> set[tuple[str, str]]:
    """Each kind of write (verb, resource) in the stack's namespace or of cluster-scoped objects."""
    return {(r.verb, r.resource) for r in requests if r.verb in WRITES and r.namespace in ("", stack.NAMESPACE)}


def recover_through(runner: Runner, lab: Lab, kubeconfig: Path, shard: str, incident: str) -> Result:
    return recover(runner, lab, shard, incident, ragops_kubeconfig=str(kubeconfig))


def recovered(lab: Lab, shard: str, incident: str, old_claim: str) -> Obj:
    state = end_state(lab, shard, incident, old_claim)
    assert state["entry"] == {"state": "serving", "reason": "golden set passed after restore"}, state
    assert state["lock holders"] == {} and state["hold"] == {} and state["orphaned volumes"] == [], state
    assert state["restore jobs"] == [] and state["restored claims"] == [] and state["claim kept"], state
    assert state["evidence volumes"] == ["Retain"] and state["golden ids served"], state
    return state


def test_a_clean_run_through_the_proxy_records_each_kind_of_write(lab: Lab, runner: Runner,
                                                                  proxied: Proxied) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-0"])
    old_claim, before = claim_of(lab, "shard-0"), nothing_lost.record(lab, reports_dir(lab))
    proxied.proxy.faults.requests.clear()

    run = recover_through(runner, lab, proxied.kubeconfig, "shard-0", "INC-API0")

    assert run.returncode == 0, run.stdout[-5000:]
    recovered(lab, "shard-0", "INC-API0", old_claim)
    nothing_lost.check(lab, before)
    proxied.writes |= writes_of(proxied.proxy.faults.requests)
    # The recovery's writes: the registry, the lock, the restore's claim, Secret and Job, the swap of the
    # volumes under the shard's StatefulSet, the pods' serving label, the re-index Job.
    kinds = {resource.split("/")[0] for _, resource in proxied.writes}
    assert {"configmaps", "leases", "persistentvolumeclaims", "persistentvolumes", "jobs", "pods"} <= kinds, (
        sorted(proxied.writes))


def test_a_409_on_the_first_write_of_each_kind_is_absorbed(lab: Lab, runner: Runner, proxied: Proxied) -> None:
    assert proxied.writes, "the clean run found no writes"
    faults.inject(lab, "corrupt-shard", ["shard-1"])
    old_claim, before = claim_of(lab, "shard-1"), nothing_lost.record(lab, reports_dir(lab))
    proxied.proxy.faults.requests.clear()
    for verb, resource in sorted(proxied.writes):
        # A create answered 409 was made: its answer was lost, and a repeat found it (409 AlreadyExists).
        proxied.proxy.add_fault(verb=verb, resource=resource, namespace=None, status=409, times=1,
                                forward=verb == "create")

    run = recover_through(runner, lab, proxied.kubeconfig, "shard-1", "INC-API1")

    applied = {(verb, resource) for verb, resource, _, _, status in proxied.proxy.faults.applied if status == 409}
    made = writes_of(proxied.proxy.faults.requests)
    proxied.proxy.clear_faults()
    assert run.returncode == 0, run.stdout[-5000:]
    recovered(lab, "shard-1", "INC-API1", old_claim)
    nothing_lost.check(lab, before)
    # Every kind of write of the clean run got its 409 here (the lock's Lease, made by the first run, is taken
    # by an update here, not created; a Secret found after a lost create answer is patched, a write the clean
    # run did not make).
    assert made >= proxied.writes - {("create", "leases")}, sorted(proxied.writes - made)
    assert writes_of([RequestInfo(v, r, stack.NAMESPACE, "") for v, r in applied]) == made & proxied.writes


def test_429_and_5xx_on_reads_and_writes_are_retried(lab: Lab, runner: Runner, proxied: Proxied) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-2"])
    old_claim, before = claim_of(lab, "shard-2"), nothing_lost.record(lab, reports_dir(lab))
    proxied.proxy.faults.applied.clear()
    # At most three faults in a row for any one call: each is retried up to five attempts.
    proxied.proxy.add_fault(verb="get", resource="persistentvolumes", status=504, times=1)
    proxied.proxy.add_fault(verb="list", resource="pods", status=429, times=1, retry_after=1)
    for status, verbs in ((503, READS), (500, ("update", "patch")), (429, ("create",))):
        for verb in verbs:
            proxied.proxy.add_fault(verb=verb, resource="*", namespace=None, status=status, times=2)

    run = recover_through(runner, lab, proxied.kubeconfig, "shard-2", "INC-API2")

    applied = {(verb, status) for verb, _, _, _, status in proxied.proxy.faults.applied}
    proxied.proxy.clear_faults()
    assert run.returncode == 0, run.stdout[-5000:]
    assert {("get", 503), ("list", 503), ("update", 500), ("patch", 500), ("create", 429), ("get", 504),
            ("list", 429)} <= applied, applied
    recovered(lab, "shard-2", "INC-API2", old_claim)
    nothing_lost.check(lab, before)


# --- credentials taken away mid-run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    kubeconfig: Path


def revocable_account(lab: Lab, name: str, workdir: Path) -> Account:
    """A ServiceAccount bound to the shipped Roles of Scenario A, as a user binds them, with a token."""
    admin = lab.paths.kube / "admin.kubeconfig"
    namespace, role = stack.NAMESPACE, rbac.role_name(SHARD_RECOVERY_ROLES)
    commands = [("create", "serviceaccount", name),
                ("create", "rolebinding", name, "--role", role, "--serviceaccount", "%s:%s" % (namespace, name))]
    commands += [("create", "clusterrolebinding", "%s-%s" % (name, cluster_role), "--clusterrole", cluster_role,
                  "--serviceaccount", "%s:%s" % (namespace, name))
                 for cluster_role in rbac.cluster_roles(SHARD_RECOVERY_ROLES)]
    for command in commands:
        done = kubectl(admin, *command, "-n", namespace)
        assert done.returncode == 0, done.stderr
    token = lab.cluster.service_account_token(namespace, name)
    return Account(name, lab.cluster.write_kubeconfig(workdir / ("%s.kubeconfig" % name), token=token,
                                                      namespace=namespace))


REVOCATIONS = {
    # The token's ServiceAccount deleted: the API server no longer knows the token (401).
    "token-revoked": (("delete", "serviceaccount"), "the credentials were rejected (HTTP 401"),
    # The RoleBinding deleted: the token is known, RBAC denies it (403), naming the verb and the Role.
    "role-unbound": (("delete", "rolebinding"), "forbidden by RBAC (HTTP 403"),
}


@pytest.mark.parametrize("revocation", sorted(REVOCATIONS))
def test_credentials_revoked_mid_run_fail_clearly_and_a_rerun_finishes(lab: Lab, runner: Runner,
                                                                       revocation: str) -> None:
    shard, incident = "shard-3", "INC-API-%s" % revocation
    account = revocable_account(lab, "e2e-%s" % revocation, runner.workdir)
    command, message = REVOCATIONS[revocation]
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    extra = recovery_options(lab, shard, incident, ragops_kubeconfig=str(account.kubeconfig))
    started = runner.start(PLAYBOOK, extra=extra)
    eventually("the restore of %s" % shard, lambda: kill_point_reached(lab, shard, incident, "restoring")
               or started.poll() is not None)
    done = kubectl(lab.paths.kube / "admin.kubeconfig", *command, account.name, "-n", stack.NAMESPACE)
    assert done.returncode == 0, done.stderr
    assert started.wait(timeout=600) != 0
    output = (runner.workdir / "started.log").read_text()

    assert message in output, output[-5000:]
    if revocation == "role-unbound":
        assert "meta/rbac/shard-recovery.yaml" in output and account.name in output, output[-5000:]
    assert stack.registry_entry(lab.api(), shard)["state"] != "serving"
    nothing_lost.check(lab, before, alive={incident})
    assert set(lock_holder(lab).values()) <= {incident}

    rerun = recover(runner, lab, shard, incident)

    assert rerun.returncode == 0, rerun.stdout[-5000:]
    recovered(lab, shard, incident, old_claim)
    nothing_lost.check(lab, before)


def test_the_api_server_restarted_during_a_restore_is_ridden_out_or_resumed(lab: Lab, runner: Runner) -> None:
    shard, incident = "shard-0", "INC-API-RESTART"
    faults.inject(lab, "corrupt-shard", [shard])
    old_claim, before = claim_of(lab, shard), nothing_lost.record(lab, reports_dir(lab))
    started = runner.start(PLAYBOOK, extra=recovery_options(lab, shard, incident))
    eventually("the restore Job of %s" % shard,
               lambda: shard_recovery.restore_jobs(lab, shard) or started.poll() is not None)
    assert started.poll() is None, (runner.workdir / "started.log").read_text()[-5000:]

    lab.cluster.restart_api_server(down_seconds=3)

    if started.wait(timeout=600) != 0:
        # Not ridden out: the run stops saying the API could not be reached, and a re-run resumes the restore.
        output = (runner.workdir / "started.log").read_text()
        assert "the Kubernetes API could not be reached" in output or "HTTP 5" in output, output[-5000:]
        nothing_lost.check(lab, before, alive={incident})
        rerun = recover(runner, lab, shard, incident)
        assert rerun.returncode == 0, rerun.stdout[-5000:]
    recovered(lab, shard, incident, old_claim)
    nothing_lost.check(lab, before)
