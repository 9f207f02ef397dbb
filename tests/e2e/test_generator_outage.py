"""Scenario B against one lab: each provider outage kind switches to the healthy backup, the backup also
down falls back to cached answers, a failback that succeeds and one whose quality regresses and rolls
back; check mode changes nothing, re-runs are no-ops, and no provider key shows in any output at -vvv. People are
told through a local webhook receiver (no URL printed, a receiver that fails or is down failing nothing), and each
run's report and timeline are kept in the write-once evidence store.

The lab is started once for the module. Before each test the generator is put back as `up` left it
(one rollout through the API, only when a test changed it), the providers are healed and the lock is
released, so every test starts from a generator on the primary without paying for a new lab.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import tarfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import nothing_lost
import nothing_written
import pytest
import yaml
from harness import ROOT, Cluster, Result, Runner, task
from lab_support import running_lab
from webhook_receiver import SLACK_PATH, Receiver, closed_port_url, receiving

from ragops_lab import faults, stack
from ragops_lab.agent.api import APPS, CORE, object_path
from ragops_lab.lab import Lab
from ragops_lab.services import wait_for

pytestmark = pytest.mark.lab
PLAYBOOKS = ROOT / "playbooks"
GOLDEN = yaml.safe_load((ROOT / "lab" / "data" / "golden.yml").read_text())
GENERATOR = object_path(APPS, "deployments", stack.NAMESPACE, "generator")
LOCK = object_path("/apis/coordination.k8s.io/v1", "leases", stack.NAMESPACE, "ragops-recovery-lock")
PRECHECK = object_path(CORE, "configmaps", stack.NAMESPACE, "rag-provider-precheck")
RESET_TIMEOUT_SECONDS = 60
SETTLE_SECONDS = 10

Obj = t.Dict[str, t.Any]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab") / "state") as running:
        yield running


@pytest.fixture(scope="module")
def pristine(lab: Lab) -> Obj:
    """The generator Deployment as `up` left it: on the primary, no fallback, no throttle."""
    return t.cast(Obj, lab.api().get(GENERATOR))


def answers_from(lab: Lab, provider: str) -> bool:
    try:
        return ask(lab).get("provider") == provider
    except (OSError, TimeoutError):
        return False


def assert_answers_from(lab: Lab, provider: str) -> None:
    """The generator answers from `provider`, allowing for a pod of the previous rollout still terminating
    (the Service forwards to it until its grace period ends)."""
    wait_for(lambda: answers_from(lab, provider), SETTLE_SECONDS, "an answer from provider %s" % provider)


def reset(lab: Lab, pristine: Obj) -> None:
    """Providers healthy, the lock released, no precheck recorded, the generator's template and annotations as
    `up` left them."""
    for name in ("primary", "backup"):
        faults.provider_outage(lab, name, "none")
    api = lab.api()
    api.delete(LOCK)
    api.delete(PRECHECK)
    current = t.cast(Obj, api.get(GENERATOR))
    annotations = pristine["metadata"].get("annotations") or {}
    if current["spec"]["template"] != pristine["spec"]["template"] or \
            (current["metadata"].get("annotations") or {}) != annotations:
        replaced = copy.deepcopy(current)
        replaced["spec"]["template"] = copy.deepcopy(pristine["spec"]["template"])
        replaced["metadata"]["annotations"] = dict(annotations)
        api.call("PUT", GENERATOR, replaced)
    wait_for(lambda: stack.rolled_out(t.cast(Obj, api.get(GENERATOR))) and answers_from(lab, "primary"),
             RESET_TIMEOUT_SECONDS, "the generator back on the primary")


@pytest.fixture
def runner(lab: Lab, pristine: Obj, tmp_path: Path) -> Runner:
    reset(lab, pristine)
    # Pipelining hands each module to the interpreter on stdin instead of copying it into a temporary
    # directory first: the same modules run, with fewer processes per task (most of a task's time here).
    return Runner(Cluster(None, lab.paths.kubeconfig, "", namespace=stack.NAMESPACE), tmp_path,
                  env={"ANSIBLE_PIPELINING": "1"})


def playbook(runner: Runner, lab: Lab, name: str, *, check: bool = False, artifacts_dir: bool = True,
             **extra: t.Any) -> Result:
    """A Scenario B playbook at -vvv (so that the no-secret check sees everything a user could ask for);
    ``extra`` values that are not lists or dicts are given as text, as an AWX survey gives them."""
    args = ["-i", str(lab.paths.inventory), "-e", "incident_id=INC-B",
            "-e", "generator_outage_probe_timeout=1", "-e", "generator_failback_probe_timeout=1",
            "-e", "generator_failback_soak_seconds=0", "-vvv"]
    if artifacts_dir:
        args += ["-e", "generator_outage_artifacts_dir=%s" % artifacts(runner),
                 "-e", "generator_failback_artifacts_dir=%s" % artifacts(runner)]
    for key, value in extra.items():
        args += ["-e", json.dumps({key: value if isinstance(value, (list, dict)) else str(value)})]
    return runner.run(PLAYBOOKS / ("%s.yml" % name), check=check, extra=args)


def lock_holder(lab: Lab) -> str | None:
    return t.cast("str | None", (lab.api().get(LOCK) or {}).get("spec", {}).get("holderIdentity"))


def written(lab: Lab, runner: Runner) -> Obj:
    """What a run could write: the stack's objects, the bucket, the working directory and its folders."""
    return nothing_written.state(lab, runner.workdir, runner.workdir / "timeline")


def artifacts(runner: Runner) -> Path:
    return runner.workdir / "artifacts"


def outcome(result: Result, name: str) -> Obj:
    """A role task's result; role tasks are recorded as "<role> : <task name>"."""
    return t.cast(Obj, next(value for key, value in result.results.items() if key.endswith(name)))


def health(result: Result) -> Obj:
    """Each provider's health as the run's one check of the primary and the backup found it, by name."""
    return t.cast(Obj, outcome(result, "Check the primary and the backup provider")["providers"])


def generator_env(lab: Lab) -> dict[str, str]:
    container = t.cast(Obj, lab.api().get(GENERATOR))["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "<ref>") for item in container["env"]}


def ask(lab: Lab, qid: str = "q001", question: str = "") -> Obj:
    query = next(q for q in GOLDEN["queries"] if q["qid"] == qid) if not question else {"text": question}
    return stack.ask(lab.endpoints().services["generator"], query["text"], "" if question else qid)


def provider_keys(lab: Lab) -> list[str]:
    secret = lab.api().get(object_path(CORE, "secrets", stack.NAMESPACE, "rag-provider-keys")) or {}
    keys = [base64.b64decode(value).decode() for value in (secret.get("data") or {}).values()]
    assert len(keys) == 2 and all(len(key) >= 8 for key in keys), "the lab's provider keys are missing"
    return keys


def assert_no_key_shown(lab: Lab, runner: Runner, *runs: Result) -> None:
    """Neither provider key in the playbooks' -vvv output nor in any evidence or report they wrote."""
    files = [path for path in artifacts(runner).rglob("*") if path.is_file()]
    assert files, "the playbooks wrote no artifacts"
    texts = [run.stdout for run in runs] + [path.read_text() for path in files]
    for key in provider_keys(lab):
        assert not any(key in text for text in texts)


def ramp(runner: Runner) -> Obj:
    return t.cast(Obj, json.loads((artifacts(runner) / "failback.json").read_text()))


def test_503_check_mode_switch_rerun_then_failback_to_the_primary(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    runner.env.update(CALLBACKS="ragops.recovery.timeline", RAGOPS_TIMELINE_DIR=str(runner.workdir / "timeline"))
    before = written(lab, runner)
    checked = playbook(runner, lab, "generator_outage", check=True)
    assert checked.returncode == 0 and checked.failed == 0, checked.stdout
    assert nothing_written.changes(before, written(lab, runner)) == []
    plan = outcome(checked, "Show the plan (check mode)")["msg"]
    assert plan[0].startswith("Planned (check mode, nothing was changed or written): lock ragops-recovery-lock")
    assert any(line.startswith("primary primary: outage") for line in plan), plan
    assert any(line.startswith("switch to the backup, Deployment rag-lab/generator") and '"PROVIDER": "backup"' in line
               for line in plan), plan
    assert any(line.startswith("throttle, Deployment rag-lab/generator") and '"THROTTLE_RPS": "50"' in line
               for line in plan), plan
    assert "evidence written once to s3://%s/evidence/INC-B/evidence-generator.tar.gz" % lab.s3().bucket in plan
    runner.env.pop("CALLBACKS")
    s3 = lab.s3()
    bundle = "evidence/INC-B/evidence-generator.tar.gz"
    assert "Contents" not in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=bundle)
    applied = playbook(runner, lab, "generator_outage")
    assert applied.returncode == 0 and applied.failed == 0, applied.stdout
    # The evidence is written once to the store Scenario A keeps its evidence in.
    kept = outcome(applied, "Keep the evidence in the write-once store")["evidence"]
    assert kept["s3_uri"] == "s3://%s/%s" % (s3.bucket, bundle) and kept["existed"] is False
    data = s3.client().get_object(Bucket=s3.bucket, Key=bundle)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        recorded = json.load(t.cast(t.IO[bytes], archive.extractfile("evidence.json")))
    assert recorded["primary"]["state"] == "outage", recorded
    assert health(applied)["primary"]["state"] == "outage"
    assert generator_env(lab)["PROVIDER"] == "backup" and generator_env(lab)["THROTTLE_RPS"] == "50"
    assert_answers_from(lab, "backup")
    assert outcome(applied, "Validate the generator's answers on the golden set")["validation"]["passed"]
    again = playbook(runner, lab, "generator_outage")
    assert again.returncode == 0 and again.failed == 0, again.stdout
    # Only the lock (taken and released) and the evidence file change on a re-run; the generator does not.
    for name in ("Switch to the backup provider", "Throttle traffic and queue long requests"):
        assert outcome(again, name)["changed"] is False, name

    faults.provider_outage(lab, "primary", "none")
    # Two steps: a weighted share, then all traffic. The default ramp (10, 25, 50, 100 with a soak) runs
    # whole in the Scenario B drill (tests/lab/test_drill_outage.py).
    # The steps as an AWX survey's text answer gives them.
    before = written(lab, runner)
    checked_failback = playbook(runner, lab, "generator_failback", check=True, generator_failback_steps="10,100")
    assert checked_failback.returncode == 0 and checked_failback.failed == 0, checked_failback.stdout
    assert nothing_written.changes(before, written(lab, runner)) == [] and not lock_holder(lab)
    plan = outcome(checked_failback, "Show the plan (check mode)")["msg"]
    assert any(line.startswith("throttle off, Deployment rag-lab/generator") for line in plan), plan
    assert any(line.startswith("ramp 10 -> 100 % of traffic to the primary primary") for line in plan), plan
    done = playbook(runner, lab, "generator_failback", generator_failback_steps="10,100")
    assert done.returncode == 0 and done.failed == 0, done.stdout
    env = generator_env(lab)
    assert env["PROVIDER"] == "primary" and not {"PROVIDER_WEIGHTS", "THROTTLE_RPS", "FALLBACK_MODE"} & set(env)
    assert_answers_from(lab, "primary")
    steps = ramp(runner)["steps"]
    assert [step["step"] for step in steps] == [10, 100] and all(step["passed"] for step in steps)
    # Every step measured that the answers came from the providers, not from the answer cache.
    assert [step["metrics"]["cache_hit_rate"] for step in steps] == [0.0, 0.0]
    assert_no_key_shown(lab, runner, checked, applied, again, checked_failback, done)


def test_429_switch_then_failback_with_a_quality_regression_rolls_back(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "429")
    applied = playbook(runner, lab, "generator_outage")
    assert applied.returncode == 0 and applied.failed == 0, applied.stdout
    assert health(applied)["primary"]["state"] == "rate_limited"
    assert_answers_from(lab, "backup")
    faults.provider_outage(lab, "primary", "degraded")
    done = playbook(runner, lab, "generator_failback", generator_failback_steps="[10, 25, 50, 100]")
    assert done.returncode == 2 and done.failed == 1, done.stdout
    assert "Answer quality regressed at 10 %" in done.stdout, done.stdout
    env = generator_env(lab)
    # Back in the outage's safe mode: all traffic on the backup, the throttle as the outage set it.
    assert env["PROVIDER"] == "backup" and "PROVIDER_WEIGHTS" not in env and env["THROTTLE_RPS"] == "50", env
    assert_answers_from(lab, "backup")
    regressed = ramp(runner)
    assert regressed["regressed"] and [step["step"] for step in regressed["steps"]] == [10]
    assert regressed["steps"][0]["metrics"]["empty_rate"] > 0
    assert not lock_holder(lab)
    report = (artifacts(runner) / "failback.md").read_text()
    assert "| outcome | rolled back |" in report and "- throttle put back, Deployment rag-lab/generator" in report
    assert_no_key_shown(lab, runner, applied, done)


def test_a_failure_mid_run_releases_the_lock_leaves_a_safe_mode_and_reports(lab: Lab, runner: Runner) -> None:
    """A step that fails after the first change (here the golden set, moved away) is rescued."""
    faults.provider_outage(lab, "primary", "503")
    before = nothing_lost.record(lab, artifacts(runner))
    missing = str(runner.workdir / "moved-golden.yml")
    stopped = playbook(runner, lab, "generator_outage", ragops_golden_set=missing)
    assert stopped.returncode == 2 and stopped.failed == 1, stopped.stdout
    nothing_lost.check(lab, before)
    message = outcome(stopped, "Stop with what was tried and what to do next")["msg"]
    assert "stopped at 'Validate the generator's answers on the golden set'" in message, message
    assert "Tried: primary primary: outage" in message and "switch to the backup" in message, message
    assert "answering known questions from the cache, refusing the rest" in message, message
    env = generator_env(lab)
    assert env["PROVIDER"] == "backup" and env["FALLBACK_MODE"] == "cache", env
    assert not lock_holder(lab)
    assert "| outcome | failed |" in (artifacts(runner) / "outage.md").read_text()

    applied = playbook(runner, lab, "generator_outage")
    assert applied.returncode == 0 and applied.failed == 0, applied.stdout
    assert generator_env(lab)["THROTTLE_RPS"] == "50"
    faults.provider_outage(lab, "primary", "none")
    stopped = playbook(runner, lab, "generator_failback", ragops_golden_set=missing)
    assert stopped.returncode == 2 and stopped.failed == 1, stopped.stdout
    message = outcome(stopped, "Stop with what was tried and what to do next")["msg"]
    assert "stopped at 'Compare answer quality with the baseline, percent 10'" in message, message
    assert "fallback off" in message and "throttle off" in message and "throttle put back" in message, message
    env = generator_env(lab)
    # The fallback, the throttle and the weights had been changed for the ramp: back to the backup, throttled.
    assert env["PROVIDER"] == "backup" and env["THROTTLE_RPS"] == "50" and "PROVIDER_WEIGHTS" not in env, env
    assert_answers_from(lab, "backup")
    assert not lock_holder(lab)
    assert "| outcome | failed |" in (artifacts(runner) / "failback.md").read_text()
    nothing_lost.check(lab, before)


def test_a_run_refused_by_another_runs_lock_changes_records_and_tells_nothing(lab: Lab, runner: Runner) -> None:
    """A second engineer launches the outage (then the failback) while alice's run holds the stack's lock: each
    is refused before its first change, and writes no report, no records and sends no notification of its
    own (the incident is the holder's; a "failed" message would tell people something that did not happen)."""
    faults.provider_outage(lab, "primary", "503")
    held = runner.play([task("lock", "incident_lock", incident_id="INC-ALICE", holder="alice")])
    assert held.results["lock"]["changed"], held.stdout
    before = written(lab, runner)
    with receiving() as receiver:
        for name in ("generator_outage", "generator_failback"):
            refused = playbook(runner, lab, name, ragops_notify_webhook_url=receiver.url("/hook"))
            assert refused.returncode == 2 and refused.failed == 1, refused.stdout
            message = outcome(refused, "Stop, having changed nothing, when the stack's lock is another run's")["msg"]
            assert "The stack is locked by alice for incident INC-ALICE" in message, message
            assert "changed nothing and recorded nothing" in message and "Next: Wait for alice" in message, message
        assert receiver.received == []
    assert nothing_written.changes(before, written(lab, runner)) == []
    assert lock_holder(lab) == "alice"


def test_text_false_is_false_and_reports_go_to_the_working_directory(lab: Lab, runner: Runner) -> None:
    """Run by its name, from a directory of the user's, as an AWX survey answers: force "false" with a
    healthy primary is a refusal that changes nothing; the report is in ./ragops-reports, not in the
    installed collection."""
    before = generator_env(lab)
    refused = runner.run(Path("ragops.recovery.generator_outage"), extra=[
        "-i", str(lab.paths.inventory), "-e", "incident_id=INC-B", "-e", "generator_outage_probe_timeout=1",
        "-e", json.dumps({"generator_outage_force": "false"})])
    assert refused.returncode == 2, refused.stdout
    assert "answers normally" in refused.stdout and "nothing was changed" in refused.stdout, refused.stdout
    assert generator_env(lab) == before and not lock_holder(lab)
    report = runner.workdir / "ragops-reports" / "INC-B" / "outage.md"
    assert "| outcome | failed |" in report.read_text()
    assert "Report: %s" % report in refused.stdout
    assert not (PLAYBOOKS / "artifacts").exists()


@pytest.mark.parametrize("mode, state", [("401", "auth_failure"), ("hang", "outage")])
def test_each_outage_kind_switches_to_the_backup(lab: Lab, runner: Runner, mode: str, state: str) -> None:
    faults.provider_outage(lab, "primary", mode)
    applied = playbook(runner, lab, "generator_outage")
    assert applied.returncode == 0 and applied.failed == 0, applied.stdout
    assert health(applied)["primary"]["state"] == state
    assert generator_env(lab)["PROVIDER"] == "backup"
    assert_answers_from(lab, "backup")


def test_backup_down_falls_back_to_cached_answers(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    faults.provider_outage(lab, "backup", "503")
    applied = playbook(runner, lab, "generator_outage",
                       generator_outage_answers_file=ROOT / "lab" / "data" / "answer-cache.json")
    assert applied.returncode == 0 and applied.failed == 0, applied.stdout
    assert health(applied)["backup"]["state"] == "outage"
    assert generator_env(lab)["FALLBACK_MODE"] == "cache" and generator_env(lab)["PROVIDER"] == "primary"
    wait_for(lambda: ask(lab, "q001").get("mode") == "cache", SETTLE_SECONDS, "an answer from the cache")
    known = ask(lab, "q001")
    assert known["status"] == 200 and known["mode"] == "cache" and known["cached"] is True, known
    unknown = ask(lab, question="What is the airspeed of an unladen swallow?")
    assert unknown["status"] == 200 and unknown["cached"] is False and unknown["provider"] is None, unknown
    assert unknown["citations"] == [] and "safe mode" in unknown["answer"]
    assert_no_key_shown(lab, runner, applied)
    # The ramp's cache-hit limit, against this generator answering every golden question from the cache.
    gate = runner.play([task("ramp gate", "golden_validate", golden_set=str(ROOT / "lab" / "data" / "golden.yml"),
                             url=lab.endpoints().services["generator"] + "/v1/answer",
                             body={"qid": "${qid}", "question": "${query}"}, ids_path="citations", scores_path="",
                             cached_path="cached", thresholds={"max_cache_hit_rate": 0}, report_only=True)])
    assert gate.returncode == 0, gate.stdout
    validation = gate.results["ramp gate"]["validation"]
    assert validation["metrics"]["cache_hit_rate"] == 1.0 and not validation["passed"]
    assert "cache_hit_rate 1 is above the limit 0" in validation["summary"], validation["summary"]


def precheck_record(lab: Lab) -> Obj:
    data = (lab.api().get(PRECHECK) or {}).get("data") or {}
    return {name: json.loads(text) for name, text in data.items()}


def test_precheck_records_a_broken_backup_and_the_switch_refuses_it_unless_forced(lab: Lab, runner: Runner) -> None:
    """The daily precheck, under the generator Role alone (meta/rbac/generator.yaml): a healthy backup and
    the lab's full answer cache pass; the backup's key rejected fails it, naming it; Scenario B then refuses
    that backup although it answers again, until forced."""
    role_only = str(lab.rbac_kubeconfigs().for_playbook("provider_precheck"))
    before = written(lab, runner)
    checked = playbook(runner, lab, "provider_precheck", check=True, ragops_kubeconfig=role_only)
    assert checked.returncode == 0 and checked.failed == 0, checked.stdout
    assert nothing_written.changes(before, written(lab, runner)) == [] and lab.api().get(PRECHECK) is None

    passed = playbook(runner, lab, "provider_precheck", ragops_kubeconfig=role_only)
    assert passed.returncode == 0 and passed.failed == 0, passed.stdout
    precheck = outcome(passed, "Record the results and the answer cache's coverage")["precheck"]
    # Every provider of the inventory but the primary, with its key from the Secret.
    assert list(precheck["providers"]) == ["backup"] and precheck["passed"] is True, precheck
    assert precheck["cache"]["coverage"] == 1.0 and precheck["cache"]["qids"] == len(GOLDEN["queries"])
    record = precheck_record(lab)["backup"]
    assert record["passed"] is True and record["state"] == "healthy" and record["latency"]["max"] > 0, record
    summary = outcome(passed, "Report the precheck")["msg"]
    assert summary[0].startswith("provider backup: PASSED, healthy"), summary

    faults.provider_outage(lab, "backup", "401")
    # A backup that would not work is told, as a failure of the safety net, before the run fails.
    with receiving() as receiver:
        failed = playbook(runner, lab, "provider_precheck", ragops_kubeconfig=role_only,
                          ragops_notify_webhook_url=receiver.url("/hook"))
    assert failed.returncode == 2 and failed.failed == 1, failed.stdout
    [told] = receiver.bodies("/hook")
    assert (told["event"], told["scenario"], told["stack"]) == ("failed", "provider_precheck", "rag-lab"), told
    assert "provider backup: FAILED, auth_failure" in told["summary"] and told["next_step"], told
    assert_no_url_shown(receiver, failed)
    message = outcome(failed, "Fail when a backup provider or the answer cache would not work")["msg"]
    assert "The warm-failover precheck of" in message and "provider backup: FAILED, auth_failure" in message, message
    assert precheck_record(lab)["backup"]["passed"] is False

    # The backup answers again, but no precheck has passed since: the switch refuses it, and the generator
    # is left answering known questions from the cache.
    faults.provider_outage(lab, "backup", "none")
    faults.provider_outage(lab, "primary", "503")
    refused = playbook(runner, lab, "generator_outage")
    assert refused.returncode == 2 and refused.failed == 1, refused.stdout
    stop = outcome(refused, "Stop with what was tried and what to do next")["msg"]
    assert "stopped at 'Switch to the backup provider'" in stop, stop
    assert "Refusing the backup provider backup: its last precheck" in stop and "auth_failure" in stop, stop
    assert "run the ragops.recovery.provider_precheck playbook again" in stop, stop
    env = generator_env(lab)
    assert env["PROVIDER"] == "primary" and env["FALLBACK_MODE"] == "cache", env
    assert not lock_holder(lab)

    # Forced, as an AWX survey answers it: the switch goes through.
    forced = playbook(runner, lab, "generator_outage", generator_outage_force="true")
    assert forced.returncode == 0 and forced.failed == 0, forced.stdout
    # Forced, the backup's last precheck is not read at all.
    switch = outcome(forced, "Switch to the backup provider")
    assert "precheck" not in switch, switch
    assert generator_env(lab)["PROVIDER"] == "backup"
    # Neither the prechecks' output and record nor the switches' evidence shows a provider key.
    assert_no_key_shown(lab, runner, passed, failed, refused, forced)
    record = json.dumps(precheck_record(lab))
    assert not any(key in record for key in provider_keys(lab))


RECORDS_TASK = "Keep the report, the golden-set reports and the timeline next to the evidence, written once"


def stats(result: Result) -> Obj:
    """The run's set_stats record of the stack, as AWX keeps it."""
    return t.cast(Obj, outcome(result, "Record the outcome")["ansible_stats"]["data"]["ragops_recovery"]["rag-lab"])


def bundle(lab: Lab, uri: str) -> dict[str, bytes]:
    """The files of a write-once bundle in the lab's bucket."""
    s3 = lab.s3()
    assert uri.startswith("s3://%s/" % s3.bucket), uri
    data = s3.client().get_object(Bucket=s3.bucket, Key=uri.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: t.cast(t.IO[bytes], archive.extractfile(member)).read() for member in archive.getmembers()}


def assert_no_url_shown(receiver: Receiver, *runs: Result) -> None:
    for run in runs:
        for secret in (receiver.url("/hook"), SLACK_PATH, "e2e-slack-webhook-token"):
            assert secret not in run.stdout, secret


def test_people_are_told_and_each_runs_records_are_kept_once(lab: Lab, runner: Runner) -> None:
    """Opened and safe mode (with the time to it) from the outage, recovered from the failback, as JSON and as
    Slack messages; check mode sends nothing; the report with its follow-up section and the timeline are in the
    evidence store, their location in the output and in set_stats."""
    faults.provider_outage(lab, "primary", "503")
    runner.env.update(CALLBACKS="ragops.recovery.timeline", RAGOPS_TIMELINE_DIR=str(runner.workdir / "timeline"))
    s3 = lab.s3()
    with receiving() as receiver:
        urls = {"ragops_notify_webhook_url": receiver.url("/hook"), "ragops_notify_slack_url": receiver.url(SLACK_PATH)}
        checked = playbook(runner, lab, "generator_outage", check=True, **urls)
        assert checked.returncode == 0 and checked.failed == 0, checked.stdout
        assert receiver.received == []
        plan = outcome(checked, "Show the plan (check mode)")["msg"]
        assert any(line.startswith("report, golden-set reports and timeline written once to s3://%s/evidence/INC-B/"
                                   "postmortem-generator-" % s3.bucket) for line in plan), plan

        applied = playbook(runner, lab, "generator_outage", **urls)
        assert applied.returncode == 0 and applied.failed == 0, applied.stdout
        opened, safe = receiver.bodies("/hook")
        assert (opened["event"], safe["event"]) == ("opened", "safe_mode")
        assert safe["scenario"] == "generator_outage" and safe["incident_id"] == "INC-B" and safe["stack"] == "rag-lab"
        assert isinstance(safe["seconds_to_safe_mode"], float) and 0 < safe["seconds_to_safe_mode"] < 300, safe
        assert safe["seconds_to_safe_mode"] == stats(applied)["seconds_to_safe_mode"]
        assert "is outage" in safe["summary"] and "from the backup provider backup" in safe["summary"], safe
        assert safe["links"]["evidence"] == "s3://%s/evidence/INC-B/evidence-generator.tar.gz" % s3.bucket
        texts = [body["text"] for body in receiver.bodies(SLACK_PATH)]
        assert texts[0].startswith("Incident opened: generator_outage, INC-B: LLM provider outage suspected"), texts
        assert texts[1].startswith("Safe mode reached: generator_outage, INC-B: The primary primary is outage"), texts
        slack_safe = receiver.bodies(SLACK_PATH)[1]
        header = {"type": "plain_text", "text": "Safe mode reached: generator_outage, INC-B"}
        assert slack_safe["blocks"][0] == {"type": "header", "text": header}
        # One event id per event, the same on both webhooks.
        assert len({item["headers"]["idempotency-key"] for item in receiver.received}) == 2

        record = stats(applied)
        records = record["records"]
        assert records.startswith("s3://%s/evidence/INC-B/postmortem-generator-" % s3.bucket), record
        assert records == outcome(applied, RECORDS_TASK)["evidence"]["s3_uri"]
        assert "Report, golden-set reports and timeline kept in %s." % records in applied.stdout
        files = bundle(lab, records)
        assert {"outage.md", "evidence.json", "golden-outage.json", "golden-outage.md", "timeline.json",
                "timeline.md", "MANIFEST.json"} <= set(files), sorted(files)
        report = files["outage.md"].decode()
        assert report == (artifacts(runner) / "outage.md").read_text()
        assert "## Follow-up" in report and "**Root cause**: the primary `primary` was\n  `outage`" in report, report
        assert "**The automated test that would have caught it**: a scheduled\n  probe of the primary" in report
        assert "**Runbook changes**: none needed for the switch" in report
        steps = [step["task"] for step in json.loads(files["timeline.json"])["steps"]]
        assert any(name.endswith("Switch to the backup provider") for name in steps), steps

        faults.provider_outage(lab, "primary", "none")
        done = playbook(runner, lab, "generator_failback", generator_failback_steps="10,100", **urls)
        assert done.returncode == 0 and done.failed == 0, done.stdout
        recovered = receiver.bodies("/hook")[-1]
        assert recovered["event"] == "recovered" and recovered["scenario"] == "generator_failback", recovered
        assert recovered["seconds_to_recover"] == stats(done)["seconds_to_recover"] > 0
        assert any(line.startswith("100 % on the primary: pass") for line in recovered["tried"]), recovered
        assert recovered["links"]["records"] == stats(done)["records"]
        assert "failback.md" in bundle(lab, stats(done)["records"])
        assert receiver.bodies(SLACK_PATH)[-1]["text"].startswith("Recovered: generator_failback, INC-B")
        assert_no_url_shown(receiver, checked, applied, done)


def test_a_receiver_that_fails_or_is_down_fails_nothing_and_a_failed_run_is_told(lab: Lab, runner: Runner) -> None:
    faults.provider_outage(lab, "primary", "503")
    with receiving() as receiver:
        receiver.status = 500
        urls = {"ragops_notify_webhook_url": receiver.url("/hook"),
                "ragops_notify_slack_url": closed_port_url(SLACK_PATH)}
        applied = playbook(runner, lab, "generator_outage", **urls)
        assert applied.returncode == 0 and applied.failed == 0, applied.stdout
        assert generator_env(lab)["PROVIDER"] == "backup"
        # Each message tried three times (two repeats) at the receiver answering 500, with the same event id.
        assert [body["event"] for body in receiver.bodies("/hook")] == ["opened"] * 3 + ["safe_mode"] * 3
        note = next(value["notification"] for value in applied.results.values()
                    if (value.get("notification") or {}).get("event") == "safe_mode")
        assert note["delivered"] is False, note
        assert "webhook not delivered after 3 attempt(s): HTTP 500" in note["reason"], note
        assert "slack not delivered after 3 attempt(s): no answer" in note["reason"], note
        # The warning, as Ansible wraps it to the terminal's width.
        assert "was not delivered (the recovery goes on)" in " ".join(applied.stdout.split())

        receiver.status = 200
        faults.provider_outage(lab, "primary", "none")
        missing = str(runner.workdir / "moved-golden.yml")
        stopped = playbook(runner, lab, "generator_failback", ragops_golden_set=missing, **urls)
        assert stopped.returncode == 2 and stopped.failed == 1, stopped.stdout
        failed = receiver.bodies("/hook")[-1]
        assert failed["event"] == "failed" and failed["scenario"] == "generator_failback", failed
        assert "stopped" in failed["summary"] and "all traffic on the backup backup" in failed["summary"], failed
        assert any(line.startswith("fallback off") for line in failed["tried"]), failed
        assert failed["next_step"] and failed["links"]["records"].startswith("s3://"), failed
        assert generator_env(lab)["PROVIDER"] == "backup" and not lock_holder(lab)
        assert_no_url_shown(receiver, applied, stopped)
