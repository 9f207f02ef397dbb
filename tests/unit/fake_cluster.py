# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A RAG stack on the in-memory API, with a fake kubelet that moves it on each time the waiter sleeps.

Workloads get one pod per wanted replica; a component named in ``broken`` crash-loops instead of
becoming Ready. A migration Job completes on the next tick and writes its version into the schema
ConfigMap (or fails, when its version is in ``failing_versions``). Tests never really sleep.
"""

from __future__ import annotations

import json
import typing as t

from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

NS = "rag"
CORE = "/api/v1/namespaces/%s" % NS
APPS = "/apis/apps/v1/namespaces/%s" % NS
BATCH = "/apis/batch/v1/namespaces/%s" % NS
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
MIGRATION_TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "rag-migrate",
        "labels": {"app.kubernetes.io/name": "rag-migrate"},
    },
    "spec": {
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "rag-migrate"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "migrate",
                        "image": "rag/migrate:1",
                        "env": [{"name": "TARGET_SCHEMA_VERSION", "value": "2"}],
                    }
                ],
            },
        },
    },
}
STACK: t.Sequence[t.Tuple[str, str, t.Sequence[str], int]] = (
    ("controller", "Deployment", (), 1),
    ("vectorstore", "StatefulSet", (), 2),
    ("retriever", "Deployment", ("controller", "vectorstore"), 1),
    ("generator", "Deployment", ("retriever",), 1),
)


def components(
    stack: t.Sequence[t.Tuple[str, str, t.Sequence[str], int]] = STACK,
) -> t.List[t.Dict[str, t.Any]]:
    """The stack as an inventory lists it."""
    return [
        {
            "name": name,
            "kind": kind,
            "depends_on": list(deps),
            "replicas": None,
            "wait_timeout": None,
        }
        for name, kind, deps, _replicas in stack
    ]


def pod(
    name: str,
    labels: t.Dict[str, str],
    ready: bool,
    crash: bool = False,
    **extra: t.Any,
) -> t.Dict[str, t.Any]:
    state: t.Dict[str, t.Any] = (
        {"running": {}} if ready else {"waiting": {"reason": "CrashLoopBackOff"}}
    )
    container = {
        "name": "main",
        "ready": ready,
        "restartCount": 3 if crash else 0,
        "state": state,
    }
    if crash:
        container["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [container],
        **extra,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "main"}]},
        "status": status,
    }


def configmap(name: str, data: t.Dict[str, str]) -> t.Dict[str, t.Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
        "data": data,
    }


class FakeCluster:
    """The stack's workloads in ``api``; :meth:`tick` plays the controllers and the kubelet once."""

    def __init__(
        self,
        api: FakeTransport,
        stack: t.Sequence[t.Tuple[str, str, t.Sequence[str], int]] = STACK,
        schema_version: str = "1",
    ) -> None:
        self.api = api
        self.broken: t.Dict[str, str] = {}
        self.failing_versions: t.Set[str] = set()
        self.ticks = 0
        for name, kind, _deps, replicas in stack:
            self.add_workload(name, kind, replicas)
        api.add(
            CORE + "/configmaps", configmap("rag-schema", {"version": schema_version})
        )
        api.add(
            CORE + "/configmaps",
            configmap(
                "rag-migration-job", {"job.yaml": json.dumps(MIGRATION_TEMPLATE)}
            ),
        )
        self.tick()

    def add_workload(
        self,
        name: str,
        kind: str,
        replicas: int,
        env: t.Optional[t.Dict[str, str]] = None,
    ) -> None:
        labels = {"app.kubernetes.io/name": name}
        container = {
            "name": "main",
            "image": "rag/%s" % name,
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
        self.api.add(
            APPS + "/" + PLURALS[kind],
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": NS, "generation": 1},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container]},
                    },
                },
            },
        )

    def workload(self, name: str) -> t.Dict[str, t.Any]:
        for plural in PLURALS.values():
            found = self.api.objects.get("%s/%s/%s" % (APPS, plural, name))
            if found:
                return found
        raise KeyError(name)

    def tick(self) -> None:
        self.ticks += 1
        for key, obj in list(self.api.objects.items()):
            if obj.get("kind") in PLURALS:
                self._sync_workload(obj)
            elif obj.get("kind") == "Job" and not (obj.get("status") or {}).get(
                "conditions"
            ):
                self._finish_job(key, obj)

    def _sync_workload(self, workload: t.Dict[str, t.Any]) -> None:
        name = workload["metadata"]["name"]
        wanted = int(workload["spec"]["replicas"])
        labels = workload["spec"]["selector"]["matchLabels"]
        for key in [
            k
            for k, o in self.api.objects.items()
            if o.get("kind") == "Pod" and o["metadata"].get("labels") == labels
        ]:
            del self.api.objects[key]
        healthy = name not in self.broken
        for index in range(wanted):
            self.api.add(
                CORE + "/pods",
                pod("%s-%d" % (name, index), dict(labels), healthy, crash=not healthy),
            )
        ready = wanted if healthy else 0
        workload["status"] = {
            "observedGeneration": 1,
            "replicas": wanted,
            "updatedReplicas": wanted,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }

    def _finish_job(self, key: str, job: t.Dict[str, t.Any]) -> None:
        name = job["metadata"]["name"]
        version = job["metadata"]["labels"]["ragops.io/migration-version"]
        failed = version in self.failing_versions
        labels = dict(
            job["spec"]["template"]["metadata"]["labels"], **{"job-name": name}
        )
        finished = pod(
            name + "-x1y2z", labels, False, phase="Failed" if failed else "Succeeded"
        )
        finished["status"]["containerStatuses"][0]["state"] = {
            "terminated": {"exitCode": 1 if failed else 0}
        }
        self.api.add(CORE + "/pods", finished)
        self.api.logs[CORE + "/pods/%s/log" % finished["metadata"]["name"]] = (
            "migration_failed\n"
            if failed
            else "migration_applied version=%s\n" % version
        )
        condition = "Failed" if failed else "Complete"
        job["status"] = {
            "conditions": [
                {
                    "type": condition,
                    "status": "True",
                    "reason": "BackoffLimitExceeded" if failed else "Completed",
                }
            ]
        }
        if not failed:
            self.api.objects[CORE + "/configmaps/rag-schema"]["data"]["version"] = (
                version
            )


class TickingClock:
    """The waiter's clock: each sleep advances time and lets the cluster move on."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.time = 1000.0
        self.sleeps: t.List[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        self.cluster.tick()
