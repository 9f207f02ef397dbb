"""incident_lock through real ansible-playbook runs: one recovery per stack at a time."""

from __future__ import annotations

from harness import Cluster, Runner, task


def lock(**args: object) -> dict[str, object]:
    return task("lock", "incident_lock", **args)


def test_second_holder_is_refused_until_release(cluster: Cluster, runner: Runner) -> None:
    planned = runner.play([lock(incident_id="INC-1", holder="alice")], check=True)
    assert planned.results["lock"]["changed"] is True
    assert cluster.kubectl("get", "lease", "-n", cluster.namespace, "-o", "name") == ""

    taken = runner.play([lock(incident_id="INC-1", holder="alice")])
    assert taken.results["lock"]["action"] == "create"
    lease = cluster.get("lease", "ragops-recovery-lock")
    assert lease["spec"]["holderIdentity"] == "alice"
    assert lease["metadata"]["annotations"]["ragops.io/incident-id"] == "INC-1"

    again = runner.play([lock(incident_id="INC-1", holder="alice")])
    assert again.results["lock"]["changed"] is False

    refused = runner.play([lock(incident_id="INC-2", holder="bob")])
    assert refused.results["lock"]["failed"] is True
    assert "The stack is locked by alice for incident INC-1" in refused.results["lock"]["msg"]
    assert "bob" not in cluster.get("lease", "ragops-recovery-lock")["spec"]["holderIdentity"]

    released = runner.play([lock(incident_id="INC-1", holder="alice", state="absent")])
    assert released.results["lock"]["action"] == "release"
    assert "holderIdentity" not in cluster.get("lease", "ragops-recovery-lock")["spec"]
    bob = runner.play([lock(incident_id="INC-2", holder="bob")])
    assert bob.results["lock"]["action"] == "take"


def test_stale_lock_is_taken_over_only_when_asked(cluster: Cluster, runner: Runner) -> None:
    runner.play([lock(incident_id="INC-1", holder="alice", duration=1)])
    import time

    time.sleep(1.5)
    refused = runner.play([lock(incident_id="INC-3", holder="carol")])
    assert "the lock is stale" in refused.results["lock"]["msg"]
    assert "takeover_stale=true" in refused.results["lock"]["next_step"]
    taken = runner.play([lock(incident_id="INC-3", holder="carol", takeover_stale=True)])
    assert taken.results["lock"]["action"] == "takeover"
    assert taken.results["lock"]["previous_holder"] == "alice"
    assert "Took over the stale lock of alice" in taken.stdout
