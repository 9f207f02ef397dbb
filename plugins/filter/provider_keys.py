# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: provider_keys
short_description: Read the LLM providers' API keys given as a mapping or as a credential's text
version_added: 0.1.0
description:
  - "Returns the API keys by provider name from a mapping (an inventory or vault variable) or from text, the
    way the credential type C(ragops LLM provider keys) injects it - one C(provider: key) line per provider
    (blank lines and C(#) comments ignored; a key in quotes loses them) or a JSON object."
  - Empty or null gives an empty mapping, so the playbooks fall back to the keys' Secret in the cluster.
  - Anything else (a line without C(:), an empty key, a provider given twice) fails the task with a message
    naming O(name), the line or the provider and what to give instead. A message never shows a key.
author:
  - ragops.recovery maintainers (@ragops)
positional: _input
options:
  _input:
    description: The keys.
    type: raw
    required: true
  name:
    description: Name of the variable, for the error message.
    type: str
    default: value
"""

EXAMPLES = r"""
- name: Check the backup with the key the job's credential injected
  ragops.recovery.provider_check:
    name: backup
    url: "{{ ragops_provider_urls.backup }}"
    api_key: "{{ (ragops_provider_keys | ragops.recovery.provider_keys(name='ragops_provider_keys')).backup }}"
"""

RETURN = r"""
_value:
  description: The API keys by provider name.
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.plugin_utils import survey


def provider_keys(value: t.Any, name: str = "value") -> t.Dict[str, str]:
    try:
        return survey.provider_keys(value, name)
    except survey.SurveyValueError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"provider_keys": provider_keys}
