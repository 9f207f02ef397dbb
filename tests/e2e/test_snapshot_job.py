"""Job mode in the lab: a corrupt shard restored from its snapshot into a new PVC by a restore Job, and its
pod serving again; the old PVC kept as evidence."""

from __future__ import annotations

import io
import json
import shutil
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Cluster, Runner, task

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
SHARD = "shard-2"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("lab") / "state")
    output = io.StringIO()
    try:
        running.up(output)
    except Exception as exc:
        raise AssertionError("lab up failed:\n" + output.getvalue()) from exc
    try:
        yield running
    finally:
        running.down(out=None)


def lab_runner(lab: Lab, workdir: Path) -> tuple[Runner, dict[str, t.Any]]:
    cluster = Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE)
    s3 = lab.s3()
    auth = {"kubeconfig": str(lab.paths.kubeconfig), "endpoint_url": s3.url, "access_key": s3.access_key,
            "secret_key": s3.secret_key}
    return Runner(cluster, workdir), auth


def get(lab: Lab, group: str, plural: str, name: str) -> dict[str, t.Any]:
    return t.cast(t.Dict[str, t.Any], lab.api().get(object_path(group, plural, stack.NAMESPACE, name)) or {})


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".ragops")}


def test_a_corrupt_shard_is_restored_into_a_new_pvc_and_serves_again(lab: Lab, tmp_path: Path) -> None:
    runner, auth = lab_runner(lab, tmp_path)
    s3 = lab.s3()
    volume = faults.shard_volume(lab.api(), SHARD)
    good = tmp_path / "good"
    shutil.copytree(volume, good)
    common = {"shard": SHARD, "bucket": s3.bucket, "prefix": "e2e-job"}
    made = runner.play([task("snapshot", "snapshot_create", path=str(volume), snapshot_id="s-1", **common)],
                       auth=auth)
    assert made.results["snapshot"]["changed"] is True, made.stdout

    faults.corrupt_shard(lab, SHARD)
    assert tree(volume) != tree(good)
    restore = task("restore", "snapshot_restore", mode="job", workload="StatefulSet/vectorstore",
                   incident_id="INC-77", wait_timeout=180, wait_sleep=1, **common)
    planned = runner.play([restore], auth=auth, check=True, diff=True)
    plan = planned.results["restore"]
    assert plan["changed"] is True and plan["job"]["plan"]["claim"] == "data-vectorstore-2-r-s-1", planned.stdout
    assert not get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2-r-s-1")

    done = runner.play([restore], auth=auth)
    result = done.results["restore"]
    assert result["changed"] is True, json.dumps(result)[:3000]
    job = result["job"]
    assert job["pod"] == "vectorstore-2-r-s-1" and job["run"]["bytes"] > 0 and job["run"]["duration"] > 0
    new_claim = get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2-r-s-1")
    assert new_claim["metadata"]["annotations"]["ragops.io/snapshot-id"] == "s-1"
    old_claim = get(lab, CORE, "persistentvolumeclaims", "data-vectorstore-2")
    assert old_claim["metadata"]["labels"]["ragops.io/evidence"] == "inc-77"
    assert tree(volume) != tree(good)  # the evidence is untouched
    restored = Path(new_claim["metadata"]["annotations"]["lab.ragops.io/local-path"])
    assert tree(restored) == tree(good)
    service = get(lab, CORE, "services", "vectorstore-2")
    assert service["spec"]["selector"] == {"ragops.io/restore-pod": "vectorstore-2-r-s-1"}
    restore_job = get(lab, BATCH, "jobs", "ragops-restore-shard-2-s-1")
    assert restore_job["status"].get("succeeded") == 1
    assert s3.secret_key not in done.stdout and s3.secret_key not in json.dumps(done.results)

    again = runner.play([restore], auth=auth)
    assert again.results["restore"]["changed"] is False, again.stdout
