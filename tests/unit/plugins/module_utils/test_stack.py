# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a stack's components and diagnosing why it does not come up."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import ApiError
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.status import (
    pod_summary,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import (
    Retrier,
    RetryPolicy,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.components import (
    Component,
    ComponentStatus,
    Workload,
    component_status,
    observed_dependencies,
    stack_graph,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.diagnosis import (
    StackQuery,
    describe_stack,
    diagnose,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.migration import (
    MigrationSource,
)
from ansible_collections.ragops.recovery.tests.unit.fake_cluster import (
    BATCH,
    CORE,
    NS,
    FakeCluster,
    components,
    pod,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

LAB = [
    Component("controller"),
    Component("vectorstore", "StatefulSet"),
    Component("retriever", depends_on=("controller", "vectorstore")),
    Component("generator", depends_on=("retriever",)),
]


def deployment(
    name: str,
    replicas: int = 1,
    ready: int = 1,
    env: t.Optional[t.Dict[str, str]] = None,
    annotations: t.Optional[t.Dict[str, str]] = None,
) -> t.Dict[str, t.Any]:
    container = {
        "name": "main",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"spec": {"containers": [container]}},
        },
        "status": {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def status(name: str, state: str = "ready") -> ComponentStatus:
    return ComponentStatus(name, state, state)


def client_for(api: FakeTransport) -> K8sClient:
    return K8sClient(api, retrier=Retrier(RetryPolicy(attempts=1)))


def test_pod_summary_names_the_stuck_init_container_and_exit_codes() -> None:
    stuck = pod(
        "retriever-0",
        {},
        False,
        phase="Pending",
        initContainerStatuses=[
            {
                "name": "wait-for-controller",
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 2}},
            }
        ],
    )
    summary = pod_summary(stuck)
    assert summary["stuck_init"] == {
        "name": "wait-for-controller",
        "state": "waiting",
        "reason": "CrashLoopBackOff",
        "ready": False,
        "restarts": 4,
        "exit_code": 2,
    }
    found = component_status(
        Workload(Component("retriever"), deployment("retriever", ready=0), [stuck]), NS
    )
    assert found.state == "init_stuck"
    assert (
        found.reason
        == "pod retriever-0: init container wait-for-controller CrashLoopBackOff (4 restarts, "
        "last exit code 2)"
    )
    done = pod(
        "a",
        {},
        True,
        initContainerStatuses=[
            {"name": "init", "state": {"terminated": {"exitCode": 0}}}
        ],
    )
    assert pod_summary(done)["stuck_init"] is None


@pytest.mark.parametrize(
    "workload, expected",
    [
        (Workload(Component("a"), None), ("missing", "Deployment rag/a not found")),
        (
            Workload(
                Component("a"),
                deployment("a", 0, 0, annotations={"ragops.io/scaled-down-from": "4"}),
            ),
            ("scaled_down", "scaled to 0 by the collection (had 4)"),
        ),
        (Workload(Component("a"), deployment("a", 2, 2)), ("ready", "2/2 Ready")),
        (
            Workload(Component("a"), deployment("a", 1, 0)),
            ("pending", "0 of 1 pods exist, none failing yet"),
        ),
        (
            Workload(
                Component("a"),
                deployment("a", 1, 0),
                [pod("a-1", {}, False, crash=True)],
            ),
            (
                "crash_looping",
                "pod a-1: CrashLoopBackOff (3 restarts, last exit code 1)",
            ),
        ),
        (
            Workload(
                Component("a"),
                deployment("a", 1, 0),
                [dict(pod("a-1", {}, True), status={"phase": "Running"})],
            ),
            ("not_ready", "pod a-1: Running but not Ready (readiness probe failing)"),
        ),
    ],
)
def test_component_status(workload: Workload, expected: t.Tuple[str, str]) -> None:
    found = component_status(workload, NS)
    assert (found.state, found.reason) == expected


def test_observed_dependencies_come_from_the_env_and_name_known_components_only() -> (
    None
):
    workloads = [
        Workload(
            Component("controller"),
            deployment("controller", env={"WAIT_FOR": "retriever.rag.svc:80"}),
        ),
        Workload(
            Component("retriever"),
            deployment("retriever", env={"WAIT_FOR": "controller, ghost,"}),
        ),
        Workload(Component("generator"), None),
    ]
    assert observed_dependencies(workloads, "WAIT_FOR") == {
        "controller": ["retriever"],
        "retriever": ["controller"],
    }
    stack = stack_graph(
        [
            Component("controller"),
            Component("retriever", depends_on=("controller",)),
            Component("generator"),
        ],
        workloads,
        "WAIT_FOR",
    )
    assert stack.explain(["controller", "retriever", "controller"]) == (
        "controller waits for retriever (env WAIT_FOR), retriever depends on controller (depends_on)"
    )


def test_diagnosis_precedence_cycle_then_missing_then_migration_then_readiness() -> (
    None
):
    cyclic = stack_graph(
        [
            Component("a", depends_on=("b",)),
            Component("b", depends_on=("a",)),
            Component("c"),
        ],
        [],
        None,
    )
    found = diagnose(
        [status("a", "not_ready"), status("b", "not_ready"), status("c", "missing")],
        cyclic,
        None,
    )
    assert (
        found["cause"] == "dependency_cycle"
        and found["cycle_text"] == "a \u2192 b \u2192 a"
    )
    assert found["blocked"] == ["a", "b"] and found["root_causes"] == ["a", "b"]

    stack = stack_graph(LAB, [], None)
    pending = {
        "pending": True,
        "current_version": "1",
        "target_version": "2",
        "active": [],
        "failed": [],
    }
    statuses = [
        status("controller", "crash_looping"),
        status("vectorstore"),
        status("retriever", "crash_looping"),
        status("generator", "not_ready"),
    ]
    assert (
        diagnose([status("controller", "missing"), *statuses[1:]], stack, pending)[
            "cause"
        ]
        == "missing_components"
    )
    found = diagnose(statuses, stack, pending)
    assert found["cause"] == "pending_migration"
    assert found["blocking_migration"] == {
        "job": None,
        "status": "pending",
        "current_version": "1",
        "target_version": "2",
    }
    assert found["blocked"] == ["controller", "retriever", "generator"]
    running = diagnose(statuses, stack, dict(pending, active=["rag-migrate-v2"]))
    assert (
        running["cause"] == "migration_running"
        and running["blocking_migration"]["job"] == "rag-migrate-v2"
    )
    failed = diagnose(statuses, stack, dict(pending, failed=["rag-migrate-v2"]))
    assert (
        failed["cause"] == "migration_failed" and "rag-migrate-v2" in failed["summary"]
    )

    found = diagnose(statuses, stack, dict(pending, pending=False))
    assert found["cause"] == "not_ready" and found["root_causes"] == ["controller"]
    assert found["blocked"] == ["retriever", "generator"]
    down = diagnose([status(c.name, "scaled_down") for c in LAB], stack, None)
    assert down["cause"] == "scaled_down" and down["root_causes"] == [
        "controller",
        "vectorstore",
    ]
    healthy = diagnose([status(c.name) for c in LAB], stack, None)
    assert healthy["healthy"] is True and healthy["cause"] == "healthy"


def test_describe_stack_reads_components_pods_logs_and_migration() -> None:
    api = FakeTransport()
    cluster = FakeCluster(api)
    cluster.broken["controller"] = "CrashLoopBackOff"
    cluster.tick()
    api.logs[CORE + "/pods/controller-0/log"] = '{"event": "schema_version_too_old"}\n'
    source = MigrationSource(
        NS,
        "rag-migration-job",
        "job.yaml",
        None,
        None,
        "TARGET_SCHEMA_VERSION",
        None,
        "rag-schema",
        "version",
    )
    query = StackQuery(
        NS, [Component.from_params(c) for c in components()], None, source, log_lines=5
    )
    report = describe_stack(client_for(api), query)
    controller = report["components"][0]
    assert controller["state"] == "crash_looping" and controller["ready"] is False
    logs = controller["pods"][0]["logs"]
    assert (
        logs["lines"] == ['{"event": "schema_version_too_old"}']
        and logs["previous_lines"] == logs["lines"]
    )
    assert "logs" not in report["components"][1]["pods"][0]
    assert report["graph"]["order"] == [
        "controller",
        "vectorstore",
        "retriever",
        "generator",
    ]
    assert (
        report["migration"]["pending"] is True
        and report["migration"]["target_version"] == "2"
    )
    assert report["migration"]["jobs"] == []
    assert report["diagnosis"]["cause"] == "pending_migration"
    assert (
        "GET",
        CORE + "/pods/controller-0/log",
        (("container", "main"), ("tailLines", "5")),
    ) in api.calls


def test_an_unreadable_log_is_reported_not_fatal() -> None:
    api = FakeTransport()
    cluster = FakeCluster(api)
    cluster.broken.update(retriever="CrashLoopBackOff", generator="CrashLoopBackOff")
    cluster.tick()
    api.fail("GET", "/pods/retriever-0/log", ApiError("log gone", status=400), times=2)
    query = StackQuery(NS, [Component.from_params(c) for c in components()])
    report = describe_stack(client_for(api), query)
    assert report["components"][2]["pods"][0]["logs"]["error"].startswith(
        "Failed to read the log of Pod"
    )
    assert report["migration"] == {"configured": False, "pending": False}
    assert report["diagnosis"]["cause"] == "not_ready" and report["diagnosis"][
        "root_causes"
    ] == ["retriever"]
    assert report["diagnosis"]["blocked"] == ["generator"]


def test_migration_jobs_that_matter_carry_their_logs() -> None:
    api = FakeTransport()
    cluster = FakeCluster(api)
    cluster.failing_versions.add("2")
    client = client_for(api)
    template = json.loads(
        api.objects[CORE + "/configmaps/rag-migration-job"]["data"]["job.yaml"]
    )
    template["metadata"]["labels"]["ragops.io/migration-version"] = "2"
    for name in ("rag-migrate-v2", "rag-migrate-v2-attempt-2"):
        api.request(
            "POST",
            BATCH + "/jobs",
            body=dict(template, metadata=dict(template["metadata"], name=name)),
        )
        cluster.tick()
    api.objects[BATCH + "/jobs/rag-migrate-v2-attempt-2"]["status"] = {}
    source = MigrationSource(
        NS,
        "rag-migration-job",
        "job.yaml",
        None,
        None,
        "TARGET_SCHEMA_VERSION",
        None,
        "rag-schema",
        "version",
    )
    report = describe_stack(
        client, StackQuery(NS, [Component("controller")], migration=source)
    )["migration"]
    failed, running = report["jobs"]
    assert (failed["status"], failed["exit_code"], failed["logs"]) == (
        "failed",
        1,
        ["migration_failed"],
    )
    assert running["status"] == "active" and report["active"] == [
        "rag-migrate-v2-attempt-2"
    ]
    assert report["failed"] == ["rag-migrate-v2"]
