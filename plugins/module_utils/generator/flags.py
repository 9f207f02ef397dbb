# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changing the generator's flags in the cluster: one read-modify-write, then the
rollout wait.

Shared by ``provider_switch``, ``generator_fallback`` and ``traffic_throttle``; their
options are the ``generator`` group of ``options.py`` (doc fragment
``ragops.recovery.generator``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..audit import instant
from ..k8s.client import K8sClient
from ..k8s.readiness import deployment_ready
from ..k8s.resources import Ref
from ..waiter import Clock, Waiter
from . import config

Obj = t.Dict[str, t.Any]


@dataclass(frozen=True)
class FlagTarget:
    """The generator Deployment, and the flags ConfigMap when the flags live there
    instead of in env."""

    namespace: str
    deployment: str = "generator"
    container: str | None = None
    flags_configmap: str | None = None

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> FlagTarget:
        return cls(
            params["namespace"],
            params["deployment"],
            params["container"],
            params["flags_configmap"],
        )

    def ref(self) -> Ref:
        if self.flags_configmap:
            return Ref("ConfigMap", self.flags_configmap, self.namespace)
        return Ref("Deployment", self.deployment, self.namespace)


@dataclass(frozen=True)
class WaitOptions:
    wait: bool = True
    timeout: float = 300
    interval: float = 2
    clock: Clock = field(default_factory=Clock)

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> WaitOptions:
        return cls(params["wait"], params["wait_timeout"], params["wait_sleep"])


@dataclass
class FlagOutcome:
    """What a change did: the flags before and after (as they may be shown) and the
    rollout wait."""

    changed: bool
    before: t.Dict[str, str | None]
    after: t.Dict[str, str | None]
    previous: t.Dict[str, str | None]
    target: str
    duration: float = 0.0
    # When the change took effect (the rollout done); None when nothing changed.
    effective_at: str | None = None

    def result(self) -> t.Dict[str, t.Any]:
        return {
            "before": self.before,
            "after": self.after,
            "previous": self.previous,
            "target": self.target,
            "duration": self.duration,
            "effective_at": self.effective_at,
        }

    def diff(self) -> t.Dict[str, t.Any]:
        return {"before": self.before, "after": self.after}


@dataclass(frozen=True)
class FlagChange:
    """A change of one group of flags, as a module asks for it.

    ``desired`` is set, or with ``restore`` the values recorded before the first change;
    the flags named in ``report`` are reported before and after even when they do not
    change.
    """

    target: FlagTarget
    group: str
    desired: t.Mapping[str, t.Any]
    restore: bool = False
    report: t.Sequence[str] = ()
    wait: WaitOptions = field(default_factory=WaitOptions)

    @classmethod
    def from_params(
        cls,
        params: t.Mapping[str, t.Any],
        group: str,
        desired: t.Mapping[str, t.Any],
        report: t.Sequence[str],
    ) -> FlagChange:
        """The change that the generator option group and the wait group ask for."""
        return cls(
            FlagTarget.from_params(params),
            group,
            desired,
            params["state"] == "restored",
            tuple(report),
            WaitOptions.from_params(params),
        )


def set_flags(
    client: K8sClient, change: FlagChange, *, check_mode: bool
) -> FlagOutcome:
    """Carry out ``change`` in one read-modify-write, then wait for the rollout."""
    target = change.target
    plans: t.List[config.FlagPlan] = []

    def mutate(obj: Obj) -> Obj | None:
        values = (
            config.restore_values(obj, change.group)
            if change.restore
            else change.desired
        )
        step = config.plan(
            obj, change.group, values, container=target.container, report=change.report
        )
        plans.append(step)
        return step.obj if step.changed else None

    update = client.update(target.ref(), mutate, dry_run=check_mode)
    last = plans[-1]
    outcome = FlagOutcome(
        update.changed,
        last.shown("before"),
        last.shown("after"),
        {name: config.shown(value) for name, value in last.previous.items()},
        str(target.ref()),
    )
    if (
        update.changed
        and not check_mode
        and change.wait.wait
        and not target.flags_configmap
    ):
        outcome.duration = wait_rollout(client, target, change.wait)
    if update.changed and not check_mode:
        outcome.effective_at = instant()
    return outcome


def wait_rollout(client: K8sClient, target: FlagTarget, wait: WaitOptions) -> float:
    ref = Ref("Deployment", target.deployment, target.namespace)
    waiter = Waiter.for_change(wait.timeout, wait.interval, wait.clock)
    done = waiter.until(
        "the rollout of %s" % ref,
        lambda: client.get(ref),
        deployment_ready,
        next_step="kubectl -n %s rollout status deployment/%s; kubectl -n %s describe "
        "pods "
        "-l app.kubernetes.io/name=%s"
        % (target.namespace, target.deployment, target.namespace, target.deployment),
    )
    return done.duration
