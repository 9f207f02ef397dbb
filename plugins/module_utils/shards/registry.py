# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and changing the shard registry ConfigMap and the shards' pods."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import RecoveryError, RegistryCorrupt
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import MANAGED_BY, REPLACED_BY_LABEL, SERVING_LABEL, Ref
from ..k8s.status import pod_summary
from . import rules


@dataclass(frozen=True)
class Registry:
    """Where the shard registry lives."""

    namespace: str
    name: str

    @property
    def ref(self) -> Ref:
        return Ref("ConfigMap", self.name, self.namespace)


def _current_entry(
    configmap: Obj, shard: str, where: Registry, register: bool
) -> rules.Entry | None:
    data = configmap.get("data") or {}
    if shard in data:
        return rules.parse_entry(shard, data[shard], where.name)
    if register:
        return None
    known = ", ".join(sorted(data)) or "none"
    raise RecoveryError(
        "Shard %s is not in the shard registry %s (known shards: %s)"
        % (shard, where.ref, known),
        resource=str(where.ref),
        reason="unknown shard",
        next_step="Check the shard id; to add a new shard pass register=true.",
    )


def _ensure_registry(
    client: K8sClient, where: Registry, create: bool, check_mode: bool
) -> bool:
    """Whether the registry had to be created (or would be, in check mode)."""
    if client.get_or_none(where.ref) is not None:
        return False
    if not create:
        raise RecoveryError(
            "The shard registry %s does not exist" % where.ref,
            resource=str(where.ref),
            reason="registry ConfigMap missing",
            next_step="Check namespace and registry name; pass create_registry=true to "
            "create an empty registry.",
        )
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {},
        "metadata": {
            "name": where.name,
            "namespace": where.namespace,
            "labels": dict(MANAGED_BY),
        },
    }
    client.create(configmap, dry_run=check_mode)
    return True


@dataclass(frozen=True)
class MarkOutcome:
    """What a mark did: the plan it carried out and whether it created the registry."""

    plan: rules.MarkPlan
    registry_created: bool
    where: Registry

    def to_result(self, shard: str, diff: bool) -> Obj:
        """The module result: the entry after the change, the transition and the
        registry."""
        plan, where = self.plan, self.where
        result: Obj = {
            "changed": plan.changed,
            "shard": dict(plan.after.to_dict(), name=shard),
            "transition": plan.transition,
            "forced": plan.forced,
            "registry": {
                "name": where.name,
                "namespace": where.namespace,
                "created": self.registry_created,
            },
        }
        if diff:
            before = plan.before.to_dict() if plan.before else {}
            result["diff"] = {"before": before, "after": plan.after.to_dict()}
        return result


def mark_shard(
    client: K8sClient,
    where: Registry,
    shard: str,
    request: rules.MarkRequest,
    *,
    now: str,
    check_mode: bool,
    create_registry: bool = False,
    register: bool = False,
) -> MarkOutcome:
    """Write the shard's entry if it differs from the request; re-plans on every 409
    re-read."""
    created = _ensure_registry(client, where, create_registry, check_mode)
    if created and check_mode:
        # The registry does not exist yet, so a dry-run write has nothing to apply to.
        return MarkOutcome(rules.plan_mark(shard, None, request, now), True, where)
    plans: t.List[rules.MarkPlan] = []

    def apply(configmap: Obj) -> Obj | None:
        current = _current_entry(configmap, shard, where, register or create_registry)
        plans.append(rules.plan_mark(shard, current, request, now))
        if not plans[-1].changed:
            return None
        configmap.setdefault("data", {})[shard] = plans[-1].after.to_json()
        return configmap

    client.update(where.ref, apply, dry_run=check_mode)
    return MarkOutcome(plans[-1], created, where)


def label_shard_pods(
    client: K8sClient,
    namespace: str,
    shard: str,
    shard_label: str,
    serving: bool,
    check_mode: bool,
) -> t.List[t.Dict[str, t.Any]]:
    """Set ``ragops.io/serving`` on the shard's pods so a Service selector can drop
    them.

    A pod that a restore replaced (label ``ragops.io/replaced-by``) never serves
    again, and a pod being deleted is left alone.
    """
    changes = []
    for pod in client.list(
        "Pod", namespace, label_selector="%s=%s" % (shard_label, shard)
    ):
        name = pod["metadata"]["name"]
        labels = pod["metadata"].get("labels") or {}
        if pod["metadata"].get("deletionTimestamp"):
            continue
        value = "true" if serving and REPLACED_BY_LABEL not in labels else "false"
        before = labels.get(SERVING_LABEL)
        if before != value:
            patch = {"metadata": {"labels": {SERVING_LABEL: value}}}
            client.patch(Ref("Pod", name, namespace), patch, dry_run=check_mode)
        changes.append(
            {"name": name, "before": before, "after": value, "changed": before != value}
        )
    return changes


def _shard_view(
    shard: str, entry: t.Union[rules.Entry, RegistryCorrupt, None], pods: t.List[Obj]
) -> Obj:
    view: Obj = {"shard": shard, "pods": pods}
    if isinstance(entry, rules.Entry):
        view.update(entry.to_dict())
        view["serving"] = entry.state == "serving"
    elif isinstance(entry, RegistryCorrupt):
        view.update({"state": "invalid", "error": entry.msg, "serving": False})
    else:
        view.update({"state": "unregistered", "serving": False})
    return view


def describe_shards(
    client: K8sClient, where: Registry, shards: t.Sequence[str], shard_label: str
) -> Obj:
    """Registry entries joined with the status of each shard's pods."""
    configmap = client.get_or_none(where.ref)
    parsed = rules.entries((configmap or {}).get("data") or {}, where.name)
    pods_by_shard: t.Dict[str, t.List[Obj]] = {}
    for pod in client.list("Pod", where.namespace, label_selector=shard_label):
        label = pod["metadata"].get("labels", {}).get(shard_label)
        pods_by_shard.setdefault(label, []).append(pod_summary(pod))
    names = list(shards) or sorted(set(parsed) | set(pods_by_shard))
    return {
        "registry": {
            "name": where.name,
            "namespace": where.namespace,
            "exists": configmap is not None,
            "invalid_entries": sorted(
                s for s, e in parsed.items() if isinstance(e, RegistryCorrupt)
            ),
        },
        "shards": [
            _shard_view(
                name,
                parsed.get(name),
                sorted(pods_by_shard.get(name, []), key=lambda p: p["name"]),
            )
            for name in names
        ],
    }
