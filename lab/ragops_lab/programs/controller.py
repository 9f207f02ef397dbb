"""Controller: the control plane every other component waits for.

It refuses to start on a schema older than it requires (the pod crash-loops until the migration
job has run: the bootstrap deadlock), and it is ready only while the schema stays new enough and
every Service in WAIT_FOR has a Ready pod — two components waiting for each other never start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from ragops_lab.runtime.env import ConfigError, PodEnv
from ragops_lab.runtime.gates import Gates, dependency_status, enforce_schema_at_start, read_schema_version
from ragops_lab.runtime.kubeapi import KubeClient, KubeError
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.resolve import ServiceResolver, TtlCache
from ragops_lab.runtime.server import App, Router, add_health, main_guard, ok, run_app

STATUS_TTL_SECONDS = 1.0


class ControllerService:
    def __init__(self, gates: Gates, kube: KubeClient, log: JsonLog) -> None:
        self.gates = gates
        self.kube = kube
        self.log = log
        self.resolver = ServiceResolver(kube)
        self._schema = TtlCache(self._read_schema, STATUS_TTL_SECONDS)

    def _read_schema(self) -> int | str:
        """The recorded schema version, or why it cannot be read."""
        try:
            return read_schema_version(self.kube, self.gates.schema_configmap)
        except (KubeError, ConfigError) as exc:
            return str(exc)

    def status(self) -> dict[str, Any]:
        return {
            "schema_version": self._schema.get(),
            "required": self.gates.required_schema,
            "dependencies": dependency_status(self.gates.wait_for, self.resolver),
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        status = self.status()
        version, required = status["schema_version"], self.gates.required_schema or 0
        if not isinstance(version, int):
            return False, {"reason": f"cannot read schema version: {version}", **status}
        if version < required:
            return False, {"reason": f"schema version {version} is older than the required {required}", **status}
        if any(state != "ready" for state in status["dependencies"].values()):
            return False, {"reason": "waiting for dependencies", **status}
        return True, status

    def app(self) -> App:
        router = Router()
        router.add("GET", "/status", lambda _: ok(self.status()))
        add_health(router, self.readiness)
        return App("controller", router, self.log)


def serve(env: Mapping[str, str]) -> int:
    pod = PodEnv.from_env(env)
    gates = Gates.from_env(env, default_required=1)
    log = JsonLog("controller", pod=pod.name)
    kube = pod.kube()
    if not enforce_schema_at_start(gates, kube, log):
        return 1
    if gates.wait_for:
        log.info("waiting_for_dependencies", services=list(gates.wait_for))
    return run_app(ControllerService(gates, kube, log).app(), pod)


def main() -> int:
    return main_guard("controller", lambda: serve(os.environ))


if __name__ == "__main__":
    sys.exit(main())
