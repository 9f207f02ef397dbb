"""What a container needs before it can run: its program, environment and volume directories."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ragops_lab.runtime.env import DEFAULT_PORT

# The images the lab can "pull": each names a lab program run as `python -m <module>`.
IMAGE_PROGRAMS: Mapping[str, str] = MappingProxyType({
    **{f"ragops-lab/{name}": f"ragops_lab.programs.{name}"
       for name in ("shard", "retriever", "generator", "provider", "controller", "migrate", "indexer")},
    # The collection's execution environment: the project's own environment runs the Job's command.
    "localhost/ragops-recovery-ee": "ragops_lab.programs.ee",
})
_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_LABEL_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

Obj = dict[str, Any]
# Reads a ConfigMap's or Secret's data, Secret values decoded (kind, namespace, name); None when missing.
DataReader = Callable[[str, str, str], "dict[str, str] | None"]


class ContainerConfigError(Exception):
    """The container cannot be configured yet (a missing ConfigMap, Secret or key)."""

    reason = "CreateContainerConfigError"


class ImagePullError(Exception):
    """The image names no lab program."""

    reason = "ErrImagePull"


def program_for(image: str) -> str:
    """The module an image runs; a tag or digest is ignored, as the lab has one build of each."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    module = IMAGE_PROGRAMS.get(repository)
    if module is None:
        known = ", ".join(sorted(IMAGE_PROGRAMS))
        raise ImagePullError(f'Failed to pull image "{image}": repository {repository} not found '
                             f"(the lab serves {known})")
    return module


def api_service_env(kube_url: str) -> dict[str, str]:
    """The variables a kubelet gives every container for the `kubernetes` Service, which in-cluster clients
    (the official ones' in-cluster configuration) connect to. A real kubelet gives the Service's ClusterIP, which
    kube-proxy forwards to the API server; the lab has no ClusterIPs, so it gives the API server's own address."""
    url = urlsplit(kube_url)
    host, port = url.hostname or "", str(url.port or (443 if url.scheme == "https" else 80))
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "KUBERNETES_SERVICE_PORT_HTTPS": port}


def container_port(container: Mapping[str, Any]) -> int:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else DEFAULT_PORT


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(replace, text)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The downward API: the pod fields a fieldRef may name."""
    meta, status = pod["metadata"], pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    match = _LABEL_FIELD.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _ref_data(read: DataReader, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
    data = read(kind, namespace, name)
    if data is None and not optional:
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return data


def _value_from(source: Mapping[str, Any], pod: Mapping[str, Any], read: DataReader) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        if key in source:
            ref = source[key]
            data = _ref_data(read, kind, namespace, ref["name"], bool(ref.get("optional")))
            if data is None:
                return None
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in {kind} {namespace}/{ref["name"]}')
            return data[ref["key"]]
    raise ContainerConfigError(f"unsupported valueFrom {sorted(source)}")


def _env_from(container: Mapping[str, Any], namespace: str, read: DataReader) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if key in source:
                ref = source[key]
                data = _ref_data(read, kind, namespace, ref["name"], bool(ref.get("optional"))) or {}
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
    return env


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], read: DataReader,
                  base: Mapping[str, str]) -> dict[str, str]:
    """`base` (the process contract) plus envFrom and env, in the order Kubernetes applies them."""
    env = {**base, **_env_from(container, pod["metadata"]["namespace"], read)}
    for item in container.get("env") or []:
        if "valueFrom" in item:
            value = _value_from(item["valueFrom"], pod, read)
            if value is not None:
                env[item["name"]] = value
        else:
            env[item["name"]] = expand(str(item.get("value", "")), env)
    return env


def container_args(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    if container.get("command"):
        raise ContainerConfigError("the lab runs each image's own program: set args, not command")
    return [expand(str(arg), env) for arg in container.get("args") or []]


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, str]) -> dict[str, str]:
    """mountPath → local directory, for LAB_MOUNTS."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        local = volume_dirs[mount["name"]]
        sub_path = mount.get("subPath") or ""
        mounts[mount["mountPath"]] = f"{local}/{sub_path}" if sub_path else local
    return mounts


def readonly_mounts(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """The mount paths a container may only read: `readOnly` on the mount, or on the volume's claim."""
    claims_readonly = {v["name"] for v in (pod.get("spec") or {}).get("volumes") or []
                       if (v.get("persistentVolumeClaim") or {}).get("readOnly")}
    return sorted(m["mountPath"] for m in container.get("volumeMounts") or []
                  if m.get("readOnly") or m["name"] in claims_readonly)
