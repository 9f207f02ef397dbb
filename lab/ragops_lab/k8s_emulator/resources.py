"""The table of served resources: what discovery advertises and what the router accepts."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""
    kind: str = ""


STATUS = Subresource("status", ("get", "patch", "update"))
SCALE = Subresource("scale", ("get", "patch", "update"), "autoscaling", "v1", "Scale")
POD_LOG = Subresource("log", ("get",), "", "v1", "Pod")
POD_BINDING = Subresource("binding", ("create",), "", "v1", "Binding")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Kinds whose controllers track spec changes through metadata.generation.
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Stable identity used by the store and by fault rules."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def has_status(self) -> bool:
        return self.subresource("status") is not None


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",),
        subresources=(STATUS, Subresource("finalize", ("update",))), verbs=NAMESPACE_VERBS,
    ),
    ResourceType("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    ResourceType("", "v1", "Secret", "secrets"),
    ResourceType(
        "", "v1", "Pod", "pods", short_names=("po",), categories=("all",),
        subresources=(STATUS, POD_LOG, POD_BINDING), has_generation=True,
    ),
    ResourceType(
        "", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",),
        subresources=(STATUS,),
    ),
    ResourceType(
        "", "v1", "Service", "services", short_names=("svc",), categories=("all",),
        subresources=(STATUS,),
    ),
    ResourceType("", "v1", "Event", "events", short_names=("ev",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",)),
    ResourceType(
        "apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=("all",),
        subresources=(STATUS, SCALE), has_generation=True,
    ),
    ResourceType(
        "apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=("all",),
        subresources=(STATUS, SCALE), has_generation=True,
    ),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=("all",),
        subresources=(STATUS, SCALE), has_generation=True,
    ),
    ResourceType(
        "batch", "v1", "Job", "jobs", categories=("all",), subresources=(STATUS,),
        has_generation=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases"),
)

def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in discovery order, the core group first."""
    seen: list[tuple[str, str]] = []
    for res in RESOURCES:
        pair = (res.group, res.version)
        if pair not in seen:
            seen.append(pair)
    return seen


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    for res in RESOURCES:
        if res.group == group and res.version == version and res.plural == plural:
            return res
    return None


def find_by_key(key: str) -> ResourceType | None:
    for res in RESOURCES:
        if key in (res.key, res.plural):
            return res
    return None
