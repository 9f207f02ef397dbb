# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    ApiError,
    ResourceTimeout,
)
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.readiness import (
    deployment_ready,
    job_finished,
    job_succeeded,
    pod_ready,
    statefulset_ready,
)
from ansible_collections.ragops.recovery.plugins.module_utils.retry import (
    Retrier,
    RetryPolicy,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import (
    Clock,
    Waiter,
)


class FakeClock:
    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


def failing(statuses: list[int], result: str = "ok", retry_after: float | None = None):  # type: ignore[no-untyped-def]
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(statuses):
            raise ApiError(
                "boom", status=statuses[len(calls) - 1], retry_after=retry_after
            )
        return result

    return call, calls


def test_policy_retries_throttling_always_and_server_errors_only_when_idempotent() -> (
    None
):
    policy = RetryPolicy(attempts=3)
    assert policy.should_retry(429, 1, idempotent=False)
    assert policy.should_retry(503, 1, idempotent=True)
    assert not policy.should_retry(503, 1, idempotent=False)
    assert not policy.should_retry(0, 1, idempotent=False)
    assert not policy.should_retry(404, 1, idempotent=True)
    assert not policy.should_retry(409, 1, idempotent=True)
    assert not policy.should_retry(503, 3, idempotent=True)


def test_delay_is_jittered_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    assert policy.delay(1, None, lambda: 0.5) == 0.5
    assert policy.delay(10, None, lambda: 1.0) == 4.0
    assert policy.delay(1, 3.0, lambda: 0.1) == 3.0
    assert policy.delay(1, 30.0, lambda: 0.1) == 30.0


def test_retrier_repeats_until_success_and_sleeps_between() -> None:
    clock = FakeClock()
    retrier = Retrier(RetryPolicy(attempts=5), sleep=clock.sleep, rand=lambda: 1.0)
    call, calls = failing([503, 500, 429])
    assert retrier.call(call, idempotent=True) == "ok"
    assert len(calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_retrier_gives_up_and_reports_attempts() -> None:
    retrier = Retrier(RetryPolicy(attempts=3), sleep=lambda s: None, rand=lambda: 0.0)
    call, calls = failing([503] * 5)
    with pytest.raises(ApiError) as error:
        retrier.call(call, idempotent=True)
    assert error.value.attempts == 3
    assert len(calls) == 3


def test_retrier_does_not_repeat_a_non_idempotent_call_on_5xx() -> None:
    retrier = Retrier(RetryPolicy(), sleep=lambda s: None)
    call, calls = failing([500])
    with pytest.raises(ApiError):
        retrier.call(call, idempotent=False)
    assert len(calls) == 1


def test_waiter_returns_value_duration_and_polls() -> None:
    clock = FakeClock()
    values = iter([1, 2, 3])
    outcome = Waiter(timeout=60, interval=5, clock=Clock(clock.now, clock.sleep)).until(
        "counter", lambda: next(values), lambda v: v == 3
    )
    assert (outcome.value, outcome.duration, outcome.polls) == (3, 10.0, 3)


def test_waiter_times_out_with_last_state_and_never_oversleeps() -> None:
    clock = FakeClock()
    waiter = Waiter(timeout=7, interval=5, clock=Clock(clock.now, clock.sleep))
    with pytest.raises(ResourceTimeout) as error:
        waiter.until(
            "pod x Ready",
            lambda: {"phase": "Pending"},
            lambda v: False,
            next_step="kubectl describe",
        )
    assert error.value.last_seen == {"phase": "Pending"}
    assert error.value.msg == "Timed out after 7s waiting for pod x Ready"
    assert error.value.to_result()["next_step"] == "kubectl describe"
    assert clock.sleeps == [5, 2]


def test_a_waiter_on_a_change_looks_again_soon_then_less_often() -> None:
    clock = FakeClock()
    waiter = Waiter.for_change(
        timeout=5, interval=2, clock=Clock(clock.now, clock.sleep)
    )
    with pytest.raises(ResourceTimeout):
        waiter.until("rollout", lambda: "progressing", lambda v: False)
    # 0.1 s after the first look, doubling up to the interval, the last pause cut at the deadline.
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 1.9])
    quick = FakeClock()
    values = iter(["progressing", "progressing", "done"])
    outcome = Waiter.for_change(60, 2, Clock(quick.now, quick.sleep)).until(
        "rollout", lambda: next(values), lambda v: v == "done"
    )
    assert outcome.polls == 3 and outcome.duration == pytest.approx(0.3)
    # Never a first pause longer than the interval asked for.
    assert Waiter.for_change(60, 0.05).first == 0.05


def ready_pod(phase: str = "Running", ready: str = "True") -> dict:  # type: ignore[type-arg]
    return {
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
    }


def test_pod_ready() -> None:
    assert pod_ready(ready_pod())
    assert not pod_ready(ready_pod(ready="False"))
    assert not pod_ready(ready_pod(phase="Pending"))
    assert not pod_ready({})


def rollout(
    generation: int, observed: int, replicas: int, updated: int, ready: int
) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_rollout_predicates_need_the_newest_generation_fully_updated() -> None:
    assert deployment_ready(rollout(2, 2, 3, 3, 3))
    assert not deployment_ready(rollout(3, 2, 3, 3, 3))
    assert not deployment_ready(rollout(2, 2, 3, 2, 3))
    assert statefulset_ready(rollout(1, 1, 1, 1, 1))
    assert not statefulset_ready(rollout(1, 1, 1, 1, 0))


def test_job_predicates() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert job_finished(complete) and job_succeeded(complete)
    assert job_finished(failed) and not job_succeeded(failed)
    assert not job_finished({"status": {}})
