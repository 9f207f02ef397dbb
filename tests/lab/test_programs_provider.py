"""The OpenAI-compatible provider stand-in: auth, deterministic answers and switchable outages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from programs_fakes import capture_log, get, post

from ragops_lab.programs import provider
from ragops_lab.runtime.env import ConfigError
from ragops_lab.runtime.httpclient import HttpResult, http_json
from ragops_lab.runtime.server import RunningApp

KEY = "sk-lab-primary"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "lab-model", "messages": [
    {"role": "system", "content": "Answer using only the context."},
    {"role": "user", "content": "Context:\n[doc-00042] Valkor runbook: tls timeout\n[doc-00007] Kalo faq: dns\n"
                                "[doc-00100] Third: x\n[doc-00200] Fourth: y\n\nQuestion: why does tls time out?"},
]}


@pytest.fixture
def app() -> Iterator[RunningApp]:
    config = provider.ProviderConfig(name="primary", api_key=KEY, outage="none", retry_after_seconds=7,
                                     hang_seconds=30)
    running = RunningApp(provider.ProviderService(config, capture_log("provider")[0]).app(), "127.0.0.1", 0)
    yield running
    running.stop()


def chat(app: RunningApp, timeout: float = 5.0, headers: dict[str, str] | None = None) -> HttpResult:
    return post(f"{app.url}/v1/chat/completions", CHAT, timeout=timeout, headers=AUTH if headers is None else headers)


def outage(app: RunningApp, mode: str) -> dict[str, Any]:
    result = post(f"{app.url}/admin/outage", {"mode": mode})
    assert result.status == 200, result.body
    assert isinstance(result.body, dict)
    return result.body


def test_every_v1_call_needs_the_key(app: RunningApp) -> None:
    assert get(f"{app.url}/v1/models").status == 401
    wrong = http_json("GET", f"{app.url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.body["error"]["code"] == "invalid_api_key"
    models = http_json("GET", f"{app.url}/v1/models", headers=AUTH)
    assert models.status == 200
    assert models.body["data"][0] == {"id": "lab-model", "object": "model", "owned_by": "primary"}
    assert chat(app, headers={}).status == 401


def test_answers_cite_the_context_documents_deterministically(app: RunningApp) -> None:
    first, second = chat(app), chat(app)
    assert first.status == 200
    answer = first.body["choices"][0]["message"]["content"]
    assert answer == second.body["choices"][0]["message"]["content"]
    assert answer == ("According to Valkor runbook: tls timeout [doc-00042]. "
                      "See also Kalo faq: dns [doc-00007] and Third: x [doc-00100].")
    usage = first.body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert first.body["object"] == "chat.completion"


def test_no_context_means_no_citation() -> None:
    messages = [{"role": "user", "content": "Context:\n(no documents found)"}]
    assert provider.compose_answer(messages) == provider.NOT_FOUND


@pytest.mark.parametrize(("mode", "status", "code"), [
    ("503", 503, "server_error"),
    ("429", 429, "rate_limit_exceeded"),
    ("401", 401, "invalid_api_key"),
])
def test_outage_modes(app: RunningApp, mode: str, status: int, code: str) -> None:
    assert outage(app, mode) == {"mode": mode, "previous": "none"}
    failed = chat(app)
    assert (failed.status, failed.body["error"]["code"]) == (status, code)
    if mode == "429":
        assert failed.headers["retry-after"] == "7"
    assert get(f"{app.url}/admin/outage").body == {"mode": mode}
    assert get(f"{app.url}/readyz").status == 200, "an outage is not a pod failure"
    outage(app, "none")
    assert chat(app).status == 200


def test_degraded_answers_cite_nothing(app: RunningApp) -> None:
    outage(app, "degraded")
    answered = chat(app)
    assert answered.status == 200
    assert "doc-" not in answered.body["choices"][0]["message"]["content"]


def test_a_hang_outlasts_the_client_timeout_and_ends_when_switched_off(app: RunningApp) -> None:
    outage(app, "hang")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        chat(app, timeout=0.3)
    assert time.monotonic() - started < 2
    results: list[HttpResult] = []
    waiting = threading.Thread(target=lambda: results.append(chat(app, timeout=10)))
    waiting.start()
    time.sleep(0.2)
    assert not results
    outage(app, "none")
    waiting.join(5)
    assert results and results[0].status == 200


def test_a_hang_ends_at_shutdown() -> None:
    config = provider.ProviderConfig(name="p", api_key=KEY, outage="hang", hang_seconds=300)
    running = RunningApp(provider.ProviderService(config, capture_log("provider")[0]).app(), "127.0.0.1", 0)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(chat(running, timeout=10).status)
        except (ConnectionError, TimeoutError) as exc:
            results.append(exc)

    waiting = threading.Thread(target=call)
    waiting.start()
    time.sleep(0.2)
    started = time.monotonic()
    running.stop()
    waiting.join(5)
    assert results == [503] and time.monotonic() - started < 3


def test_unknown_outage_mode_is_refused(app: RunningApp) -> None:
    assert post(f"{app.url}/admin/outage", {"mode": "meltdown"}).status == 400


def test_config_from_env() -> None:
    config = provider.ProviderConfig.from_env({"PROVIDER_NAME": "backup", "PROVIDER_API_KEY": "k", "OUTAGE": "429"})
    assert (config.name, config.api_key, config.outage) == ("backup", "k", "429")
    with pytest.raises(ConfigError):
        provider.ProviderConfig.from_env({"OUTAGE": "sometimes"})
