"""The collection's shipped RBAC (meta/rbac/) installed in the lab, and a kubeconfig per Role, so that
every playbook the drills and the end-to-end tests run works under exactly the permissions a user
would grant it, and a permission the collection needs but does not ship fails there first.

Each file is applied as a user applies it, with `kubectl apply -f` (ServiceAccount `ragops-recovery`
bound to every Role: the union, for runs that mix scenarios); besides, each Role is bound alone to a
ServiceAccount of its own (`ragops-recovery-<file>`), whose kubeconfig a scenario's drill uses. A file's
ClusterRole is bound to both accounts with `kubectl create clusterrolebinding`, as the file says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragops_lab import stack
from ragops_lab.cluster import KubeCluster
from ragops_lab.kube.kubectl import kubectl
from ragops_lab.services import LabError

RBAC_DIR = stack.LAB_DIR.parent / "meta" / "rbac"
UNION_ACCOUNT = "ragops-recovery"
# Which shipped Role file each playbook runs under.
PLAYBOOK_ROLES = {
    "vectorstore_shard_recovery": "shard-recovery", "shard_quarantine": "shard-recovery",
    "generator_outage": "generator", "generator_failback": "generator", "bootstrap_recovery": "bootstrap",
    "incident_status": "incident-status",
    "snapshot_nightly": "snapshots",
    "provider_precheck": "generator",
    "restore_drill": "restore-drill",
}
TOKEN_SECONDS = 86400

Obj = dict[str, Any]


def shipped_path(file: str) -> Path:
    return RBAC_DIR / f"{file}.yaml"


def shipped(file: str) -> list[Obj]:
    """The objects of a shipped file: one YAML document, a v1 List."""
    document = yaml.safe_load(shipped_path(file).read_text())
    return list(document["items"])


def role_files() -> list[str]:
    return sorted(path.stem for path in RBAC_DIR.glob("*.yaml"))


def role_name(file: str) -> str:
    return next(str(o["metadata"]["name"]) for o in shipped(file) if o["kind"] == "Role")


def cluster_roles(file: str) -> list[str]:
    """The ClusterRoles a file ships (for cluster-scoped resources such as PersistentVolumes)."""
    return [str(o["metadata"]["name"]) for o in shipped(file) if o["kind"] == "ClusterRole"]


def bind_cluster_role(admin_kubeconfig: Path, cluster_role: str, namespace: str, account: str) -> None:
    """The ClusterRoleBinding a user creates as the shipped file's header says (it names the namespace)."""
    name = f"{cluster_role}-{namespace}" if account == UNION_ACCOUNT else f"lab-{account}-{cluster_role}"
    done = kubectl(admin_kubeconfig, "create", "clusterrolebinding", name, "--clusterrole", cluster_role,
                   "--serviceaccount", f"{namespace}:{account}")
    if done.returncode != 0:
        raise LabError(f"kubectl create clusterrolebinding {name} failed: {done.stderr.strip()}")


def single_binding(file: str, namespace: str) -> list[Obj]:
    """A ServiceAccount bound to this file's Role alone. The binding's name is the lab's own: a shipped
    RoleBinding is named after its Role (ragops-recovery-bootstrap), and reusing that name would take the
    Role away from the shipped account."""
    account = f"{UNION_ACCOUNT}-{file}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"lab-{account}", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name(file)},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]


@dataclass(frozen=True)
class RbacKubeconfigs:
    union: Path
    by_file: dict[str, Path]

    def for_playbook(self, playbook: str) -> Path:
        """The kubeconfig of the Role a playbook (path or name) is shipped with."""
        return self.by_file[PLAYBOOK_ROLES[Path(playbook).stem]]


APPLY_ATTEMPTS = 3


def apply_shipped(admin_kubeconfig: Path, file: str, namespace: str) -> None:
    """`kubectl apply -f` of a shipped file. kubectl first reads the API server's OpenAPI document,
    which a new API server builds on the first request: on a loaded machine that can outlast
    kubectl's 32 s, and the next attempt finds it built."""
    for _ in range(APPLY_ATTEMPTS):
        done = kubectl(admin_kubeconfig, "apply", "-n", namespace, "-f", str(shipped_path(file)))
        if done.returncode == 0:
            return
    raise LabError(f"kubectl apply -f {shipped_path(file)} failed {APPLY_ATTEMPTS} times: {done.stderr.strip()}")


def install(cluster: KubeCluster, namespace: str, directory: Path) -> RbacKubeconfigs:
    api = cluster.api()
    admin = cluster.paths.kube / "admin.kubeconfig"
    by_file = {}
    for file in role_files():
        apply_shipped(admin, file, namespace)
        for obj in single_binding(file, namespace):
            stack.apply(api, obj, namespace)
        for cluster_role in cluster_roles(file):
            for account in (UNION_ACCOUNT, f"{UNION_ACCOUNT}-{file}"):
                bind_cluster_role(admin, cluster_role, namespace, account)
        token = cluster.service_account_token(namespace, f"{UNION_ACCOUNT}-{file}", TOKEN_SECONDS)
        by_file[file] = cluster.write_kubeconfig(directory / f"{file}.kubeconfig", token=token, namespace=namespace)
    token = cluster.service_account_token(namespace, UNION_ACCOUNT, TOKEN_SECONDS)
    union = cluster.write_kubeconfig(directory / "recovery.kubeconfig", token=token, namespace=namespace)
    return RbacKubeconfigs(union, by_file)


def kubeconfigs(directory: Path) -> RbacKubeconfigs:
    """The kubeconfigs `install` wrote earlier into `directory`."""
    return RbacKubeconfigs(directory / "recovery.kubeconfig",
                           {file: directory / f"{file}.kubeconfig" for file in role_files()})
