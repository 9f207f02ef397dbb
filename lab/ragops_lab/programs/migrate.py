"""Migration job: brings the schema ConfigMap up to TARGET_SCHEMA_VERSION, one version at a time.

Each step is recorded with an optimistic-concurrency PUT (the resourceVersion it read), so two
jobs racing cannot both claim a step; re-running at the target is a no-op that exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragops_lab.clock import utc_now
from ragops_lab.runtime.env import ConfigError, PodEnv, env_float, env_int, env_str
from ragops_lab.runtime.kubeapi import KubeClient, KubeError
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.server import main_guard


class MigrationFailed(RuntimeError):
    """A migration step failed; the message says which and what to do."""


@dataclass(frozen=True)
class MigrateConfig:
    target: int
    configmap: str = "rag-schema"
    fail_at: int | None = None
    step_seconds: float = 0.0
    applied_by: str = "migrate"

    @classmethod
    def from_env(cls, env: Mapping[str, str], target: int | None = None) -> MigrateConfig:
        chosen = target if target is not None else env_int(env, "TARGET_SCHEMA_VERSION", -1)
        if chosen < 0:
            raise ConfigError("set TARGET_SCHEMA_VERSION (or --target) to the schema version to reach")
        fail_at = env_int(env, "FAIL_AT_VERSION", 0)
        return cls(
            target=chosen,
            configmap=env_str(env, "SCHEMA_CONFIGMAP", "rag-schema"),
            fail_at=fail_at or None,
            step_seconds=env_float(env, "STEP_SECONDS", 0.0),
            applied_by=env_str(env, "POD_NAME", "migrate"),
        )


def _schema_configmap(kube: KubeClient, name: str) -> dict[str, Any]:
    """The schema ConfigMap, created at version 0 when it does not exist yet."""
    existing = kube.get_optional("configmaps", name)
    if existing is not None:
        return existing
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": kube.namespace},
            "data": {"version": "0", "history": "[]"}}
    created = kube.request("POST", kube.path("configmaps"), body)
    return created if isinstance(created, dict) else body


def record_version(kube: KubeClient, configmap: dict[str, Any], version: int, by: str) -> dict[str, Any]:
    data = dict(configmap.get("data") or {})
    history = json.loads(data.get("history") or "[]")
    history.append({"version": version, "applied_at": utc_now(), "by": by})
    data.update(version=str(version), history=json.dumps(history))
    body = {**configmap, "data": data}
    name = configmap["metadata"]["name"]
    updated = kube.request("PUT", kube.path("configmaps", name), body)
    return updated if isinstance(updated, dict) else body


def run_migrations(kube: KubeClient, config: MigrateConfig, log: JsonLog,
                   sleep: Callable[[float], None] = time.sleep) -> int:
    """Apply every version above the recorded one up to the target; returns the version reached."""
    configmap = _schema_configmap(kube, config.configmap)
    current = int((configmap.get("data") or {}).get("version") or 0)
    if current >= config.target:
        log.info("already_at_version", version=current, target=config.target, configmap=config.configmap)
        return current
    for version in range(current + 1, config.target + 1):
        log.info("migration_started", version=version)
        sleep(config.step_seconds)
        if version == config.fail_at:
            raise MigrationFailed(f"migration to version {version} failed (FAIL_AT_VERSION); the schema stays at "
                                  f"{version - 1}: fix the migration and re-run the job")
        configmap = record_version(kube, configmap, version, config.applied_by)
        log.info("migration_applied", version=version)
    log.info("migrations_complete", version=config.target, configmap=config.configmap)
    return config.target


def migrate(env: Mapping[str, str], target: int | None) -> int:
    pod = PodEnv.from_env(env)
    config = MigrateConfig.from_env(env, target)
    log = JsonLog("migrate", pod=pod.name, configmap=config.configmap)
    try:
        run_migrations(pod.kube(), config, log)
    except KubeError as exc:
        reason = ("the schema ConfigMap changed while migrating (409 Conflict); re-run the job"
                  if exc.status == 409 else str(exc))
        log.error("migration_failed", target=config.target, error=reason)
        return 1
    except MigrationFailed as exc:
        log.error("migration_failed", target=config.target, error=str(exc))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.programs.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, help="schema version to reach (default: TARGET_SCHEMA_VERSION)")
    args = parser.parse_args(argv)
    return main_guard("migrate", lambda: migrate(os.environ, args.target))


if __name__ == "__main__":
    sys.exit(main())
