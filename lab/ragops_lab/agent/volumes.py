"""Pod volumes as local directories: PVCs under the lab's state folder, the rest per pod."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .podspec import DataReader

Obj = dict[str, Any]
# Reads a PVC (namespace, name); None when it does not exist.
ClaimReader = Callable[[str, str], "Obj | None"]
LOCAL_PATH_ANNOTATION = "lab.ragops.io/local-path"


class VolumeNotReady(Exception):
    """A volume cannot be set up yet (an unbound or missing claim, a missing ConfigMap)."""


def claim_dir(state_dir: Path, namespace: str, claim: str) -> Path:
    """Where a PVC's data lives; per namespace, so a restore into a scratch namespace gets its own."""
    return state_dir / "pvc" / namespace / claim


def _claim_volume(source: Mapping[str, Any], namespace: str, read_claim: ClaimReader) -> str:
    name = source["claimName"]
    claim = read_claim(namespace, name)
    if claim is None:
        raise VolumeNotReady(f'persistentvolumeclaim "{name}" not found')
    path = (claim["metadata"].get("annotations") or {}).get(LOCAL_PATH_ANNOTATION)
    if (claim.get("status") or {}).get("phase") != "Bound" or not path:
        raise VolumeNotReady(f'pod has unbound immediate PersistentVolumeClaims ("{name}")')
    return str(path)


def _projected_files(target: Path, data: Mapping[str, str], items: list[Obj] | None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {str(i["key"]): str(i.get("path") or i["key"]) for i in items} if items else {k: k for k in data}
    for key, relative in chosen.items():
        if key in data:
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[key], encoding="utf-8")


def _data_volume(kind: str, source: Mapping[str, Any], namespace: str, target: Path, read: DataReader) -> str:
    name = source.get("name") or source.get("secretName") or ""
    data = read(kind, namespace, name)
    if data is None:
        if source.get("optional"):
            data = {}
        else:
            raise VolumeNotReady(f'{kind.lower()} "{name}" not found')
    _projected_files(target, data, source.get("items"))
    return str(target)


def prepare_volumes(pod: Mapping[str, Any], pod_dir: Path, read_claim: ClaimReader,
                    read_data: DataReader) -> dict[str, str]:
    """Volume name → local directory for every volume of the pod."""
    namespace = pod["metadata"]["namespace"]
    directories = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        own_dir = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            directories[name] = _claim_volume(volume["persistentVolumeClaim"], namespace, read_claim)
        elif "emptyDir" in volume:
            own_dir.mkdir(parents=True, exist_ok=True)
            directories[name] = str(own_dir)
        elif "configMap" in volume:
            directories[name] = _data_volume("ConfigMap", volume["configMap"], namespace, own_dir, read_data)
        elif "secret" in volume:
            directories[name] = _data_volume("Secret", volume["secret"], namespace, own_dir, read_data)
        else:
            raise VolumeNotReady(f"volume {name}: the lab supports persistentVolumeClaim, emptyDir, configMap "
                                 "and secret volumes")
    return directories
