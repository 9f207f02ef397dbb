"""Inputs as an AWX survey sends them (text) refused before anything is touched, through real ansible-playbook
runs of the packaged playbooks. The stack's API is unreachable here (a kubeconfig that does not exist): a
refusal must come before the first task that would talk to it, the lock. What such text means when it is
right is run against the lab in test_generator_outage.py and test_bootstrap.py.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
import yaml
from harness import ROOT, Cluster, Result, Runner

LOCK_TASK = "Take the stack's recovery lock"


def inventory(tmp_path: Path) -> Path:
    stack = {"ansible_connection": "local", "ragops_kubeconfig": str(tmp_path / "no-such-kubeconfig"),
             "ragops_provider_urls": {"primary": "http://127.0.0.1:9", "backup": "http://127.0.0.1:9"},
             "ragops_generator_url": "http://127.0.0.1:9", "ragops_golden_set": str(tmp_path / "golden.yml"),
             "ragops_components": [{"name": "controller"}]}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"rag_stacks": {"hosts": {"rag-test": stack}}}))
    return path


def run(tmp_path: Path, playbook: str, **variables: t.Any) -> Result:
    runner = Runner(Cluster(None, tmp_path / "no-such-kubeconfig", ""), tmp_path)
    extra = ["-i", str(inventory(tmp_path)), "-e", json.dumps({"incident_id": "INC-S", **variables})]
    return runner.run(ROOT / "playbooks" / ("%s.yml" % playbook), extra=extra)


def touched_nothing(result: Result) -> bool:
    return not any(name.endswith(LOCK_TASK) for name in result.results)


@pytest.mark.parametrize("steps, says", [
    ("10;25;50;100", "generator_failback_steps: '10;25;50;100' is not a list of whole numbers"),
    ("[10, 25, 50, 100", "generator_failback_steps: '[10, 25, 50, 100' has an unmatched bracket"),
    ("", "generator_failback_steps: the list is empty"),
    ("[10, 50]", "generator_failback_steps must rise step by step to 100"),
    ("100,50", "generator_failback_steps must rise step by step to 100"),
    ("0,100", "generator_failback_steps must rise step by step to 100"),
])
def test_failback_refuses_steps_that_are_not_a_ramp_before_the_lock(tmp_path: Path, steps: str, says: str) -> None:
    refused = run(tmp_path, "generator_failback", generator_failback_steps=steps)
    assert refused.returncode != 0
    assert says in refused.stdout, refused.stdout
    assert "[10, 25, 50, 100]" in refused.stdout  # what to give instead
    assert touched_nothing(refused), refused.stdout


@pytest.mark.parametrize("playbook, variable", [
    ("generator_outage", "generator_outage_force"),
    ("generator_outage", "generator_outage_long_request_queue"),
    ("bootstrap_recovery", "bootstrap_recovery_one_by_one"),
    ("bootstrap_recovery", "bootstrap_recovery_release_lock"),
])
def test_a_boolean_that_is_neither_true_nor_false_is_refused_before_the_lock(
        tmp_path: Path, playbook: str, variable: str) -> None:
    refused = run(tmp_path, playbook, **{variable: "maybe"})
    assert refused.returncode != 0
    assert "argument '%s' is of type str and we were unable to convert to bool" % variable in refused.stdout
    assert touched_nothing(refused), refused.stdout
