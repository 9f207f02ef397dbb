# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module wrapper: option groups, missing-library checks and the one error path."""

from __future__ import annotations

import contextlib
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ragops.recovery.plugins.module_utils import options
from ansible_collections.ragops.recovery.plugins.module_utils.errors import RecoveryError

OPTION_GROUPS: t.Mapping[str, t.Tuple[t.Callable[[], options.Spec], t.Callable[[], t.Dict[str, t.Any]]]] = {
    "k8s": (options.k8s_auth_spec, options.k8s_auth_constraints),
    "s3": (options.s3_auth_spec, options.s3_auth_constraints),
    "wait": (options.wait_spec, dict),
    "components": (options.components_spec, dict),
    "migration": (options.migration_spec, options.migration_constraints),
}


class RecoveryModule(AnsibleModule):  # type: ignore[misc]
    """An AnsibleModule built from the module's own options plus named shared groups.

    ``groups`` names entries of :data:`OPTION_GROUPS`; ``libraries`` maps a
    pip requirement to the import error seen (or ``None`` when it imported).
    """

    def __init__(
        self,
        argument_spec: options.Spec,
        *,
        groups: t.Sequence[str] = (),
        libraries: t.Mapping[str, t.Optional[BaseException]] | None = None,
        supports_check_mode: bool = True,
        **kwargs: t.Any,
    ) -> None:
        spec: options.Spec = {}
        constraint_groups: list[dict[str, t.Any]] = [kwargs]
        for name in groups:
            group_spec, group_constraints = OPTION_GROUPS[name]
            spec.update(group_spec())
            constraint_groups.append(group_constraints())
        spec.update(argument_spec)
        super().__init__(
            argument_spec=spec,
            supports_check_mode=supports_check_mode,
            **options.merge_constraints(*constraint_groups),
        )
        for requirement, error in (libraries or {}).items():
            if error is not None:
                self.fail_json(msg=missing_required_lib(requirement), exception=str(error))


@contextlib.contextmanager
def recovery_errors(module: AnsibleModule) -> t.Iterator[None]:
    """Turn a domain exception raised inside the block into the module's one ``fail_json``."""
    try:
        yield
    except RecoveryError as error:
        module.fail_json(**error.to_result())
