# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: shard_verdicts
short_description: The outcome of a recovery of several shards, naming each shard's verdict
version_added: 0.1.0
description:
  - Takes the record of each shard's recovery (its C(shard), C(outcome), and when known C(snapshot) and
    C(failure)) and returns the run's outcome with one line per shard.
  - The outcome is V(failed) when any shard failed (the others were still returned to service),
    V(planned) in check mode, V(already recovered) when every shard was, V(nothing to recover) without
    shards, else V(recovered).
author:
  - ragops.recovery maintainers (@ragops)
positional: _input
options:
  _input:
    description: The records, one per shard; an empty one is left out.
    type: list
    elements: dict
    required: true
  shards:
    description:
      - The shards the run set out to recover, in order. One without a record (its recovery stopped
        before it wrote one) counts as V(failed).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Judge the run
  ansible.builtin.set_fact:
    verdict: "{{ records | ragops.recovery.shard_verdicts(shards=['shard-1', 'shard-2']) }}"
"""

RETURN = r"""
_value:
  description: The run's outcome.
  type: dict
  contains:
    outcome:
      description: V(recovered), V(failed), V(already recovered), V(planned) or V(nothing to recover).
      type: str
    failed:
      description: The shards that failed.
      type: list
      elements: str
    recovered:
      description: The shards this run put back into service.
      type: list
      elements: str
    already_recovered:
      description: The shards an earlier run of the incident had recovered.
      type: list
      elements: str
    lines:
      description: One line per shard, its id and outcome, with the snapshot restored or the failure.
      type: list
      elements: str
    records:
      description: The records, in the order of O(shards), a missing one filled in.
      type: list
      elements: dict
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.plugin_utils import shard_fleet


def shard_verdicts(
    records: t.Sequence[t.Mapping[str, t.Any]], shards: t.Sequence[str] = ()
) -> t.Dict[str, t.Any]:
    return shard_fleet.verdicts(records, shards)


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"shard_verdicts": shard_verdicts}
