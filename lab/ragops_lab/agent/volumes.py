"""Pod volumes as local directories: claims through their PersistentVolume's path, the rest per pod.

Projected volumes are written the way the kubelet writes the service-account volume that the
ServiceAccount admission plugin adds to every pod: a token from the TokenRequest API bound to the
pod, the cluster's CA bundle (ConfigMap kube-root-ca.crt) and the namespace (downward API).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .podspec import ContainerConfigError, DataReader, field_value

Obj = dict[str, Any]
# The local directory of a bound claim (namespace, name); raises VolumeNotReady otherwise.
ClaimReader = Callable[[str, str], str]
# A service-account token for the pod: (pod, service account, audience, expiration seconds).
TokenRequester = Callable[[Obj, str, str, int], str]


class VolumeNotReady(Exception):
    """A volume cannot be set up yet (an unbound or missing claim, a missing ConfigMap)."""


def claim_dir(state_dir: Path, namespace: str, claim: str) -> Path:
    """Where the provisioner puts a claim's data; per namespace, so a scratch namespace gets its own."""
    return state_dir / "pvc" / namespace / claim


def claim_path(claim: Obj | None, volume: Obj | None, name: str) -> str:
    """The directory of a bound claim, from its PersistentVolume (hostPath or local)."""
    if claim is None:
        raise VolumeNotReady(f'persistentvolumeclaim "{name}" not found')
    if (claim.get("status") or {}).get("phase") != "Bound" or volume is None:
        raise VolumeNotReady(f'pod has unbound immediate PersistentVolumeClaims ("{name}")')
    spec = volume.get("spec") or {}
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise VolumeNotReady(f"volume {volume['metadata']['name']} of claim {name} is neither hostPath nor local")
    return str(path)


@dataclass(frozen=True)
class VolumeSources:
    read_claim: ClaimReader
    read_data: DataReader
    request_token: TokenRequester


def _write_files(target: Path, files: Mapping[str, str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _chosen(data: Mapping[str, str], items: list[Obj] | None) -> dict[str, str]:
    """The files a configMap/secret source projects: every key, or the listed ones at their paths."""
    if not items:
        return dict(data)
    return {str(i.get("path") or i["key"]): data[i["key"]] for i in items if i["key"] in data}


def _data_files(kind: str, source: Mapping[str, Any], namespace: str, read: DataReader) -> dict[str, str]:
    name = source.get("name") or source.get("secretName") or ""
    data = read(kind, namespace, name)
    if data is None:
        if not source.get("optional"):
            raise VolumeNotReady(f'{kind.lower()} "{name}" not found')
        data = {}
    return _chosen(data, source.get("items"))


def _projected_files(pod: Obj, projected: Mapping[str, Any], sources: VolumeSources) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    files: dict[str, str] = {}
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            account = pod["spec"].get("serviceAccountName") or "default"
            files[token.get("path", "token")] = sources.request_token(
                pod, account, str(token.get("audience") or ""), int(token.get("expirationSeconds") or 3607))
        elif "configMap" in source:
            files.update(_data_files("ConfigMap", source["configMap"], namespace, sources.read_data))
        elif "secret" in source:
            files.update(_data_files("Secret", source["secret"], namespace, sources.read_data))
        elif "downwardAPI" in source:
            files.update(_downward_files(pod, source["downwardAPI"]))
    return files


def _downward_files(pod: Obj, source: Mapping[str, Any]) -> dict[str, str]:
    files = {}
    for item in source.get("items") or []:
        if "fieldRef" in item:
            try:
                files[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"])
            except ContainerConfigError as exc:
                raise VolumeNotReady(str(exc)) from exc
    return files


def prepare_volumes(pod: Obj, pod_dir: Path, sources: VolumeSources) -> dict[str, str]:
    """Volume name → local directory for every volume of the pod."""
    namespace = pod["metadata"]["namespace"]
    directories = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        own_dir = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            directories[name] = sources.read_claim(namespace, volume["persistentVolumeClaim"]["claimName"])
            continue
        if "emptyDir" in volume:
            files: dict[str, str] = {}
        elif "configMap" in volume:
            files = _data_files("ConfigMap", volume["configMap"], namespace, sources.read_data)
        elif "secret" in volume:
            files = _data_files("Secret", volume["secret"], namespace, sources.read_data)
        elif "projected" in volume:
            files = _projected_files(pod, volume["projected"], sources)
        elif "downwardAPI" in volume:
            files = _downward_files(pod, volume["downwardAPI"])
        else:
            raise VolumeNotReady(f"volume {name}: the lab supports persistentVolumeClaim, emptyDir, configMap, "
                                 "secret, projected and downwardAPI volumes")
        _write_files(own_dir, files)
        directories[name] = str(own_dir)
    return directories
