"""The rulebooks of extensions/eda/ run by the real ansible-rulebook (Java 17, Drools) against the lab.

An Alertmanager webhook post for a corrupt shard quarantines it within seconds and recovers it; a
duplicate post during the recovery starts nothing; a provider alert runs the outage playbook; the
collection's golden canary notices a corrupted shard by itself. The time from the event to the safe mode
is printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import typing as t
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from harness import BIN, ROOT, snapshotted_lab
from lab_support import eventually
from shipped import project_checkout, project_sync

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
RULEBOOKS = ROOT / "extensions" / "eda" / "rulebooks"
TOKEN = "eda-test-token"
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="collections")
def collections_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection installed as a user installs it (its playbooks write their artifacts next to them)."""
    root = tmp_path_factory.mktemp("eda-collections")
    collections = root / "collections"
    project_sync(project_checkout(root / "project"), collections)
    return collections


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with snapshotted_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def rulebook(name: str, lab: Lab, collections: Path, workdir: Path, variables: Obj) -> Iterator[Path]:
    """ansible-rulebook running ``name`` with the lab's inventory; its output in the returned file."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "vars.yml").write_text(yaml.safe_dump(variables))
    log = workdir / "rulebook.log"
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
               ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_LOCALHOST_WARNING="0",
               RAGOPS_REPORT_DIR=str(workdir / "reports"), ANSIBLE_NOCOLOR="1")
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([str(BIN / "ansible-rulebook"), "--rulebook", str(RULEBOOKS / name), "-i",
                                    str(lab.paths.inventory), "--vars", str(workdir / "vars.yml")],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                                   start_new_session=True)
    try:
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def alert(kind: str, alertname: str, fingerprint: str, **labels: str) -> Obj:
    """An Alertmanager webhook payload (version 4), one firing alert in its group."""
    common = {"alertname": alertname, "ragops_kind": kind, **labels}
    return {"version": "4", "groupKey": "{}:{alertname=\"%s\"}" % alertname, "truncatedAlerts": 0,
            "status": "firing", "receiver": "ragops-eda", "groupLabels": {"alertname": alertname},
            "commonLabels": common, "commonAnnotations": {"summary": alertname}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": common, "annotations": {"summary": alertname},
                        "startsAt": "2026-12-07T06:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}]}


def post(port: int, payload: Obj, timeout: float = 60.0) -> None:
    """POST the alert as Alertmanager does, retrying until the webhook listens."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request("http://127.0.0.1:%d/endpoint" % port, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer %s" % TOKEN}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def state(lab: Lab, shard: str) -> str:
    return str(stack.registry_entry(lab.api(), shard)["state"])


# The first play of playbooks/vectorstore_shard_recovery.yml: one per run of the recovery.
RECOVERY_PLAY = "Choose the shards to recover and take each stack's lock"


def plays(log: Path, name: str) -> int:
    return log.read_text().count("PLAY [%s]" % name)


def lock_holder(lab: Lab) -> str:
    lease = lab.api().get("/apis/coordination.k8s.io/v1/namespaces/%s/leases/ragops-recovery-lock" % stack.NAMESPACE)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def generator_provider(lab: Lab) -> str:
    deployment = lab.api().get("%s/namespaces/%s/deployments/generator" % (APPS, stack.NAMESPACE)) or {}
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(item.get("value") for item in env if item["name"] == "PROVIDER"))


def test_alertmanager_shard_alert_quarantines_then_recovers_once(lab: Lab, collections: Path, tmp_path: Path) -> None:
    port = free_port()
    variables = {"ragops_eda_host": "127.0.0.1", "ragops_eda_port": port, "ragops_eda_token": TOKEN}
    with rulebook("alertmanager.yml", lab, collections, tmp_path, variables) as log:
        faults.inject(lab, "corrupt-shard", ["shard-2"])
        payload = alert("shard", "RagShardIndexErrors", "4f1c2a9be07d3e11", shard="shard-2")
        post(port, payload)
        sent = time.monotonic()
        eventually(lambda: state(lab, "shard-2"), lambda value: value != "serving", timeout=120,
                   what="shard-2 out of service")
        to_safe_mode = time.monotonic() - sent
        print("\nAlertmanager event -> shard-2 quarantined: %.1f s" % to_safe_mode)
        post(port, payload)  # Alertmanager repeats a firing alert: the throttle drops it.
        eventually(lambda: plays(log, RECOVERY_PLAY), lambda count: count >= 1, timeout=120)
        eventually(lambda: state(lab, "shard-2"), lambda value: value == "serving", timeout=600,
                   what="shard-2 recovered")
        print("Alertmanager event -> shard-2 serving again: %.1f s" % (time.monotonic() - sent))
        time.sleep(3)
        assert plays(log, "Quarantine a vectorstore shard") == 1, log.read_text()[-4000:]
        assert plays(log, RECOVERY_PLAY) == 1, log.read_text()[-4000:]
        entry = stack.registry_entry(lab.api(), "shard-2")
        assert entry["incident_id"] == "AM-4f1c2a9be07d3e11", entry
        assert to_safe_mode < 60, to_safe_mode

        faults.provider_outage(lab, "primary", "503")
        post(port, alert("llm_provider", "RagLlmProviderErrors", "77aa01c3d4e5f609", provider="primary"))
        eventually(lambda: generator_provider(lab), lambda value: value == "backup", timeout=300,
                   what="the generator on the backup provider")
        # The playbook goes on (golden check, throttle) and releases the stack's lock at its end.
        eventually(lambda: lock_holder(lab), lambda holder: not holder, timeout=300, what="the lock released")
        assert plays(log, "Take the generator to a safe mode during an LLM provider outage") == 1
        faults.provider_outage(lab, "primary", "none")


def test_golden_canary_sees_a_corrupted_shard_and_it_is_recovered(lab: Lab, collections: Path, tmp_path: Path) -> None:
    host = yaml.safe_load(lab.paths.inventory.read_text())["all"]["children"]["rag_stacks"]["hosts"]["rag-lab"]
    variables = {"ragops_canary_url": "%s/search" % host["ragops_retriever_url"],
                 "ragops_canary_golden_set": host["ragops_golden_set"], "ragops_canary_interval": 2}
    assert not lock_holder(lab), "a recovery still holds the stack's lock"
    with rulebook("golden_canary.yml", lab, collections, tmp_path, variables) as log:
        time.sleep(8)  # the canary's first rounds: the baseline
        faults.inject(lab, "corrupt-shard", ["shard-3"])
        broken = time.monotonic()
        eventually(lambda: state(lab, "shard-3"), lambda value: value != "serving", timeout=120,
                   what="shard-3 out of service")
        print("\ncorrupted shard-3 -> canary event -> quarantined: %.1f s" % (time.monotonic() - broken))
        eventually(lambda: state(lab, "shard-3"), lambda value: value == "serving", timeout=600,
                   what="shard-3 recovered")
        entry = stack.registry_entry(lab.api(), "shard-3")
        assert entry["incident_id"].startswith("canary-shard-3-"), entry
        assert plays(log, RECOVERY_PLAY) == 1, log.read_text()[-4000:]


@pytest.mark.parametrize("name", ["alertmanager.yml", "alertmanager_aap.yml", "golden_canary.yml"])
def test_rulebook_is_valid_for_ansible_rulebook(name: str) -> None:
    """ansible-rulebook's own schema and parser accept each rulebook, the AAP one included (its
    run_job_template actions need a controller to run)."""
    script = ("import sys, yaml; from ansible_rulebook.validators import Validate; "
              "from ansible_rulebook import rules_parser; from ansible_rulebook.conf import settings; "
              "import shutil; settings.ansible_galaxy_path = shutil.which('ansible-galaxy'); "
              "data = yaml.safe_load(open(sys.argv[1])); Validate.rulebook(data); "
              "sets = rules_parser.parse_rule_sets(data, {k: 'x' for k in sys.argv[2:]}); "
              "print([a.action for r in sets[0].rules for a in r.actions])")
    names = ["ragops_eda_host", "ragops_eda_port", "ragops_eda_token", "ragops_aap_organization",
             "ragops_canary_url", "ragops_canary_golden_set", "ragops_canary_interval"]
    done = subprocess.run([str(BIN / "python"), "-c", script, str(RULEBOOKS / name), *names], capture_output=True,
                          text=True, timeout=120, check=False,
                          env=dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
                                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections")))
    assert done.returncode == 0, done.stderr
    expected = "run_job_template" if name.endswith("_aap.yml") else "run_playbook"
    assert done.stdout.count(expected) == (2 if name == "golden_canary.yml" else 3), done.stdout
