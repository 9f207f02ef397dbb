# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
short_description: Write an incident timeline of every task, as JSON and as Markdown with a Mermaid chart
version_added: 0.1.0
description:
  - Records every task with its start and end time, host, status (ok, changed, failed, skipped,
    unreachable) and a one-line summary, and writes C(timeline.json) and C(timeline.md) into
    O(directory) when the playbook ends, for the postmortem.
  - The Markdown file has a table and a Mermaid C(gantt) chart of the same steps.
  - When the playbook ends it also prints a summary (totals, the longest step, the first failure, where
    the files are). Under ansible-runner, as in AWX and Automation Platform, that output is a job event
    of its own (a C(verbose) event after C(playbook_on_stats)) that the job's output shows.
  - Summaries never contain values that look like secrets; tasks with C(no_log) are summarised as
    C(censored).
  - A run in check mode (C(--check)) writes nothing; it only says that no timeline was written.
author:
  - ragops.recovery maintainers (@ragops)
requirements:
  - enable it in the C(callbacks_enabled) setting, for example
    E(ANSIBLE_CALLBACKS_ENABLED=ragops.recovery.timeline)
options:
  directory:
    description: Where to write C(timeline.json) and C(timeline.md). Created when missing.
    type: path
    default: ./timeline
    env:
      - name: RAGOPS_TIMELINE_DIR
    ini:
      - section: ragops_timeline
        key: directory
  title:
    description: Title of the timeline; defaults to the name of the first play.
    type: str
    env:
      - name: RAGOPS_TIMELINE_TITLE
    ini:
      - section: ragops_timeline
        key: title
"""

import os
import time
import typing as t

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.ragops.recovery.plugins.plugin_utils.timeline import (
    Step,
    status_of,
    summarize,
    to_json,
    to_markdown,
    to_summary,
)


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "ragops.recovery.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []
        self.started: dict[tuple[str, str], float] = {}
        self.play_name = ""

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        self.play_name = self.play_name or play.get_name()

    def _start(self, task: t.Any, host: str) -> None:
        self.started[(task._uuid, host)] = time.time()

    def v2_runner_on_start(self, host: t.Any, task: t.Any) -> None:
        self._start(task, host.get_name())

    def _finish(self, result: t.Any, outcome: str) -> None:
        task, host = result._task, result._host.get_name()
        end = time.time()
        start = self.started.pop((task._uuid, host), end)
        summary = "censored" if task.no_log else summarize(result._result)
        self.steps.append(
            Step(
                task.get_name(),
                task.action,
                host,
                start,
                end,
                status_of(result._result, outcome),
                summary,
            )
        )

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._finish(result, "ok")

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._finish(result, "failed")

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._finish(result, "skipped")

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._finish(result, "unreachable")

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        if context.CLIARGS.get("check"):
            self._display.display(
                "Timeline not written: a run in check mode writes nothing (%d steps)"
                % len(self.steps)
            )
            return
        directory = self.get_option("directory")
        title = self.get_option("title") or self.play_name or "Recovery timeline"
        os.makedirs(directory, exist_ok=True)
        outputs = (
            ("timeline.md", to_markdown(title, self.steps)),
            ("timeline.json", to_json(title, self.steps)),
        )
        for name, text in outputs:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        files = [os.path.join(directory, output[0]) for output in outputs]
        self._display.display(to_summary(title, self.steps, files))
