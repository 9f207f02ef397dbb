"""The lab setting that places chosen pods in a network namespace: its selectors, its file and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragops_lab.agent import netns
from ragops_lab.agent.podspec import ContainerConfigError
from ragops_lab.lab import Lab


def pod(**labels: str) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": "rag-lab", "labels": labels}}


def test_selectors_of_equality_and_existence_terms_pick_pods() -> None:
    both = netns.parse_selector("job-name=ragops-restore-shard-0-s1, ragops.io/shard")
    assert both == [("job-name", "ragops-restore-shard-0-s1"), ("ragops.io/shard", None)]
    assert netns.selects(both, {"job-name": "ragops-restore-shard-0-s1", "ragops.io/shard": "shard-0"})
    assert not netns.selects(both, {"job-name": "ragops-restore-shard-0-s1"})
    assert not netns.selects(both, {"job-name": "other", "ragops.io/shard": "shard-0"})


@pytest.mark.parametrize("text", ["", "a=b,", "a!=b", "a==b", "a in (b)", "=b"])
def test_a_selector_of_another_form_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        netns.parse_selector(text)


def test_the_first_matching_selector_chooses_an_existing_namespace(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "NAMED_NAMESPACES", tmp_path / "netns")
    (tmp_path / "netns").mkdir()
    (tmp_path / "netns" / "slow-link").touch()
    setting = tmp_path / netns.SETTING_FILE
    setting.write_text(json.dumps({"job-name=restore": "slow-link", "job-name": "missing"}))

    assert netns.namespace_for(setting, pod(**{"job-name": "restore"})) == "slow-link"
    assert netns.namespace_for(setting, pod(app="vectorstore")) == ""
    assert netns.namespace_for(tmp_path / "none.json", pod(**{"job-name": "restore"})) == ""
    missing = r"network namespace missing \(chosen by job-name in .*\) does not exist"
    with pytest.raises(ContainerConfigError, match=missing):
        netns.namespace_for(setting, pod(**{"job-name": "other"}))
    assert netns.command_prefix("slow-link")[1:] == ["netns", "exec", "slow-link"]
    assert netns.command_prefix("") == []


def test_a_setting_that_is_not_an_object_of_names_is_a_config_error(tmp_path: Path) -> None:
    setting = tmp_path / netns.SETTING_FILE
    for text in ("[1]", "{not json", json.dumps({"a=b": ""})):
        setting.write_text(text)
        with pytest.raises(ContainerConfigError, match=str(setting)):
            netns.namespace_for(setting, pod(a="b"))


def test_the_lab_writes_and_removes_the_setting(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.place_pods({"job-name=restore": "slow-link"})
    assert json.loads(lab.paths.pod_netns.read_text()) == {"job-name=restore": "slow-link"}
    with pytest.raises(ValueError, match="a!=b"):
        lab.place_pods({"a!=b": "slow-link"})
    lab.place_pods({})
    assert not lab.paths.pod_netns.exists()
