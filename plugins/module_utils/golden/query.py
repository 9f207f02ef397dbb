# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Asking the query API: request templating, JMESPath extraction and bounded concurrent
HTTP, each worker keeping its connections open from one query to the next.

A hanging, erroring or malformed endpoint never hangs or crashes a validation: each
query ends as an :class:`Answer` that carries either the ranked ids or a classified
error, every query is cut off at its own timeout, and whatever has not finished by the
overall deadline is reported as such.
"""

from __future__ import annotations

import http.client
import json
import math
import queue
import string
import threading
import typing as t
import urllib.parse
from dataclasses import dataclass

from ..errors import RecoveryError
from ..redaction import scrub
from ..waiter import Clock
from .goldenset import GoldenQuery
from .metrics import trec_order
from .transport import HttpStatusError, Session, Transport

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError as error:
    JMESPATH_IMPORT_ERROR: ImportError | None = error
else:
    JMESPATH_IMPORT_ERROR = None

JMESPATH_REQUIREMENT = "jmespath"
PLACEHOLDERS = ("query", "k", "qid", "shard")
# An answer larger than this is not a top-k list; reading it whole would only cost
# memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
SNIPPET = 300
USER_AGENT = "ragops.recovery-golden_validate"

# Error kinds, from the endpoint's side of the wire to ours.
HTTP_ERROR = "http"
TIMEOUT = "timeout"
DEADLINE = "deadline"
UNREACHABLE = "unreachable"
BAD_RESPONSE = "bad_response"
PARTIAL = "partial"
EXCEPTION = "exception"


@dataclass(frozen=True)
class QueryApi:
    """How to ask the endpoint one golden query and where the answer keeps ids and
    scores."""

    url: str
    method: str
    headers: t.Mapping[str, str]
    body: t.Any
    ids: t.Any
    scores: t.Any = None
    errors: t.Any = None
    cached: t.Any = None
    ranking: str = "response"
    timeout: float = 10.0
    transport: t.Any = None


@dataclass(frozen=True)
class Answer:
    """What one query got: ranked ids (with scores when known), whether it came from
    the endpoint's answer cache (when the endpoint says so), or an error of a known
    kind."""

    qid: str
    ids: t.Tuple[str, ...] = ()
    scores: t.Optional[t.Tuple[float, ...]] = None
    cached: t.Optional[bool] = None
    latency: t.Optional[float] = None
    error: t.Optional[str] = None
    kind: t.Optional[str] = None
    status: t.Optional[int] = None


class AnswerError(Exception):
    """An answer that could not be used; ``kind`` is one of the error kinds above."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def compile_path(expression: str, option: str) -> t.Any:
    """A compiled JMESPath expression; a clear task failure when it does not parse."""
    try:
        return jmespath.compile(expression)
    except JMESPathError as error:
        raise RecoveryError(
            "Invalid JMESPath expression in %s: %r" % (option, expression),
            resource=option,
            reason=" ".join(str(error).split()),
            next_step="Fix %s; try it on a sample answer with the jmespath command "
            "line "
            "or the community.general.json_query filter." % option,
        ) from error


def make_transport(
    url: str, validate_certs: bool, ca_path: str | None, use_proxy: bool
) -> Transport:
    """One transport for the whole run: its TLS context (made once, and only for an
    https URL) and the proxies from the environment when ``use_proxy``."""
    return Transport.for_url(url, validate_certs, ca_path, use_proxy)


def render(
    template: t.Any, values: t.Mapping[str, t.Any], encode: t.Callable[[str], str] = str
) -> t.Any:
    """``template`` with ``${name}`` placeholders filled in, recursively through lists
    and dicts.

    A string that is exactly one placeholder becomes the value itself, so ``"${k}"``
    gives the number k in a JSON body; inside a longer string the value is inserted as
    text (``encode``d).
    """
    if isinstance(template, dict):
        return {
            render(key, values, encode): render(value, values, encode)
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [render(item, values, encode) for item in template]
    if not isinstance(template, str) or "$" not in template:
        return template
    if encode is str:
        name = template[2:-1] if template[:2] == "${" else template[1:]
        if name in values and template in ("${%s}" % name, "$%s" % name):
            return values[name]
    return string.Template(template).substitute(
        {name: encode(str(value)) for name, value in values.items()}
    )


def check_templates(api: QueryApi) -> None:
    """Fail before any request when the URL or body names a placeholder that does not
    exist."""
    sample = {"query": "text", "k": 1, "qid": "q", "shard": "s"}
    for option, template in (("url", api.url), ("body", api.body)):
        try:
            render(template, sample)
        except (KeyError, ValueError) as error:
            raise RecoveryError(
                "Invalid placeholder in %s: %s" % (option, error),
                resource=option,
                next_step="Use only %s (write $$ for a literal $)."
                % ", ".join("${%s}" % name for name in PLACEHOLDERS),
            ) from error


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: t.Mapping[str, str]
    data: t.Optional[bytes]


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def build_request(api: QueryApi, query: GoldenQuery, k: int) -> Request:
    values = {"query": query.text, "k": k, "qid": query.qid, "shard": query.shard or ""}
    url = render(api.url, values, encode=_quote)
    headers = dict(api.headers)
    data = None
    if api.body is not None and api.method != "GET":
        body = render(api.body, values)
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode("utf-8")
            default_type = "application/json"
        else:
            data = str(body).encode("utf-8")
            default_type = "application/x-www-form-urlencoded"  # as urllib sends it
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = default_type
    headers.setdefault("User-Agent", USER_AGENT)
    return Request(api.method, url, headers, data)


def ask(
    api: QueryApi,
    query: GoldenQuery,
    k: int,
    clock: Clock,
    session: Session | None = None,
) -> Answer:
    """Send one query and read its answer; every failure becomes an :class:`Answer` with
    an error.

    ``session`` is the worker's connections (kept open for its next query); without
    one the query gets connections of its own, closed when it is answered.  A
    connection refused or reset before any answer is sent once more (a search is a
    read, safe to repeat; a burst can overflow a small server's accept queue); an HTTP
    error is never repeated.
    """
    own = session is None
    session = session or api.transport.session()
    try:
        start = clock.now()
        answer = _attempt(api, session, query, k, clock, start)
        if answer.kind == UNREACHABLE and clock.now() - start < api.timeout / 2:
            answer = _attempt(api, session, query, k, clock, start)
        return answer
    finally:
        if own:
            session.close()


def _attempt(
    api: QueryApi,
    session: Session,
    query: GoldenQuery,
    k: int,
    clock: Clock,
    start: float,
) -> Answer:
    try:
        payload = _fetch(api, session, build_request(api, query, k))
        ids, scores, cached = extract(api, payload)
    except AnswerError as error:
        return Answer(
            query.qid,
            latency=clock.now() - start,
            error=str(error),
            kind=error.kind,
            status=error.status,
        )
    return Answer(query.qid, ids, scores, cached, latency=clock.now() - start)


def _fetch(api: QueryApi, session: Session, request: Request) -> bytes:
    try:
        payload = session.send(
            request.method,
            request.url,
            request.headers,
            request.data,
            api.timeout,
            MAX_ANSWER_BYTES,
        ).body
    except HttpStatusError as error:
        raise AnswerError(
            HTTP_ERROR, "HTTP %d: %s" % (error.status, _error_body(error)), error.status
        ) from error
    except (OSError, http.client.HTTPException) as error:
        reason = error
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise AnswerError(TIMEOUT, "no answer within %ss" % api.timeout) from error
        raise AnswerError(
            UNREACHABLE, "cannot reach the endpoint: %s" % scrub(str(reason))
        ) from error
    if len(payload) > MAX_ANSWER_BYTES:
        raise AnswerError(
            BAD_RESPONSE, "answer larger than %d bytes" % MAX_ANSWER_BYTES
        )
    return payload


Extracted = t.Tuple[
    t.Tuple[str, ...], t.Optional[t.Tuple[float, ...]], t.Optional[bool]
]


def extract(api: QueryApi, payload: bytes) -> Extracted:
    """Ranked ids, scores and the cache flag out of a JSON answer, through the
    configured JMESPath expressions."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise AnswerError(
            BAD_RESPONSE, "answer is not JSON: %s" % _snippet(payload)
        ) from error
    if api.errors is not None:
        reported = _search(api.errors, document, "errors_path")
        if reported:
            raise AnswerError(
                PARTIAL,
                "the endpoint reported errors: %s" % _snippet(json.dumps(reported)),
            )
    ids = _ids(_search(api.ids, document, "ids_path"), api.ids.expression, document)
    scores = _scores(
        _search(api.scores, document, "scores_path")
        if api.scores is not None
        else None,
        len(ids),
        api,
    )
    cached = (
        _cached(_search(api.cached, document, "cached_path"), api.cached.expression)
        if api.cached is not None
        else None
    )
    if api.ranking == "score" and ids:
        if scores is None:
            raise AnswerError(
                BAD_RESPONSE, "ranking=score needs scores, but scores_path found none"
            )
        ranked = trec_order(ids, scores)
        return (
            tuple(doc for doc, _score in ranked),
            tuple(score for _doc, score in ranked),
            cached,
        )
    return ids, scores, cached


def _search(expression: t.Any, document: t.Any, option: str) -> t.Any:
    """``expression`` applied to the answer; a function that fails on this answer's
    types (``sort_by`` over mixed values) makes the answer unusable."""
    try:
        return expression.search(document)
    except JMESPathError as error:
        raise AnswerError(
            BAD_RESPONSE,
            "%s %r failed on the answer: %s"
            % (option, expression.expression, " ".join(str(error).split())),
        ) from error


def _cached(found: t.Any, expression: str) -> t.Optional[bool]:
    """Whether the answer came from a cache; an answer that does not say (null) is
    not counted either way."""
    if found is None:
        return None
    if not isinstance(found, bool):
        raise AnswerError(
            BAD_RESPONSE,
            "cached_path %r must give true or false, it gave %s"
            % (expression, _snippet(json.dumps(found))),
        )
    return found


def _ids(found: t.Any, expression: str, document: t.Any) -> t.Tuple[str, ...]:
    if found is None:
        raise AnswerError(
            BAD_RESPONSE,
            "ids_path %r found nothing in the answer: %s"
            % (expression, _snippet(json.dumps(document))),
        )
    if not isinstance(found, list):
        raise AnswerError(
            BAD_RESPONSE,
            "ids_path %r must give a list, it gave %s"
            % (expression, _snippet(json.dumps(found))),
        )
    ids = []
    for doc in found:
        if isinstance(doc, bool) or not isinstance(doc, (str, int)):
            raise AnswerError(
                BAD_RESPONSE,
                "ids_path %r gave %s, not a document id"
                % (expression, _snippet(json.dumps(doc))),
            )
        ids.append(str(doc))
    return tuple(ids)


def _scores(found: t.Any, count: int, api: QueryApi) -> t.Optional[t.Tuple[float, ...]]:
    """Scores, one per id; an answer without any simply has none (a projection over
    hits without a score field gives an empty list)."""
    if found is None or found == []:
        return None
    scores = [_finite(score) for score in found] if isinstance(found, list) else []
    if len(scores) != count or None in scores:
        raise AnswerError(
            BAD_RESPONSE,
            "scores_path %r must give one finite number per id (%d ids), it gave %s"
            % (api.scores.expression, count, _snippet(json.dumps(found))),
        )
    return tuple(t.cast(t.List[float], scores))


def _finite(value: t.Any) -> t.Optional[float]:
    """A score as a float; None for what cannot be ranked: not a number, NaN, an
    infinity, or an integer beyond a float's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _error_body(error: HttpStatusError) -> str:
    body = error.body[: SNIPPET * 4]
    try:
        message = json.loads(body).get("error") or body
    except (ValueError, AttributeError):
        message = body
    text = (
        message.decode("utf-8", "replace")
        if isinstance(message, bytes)
        else str(message)
    )
    return _snippet(text.encode("utf-8")) or str(error.reason)


def _snippet(payload: bytes | str) -> str:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    text = scrub(" ".join(text.split()))
    return text if len(text) <= SNIPPET else text[:SNIPPET] + "..."


@dataclass
class InFlight:
    """The queries sent and not yet settled, with when each was sent; shared by workers
    and collector.

    Settled queries leave it, so the collector's bookkeeping stays proportional to the
    concurrency, not to the size of the golden set.
    """

    lock: threading.Lock
    started: t.Dict[str, float]
    sent: t.Set[str]

    def start(self, qid: str, at: float) -> None:
        with self.lock:
            self.started[qid] = at
            self.sent.add(qid)

    def settle(self, qid: str) -> None:
        with self.lock:
            self.started.pop(qid, None)

    def snapshot(self) -> t.Dict[str, float]:
        with self.lock:
            return dict(self.started)

    def was_sent(self, qid: str) -> bool:
        with self.lock:
            return qid in self.sent


def run_queries(
    api: QueryApi,
    queries: t.Sequence[GoldenQuery],
    k: int,
    *,
    concurrency: int,
    deadline_at: float,
    clock: Clock,
) -> t.List[Answer]:
    """Every query's :class:`Answer`, in the order given, with at most ``concurrency``
    in flight.

    Workers are daemon threads: one stuck in a socket read past its timeout or the
    deadline is abandoned (its late answer ignored) rather than joined, so the task
    always ends on time.
    """
    pending: queue.Queue[GoldenQuery] = queue.Queue()
    for query in queries:
        pending.put(query)
    done: queue.Queue[Answer] = queue.Queue()
    flight = InFlight(threading.Lock(), {}, set())
    stop = threading.Event()
    for _worker in range(max(1, min(concurrency, len(queries)))):
        threading.Thread(
            target=_work, args=(api, k, clock, pending, done, flight, stop), daemon=True
        ).start()
    try:
        answers = _collect(len(queries), api.timeout, deadline_at, clock, done, flight)
    finally:
        stop.set()
    for query in queries:
        if query.qid not in answers:
            answers[query.qid] = Answer(
                query.qid,
                kind=DEADLINE,
                error=(
                    "no answer before the overall deadline"
                    if flight.was_sent(query.qid)
                    else "not sent: the overall deadline had passed"
                ),
            )
    return [answers[query.qid] for query in queries]


def _work(
    api: QueryApi,
    k: int,
    clock: Clock,
    pending: queue.Queue[GoldenQuery],
    done: queue.Queue[Answer],
    flight: InFlight,
    stop: threading.Event,
) -> None:
    """Queries until none is left, over one session: the worker's connections stay
    open from one query to the next and are closed when it ends."""
    session: Session | None = None
    try:
        while not stop.is_set():
            try:
                query = pending.get_nowait()
            except queue.Empty:
                return
            started = clock.now()
            flight.start(query.qid, started)
            try:
                session = session or api.transport.session()
                answer = ask(api, query, k, clock, session)
            except Exception as error:
                # Anything ask does not classify (a header value http.client cannot
                # encode) is this query's error as it is; a worker that died would
                # leave the query to be reported as timed out.
                answer = Answer(
                    query.qid,
                    latency=clock.now() - started,
                    error="%s: %s" % (type(error).__name__, scrub(str(error))),
                    kind=EXCEPTION,
                )
            done.put(answer)
    finally:
        if session is not None:
            session.close()


def _collect(
    expected: int,
    timeout: float,
    deadline_at: float,
    clock: Clock,
    done: queue.Queue[Answer],
    flight: InFlight,
) -> t.Dict[str, Answer]:
    """Answers as they arrive; a query still out at its timeout is recorded as timed
    out right then."""
    answers: t.Dict[str, Answer] = {}
    while len(answers) < expected:
        now = clock.now()
        open_since = flight.snapshot()
        for qid, at in open_since.items():
            if at + timeout <= now:
                answers[qid] = _timed_out(qid, timeout)
                flight.settle(qid)
        if len(answers) >= expected or now >= deadline_at:
            break
        expiries = [
            at + timeout for qid, at in open_since.items() if qid not in answers
        ]
        wake = min([deadline_at, *expiries])
        try:
            answer = done.get(timeout=max(0.001, wake - now))
        except queue.Empty:
            continue
        if answer.qid not in answers:
            late = answer.latency is not None and answer.latency > timeout
            answers[answer.qid] = _timed_out(answer.qid, timeout) if late else answer
            flight.settle(answer.qid)
    return answers


def _timed_out(qid: str, timeout: float) -> Answer:
    return Answer(
        qid, latency=timeout, kind=TIMEOUT, error="no answer within %ss" % timeout
    )
