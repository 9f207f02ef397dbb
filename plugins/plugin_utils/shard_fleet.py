# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which shards of a stack one run of Scenario A recovers, and what came of each.

Pure functions over what the registry, the shards' pods and a golden canary query
per shard say (:func:`findings`), what the engineer asked for
(:func:`requested`, :func:`choose`, :func:`select`) and the records the recovery of each shard
leaves (:func:`verdicts`). The escalation from a scoped recovery to the whole stack
is never automatic: a request that would cover every shard, or more unhealthy
shards than the bound, is refused unless ``scope`` is ``stack``.
"""

from __future__ import annotations

import typing as t

UNHEALTHY = "unhealthy"
SCOPES = ("shard", "stack")
# A pod waiting for one of these will not become Ready by itself.
STUCK = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerError")


class ShardSelectionError(ValueError):
    """A request that names no shard to recover, or more than its scope allows; the
    message says what to give instead."""


def _names(value: t.Any) -> t.List[str]:
    if isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        text = str(value).strip()
        if text.startswith("[") != text.endswith("]"):
            raise ShardSelectionError(
                "shards: %r has an unmatched bracket; give shard ids separated by "
                "commas (shard-1,shard-2), a YAML list, or unhealthy" % value
            )
        items = (text[1:-1] if text.startswith("[") else text).split(",")
    names = [item.strip().strip("'\"").strip() for item in items]
    return list(dict.fromkeys(name for name in names if name))


def requested(shards: t.Any, shard: t.Any = None) -> t.Union[str, t.List[str]]:
    """What was asked for: :data:`UNHEALTHY`, or the shard ids (in the order given,
    without duplicates), from ``shards`` or else from ``shard`` (either a list, or
    text as ``-e`` or a survey gives it); ``[]`` when neither names one."""
    given = shards if shards not in (None, "", []) else shard
    if given in (None, "", []):
        return []
    if isinstance(given, str) and given.strip().lower() == UNHEALTHY:
        return UNHEALTHY
    names = _names(given)
    if UNHEALTHY in names:
        raise ShardSelectionError(
            "shards: %r mixes unhealthy with shard ids; give either unhealthy or the "
            "shard ids" % (given,)
        )
    return names


def _pod_problems(pods: t.Sequence[t.Mapping[str, t.Any]]) -> t.List[str]:
    if not pods:
        return ["no pod"]
    if any(pod.get("ready") for pod in pods):
        return []
    return [
        "pod %s not Ready (%s)"
        % (
            pod.get("name", "?"),
            pod.get("waiting_reason")
            or pod.get("last_termination_reason")
            or pod.get("phase")
            or "unknown",
        )
        for pod in pods
    ]


def findings(
    entries: t.Sequence[t.Mapping[str, t.Any]],
    canaries: t.Mapping[str, t.Mapping[str, t.Any]],
) -> t.Dict[str, t.List[str]]:
    """Every shard of ``entries`` (shard_info's ``shards``) with why it looks
    unhealthy (empty when it does not): its registry state when not serving, its pods
    when none is Ready, its canary (golden_validate's ``validation``, by shard) when
    it failed."""
    found: t.Dict[str, t.List[str]] = {}
    for entry in entries:
        shard = str(entry["shard"])
        reasons = []
        if entry.get("state") != "serving":
            reasons.append(
                "registry: %s%s"
                % (
                    entry.get("state", "?"),
                    " (%s)" % entry["reason"] if entry.get("reason") else "",
                )
            )
        reasons += _pod_problems(entry.get("pods") or [])
        canary = canaries.get(shard)
        if canary is not None and not canary.get("passed"):
            reasons.append("canary: %s" % (canary.get("summary") or "failed"))
        found[shard] = reasons
    return found


def default_bound(shard_count: int) -> int:
    """How many unhealthy shards a scoped recovery takes on by default: half of the
    stack's shards (rounded down), at least one."""
    return max(1, shard_count // 2)


def _refuse_whole_stack(chosen: t.Sequence[str], why: str) -> ShardSelectionError:
    return ShardSelectionError(
        "Refusing to recover %s with scope=shard: %s. A recovery of the whole stack "
        "is never started implicitly; check the stack's state (incident_info), then "
        "pass -e scope=stack to recover every shard, or name fewer shards."
        % (", ".join(chosen), why)
    )


def _unhealthy(found: t.Mapping[str, t.Sequence[str]], bound: int) -> t.List[str]:
    chosen = [shard for shard, reasons in found.items() if reasons]
    if len(found) > 1 and len(chosen) == len(found):
        raise _refuse_whole_stack(chosen, "every shard of the stack looks unhealthy")
    if len(chosen) > bound:
        raise _refuse_whole_stack(
            chosen,
            "%d shards look unhealthy, more than the bound of %d (max_unhealthy)"
            % (len(chosen), bound),
        )
    return chosen


def _named(asked: t.Sequence[str], known: t.Sequence[str]) -> t.List[str]:
    unknown = [shard for shard in asked if shard not in known]
    if unknown:
        raise ShardSelectionError(
            "Unknown shard(s) %s: the stack's registry and pods know %s; give shard "
            "ids from that list" % (", ".join(unknown), ", ".join(known) or "none")
        )
    if len(known) > 1 and set(asked) == set(known):
        raise _refuse_whole_stack(
            list(asked), "the list names every shard of the stack"
        )
    return list(asked)


def choose(
    asked: t.Union[str, t.Sequence[str]],
    scope: str,
    found: t.Mapping[str, t.Sequence[str]],
    max_unhealthy: int = 0,
) -> t.List[str]:
    """The shards to recover, in the stack's order for ``unhealthy`` and for
    ``scope=stack``, else in the order asked. ``found`` is :func:`findings` of every
    shard of the stack; ``max_unhealthy`` 0 means :func:`default_bound`."""
    known = list(found)
    if scope not in SCOPES:
        raise ShardSelectionError(
            "scope: %r is not one of %s" % (scope, ", ".join(SCOPES))
        )
    if scope == "stack":
        if asked not in ([], UNHEALTHY) and set(asked) != set(known):
            raise ShardSelectionError(
                "scope=stack recovers every shard of the stack (%s), but shards names "
                "only %s; drop shards, or use scope=shard"
                % (", ".join(known), ", ".join(asked))
            )
        return known
    if asked == UNHEALTHY:
        return _unhealthy(found, max_unhealthy or default_bound(len(known)))
    if not asked:
        raise ShardSelectionError(
            "No shard named: pass -e shard=<id>, -e shards=<id>,<id> or "
            "-e shards=unhealthy (or -e scope=stack for every shard)"
        )
    return _named(list(asked), known)


def parallel(value: t.Any) -> int:
    """``max_parallel`` as a whole number of at least 1: how many shards are
    recovered at once (the playbook's batches)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ShardSelectionError(
            "max_parallel: %r is not a whole number of at least 1; give how many "
            "shards may be restored at once, for example 4" % (value,)
        )
    return number


def select(
    entries: t.Sequence[t.Mapping[str, t.Any]],
    shards: t.Any = None,
    shard: t.Any = None,
    scope: str = "shard",
    canaries: t.Optional[t.Mapping[str, t.Mapping[str, t.Any]]] = None,
    max_unhealthy: int = 0,
    max_parallel: t.Any = 4,
) -> t.Dict[str, t.Any]:
    """The choice of one stack's shards, with why each looks unhealthy; raises
    :class:`ShardSelectionError` for a request that cannot be met."""
    found = findings(entries, canaries or {})
    asked = requested(shards, shard)
    return {
        "requested": asked,
        "scope": scope,
        "shards": choose(asked, scope, found, int(max_unhealthy or 0)),
        "unhealthy": {name: reasons for name, reasons in found.items() if reasons},
        "max_parallel": parallel(max_parallel),
    }


def _verdict(record: t.Mapping[str, t.Any]) -> str:
    line = "%s: %s" % (record.get("shard", "?"), record.get("outcome", "failed"))
    if record.get("snapshot"):
        line += " (snapshot %s)" % record["snapshot"]
    if record.get("outcome") == "failed" and record.get("failure"):
        line += " - %s" % record["failure"]
    return line


def _unfinished(shard: str) -> t.Dict[str, t.Any]:
    return {
        "shard": shard,
        "outcome": "failed",
        "failure": "its recovery did not finish; read the run's output for %s" % shard,
    }


def verdicts(
    found: t.Sequence[t.Mapping[str, t.Any]], shards: t.Sequence[str] = ()
) -> t.Dict[str, t.Any]:
    """The run's outcome over each shard's record (its ``shard``, ``outcome`` and
    optional ``snapshot`` and ``failure``): ``failed`` when any shard failed (the
    others were still recovered), ``planned`` in check mode, ``already recovered``
    when every shard was, ``nothing to recover`` without shards, else ``recovered``;
    and one line per shard naming its verdict. A shard of ``shards`` without a
    record (its recovery stopped before it wrote one) failed."""
    recorded = {str(record.get("shard")): record for record in found if record}
    records = [recorded.get(shard) or _unfinished(shard) for shard in shards] + [
        record for shard, record in recorded.items() if shard not in shards
    ]
    outcomes = [str(record.get("outcome", "failed")) for record in records]
    by_outcome: t.Dict[str, t.List[str]] = {}
    for record, outcome in zip(records, outcomes):
        by_outcome.setdefault(outcome, []).append(str(record.get("shard", "?")))
    if not records:
        outcome = "nothing to recover"
    elif "failed" in by_outcome or "in progress" in by_outcome:
        outcome = "failed"
    elif set(outcomes) == {"planned"}:
        outcome = "planned"
    elif set(outcomes) == {"already recovered"}:
        outcome = "already recovered"
    else:
        outcome = "recovered"
    return {
        "outcome": outcome,
        "failed": by_outcome.get("failed", []) + by_outcome.get("in progress", []),
        "recovered": by_outcome.get("recovered", []),
        "already_recovered": by_outcome.get("already recovered", []),
        "lines": [_verdict(record) for record in records],
        "records": records,
    }
