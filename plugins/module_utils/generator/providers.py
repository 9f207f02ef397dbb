# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LLM provider health: probing an OpenAI-compatible API and classifying what it
answered.

:func:`classify` is pure (probe results in, a verdict out) so that every outage kind can
be tested without a network; :func:`probe_provider` does the HTTP work with
``open_url``.  The API key is only ever put into the ``Authorization`` header; nothing
here returns or logs it.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import socket
import time
import typing as t
import urllib.error
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible.module_utils.urls import open_url

from ..errors import RecoveryError
from ..k8s.client import K8sClient
from ..k8s.resources import Ref
from ..redaction import scrub

HEALTHY = "healthy"
DEGRADED = "degraded"
RATE_LIMITED = "rate_limited"
AUTH_FAILURE = "auth_failure"
OUTAGE = "outage"
STATES = (HEALTHY, DEGRADED, RATE_LIMITED, AUTH_FAILURE, OUTAGE)
# Worst first: a rejected key is the most specific finding, a slow but correct answer
# the mildest.
SEVERITY = (AUTH_FAILURE, RATE_LIMITED, OUTAGE, DEGRADED, HEALTHY)
SNIPPET = 200


@dataclass(frozen=True)
class Probe:
    """One request to the provider: its HTTP status (``None`` when none came) and how
    long it took."""

    check: str
    status: int | None
    latency: float
    error: str = ""
    retry_after: float | None = None

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {
            "check": self.check,
            "status": self.status,
            "latency": round(self.latency, 4),
            "error": self.error,
            "retry_after": self.retry_after,
        }


@dataclass(frozen=True)
class Verdict:
    """The provider's state, why, and the latency figures it was judged on."""

    state: str
    reason: str
    retry_after: float | None = None
    probes: t.Tuple[Probe, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY

    def latency(self) -> t.Dict[str, float | None]:
        figures: t.Dict[str, float | None] = {
            p.check: round(p.latency, 4) for p in self.probes
        }
        figures["max"] = max((round(p.latency, 4) for p in self.probes), default=None)
        return figures


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, round(when - (time.time() if now is None else now), 3))


def probe_state(probe: Probe, slow_after: float) -> t.Tuple[str, str]:
    """The state one probe points to, and why."""
    where = "%s: " % probe.check
    if probe.status is None:
        return OUTAGE, where + (probe.error or "no answer")
    if probe.status in (401, 403):
        return (
            AUTH_FAILURE,
            where + "HTTP %d, the credentials were rejected" % probe.status,
        )
    if probe.status == 429:
        return RATE_LIMITED, where + "HTTP 429, rate limited"
    if probe.status >= 300:
        return OUTAGE, where + "HTTP %d%s" % (
            probe.status,
            ": " + probe.error if probe.error else "",
        )
    if probe.error:
        return DEGRADED, where + probe.error
    if probe.latency > slow_after:
        return DEGRADED, where + "answered in %.2fs, slower than %.2fs" % (
            probe.latency,
            slow_after,
        )
    return HEALTHY, where + "HTTP %d in %.3fs" % (probe.status, probe.latency)


def classify(probes: t.Sequence[Probe], slow_after: float) -> Verdict:
    """The worst state any probe points to; :data:`OUTAGE` when there are no probes
    at all."""
    if not probes:
        return Verdict(OUTAGE, "no check was run")
    states = [probe_state(probe, slow_after) for probe in probes]
    state = min((found for found, reason in states), key=SEVERITY.index)
    reasons = [reason for s, reason in states if s == state]
    retry_after = max(
        (p.retry_after for p in probes if p.retry_after is not None), default=None
    )
    return Verdict(
        state,
        "; ".join(reasons),
        retry_after if state == RATE_LIMITED else None,
        tuple(probes),
    )


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the provider."""

    url: str
    api_key: str | None = None
    model: str = "lab-model"
    timeout: float = 10.0
    validate_certs: bool = True
    ca_path: str | None = None
    headers: t.Mapping[str, str] = field(default_factory=dict)

    def public_url(self) -> str:
        """Scheme, host and path only: never a query string or user info."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        return urllib.parse.urlunsplit(
            (
                parts.scheme,
                host + (":%d" % parts.port if parts.port else ""),
                parts.path,
                "",
                "",
            )
        )


def _request(
    endpoint: Endpoint, check: str, method: str, path: str, body: t.Any = None
) -> Probe:
    headers = dict(endpoint.headers, Accept="application/json")
    if endpoint.api_key:
        headers["Authorization"] = "Bearer " + endpoint.api_key
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    start = time.monotonic()
    try:
        response = open_url(
            endpoint.url.rstrip("/") + path,
            data=data,
            headers=headers,
            method=method,
            timeout=endpoint.timeout,
            validate_certs=endpoint.validate_certs,
            ca_path=endpoint.ca_path,
            follow_redirects="safe",
        )
        payload = response.read(1024 * 1024)
        return _answered(check, response.getcode(), start, payload)
    except urllib.error.HTTPError as error:
        retry_after = parse_retry_after(
            error.headers.get("Retry-After") if error.headers else None
        )
        detail = scrub(_snippet(error.read() if error.fp else b""), [endpoint.api_key])
        return Probe(check, error.code, time.monotonic() - start, detail, retry_after)
    except (
        urllib.error.URLError,
        socket.timeout,
        OSError,
        http.client.HTTPException,
    ) as error:
        reason = getattr(error, "reason", error)
        text = (
            "no answer within %ss" % endpoint.timeout
            if "timed out" in str(reason)
            else str(reason)
        )
        return Probe(
            check, None, time.monotonic() - start, scrub(text, [endpoint.api_key])
        )


def _answered(check: str, status: int, start: float, payload: bytes) -> Probe:
    latency = time.monotonic() - start
    try:
        document = json.loads(payload or b"null")
    except ValueError:
        return Probe(check, status, latency, "the answer is not JSON")
    if check == "models" and not isinstance((document or {}).get("data"), list):
        return Probe(check, status, latency, "the answer has no model list (data)")
    if check == "completion" and not (
        isinstance(document, dict) and document.get("choices")
    ):
        return Probe(check, status, latency, "the answer has no choices")
    return Probe(check, status, latency)


def _snippet(payload: bytes) -> str:
    text = payload.decode("utf-8", "replace").strip()
    return text[:SNIPPET]


def probe_provider(endpoint: Endpoint, checks: t.Sequence[str]) -> t.List[Probe]:
    """Run ``checks`` (``models``, ``completion``) in order; stop after one that got
    no answer at all, since a provider that hangs would only make each further check
    wait its whole timeout."""
    probes: t.List[Probe] = []
    for check in checks:
        if check == "models":
            probe = _request(endpoint, check, "GET", "/v1/models")
        else:
            body = {
                "model": endpoint.model,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "Reply with OK."}],
            }
            probe = _request(endpoint, check, "POST", "/v1/chat/completions", body)
        probes.append(probe)
        if probe.status is None:
            break
    return probes


def read_api_key(client: K8sClient, namespace: str, name: str, key: str) -> str:
    """One key of a Secret, decoded; the failure names the Secret and key, never a
    value."""
    secret = client.get(Ref("Secret", name, namespace))
    encoded = (secret.get("data") or {}).get(key)
    where = "Secret %s/%s" % (namespace, name)
    if encoded is None:
        raise RecoveryError(
            "Failed to read the API key: %s has no key %s" % (where, key),
            resource=where,
            reason="missing key",
            next_step="Check api_key_secret.key against: kubectl -n %s get secret %s "
            "-o "
            "jsonpath='{.data}' | jq keys" % (namespace, name),
        )
    try:
        return base64.b64decode(encoded).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise RecoveryError(
            "Failed to decode key %s of %s" % (key, where),
            resource=where,
            reason="not base64 text",
        ) from None


def report(name: str, endpoint: Endpoint, verdict: Verdict) -> t.Dict[str, t.Any]:
    """The ``provider`` result of a check: the verdict, its reason and every probe."""
    return {
        "name": name,
        "url": endpoint.public_url(),
        "state": verdict.state,
        "healthy": verdict.healthy,
        "reason": verdict.reason,
        "retry_after": verdict.retry_after,
        "latency": verdict.latency(),
        "checks": [probe.to_dict() for probe in verdict.probes],
    }


def check(
    name: str, endpoint: Endpoint, checks: t.Sequence[str], slow_after: float
) -> t.Dict[str, t.Any]:
    """The report of one provider: probed, then classified."""
    return report(
        name, endpoint, classify(probe_provider(endpoint, checks), slow_after)
    )


def check_all(
    targets: t.Sequence[t.Tuple[str, Endpoint]],
    checks: t.Sequence[str],
    slow_after: float,
) -> t.List[t.Dict[str, t.Any]]:
    """The reports of every provider in ``targets``, in their order.  The providers are
    probed at the same time, so a provider that hangs costs one timeout for all of them,
    not one more per provider."""
    if len(targets) <= 1:
        return [check(name, endpoint, checks, slow_after) for name, endpoint in targets]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [
            pool.submit(check, name, endpoint, checks, slow_after)
            for name, endpoint in targets
        ]
        return [future.result() for future in futures]


def key_not_read(name: str, url: str, why: str) -> t.Dict[str, t.Any]:
    """The report of a provider whose API key could not be read: not probed, and not
    usable (its credentials do not work from here)."""
    verdict = Verdict(AUTH_FAILURE, "API key not read: %s" % why)
    return report(name, Endpoint(url), verdict)


def unhealthy_error(
    reports: t.Sequence[t.Mapping[str, t.Any]], partial: t.Dict[str, t.Any]
) -> RecoveryError:
    """The failure of a check that required healthy providers, naming each that is not;
    ``partial`` (the reports) is kept in it."""
    sick = [item for item in reports if not item["healthy"]]
    return RecoveryError(
        "%s not healthy: %s"
        % (
            "Provider %s is" % sick[0]["name"]
            if len(sick) == 1
            else "Providers %s are" % ", ".join(item["name"] for item in sick),
            "; ".join(
                "%s%s (%s)"
                % (
                    "" if len(sick) == 1 else item["name"] + " ",
                    item["state"],
                    item["reason"],
                )
                for item in sick
            ),
        ),
        resource=", ".join(item["url"] for item in sick),
        reason=", ".join(sorted({item["state"] for item in sick})),
        partial=partial,
        next_step="Do not send traffic to %s; check %s status page and credentials."
        % (
            " or ".join(item["name"] for item in sick),
            "its" if len(sick) == 1 else "their",
        ),
    )
