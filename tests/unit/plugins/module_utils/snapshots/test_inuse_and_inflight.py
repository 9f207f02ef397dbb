# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before a restore: the pods that hold the shard's claim besides its own, and the
snapshot Jobs of the shard that overlap its incident."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    inflight,
    inuse,
)

Obj = t.Dict[str, t.Any]
CLAIM = "data-vectorstore-2"


def pod(name: str, owner: t.Tuple[str, str] | None, phase: str = "Running") -> Obj:
    owners = [{"kind": owner[0], "name": owner[1], "controller": True}] if owner else []
    return {
        "metadata": {"name": name, "namespace": "rag", "ownerReferences": owners},
        "spec": {
            "nodeName": "node-1",
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}
            ],
        },
        "status": {"phase": phase},
    }


class Pods:
    """A client that lists these pods."""

    def __init__(self, pods: t.List[Obj]) -> None:
        self.pods = pods

    def list(self, kind: str, namespace: str, **_: t.Any) -> t.List[Obj]:
        return self.pods


def test_the_shards_own_pods_and_ended_pods_do_not_count() -> None:
    pods = [
        pod("vectorstore-2", ("StatefulSet", "vectorstore")),
        pod("web-7d9f-abcde", ("ReplicaSet", "web-7d9f")),
        pod("inspect-old", None, phase="Succeeded"),
    ]
    client = t.cast(t.Any, Pods(pods))
    users = inuse.other_users(client, "rag", CLAIM, "StatefulSet", "vectorstore")
    assert [p["metadata"]["name"] for p in users] == ["web-7d9f-abcde"]
    assert inuse.other_users(client, "rag", CLAIM, "Deployment", "web") == [pods[0]]


def test_a_pod_that_is_not_the_shards_is_named_with_its_controller() -> None:
    pods = [pod("vectorstore-2", ("StatefulSet", "vectorstore")), pod("inspect", None)]
    with pytest.raises(RecoveryError) as raised:
        inuse.refuse_if_used(
            t.cast(t.Any, Pods(pods)), "rag", CLAIM, "StatefulSet", "vectorstore"
        )
    error = raised.value
    assert error.msg == (
        "Refusing to restore onto claim rag/data-vectorstore-2: it is still mounted by "
        "Pod rag/inspect (no controller), which is not run by StatefulSet/vectorstore"
    )
    assert "kubectl -n rag describe pod inspect" in str(error.next_step)
    assert error.partial == {"mounted_by": ["inspect"]}


def snapshot_job(name: str, ended: str = "", failed: bool = False) -> Obj:
    runner = ["python3", "-m", inflight.SNAPSHOT_RUNNER]
    status: Obj = {}
    if ended and not failed:
        status = {
            "completionTime": ended,
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    elif ended:
        status = {
            "conditions": [
                {"type": "Failed", "status": "True", "lastTransitionTime": ended}
            ]
        }
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"args": runner}]}}},
        "status": status,
    }


def test_snapshot_jobs_running_or_ended_since_the_hold_overlap_the_incident() -> None:
    since = "2026-12-07T23:00:00Z"
    jobs = [
        snapshot_job("running"),
        snapshot_job("ended-before", "2026-12-07T22:59:59Z"),
        snapshot_job("ended-after", "2026-12-07T23:00:00Z"),
        snapshot_job("failed-after", "2026-12-07T23:05:00Z", failed=True),
        dict(
            snapshot_job("a-restore"),
            spec={"template": {"spec": {"containers": [{"args": ["x"]}]}}},
        ),
    ]
    found = [job["metadata"]["name"] for job in inflight.overlapping(jobs, since)]
    assert found == ["running", "ended-after", "failed-after"]
    # Without a hold, only the running ones.
    assert [job["metadata"]["name"] for job in inflight.overlapping(jobs, "")] == [
        "running"
    ]
