# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting components in dependency order, in order or one by one, on a fake cluster that never sleeps."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    DependencyCycle,
    RecoveryError,
    ResourceTimeout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import (
    Retrier,
    RetryPolicy,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.components import (
    Component,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.startup import (
    StartRequest,
    start_components,
    start_diff,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import Clock
from ansible_collections.ragops.recovery.tests.unit.fake_cluster import (
    APPS,
    NS,
    FakeCluster,
    TickingClock,
    components,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

ANNOTATION = "ragops.io/scaled-down-from"


@pytest.fixture
def api() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def cluster(api: FakeTransport) -> FakeCluster:
    return FakeCluster(api)


def stack() -> t.List[Component]:
    return [Component.from_params(item) for item in components()]


def start(
    api: FakeTransport, cluster: FakeCluster, **request: t.Any
) -> t.Dict[str, t.Any]:
    ticking = TickingClock(cluster)
    client = K8sClient(api, retrier=Retrier(RetryPolicy(attempts=1)))
    request.setdefault("timeout", 10)
    request.setdefault("interval", 1)
    return start_components(
        client,
        stack(),
        StartRequest(namespace=NS, now="2026-11-27T00:00:00Z", **request),
        Clock(now=ticking.now, sleep=ticking.sleep),
    )


def patches(api: FakeTransport) -> t.List[str]:
    return [
        path.rsplit("/", 1)[-1]
        for method, path, _query in api.calls
        if method == "PATCH"
    ]


def test_healthy_stack_is_left_alone_in_both_modes(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    for mode in ("in_order", "one_by_one"):
        result = start(api, cluster, mode=mode)
        assert (
            result["changed"] is False
            and result["started"] == []
            and result["scaled_down"] == []
        )
        assert result["order"] == [
            "controller",
            "vectorstore",
            "retriever",
            "generator",
        ]
    assert patches(api) == []


def test_in_order_restarts_what_is_stuck_and_waits_for_each(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    cluster.broken.update(controller="CrashLoopBackOff", generator="CrashLoopBackOff")
    cluster.tick()
    cluster.broken.clear()  # the cause is fixed (a migration ran); the pods still sit in their back-off
    result = start(api, cluster)
    assert result["changed"] is True and result["started"] == [
        "controller",
        "generator",
    ]
    assert [item["action"] for item in result["components"]] == [
        "restart",
        "none",
        "none",
        "restart",
    ]
    assert all(item["ready"] for item in result["components"])
    template = cluster.workload("controller")["spec"]["template"]["metadata"]
    assert template["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": "2026-11-27T00:00:00Z"
    }
    assert start_diff(result) == {
        "before": {
            "controller": {"replicas": 1, "ready": False},
            "generator": {"replicas": 1, "ready": False},
        },
        "after": {
            "controller": {"replicas": 1, "ready": True},
            "generator": {"replicas": 1, "ready": True},
        },
    }
    assert start(api, cluster)["changed"] is False


def test_a_partly_ready_component_is_waited_for_not_restarted(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    cluster.broken["vectorstore"] = "CrashLoopBackOff"
    cluster.tick()
    api.objects[APPS + "/statefulsets/vectorstore"]["status"]["readyReplicas"] = 1
    cluster.broken.clear()
    result = start(api, cluster)
    assert [item["action"] for item in result["components"]] == [
        "none",
        "wait",
        "none",
        "none",
    ]
    assert result["components"][1]["ready"] is True and patches(api) == []
    assert result["changed"] is False and result["started"] == []


def test_check_mode_sends_dry_runs_and_waits_for_nothing(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    api.objects[APPS + "/deployments/retriever"]["spec"]["replicas"] = 0
    cluster.tick()
    result = start(api, cluster, check_mode=True)
    assert result["changed"] is True and result["started"] == ["retriever"]
    assert [query for method, _path, query in api.calls if method == "PATCH"] == [
        (("dryRun", "All"),)
    ]
    assert api.objects[APPS + "/deployments/retriever"]["spec"]["replicas"] == 0
    planned = start(api, cluster, mode="one_by_one", check_mode=True)
    assert planned["scaled_down"] == ["generator", "vectorstore", "controller"]
    assert all(
        query == (("dryRun", "All"),)
        for method, _path, query in api.calls
        if method == "PATCH"
    )


def test_in_order_stops_at_a_component_that_never_gets_ready(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    for name in ("retriever", "generator"):
        api.objects[APPS + "/deployments/" + name]["spec"]["replicas"] = 0
    cluster.broken["controller"] = "CrashLoopBackOff"
    cluster.tick()
    with pytest.raises(ResourceTimeout) as raised:
        start(api, cluster)
    result = raised.value.to_result()
    assert result["msg"] == (
        "Timed out after 10s waiting for Deployment rag/controller to become Ready (pod "
        "controller-0: CrashLoopBackOff (3 restarts, last exit code 1)); stopped there: not "
        "started: vectorstore, retriever, generator (at zero: retriever, generator)"
    )
    assert result["failed_component"] == "controller" and result["left_down"] == [
        "retriever",
        "generator",
    ]
    assert result["last_seen"]["state"] == "crash_looping" and result["changed"] is True
    assert "stack_info" in result["next_step"]
    assert api.objects[APPS + "/deployments/retriever"]["spec"]["replicas"] == 0


def test_one_by_one_scales_down_remembers_and_brings_up_in_order(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    cluster.broken["retriever"] = "CrashLoopBackOff"
    cluster.tick()
    seen: t.List[t.Tuple[str, int]] = []
    original_tick = cluster.tick

    def recording_tick() -> None:
        original_tick()
        seen.append(
            tuple(
                int(cluster.workload(n)["spec"]["replicas"])
                for n in ("controller", "vectorstore", "retriever", "generator")  # type: ignore[arg-type]
            )
        )

    cluster.tick = recording_tick  # type: ignore[method-assign]
    cluster.broken.clear()
    result = start(api, cluster, mode="one_by_one")
    assert result["scaled_down"] == [
        "generator",
        "retriever",
        "vectorstore",
        "controller",
    ]
    assert seen[0] == (0, 0, 0, 0)
    assert seen[1:] == [(1, 0, 0, 0), (1, 2, 0, 0), (1, 2, 1, 0), (1, 2, 1, 1)]
    assert [item["action"] for item in result["components"]] == [
        "scale_down_and_up"
    ] * 4
    assert all(
        ANNOTATION not in (cluster.workload(n)["metadata"].get("annotations") or {})
        for n in ("controller", "vectorstore")
    )


def test_one_by_one_failure_leaves_the_rest_down_with_their_counts(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    cluster.broken["vectorstore"] = "CrashLoopBackOff"
    cluster.tick()
    with pytest.raises(ResourceTimeout) as raised:
        start(api, cluster, mode="one_by_one")
    result = raised.value.to_result()
    assert result["failed_component"] == "vectorstore"
    assert result["left_down"] == result["not_started"] == ["retriever", "generator"]
    assert "not started, left at zero: retriever, generator" in result["msg"]
    for name in ("retriever", "generator"):
        workload = cluster.workload(name)
        assert workload["spec"]["replicas"] == 0 and workload["metadata"][
            "annotations"
        ] == {ANNOTATION: "1"}
    cluster.broken.clear()
    again = start(api, cluster)
    assert again["started"] == ["vectorstore", "retriever", "generator"]
    assert [item["action"] for item in again["components"]][1:] == [
        "restart",
        "scale_up",
        "scale_up",
    ]
    assert cluster.workload("retriever")["spec"]["replicas"] == 1
    assert not cluster.workload("retriever")["metadata"]["annotations"]


def test_a_configured_count_is_used_when_none_was_recorded(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    api.objects[APPS + "/statefulsets/vectorstore"]["spec"]["replicas"] = 0
    client = K8sClient(api, retrier=Retrier(RetryPolicy(attempts=1)))
    ticking = TickingClock(cluster)
    parts = [Component.from_params(item) for item in components()]
    parts[1] = Component("vectorstore", "StatefulSet", replicas=4)
    result = start_components(
        client,
        parts,
        StartRequest(namespace=NS, timeout=10, interval=1),
        Clock(now=ticking.now, sleep=ticking.sleep),
    )
    assert (
        result["components"][1]["replicas"] == 4
        and cluster.workload("vectorstore")["status"]["readyReplicas"] == 4
    )


def test_cycles_and_missing_workloads_are_refused_before_any_change(
    api: FakeTransport, cluster: FakeCluster
) -> None:
    client = K8sClient(api, retrier=Retrier(RetryPolicy(attempts=1)))
    cyclic = [
        Component("controller", depends_on=("indexer",)),
        Component("indexer", depends_on=("controller",)),
    ]
    cluster.add_workload("indexer", "Deployment", 1)
    with pytest.raises(
        DependencyCycle,
        match="dependency cycle controller \u2192 indexer \u2192 controller",
    ):
        start_components(client, cyclic, StartRequest(namespace=NS), Clock())
    cluster.add_workload("retriever", "Deployment", 1, env={"WAIT_FOR": "generator"})
    with pytest.raises(
        DependencyCycle,
        match="cycle retriever \u2192 generator \u2192 retriever; retriever waits for "
        "generator \\(env WAIT_FOR\\), generator depends on retriever",
    ):
        start_components(
            client,
            stack(),
            StartRequest(namespace=NS, dependency_env="WAIT_FOR"),
            Clock(),
        )
    with pytest.raises(RecoveryError, match="Deployment rag/ghost not found"):
        start_components(
            client, [*stack(), Component("ghost")], StartRequest(namespace=NS), Clock()
        )
    assert patches(api) == []
