# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications: the two payloads, and delivery against a real local HTTP server (a
receiver that accepts, answers 5xx/429 for a while, 4xx, or is down), through the
module's main() with the URLs given or read from a Secret; no URL in any result."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import typing as t
from collections.abc import Iterator

import pytest
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.ragops.recovery.plugins.module_utils.notify import (
    delivery,
    message,
)
from ansible_collections.ragops.recovery.plugins.modules import notify
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run

SECRETS = "/api/v1/namespaces/rag/secrets"
# A token-bearing path, as a Slack incoming webhook's URL has.
SLACK_PATH = "/services/T0UNIT/B0TEST/xoxb-unit-secret-token"

Obj = t.Dict[str, t.Any]


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST; answers the statuses queued in ``answers``, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: t.List[Obj] = []
        self.answers: t.List[int] = []

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.server.received.append(
            {
                "path": self.path,
                "headers": {
                    name.lower(): value for name, value in self.headers.items()
                },
                "body": body,
            }
        )
        status = self.server.answers.pop(0) if self.server.answers else 200
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def down_url() -> str:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d/hook" % port


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ansible keeps a module's warnings in the process: one list per test."""
    monkeypatch.setattr(ansible_warnings, "_global_warnings", {})


def warnings_of(result: Obj) -> t.List[str]:
    return [
        item["event"]["msg"] if isinstance(item, dict) else item
        for item in result.get("warnings", [])
    ]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> t.List[float]:
    slept: t.List[float] = []
    monkeypatch.setattr(notify.time, "sleep", slept.append)
    return slept


def event(kind: str = "failed", **fields: t.Any) -> message.Event:
    values: Obj = {
        "event": kind,
        "scenario": "shard_recovery",
        "incident_id": "INC-9",
        "summary": "shard-2 failed its golden queries",
        "stack": "rag-eu",
        "run_id": "2026-12-07T10:00:00Z",
        "seconds_to_safe_mode": 4.25,
        "tried": ["re-open: unhealthy", "restore of 20261206T0200Z"],
        "next_step": "read the postmortem",
        "links": {"postmortem": "s3://evidence/evidence/INC-9/reports.tar.gz"},
    }
    values.update(fields)
    return message.Event(**values)


def args(**extra: t.Any) -> Obj:
    values: Obj = {
        "event": "safe_mode",
        "scenario": "generator_outage",
        "incident_id": "INC-B",
        "summary": "switched to the backup provider",
        "stack": "lab",
        "seconds_to_safe_mode": 12.5,
        "namespace": "rag",
    }
    values.update(extra)
    return values


def test_generic_payload_has_every_field() -> None:
    payload = message.generic_payload(event(), "2026-12-07T10:01:00Z")
    assert payload["schema"] == "ragops.recovery/notification/v1"
    assert payload["title"] == "Recovery FAILED: shard_recovery, INC-9"
    assert payload["seconds_to_safe_mode"] == 4.25
    assert payload["seconds_to_recover"] is None
    assert payload["tried"] == ["re-open: unhealthy", "restore of 20261206T0200Z"]
    assert payload["links"]["postmortem"].startswith("s3://")
    assert len(payload["event_id"]) == 32


def test_event_id_is_stable_per_event_and_run() -> None:
    assert event().event_id() == event(summary="other words").event_id()
    assert event().event_id() != event("recovered").event_id()
    assert event().event_id() != event(run_id="2026-12-07T11:00:00Z").event_id()


def test_slack_payload_has_text_and_blocks() -> None:
    payload = message.slack_payload(event())
    assert payload["text"].startswith("Recovery FAILED: shard_recovery, INC-9: shard-2")
    header, section, *details = payload["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    fields = [item["text"] for item in section["fields"]]
    assert "*Time to safe mode*\n4.2 s" in fields
    assert "*Time to recover*\nnot reached" in fields
    texts = [block["text"]["text"] for block in details]
    assert texts[0] == "*Tried:*\n• re-open: unhealthy\n• restore of 20261206T0200Z"
    assert texts[1] == "*Next step:* read the postmortem"


def test_slack_payload_of_an_opened_incident_has_no_times() -> None:
    fields = message.slack_payload(event("opened", tried=[]))["blocks"][1]["fields"]
    assert [item["text"].split("\n")[0] for item in fields] == [
        "*Incident*",
        "*Scenario*",
        "*Stack*",
    ]


def test_slack_payload_keeps_within_slack_limits() -> None:
    payload = message.slack_payload(event(summary="x" * 5000, tried=["y" * 4000]))
    assert len(payload["blocks"][1]["text"]["text"]) == message.SECTION_LIMIT
    assert all(
        len(block["text"]["text"]) <= message.SECTION_LIMIT
        for block in payload["blocks"]
    )


def test_secret_values_cover_url_path_query_and_password() -> None:
    url = "https://user:pw-1234@hooks.example.test" + SLACK_PATH + "?token=abc123"
    values = delivery.secret_values([url])
    assert values[0] == url
    assert SLACK_PATH in values and "token=abc123" in values and "pw-1234" in values
    # A short path such as "/" is not a secret of its own (it would blank every slash).
    assert delivery.secret_values(["http://127.0.0.1:9/"]) == ["http://127.0.0.1:9/"]


def test_delivers_both_payloads(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    hook, slack = receiver.base + "/hook", receiver.base + SLACK_PATH
    result = run(
        notify,
        capsys,
        hidden=[hook, slack, SLACK_PATH],
        **args(webhook_url=hook, slack_url=slack),
    )
    note = result["notification"]
    assert result["changed"] is False and note["delivered"] is True, result
    assert warnings_of(result) == []
    assert [item["kind"] for item in note["targets"]] == ["webhook", "slack"]
    generic, chat = receiver.received
    assert generic["path"] == "/hook" and chat["path"] == SLACK_PATH
    assert generic["body"]["event"] == "safe_mode"
    assert generic["body"]["seconds_to_safe_mode"] == 12.5
    assert chat["body"]["text"].startswith("Safe mode reached: generator_outage, INC-B")
    assert generic["headers"]["idempotency-key"] == note["event_id"]
    assert generic["headers"]["content-type"] == "application/json"


def test_retries_5xx_and_429_with_the_same_key(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], no_sleep: t.List[float]
) -> None:
    receiver.answers = [503, 429]
    hook = receiver.base + "/hook"
    result = run(notify, capsys, hidden=[hook], **args(webhook_url=hook))
    target = result["notification"]["targets"][0]
    assert target == {
        "kind": "webhook",
        "delivered": True,
        "status": 200,
        "attempts": 3,
        "reason": "delivered",
    }
    keys = {item["headers"]["idempotency-key"] for item in receiver.received}
    assert len(receiver.received) == 3 and len(keys) == 1
    assert len(no_sleep) == 2 and all(0 <= delay <= 4 for delay in no_sleep)


def test_a_receiver_answering_500_is_a_warning_not_a_failure(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.answers = [500] * 5
    hook = receiver.base + "/hook"
    result = run(notify, capsys, hidden=[hook], **args(webhook_url=hook, retries=1))
    note = result["notification"]
    assert "failed" not in result and note["delivered"] is False
    assert note["reason"] == (
        "webhook not delivered after 2 attempt(s): HTTP 500 Internal Server Error"
    )
    assert warnings_of(result) == [
        "The safe_mode notification of INC-B was not delivered (the recovery goes on): "
        + note["reason"]
    ]
    assert len(receiver.received) == 2


def test_a_4xx_is_not_repeated(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.answers = [404]
    hook = receiver.base + SLACK_PATH
    result = run(notify, capsys, hidden=[hook, SLACK_PATH], **args(slack_url=hook))
    assert result["notification"]["targets"][0]["attempts"] == 1
    assert result["notification"]["targets"][0]["status"] == 404


def test_a_receiver_that_is_down(
    down_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        notify,
        capsys,
        hidden=[down_url],
        **args(webhook_url=down_url, retries=2, timeout=1),
    )
    target = result["notification"]["targets"][0]
    assert target["delivered"] is False and target["status"] == 0
    assert target["attempts"] == 3
    assert "no answer" in target["reason"], target
    assert warnings_of(result)


def test_no_webhook_configured(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(notify, capsys, **args())
    note = result["notification"]
    assert note["delivered"] is False and note["targets"] == []
    assert note["reason"] == "no webhook configured"
    assert note["payloads"]["webhook"]["event"] == "safe_mode"


def test_check_mode_sends_nothing_and_shows_the_payloads(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = receiver.base + "/hook"
    result = run(
        notify,
        capsys,
        hidden=[hook],
        _ansible_check_mode=True,
        **args(webhook_url=hook),
    )
    note = result["notification"]
    assert receiver.received == []
    assert (
        note["reason"] == "check mode: nothing was sent" and warnings_of(result) == []
    )
    assert note["targets"] == [
        {
            "kind": "webhook",
            "delivered": False,
            "status": 0,
            "attempts": 0,
            "reason": "check mode",
        }
    ]
    assert note["payloads"]["slack"]["blocks"][0]["type"] == "header"


def secret(api: FakeTransport, data: t.Mapping[str, str]) -> None:
    encoded = {
        key: base64.b64encode(value.encode()).decode() for key, value in data.items()
    }
    api.add(
        SECRETS, {"kind": "Secret", "metadata": {"name": "rag-notify"}, "data": encoded}
    )


def test_urls_from_a_secret_never_shown(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], k8s_api: FakeTransport
) -> None:
    slack = receiver.base + SLACK_PATH
    secret(k8s_api, {"webhook_url": receiver.base + "/from-secret", "slack_url": slack})
    receiver.answers = [500]
    result = run(
        notify,
        capsys,
        hidden=[slack, SLACK_PATH, receiver.base + "/from-secret"],
        **args(secret={"name": "rag-notify"}, retries=0),
    )
    assert [item["path"] for item in receiver.received] == ["/from-secret", SLACK_PATH]
    assert result["notification"]["targets"][1]["delivered"] is True


def test_a_url_given_wins_over_the_secret(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], k8s_api: FakeTransport
) -> None:
    secret(k8s_api, {"webhook_url": receiver.base + "/from-secret"})
    result = run(
        notify,
        capsys,
        **args(webhook_url=receiver.base + "/given", secret={"name": "rag-notify"}),
    )
    assert [item["path"] for item in receiver.received] == ["/given"]
    assert result["notification"]["delivered"] is True


@pytest.mark.parametrize(
    "data, reason",
    [
        (
            None,
            "the webhook Secret could not be read: Failed to read Secret rag/rag-notify",
        ),
        ({"other": "x"}, "Secret rag/rag-notify has neither key webhook_url nor key"),
    ],
)
def test_an_unreadable_secret_is_a_warning(
    capsys: pytest.CaptureFixture[str],
    k8s_api: FakeTransport,
    data: t.Mapping[str, str] | None,
    reason: str,
) -> None:
    if data is not None:
        secret(k8s_api, data)
    result = run(notify, capsys, **args(secret={"name": "rag-notify"}))
    note = result["notification"]
    assert "failed" not in result and note["delivered"] is False
    assert reason in note["reason"], note
    assert warnings_of(result)


def test_a_post_that_echoes_the_url_is_scrubbed() -> None:
    url = "https://hooks.example.test" + SLACK_PATH

    def post(*_: t.Any) -> delivery.Reply:
        return delivery.Reply(0, "no answer: could not reach " + url)

    outcome, urls = delivery.notify(
        event(),
        delivery.Settings(urls={"slack": url}, retries=0),
        lambda ref: {},
        post,
        delivery.retrier(0, lambda seconds: None),
        check_mode=False,
        sent_at="2026-12-07T10:01:00Z",
    )
    result = json.dumps(outcome.to_result(delivery.secret_values(urls)))
    assert "xoxb" not in result and "hooks.example.test" not in result
    assert "<redacted>" in result
