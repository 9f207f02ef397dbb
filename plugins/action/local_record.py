# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ragops.recovery.local_record: writes one of the run's records to a
file on the controller, in the task's own process (no module process is started);
plugins/module_utils/incident/records.py does the writing."""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.incident import records

ARGUMENT_SPEC: t.Dict[str, t.Dict[str, t.Any]] = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str"},
    "document": {"type": "raw"},
    "mode": {"type": "raw", "default": "0640"},
    "dir_mode": {"type": "raw", "default": "0750"},
    "force": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False

    def run(
        self, tmp: t.Any = None, task_vars: t.Dict[str, t.Any] | None = None
    ) -> t.Dict[str, t.Any]:
        result: t.Dict[str, t.Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC,
            mutually_exclusive=[["content", "document"]],
            required_one_of=[["content", "document"]],
        )
        try:
            data = (
                params["content"].encode("utf-8")
                if params["content"] is not None
                else records.document_bytes(params["document"])
            )
            recorded = records.write(
                params["path"],
                data,
                mode=records.parse_mode("mode", params["mode"]),
                dir_mode=records.parse_mode("dir_mode", params["dir_mode"]),
                check_mode=bool(self._task.check_mode),
                force=params["force"],
            )
        except RecoveryError as error:
            result.update(error.to_result(), failed=True)
            return result
        result.update(recorded.to_result())
        if self._task.diff and recorded.changed:
            result["diff"] = recorded.diff(data)
        return result
