"""What the node agent tells a program, read the way a container reads it: environment variables
and the local directories that play its volumes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ragops_lab.runtime.kubeapi import KubeClient

DEFAULT_PORT = 8080


class ConfigError(ValueError):
    """An environment variable or argument has a value the program cannot use."""


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ConfigError(f"not an ISO 8601 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_choice(env: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    value = env_str(env, name, default).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(env: Mapping[str, str], name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(env, name, default).split(",") if item.strip()]


def parse_mounts(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        mounts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"LAB_MOUNTS is not JSON: {exc}") from exc
    if not isinstance(mounts, dict) or not all(isinstance(v, str) for v in mounts.values()):
        raise ConfigError("LAB_MOUNTS must be a JSON object of mountPath to local directory")
    return {str(k): v for k, v in mounts.items()}


@dataclass(frozen=True)
class PodEnv:
    """What the node agent tells every pod about itself."""

    name: str
    namespace: str
    ip: str
    port: int
    kube_api_url: str
    kube_token: str
    mounts: dict[str, str] = field(default_factory=dict)
    kube_ca_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_port: int = DEFAULT_PORT) -> PodEnv:
        return cls(
            name=env_str(env, "POD_NAME", "lab-pod"),
            namespace=env_str(env, "POD_NAMESPACE", "default"),
            ip=env_str(env, "POD_IP", "127.0.0.1"),
            port=env_int(env, "PORT", default_port),
            kube_api_url=env_str(env, "KUBE_API_URL"),
            kube_token=env_str(env, "KUBE_TOKEN"),
            mounts=parse_mounts(env.get("LAB_MOUNTS", "")),
            kube_ca_file=env_str(env, "KUBE_CA_FILE"),
        )

    def kube(self) -> KubeClient:
        return KubeClient(self.kube_api_url, self.kube_token, self.namespace, ca_file=self.kube_ca_file)


def resolve_path(container_path: str, mounts: Mapping[str, str] | None = None) -> Path:
    """Map a path inside the container to the local directory playing its volume.

    The longest mountPath that is a whole-component prefix wins, as with nested volume mounts;
    a path that no mount covers is returned unchanged.
    """
    table = parse_mounts(os.environ.get("LAB_MOUNTS", "")) if mounts is None else mounts
    target = Path(container_path)
    best: tuple[int, Path] | None = None
    for mount_path, local_dir in table.items():
        mount = Path(mount_path)
        if target == mount or mount in target.parents:
            depth = len(mount.parts)
            if best is None or depth > best[0]:
                best = (depth, Path(local_dir) / target.relative_to(mount))
    return best[1] if best else target
