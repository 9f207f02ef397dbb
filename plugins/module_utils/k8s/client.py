# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes reads and writes as plain dictionaries, with retries and dry run.

:class:`K8sClient` knows the verbs and the retry rules; the HTTP work is done
by a :class:`Transport` (the official client in production, a fake in tests).
"""

from __future__ import annotations

import copy
import re
import typing as t
from dataclasses import dataclass, field

from ..errors import ApiError, Conflict, NotFound
from ..retry import Retrier
from .podexec import ExecResult
from .resources import Ref, kind_of

Obj = t.Dict[str, t.Any]
Mutation = t.Callable[[Obj], t.Optional[Obj]]

PATCH_CONTENT_TYPES: t.Mapping[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}


class RequestOptions(t.TypedDict, total=False):
    """What a request carries besides its method and path."""

    query: t.Sequence[t.Tuple[str, str]]
    body: t.Any
    content_type: str | None


class Transport(t.Protocol):
    """One HTTP call to the API server, answering parsed JSON (or text) or raising
    :class:`ApiError`; and a command run in a pod over a streaming connection."""

    def request(
        self, method: str, path: str, **options: t.Unpack[RequestOptions]
    ) -> t.Any: ...

    def pod_exec(
        self,
        namespace: str,
        name: str,
        container: str | None,
        command: t.Sequence[str],
        timeout: float,
    ) -> ExecResult: ...


@dataclass
class UpdateResult:
    """The object before and after a read-modify-write, and whether it changed."""

    before: Obj
    after: Obj
    changed: bool
    conflicts: int = 0


def _dry_run(dry_run: bool) -> t.List[t.Tuple[str, str]]:
    return [("dryRun", "All")] if dry_run else []


# The Roles the collection ships (meta/rbac/<file>.yaml) and the playbooks each one
# serves.
SHIPPED_ROLES: t.Tuple[t.Tuple[str, str, str], ...] = (
    (
        "ragops-recovery-shard",
        "shard-recovery.yaml",
        "vectorstore_shard_recovery, shard_quarantine",
    ),
    (
        "ragops-recovery-generator",
        "generator.yaml",
        "generator_outage, generator_failback",
    ),
    ("ragops-recovery-bootstrap", "bootstrap.yaml", "bootstrap_recovery"),
    ("ragops-recovery-status", "incident-status.yaml", "incident_status"),
    ("ragops-recovery-snapshots", "snapshots.yaml", "snapshot_nightly"),
    ("ragops-recovery-drill", "restore-drill.yaml", "restore_drill"),
)
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace '
    r'"(?P<namespace>[^"]*)")?'
)


# The ClusterRoles the collection ships, by the cluster-scoped resource each is for:
# the shard recovery's volumes, the restore drill's scratch namespaces.
SHIPPED_CLUSTER_ROLES = {
    "persistentvolumes": ("ragops-recovery-volumes", "shard-recovery.yaml"),
    "namespaces": ("ragops-recovery-drill", "restore-drill.yaml"),
}


def _cluster_step(verb: str, resource: str, group: str, user: str) -> str:
    role, file = SHIPPED_CLUSTER_ROLES.get(
        resource, SHIPPED_CLUSTER_ROLES["persistentvolumes"]
    )
    account = user.split(":")
    binding = (
        "kubectl create clusterrolebinding %s-%s --clusterrole %s --serviceaccount "
        "%s:%s" % (role, account[2], role, account[2], account[3])
        if len(account) == 4 and account[:2] == ["system", "serviceaccount"]
        else "kubectl create clusterrolebinding %s-NAME --clusterrole %s --user %s"
        % (role, role, user)
    )
    return (
        'Grant verb "%s" on the cluster-scoped resource "%s" (API group "%s") to %s: '
        "bind the ClusterRole %s (meta/rbac/%s) to that identity: %s."
        % (verb, resource, group, user, role, file, binding)
    )


def forbidden_step(reason: str) -> str | None:
    """What to grant, and where, when RBAC refused a request; None when the message
    says no more."""
    found = _FORBIDDEN.search(reason)
    if not found:
        return None
    if "at the cluster scope" in reason:
        return _cluster_step(
            found.group("verb"),
            found.group("resource"),
            found.group("group") or "",
            found.group("user"),
        )
    roles = "; ".join("%s (meta/rbac/%s, for %s)" % role for role in SHIPPED_ROLES)
    where = (
        ' in namespace "%s"' % found.group("namespace")
        if found.group("namespace")
        else ""
    )
    return (
        'Grant verb "%s" on resource "%s" (API group "%s")%s to %s: add it to the Role '
        "bound to that identity. "
        "The Roles the collection ships are %s; apply the one of the playbook you run "
        "with "
        "kubectl apply -n NAMESPACE -f <file>, or report the missing rule if it is "
        "already applied."
        % (
            found.group("verb"),
            found.group("resource"),
            found.group("group") or "",
            where,
            found.group("user"),
            roles,
        )
    )


def _describe(error: ApiError, verb: str, target: str) -> ApiError:
    """Re-raise ``error`` with a message naming the verb and the object."""
    cls = type(error)
    reason = error.reason or error.msg
    if error.status == 0:
        msg = "Failed to %s %s: the Kubernetes API could not be reached (%s)" % (
            verb,
            target,
            reason,
        )
        next_step = (
            "Check that the API server is up and that host/kubeconfig point at it."
        )
    elif error.status == 403 and forbidden_step(reason):
        msg = "Failed to %s %s: forbidden by RBAC (HTTP 403: %s)" % (
            verb,
            target,
            reason,
        )
        next_step = forbidden_step(reason) or ""
    elif error.status in (401, 403):
        msg = "Failed to %s %s: the credentials were rejected (HTTP %d: %s)" % (
            verb,
            target,
            error.status,
            reason,
        )
        next_step = (
            "Check api_key/kubeconfig and the RBAC permissions of that identity."
        )
    else:
        msg = "Failed to %s %s: HTTP %d: %s" % (verb, target, error.status, reason)
        next_step = error.next_step or ""
    if error.attempts > 1:
        msg += " (after %d attempts)" % error.attempts
    described = cls(
        msg, status=error.status, resource=target, reason=reason, next_step=next_step
    )
    described.attempts = error.attempts
    return described


def conflict_storm(error: Conflict, target: str, conflicts: int) -> Conflict:
    """The last of ``conflicts`` 409 answers in a row, for a write given up on:
    something else keeps changing the object, and the step says how to find it."""
    storm = Conflict(
        "%s (answered 409 Conflict %d times in a row)" % (error.msg, conflicts),
        status=409,
        resource=target,
        reason=error.reason,
        next_step="Something else keeps changing %s: find that writer (kubectl get "
        "--show-managed-fields -o yaml names the manager of each field; a GitOps "
        "controller or an operator reconciling the object are the usual ones), pause "
        "it, then run this again: the write is re-read and re-applied." % target,
    )
    storm.attempts = error.attempts
    return storm


def _guarded(patch: t.Any) -> bool:
    """Whether a patch names the resourceVersion it applies to (a 409 then means
    the object changed, and sending it again cannot help)."""
    meta = patch.get("metadata") if isinstance(patch, dict) else None
    return isinstance(meta, dict) and bool(meta.get("resourceVersion"))


@dataclass
class K8sClient:
    """The verbs the collection uses, over a :class:`Transport`."""

    transport: Transport
    retrier: Retrier = field(default_factory=Retrier)
    conflict_attempts: int = 5

    def _send(
        self,
        verb: str,
        target: str,
        idempotent: bool,
        method: str,
        path: str,
        **options: t.Unpack[RequestOptions],
    ) -> t.Any:
        """One request under the retry policy; a failure names ``verb`` and
        ``target``."""
        try:
            return self.retrier.call(
                lambda: self.transport.request(method, path, **options),
                idempotent=idempotent,
            )
        except ApiError as error:
            raise _describe(error, verb, target) from None

    def get(self, ref: Ref) -> Obj:
        """The object, or :class:`NotFound`."""
        return t.cast(Obj, self._send("read", str(ref), True, "GET", ref.path()))

    def get_or_none(self, ref: Ref) -> Obj | None:
        try:
            return self.get(ref)
        except NotFound:
            return None

    def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> t.List[Obj]:
        selectors = (
            ("labelSelector", label_selector),
            ("fieldSelector", field_selector),
        )
        query = [(name, value) for name, value in selectors if value]
        path = kind_of(kind).collection_path(namespace)
        target = "%s in %s" % (kind_of(kind).plural, namespace or "all namespaces")
        answer = self._send("list", target, True, "GET", path, query=query)
        return t.cast(t.List[Obj], answer.get("items") or [])

    def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Create ``obj``; only a throttled attempt is repeated, since a create is not
        idempotent."""
        meta = obj.get("metadata", {})
        name = meta.get("name") or meta.get("generateName", "") + "*"
        ref = Ref(obj["kind"], name, meta.get("namespace"))
        path = kind_of(obj["kind"]).collection_path(meta.get("namespace"))
        query = _dry_run(dry_run)
        answer = self._send(
            "create", str(ref), False, "POST", path, query=query, body=obj
        )
        return t.cast(Obj, answer)

    def patch(
        self,
        ref: Ref,
        patch: t.Any,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Obj:
        """Apply a patch; merge and strategic patches set fields, so they are safe to
        repeat, and one answered 409 Conflict is sent again: without a
        resourceVersion of its own it cannot be stale."""
        repeatable = patch_type != "json" and not _guarded(patch)
        conflicts = 0
        while True:
            try:
                answer = self._send(
                    "patch",
                    str(ref),
                    patch_type != "json",
                    "PATCH",
                    ref.path(subresource),
                    query=_dry_run(dry_run),
                    body=patch,
                    content_type=PATCH_CONTENT_TYPES[patch_type],
                )
                return t.cast(Obj, answer)
            except Conflict as error:
                conflicts += 1
                if not repeatable:
                    raise
                if conflicts >= self.conflict_attempts:
                    raise conflict_storm(error, str(ref), conflicts) from None

    def replace(
        self, obj: Obj, *, dry_run: bool = False, ref: Ref | None = None
    ) -> Obj:
        """PUT ``obj``; it carries its resourceVersion, so a repeat cannot overwrite a
        newer write."""
        meta = obj["metadata"]
        ref = ref or Ref(obj["kind"], meta["name"], meta.get("namespace"))
        query = _dry_run(dry_run)
        answer = self._send(
            "replace", str(ref), True, "PUT", ref.path(), query=query, body=obj
        )
        return t.cast(Obj, answer)

    def update(
        self, ref: Ref, mutate: Mutation, *, dry_run: bool = False
    ) -> UpdateResult:
        """Read, apply the pure function ``mutate`` and write back, re-reading on 409
        Conflict.

        ``mutate`` gets a deep copy and returns the desired object, or ``None``
        when nothing needs to change.  It may run several times.
        """
        conflicts = 0
        while True:
            before = self.get(ref)
            desired = mutate(copy.deepcopy(before))
            if desired is None or desired == before:
                return UpdateResult(before, before, False, conflicts)
            try:
                return UpdateResult(
                    before,
                    self.replace(desired, dry_run=dry_run, ref=ref),
                    True,
                    conflicts,
                )
            except Conflict as error:
                conflicts += 1
                if conflicts >= self.conflict_attempts:
                    raise conflict_storm(error, str(ref), conflicts) from None

    def delete(
        self,
        ref: Ref,
        *,
        uid: str | None = None,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> bool:
        """Delete the object; False when it was already gone.

        With ``uid`` only that very object is deleted (a successor of the same name is
        refused with 409), which also makes a repeated call harmless.
        """
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation:
            options["propagationPolicy"] = propagation
        try:
            self._send(
                "delete",
                str(ref),
                bool(uid),
                "DELETE",
                ref.path(),
                query=_dry_run(dry_run),
                body=options,
            )
        except NotFound:
            return False
        return True

    def api_group(self, group: str) -> Obj | None:
        """The discovery document of an API group (``/apis/<group>``), or ``None``
        when the cluster does not serve it."""
        try:
            answer = self._send(
                "discover", "API group " + group, True, "GET", "/apis/" + group
            )
        except NotFound:
            return None
        return t.cast(Obj, answer)

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str:
        query = [("container", container)] if container else []
        if previous:
            query.append(("previous", "true"))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        ref = Ref("Pod", name, namespace)
        answer = self._send(
            "read the log of", str(ref), True, "GET", ref.path("log"), query=query
        )
        return answer if isinstance(answer, str) else ""

    def pod_exec(
        self,
        namespace: str,
        name: str,
        command: t.Sequence[str],
        *,
        container: str | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run ``command`` in the pod (``pods/exec``) and wait at most ``timeout``
        seconds; never repeated, since a command is not known to be idempotent."""
        ref = Ref("Pod", name, namespace)
        try:
            return self.transport.pod_exec(namespace, name, container, command, timeout)
        except ApiError as error:
            raise _describe(error, "run a command in", str(ref)) from None
