"""Scenario B against the lab: each provider outage kind, the backup also down, failback with and
without a quality regression; check mode changes nothing and re-runs are no-ops."""

from __future__ import annotations

import io
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import ROOT, Cluster, Runner, task

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS, CORE, object_path
from ragops_lab.lab import Lab

pytestmark = pytest.mark.lab
PLAYBOOKS = ROOT / "playbooks"
GOLDEN = yaml.safe_load((ROOT / "lab" / "data" / "golden.yml").read_text())


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


@pytest.fixture
def runner(lab: Lab, tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), tmp_path)
    yield runner
    for name in ("primary", "backup"):
        faults.provider_outage(lab, name, "none")
    reset = runner.play([task("provider", "provider_switch", state="restored"),
                         task("fallback", "generator_fallback", state="restored"),
                         task("throttle", "traffic_throttle", state="restored"),
                         # A failback that rolled back keeps the lock for the incident, by design.
                         task("lock", "incident_lock", state="absent", force=True)],
                        auth={"kubeconfig": str(lab.paths.kubeconfig)})
    assert reset.failed == 0, reset.stdout


def playbook(runner: Runner, lab: Lab, name: str, *, check: bool = False, verbose: bool = False,
             **extra: t.Any) -> t.Any:
    args = ["-i", str(lab.paths.inventory), "-e", "incident_id=INC-B",
            "-e", "generator_outage_probe_timeout=1", "-e", "generator_failback_probe_timeout=1",
            "-e", "generator_outage_artifacts_dir=%s" % (runner.workdir / "artifacts"),
            "-e", "generator_failback_artifacts_dir=%s" % (runner.workdir / "artifacts"),
            "-e", "generator_failback_soak_seconds=3"]
    for key, value in extra.items():
        args += ["-e", "%s=%s" % (key, value)]
    args += ["-vvv"] if verbose else []
    return runner.run(PLAYBOOKS / ("%s.yml" % name), check=check, extra=args)


def outcome(result: t.Any, name: str) -> dict[str, t.Any]:
    """A role task's result; role tasks are recorded as "<role> : <task name>"."""
    return t.cast(t.Dict[str, t.Any], next(value for key, value in result.results.items() if key.endswith(name)))


def generator_env(lab: Lab) -> dict[str, str]:
    deployment = lab.api().get(object_path(APPS, "deployments", stack.NAMESPACE, "generator")) or {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "<ref>") for item in container["env"]}


def ask(lab: Lab, qid: str = "q001", question: str = "") -> dict[str, t.Any]:
    query = next(q for q in GOLDEN["queries"] if q["qid"] == qid) if not question else {"text": question}
    return stack.ask(lab.endpoints().services["generator"], query["text"], "" if question else qid)


def secret_keys(lab: Lab) -> list[str]:
    import base64

    secret = lab.api().get(object_path(CORE, "secrets", stack.NAMESPACE, "rag-provider-keys")) or {}
    return [base64.b64decode(value).decode() for value in (secret.get("data") or {}).values()]


def test_503_check_mode_then_switch_then_rerun_unchanged(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    before = generator_env(lab)
    checked = playbook(runner, lab, "generator_outage", check=True)
    assert checked.failed == 0, checked.stdout
    assert generator_env(lab) == before
    applied = playbook(runner, lab, "generator_outage", verbose=True)
    assert applied.failed == 0, applied.stdout
    assert outcome(applied, "Check the primary provider")["provider"]["state"] == "outage"
    assert generator_env(lab)["PROVIDER"] == "backup" and generator_env(lab)["THROTTLE_RPS"] == "50"
    answer = ask(lab)
    assert answer["status"] == 200 and answer["provider"] == "backup", answer
    assert outcome(applied, "Validate the generator's answers on the golden set")["validation"]["passed"]
    assert not any(key in applied.stdout for key in secret_keys(lab))
    again = playbook(runner, lab, "generator_outage")
    assert again.failed == 0, again.stdout
    # Only the lock (taken and released) and the evidence file change on a re-run; the generator does not.
    for name in ("Switch to the backup provider", "Throttle traffic and queue long requests"):
        assert outcome(again, name)["changed"] is False, name


@pytest.mark.parametrize("mode, state", [("429", "rate_limited"), ("401", "auth_failure"), ("hang", "outage")])
def test_each_outage_kind_switches_to_the_backup(lab: Lab, runner: Runner, mode: str, state: str) -> None:
    faults.provider_outage(lab, "primary", mode)
    applied = playbook(runner, lab, "generator_outage")
    assert applied.failed == 0, applied.stdout
    assert outcome(applied, "Check the primary provider")["provider"]["state"] == state
    assert ask(lab)["provider"] == "backup"


def test_backup_down_falls_back_to_cached_answers(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    faults.provider_outage(lab, "backup", "503")
    applied = playbook(runner, lab, "generator_outage",
                       generator_outage_answers_file=ROOT / "lab" / "data" / "answer-cache.json")
    assert applied.failed == 0, applied.stdout
    assert generator_env(lab)["FALLBACK_MODE"] == "cache"
    known = ask(lab, "q001")
    assert known["status"] == 200 and known["mode"] == "cache" and known["cached"] is True, known
    unknown = ask(lab, question="What is the airspeed of an unladen swallow?")
    assert unknown["status"] == 200 and unknown["cached"] is False and unknown["provider"] is None, unknown
    assert unknown["citations"] == [] and "safe mode" in unknown["answer"]


def test_failback_ramps_to_the_primary(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    assert playbook(runner, lab, "generator_outage").failed == 0
    faults.provider_outage(lab, "primary", "none")
    done = playbook(runner, lab, "generator_failback")
    assert done.failed == 0, done.stdout
    env = generator_env(lab)
    assert env["PROVIDER"] == "primary" and "PROVIDER_WEIGHTS" not in env and "THROTTLE_RPS" not in env
    assert ask(lab)["provider"] == "primary"


def test_failback_rolls_back_when_quality_regresses(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    assert playbook(runner, lab, "generator_outage").failed == 0
    faults.provider_outage(lab, "primary", "degraded")
    done = playbook(runner, lab, "generator_failback")
    assert done.failed == 1 and "Answer quality regressed at 10 %" in done.stdout, done.stdout
    env = generator_env(lab)
    assert env["PROVIDER"] == "backup" and "PROVIDER_WEIGHTS" not in env
    assert ask(lab)["provider"] == "backup"
