# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Asking a real HTTP endpoint on 127.0.0.1: templating, extraction, errors, timeouts, concurrency, deadline."""

from __future__ import annotations

import json
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.golden import query as q
from ansible_collections.ragops.recovery.plugins.module_utils.golden.goldenset import (
    GoldenQuery,
)
from ansible_collections.ragops.recovery.plugins.module_utils.waiter import Clock
from ansible_collections.ragops.recovery.tests.unit.golden_endpoint import (
    Endpoint,
    Reply,
    Seen,
    lab_answer,
)

QUERY = GoldenQuery("q1", 'kafka "lag" & rebalance', {"doc-1": 1}, shard="shard-2")


def api(url: str, **overrides: t.Any) -> q.QueryApi:
    fields: dict[str, t.Any] = {
        "url": url,
        "method": "POST",
        "headers": {},
        "body": {"query": "${query}", "k": "${k}"},
        "ids": q.compile_path("results[].id", "ids_path"),
        "scores": q.compile_path("results[].score", "scores_path"),
        "timeout": 2.0,
        "transport": q.make_transport(url, True, None, False),
    }
    fields.update(overrides)
    return q.QueryApi(**fields)


def ask_seen(
    handler: t.Callable[[Seen], Reply], **overrides: t.Any
) -> tuple[q.Answer, list[Seen]]:
    """The answer to QUERY and the requests the endpoint received."""
    with Endpoint(handler) as endpoint:
        answer = q.ask(
            api(overrides.pop("url", endpoint.url), **overrides), QUERY, 3, Clock()
        )
        return answer, endpoint.seen


def ask_one(handler: t.Callable[[Seen], Reply], **overrides: t.Any) -> q.Answer:
    return ask_seen(handler, **overrides)[0]


def test_render_fills_placeholders_natively_or_as_text() -> None:
    values = {"query": 'a "b"', "k": 3, "qid": "q1", "shard": "s"}
    template = {
        "q": "${query}",
        "size": "${k}",
        "label": "${qid}/${shard} top $k",
        "keep": [1, True, None],
        "price": "$$5",
    }
    assert q.render(template, values) == {
        "q": 'a "b"',
        "size": 3,
        "label": "q1/s top 3",
        "keep": [1, True, None],
        "price": "$5",
    }
    assert (
        q.render(
            "http://h/s?q=${query}&k=${k}", values, encode=lambda s: s.replace(" ", "+")
        )
        == 'http://h/s?q=a+"b"&k=3'
    )


def test_unknown_placeholders_fail_before_any_request() -> None:
    with pytest.raises(
        RecoveryError, match=r"^Invalid placeholder in body: 'text'"
    ) as raised:
        q.check_templates(api("http://127.0.0.1:1/x", body={"q": "${text}"}))
    assert "${query}, ${k}, ${qid}, ${shard}" in (raised.value.next_step or "")
    with pytest.raises(RecoveryError, match="Invalid placeholder in url"):
        q.check_templates(api("http://127.0.0.1:1/x?q=${"))


def test_invalid_jmespath_fails_clearly() -> None:
    with pytest.raises(
        RecoveryError,
        match=r"^Invalid JMESPath expression in ids_path: 'results\[.id'$",
    ) as raised:
        q.compile_path("results[.id", "ids_path")
    assert raised.value.reason and raised.value.next_step


def test_post_sends_the_rendered_json_body_and_headers() -> None:
    answer, seen = ask_seen(
        lambda s: lab_answer(["doc-1", "doc-2"], [0.9, 0.8]),
        headers={"X-Tenant": "t1", "Authorization": "Bearer s3cret"},
    )
    assert answer == q.Answer(
        "q1", ("doc-1", "doc-2"), (0.9, 0.8), latency=answer.latency
    )
    assert answer.latency is not None and answer.latency > 0
    assert seen[0].body == {"query": 'kafka "lag" & rebalance', "k": 3}
    assert seen[0].headers["Content-Type"] == "application/json"
    assert (
        seen[0].headers["Authorization"] == "Bearer s3cret"
        and seen[0].headers["X-Tenant"] == "t1"
    )
    assert seen[0].headers["User-Agent"] == q.USER_AGENT


def test_get_puts_the_query_in_the_url_encoded() -> None:
    with Endpoint(lambda s: lab_answer(["doc-1"])) as endpoint:
        url = endpoint.url + "?q=${query}&size=${k}&shard=${shard}"
        answer = q.ask(api(url, method="GET", body=None), QUERY, 3, Clock())
        assert answer.error is None
        assert (
            endpoint.seen[0].path
            == "/search?q=kafka%20%22lag%22%20%26%20rebalance&size=3&shard=shard-2"
        )
        assert endpoint.seen[0].body is None


def test_integer_ids_are_text_and_answers_without_scores_are_fine() -> None:
    answer = ask_one(
        lambda s: Reply(body={"result": {"points": [{"id": 42}, {"id": 7}]}}),
        ids=q.compile_path("result.points[].id", "ids_path"),
        scores=q.compile_path("result.points[].score", "scores_path"),
    )
    assert (answer.ids, answer.scores, answer.error) == (("42", "7"), None, None)


def test_ranking_by_score_reorders_like_trec_eval() -> None:
    answer = ask_one(
        lambda s: lab_answer(["a", "b", "c"], [0.5, 0.9, 0.5]), ranking="score"
    )
    assert (answer.ids, answer.scores) == (("b", "c", "a"), (0.9, 0.5, 0.5))
    missing = ask_one(lambda s: Reply(body={"results": [{"id": "a"}]}), ranking="score")
    assert missing.kind == q.BAD_RESPONSE and "ranking=score needs scores" in (
        missing.error or ""
    )


def test_an_empty_answer_ranked_by_score_is_an_empty_result() -> None:
    answer = ask_one(lambda s: lab_answer([]), ranking="score")
    assert (answer.ids, answer.scores, answer.kind, answer.error) == (
        (),
        None,
        None,
        None,
    )


def test_a_repeated_id_ranked_by_score_keeps_each_score_with_its_occurrence() -> None:
    answer = ask_one(
        lambda s: lab_answer(["a", "b", "a"], [0.2, 0.5, 0.9]), ranking="score"
    )
    assert (answer.ids, answer.scores) == (("a", "b", "a"), (0.9, 0.5, 0.2))


@pytest.mark.parametrize(
    "score", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 400]
)
def test_scores_that_cannot_be_ranked_make_the_answer_unusable(score: bytes) -> None:
    body = b'{"results": [{"id": "a", "score": 0.5}, {"id": "b", "score": %s}]}' % score
    answer = ask_one(lambda s: Reply(body=body), ranking="score")
    assert answer.kind == q.BAD_RESPONSE and (answer.error or "").startswith(
        "scores_path 'results[].score' must give one finite number per id (2 ids)"
    )


def test_a_jmespath_function_failing_on_an_answer_makes_it_unusable() -> None:
    answer = ask_one(
        lambda s: lab_answer(["a", "b"], [0.5, 0.7]),
        ids=q.compile_path("sort_by(results, &id)[].id", "ids_path"),
        scores=q.compile_path("sort_by(results, &@)[].score", "scores_path"),
    )
    assert answer.kind == q.BAD_RESPONSE and (answer.error or "").startswith(
        "scores_path 'sort_by(results, &@)[].score' failed on the answer: "
    )


@pytest.mark.parametrize(
    ("reply", "kind", "status", "message"),
    [
        (
            Reply(
                503, {"error": "checksum mismatch in vectors.bin", "shard": "shard-2"}
            ),
            q.HTTP_ERROR,
            503,
            "HTTP 503: checksum mismatch in vectors.bin",
        ),
        (
            Reply(401, b"token abc123 rejected", content_type="text/plain"),
            q.HTTP_ERROR,
            401,
            "HTTP 401: token <redacted> rejected",
        ),
        (
            Reply(200, b"<html>maintenance</html>", content_type="text/html"),
            q.BAD_RESPONSE,
            None,
            "answer is not JSON: <html>maintenance</html>",
        ),
        (
            Reply(200, {"error": "no index"}),
            q.BAD_RESPONSE,
            None,
            'ids_path \'results[].id\' found nothing in the answer: {"error": "no index"}',
        ),
        (
            Reply(200, {"results": "doc-1"}),
            q.BAD_RESPONSE,
            None,
            "ids_path 'results[].id' found nothing",
        ),
        (
            Reply(200, {"results": [{"id": {"nested": 1}}]}),
            q.BAD_RESPONSE,
            None,
            "ids_path 'results[].id' gave {\"nested\": 1}, not a document id",
        ),
        (
            Reply(200, {"results": [{"id": "a", "score": "high"}]}),
            q.BAD_RESPONSE,
            None,
            "scores_path 'results[].score' must give one finite number per id (1 ids)",
        ),
    ],
)
def test_unusable_answers_become_classified_errors(
    reply: Reply, kind: str, status: int | None, message: str
) -> None:
    answer = ask_one(lambda s: reply)
    assert (answer.kind, answer.status, answer.ids) == (kind, status, ())
    assert answer.error is not None and answer.error.startswith(message), answer.error


def test_an_empty_result_is_not_an_error() -> None:
    answer = ask_one(lambda s: lab_answer([]))
    assert (answer.ids, answer.scores, answer.error) == ((), None, None)


def test_errors_path_marks_partial_answers() -> None:
    answer = ask_one(
        lambda s: lab_answer(["doc-1"], errors={"shard-3": "HTTP 503: index unusable"}),
        errors=q.compile_path("errors", "errors_path"),
    )
    assert answer.kind == q.PARTIAL
    assert (
        answer.error
        == 'the endpoint reported errors: {"shard-3": "HTTP 503: index unusable"}'
    )
    healthy = ask_one(
        lambda s: lab_answer(["doc-1"], errors={}),
        errors=q.compile_path("errors", "errors_path"),
    )
    assert healthy.error is None and healthy.ids == ("doc-1",)


def test_cached_path_reads_whether_the_answer_came_from_the_cache() -> None:
    cached = q.compile_path("cached", "cached_path")
    hit = ask_one(lambda s: lab_answer(["doc-1"], cached=True), cached=cached)
    assert (hit.ids, hit.cached, hit.error) == (("doc-1",), True, None)
    assert (
        ask_one(lambda s: lab_answer(["doc-1"], cached=False), cached=cached).cached
        is False
    )
    assert ask_one(lambda s: lab_answer(["doc-1"]), cached=cached).cached is None
    assert (
        ask_one(lambda s: lab_answer(["doc-1"], cached=True)).cached is None
    )  # no cached_path: not read
    odd = ask_one(lambda s: lab_answer(["doc-1"], cached="yes"), cached=cached)
    assert (
        odd.kind == q.BAD_RESPONSE
        and odd.error == "cached_path 'cached' must give true or false, it gave \"yes\""
    )


def test_a_connection_reset_is_retried_once_but_an_http_error_never() -> None:
    requests: list[Seen] = []

    def resets_first(seen: Seen) -> Reply:
        requests.append(seen)
        return Reply(drop=True) if len(requests) == 1 else lab_answer(["doc-1"])

    answer, seen = ask_seen(resets_first)
    assert (answer.ids, answer.error, len(seen)) == (("doc-1",), None, 2)
    always, seen = ask_seen(lambda s: Reply(drop=True))
    assert always.kind == q.UNREACHABLE and len(seen) == 2
    failing, seen = ask_seen(lambda s: Reply(503, {"error": "down"}))
    assert failing.kind == q.HTTP_ERROR and len(seen) == 1


def test_unreachable_and_timeout() -> None:
    with Endpoint(lambda s: lab_answer([])) as endpoint:
        closed_url = endpoint.url
    refused = q.ask(api(closed_url), QUERY, 3, Clock())
    assert refused.kind == q.UNREACHABLE and "cannot reach the endpoint" in (
        refused.error or ""
    )
    slow = ask_one(lambda s: Reply(body={"results": []}, delay=5), timeout=0.2)
    assert slow.kind == q.TIMEOUT and slow.error == "no answer within 0.2s"


def queries(count: int) -> list[GoldenQuery]:
    return [
        GoldenQuery("q%02d" % i, "text %d" % i, {"doc-%d" % i: 1}) for i in range(count)
    ]


def test_queries_run_concurrently_within_the_bound_and_keep_their_order() -> None:
    def handler(seen: Seen) -> Reply:
        number = int(seen.body["query"].split()[1])
        return Reply(
            body={"results": [{"id": "doc-%d" % number, "score": 1.0}]}, delay=0.1
        )

    with Endpoint(handler) as endpoint:
        start = time.monotonic()
        answers = q.run_queries(
            api(endpoint.url),
            queries(12),
            3,
            concurrency=4,
            deadline_at=time.monotonic() + 30,
            clock=Clock(),
        )
        elapsed = time.monotonic() - start
    assert [a.qid for a in answers] == ["q%02d" % i for i in range(12)]
    assert all(a.ids == ("doc-%d" % i,) for i, a in enumerate(answers))
    assert endpoint.max_in_flight == 4
    assert 0.3 <= elapsed < 1.0  # three waves of 0.1 s, not twelve


def test_a_hanging_endpoint_gives_findings_not_a_hung_task() -> None:
    def handler(seen: Seen) -> Reply:
        hang = seen.body["query"] in ("text 1", "text 2")
        return Reply(
            body={"results": [{"id": "x", "score": 1.0}]}, delay=30 if hang else 0
        )

    with Endpoint(handler) as endpoint:
        start = time.monotonic()
        answers = q.run_queries(
            api(endpoint.url, timeout=0.3),
            queries(6),
            3,
            concurrency=2,
            deadline_at=time.monotonic() + 10,
            clock=Clock(),
        )
        elapsed = time.monotonic() - start
    kinds = {a.qid: a.kind for a in answers}
    assert kinds == {
        "q00": None,
        "q01": q.TIMEOUT,
        "q02": q.TIMEOUT,
        "q03": None,
        "q04": None,
        "q05": None,
    }
    assert answers[1].latency == 0.3 and elapsed < 2.0


def test_an_exception_in_a_query_is_reported_as_it_is_not_as_a_timeout() -> None:
    # http.client sends header values as latin-1: this one cannot be sent at all.
    with Endpoint(lambda s: lab_answer(["doc-1"])) as endpoint:
        start = time.monotonic()
        answers = q.run_queries(
            api(endpoint.url, headers={"X-Team": "Zürich ☕"}, timeout=5.0),
            queries(3),
            3,
            concurrency=2,
            deadline_at=time.monotonic() + 20,
            clock=Clock(),
        )
        elapsed = time.monotonic() - start
    assert [a.kind for a in answers] == [q.EXCEPTION] * 3
    assert (answers[0].error or "").startswith(
        "UnicodeEncodeError: 'latin-1' codec can't encode character '\\u2615'"
    )
    assert elapsed < 2.0 and endpoint.seen == []


class BrokenTransport:
    """A transport whose sessions fail in a way ask does not classify."""

    def session(self) -> t.Any:
        return self

    def send(self, method: str, url: str, *rest: t.Any) -> t.Any:
        raise RuntimeError("transport broke on %s" % url)

    def close(self) -> None:
        pass


def test_an_unexpected_error_of_one_query_leaves_the_others_running() -> None:
    answers = q.run_queries(
        api("http://127.0.0.1:9/search", transport=BrokenTransport()),
        queries(4),
        3,
        concurrency=1,
        deadline_at=time.monotonic() + 20,
        clock=Clock(),
    )
    assert [(a.kind, a.error) for a in answers] == [
        (q.EXCEPTION, "RuntimeError: transport broke on http://127.0.0.1:9/search")
    ] * 4
    assert all(a.latency is not None and a.latency < 1.0 for a in answers)


def test_the_overall_deadline_ends_the_run_on_time() -> None:
    with Endpoint(lambda s: Reply(body={"results": []}, delay=30)) as endpoint:
        start = time.monotonic()
        answers = q.run_queries(
            api(endpoint.url, timeout=20),
            queries(5),
            3,
            concurrency=2,
            deadline_at=time.monotonic() + 0.4,
            clock=Clock(),
        )
        elapsed = time.monotonic() - start
    assert elapsed < 1.5
    assert [a.kind for a in answers] == [q.DEADLINE] * 5
    assert [a.error for a in answers[:3]] == [
        "no answer before the overall deadline"
    ] * 2 + ["not sent: the overall deadline had passed"]


def test_answers_are_capped_in_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "MAX_ANSWER_BYTES", 64)
    answer = ask_one(
        lambda s: Reply(body=json.dumps({"results": [{"id": "x" * 100}]}).encode())
    )
    assert (
        answer.kind == q.BAD_RESPONSE and answer.error == "answer larger than 64 bytes"
    )


class KeepAliveHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 search API; with ``close_silently`` it drops each connection after
    one answer without saying so (as a server whose keep-alive timeout ran out)."""

    protocol_version = "HTTP/1.1"
    close_silently = False
    seen: t.ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.client_address)
        body = json.dumps({"results": [{"id": "doc-1", "score": 1.0}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.close_silently

    def log_message(self, *args: t.Any) -> None:
        pass


@pytest.mark.parametrize("close_silently", [False, True])
def test_a_worker_keeps_its_connection_open_and_reopens_a_closed_one(
    close_silently: bool,
) -> None:
    handler = type(
        "Handler", (KeepAliveHandler,), {"close_silently": close_silently, "seen": []}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answers = q.run_queries(
            api("http://127.0.0.1:%d/search" % server.server_address[1]),
            queries(6),
            3,
            concurrency=2,
            deadline_at=time.monotonic() + 20,
            clock=Clock(),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert [(a.ids, a.kind) for a in answers] == [(("doc-1",), None)] * 6
    connections = set(handler.seen)
    assert len(handler.seen) == 6
    assert len(connections) == 6 if close_silently else len(connections) <= 2


def test_redirects_are_followed_as_urllib_follows_them() -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/search":
            return Reply(302, {}, headers={"Location": "/moved"})
        if seen.path == "/kept":
            return Reply(307, {}, headers={"Location": "/moved"})
        return lab_answer(["doc-1"])

    answer, seen = ask_seen(handler)
    # A POST answered by a 302 becomes a GET without a body, as with urllib.
    assert answer.ids == ("doc-1",) and answer.kind is None
    assert [(s.method, s.path, s.body) for s in seen] == [
        ("POST", "/search", {"query": QUERY.text, "k": 3}),
        ("GET", "/moved", None),
    ]
    with Endpoint(handler) as endpoint:
        kept = q.ask(api(endpoint.url.replace("/search", "/kept")), QUERY, 3, Clock())
        assert (kept.kind, kept.status, len(endpoint.seen)) == (q.HTTP_ERROR, 307, 1)


def test_the_environments_proxy_is_used_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Endpoint(lambda s: lab_answer(["doc-1"])) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.replace("/search", ""))
        monkeypatch.setenv("no_proxy", "")
        url = "http://search.example.test:8080/search?tenant=t1"
        answer = q.ask(
            api(url, transport=q.make_transport(url, True, None, True)),
            QUERY,
            3,
            Clock(),
        )
        assert answer.ids == ("doc-1",)
        assert [s.path for s in proxy.seen] == [url]
        assert proxy.seen[0].headers["Host"] == "search.example.test:8080"
