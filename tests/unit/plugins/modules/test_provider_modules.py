# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""provider_check against local provider stand-ins; provider_switch, generator_fallback and traffic_throttle
through main() over the in-memory API."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import re
import threading
import time
import typing as t

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils import audit
from ansible_collections.ragops.recovery.plugins.modules import (
    generator_fallback,
    provider_check,
    provider_switch,
    traffic_throttle,
)
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

run = functools.partial(run_main, namespace="rag")

APPS = "/apis/apps/v1/namespaces/rag/deployments"
CM = "/api/v1/namespaces/rag/configmaps"
SECRETS = "/api/v1/namespaces/rag/secrets"
KEY = "sk-unit-test-key-0123456789"


class Provider(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible stand-in whose outage mode is set per test (server.mode)."""

    def do_GET(self) -> None:
        self._answer(
            {"object": "list", "data": [{"id": "lab-model", "object": "model"}]}
        )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"choices": [{"message": {"role": "assistant", "content": "OK"}}]})

    def _answer(self, body: dict[str, t.Any]) -> None:
        mode = self.server.mode
        if mode == "hang":
            HANGING.append((self.server.server_address[1], time.monotonic()))
            time.sleep(1.5)
            return
        status = {"503": 503, "429": 429, "401": 401}.get(mode, 200)
        if self.headers.get("Authorization") != "Bearer " + KEY:
            status = 401
        error = {"error": "rejected %s" % self.headers.get("Authorization")}
        payload = json.dumps(body if status == 200 else error).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "3")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: t.Any) -> None:
        pass


# The port of each stand-in whose "hang" answer has started, and when.
HANGING: list[tuple[int, float]] = []


@pytest.fixture
def providers() -> t.Iterator[t.Callable[[str], http.server.ThreadingHTTPServer]]:
    """Starts a stand-in in the mode given; stops every one started at the end."""
    started: list[http.server.ThreadingHTTPServer] = []

    def start(mode: str) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider)
        server.mode = mode  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def provider(
    providers: t.Callable[[str], http.server.ThreadingHTTPServer],
) -> http.server.ThreadingHTTPServer:
    return providers("none")


def url_of(server: http.server.ThreadingHTTPServer) -> str:
    return "http://127.0.0.1:%d" % server.server_address[1]


@pytest.fixture
def api(k8s_api: FakeTransport) -> FakeTransport:
    fake = k8s_api
    env = [
        {"name": "PROVIDER", "value": "primary"},
        {
            "name": "PROVIDER_KEY_PRIMARY",
            "valueFrom": {"secretKeyRef": {"name": "keys", "key": "primary"}},
        },
    ]
    fake.add(
        APPS,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "generator", "namespace": "rag"},
            "spec": {
                "replicas": 1,
                "template": {
                    "spec": {"containers": [{"name": "generator", "env": env}]}
                },
            },
            "status": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
        },
    )
    fake.add(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "rag"},
            "data": {"primary": base64.b64encode(KEY.encode()).decode()},
        },
    )
    return fake


def env(api: FakeTransport) -> dict[str, t.Any]:
    container = api.objects[APPS + "/generator"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return {item["name"]: item.get("value", "<ref>") for item in container["env"]}


@pytest.mark.parametrize(
    "mode, state",
    [
        ("none", "healthy"),
        ("503", "outage"),
        ("429", "rate_limited"),
        ("401", "auth_failure"),
        ("hang", "outage"),
    ],
)
def test_provider_check_classifies_each_outage(
    api: FakeTransport,
    provider: t.Any,
    mode: str,
    state: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider.mode = mode
    url = "http://127.0.0.1:%d" % provider.server_address[1]
    result = run(
        provider_check,
        capsys,
        name="primary",
        url=url,
        api_key_secret={"name": "keys", "key": "primary"},
        timeout=0.5,
        _ansible_check_mode=True,
    )
    assert result["changed"] is False
    assert result["provider"]["state"] == state, result
    assert KEY not in json.dumps(result)
    if mode == "429":
        assert result["provider"]["retry_after"] == 3.0
    if mode == "hang":
        assert len(result["provider"]["checks"]) == 1


def test_provider_check_require_healthy_fails_with_next_step(
    api: FakeTransport, provider: t.Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:%d" % provider.server_address[1]
    result = run(
        provider_check,
        capsys,
        name="backup",
        url=url,
        api_key="sk-wrong-987654",
        require_healthy=True,
    )
    assert result["failed"] is True and result["provider"]["state"] == "auth_failure"
    assert result["msg"].startswith("Provider backup is not healthy: auth_failure")
    assert "sk-wrong-987654" not in json.dumps(result)


def test_provider_check_checks_several_providers_at_once(
    api: FakeTransport,
    providers: t.Callable[[str], http.server.ThreadingHTTPServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, backup, spare = providers("hang"), providers("none"), providers("hang")
    del HANGING[:]
    result = run(
        provider_check,
        capsys,
        providers=[
            {
                "name": "primary",
                "url": url_of(primary),
                "api_key_secret": {"name": "keys", "key": "primary"},
            },
            {"name": "backup", "url": url_of(backup), "api_key": KEY},
            {"name": "spare", "url": url_of(spare), "api_key": KEY},
            {
                "name": "other",
                "url": url_of(backup),
                "api_key_secret": {"name": "keys", "key": "other"},
            },
        ],
        timeout=1.0,
    )
    assert list(result["providers"]) == ["primary", "backup", "spare", "other"]
    assert "provider" not in result and result["changed"] is False
    states = {name: found["state"] for name, found in result["providers"].items()}
    assert states == {
        "primary": "outage",
        "backup": "healthy",
        "spare": "outage",
        "other": "auth_failure",
    }
    # A key that cannot be read makes its provider unusable, not the task failed.
    other = result["providers"]["other"]
    assert (
        other["reason"].startswith("API key not read: ") and "other" in other["reason"]
    ), other
    assert other["checks"] == [] and other["healthy"] is False
    assert result["providers"]["primary"]["reason"] == "models: no answer within 1.0s"
    # Both hanging providers were waited on at the same time: each got its first
    # request before the other's one-second timeout ran out.
    ports = sorted(port for port, _started in HANGING)
    assert ports == sorted([primary.server_address[1], spare.server_address[1]])
    assert abs(HANGING[0][1] - HANGING[1][1]) < 0.9, HANGING
    assert KEY not in json.dumps(result)


def test_provider_check_require_healthy_names_every_unhealthy_provider(
    api: FakeTransport,
    providers: t.Callable[[str], http.server.ThreadingHTTPServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, backup = providers("503"), providers("429")
    result = run(
        provider_check,
        capsys,
        providers=[
            {"name": "primary", "url": url_of(primary), "api_key": KEY},
            {"name": "backup", "url": url_of(backup), "api_key": KEY},
        ],
        require_healthy=True,
    )
    assert result["failed"] is True
    assert result["msg"].startswith(
        "Providers primary, backup are not healthy: primary outage ("
    ), result["msg"]
    assert "backup rate_limited (" in result["msg"]
    assert set(result["providers"]) == {"primary", "backup"}


@pytest.mark.parametrize(
    "given, message",
    [
        ({"name": "primary"}, "parameters are required together: name, url"),
        ({}, "one of the following is required: name, providers"),
        (
            {"name": "primary", "url": "http://127.0.0.1:9", "providers": []},
            "parameters are mutually exclusive: name|providers",
        ),
        (
            {
                "providers": [
                    {"name": "a", "url": "http://127.0.0.1:9"},
                    {"name": "a", "url": "http://127.0.0.1:8"},
                ]
            },
            "providers names a more than once",
        ),
    ],
)
def test_provider_check_refuses_unclear_targets(
    api: FakeTransport,
    given: dict[str, t.Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(provider_check, capsys, **given)
    assert result["failed"] is True and message in result["msg"], result["msg"]


def test_switch_refuses_a_provider_whose_last_precheck_failed_before_changing_anything(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    def record(passed: bool) -> None:
        api.objects.pop(CM + "/rag-provider-precheck", None)
        last = {
            "provider": "backup",
            "passed": passed,
            "state": "healthy" if passed else "auth_failure",
            "reason": "HTTP 200" if passed else "HTTP 401",
            "checked_at": "2026-12-07T06:00:03Z",
        }
        api.add(
            CM,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "rag-provider-precheck", "namespace": "rag"},
                "data": {"backup": json.dumps(last)},
            },
        )

    switch = functools.partial(
        run,
        provider_switch,
        capsys,
        provider="backup",
        weights={},
        wait=False,
        require_precheck="rag-provider-precheck",
    )
    record(False)
    refused = switch()
    assert refused["failed"] is True and refused["reason"] == "last precheck failed"
    assert refused["msg"].startswith("Refusing the backup provider backup"), refused[
        "msg"
    ]
    assert env(api)["PROVIDER"] == "primary" and not api.writes()
    record(True)
    switched = switch()
    assert switched["changed"] is True and env(api)["PROVIDER"] == "backup"
    assert (
        switched["precheck"]["recorded"] is True
        and switched["precheck"]["passed"] is True
    )
    missing = run(
        provider_switch, capsys, weights={}, require_precheck="rag-provider-precheck"
    )
    assert (
        missing["failed"] is True
        and "require_precheck needs provider" in missing["msg"]
    )


def test_switch_check_apply_rerun_restore(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = run(
        provider_switch,
        capsys,
        provider="backup",
        weights={},
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert (
        planned["changed"] is True and planned["diff"]["after"]["PROVIDER"] == "backup"
    )
    assert (
        env(api)["PROVIDER"] == "primary" and ("dryRun", "All") in api.writes()[-1][2]
    )
    assert planned["provider"]["effective_at"] is None
    before = audit.instant()
    applied = run(provider_switch, capsys, provider="backup", weights={})
    assert applied["changed"] is True and env(api)["PROVIDER"] == "backup"
    # When safe mode took effect, to the millisecond: what the reports measure.
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", applied["provider"]["effective_at"]
    )
    assert before <= applied["provider"]["effective_at"] <= audit.instant()
    assert applied["provider"]["previous"] == {
        "PROVIDER": "primary",
        "PROVIDER_WEIGHTS": None,
    }
    again = run(provider_switch, capsys, provider="backup", weights={})
    assert again["changed"] is False and again["provider"]["effective_at"] is None
    ramp = run(provider_switch, capsys, weights={"primary": 25, "backup": 75})
    assert ramp["provider"]["weights"] == {"primary": 25, "backup": 75}
    assert env(api)["PROVIDER_WEIGHTS"] == "primary:25,backup:75"
    restored = run(provider_switch, capsys, state="restored")
    assert restored["changed"] is True and restored["provider"]["active"] == "primary"
    assert (
        "PROVIDER_WEIGHTS" not in env(api)
        and env(api)["PROVIDER_KEY_PRIMARY"] == "<ref>"
    )
    assert "annotations" not in api.objects[APPS + "/generator"]["metadata"]
    assert run(provider_switch, capsys, state="restored")["changed"] is False


def test_switch_rejects_weights_that_do_not_add_up(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(provider_switch, capsys, weights={"primary": 25, "backup": 70})
    assert result["failed"] is True and "add up to 100" in result["msg"]


def test_fallback_builds_the_cache_and_restores_the_mode(
    api: FakeTransport, tmp_path: t.Any, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps({"q001": {"answer": "A", "citations": ["doc-1"]}, "q002": "B"})
    )
    args = {"mode": "cache", "answers_file": str(answers)}
    planned = run(generator_fallback, capsys, _ansible_check_mode=True, **args)
    assert planned["changed"] is True and CM + "/rag-answer-cache" not in api.objects
    applied = run(generator_fallback, capsys, **args)
    assert (
        applied["fallback"]["mode"] == "cache"
        and applied["fallback"]["cache"]["qids"] == 2
    )
    assert json.loads(api.objects[CM + "/rag-answer-cache"]["data"]["q002"]) == {
        "answer": "B",
        "citations": [],
    }
    assert (
        env(api)["FALLBACK_MODE"] == "cache"
        and env(api)["ANSWER_CACHE_CONFIGMAP"] == "rag-answer-cache"
    )
    assert run(generator_fallback, capsys, **args)["changed"] is False
    restored = run(generator_fallback, capsys, state="restored")
    assert restored["fallback"]["mode"] == "off" and "FALLBACK_MODE" not in env(api)


def test_fallback_reports_unknown_qids(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        generator_fallback, capsys, answers={"q001": "A"}, qids=["q001", "q404"]
    )
    assert result["failed"] is True and "q404" in result["msg"]


def test_throttle_sets_and_restores_only_given_limits(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    applied = run(
        traffic_throttle, capsys, rps=20.0, long_request_queue=True, _ansible_diff=True
    )
    assert applied["diff"]["after"] == {
        "THROTTLE_RPS": "20",
        "MAX_CONCURRENCY": None,
        "LONG_REQUEST_QUEUE": "on",
    }
    assert env(api)["THROTTLE_RPS"] == "20" and "MAX_CONCURRENCY" not in env(api)
    assert (
        run(traffic_throttle, capsys, rps=20.0, long_request_queue=True)["changed"]
        is False
    )
    restored = run(traffic_throttle, capsys, state="restored")
    assert restored["changed"] is True and "THROTTLE_RPS" not in env(api)


def test_switch_waits_for_the_rollout_and_times_out(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    api.objects[APPS + "/generator"]["status"] = {
        "replicas": 1,
        "updatedReplicas": 0,
        "availableReplicas": 0,
    }
    result = run(
        provider_switch, capsys, provider="backup", wait_timeout=0, wait_sleep=0
    )
    assert result["failed"] is True and result["msg"].startswith(
        "Timed out after 0s waiting for the rollout"
    )
    assert "rollout status deployment/generator" in result["next_step"]
