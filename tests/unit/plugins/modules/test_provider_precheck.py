# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""provider_precheck through main() over the in-memory API: the records, the answer
cache's coverage, and the refusal of a provider whose last precheck failed."""

from __future__ import annotations

import functools
import json
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.modules import provider_precheck
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

run = functools.partial(run_main, namespace="rag")
CM = "/api/v1/namespaces/rag/configmaps"
RECORDS = CM + "/rag-provider-precheck"
GOLDEN = """
version: 1
queries:
  - {qid: q001, text: first question, expected_ids: [d1]}
  - {qid: q002, text: second question, expected_ids: [d2]}
  - {qid: q003, text: third question, expected_ids: [d3]}
"""


def checked(
    name: str, state: str, reason: str = "models: HTTP 200"
) -> t.Dict[str, t.Any]:
    """An item of a registered provider_check loop."""
    provider = {
        "name": name,
        "url": "https://%s.example.com" % name,
        "state": state,
        "healthy": state == "healthy",
        "reason": reason,
        "latency": {"models": 0.01, "completion": 0.02, "max": 0.02},
    }
    return {"item": name, "changed": False, "provider": provider}


@pytest.fixture
def golden(tmp_path: t.Any) -> str:
    path = tmp_path / "golden.yml"
    path.write_text(GOLDEN)
    return str(path)


def cache(api: FakeTransport, data: t.Dict[str, str]) -> None:
    api.add(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-answer-cache", "namespace": "rag"},
            "data": data,
        },
    )


def recorded(api: FakeTransport) -> t.Dict[str, t.Any]:
    data = api.objects[RECORDS]["data"]
    return {name: json.loads(text) for name, text in data.items()}


def test_records_each_provider_and_a_check_that_could_not_run(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = {"item": "spare", "failed": True, "msg": "Failed to read Secret rag/keys"}
    record = [checked("backup", "healthy"), missing]
    planned = run(provider_precheck, capsys, _ansible_check_mode=True, record=record)
    assert planned["changed"] is True and RECORDS not in k8s_api.objects
    result = run(provider_precheck, capsys, record=record)["precheck"]
    assert result["failed"] == ["spare"] and result["passed"] is False
    assert result["cache"] is None
    records = recorded(k8s_api)
    assert (
        records["backup"]["passed"] is True and records["backup"]["state"] == "healthy"
    )
    assert records["spare"] == dict(
        result["providers"]["spare"],
        passed=False,
        state="check_failed",
        reason="Failed to read Secret rag/keys",
    )
    assert result["summary"][0].startswith("provider backup: PASSED, healthy")
    assert result["summary"][1].startswith("provider spare: FAILED, check_failed")
    # A later precheck of one provider keeps the other's record.
    run(
        provider_precheck,
        capsys,
        record=[checked("backup", "outage", "models: HTTP 503")],
    )
    records = recorded(k8s_api)
    assert (
        records["backup"]["passed"] is False
        and records["spare"]["state"] == "check_failed"
    )


def test_answer_cache_coverage_counts_usable_answers_of_golden_qids(
    k8s_api: FakeTransport, golden: str, capsys: pytest.CaptureFixture[str]
) -> None:
    usable = json.dumps({"answer": "A", "citations": ["d1"]})
    cache(k8s_api, {"q001": usable, "q002": "not json", "q999": usable})
    args = {"record": [checked("backup", "healthy")], "golden_set": golden}
    result = run(provider_precheck, capsys, **args)["precheck"]
    coverage = result["cache"]
    assert (coverage["qids"], coverage["cached"], coverage["coverage"]) == (
        3,
        1,
        0.3333,
    )
    assert coverage["missing"] == ["q003"] and coverage["unusable"] == ["q002"]
    assert coverage["passed"] is False and result["passed"] is False
    assert result["failed"] == []
    assert "not answerable: q003, q002" in result["summary"][-1]
    annotation = k8s_api.objects[RECORDS]["metadata"]["annotations"]
    assert json.loads(annotation["ragops.io/answer-cache-coverage"])["cached"] == 1
    lowered = run(provider_precheck, capsys, min_cache_coverage=0.3, **args)
    assert lowered["precheck"]["passed"] is True


def test_no_answer_cache_fails_the_coverage(
    k8s_api: FakeTransport, golden: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"record": [checked("backup", "healthy")], "golden_set": golden}
    result = run(provider_precheck, capsys, min_cache_coverage=0, **args)["precheck"]
    assert result["cache"]["exists"] is False and result["passed"] is False
    assert result["summary"][-1].endswith("the ConfigMap does not exist")


def test_require_passed_refuses_a_provider_whose_last_precheck_failed(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    never = run(provider_precheck, capsys, require_passed="backup")
    assert never["changed"] is False and never["precheck"]["recorded"] is False
    run(
        provider_precheck,
        capsys,
        record=[checked("backup", "auth_failure", "HTTP 401")],
    )
    refused = run(provider_precheck, capsys, require_passed="backup")
    assert refused["failed"] is True
    assert refused["msg"].startswith("Refusing the backup provider backup")
    assert "auth_failure: HTTP 401" in refused["msg"]
    assert "provider_precheck playbook again" in refused["next_step"]
    run(provider_precheck, capsys, record=[checked("backup", "healthy")])
    allowed = run(provider_precheck, capsys, require_passed="backup")["precheck"]
    assert allowed["passed"] is True and allowed["last"]["state"] == "healthy"


def test_an_unreadable_record_is_reported_not_raised(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_api.add(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-provider-precheck", "namespace": "rag"},
            "data": {"backup": "{not json"},
        },
    )
    result = run(provider_precheck, capsys, require_passed="backup")
    assert result["failed"] is True and "not a precheck record" in result["msg"]
    assert "record a fresh precheck" in result["next_step"]


def test_record_and_require_passed_are_exclusive(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    neither = run(provider_precheck, capsys)
    assert neither["failed"] is True and "record" in neither["msg"]
    both = run(provider_precheck, capsys, record=[], require_passed="backup")
    assert both["failed"] is True and "mutually exclusive" in both["msg"]
