"""The lab's own life cycle: a quick `up`, a `down` that leaves nothing behind (after a dependency cycle
broke the stack), a pending migration on a lab of its own, and the drill from start to end."""

from __future__ import annotations

import glob
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lab_support import eventually, fresh_lab_fixture, listening_sockets  # noqa: F401 - pytest finds fixtures by name

from ragops_lab import faults, stack
from ragops_lab.agent.api import BATCH, CORE, object_path
from ragops_lab.drills import shard_recovery
from ragops_lab.lab import Lab, kubectl
from ragops_lab.services import is_running

pytestmark = pytest.mark.lab


def lab_cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The lab command as `make lab-up` and `make lab-down` run it."""
    env = {**os.environ, "PYTHONPATH": str(stack.LAB_DIR)}
    return subprocess.run([sys.executable, "-m", "ragops_lab", "--state-dir", str(state), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def lab_sockets(lab: Lab) -> set[tuple[str, int]]:
    """What the running lab listens on: the API, SeaweedFS, Service addresses and pods."""
    api_port = int(lab.paths.api_url.read_text().strip().rsplit(":", 1)[1])
    s3_ports = json.loads((lab.paths.root / "s3" / "ports.json").read_text())
    pods = lab.api().list(CORE, "pods", stack.NAMESPACE)[0]
    addresses = [url.removeprefix("http://") for url in lab.endpoints().services.values()]
    return ({("127.0.0.1", api_port)} | {("127.0.0.1", int(p)) for p in s3_ports}
            | {(p["status"]["podIP"], 8080) for p in pods}
            | {(a.split(":")[0], int(a.split(":")[1])) for a in addresses})


def assert_dependency_cycle(lab: Lab) -> None:
    """The fault through the command line: controller and retriever wait for each other, never Ready."""
    fault = lab_cli(lab.paths.root, "fault", "dependency-cycle")
    assert fault.returncode == 0 and "controller WAIT_FOR=retriever" in fault.stdout, fault.stderr
    waiting = stack.not_ready(lab.api())
    # The generator, downstream of the retriever, loses readiness only once its resolver cache expires.
    assert {"Deployment/controller", "Deployment/retriever"} <= set(waiting)
    controller = faults.pods_of(lab.api(), "controller")[0]
    assert "waiting_for_dependencies" in faults.pod_log(lab.api(), controller["metadata"]["name"])
    selector = "app.kubernetes.io/name in (controller,retriever)"
    readiness = kubectl(lab.paths.kubeconfig, "get", "pods", "-l", selector, "--no-headers").stdout
    assert [line.split()[1] for line in readiness.splitlines()] == ["0/1", "0/1"]


def test_up_works_and_down_leaves_nothing_behind_even_when_broken(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = time.monotonic()
    up = lab_cli(state, "up")
    took = time.monotonic() - started
    lab = Lab(state)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"lab up took {took:.1f}s")  # its speed is a figure to report, not a test verdict
        sockets = lab_sockets(lab)
        assert sockets <= listening_sockets()
        network = next(iter(lab.endpoints().services.values())).removeprefix("http://").split(".")[:2]
        s3_ports = json.loads((state / "s3" / "ports.json").read_text())
        assert_dependency_cycle(lab)
        processes = lab.running_processes()
        assert len(processes) >= 16, "etcd, the API server, controller-manager, scheduler, agent, SeaweedFS, ten pods"
    except BaseException:
        lab.down(out=None)  # a failed check must not leave a control plane running for the rest of the suite
        raise

    down = lab_cli(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [pid for pid in processes if is_running(pid)]
    assert not lab.running_processes()
    still = listening_sockets()
    assert not sockets & still
    assert not [s for s in still if s[0].split(".")[:2] == network]
    assert not [path for port in s3_ports for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock")]
    assert "lab is down" in lab_cli(state, "status").stdout


def test_a_pending_migration_crash_loops_until_the_migration_job_runs(fresh_lab: Lab) -> None:
    api = fresh_lab.api()
    reported = faults.inject(fresh_lab, "pending-migration", [])
    assert "schema_version_too_old" in reported and "last exit code 1" in reported
    controller = ("get", "pods", "-l", "app.kubernetes.io/name=controller")
    eventually(lambda: kubectl(fresh_lab.paths.kubeconfig, *controller).stdout,
               lambda table: "CrashLoopBackOff" in table, 10, "kubectl to show the crash loop")
    template = (api.get(object_path(CORE, "configmaps", stack.NAMESPACE, stack.MIGRATION_JOB_CONFIGMAP)) or {})
    job = yaml.safe_load(template["data"]["job.yaml"])
    api.create(object_path(BATCH, "jobs", stack.NAMESPACE), job)
    done = eventually(lambda: api.get(object_path(BATCH, "jobs", stack.NAMESPACE, job["metadata"]["name"])) or {},
                      lambda j: j.get("status", {}).get("succeeded") == 1, 20, "the migration Job")
    assert done["status"]["conditions"][-1]["type"] == "Complete"
    eventually(lambda: stack.not_ready(api), lambda waiting: not waiting, 40, "every component to recover")


def test_the_drill_recovers_the_broken_shard_and_stops_the_lab(tmp_path: Path) -> None:
    if not (shard_recovery.COLLECTIONS_DIR / "ansible_collections" / "ragops" / "recovery").exists():
        pytest.skip("the collection is not linked into build/collections (make venv)")
    lab = Lab(tmp_path / "state")
    output = io.StringIO()
    assert shard_recovery.run(lab, output) == 0, output.getvalue()
    text = output.getvalue()
    assert "checksum mismatch" in text and "shard-2" in text and "serving" in text
    # The nightly snapshot predates the newest documents: the re-index brings them back.
    assert re.search(r"re-index \| succeeded, since \S+: [1-9]\d* documents", text), text
    assert "Drill passed." in text and not lab.running_processes()
