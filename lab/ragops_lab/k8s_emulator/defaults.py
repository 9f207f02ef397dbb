"""Server-side defaulting and the status a freshly created object starts with."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .errors import bad_request
from .resources import ResourceType

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "deployments.apps": ("spec", "template"),
    "statefulsets.apps": ("spec", "template"),
    "replicasets.apps": ("spec", "template"),
    "jobs.batch": ("spec", "template"),
}
DEFAULT_TOLERATIONS = (
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
)


def _image_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.split(":", 1)[1] if ":" in name else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for field, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
        probe.setdefault(field, value)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))


def _default_volume(volume: dict[str, Any]) -> None:
    for source in ("configMap", "secret"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", 420)
    if "emptyDir" in volume and volume["emptyDir"] is None:
        volume["emptyDir"] = {}


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            _default_volume(volume)


def _admit_pod(spec: dict[str, Any]) -> None:
    """What the admission chain adds to every new pod (service account, default tolerations)."""
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    present = {t.get("key") for t in tolerations if isinstance(t, dict)}
    for key in DEFAULT_TOLERATIONS:
        if key not in present:
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )


def _pod_template(obj: dict[str, Any], resource: ResourceType) -> dict[str, Any] | None:
    path = POD_TEMPLATE_PATHS.get(resource.key)
    if path is None:
        return None
    current: Any = obj
    for part in path:
        current = current.get(part) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else None


def _default_workload(obj: dict[str, Any], resource: ResourceType) -> None:
    spec = obj.setdefault("spec", {})
    if resource.key in ("deployments.apps", "statefulsets.apps", "replicasets.apps"):
        spec.setdefault("replicas", 1)
    if resource.key == "deployments.apps":
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    if resource.key == "statefulsets.apps":
        _default_statefulset(spec)
    template = _pod_template(obj, resource)
    if template is not None:
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(template.setdefault("spec", {}))


def _default_statefulset(spec: dict[str, Any]) -> None:
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault(
        "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
    )
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            claim.setdefault("status", {"phase": "Pending"})


def _default_job(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if not spec.get("manualSelector"):
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({
            "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
            "controller-uid": uid, "job-name": name,
        })
    if not obj["metadata"].get("labels"):
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if template_labels:
            obj["metadata"]["labels"] = dict(template_labels)


def _cluster_ip(obj: dict[str, Any]) -> str:
    digest = hashlib.sha256(obj["metadata"]["uid"].encode()).digest()
    return f"10.96.{digest[0]}.{max(digest[1], 1)}"


def _default_service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("clusterIP", _cluster_ip(obj))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for index, port in enumerate(spec.get("ports") or []):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                port.setdefault("nodePort", 30000 + (int(port.get("port") or 0) * 7 + index) % 2768)


def _default_secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError as exc:
            raise bad_request(f"illegal base64 data in Secret data[{key!r}]") from exc
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def apply_defaults(obj: dict[str, Any], resource: ResourceType, creating: bool) -> None:
    """Fill in what the server's defaulting (and, on create, admission) would."""
    key = resource.key
    if key == "pods":
        default_pod_spec(obj.setdefault("spec", {}))
        if creating:
            _admit_pod(obj["spec"])
    elif key in ("deployments.apps", "statefulsets.apps", "replicasets.apps"):
        _default_workload(obj, resource)
    elif key == "jobs.batch":
        _default_job(obj)
        _default_workload(obj, resource)
    elif key == "services":
        _default_service(obj)
    elif key == "secrets":
        _default_secret(obj)
    elif key == "persistentvolumeclaims":
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    elif key == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _qos_class(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits", {}).get(res) and r.get("requests", r.get("limits", {})).get(res) == r["limits"][res]
        for r in resources for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def initial_status(obj: dict[str, Any], resource: ResourceType) -> dict[str, Any] | None:
    """The status the server stores on create, ignoring whatever the client sent."""
    key = resource.key
    if key == "pods":
        return {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    if key in ("statefulsets.apps", "replicasets.apps"):
        return {"replicas": 0, "availableReplicas": 0} if key == "statefulsets.apps" else {"replicas": 0}
    if key in ("deployments.apps", "jobs.batch"):
        return {}
    if key == "persistentvolumeclaims":
        return {"phase": "Pending"}
    if key == "services":
        return {"loadBalancer": {}}
    if key == "namespaces":
        return {"phase": "Active"}
    return None


def _zero_fill_container_statuses(status: dict[str, Any]) -> None:
    for field in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(field) or []:
            if not isinstance(entry, dict):
                continue
            for key, zero in (("name", ""), ("ready", False), ("restartCount", 0), ("image", ""),
                              ("imageID", "")):
                entry.setdefault(key, zero)
            for state in ("state", "lastState"):
                terminated = (entry.get(state) or {}).get("terminated")
                if isinstance(terminated, dict):
                    terminated.setdefault("exitCode", 0)


def fill_zero_values(obj: dict[str, Any], resource: ResourceType) -> None:
    """Emit the non-omitempty fields a Go server always serialises, even at their zero value.

    Typed clients treat these fields as required, so leaving them out would make a
    perfectly acceptable write unreadable afterwards.
    """
    status = obj.get("status")
    if resource.key == "pods" and isinstance(status, dict):
        _zero_fill_container_statuses(status)
    if resource.key in ("statefulsets.apps", "replicasets.apps") and isinstance(status, dict):
        status.setdefault("replicas", 0)
    if resource.key == "events":
        obj.setdefault("involvedObject", {})
