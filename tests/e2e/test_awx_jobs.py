"""Every job template of extensions/awx/ run against the lab as AWX runs a job (awx_job.py): a private data
directory built from the template, its survey's answers as AWX types them, the credentials' injectors,
the collection from the project sync, run by ansible-runner. The two workflows run in order, each
approval approved, each node given the artifacts of the one before, as AWX does; the safety nets' templates
run as their schedules launch them, with the survey's defaults alone.
"""

from __future__ import annotations

import base64
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from awx_job import Credential, Job, definitions, launch
from harness import snapshotted_lab
from shipped import project_checkout, project_sync

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
NAMES = {"ragops_awx_organization": "Default", "ragops_awx_project": "ragops-recovery",
         "ragops_awx_inventory": "RAG stacks", "ragops_awx_execution_environment": "ragops-recovery EE",
         "ragops_awx_kubernetes_credential": "kubernetes", "ragops_awx_s3_credential": "s3",
         "ragops_awx_notification_url": "https://chat.example.com/hooks/oncall"}
DEFS = definitions(NAMES)
# What the credentials carry; AWX keeps them out of the inventory.
CREDENTIAL_VARS = ("ragops_kubeconfig", "ragops_context", "ragops_s3_endpoint", "ragops_s3_bucket",
                   "ragops_s3_access_key", "ragops_s3_secret_key", "ragops_s3_region")
Obj = dict[str, t.Any]


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with snapshotted_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


@pytest.fixture(scope="module", name="synced")
def synced_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The project's checkout and the collections its sync installed, as AWX keeps them for every job."""
    root = tmp_path_factory.mktemp("awx-project")
    project = project_checkout(root / "project")
    collections = root / "requirements_collections"
    project_sync(project, collections)
    return project, collections


def template(name: str) -> Obj:
    return next(item for item in DEFS["controller_templates"] if item["name"] == name)


def credential_type(name: str) -> Obj:
    return next(item for item in DEFS["controller_credential_types"] if item["name"] == name)


def lab_inventory(lab: Lab) -> Obj:
    host = dict(yaml.safe_load(lab.paths.inventory.read_text())["all"]["children"]["rag_stacks"]["hosts"]["rag-lab"])
    return {"rag-lab": {key: value for key, value in host.items() if key not in CREDENTIAL_VARS}}


def kubeconfig_credential(lab: Lab) -> Credential:
    text = Path(str(lab_host(lab)["ragops_kubeconfig"])).read_text()
    return Credential(credential_type("ragops Kubernetes kubeconfig"), {"kubeconfig": text})


def bearer_token_credential(lab: Lab) -> Credential:
    """The same ServiceAccount as the kubeconfig credential, given as a URL, a token and a CA."""
    config = yaml.safe_load(Path(str(lab_host(lab)["ragops_kubeconfig"])).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ca = (base64.b64decode(cluster["certificate-authority-data"]).decode() if "certificate-authority-data" in cluster
          else Path(cluster["certificate-authority"]).read_text())
    return Credential(credential_type("ragops Kubernetes bearer token"),
                      {"host": cluster["server"], "bearer_token": user["token"], "ca_cert": ca})


def s3_credential(lab: Lab) -> Credential:
    host = lab_host(lab)
    return Credential(credential_type("ragops S3 snapshot store"), {
        "endpoint_url": host["ragops_s3_endpoint"], "region": host["ragops_s3_region"],
        "bucket": host["ragops_s3_bucket"], "access_key": host["ragops_s3_access_key"],
        "secret_key": host["ragops_s3_secret_key"]})


def provider_keys_credential(keys: dict[str, str]) -> Credential:
    text = "".join("%s: %s\n" % item for item in keys.items())
    return Credential(credential_type("ragops LLM provider keys"), {"keys": text})


def lab_provider_keys(lab: Lab) -> dict[str, str]:
    secret = lab.api().get("/api/v1/namespaces/%s/secrets/rag-provider-keys" % stack.NAMESPACE) or {}
    return {name: base64.b64decode(value).decode() for name, value in (secret.get("data") or {}).items()}


def lab_host(lab: Lab) -> Obj:
    return t.cast(Obj, yaml.safe_load(lab.paths.inventory.read_text())["all"]["children"]["rag_stacks"]["hosts"][
        "rag-lab"])


def run(lab: Lab, synced: tuple[Path, Path], workdir: Path, name: str, answers: Obj,
        credentials: list[Credential], job_id: int) -> Job:
    project, collections = synced
    task_env = {"ANSIBLE_CALLBACKS_ENABLED": "ragops.recovery.timeline",
                "RAGOPS_TIMELINE_DIR": str(workdir / ("timeline-%d" % job_id))}
    job = launch(workdir / ("job-%d" % job_id), project, collections, template(name), answers, credentials,
                 lab_inventory(lab), task_env, job_id=job_id)
    assert job.returncode == 0, job.stdout[-6000:]
    assert any("Recovery timeline" in event.get("stdout", "") for event in job.events), "no timeline event"
    return job


def generator_env(lab: Lab) -> dict[str, str]:
    deployment = lab.api().get("%s/namespaces/%s/deployments/generator" % (APPS, stack.NAMESPACE)) or {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "<ref>") for item in container["env"]}


def test_scenario_b_workflow_outage_approval_failback(lab: Lab, synced: tuple[Path, Path], tmp_path: Path) -> None:
    faults.provider_outage(lab, "primary", "503")
    # The survey answers as AWX types them: text as strings, integer and float questions as numbers.
    outage = run(lab, synced, tmp_path, "ragops: LLM provider outage",
                 {"incident_id": "INC-AWX-B", "generator_outage_max_concurrency": 4,
                  "generator_outage_throttle_rps": 40.0}, [kubeconfig_credential(lab)], 11)
    record = outage.artifacts["ragops_recovery"]["rag-lab"]
    assert record["outcome"] == "switched to backup" and record["primary"] == "outage", record
    assert isinstance(record["seconds_to_safe_mode"], float) and 0 <= record["seconds_to_safe_mode"] < 300
    env = generator_env(lab)
    assert env["PROVIDER"] == "backup" and float(env["THROTTLE_RPS"]) == 40 and env["MAX_CONCURRENCY"] == "4", env
    faults.provider_outage(lab, "primary", "none")
    # Approved; the failback node gets the workflow's answers and the outage node's artifacts.
    failback = run(lab, synced, tmp_path, "ragops: LLM provider failback",
                   {**outage.artifacts, "incident_id": "INC-AWX-B", "generator_failback_soak_seconds": 0,
                    "generator_failback_tolerance": 0.05}, [kubeconfig_credential(lab)], 12)
    record = failback.artifacts["ragops_recovery"]["rag-lab"]
    assert record["scenario"] == "generator_failback" and isinstance(record["seconds_to_recover"], float), record
    assert [step["step"] for step in record["steps"]] == [10, 25, 50, 100]
    assert generator_env(lab)["PROVIDER"] == "primary"


def test_scenario_a_workflow_quarantine_approval_recovery(lab: Lab, synced: tuple[Path, Path], tmp_path: Path) -> None:
    faults.inject(lab, "corrupt-shard", ["shard-1"])
    quarantined = run(lab, synced, tmp_path, "ragops: quarantine a shard",
                      {"shard": "shard-1", "incident_id": "INC-AWX-A", "label_pods": "true"},
                      [bearer_token_credential(lab)], 21)
    assert quarantined.returncode == 0
    entry = stack.registry_entry(lab.api(), "shard-1")
    assert entry["state"] == "quarantined" and entry["incident_id"] == "INC-AWX-A", entry
    recovered = run(lab, synced, tmp_path, "ragops: recover a vectorstore shard",
                    {**quarantined.artifacts, "shard": "shard-1", "incident_id": "INC-AWX-A"},
                    [kubeconfig_credential(lab), s3_credential(lab)], 22)
    record = recovered.artifacts["ragops_recovery"]["rag-lab"]
    assert record["outcome"] == "recovered" and record["shard"] == "shard-1", record
    assert isinstance(record["seconds_to_recover"], float) and record["snapshot"], record
    assert str(record["evidence"]).startswith("s3://"), record
    assert Path(record["postmortem"]).is_file() and Path(record["timeline"]).is_dir(), record
    assert stack.registry_entry(lab.api(), "shard-1")["state"] == "serving"
    assert lab_host(lab)["ragops_s3_secret_key"] not in recovered.stdout


def test_incident_status_template_shows_the_recovered_incident(lab: Lab, synced: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """After scenario A's workflow: the read-only template shows its incident, with its evidence in S3."""
    job = run(lab, synced, tmp_path, "ragops: incident status", {"incident_id": "INC-AWX-A", "output": "json"},
              [kubeconfig_credential(lab), s3_credential(lab)], 25)
    status = job.artifacts["ragops_incident_status"]["rag-lab"]
    assert status["incident_id"] == "INC-AWX-A" and status["incident_from"] == "given", status
    assert status["lock"]["held"] is False and status["errors"] == [], status
    assert {shard["state"] for shard in status["shards"]} == {"serving"}, status["shards"]
    evidence = [item["location"] for item in status["artifacts"]["evidence"]]
    assert evidence and all(location.startswith("s3://") and "INC-AWX-A" in location for location in evidence)
    assert lab_host(lab)["ragops_s3_secret_key"] not in job.stdout


def test_bootstrap_recovery_template(lab: Lab, synced: tuple[Path, Path], tmp_path: Path) -> None:
    job = run(lab, synced, tmp_path, "ragops: bootstrap recovery",
              {"incident_id": "INC-AWX-C", "bootstrap_recovery_wait_timeout": 120}, [bearer_token_credential(lab)], 31)
    record = job.artifacts["ragops_recovery"]["rag-lab"]
    assert record["outcome"] == "recovered" and isinstance(record["seconds_to_recover"], float), record
    assert Path(record["postmortem"]).is_file(), record


def test_nightly_snapshots_template_as_its_schedule_launches_it(lab: Lab, synced: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    job = run(lab, synced, tmp_path, "ragops: nightly snapshots", {},
              [kubeconfig_credential(lab), s3_credential(lab)], 41)
    outcome = job.artifacts["snapshot_nightly"]
    assert outcome["status"] == "ok" and len(outcome["taken"]) == 4 and outcome["breaches"] == [], outcome
    assert outcome["rpo_hours"] == 26, outcome
    assert lab_host(lab)["ragops_s3_secret_key"] not in job.stdout


def test_provider_precheck_template_passes_then_fails_naming_a_broken_backup(
        lab: Lab, synced: tuple[Path, Path], tmp_path: Path) -> None:
    job = run(lab, synced, tmp_path, "ragops: LLM provider precheck", {}, [kubeconfig_credential(lab)], 51)
    precheck = job.artifacts["ragops_precheck"]["rag-lab"]
    assert precheck["passed"] is True and list(precheck["providers"]) == ["backup"], precheck
    assert precheck["cache"]["coverage"] == 1.0, precheck
    faults.provider_outage(lab, "backup", "503")
    try:
        project, collections = synced
        failed = launch(tmp_path / "job-52", project, collections, template("ragops: LLM provider precheck"),
                        {"provider_precheck_probe_timeout": 2.5}, [kubeconfig_credential(lab)],
                        lab_inventory(lab), {}, job_id=52)
    finally:
        faults.provider_outage(lab, "backup", "none")
    assert failed.returncode != 0, failed.stdout[-6000:]
    assert "provider backup: FAILED, outage" in failed.stdout, failed.stdout[-6000:]
    assert failed.artifacts["ragops_precheck"]["rag-lab"]["failed"] == ["backup"]


def test_provider_precheck_probes_with_the_keys_of_the_provider_keys_credential(
        lab: Lab, synced: tuple[Path, Path], tmp_path: Path) -> None:
    """The credential's key is the one used: a wrong one fails the backup (its Secret holds the right one)."""
    project, collections = synced
    wrong = launch(tmp_path / "job-53", project, collections, template("ragops: LLM provider precheck"), {},
                   [kubeconfig_credential(lab), provider_keys_credential({"backup": "sk-revoked-e2e"})],
                   lab_inventory(lab), {}, job_id=53)
    assert wrong.returncode != 0, wrong.stdout[-6000:]
    precheck = wrong.artifacts["ragops_precheck"]["rag-lab"]
    assert precheck["failed"] == ["backup"], precheck
    assert precheck["providers"]["backup"]["state"] == "auth_failure", precheck["providers"]["backup"]
    assert "sk-revoked-e2e" not in wrong.stdout
    right = run(lab, synced, tmp_path, "ragops: LLM provider precheck", {},
                [kubeconfig_credential(lab), provider_keys_credential(lab_provider_keys(lab))], 54)
    assert right.artifacts["ragops_precheck"]["rag-lab"]["passed"] is True
    assert all(key not in right.stdout for key in lab_provider_keys(lab).values())


def test_restore_drill_template_as_its_schedule_launches_it(lab: Lab, synced: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    job = run(lab, synced, tmp_path, "ragops: monthly restore drill", {},
              [kubeconfig_credential(lab), s3_credential(lab)], 61)
    outcome = job.artifacts["restore_drill"]
    assert outcome["passed"] is True and outcome["namespace_kept"] is False, outcome
    assert sorted(shard["shard"] for shard in outcome["shards"]) == ["shard-0", "shard-1", "shard-2", "shard-3"]
    assert all(shard["rto_seconds"] > 0 and shard["rpo_seconds"] >= 0 for shard in outcome["shards"]), outcome
    assert lab_host(lab)["ragops_s3_secret_key"] not in job.stdout
