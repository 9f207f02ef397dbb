# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
short_description: Write the incident timeline - the runbook's phases, milestones and times - as JSON and Markdown
version_added: 0.1.0
description:
  - Records every task with its start and end time, host, status (ok, changed, failed, skipped,
    unreachable), a one-line summary, and the runbook phase and milestones its tags declare
    (C(phase_<name>), C(milestone_<name>)), and writes C(timeline.json) and C(timeline.md) into
    O(directory) for the postmortem - when the playbook ends, and as each task starts with the steps
    so far, so that the scenario roles keep the timeline with their records in the evidence store and
    a run that is killed leaves the timeline of what it did.
  - The Markdown file shows the runbook, not Ansible's plumbing - the time to safe mode and the
    time to recover, the milestones (safe mode reached, snapshot chosen, golden verdict, back in
    service) with the time from the start to each, the phases, and a table and a Mermaid C(gantt)
    chart of the tasks that did something or failed (skipped tasks and bookkeeping such as
    C(set_fact), C(include_tasks) and argument validation are left out). C(timeline.json) keeps
    every task.
  - Times are measured from the playbook's start and, when the alert's time is given (the
    O(alert_received_at) option or the extra variable C(alert_received_at), as an Event-Driven
    Ansible rulebook passes it), from the alert.
  - When the playbook ends it also prints a summary (totals, the longest step, the first failure,
    each host's time to safe mode and to recover, where the files are). Under ansible-runner, as in
    AWX and Automation Platform, that output is a job event of its own (a C(verbose) event after
    C(playbook_on_stats)) that the job's output shows.
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
  alert_received_at:
    description:
      - When the alert that started the run was received, ISO 8601 (for example
        C(2026-11-27T22:10:00Z); a time without a zone is UTC) or seconds since the epoch.
      - The extra variable C(alert_received_at) takes precedence. A value that is not a time is
        reported in the timeline and left out of the figures; it never fails the run.
    type: str
    env:
      - name: RAGOPS_ALERT_RECEIVED_AT
    ini:
      - section: ragops_timeline
        key: alert_received_at
"""

import os
import time
import typing as t

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.ragops.recovery.plugins.plugin_utils.recovery_times import (
    alert_moment,
)
from ansible_collections.ragops.recovery.plugins.plugin_utils.timeline import (
    Run,
    Step,
    markers,
    milestone_detail,
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
        self.playbook_started: float | None = None
        self.alert: t.Any = None

    def v2_playbook_on_start(self, playbook: t.Any) -> None:
        self.playbook_started = time.time()

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        self.play_name = self.play_name or play.get_name()
        manager = play.get_variable_manager()
        extra = getattr(manager, "extra_vars", None) or {}
        if self.alert is None and extra.get("alert_received_at") not in (None, ""):
            self.alert = extra["alert_received_at"]

    def _start(self, task: t.Any, host: str) -> None:
        self.started[(task._uuid, host)] = time.time()

    def v2_runner_on_start(self, host: t.Any, task: t.Any) -> None:
        self._start(task, host.get_name())

    def _finish(self, result: t.Any, outcome: str) -> None:
        task, host = result._task, result._host.get_name()
        end = time.time()
        start = self.started.pop((task._uuid, host), end)
        phase, reached = markers(task.tags or [])
        summary = "censored" if task.no_log else summarize(result._result)
        detail = "" if task.no_log or not reached else milestone_detail(result._result)
        self.steps.append(
            Step(
                task.get_name(),
                task.action,
                host,
                start,
                end,
                status_of(result._result, outcome),
                summary,
                phase,
                reached,
                detail,
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

    def run(self) -> Run:
        title = self.get_option("title") or self.play_name or "Recovery timeline"
        given = self.alert
        if given in (None, ""):
            given = self.get_option("alert_received_at")
        alert, error = alert_moment(given)
        return Run(title, self.playbook_started, alert, error)

    def v2_playbook_on_task_start(self, task: t.Any, is_conditional: bool) -> None:
        # The files follow the run: a task that keeps the run's records (the roles put
        # the timeline next to the evidence) reads every step before it, and a run that
        # is killed leaves the timeline of what it did.
        if self.steps and not context.CLIARGS.get("check"):
            self.write(self.run())

    def write(self, run: Run) -> t.List[str]:
        """Write both files, each replaced whole so that a reader never sees half."""
        directory = self.get_option("directory")
        os.makedirs(directory, exist_ok=True)
        outputs = (
            ("timeline.md", to_markdown(run, self.steps)),
            ("timeline.json", to_json(run, self.steps)),
        )
        files = []
        for name, text in outputs:
            path = os.path.join(directory, name)
            with open(path + ".part", "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(path + ".part", path)
            files.append(path)
        return files

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        if context.CLIARGS.get("check"):
            self._display.display(
                "Timeline not written: a run in check mode writes nothing (%d steps)"
                % len(self.steps)
            )
            return
        run = self.run()
        self._display.display(to_summary(run, self.steps, self.write(run)))
