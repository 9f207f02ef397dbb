"""Test-only callback: write every task's result, by task name, to the JSON file in RAGOPS_E2E_RESULTS.

A task that runs on several hosts keeps the last host's result there; every host's result is also written,
by host and task name, to the same file name with ``.hosts`` before its suffix.
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: Record task results for the end-to-end tests
description:
  - Writes a JSON object mapping each task name to its result into the file named by RAGOPS_E2E_RESULTS.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, t.Any] = {}
        self.by_host: dict[str, dict[str, t.Any]] = {}

    def _record(self, result: t.Any, **extra: t.Any) -> None:
        recorded = dict(result._result, **extra)
        self.results[result._task.get_name()] = recorded
        self.by_host.setdefault(result._host.get_name(), {})[result._task.get_name()] = recorded

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        path = os.environ.get("RAGOPS_E2E_RESULTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.results, handle, default=str)
            root, suffix = os.path.splitext(path)
            with open(root + ".hosts" + suffix, "w", encoding="utf-8") as handle:
                json.dump(self.by_host, handle, default=str)
