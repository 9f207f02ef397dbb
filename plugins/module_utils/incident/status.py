# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an incident stands on one stack, read without changing anything: the lock,
every shard's registry entry, the recovery Jobs, the generator's flags, the evidence
and reports written, and the runbook's next step.

Each part is read on its own: a part that cannot be read (a permission missing, S3
unreachable) is reported in ``errors`` with what to do, and the others are still
shown.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from datetime import datetime

from ..audit import timestamp, utc_now
from ..errors import RecoveryError
from ..generator.flags import FlagTarget
from ..generator.state import FlagNames, GeneratorState, read_state
from ..k8s.client import K8sClient, Obj
from ..k8s.resources import Ref
from ..shards import registry
from ..snapshots.s3 import S3Store
from ..stack import lock
from . import artifacts, jobs, nextstep

T = t.TypeVar("T")
# The pod fields a status shows; shard_info has the rest.
POD_FIELDS = ("name", "phase", "ready", "restarts", "waiting_reason", "claims")


@dataclass(frozen=True)
class StatusRequest:
    """Which stack, which incident (empty: the one the stack shows), and where each
    part lives."""

    namespace: str
    stack: str
    incident_id: str = ""
    lock_name: str = "ragops-recovery-lock"
    registry: str = "rag-shard-registry"
    shard_label: str = "ragops.io/shard"
    generator: FlagTarget | None = None
    flag_names: FlagNames = field(default_factory=FlagNames)
    primary_provider: str = "primary"
    evidence_prefix: str = "evidence"
    report_dirs: t.Sequence[str] = ()


@dataclass
class Reader:
    """Reads one part at a time, keeping what failed in ``errors``."""

    errors: t.List[Obj] = field(default_factory=list)

    def read(self, part: str, fetch: t.Callable[[], T], default: T) -> T:
        try:
            return fetch()
        except RecoveryError as error:
            self.errors.append(
                {"part": part, "msg": error.msg, "next_step": error.next_step}
            )
            return default


def lock_view(lease: Obj | None, name: str, now: datetime) -> Obj:
    """The Lease as the status shows it: held or not, by whom, stale or not."""
    if lease is None:
        return {"name": name, "exists": False, "held": False, "stale": False}
    state = lock.lock_state(lease)
    view = state.to_result(name)
    view.update(
        exists=True,
        held=state.holder is not None,
        stale=state.holder is not None and state.expired(now),
    )
    return view


def shard_view(shard: Obj) -> Obj:
    pods = [{key: pod.get(key) for key in POD_FIELDS} for pod in shard["pods"]]
    return dict(shard, pods=pods)


def focus(given: str, lock_seen: Obj, shards: t.Sequence[Obj]) -> t.Tuple[str, str]:
    """The incident to show, and where it came from: given, the lock's, or the one
    the registry names last (out-of-service shards first)."""
    if given:
        return given, "given"
    if lock_seen.get("held") and lock_seen.get("incident_id"):
        return str(lock_seen["incident_id"]), "lock"
    named = [s for s in shards if s.get("incident_id")]
    named.sort(key=lambda s: (s.get("state") != "serving", str(s.get("since") or "")))
    if named:
        return str(named[-1]["incident_id"]), "registry"
    return "", "none"


def situation(
    request: StatusRequest,
    incident_id: str,
    lock_seen: Obj,
    shards: t.Sequence[Obj],
    listing: jobs.JobListing,
    generator: GeneratorState | None,
    errors: t.Sequence[Obj] = (),
) -> nextstep.Situation:
    held = lock_seen.get("holder") if lock_seen.get("exists") else None
    return nextstep.Situation(
        stack=request.stack,
        namespace=request.namespace,
        registry=request.registry,
        incident_id=incident_id,
        lock=nextstep.LockView(
            request.lock_name,
            held,
            str(lock_seen.get("incident_id") or ""),
            lock_seen.get("acquired_at"),
            lock_seen.get("expires_at"),
            bool(lock_seen.get("stale")),
        ),
        shards=[
            nextstep.ShardView(
                s["shard"],
                s["state"],
                s.get("incident_id") or "",
                s.get("reason") or s.get("error") or "",
                s.get("route_to") or None,
            )
            for s in shards
        ],
        jobs=listing.shown,
        generator=generator,
        unreadable=[(e["part"], e["msg"], e["next_step"]) for e in errors],
    )


def read_artifacts(
    reader: Reader,
    request: StatusRequest,
    incident_id: str,
    evidence_store: t.Callable[[], S3Store | None],
) -> Obj:
    """The incident's evidence in S3 and its files in the report folders."""
    if not incident_id:
        return {"evidence": [], "reports": []}

    def evidence() -> t.List[artifacts.Artifact]:
        store = evidence_store()
        if store is None:
            return []
        return artifacts.list_evidence(store, request.evidence_prefix, incident_id)

    none: t.List[artifacts.Artifact] = []
    found = list(reader.read("evidence", evidence, none))
    found += reader.read(
        "reports",
        lambda: artifacts.list_reports(request.report_dirs, incident_id),
        none,
    )
    return {
        "evidence": [a.to_dict() for a in found if a.kind.startswith("evidence")],
        "reports": [a.to_dict() for a in found if not a.kind.startswith("evidence")],
    }


def read_status(
    client: K8sClient,
    request: StatusRequest,
    evidence_store: t.Callable[[], S3Store | None],
) -> Obj:
    """The module result: everything the status shows, and the next step."""
    reader, now = Reader(), utc_now()
    ref = Ref("Lease", request.lock_name, request.namespace)
    lock_seen = lock_view(
        reader.read("lock", lambda: client.get_or_none(ref), None),
        request.lock_name,
        now,
    )
    where = registry.Registry(request.namespace, request.registry)
    described: Obj = reader.read(
        "shards",
        lambda: registry.describe_shards(client, where, [], request.shard_label),
        {"registry": {"name": request.registry, "exists": None}, "shards": []},
    )
    shards = [shard_view(s) for s in described["shards"]]
    incident_id, source = focus(request.incident_id, lock_seen, shards)
    listing = reader.read(
        "jobs",
        lambda: jobs.read_jobs(client, request.namespace, incident_id),
        jobs.JobListing([], 0),
    )
    generator = None
    if request.generator is not None:
        target = request.generator
        generator = reader.read(
            "generator",
            lambda: read_state(
                client, target, request.flag_names, request.primary_provider
            ),
            None,
        )
    found = read_artifacts(reader, request, incident_id, evidence_store)
    step = nextstep.next_step(
        situation(
            request, incident_id, lock_seen, shards, listing, generator, reader.errors
        )
    )
    return {
        "changed": False,
        "incident": {
            "stack": request.stack,
            "namespace": request.namespace,
            "read_at": timestamp(now),
            "incident_id": incident_id,
            "incident_from": source,
            "lock": lock_seen,
            "registry": described["registry"],
            "shards": shards,
            "jobs": listing.to_dict(),
            "generator": generator.to_dict() if generator else None,
            "artifacts": found,
            "next_step": step.to_dict(),
            "errors": reader.errors,
        },
    }
