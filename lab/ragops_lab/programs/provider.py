"""OpenAI-compatible LLM provider stand-in with switchable outages.

Answers are deterministic: the reply names the documents quoted in the prompt's context (lines
such as `[doc-00042] Title`) and cites their ids, so answer quality can be measured against the
golden set. Outages (503, 429 with Retry-After, 401, a hang, or degraded answers that cite nothing)
are switched on at start with OUTAGE or at run time with POST /admin/outage.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragops_lab.runtime.env import PodEnv, env_choice, env_float, env_int, env_str
from ragops_lab.runtime.log import JsonLog
from ragops_lab.runtime.server import App, HttpError, Request, Response, Router, add_health, main_guard, ok, run_app

OUTAGE_MODES = ("none", "503", "429", "401", "hang", "degraded")
CONTEXT_LINE = re.compile(r"\[(doc-\d{5})\]\s*([^\n\[]*)")
NOT_FOUND = "I could not find the answer in the provided context."
DEGRADED = "It depends on your configuration; consult the documentation for details."
HANG_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    api_key: str
    outage: str
    retry_after_seconds: int = 2
    hang_seconds: float = 300.0
    model: str = "lab-model"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProviderConfig:
        return cls(
            name=env_str(env, "PROVIDER_NAME", "provider"),
            api_key=env_str(env, "PROVIDER_API_KEY"),
            outage=env_choice(env, "OUTAGE", OUTAGE_MODES, "none"),
            retry_after_seconds=env_int(env, "RETRY_AFTER_SECONDS", 2),
            hang_seconds=env_float(env, "HANG_SECONDS", 300.0),
            model=env_str(env, "MODEL", "lab-model"),
        )


def compose_answer(messages: Sequence[Mapping[str, Any]], degraded: bool = False) -> str:
    """The deterministic reply: name and cite the first three context documents."""
    if degraded:
        return DEGRADED
    prompt = "\n".join(str(m.get("content", "")) for m in messages)
    seen: dict[str, str] = {}
    for doc_id, title in CONTEXT_LINE.findall(prompt):
        seen.setdefault(doc_id, title.strip().rstrip("."))
    if not seen:
        return NOT_FOUND
    cited = [f"{title} [{doc_id}]" for doc_id, title in list(seen.items())[:3]]
    if len(cited) == 1:
        return f"According to {cited[0]}."
    return f"According to {cited[0]}. See also {' and '.join(cited[1:])}."


def _word_count(text: str) -> int:
    return len(text.split())


class ProviderService:
    def __init__(self, config: ProviderConfig, log: JsonLog) -> None:
        self.config = config
        self.log = log
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._mode = config.outage
        if not config.api_key:
            log.warning("no_api_key", detail="PROVIDER_API_KEY is empty: every /v1 call will get 401")

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def set_outage(self, request: Request) -> Response:
        mode = str(request.json().get("mode", "")).lower()
        if mode not in OUTAGE_MODES:
            raise HttpError(400, f"mode must be one of {', '.join(OUTAGE_MODES)}")
        with self._lock:
            previous, self._mode = self._mode, mode
        self.log.info("outage_switched", mode=mode, previous=previous)
        return ok({"mode": mode, "previous": previous})

    def _fail_as_configured(self) -> None:
        """Answer the way the current outage mode makes the real provider answer."""
        self._wait_out_hang()
        mode = self.mode
        if mode == "503":
            raise HttpError(503, _openai_error("The server is overloaded or not ready yet.", "server_error"))
        if mode == "429":
            raise HttpError(429, _openai_error("Rate limit reached for requests.", "rate_limit_exceeded"),
                            {"Retry-After": str(self.config.retry_after_seconds)})
        if mode == "401":
            raise HttpError(401, _openai_error("Incorrect API key provided.", "invalid_api_key"))

    def _wait_out_hang(self) -> None:
        """Hold the request far longer than any client waits, but never past shutdown or a mode change."""
        if self.mode != "hang":
            return
        deadline = time.monotonic() + self.config.hang_seconds
        while self.mode == "hang":
            if self.stopping.is_set():
                raise HttpError(503, _openai_error("The server is shutting down.", "server_error"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HttpError(504, _openai_error("Upstream timed out.", "timeout"))
            self.stopping.wait(min(HANG_POLL_SECONDS, remaining))

    def _authorize(self, request: Request) -> None:
        expected = f"Bearer {self.config.api_key}"
        if not self.config.api_key or request.headers.get("authorization") != expected:
            raise HttpError(401, _openai_error("Incorrect API key provided.", "invalid_api_key"))

    def models(self, request: Request) -> Response:
        self._fail_as_configured()
        self._authorize(request)
        model = {"id": self.config.model, "object": "model", "owned_by": self.config.name}
        return ok({"object": "list", "data": [model]})

    def chat(self, request: Request) -> Response:
        self._fail_as_configured()
        self._authorize(request)
        body = request.json()
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise HttpError(400, _openai_error("messages must be a list of objects", "invalid_request_error"))
        answer = compose_answer(messages, degraded=self.mode == "degraded")
        prompt_tokens = sum(_word_count(str(m.get("content", ""))) for m in messages)
        self.log.info("completion", model=body.get("model"), prompt_tokens=prompt_tokens, mode=self.mode)
        return ok(_completion(body.get("model") or self.config.model, answer, prompt_tokens))

    def app(self) -> App:
        router = Router()
        router.add("GET", "/v1/models", self.models)
        router.add("POST", "/v1/chat/completions", self.chat)
        router.add("GET", "/admin/outage", lambda _: ok({"mode": self.mode}))
        router.add("POST", "/admin/outage", self.set_outage)
        add_health(router, lambda: (True, {"provider": self.config.name, "outage": self.mode}))
        return App("provider", router, self.log, stopping=self.stopping)


def _openai_error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code}}


def _completion(model: str, answer: str, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = _word_count(answer)
    return {
        "id": "chatcmpl-" + hashlib.sha256(answer.encode()).hexdigest()[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def serve(env: Mapping[str, str]) -> int:
    pod = PodEnv.from_env(env)
    config = ProviderConfig.from_env(env)
    service = ProviderService(config, JsonLog("provider", provider=config.name, pod=pod.name))
    return run_app(service.app(), pod)


def main() -> int:
    return main_guard("provider", lambda: serve(os.environ))


if __name__ == "__main__":
    sys.exit(main())
