# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""incident_lock through main(): two runs of one holder, told apart by their run id."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.ragops.recovery.plugins.modules import incident_lock
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

run = functools.partial(
    run_main,
    incident_lock,
    namespace="rag",
    incident_id="INC-1",
    holder="oncall@bastion",
)


def test_two_inventory_hosts_of_one_stack_take_turns(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(capsys, run_id="rag-prod")
    assert first["action"] == "create"
    assert first["lock"]["holder"] == "oncall@bastion/rag-prod"
    refused = run(capsys, run_id="rag-prod-alias")
    assert refused["failed"] is True
    assert "another run of yours (oncall@bastion/rag-prod)" in refused["msg"]
    assert "keep one inventory host per stack" in refused["next_step"]
    again = run(capsys, run_id="rag-prod")
    assert again["changed"] is False and again["action"] == "none"
    released = run(capsys, run_id="rag-prod", state="absent")
    assert released["action"] == "release"
    assert run(capsys, run_id="rag-prod-alias")["action"] == "take"


def test_without_a_run_id_the_holder_is_as_given(
    k8s_api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)["lock"]["holder"] == "oncall@bastion"
