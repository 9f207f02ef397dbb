# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: int_list
short_description: Read a list of whole numbers given as a list or as survey text
version_added: 0.1.0
description:
  - Returns a list of whole numbers from a list (of numbers or of numeric text), or from text such as
    V([10, 25, 50, 100]) or V(10,25,50,100), the way an AWX survey's text answer or C(-e key=value) gives it.
  - Anything else (an unmatched bracket, an empty list, an element that is not a whole number) fails the
    task with a message naming O(name), the value given and what to give instead.
  - The roles read their list inputs through it before they change anything.
author:
  - ragops.recovery maintainers (@ragops)
positional: _input
options:
  _input:
    description: The value to read.
    type: raw
    required: true
  name:
    description: Name of the variable, for the error message.
    type: str
    default: value
"""

EXAMPLES = r"""
- name: Read the ramp steps, given as a list or as text
  ansible.builtin.set_fact:
    ramp: "{{ generator_failback_steps | ragops.recovery.int_list(name='generator_failback_steps') }}"
"""

RETURN = r"""
_value:
  description: The whole numbers, in the order given.
  type: list
  elements: int
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.plugin_utils import survey


def int_list(value: t.Any, name: str = "value") -> t.List[int]:
    try:
        return survey.int_list(value, name)
    except survey.SurveyValueError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"int_list": int_list}
