"""The least-privilege RBAC the collection ships (meta/rbac/), proven against the real API server.

The lab installs these Roles and runs every drill and every playbook of the end-to-end tests under
ServiceAccounts bound to them (ragops_lab/rbac.py); here a Role with one verb taken away shows what
a user whose Role lacks a permission sees: the verb, the resource and the Role to fix, and nothing
half-changed.
"""

from __future__ import annotations

import copy
import json
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import ROOT, Cluster, Runner
from lab_support import running_lab

from ragops_lab import rbac, stack
from ragops_lab.agent.api import CORE, object_path
from ragops_lab.lab import Lab, kubectl

# The collection as `make venv` links it, for the table its error path names the Roles from.
sys.path.insert(0, str(ROOT / "build" / "collections"))
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import SHIPPED_ROLES

RBAC_DIR = ROOT / "meta" / "rbac"
Obj = dict[str, t.Any]


def shipped_roles() -> dict[str, Obj]:
    return {f"{file}.yaml": next(o for o in rbac.shipped(file) if o["kind"] == "Role") for file in rbac.role_files()}


# What each Role may delete: the shard recovery, for the restore's swap under the shard's controller (the
# restore Job and its claim, the shard's old claim and its pods; each volume is set to Retain first), and the
# nightly snapshots, their own CronJob (state=absent).
DELETES = {"shard-recovery.yaml": {"pods", "persistentvolumeclaims", "jobs"}, "snapshots.yaml": {"cronjobs"}}


def test_the_shipped_roles_delete_only_what_the_restore_swap_and_the_schedule_need() -> None:
    roles = shipped_roles()
    assert sorted(roles) == [
        "bootstrap.yaml", "generator.yaml", "incident-status.yaml", "restore-drill.yaml", "shard-recovery.yaml",
        "snapshots.yaml"]
    for name, role in roles.items():
        deletes = set()
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], name
            assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), name
            if "delete" in rule["verbs"]:
                deletes |= set(rule["resources"])
        assert deletes == DELETES.get(name, set()), name
    status_verbs = {verb for rule in roles["incident-status.yaml"]["rules"] for verb in rule["verbs"]}
    assert status_verbs == {"get", "list"}
    for path in RBAC_DIR.glob("*.yaml"):
        documents = list(yaml.safe_load_all(path.read_text()))
        # One document per file: ansible-test's yamllint refuses multi-document YAML in a collection.
        assert len(documents) == 1 and documents[0]["kind"] == "List", path.name
        kinds = {o["kind"] for o in documents[0]["items"]}
        cluster = {"ClusterRole"} if path.name in ("shard-recovery.yaml", "restore-drill.yaml") else set()
        assert kinds == {"ServiceAccount", "Role", "RoleBinding"} | cluster, path.name


def test_the_only_cluster_scoped_rule_reads_and_patches_volumes() -> None:
    (cluster_role,) = [o for o in rbac.shipped("shard-recovery") if o["kind"] == "ClusterRole"]
    assert cluster_role["metadata"]["name"] == "ragops-recovery-volumes"
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "patch"]}]
    header = (RBAC_DIR / "shard-recovery.yaml").read_text()
    assert "kubectl create clusterrolebinding ragops-recovery-volumes-NAMESPACE" in header


def test_the_restore_drill_deletes_only_namespaces_and_never_reads_a_secret() -> None:
    """The drill's ClusterRole: its scratch namespace created and deleted, what it runs there created and
    read; no update, patch or delete of anything else, no read of a Secret."""
    (cluster_role,) = [o for o in rbac.shipped("restore-drill") if o["kind"] == "ClusterRole"]
    assert cluster_role["metadata"]["name"] == "ragops-recovery-drill"
    verbs: dict[str, set[str]] = {}
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for resource in rule["resources"]:
            verbs.setdefault(resource, set()).update(rule["verbs"])
    assert verbs == {"namespaces": {"get", "create", "delete"}, "persistentvolumeclaims": {"create"},
                     "secrets": {"create"}, "pods": {"get", "list", "create"}, "services": {"get", "create"},
                     "pods/log": {"get"}, "jobs": {"get", "create"}}
    (role,) = [o for o in rbac.shipped("restore-drill") if o["kind"] == "Role"]
    assert {verb for rule in role["rules"] for verb in rule["verbs"]} == {"get", "list"}
    header = (RBAC_DIR / "restore-drill.yaml").read_text()
    assert "kubectl create clusterrolebinding ragops-recovery-drill-NAMESPACE" in header


def test_the_error_path_names_the_roles_that_are_shipped() -> None:
    roles = shipped_roles()
    assert {(role, file) for role, file, _ in SHIPPED_ROLES} == {(r["metadata"]["name"], f) for f, r in roles.items()}
    for _, file, playbooks in SHIPPED_ROLES:
        for playbook in playbooks.split(", "):
            assert (ROOT / "playbooks" / f"{playbook}.yml").exists()
            assert rbac.PLAYBOOK_ROLES[playbook] == Path(file).stem


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        yield running



@pytest.mark.lab
def test_kubectl_confirms_what_each_shipped_role_allows(lab: Lab) -> None:
    """`kubectl auth can-i` as each scenario's ServiceAccount: its Role's verbs; deletes only where the
    restore's swap needs them."""
    kubeconfigs = lab.rbac_kubeconfigs()
    checks = {"shard-recovery": ("update configmaps", "create jobs.batch", "create persistentvolumeclaims",
                                 "create pods --subresource=exec", "get pods --subresource=exec"),
              "generator": ("update deployments.apps", "get secrets"),
              "bootstrap": ("create jobs.batch", "list jobs.batch", "patch statefulsets.apps"),
              "incident-status": ("get leases.coordination.k8s.io", "list jobs.batch", "get deployments.apps"),
              "snapshots": ("create jobs.batch", "get persistentvolumeclaims", "create cronjobs.batch",
                            "delete cronjobs.batch", "list pods"),
              "restore-drill": ("get statefulsets.apps", "get configmaps", "list pods")}
    for file, allowed in checks.items():
        config = kubeconfigs.by_file[file]
        for check in allowed:
            done = kubectl(config, "auth", "can-i", *check.split(), "-n", stack.NAMESPACE)
            assert done.stdout.strip() == "yes", (file, check, done.stderr)
            # The shipped account is bound to every Role: it may do what each one allows.
            union = kubectl(kubeconfigs.union, "auth", "can-i", *check.split(), "-n", stack.NAMESPACE)
            assert union.stdout.strip() == "yes", ("ragops-recovery", check, union.stderr)
        swap = ("delete pods", "delete persistentvolumeclaims")
        for check in ("list nodes", "delete persistentvolumes", "delete configmaps",
                      *(() if file == "shard-recovery" else swap)):
            done = kubectl(config, "auth", "can-i", *check.split(), "-n", stack.NAMESPACE)
            assert done.stdout.strip() == "no", (file, check)
    # Volumes are cluster-scoped: the shard recovery's ClusterRole, bound to its accounts.
    for config in (kubeconfigs.by_file["shard-recovery"], kubeconfigs.union):
        assert kubectl(config, "auth", "can-i", "patch", "persistentvolumes").stdout.strip() == "yes"
    # Scratch namespaces are cluster-scoped: the restore drill's ClusterRole, which reads no Secret.
    drill = kubeconfigs.by_file["restore-drill"]
    for check in ("create namespaces", "delete namespaces", "create jobs.batch -n elsewhere"):
        assert kubectl(drill, "auth", "can-i", *check.split()).stdout.strip() == "yes", check
    for check in ("get secrets -n elsewhere", "delete pods -n elsewhere", "patch namespaces"):
        assert kubectl(drill, "auth", "can-i", *check.split()).stdout.strip() == "no", check
    assert kubectl(kubeconfigs.by_file["generator"], "auth", "can-i", "get", "persistentvolumes").stdout.strip() == "no"
    generator_only = kubectl(kubeconfigs.by_file["generator"], "auth", "can-i", "create", "jobs.batch")
    assert generator_only.stdout.strip() == "no"
    # The status Role only reads, and never a Secret.
    for denied in ("update configmaps", "create jobs.batch", "update leases.coordination.k8s.io", "get secrets"):
        done = kubectl(kubeconfigs.by_file["incident-status"], "auth", "can-i", *denied.split(), "-n", stack.NAMESPACE)
        assert done.stdout.strip() == "no", denied


def role_without(file: str, resource: str, verb: str, name: str) -> Obj:
    role = copy.deepcopy(next(o for o in rbac.shipped(file) if o["kind"] == "Role"))
    role["metadata"]["name"] = name
    for rule in role["rules"]:
        if resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return role


@pytest.mark.lab
def test_a_missing_verb_fails_naming_the_verb_the_resource_and_the_role(lab: Lab, tmp_path: Path) -> None:
    account = "rbac-missing-update"
    role = role_without("shard-recovery", "configmaps", "update", account)
    api = lab.api()
    for obj in (role, *rbac.single_binding("shard-recovery", stack.NAMESPACE)):
        obj = copy.deepcopy(obj)
        if obj["kind"] != "Role":
            obj["metadata"]["name"] = account
        if obj["kind"] == "RoleBinding":
            obj["roleRef"]["name"] = account
            obj["subjects"][0]["name"] = account
        stack.apply(api, obj)
    token = lab.cluster.service_account_token(stack.NAMESPACE, account)
    config = lab.cluster.write_kubeconfig(tmp_path / "kubeconfig", token=token, namespace=stack.NAMESPACE)
    registry = object_path(CORE, "configmaps", stack.NAMESPACE, stack.REGISTRY)
    before = (api.get(registry) or {}).get("data")

    runner = Runner(Cluster(None, config, "", namespace=stack.NAMESPACE), tmp_path)
    result = runner.run(ROOT / "playbooks" / "shard_quarantine.yml", extra=[
        "-i", str(lab.paths.inventory), "-e", json.dumps({"shard": "shard-1", "incident_id": "INC-RBAC",
                                                          "ragops_kubeconfig": str(config)})])

    assert result.returncode != 0 and result.failed == 1, result.stdout
    assert 'forbidden by RBAC (HTTP 403' in result.stdout
    assert 'Grant verb \\"update\\" on resource \\"configmaps\\"' in result.stdout, result.stdout
    assert "ragops-recovery-shard (meta/rbac/shard-recovery.yaml" in result.stdout
    assert (api.get(registry) or {}).get("data") == before
