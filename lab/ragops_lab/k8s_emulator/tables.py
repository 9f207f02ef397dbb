"""Server-side printing: meta.k8s.io/v1 Table responses as ``kubectl get`` asks for them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .clock import now, parse_rfc3339
from .resources import ResourceType
from .selectors import selector_to_string

Column = tuple[str, str, int]  # (name, type, priority)
Row = list[Any]
NONE = "<none>"
ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                "ReadWriteOncePod": "RWOP"}


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes, hours = secs // 60, secs // 3600
    if minutes < 10:
        return f"{minutes}m{secs % 60}s" if secs % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, reference: datetime | None = None) -> str:
    moment = parse_rfc3339(timestamp) if isinstance(timestamp, str) else None
    if moment is None:
        return "<unknown>"
    return human_duration(((reference or now()) - moment).total_seconds())


def _containers(template_spec: dict[str, Any]) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers))


def _selector(selector: dict[str, Any] | None) -> str:
    return selector_to_string(selector) or NONE


def _map_selector(selector: dict[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or NONE


def _container_reason(status: dict[str, Any], reason: str) -> tuple[str, bool]:
    """Status text contributed by one container, and whether it is ready and running."""
    state = status.get("state") or {}
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if waiting and waiting.get("reason"):
        return waiting["reason"], False
    if terminated:
        if terminated.get("reason"):
            return terminated["reason"], False
        if terminated.get("signal"):
            return f"Signal:{terminated['signal']}", False
        return f"ExitCode:{terminated.get('exitCode', 0)}", False
    if status.get("ready") and state.get("running") is not None:
        return reason, True
    return reason, False


def _init_reason(pod: dict[str, Any]) -> str | None:
    """The Init:... status while init containers have not all succeeded, as kubectl prints it."""
    statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
    total = len((pod.get("spec") or {}).get("initContainers") or [])
    for index, status in enumerate(statuses):
        state = status.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        if terminated:
            if terminated.get("reason"):
                return f"Init:{terminated['reason']}"
            if terminated.get("signal"):
                return f"Init:Signal:{terminated['signal']}"
            return f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        if waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return f"Init:{waiting['reason']}"
        return f"Init:{index}/{total}"
    return None


def _restarts(statuses: list[dict[str, Any]]) -> str:
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    finished = [((s.get("lastState") or {}).get("terminated") or {}).get("finishedAt") for s in statuses]
    latest = max((f for f in finished if f), default=None)
    if restarts and latest:
        return f"{restarts} ({age(latest)} ago)"
    return str(restarts)


def pod_status_text(pod: dict[str, Any]) -> tuple[str, int]:
    """(STATUS column, number of ready containers) following kubectl's pod printer."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    ready = 0
    init_reason = _init_reason(pod)
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if init_reason and not initialized:
        reason = init_reason
    else:
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            reason, is_ready = _container_reason(container, reason)
            ready += int(is_ready)
            running = running or is_ready
        if reason == "Completed" and running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if (pod.get("metadata") or {}).get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready


POD_COLUMNS: list[Column] = [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
                             ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
                             ("Node", "string", 1), ("Nominated Node", "string", 1),
                             ("Readiness Gates", "string", 1)]


def _pod_row(pod: dict[str, Any]) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready = pod_status_text(pod)
    gates = spec.get("readinessGates") or []
    gate_text = NONE
    if gates:
        true_types = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gate_text = f"{sum(g.get('conditionType') in true_types for g in gates)}/{len(gates)}"
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason,
            _restarts(status.get("containerStatuses") or []), age(pod["metadata"].get("creationTimestamp")),
            status.get("podIP") or NONE, spec.get("nodeName") or NONE,
            status.get("nominatedNodeName") or NONE, gate_text]


def _workload_images(obj: dict[str, Any]) -> tuple[str, str]:
    return _containers((((obj.get("spec") or {}).get("template") or {}).get("spec")) or {})


def _deployment_row(obj: dict[str, Any]) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _workload_images(obj)
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            age(obj["metadata"].get("creationTimestamp")), names, images, _selector(spec.get("selector"))]


def _statefulset_row(obj: dict[str, Any]) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _workload_images(obj)
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            age(obj["metadata"].get("creationTimestamp")), names, images]


def _replicaset_row(obj: dict[str, Any]) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _workload_images(obj)
    return [obj["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), age(obj["metadata"].get("creationTimestamp")), names, images,
            _selector(spec.get("selector"))]


def _job_status(obj: dict[str, Any]) -> str:
    types = {c.get("type") for c in (obj.get("status") or {}).get("conditions") or []
             if c.get("status") == "True"}
    if "Complete" in types:
        return "Complete"
    if "Failed" in types:
        return "Failed"
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if condition in types:
            return condition
    return "Running"


def _job_row(obj: dict[str, Any]) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = parse_rfc3339(status.get("startTime") or "")
    end = parse_rfc3339(status.get("completionTime") or "") or now()
    duration = human_duration((end - start).total_seconds()) if start else ""
    names, images = _workload_images(obj)
    return [obj["metadata"]["name"], _job_status(obj), completions, duration,
            age(obj["metadata"].get("creationTimestamp")), names, images, _selector(spec.get("selector"))]


def _pvc_row(obj: dict[str, Any]) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    modes = ",".join(ACCESS_MODES.get(m, m) for m in status.get("accessModes") or [])
    return [obj["metadata"]["name"], status.get("phase", ""), spec.get("volumeName", ""),
            (status.get("capacity") or {}).get("storage", ""), modes,
            spec.get("storageClassName") or "<unset>", spec.get("volumeAttributesClassName") or "<unset>",
            age(obj["metadata"].get("creationTimestamp")), spec.get("volumeMode", "")]


def _service_ports(spec: dict[str, Any]) -> str:
    parts = []
    for port in spec.get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        parts.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or NONE


def _service_row(obj: dict[str, Any]) -> Row:
    spec = obj.get("spec") or {}
    external = ",".join(spec.get("externalIPs") or []) or NONE
    if spec.get("type") == "ExternalName":
        external = spec.get("externalName", NONE)
    return [obj["metadata"]["name"], spec.get("type", ""), spec.get("clusterIP") or NONE, external,
            _service_ports(spec), age(obj["metadata"].get("creationTimestamp")),
            _map_selector(spec.get("selector"))]


def _event_row(obj: dict[str, Any]) -> Row:
    involved = obj.get("involvedObject") or {}
    last = (obj.get("lastTimestamp") or obj.get("eventTime")
            or (obj.get("series") or {}).get("lastObservedTime") or obj["metadata"].get("creationTimestamp"))
    return [age(last), obj.get("type", ""), obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}", obj.get("message", "")]


def _simple(*fields: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Row]:
    def row(obj: dict[str, Any]) -> Row:
        return ([obj["metadata"]["name"]] + [f(obj) for f in fields]
                + [age(obj["metadata"].get("creationTimestamp"))])
    return row


PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any]], Row]]] = {
    "pods": (POD_COLUMNS, _pod_row),
    "deployments.apps": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0),
         ("Available", "integer", 0), ("Age", "string", 0), ("Containers", "string", 1),
         ("Images", "string", 1), ("Selector", "string", 1)], _deployment_row),
    "statefulsets.apps": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0),
         ("Containers", "string", 1), ("Images", "string", 1)], _statefulset_row),
    "replicasets.apps": (
        [("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
         ("Ready", "integer", 0), ("Age", "string", 0), ("Containers", "string", 1),
         ("Images", "string", 1), ("Selector", "string", 1)], _replicaset_row),
    "jobs.batch": (
        [("Name", "string", 0), ("Status", "string", 0), ("Completions", "string", 0),
         ("Duration", "string", 0), ("Age", "string", 0), ("Containers", "string", 1),
         ("Images", "string", 1), ("Selector", "string", 1)], _job_row),
    "persistentvolumeclaims": (
        [("Name", "string", 0), ("Status", "string", 0), ("Volume", "string", 0),
         ("Capacity", "string", 0), ("Access Modes", "string", 0), ("StorageClass", "string", 0),
         ("VolumeAttributesClass", "string", 0), ("Age", "string", 0), ("VolumeMode", "string", 1)],
        _pvc_row),
    "services": (
        [("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
         ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0),
         ("Selector", "string", 1)], _service_row),
    "events": (
        [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
         ("Object", "string", 0), ("Message", "string", 0)], _event_row),
    "configmaps": ([("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
                   _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))),
    "secrets": ([("Name", "string", 0), ("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
                _simple(lambda o: o.get("type", ""), lambda o: len(o.get("data") or {}))),
    "namespaces": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
                   _simple(lambda o: (o.get("status") or {}).get("phase", ""))),
    "leases.coordination.k8s.io": (
        [("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)],
        _simple(lambda o: (o.get("spec") or {}).get("holderIdentity", ""))),
}
GENERIC: tuple[list[Column], Callable[[dict[str, Any]], Row]] = (
    [("Name", "string", 0), ("Age", "string", 0)], _simple())


def _row_object(obj: dict[str, Any], resource: ResourceType, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return {"kind": resource.kind, "apiVersion": resource.api_version, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def _column_definitions(columns: list[Column]) -> list[dict[str, Any]]:
    return [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
             "description": f"{name} column", "priority": priority} for name, kind, priority in columns]


def to_table(
    resource: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any],
    include_object: str = "Metadata", with_columns: bool = True,
) -> dict[str, Any]:
    """Render objects as a Table; watch events after the first leave the columns out."""
    columns, printer = PRINTERS.get(resource.key, GENERIC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj)}
        embedded = _row_object(obj, resource, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                             "rows": rows}
    if with_columns:
        table["columnDefinitions"] = _column_definitions(columns)
    return table
