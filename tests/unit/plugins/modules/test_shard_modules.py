# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-module tests: arguments in, one JSON result out, through main()."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta

import pytest

from ansible_collections.ragops.recovery.plugins.modules import shard_info, shard_mark
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

CM = "/api/v1/namespaces/rag/configmaps"


run = functools.partial(run_main, namespace="rag")


@pytest.fixture
def api(k8s_api: FakeTransport) -> FakeTransport:
    k8s_api.add(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-shard-registry", "namespace": "rag"},
            "data": {"shard-0": json.dumps({"state": "serving"})},
        },
    )
    return k8s_api


def test_check_mode_then_apply_then_unchanged(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "shard": "shard-0",
        "state": "quarantined",
        "reason": "io errors",
        "incident_id": "INC-7",
        "changed_by": "tester",
    }
    planned = run(
        shard_mark, capsys, _ansible_check_mode=True, _ansible_diff=True, **args
    )
    assert planned["changed"] is True
    assert planned["diff"]["before"]["state"] == "serving"
    assert planned["diff"]["after"]["state"] == "quarantined"
    assert (
        json.loads(api.objects[CM + "/rag-shard-registry"]["data"]["shard-0"])["state"]
        == "serving"
    )
    assert planned["effective_at"] is None
    applied = run(shard_mark, capsys, **args)
    assert (
        applied["changed"] is True and applied["transition"] == "serving -> quarantined"
    )
    # When the quarantine took effect, to the millisecond (the entry's since: the second).
    effective = datetime.strptime(applied["effective_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    since = datetime.strptime(applied["shard"]["since"], "%Y-%m-%dT%H:%M:%SZ")
    assert timedelta(0) <= effective - since < timedelta(seconds=5)
    assert applied["shard"]["previous_state"] == "serving" and "diff" not in applied
    again = run(shard_mark, capsys, **args)
    assert again["changed"] is False and again["effective_at"] is None


def test_invalid_transition_fails_with_next_step(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shard_mark, capsys, shard="shard-0", state="quarantined")
    result = run(shard_mark, capsys, shard="shard-0", state="serving")
    assert result["failed"] is True
    assert result["msg"].startswith(
        "Refusing to move shard shard-0 from quarantined to serving"
    )
    assert "force=true" in result["next_step"]


def test_force_is_warned_and_recorded(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shard_mark, capsys, shard="shard-0", state="quarantined")
    result = run(shard_mark, capsys, shard="shard-0", state="serving", force=True)
    assert result["forced"] is True
    assert result["shard"]["forced_transition"] == "quarantined -> serving"
    assert "Forced shard shard-0 transition quarantined -> serving" in json.dumps(
        result["warnings"]
    )


def test_api_failure_is_reported_with_resource(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    from ansible_collections.ragops.recovery.plugins.module_utils.errors import ApiError

    api.fail(
        "GET",
        "/rag-shard-registry",
        ApiError("Unauthorized", status=401, reason="Unauthorized"),
    )
    result = run(shard_mark, capsys, shard="shard-0", state="quarantined")
    assert result["failed"] is True
    assert result["msg"] == (
        "Failed to read ConfigMap rag/rag-shard-registry: the credentials were rejected "
        "(HTTP 401: Unauthorized)"
    )
    assert result["status"] == 401


def test_shard_info_reports_registry_and_unchanged(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(shard_info, capsys, _ansible_check_mode=True)
    assert result["changed"] is False
    assert (
        result["shards"][0]["shard"] == "shard-0"
        and result["shards"][0]["serving"] is True
    )
    assert result["registry"]["exists"] is True
