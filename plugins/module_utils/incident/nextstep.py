# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step the runbook takes next from the state a stack is in: pure, state in,
one step out.

The rules are tried in the runbook's order of concern: a registry that cannot be
read, a recovery that is running (wait for it), a stale lock, a Job still running,
a shard out of service (Scenario A), a failed re-index or migration, the generator
in safe mode (Scenario B); the first that applies gives the step.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..generator.state import GeneratorState
from .jobs import JobView

RESUMABLE = ("restoring", "validating")


@dataclass(frozen=True)
class LockView:
    """The stack's recovery lock: who holds it, for which incident, until when."""

    name: str
    holder: str | None
    incident_id: str
    since: str | None
    expires: str | None
    stale: bool

    @property
    def held(self) -> bool:
        return bool(self.holder)


@dataclass(frozen=True)
class ShardView:
    """A shard's registry entry, as far as the runbook's next step depends on it."""

    shard: str
    state: str
    incident_id: str = ""
    reason: str = ""
    route_to: str | None = None


@dataclass(frozen=True)
class Situation:
    """Everything the next step depends on."""

    stack: str
    namespace: str
    registry: str
    incident_id: str
    lock: LockView | None
    shards: t.Sequence[ShardView]
    jobs: t.Sequence[JobView]
    generator: GeneratorState | None
    # Parts that could not be read: (part, message, next step).
    unreadable: t.Sequence[t.Tuple[str, str, str | None]] = ()


@dataclass(frozen=True)
class NextStep:
    """What to do next (``action``), why (``reason``), and the command that does it."""

    scenario: str
    action: str
    reason: str
    command: str | None = None

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {
            "scenario": self.scenario,
            "action": self.action,
            "reason": self.reason,
            "command": self.command,
        }


def playbook(s: Situation, name: str, incident_id: str, **extra: str) -> str:
    options = "".join(" -e %s=%s" % item for item in extra.items())
    return (
        "ansible-playbook ragops.recovery.%s -i <inventory> -l %s -e incident_id=%s%s"
        % (name, s.stack, incident_id or "<incident id>", options)
    )


def _progress(job: JobView) -> str:
    return " (%s)" % job.progress.text if job.progress else ""


def _running(s: Situation) -> t.List[JobView]:
    return [job for job in s.jobs if job.state == "running"]


def _out_of_service(s: Situation) -> t.List[ShardView]:
    """Shards out of service that the runbook handles, those of the incident first."""
    out = [v for v in s.shards if v.state not in ("serving", "unregistered")]
    return sorted(out, key=lambda v: (v.incident_id != s.incident_id, v.shard))


def _doing(s: Situation) -> str:
    """What a running recovery is busy with, from the state it left so far."""
    for job in _running(s):
        return "its %s Job %s is running%s" % (job.kind, job.name, _progress(job))
    for view in _out_of_service(s):
        if view.state == "restoring":
            return "%s is being restored from a snapshot" % view.shard
        if view.state == "validating":
            return "%s is on its golden-query gate (%s)" % (view.shard, view.reason)
        if view.state == "quarantined":
            return (
                "%s is quarantined; the runbook tries a graceful re-open, then a "
                "restore of the newest verified snapshot" % view.shard
            )
    if s.generator is not None and s.generator.safe_mode:
        return "the generator is in safe mode (%s)" % describe_generator(s.generator)
    return "no shard is out of service and no Job is running yet"


def describe_generator(state: GeneratorState) -> str:
    parts = ["provider %s" % (state.provider or state.primary)]
    if state.weights:
        shares = ", ".join("%s %d %%" % item for item in state.weights.items())
        parts.append("weights " + shares)
    if state.fallback != "off":
        parts.append("fallback %s" % state.fallback)
    if state.throttle:
        limits = ", ".join("%s=%s" % item for item in sorted(state.throttle.items()))
        parts.append("throttled " + limits)
    return "; ".join(parts)


def unreadable(s: Situation) -> NextStep | None:
    """Without the lock, the registry or the Jobs no step can be told safely."""
    for part, msg, step in s.unreadable:
        if part in ("lock", "shards", "jobs"):
            return NextStep(
                "",
                "Make the %s readable first: without it the status cannot tell what "
                "the runbook would do" % part,
                msg,
                step,
            )
    return None


def broken_registry(s: Situation) -> NextStep | None:
    invalid = [v.shard for v in s.shards if v.state == "invalid"]
    if not invalid:
        return None
    return NextStep(
        "A",
        "Repair the registry entry of %s by hand: the collection never overwrites an "
        "entry it cannot read" % ", ".join(invalid),
        "the entry of %s in ConfigMap %s is not valid JSON of a registry entry"
        % (invalid[0], s.registry),
        "kubectl -n %s get configmap %s -o jsonpath='{.data.%s}'"
        % (s.namespace, s.registry, invalid[0]),
    )


def recovery_running(s: Situation) -> NextStep | None:
    lock = s.lock
    if lock is None or not lock.held or lock.stale:
        return None
    running = _running(s)
    command = (
        "kubectl -n %s logs -f job/%s" % (s.namespace, running[0].name)
        if running
        else "ansible-playbook ragops.recovery.incident_status -i <inventory> -l %s"
        % s.stack
    )
    return NextStep(
        "",
        "Wait: %s is recovering the stack for incident %s; %s"
        % (lock.holder, lock.incident_id or "(none)", _doing(s)),
        "the recovery lock %s is held since %s (until %s)"
        % (lock.name, lock.since, lock.expires),
        command,
    )


def stale_lock(s: Situation) -> NextStep | None:
    lock = s.lock
    if lock is None or not lock.held or not lock.stale:
        return None
    return NextStep(
        "",
        "Check that %s no longer works on the stack, then clear the lock and run the "
        "recovery of incident %s again: it resumes where the last run stopped"
        % (lock.holder, lock.incident_id or "(none)"),
        "the recovery lock %s expired at %s without being released: its run died"
        % (lock.name, lock.expires),
        "kubectl -n %s patch lease %s --type=json "
        '-p=\'[{"op":"remove","path":"/spec/holderIdentity"}]\''
        % (s.namespace, lock.name),
    )


def job_running(s: Situation) -> NextStep | None:
    running = _running(s)
    if not running:
        return None
    job = running[0]
    return NextStep(
        "C" if job.kind == "migration" else "A",
        "Wait for the %s Job %s%s; then run the recovery of incident %s again, which "
        "takes up its result" % (job.kind, job.name, _progress(job), s.incident_id),
        "no recovery holds the lock, but the Job keeps running in the cluster",
        "kubectl -n %s logs -f job/%s" % (s.namespace, job.name),
    )


def _failed(s: Situation, kind: str, shard: str | None = None) -> JobView | None:
    """The newest Job of ``kind`` for a shard (or for ``shard``), when it failed: a
    later Job that succeeded settles an earlier failure."""
    newest: t.Dict[str | None, JobView] = {}
    for job in s.jobs:
        if job.kind == kind and shard in (None, job.shard):
            newest[job.shard] = job
    failed = [job for job in newest.values() if job.state == "failed"]
    return failed[0] if failed else None


def shard_out_of_service(s: Situation) -> NextStep | None:
    out = _out_of_service(s)
    if not out:
        return None
    view = out[0]
    incident = view.incident_id or s.incident_id
    command = playbook(s, "vectorstore_shard_recovery", incident, shard=view.shard)
    if view.state in RESUMABLE:
        return NextStep(
            "A",
            "Run the recovery of %s for incident %s again: it resumes at the restore"
            % (view.shard, incident),
            "%s is %s (%s) and no recovery holds the lock: a run stopped half-way"
            % (view.shard, view.state, view.reason),
            command,
        )
    failed = _failed(s, "restore", view.shard)
    if failed is not None:
        return NextStep(
            "A",
            "Read the failed restore's log, then run the recovery of %s again: "
            "snapshots that failed verification are quarantined and skipped"
            % view.shard,
            "restore Job %s failed: %s"
            % (failed.name, failed.error or failed.failure or "see its log"),
            command,
        )
    return NextStep(
        "A",
        "Recover %s: a graceful re-open first, then a restore of the newest verified "
        "snapshot into a new volume, gated on its golden queries" % view.shard,
        "%s is quarantined (%s)%s"
        % (
            view.shard,
            view.reason,
            ", its traffic routed to %s" % view.route_to if view.route_to else "",
        ),
        command,
    )


def failed_reindex(s: Situation) -> NextStep | None:
    job = _failed(s, "reindex")
    if job is None:
        return None
    return NextStep(
        "A",
        "Read the re-index Job's log, delete the Job and run ragops.recovery."
        "shard_reindex for %s again: until then the shard serves without the "
        "documents written since its snapshot" % job.shard,
        "re-index Job %s failed%s: %s" % (job.name, _progress(job), job.failure),
        "kubectl -n %s logs job/%s" % (s.namespace, job.name),
    )


def failed_migration(s: Situation) -> NextStep | None:
    job = _failed(s, "migration")
    if job is None:
        return None
    return NextStep(
        "C",
        "Read the migration's log, fix its cause, then run the bootstrap recovery: it "
        "runs the pending migration once and starts the components in order",
        "migration Job %s failed: %s" % (job.name, job.failure),
        playbook(s, "bootstrap_recovery", job.incident_id or s.incident_id),
    )


def generator_safe_mode(s: Situation) -> NextStep | None:
    state = s.generator
    if state is None or not state.safe_mode:
        return None
    command = playbook(s, "generator_failback", s.incident_id)
    if state.weights:
        return NextStep(
            "B",
            "Run the failback again once the primary %s answers well, or the outage "
            "playbook to send all traffic back to the backup" % state.primary,
            "a failback stopped half-way: %s" % describe_generator(state),
            command,
        )
    return NextStep(
        "B",
        "When the primary %s answers again (ragops.recovery.provider_check), ramp "
        "traffic back to it step by step with the failback" % state.primary,
        "the generator runs in safe mode: %s" % describe_generator(state),
        command,
    )


RULES: t.Tuple[t.Callable[[Situation], NextStep | None], ...] = (
    unreadable,
    broken_registry,
    recovery_running,
    stale_lock,
    job_running,
    shard_out_of_service,
    failed_reindex,
    failed_migration,
    generator_safe_mode,
)


def next_step(s: Situation) -> NextStep:
    """The first rule's step that applies, else: nothing left to do."""
    for rule in RULES:
        step = rule(s)
        if step is not None:
            return step
    where = "for incident %s " % s.incident_id if s.incident_id else ""
    return NextStep(
        "",
        "Nothing left to do %son this stack: finish the postmortem entry and add the "
        "test that would have caught the incident" % where,
        "every shard serves, no recovery Job runs or failed, the lock is free and the "
        "generator answers from its primary with no safe-mode flag",
    )
