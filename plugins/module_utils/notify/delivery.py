# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sending one event to its webhooks: a generic JSON webhook and a Slack-compatible
one, each URL given or read from a Secret.

A notification never fails a recovery: every way it can go wrong (no URL, an
unreadable Secret, a receiver that is down or answers 5xx) ends in an outcome that says
``delivered: false`` and why. The URLs are secrets (a Slack URL carries its token):
they appear in no outcome, reason or warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing as t
import urllib.error
import urllib.parse
from dataclasses import dataclass, field

from ansible.module_utils.urls import open_url

from ..errors import ApiError, RecoveryError
from ..k8s.client import K8sClient
from ..k8s.resources import Ref
from ..redaction import hide
from ..retry import Retrier, RetryPolicy
from .message import Event, generic_payload, slack_payload

KINDS = ("webhook", "slack")
USER_AGENT = "ragops.recovery-notify"
# A URL path this long is a token in itself (Slack: /services/T…/B…/…).
SECRET_PATH_LENGTH = 8


@dataclass(frozen=True)
class SecretRef:
    """The Secret holding the URLs, and the key of each kind."""

    name: str
    namespace: str
    webhook_key: str = "webhook_url"
    slack_key: str = "slack_url"

    def key(self, kind: str) -> str:
        return self.webhook_key if kind == "webhook" else self.slack_key


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status 0 means no answer (refused, reset, timed out)."""

    status: int
    detail: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Post = t.Callable[[str, bytes, t.Mapping[str, str], float, bool], Reply]
ReadSecret = t.Callable[[SecretRef], t.Mapping[str, str]]


@dataclass(frozen=True)
class Settings:
    """Where and how to send: the URLs given, the Secret to read the others from."""

    urls: t.Mapping[str, str] = field(default_factory=dict)
    secret: SecretRef | None = None
    timeout: float = 5.0
    retries: int = 2
    validate_certs: bool = True


@dataclass(frozen=True)
class Delivery:
    """What became of one webhook's message."""

    kind: str
    delivered: bool
    status: int = 0
    attempts: int = 0
    reason: str = ""

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {
            "kind": self.kind,
            "delivered": self.delivered,
            "status": self.status,
            "attempts": self.attempts,
            "reason": self.reason,
        }


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    try:
        return float(error.headers.get("Retry-After", ""))
    except (TypeError, ValueError, AttributeError):
        return None


def post_json(
    url: str,
    data: bytes,
    headers: t.Mapping[str, str],
    timeout: float,
    validate_certs: bool,
) -> Reply:
    """One POST; an HTTP error is a reply, no answer is status 0. No redirects: a
    webhook that moved is a configuration to fix, not a place to send the message."""
    try:
        with open_url(
            url,
            data=data,
            method="POST",
            headers=dict(headers),
            timeout=timeout,
            validate_certs=validate_certs,
            follow_redirects="none",
            http_agent=USER_AGENT,
        ) as response:
            return Reply(response.status)
    except urllib.error.HTTPError as error:
        return Reply(
            error.code, "HTTP %d %s" % (error.code, error.reason), _retry_after(error)
        )
    except (urllib.error.URLError, OSError, ValueError) as error:
        return Reply(0, "no answer: %s" % getattr(error, "reason", error))


def secret_values(urls: t.Iterable[str]) -> t.List[str]:
    """What must not be shown of each URL: all of it, and its path, query and
    credentials where they could be a token on their own."""
    values = []
    for url in urls:
        values.append(url)
        parts = urllib.parse.urlsplit(url)
        if len(parts.path) >= SECRET_PATH_LENGTH:
            values.append(parts.path)
        values.extend(part for part in (parts.query, parts.password) if part)
    # Longest first, so that a URL is redacted whole before its parts are.
    return sorted(set(values), key=len, reverse=True)


def read_secret_urls(client: K8sClient, ref: SecretRef) -> t.Dict[str, str]:
    """The URLs in the Secret, by kind; a key that is missing is a kind not set."""
    where = "Secret %s/%s" % (ref.namespace, ref.name)
    data = client.get(Ref("Secret", ref.name, ref.namespace)).get("data") or {}
    urls = {}
    for kind in KINDS:
        encoded = data.get(ref.key(kind))
        if encoded is None:
            continue
        try:
            urls[kind] = base64.b64decode(encoded).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise RecoveryError(
                "Key %s of %s is not base64 text" % (ref.key(kind), where),
                resource=where,
                reason="not base64 text",
            ) from None
    if not urls:
        raise RecoveryError(
            "%s has neither key %s nor key %s"
            % (where, ref.webhook_key, ref.slack_key),
            resource=where,
            reason="no webhook URL in the Secret",
        )
    return urls


def resolve_urls(
    settings: Settings, read_secret: ReadSecret
) -> t.Tuple[t.Dict[str, str], t.List[str]]:
    """The URL of each kind (a URL given wins over the Secret's) and what stood in the
    way of reading the Secret."""
    urls = {kind: url for kind, url in settings.urls.items() if url}
    problems: t.List[str] = []
    if settings.secret is not None and len(urls) < len(KINDS):
        try:
            found = read_secret(settings.secret)
        except RecoveryError as error:
            problems.append("the webhook Secret could not be read: %s" % error.msg)
        else:
            urls = dict(found, **urls)
    return {kind: urls[kind] for kind in KINDS if kind in urls}, problems


def send(
    kind: str,
    url: str,
    payload: t.Mapping[str, t.Any],
    event_id: str,
    settings: Settings,
    post: Post,
    retrier: Retrier,
) -> Delivery:
    """Post ``payload``, repeated on no answer, 429 and 5xx: every repeat carries the
    same Idempotency-Key, so a receiver that got the first one can drop the rest."""
    data = json.dumps(payload, sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json", "Idempotency-Key": event_id}
    replies: t.List[Reply] = []

    def attempt() -> Reply:
        reply = post(url, data, headers, settings.timeout, settings.validate_certs)
        replies.append(reply)
        if not reply.ok:
            raise ApiError(
                reply.detail, status=reply.status, retry_after=reply.retry_after
            )
        return reply

    try:
        reply = retrier.call(attempt, idempotent=True)
    except ApiError:
        last = replies[-1]
        reason = "not delivered after %d attempt(s): %s" % (len(replies), last.detail)
        return Delivery(kind, False, last.status, len(replies), reason)
    return Delivery(kind, True, reply.status, len(replies), "delivered")


@dataclass(frozen=True)
class Outcome:
    """The event, what it looks like on each kind of webhook, and what became of it."""

    event: Event
    payloads: t.Mapping[str, t.Any]
    deliveries: t.Sequence[Delivery]
    problems: t.Sequence[str]
    check_mode: bool

    @property
    def delivered(self) -> bool:
        return bool(self.deliveries) and all(item.delivered for item in self.deliveries)

    def reason(self) -> str:
        if self.check_mode:
            return "check mode: nothing was sent"
        failed = [
            "%s %s" % (item.kind, item.reason)
            for item in self.deliveries
            if not item.delivered
        ]
        if not self.deliveries and not self.problems:
            return "no webhook configured"
        return "; ".join(list(self.problems) + failed) or "delivered"

    def to_result(self, secrets: t.Iterable[str]) -> t.Dict[str, t.Any]:
        hidden = list(secrets)
        # Only the URLs are hidden: the reasons are the collection's own words, which
        # name the Secret and the key read.
        reason = hide(self.reason(), hidden)
        notification = {
            "event": self.event.event,
            "event_id": self.event.event_id(),
            "delivered": self.delivered and not self.check_mode,
            "reason": reason,
            "targets": [
                dict(item.to_dict(), reason=hide(item.reason, hidden))
                for item in self.deliveries
            ],
            "payloads": dict(self.payloads),
        }
        return {"changed": False, "notification": notification}

    def warning(self, secrets: t.Iterable[str]) -> str | None:
        """What the task warns of: a message that was not delivered."""
        if self.delivered or self.check_mode:
            return None
        return (
            "The %s notification of %s was not delivered (the recovery goes on): %s"
            % (
                self.event.event,
                self.event.incident_id,
                hide(self.reason(), list(secrets)),
            )
        )


def notify(
    event: Event,
    settings: Settings,
    read_secret: ReadSecret,
    post: Post,
    retrier: Retrier,
    *,
    check_mode: bool,
    sent_at: str,
) -> t.Tuple[Outcome, t.List[str]]:
    """Send ``event`` to every webhook configured (in check mode: to none). Returns the
    outcome and the URLs used, for the caller to keep out of every output."""
    payloads = {
        "webhook": generic_payload(event, sent_at),
        "slack": slack_payload(event),
    }
    urls, problems = resolve_urls(settings, read_secret)
    if check_mode:
        planned = [Delivery(kind, False, reason="check mode") for kind in urls]
        return Outcome(event, payloads, planned, problems, True), list(urls.values())
    deliveries = [
        send(kind, url, payloads[kind], event.event_id(), settings, post, retrier)
        for kind, url in urls.items()
    ]
    return Outcome(event, payloads, deliveries, problems, False), list(urls.values())


def retrier(retries: int, sleep: t.Callable[[float], None]) -> Retrier:
    """At most ``retries`` repeats, waiting at most 4 s between two: a recovery does
    not wait long for its notifications."""
    policy = RetryPolicy(attempts=max(1, retries + 1), base_delay=0.5, max_delay=4.0)
    return Retrier(policy, sleep)
