# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restored volume bound to the claim a StatefulSet expects, over an in-memory API whose controllers
move on while the waiter sleeps: the evidence volume is kept, nothing is destroyed, and a run killed at
any write is finished by the next one."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.quantity import (
    to_bytes,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import Retrier
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    job,
    rebind,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)
from ansible_collections.ragops.recovery.tests.unit.fake_volumes import (
    CLAIM,
    CLAIMS,
    JOBS,
    NS,
    POD,
    PODS,
    PVS,
    Crash,
    VolumeCluster,
)

SHA = "e" * 64


def client_of(fake: VolumeCluster) -> K8sClient:
    return K8sClient(fake, Retrier(sleep=lambda s: None))


def waiter(fake: VolumeCluster, timeout: int = 60) -> Waiter:
    ticks = iter(range(100_000))
    return Waiter(
        timeout=timeout,
        interval=1,
        clock=Clock(now=lambda: float(next(ticks)), sleep=lambda s: fake.tick()),
    )


def request() -> job.JobRequest:
    return job.JobRequest(
        namespace=NS,
        shard="shard-2",
        workload="StatefulSet/vectorstore",
        shard_label="ragops.io/shard",
        data_volume="data",
        image="ee:1",
        incident_id="INC-7",
        credentials={"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"},
        runner={"shard": "shard-2", "bucket": "b"},
    )


def restore(fake: VolumeCluster) -> t.Dict[str, t.Any] | None:
    """What snapshot_restore does in job mode for snapshot s-1, given the cluster as it is."""
    client = client_of(fake)
    target = job.find_target(client, request())
    plan = job.make_plan(target, request(), "s-1", SHA, 10 * 1024 * 1024)
    if job.already_restored(target, SHA):
        return None
    return job.restore_in_cluster(client, request(), plan, target, waiter(fake))


def rebind_for() -> rebind.Rebind:
    return rebind.Rebind(
        namespace=NS,
        shard="shard-2",
        shard_label="ragops.io/shard",
        claim=CLAIM,
        restore_claim="data-vectorstore-2-r-s-1",
        job="ragops-restore-shard-2-s-1",
        snapshot_id="s-1",
        incident_id="INC-7",
        incident_label="inc-7",
        annotations={"ragops.io/snapshot-id": "s-1"},
    )


def assert_restored_under_the_statefulset(fake: VolumeCluster) -> str:
    """The end state: the controller's pod Ready on its own claim, bound to the restored volume; the old
    volume kept as evidence; no volume destroyed; no restore claim or Job left."""
    claim = fake.objects[CLAIMS + "/" + CLAIM]
    restored = claim["spec"]["volumeName"]
    assert restored != "pv-old" and claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["annotations"]["ragops.io/manifest-sha256"] == SHA
    pod = fake.objects[PODS + "/" + POD]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert pod["status"]["conditions"][0]["status"] == "True"
    old = fake.objects[PVS + "/pv-old"]
    assert old["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert old["metadata"]["labels"] == {
        "ragops.io/evidence": "inc-7",
        "ragops.io/shard": "shard-2",
    }
    annotations = old["metadata"]["annotations"]
    assert annotations["ragops.io/reclaim-policy-before"] == "Delete"
    assert annotations["ragops.io/evidence-claim"] == "rag/" + CLAIM
    volume = fake.objects[PVS + "/" + restored]
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert "ragops.io/reclaim-policy-before" not in volume["metadata"]["annotations"]
    assert fake.destroyed == []
    assert CLAIMS + "/data-vectorstore-2-r-s-1" not in fake.objects
    assert fake.items(JOBS) == []
    return str(restored)


def test_the_restored_volume_ends_under_the_statefulsets_claim() -> None:
    fake = VolumeCluster()
    done = restore(fake)
    assert done is not None
    restored = assert_restored_under_the_statefulset(fake)
    assert done["pod"] == POD and done["volume"] == restored
    assert done["evidence"] == {
        "volume": "pv-old",
        "claim": CLAIM,
        "label": "ragops.io/evidence=inc-7",
    }
    assert [(s["step"], s["status"]) for s in done["steps"]] == [
        ("keep evidence", "done"),
        ("keep restored", "done"),
        ("free restored", "done"),
        ("pre-bind", "done"),
        ("release claim", "done"),
        ("restart pods", "done"),
        ("claim", "done"),
        ("bound", "done"),
        ("reclaim policy", "done"),
        ("mark restored", "done"),
    ]
    assert done["run"]["bytes"] == 10
    assert restore(fake) is None  # a re-run finds the shard restored


def test_a_claim_the_statefulset_created_first_binds_the_restored_volume() -> None:
    fake = VolumeCluster(set_creates_claims=True)
    done = restore(fake)
    assert done is not None
    assert_restored_under_the_statefulset(fake)
    claim_step = next(s for s in done["steps"] if s["step"] == "claim")
    assert claim_step["change"].startswith("annotated"), done["steps"]


def count_writes(fake: VolumeCluster) -> int:
    restore(fake)
    return fake.write_count


@pytest.mark.parametrize("set_creates_claims", [False, True])
def test_a_run_killed_at_any_write_is_finished_by_the_next_run(
    set_creates_claims: bool,
) -> None:
    writes = count_writes(VolumeCluster(set_creates_claims=set_creates_claims))
    assert writes > 10
    for crash_after in range(writes):
        fake = VolumeCluster(set_creates_claims=set_creates_claims)
        fake.crash_after = crash_after
        with pytest.raises(Crash):
            restore(fake)
        fake.tick()
        fake.crash_after = None
        restore(fake)
        assert_restored_under_the_statefulset(fake)
        creates = [c for c in fake.calls if c[0] == "POST" and c[1] == JOBS]
        assert len(creates) == 1, (crash_after, creates)


def test_a_restored_volume_too_small_for_the_claim_changes_nothing_of_the_shard() -> (
    None
):
    fake = VolumeCluster()
    fake.add_restore(size="64Mi")
    client = client_of(fake)
    pod_uid = fake.objects[PODS + "/" + POD]["metadata"]["uid"]
    with pytest.raises(RecoveryError) as caught:
        rebind.put_under_controller(client, rebind_for(), waiter(fake))
    assert "capacity 64Mi is below the request 1Gi" in caught.value.msg
    assert "unchanged" in (caught.value.next_step or "")
    assert fake.objects[CLAIMS + "/" + CLAIM]["spec"]["volumeName"] == "pv-old"
    assert fake.objects[PODS + "/" + POD]["metadata"]["uid"] == pod_uid
    restored = fake.objects[PVS + "/pv-restored"]
    assert restored["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert fake.destroyed == []


def test_a_claim_bound_elsewhere_fails_with_the_way_back() -> None:
    fake = VolumeCluster()
    fake.add_restore()
    client = client_of(fake)
    where = rebind_for()
    original = fake._bind

    def bind_to_a_new_volume(claim: t.Dict[str, t.Any]) -> None:
        if claim["metadata"]["name"] == CLAIM and not claim["spec"].get("volumeName"):
            claim["spec"]["volumeName"] = "pv-other"
            claim["status"]["phase"] = "Bound"
            return
        original(claim)

    fake._bind = bind_to_a_new_volume  # type: ignore[method-assign]
    fake.set_creates_claims = True
    with pytest.raises(RecoveryError) as caught:
        rebind.put_under_controller(client, where, waiter(fake))
    assert "instead of the restored volume pv-restored" in caught.value.msg
    assert "put the old volume back" in (caught.value.next_step or "")
    assert "ragops.io/evidence=inc-7" in (caught.value.next_step or "")
    assert [s["step"] for s in caught.value.partial["steps"]][-1] == "claim"
    assert fake.objects[PVS + "/pv-old"]["spec"]["persistentVolumeReclaimPolicy"] == (
        "Retain"
    )


def test_the_plan_lists_every_step_with_its_object() -> None:
    fake = VolumeCluster()
    target = job.find_target(client_of(fake), request())
    plan = job.make_plan(target, request(), "s-1", SHA, 10)
    assert plan.bind_claim == CLAIM and plan.pod_name == POD
    # At least the claim's request: the restored volume must fit the claim.
    assert plan.claim_size == "1024Mi"
    steps = rebind.planned(job.rebind_of(request(), plan), target.claim)
    assert [s["step"] for s in steps] == [
        "keep evidence",
        "keep restored",
        "free restored",
        "pre-bind",
        "release claim",
        "restart pods",
        "claim",
        "bound",
        "reclaim policy",
        "mark restored",
    ]
    assert steps[0]["object"] == "PersistentVolume pv-old"
    assert steps[4]["object"] == "PersistentVolumeClaim rag/" + CLAIM
    assert all(s["status"] == "planned" for s in steps)
    assert fake.writes() == []


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1Gi", 2**30),
        ("500M", 500 * 10**6),
        ("1.5Gi", 3 * 2**29),
        ("1e3", 1000),
        ("1073741824", 2**30),
        ("100m", 1),
    ],
)
def test_quantities(text: str, size: int) -> None:
    assert to_bytes(text) == size


def test_an_invalid_quantity_is_refused() -> None:
    with pytest.raises(RecoveryError, match="not a Kubernetes quantity"):
        to_bytes("1 GB")


def test_a_rerun_finds_the_claim_while_the_controllers_new_pod_waits_unlabelled() -> (
    None
):
    fake = VolumeCluster()
    fake.add_restore()
    client = client_of(fake)
    where = rebind_for()
    state = rebind._prepare(client, where, waiter(fake), [])
    rebind.release_claim(client, where, state)
    rebind.restart_pods(client, where, state)
    fake.tick(times=3)
    pod = fake.objects[PODS + "/" + POD]
    assert "ragops.io/shard" not in pod["metadata"]["labels"]  # not scheduled yet
    assert CLAIMS + "/" + CLAIM not in fake.objects
    target = job.find_target(client, request())
    assert target.claim["metadata"]["name"] == CLAIM and target.pod_name == POD
    done = restore(fake)
    assert done is not None and done["run"] == {
        "name": "ragops-restore-shard-2-s-1",
        "resumed": True,
    }
    assert_restored_under_the_statefulset(fake)
