# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Objects a Job needs, created once: a create whose answer was lost is adopted, an
object of that name that the collection did not make is refused and left alone."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    Conflict,
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import (
    K8sClient,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import jobkit
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

NS = "rag"
CORE = "/api/v1/namespaces/rag"
BATCH = "/apis/batch/v1/namespaces/rag"


class LostAnswers(FakeTransport):
    """The first create is stored, then answered 409 AlreadyExists: its answer was
    lost on the way and the repeat found the object."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next_create = True

    def request(self, method: str, path: str, **options: t.Any) -> t.Any:
        answer = super().request(method, path, **options)
        if method == "POST" and self.lose_next_create:
            self.lose_next_create = False
            raise Conflict("jobs.batch already exists", status=409)
        return answer


def restore_job() -> t.Dict[str, t.Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "ragops-restore-shard-1",
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "ragops.recovery",
                "ragops.io/shard": "shard-1",
            },
        },
        "spec": {"template": {"spec": {"containers": []}}},
    }


def test_a_create_whose_answer_was_lost_is_adopted() -> None:
    api = LostAnswers()
    assert jobkit.ensure(K8sClient(api), restore_job()) is False
    stored = api.objects[BATCH + "/jobs/ragops-restore-shard-1"]
    assert stored["metadata"]["labels"]["ragops.io/shard"] == "shard-1"
    assert [call[0] for call in api.writes()] == ["POST"]


@pytest.mark.parametrize(
    "labels",
    [{}, {"app.kubernetes.io/managed-by": "helm"}, {"ragops.io/shard": "shard-2"}],
    ids=["unlabelled", "another-manager", "another-shard"],
)
def test_an_object_the_collection_did_not_make_is_refused_and_left_alone(
    labels: t.Dict[str, str],
) -> None:
    api = FakeTransport()
    foreign = dict(
        restore_job(), metadata=dict(restore_job()["metadata"], labels=labels)
    )
    api.add(BATCH + "/jobs", foreign)
    with pytest.raises(RecoveryError) as refused:
        jobkit.ensure(K8sClient(api), restore_job())
    assert refused.value.resource == "Job rag/ragops-restore-shard-1"
    assert "was not made by ragops.recovery" in refused.value.msg
    assert "app.kubernetes.io/managed-by=ragops.recovery" in refused.value.msg
    assert "kubectl get job ragops-restore-shard-1 -n rag" in str(
        refused.value.next_step
    )
    assert api.writes() == []


def test_our_own_object_is_adopted_unchanged() -> None:
    api = FakeTransport()
    api.add(BATCH + "/jobs", restore_job())
    assert jobkit.ensure(K8sClient(api), restore_job()) is False
    assert api.writes() == []


def test_a_secret_of_that_name_that_is_not_ours_is_never_overwritten() -> None:
    api = FakeTransport()
    theirs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ragops-restore-shard-1-s3", "namespace": NS},
        "stringData": {"AWS_ACCESS_KEY_ID": "theirs"},
    }
    api.add(CORE + "/secrets", theirs)
    ours = jobkit.credentials_secret(
        "ragops-restore-shard-1-s3", NS, {"AWS_ACCESS_KEY_ID": "ours"}
    )
    with pytest.raises(RecoveryError, match="Refusing to use Secret"):
        jobkit.put_secret(K8sClient(api), ours)
    assert api.writes() == []
    assert api.objects[CORE + "/secrets/ragops-restore-shard-1-s3"]["stringData"] == {
        "AWS_ACCESS_KEY_ID": "theirs"
    }


def failed(job: t.Dict[str, t.Any], pods: int = 2) -> t.Dict[str, t.Any]:
    """The Job after its pods ended ``pods`` times, past its backoffLimit."""
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    return dict(job, status={"failed": pods, "conditions": [condition]})


def no_wait() -> Waiter:
    return Waiter(timeout=5, clock=Clock(now=lambda: 0.0, sleep=lambda s: None))


def test_a_failed_job_of_ours_is_started_again_by_the_next_run() -> None:
    api = FakeTransport()
    api.add(
        BATCH + "/jobs",
        failed(dict(restore_job(), metadata=dict(restore_job()["metadata"], uid="u1"))),
    )
    client = K8sClient(api)
    assert jobkit.retry_failed(client, restore_job(), no_wait()) is True
    assert jobkit.ensure(client, restore_job()) is True  # created afresh
    assert [call[0] for call in api.writes()] == ["DELETE", "POST"]
    assert "status" not in api.objects[BATCH + "/jobs/ragops-restore-shard-1"]


@pytest.mark.parametrize(
    "status",
    [{}, {"conditions": [{"type": "Complete", "status": "True"}]}],
    ids=["running", "succeeded"],
)
def test_a_running_or_succeeded_job_is_left_to_be_followed(
    status: t.Dict[str, t.Any],
) -> None:
    api = FakeTransport()
    api.add(BATCH + "/jobs", dict(restore_job(), status=status))
    assert jobkit.retry_failed(K8sClient(api), restore_job(), no_wait()) is False
    assert api.writes() == []


def test_a_failed_job_that_is_not_ours_is_refused_not_deleted() -> None:
    api = FakeTransport()
    theirs = dict(restore_job(), metadata=dict(restore_job()["metadata"], labels={}))
    api.add(BATCH + "/jobs", failed(theirs))
    with pytest.raises(RecoveryError, match="Refusing to use Job"):
        jobkit.retry_failed(K8sClient(api), restore_job(), no_wait())
    assert api.writes() == []


def test_a_job_whose_pods_left_no_result_fails_saying_so_and_that_a_rerun_retries() -> (
    None
):
    job = failed(restore_job())
    error = jobkit.job_failure(
        NS,
        "ragops-restore-shard-1",
        "restore shard shard-1",
        jobkit.JobProgress(),
        {},
        job,
    )
    assert error.msg == (
        "Failed to restore shard shard-1 in Job rag/ragops-restore-shard-1: the Job failed "
        "(BackoffLimitExceeded: Job has reached the specified backoff limit) after 2 pod(s) ended "
        "without a result (killed, evicted or deleted before the end)"
    )
    assert "a failed Job of ours is replaced by a new attempt" in str(error.next_step)
    assert "kubectl -n rag logs -l job-name=ragops-restore-shard-1 --prefix" in str(
        error.next_step
    )
