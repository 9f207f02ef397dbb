"""Decode the Kubernetes protobuf request bodies that kubectl's typed clients send.

``kubectl create configmap|secret|namespace|serviceaccount|deployment|job|service``
always post ``application/vnd.kubernetes.protobuf``; everything else kubectl and the
Python client send is JSON. Only the messages those commands produce are described
here; any other field is refused with 415 rather than silently dropped.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# time.Time{} (the zero value Go marshals for unset timestamps) as Unix seconds.
ZERO_TIME_SECONDS = -62135596800

# A field is (json name, type, flags). Types: string, bytes, int, bool, time, quantity,
# intorstr, skip (read and discard: status), map:<value type>, or a message name.
# Flags: "r" repeated; "p" pointer in Go, so a zero value was set on purpose and is kept.
Field = tuple[str, str, str]
SCHEMAS: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: ("apiVersion", "string", ""), 2: ("kind", "string", "")},
    "ObjectMeta": {
        1: ("name", "string", ""), 2: ("generateName", "string", ""), 3: ("namespace", "string", ""),
        4: ("selfLink", "string", ""), 5: ("uid", "string", ""), 6: ("resourceVersion", "string", ""),
        7: ("generation", "int", ""), 8: ("creationTimestamp", "time", ""),
        9: ("deletionTimestamp", "time", "p"), 10: ("deletionGracePeriodSeconds", "int", "p"),
        11: ("labels", "map:string", ""), 12: ("annotations", "map:string", ""),
        13: ("ownerReferences", "OwnerReference", "r"), 14: ("finalizers", "string", "r"),
    },
    "OwnerReference": {1: ("kind", "string", ""), 3: ("name", "string", ""), 4: ("uid", "string", ""),
                       5: ("apiVersion", "string", ""), 6: ("controller", "bool", "p"),
                       7: ("blockOwnerDeletion", "bool", "p")},
    "LabelSelector": {1: ("matchLabels", "map:string", ""),
                      2: ("matchExpressions", "LabelSelectorRequirement", "r")},
    "LabelSelectorRequirement": {1: ("key", "string", ""), 2: ("operator", "string", ""),
                                 3: ("values", "string", "r")},
    "ConfigMap": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "map:string", ""),
                  3: ("binaryData", "map:bytes", ""), 4: ("immutable", "bool", "p")},
    "Secret": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "map:bytes", ""), 3: ("type", "string", ""),
               4: ("stringData", "map:string", ""), 5: ("immutable", "bool", "p")},
    "Namespace": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "NamespaceSpec", ""),
                  3: ("status", "skip", "")},
    "NamespaceSpec": {1: ("finalizers", "string", "r")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta", ""), 2: ("secrets", "ObjectReference", "r"),
                       3: ("imagePullSecrets", "LocalObjectReference", "r"),
                       4: ("automountServiceAccountToken", "bool", "p")},
    "ObjectReference": {1: ("kind", "string", ""), 2: ("namespace", "string", ""), 3: ("name", "string", ""),
                        4: ("uid", "string", ""), 5: ("apiVersion", "string", ""),
                        6: ("resourceVersion", "string", ""), 7: ("fieldPath", "string", "")},
    "LocalObjectReference": {1: ("name", "string", "")},
    "Service": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "ServiceSpec", ""), 3: ("status", "skip", "")},
    "ServiceSpec": {
        1: ("ports", "ServicePort", "r"), 2: ("selector", "map:string", ""), 3: ("clusterIP", "string", ""),
        4: ("type", "string", ""), 5: ("externalIPs", "string", "r"), 7: ("sessionAffinity", "string", ""),
        8: ("loadBalancerIP", "string", ""), 9: ("loadBalancerSourceRanges", "string", "r"),
        10: ("externalName", "string", ""), 11: ("externalTrafficPolicy", "string", ""),
        12: ("healthCheckNodePort", "int", ""), 13: ("publishNotReadyAddresses", "bool", ""),
        17: ("ipFamilyPolicy", "string", "p"), 18: ("clusterIPs", "string", "r"),
        19: ("ipFamilies", "string", "r"), 22: ("internalTrafficPolicy", "string", "p"),
    },
    "ServicePort": {1: ("name", "string", ""), 2: ("protocol", "string", ""), 3: ("port", "int", ""),
                    4: ("targetPort", "intorstr", ""), 5: ("nodePort", "int", ""),
                    6: ("appProtocol", "string", "p")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "PodSpec", "")},
    "PodSpec": {
        2: ("containers", "Container", "r"), 3: ("restartPolicy", "string", ""),
        4: ("terminationGracePeriodSeconds", "int", "p"), 5: ("activeDeadlineSeconds", "int", "p"),
        6: ("dnsPolicy", "string", ""), 7: ("nodeSelector", "map:string", ""),
        8: ("serviceAccountName", "string", ""), 9: ("serviceAccount", "string", ""),
        10: ("nodeName", "string", ""), 11: ("hostNetwork", "bool", ""), 12: ("hostPID", "bool", ""),
        13: ("hostIPC", "bool", ""), 15: ("imagePullSecrets", "LocalObjectReference", "r"),
        16: ("hostname", "string", ""), 17: ("subdomain", "string", ""),
        19: ("schedulerName", "string", ""), 20: ("initContainers", "Container", "r"),
        24: ("priorityClassName", "string", ""), 30: ("enableServiceLinks", "bool", "p"),
    },
    "Container": {
        1: ("name", "string", ""), 2: ("image", "string", ""), 3: ("command", "string", "r"),
        4: ("args", "string", "r"), 5: ("workingDir", "string", ""), 6: ("ports", "ContainerPort", "r"),
        7: ("env", "EnvVar", "r"), 8: ("resources", "ResourceRequirements", ""),
        9: ("volumeMounts", "VolumeMount", "r"), 13: ("terminationMessagePath", "string", ""),
        14: ("imagePullPolicy", "string", ""), 16: ("stdin", "bool", ""), 17: ("stdinOnce", "bool", ""),
        18: ("tty", "bool", ""), 20: ("terminationMessagePolicy", "string", ""),
    },
    "ContainerPort": {1: ("name", "string", ""), 2: ("hostPort", "int", ""), 3: ("containerPort", "int", ""),
                      4: ("protocol", "string", ""), 5: ("hostIP", "string", "")},
    "EnvVar": {1: ("name", "string", ""), 2: ("value", "string", "")},
    "ResourceRequirements": {1: ("limits", "map:quantity", ""), 2: ("requests", "map:quantity", "")},
    "VolumeMount": {1: ("name", "string", ""), 2: ("readOnly", "bool", ""), 3: ("mountPath", "string", ""),
                    4: ("subPath", "string", ""), 6: ("subPathExpr", "string", "")},
    "Deployment": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "DeploymentSpec", ""),
                   3: ("status", "skip", "")},
    "DeploymentSpec": {
        1: ("replicas", "int", "p"), 2: ("selector", "LabelSelector", "p"),
        3: ("template", "PodTemplateSpec", ""), 4: ("strategy", "DeploymentStrategy", ""),
        5: ("minReadySeconds", "int", ""), 6: ("revisionHistoryLimit", "int", "p"),
        7: ("paused", "bool", ""), 9: ("progressDeadlineSeconds", "int", "p"),
    },
    "DeploymentStrategy": {1: ("type", "string", ""), 2: ("rollingUpdate", "RollingUpdateDeployment", "p")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "intorstr", "p"), 2: ("maxSurge", "intorstr", "p")},
    "Job": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "JobSpec", ""), 3: ("status", "skip", "")},
    "JobSpec": {
        1: ("parallelism", "int", "p"), 2: ("completions", "int", "p"),
        3: ("activeDeadlineSeconds", "int", "p"), 4: ("selector", "LabelSelector", "p"),
        5: ("manualSelector", "bool", "p"), 6: ("template", "PodTemplateSpec", ""),
        7: ("backoffLimit", "int", "p"), 8: ("ttlSecondsAfterFinished", "int", "p"),
        9: ("completionMode", "string", "p"), 10: ("suspend", "bool", "p"),
    },
}
# Top-level kinds by (apiVersion, kind) as carried in the envelope's TypeMeta.
TOP_LEVEL = {
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "Service"),
    ("apps/v1", "Deployment"), ("batch/v1", "Job"),
}


def _unsupported(message: str) -> ApiError:
    return ApiError(415, f"the emulator cannot decode this protobuf body ({message}); send JSON instead",
                    "UnsupportedMediaType")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _unsupported("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The raw (field number, value) pairs of one message, in wire order."""
    pos, out = 0, []
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        else:
            raise _unsupported(f"wire type {wire}")
        out.append((number, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _number(value: int | bytes | None) -> int:
    return _signed(value) if isinstance(value, int) else 0


def _time(data: bytes) -> str | None:
    seconds = _number(dict(_fields(data)).get(1))
    if seconds == ZERO_TIME_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    parts = dict(_fields(data))
    if parts.get(1, 0) == 1:
        raw = parts.get(3, b"")
        return raw.decode() if isinstance(raw, bytes) else ""
    return _number(parts.get(2))


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        return value.decode() if isinstance(value, bytes) else ""
    if kind == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else ""
    if kind == "int":
        return _number(value)
    if kind == "bool":
        return bool(value)
    if not isinstance(value, bytes):
        raise _unsupported(f"{kind} sent as a number")
    if kind == "time":
        return _time(value)
    if kind == "quantity":
        return _scalar("string", dict(_fields(value)).get(1, b""))
    if kind == "intorstr":
        return _int_or_string(value)
    return decode_message(kind, value)


def _map_entry(kind: str, value: int | bytes) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise _unsupported("map entry sent as a number")
    entry = dict(_fields(value))
    return _scalar("string", entry.get(1, b"")), _scalar(kind, entry.get(2, b""))


def _is_zero(value: Any) -> bool:
    return value is None or value in ("", 0, False) or value == {} or value == []


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """One message as the JSON the same object would have been sent as (zero values omitted)."""
    schema = SCHEMAS[name]
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            raise _unsupported(f"field {number} of {name}")
        json_name, kind, flags = schema[number]
        if kind == "skip":
            continue
        if kind.startswith("map:"):
            key, item = _map_entry(kind[4:], value)
            out.setdefault(json_name, {})[key] = item
        elif "r" in flags:
            out.setdefault(json_name, []).append(_scalar(kind, value))
        else:
            out[json_name] = _scalar(kind, value)
    pointers = {s[0] for s in schema.values() if "p" in s[2]}
    return {k: v for k, v in out.items() if k in pointers or not _is_zero(v)}


def decode(body: bytes) -> dict[str, Any]:
    """A ``k8s\\x00``-prefixed runtime.Unknown envelope to the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise _unsupported("missing the k8s protobuf prefix")
    # runtime.Unknown: 1 typeMeta, 2 raw, 3 contentEncoding, 4 contentType.
    envelope = dict(_fields(body[len(MAGIC):]))
    type_meta, raw = envelope.get(1, b""), envelope.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes) or envelope.get(3):
        raise _unsupported("unexpected envelope")
    meta = decode_message("TypeMeta", type_meta)
    api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
    if (api_version, kind) not in TOP_LEVEL:
        raise _unsupported(f"kind {api_version}/{kind}")
    return {"apiVersion": api_version, "kind": kind, **decode_message(kind, raw)}
