# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: shard_selection
short_description: Choose the shards of a stack that one run of Scenario A recovers
version_added: 0.1.0
description:
  - Reads what the engineer asked for (O(shards) or O(shard)) against the stack's shards as
    C(ragops.recovery.shard_info) reports them (the input), and returns the shards to recover.
  - O(shards=unhealthy) chooses the shards that look unhealthy, each for a reason that is returned - a
    registry state other than V(serving), no Ready pod, or a failed golden canary (O(canaries)).
  - The escalation to the whole stack is never automatic. With O(scope=shard), a list that names every shard
    of the stack, or V(unhealthy) finding every shard or more than O(max_unhealthy), fails with a message that
    tells the engineer to pass C(scope=stack). O(scope=stack) chooses every shard.
  - A request that cannot be met (an unknown shard, no shard named, a bad O(max_parallel)) fails the task
    with what was wrong and what to give instead.
author:
  - ragops.recovery maintainers (@ragops)
positional: _input
options:
  _input:
    description: The C(shards) of a C(ragops.recovery.shard_info) result (every shard of the stack).
    type: list
    elements: dict
    required: true
  shards:
    description:
      - Shard ids as a list or as text (V(shard-1,shard-2), V([shard-1, shard-2])), or V(unhealthy).
      - Empty to use O(shard).
    type: raw
  shard:
    description:
      - The playbook's C(-e shard=) (and the AWX survey's answer), used when O(shards) is empty; read as
        O(shards) is.
    type: raw
  scope:
    description: V(shard) recovers the shards named or found; V(stack) every shard of the stack.
    type: str
    choices: [shard, stack]
    default: shard
  canaries:
    description:
      - The golden canary of each shard by shard id, C(ragops.recovery.golden_validate)'s C(validation)
        (V(passed) and V(summary) are read). A shard without one is judged by its registry entry and pods.
    type: dict
    default: {}
  max_unhealthy:
    description:
      - The most shards that O(shards=unhealthy) takes on with O(scope=shard). V(0) means half of the stack's
        shards (rounded down), at least one.
    type: int
    default: 0
  max_parallel:
    description: How many shards are recovered at once; checked to be a whole number of at least 1.
    type: raw
    default: 4
"""

EXAMPLES = r"""
- name: Choose the shards to recover
  ansible.builtin.set_fact:
    chosen: "{{ stack.shards | ragops.recovery.shard_selection(shards='unhealthy', canaries=canaries) }}"
"""

RETURN = r"""
_value:
  description: The choice.
  type: dict
  contains:
    shards:
      description: The shards to recover, in the stack's order for V(unhealthy) and V(stack), else as given.
      type: list
      elements: str
    unhealthy:
      description: Every shard that looks unhealthy, with its reasons.
      type: dict
    requested:
      description: What was asked for, V(unhealthy) or the shard ids.
      type: raw
    scope:
      description: The scope.
      type: str
    max_parallel:
      description: O(max_parallel) as a number.
      type: int
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.plugin_utils import shard_fleet


def shard_selection(
    entries: t.Sequence[t.Mapping[str, t.Any]], **request: t.Any
) -> t.Dict[str, t.Any]:
    try:
        return shard_fleet.select(entries, **request)
    except shard_fleet.ShardSelectionError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"shard_selection": shard_selection}
