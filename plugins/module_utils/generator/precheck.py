# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The warm-failover precheck: each backup provider's last check, kept in a ConfigMap
of the stack's namespace (one key per provider, the value JSON), and the answer
cache's coverage of the golden set's qids.

Scenario B reads a provider's record before switching to it: a backup whose last
precheck failed is refused unless the switch is forced.
"""

from __future__ import annotations

import json
import typing as t
from datetime import datetime, timezone

from ..errors import RecoveryError
from ..k8s.client import K8sClient
from ..k8s.resources import MANAGED_BY, Ref
from .answer_cache import KEY

# On the precheck ConfigMap: the answer cache's coverage found by the last precheck.
COVERAGE_ANNOTATION = "ragops.io/answer-cache-coverage"
Obj = t.Dict[str, t.Any]


def now_text(moment: datetime | None = None) -> str:
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def provider_record(result: t.Mapping[str, t.Any], checked_at: str) -> Obj:
    """The record of one ``provider_check`` result (an item of a registered loop): its
    ``provider``, or, when the check itself failed (a missing Secret, for example),
    its ``msg`` against the loop's ``item``."""
    provider = result.get("provider")
    if isinstance(provider, dict) and provider.get("name"):
        return {
            "provider": str(provider["name"]),
            "passed": provider.get("healthy") is True,
            "state": str(provider.get("state") or "unknown"),
            "reason": str(provider.get("reason") or ""),
            "url": str(provider.get("url") or ""),
            "latency": provider.get("latency") or {},
            "checked_at": checked_at,
        }
    name = result.get("item")
    if not isinstance(name, str) or not name:
        raise RecoveryError(
            "Failed to record the precheck: a result has neither a provider nor an item",
            reason="unexpected result keys: %s" % ", ".join(sorted(map(str, result))),
            next_step="Pass the registered results of a provider_check loop over "
            "the providers' names.",
        )
    return {
        "provider": name,
        "passed": False,
        "state": "check_failed",
        "reason": str(result.get("msg") or "the check failed"),
        "url": "",
        "latency": {},
        "checked_at": checked_at,
    }


def cache_coverage(
    qids: t.Sequence[str], cache: t.Mapping[str, str] | None, minimum: float
) -> Obj:
    """How many golden qids the answer cache can answer: an entry counts when it is
    JSON with an answer text, as the generator reads it."""
    usable = [qid for qid in qids if _usable((cache or {}).get(qid))]
    unusable = [qid for qid in qids if qid in (cache or {}) and qid not in usable]
    coverage = round(len(usable) / len(qids), 4) if qids else 1.0
    return {
        "exists": cache is not None,
        "qids": len(qids),
        "cached": len(usable),
        "coverage": coverage,
        "missing": [qid for qid in qids if qid not in (cache or {})],
        "unusable": unusable,
        "min_coverage": minimum,
        "passed": cache is not None and coverage >= minimum,
    }


def _usable(value: str | None) -> bool:
    if value is None:
        return False
    try:
        entry = json.loads(value)
    except ValueError:
        return False
    return isinstance(entry, dict) and isinstance(entry.get("answer"), str)


def summary(records: t.Sequence[Obj], cache: Obj | None) -> t.List[str]:
    """One line per provider and one for the answer cache, each PASSED or FAILED."""
    lines = []
    for record in records:
        latency = (record.get("latency") or {}).get("max")
        lines.append(
            "provider %s: %s, %s (%s)%s"
            % (
                record["provider"],
                "PASSED" if record["passed"] else "FAILED",
                record["state"],
                record["reason"],
                "" if latency is None else ", slowest answer %.3fs" % latency,
            )
        )
    if cache is not None:
        lines.append(
            "answer cache %s: %s, %d of %d golden qids answerable (coverage %s, at "
            "least %s)%s"
            % (
                cache["configmap"],
                "PASSED" if cache["passed"] else "FAILED",
                cache["cached"],
                cache["qids"],
                cache["coverage"],
                cache["min_coverage"],
                _missing(cache),
            )
        )
    return lines


def _missing(cache: Obj) -> str:
    if not cache["exists"]:
        return "; the ConfigMap does not exist"
    gaps = cache["missing"] + cache["unusable"]
    if not gaps:
        return ""
    return "; not answerable: %s%s" % (
        ", ".join(gaps[:10]),
        " and %d more" % (len(gaps) - 10) if len(gaps) > 10 else "",
    )


def check_names(records: t.Sequence[Obj]) -> None:
    bad = [r["provider"] for r in records if not KEY.match(r["provider"])]
    if bad:
        raise RecoveryError(
            "Failed to record the precheck: provider name(s) %s cannot be ConfigMap "
            "keys" % ", ".join(bad),
            reason="invalid provider name",
            next_step="Name providers with letters, digits, '-', '_' and '.' only.",
        )


def write_records(
    client: K8sClient,
    ref: Ref,
    records: t.Sequence[Obj],
    coverage: Obj | None,
    check_mode: bool,
) -> bool:
    """Store each record under its provider's key (other providers' records are
    kept), and the coverage as an annotation; whether anything changed."""
    check_names(records)
    data = {r["provider"]: json.dumps(r, sort_keys=True) for r in records}
    annotations = {}
    if coverage is not None:
        annotations[COVERAGE_ANNOTATION] = json.dumps(coverage, sort_keys=True)
    current = client.get_or_none(ref)
    if current is None:
        metadata = {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": annotations,
        }
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        client.create(dict(body, data=data), dry_run=check_mode)
        return True

    def mutate(obj: Obj) -> Obj:
        obj["data"] = dict(obj.get("data") or {}, **data)
        meta = obj["metadata"]
        meta["annotations"] = dict(meta.get("annotations") or {}, **annotations)
        return obj

    return client.update(ref, mutate, dry_run=check_mode).changed


def read_record(client: K8sClient, ref: Ref, provider: str) -> Obj | None:
    """The last recorded precheck of ``provider``, or None when it was never
    prechecked."""
    current = client.get_or_none(ref)
    text = ((current or {}).get("data") or {}).get(provider)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("passed"), bool):
        raise RecoveryError(
            "Failed to read the last precheck of provider %s: the key %s of %s is "
            "not a precheck record" % (provider, provider, ref),
            resource=str(ref),
            reason="unreadable precheck record",
            next_step="Run the ragops.recovery.provider_precheck playbook again to "
            "record a fresh precheck.",
        )
    return record


def require_passed(client: K8sClient, ref: Ref, provider: str) -> Obj:
    """What the records in ``ref`` say of switching to ``provider``: refused (raised)
    when its last precheck failed; a provider never prechecked passes."""
    last = read_record(client, ref, provider)
    if last is not None and not last["passed"]:
        raise refusal(last, ref)
    return {
        "configmap": str(ref),
        "provider": provider,
        "recorded": last is not None,
        "last": last,
        "passed": True,
    }


def refusal(record: Obj, ref: Ref) -> RecoveryError:
    """The failure of a switch to a provider whose last precheck failed."""
    return RecoveryError(
        "Refusing the backup provider %s: its last precheck (%s) failed: %s: %s"
        % (
            record.get("provider"),
            record.get("checked_at"),
            record.get("state"),
            record.get("reason"),
        ),
        resource=str(ref),
        reason="last precheck failed",
        next_step="Fix the backup provider and run the ragops.recovery."
        "provider_precheck playbook again (a passing precheck lifts the refusal), "
        "or force the switch (generator_outage_force=true) if you know it works now.",
        partial={"precheck": record},
    )
