# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module wrapper: option groups, their clients, library checks, one error path.

A module is an :class:`~.argspec.ArgumentSpec` and a ``run_module(module) -> dict``::

    def main() -> None:
        RecoveryModule(argument_spec()).run(run_module)

``run`` checks the libraries, calls ``run_module`` and exits once; a
:class:`~.errors.RecoveryError` raised anywhere below becomes the one ``fail_json``.
"""

from __future__ import annotations

import contextlib
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from .argspec import OPTION_GROUPS, ArgumentSpec
from .errors import RecoveryError

if t.TYPE_CHECKING:
    from .k8s.client import K8sClient
    from .snapshots.s3 import S3Store, Transfer
    from .waiter import Clock, Waiter

Result = t.Dict[str, t.Any]
Libraries = t.Mapping[str, t.Optional[BaseException]]


def require(requirement: str, error: BaseException | None) -> None:
    """Raise the failure naming a missing Python library if ``error`` says it is."""
    if error is not None:
        raise RecoveryError(
            missing_required_lib(requirement),
            reason="import failed: %s" % error,
            partial={"exception": str(error)},
        )


@contextlib.contextmanager
def recovery_errors(module: AnsibleModule) -> t.Iterator[None]:
    """Turn a domain exception raised in the block into the one ``fail_json``."""
    try:
        yield
    except RecoveryError as error:
        module.fail_json(**error.to_result())


class RecoveryModule(AnsibleModule):  # type: ignore[misc]
    """An AnsibleModule built from an :class:`ArgumentSpec` and the groups it names.

    ``libraries`` maps a pip requirement to the import error seen (``None`` when it
    imported), or is a function that returns that map; they and the libraries of the
    spec's groups are checked by :meth:`run`, after the argument check: a function
    imports its libraries only then.  The clients of the ``k8s`` and ``s3`` groups are
    made on first use, so that a module that needs one only for some of its options
    does not need it otherwise.
    """

    def __init__(
        self,
        spec: ArgumentSpec,
        *,
        libraries: Libraries | t.Callable[[], Libraries] | None = None,
        supports_check_mode: bool = True,
    ) -> None:
        full = spec.expanded()
        super().__init__(
            supports_check_mode=supports_check_mode, **full.module_kwargs()
        )
        self.groups = tuple(full.groups)
        self.library_checks = [OPTION_GROUPS[name].libraries for name in self.groups]
        if callable(libraries):
            self.library_checks.insert(0, libraries)
        elif libraries:
            self.library_checks.insert(0, lambda: libraries)
        self._k8s: K8sClient | None = None

    def run(self, run_module: t.Callable[[RecoveryModule], Result]) -> None:
        """Check the libraries, run the module's logic and exit once, failed or not."""
        with recovery_errors(self):
            for libraries in self.library_checks:
                for requirement, error in libraries().items():
                    require(requirement, error)
            result = run_module(self)
        self.exit_json(**result)

    def waiter(self, clock: Clock | None = None) -> Waiter:
        """A waiter with the ``wait`` group's timeout and interval (the longest pause:
        the first is shorter, see ``Waiter.for_change``); without ``wait``, it looks
        once and gives up at once."""
        # Imported here, as are the clients below: a module starts with no more code
        # than its argument check needs (the payload's code is compiled at every run).
        from .waiter import Clock, Waiter

        params = self.params
        timeout = params["wait_timeout"] if params["wait"] else 0
        return Waiter.for_change(timeout, params["wait_sleep"], clock or Clock())

    def k8s_client(self) -> K8sClient:
        """The Kubernetes client of the ``k8s`` group's options, made on first use."""
        if self._k8s is None:
            # Imported here: the kubernetes package takes half a second to import, and
            # modules of the k8s group may need the API only for some of their options.
            from .k8s import transport
            from .k8s.client import K8sClient

            require(transport.KUBERNETES_REQUIREMENT, transport.KUBERNETES_IMPORT_ERROR)
            self._k8s = K8sClient(transport.connect(self.params))
        return self._k8s

    def s3_store(
        self, bucket: str | None = None, transfer: Transfer | None = None
    ) -> S3Store:
        """An S3 store on ``bucket`` (the ``bucket`` option by default), from the
        ``s3`` group."""
        # Imported here for the same reason as kubernetes; s3 imports boto3 when first
        # used, since the S3 modules import s3 for its types too.
        from .snapshots import s3

        require(s3.BOTO3_REQUIREMENT, s3.boto3_import_error())
        return s3.open_store(self.params, bucket or self.params["bucket"], transfer)
