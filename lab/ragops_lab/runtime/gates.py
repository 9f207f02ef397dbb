"""Start-up gates shared by retriever, generator and controller: the schema version a program needs
and the Services it waits for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ragops_lab.runtime.env import ConfigError, env_list, env_str
from ragops_lab.runtime.kubeapi import KubeClient, KubeError
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.resolve import ResolveError, ServiceResolver


@dataclass(frozen=True)
class Gates:
    """Schema version required at start and Services that must be ready before this one is."""

    required_schema: int | None
    schema_configmap: str
    wait_for: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_required: int | None = None) -> Gates:
        raw = env_str(env, "REQUIRED_SCHEMA_VERSION")
        if raw and not raw.isdigit():
            raise ConfigError(f"REQUIRED_SCHEMA_VERSION must be a whole number, got {raw!r}")
        required = int(raw) if raw else default_required
        return cls(required, env_str(env, "SCHEMA_CONFIGMAP", "rag-schema"), tuple(env_list(env, "WAIT_FOR")))


def read_schema_version(kube: KubeClient, configmap: str) -> int:
    """The schema version recorded in the ConfigMap; 0 when it or its key does not exist."""
    data = kube.configmap_data(configmap)
    raw = (data or {}).get("version", "0").strip()
    if not raw.isdigit():
        raise ConfigError(f"ConfigMap {configmap} holds a non-numeric schema version {raw!r}")
    return int(raw)


def enforce_schema_at_start(gates: Gates, kube: KubeClient, log: JsonLog) -> bool:
    """Check the schema once at start-up; log the reason the program must exit when it is too old."""
    if gates.required_schema is None:
        return True
    try:
        found = read_schema_version(kube, gates.schema_configmap)
    except (KubeError, ConfigError) as exc:
        log.error("schema_check_failed", configmap=gates.schema_configmap, error=str(exc))
        return False
    if found >= gates.required_schema:
        log.info("schema_ok", configmap=gates.schema_configmap, version=found, required=gates.required_schema)
        return True
    log.error(
        "schema_version_too_old",
        configmap=gates.schema_configmap,
        required=gates.required_schema,
        found=found,
        hint=f"run the migration job (ragops-lab/migrate) with TARGET_SCHEMA_VERSION={gates.required_schema}",
    )
    return False


def dependency_status(wait_for: Sequence[str], resolver: ServiceResolver) -> dict[str, str]:
    """Each awaited Service → "ready" or why it is not."""
    status = {}
    for name in wait_for:
        try:
            resolver.resolve(f"http://{name}")
            status[name] = "ready"
        except ResolveError as exc:
            status[name] = str(exc)
    return status
