#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Tell people where an incident stands, through a JSON webhook and a Slack-compatible one
version_added: 0.1.0
description:
  - Sends one moment of a scenario run - the incident opened, safe mode reached (with the time to
    it), recovered or failed (with what was tried and the next step) - as a generic JSON document to
    O(webhook_url) and as a Slack-compatible message (C(text) plus C(blocks)) to O(slack_url).
  - Each URL is given as an option or read from a key of the Secret O(secret) in O(namespace); a
    URL given wins over the Secret's. The URLs (a Slack URL carries its token) never appear in the
    result, a warning or an error.
  - Posts with a timeout and at most O(retries) repeats on no answer, 429 and 5xx, every repeat
    carrying the same C(Idempotency-Key) header (RV(notification.event_id)), so a receiver can drop
    a message it already has.
  - A notification never fails the task - without a URL, with a Secret that cannot be read or a
    receiver that is down or answers an error, the result says RV(notification.delivered=false) and
    why, and a warning repeats it.
author:
  - ragops.recovery maintainers (@ragops)
options:
  event:
    description:
      - The moment of the run.
    type: str
    required: true
    choices: [opened, safe_mode, recovered, failed]
  scenario:
    description:
      - The scenario or safety net that runs, for example V(shard_recovery) or V(snapshot_nightly).
    type: str
    required: true
  incident_id:
    description:
      - Id of the incident (or of the safety net's run).
    type: str
    required: true
  summary:
    description:
      - One line saying what happened.
    type: str
    required: true
  stack:
    description:
      - The stack (inventory host) the run recovers.
    type: str
    default: ""
  run_id:
    description:
      - What tells this run from another run of the same incident (its start time, for example);
        part of RV(notification.event_id).
    type: str
    default: ""
  seconds_to_safe_mode:
    description:
      - Seconds from the start (or the alert) to safe mode; omitted or null when not reached.
    type: float
  seconds_to_recover:
    description:
      - Seconds from the start (or the alert) to the recovery; omitted or null when not reached.
    type: float
  tried:
    description:
      - What the run tried, one step a line.
    type: list
    elements: str
    default: []
  next_step:
    description:
      - What to do next.
    type: str
    default: ""
  links:
    description:
      - Where the records are (evidence, postmortem, reports, timeline), by name.
    type: dict
    default: {}
  webhook_url:
    description:
      - URL of the generic JSON webhook.
    type: str
  slack_url:
    description:
      - URL of the Slack-compatible incoming webhook.
    type: str
  secret:
    description:
      - A Secret in O(namespace) holding the URLs not given as options.
    type: dict
    suboptions:
      name:
        description: Name of the Secret.
        type: str
        required: true
      webhook_key:
        description: Key of the generic webhook's URL.
        type: str
        default: webhook_url
      slack_key:
        description: Key of the Slack-compatible webhook's URL.
        type: str
        default: slack_url
  timeout:
    description:
      - Seconds one POST may take.
    type: float
    default: 5
  retries:
    description:
      - Repeats of a POST that got no answer, 429 or 5xx, waiting a jittered 0.5 to 4 seconds
        between two.
    type: int
    default: 2
  webhook_validate_certs:
    description:
      - Whether to verify the webhooks' TLS certificates.
    type: bool
    default: true
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
attributes:
  check_mode:
    support: full
    details: Nothing is sent; the result shows what would be sent, and to which kinds of webhook.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: >-
      Changes nothing in the stack (always C(changed=false)); a repeated event has the same
      RV(notification.event_id).
  action_group:
    support: full
seealso:
  - module: ragops.recovery.evidence_collect
"""

EXAMPLES = r"""
- name: Tell people that the generator reached its safe mode
  ragops.recovery.notify:
    event: safe_mode
    scenario: generator_outage
    incident_id: INC-1042
    stack: rag-prod-eu
    summary: switched to the backup provider
    seconds_to_safe_mode: 41.2
    webhook_url: "{{ ragops_notify_webhook_url }}"

- name: Tell people that the recovery failed, the URLs read from a Secret
  ragops.recovery.notify:
    namespace: rag-prod
    event: failed
    scenario: shard_recovery
    incident_id: INC-1043
    summary: shard-2 failed its golden queries after the restore
    tried: [re-open, restore of snapshot 20261127T0200Z]
    next_step: read the postmortem, fix the cause, then run the playbook again
    secret:
      name: rag-notify
"""

RETURN = r"""
notification:
  description: What was sent and what became of it; never a URL.
  returned: always
  type: dict
  contains:
    event:
      description: The moment of the run.
      type: str
      sample: safe_mode
    event_id:
      description: Id of the event, the same on every repeat; sent as the C(Idempotency-Key) header.
      type: str
      sample: 0f4c1d0c1ab34f7b9e5d2c8a71f3e6b2
    delivered:
      description: Whether every webhook configured accepted the message (false in check mode and without a webhook).
      type: bool
    reason:
      description: Why it was not delivered, or C(delivered).
      type: str
      sample: "webhook not delivered after 3 attempt(s): HTTP 500 Internal Server Error"
    targets:
      description: One entry per kind of webhook configured.
      type: list
      elements: dict
      contains:
        kind:
          description: C(webhook) or C(slack).
          type: str
        delivered:
          description: Whether it accepted the message.
          type: bool
        status:
          description: HTTP status of the last attempt, 0 when there was no answer.
          type: int
        attempts:
          description: POSTs made.
          type: int
        reason:
          description: What became of the message.
          type: str
    payloads:
      description: The message as sent to each kind of webhook, C(webhook) (the JSON document) and C(slack).
      type: dict
"""

import time
import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.notify import delivery


def argument_spec() -> argspec.ArgumentSpec:
    secret_ref = {
        "name": {"type": "str", "required": True},
        "webhook_key": {"type": "str", "default": "webhook_url", "no_log": False},
        "slack_key": {"type": "str", "default": "slack_url", "no_log": False},
    }
    return argspec.ArgumentSpec(
        options={
            "event": {
                "type": "str",
                "required": True,
                "choices": ["opened", "safe_mode", "recovered", "failed"],
            },
            "scenario": {"type": "str", "required": True},
            "incident_id": {"type": "str", "required": True},
            "summary": {"type": "str", "required": True},
            "stack": {"type": "str", "default": ""},
            "run_id": {"type": "str", "default": ""},
            "seconds_to_safe_mode": {"type": "float"},
            "seconds_to_recover": {"type": "float"},
            "tried": {"type": "list", "elements": "str", "default": []},
            "next_step": {"type": "str", "default": ""},
            "links": {"type": "dict", "default": {}},
            "webhook_url": {"type": "str", "no_log": True},
            "slack_url": {"type": "str", "no_log": True},
            "secret": {"type": "dict", "no_log": False, "options": secret_ref},
            "timeout": {"type": "float", "default": 5.0},
            "retries": {"type": "int", "default": 2},
            "webhook_validate_certs": {"type": "bool", "default": True},
        },
        groups=("k8s",),
    )


def settings(params: base.Result) -> delivery.Settings:
    from ansible_collections.ragops.recovery.plugins.module_utils.notify import delivery

    ref = params["secret"]
    secret = (
        delivery.SecretRef(
            ref["name"], params["namespace"], ref["webhook_key"], ref["slack_key"]
        )
        if ref
        else None
    )
    urls = {"webhook": params["webhook_url"], "slack": params["slack_url"]}
    return argspec.from_params(
        delivery.Settings,
        params,
        urls=urls,
        secret=secret,
        validate_certs=params["webhook_validate_certs"],
    )


def run_module(module: base.RecoveryModule, post: delivery.Post) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils import audit
    from ansible_collections.ragops.recovery.plugins.module_utils.notify import delivery
    from ansible_collections.ragops.recovery.plugins.module_utils.notify import message

    params = module.params
    event = argspec.from_params(
        message.Event, params, links={k: str(v) for k, v in params["links"].items()}
    )

    def read_secret(ref: delivery.SecretRef) -> dict[str, str]:
        urls = delivery.read_secret_urls(module.k8s_client(), ref)
        module.no_log_values.update(delivery.secret_values(urls.values()))
        return urls

    outcome, urls = delivery.notify(
        event,
        settings(params),
        read_secret,
        post,
        delivery.retrier(params["retries"], time.sleep),
        check_mode=module.check_mode,
        sent_at=audit.timestamp(),
    )
    secrets = delivery.secret_values(urls)
    warning = outcome.warning(secrets)
    if warning:
        module.warn(warning)
    return outcome.to_result(secrets)


def post_by_http(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.notify import delivery

    return run_module(module, delivery.post_json)


def main() -> None:
    base.RecoveryModule(argument_spec()).run(post_by_http)


if __name__ == "__main__":
    main()
