# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LLM providers' keys as a mapping, or as the text a credential injects."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.filter.provider_keys import (
    FilterModule,
)

provider_keys = FilterModule().filters()["provider_keys"]
SECRET = "sk-live-0123456789"


@pytest.mark.parametrize(
    "given",
    [
        {"primary": "sk-p", "backup": "sk-b"},
        "primary: sk-p\nbackup: sk-b\n",
        "# the keys of the lab\n\n  primary :  sk-p  \r\nbackup: 'sk-b'\n",
        'primary: "sk-p"\nbackup: sk-b',
        '{"primary": "sk-p", "backup": "sk-b"}',
    ],
)
def test_a_mapping_or_its_text_reads_as_the_keys(given: t.Any) -> None:
    assert provider_keys(given, name="ragops_provider_keys") == {
        "primary": "sk-p",
        "backup": "sk-b",
    }


@pytest.mark.parametrize("given", [None, "", "  \n# none yet\n", {}])
def test_nothing_given_is_no_key(given: t.Any) -> None:
    assert provider_keys(given) == {}


def test_a_key_may_hold_a_colon() -> None:
    assert provider_keys("backup: abc:def") == {"backup": "abc:def"}


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("backup " + SECRET, "line 1 has no ':' between the provider and its key"),
        ("primary: sk-p\n: " + SECRET, "line 2 has no provider name"),
        ("backup:   ", "the key of provider 'backup' (line 1) is empty"),
        (
            {"backup": 42},
            "the key of provider 'backup' (entry 'backup') is empty or not text",
        ),
        (
            "backup: %s\nbackup: %s" % (SECRET, SECRET),
            "provider 'backup' is given twice",
        ),
        (
            '{"backup": "%s",}' % SECRET,
            "starts with '{' but is not a JSON object (line 1",
        ),
        ('{"backup": ["%s"]}' % SECRET, "the key of provider 'backup'"),
        ([SECRET], "expected a mapping or text, got list"),
    ],
)
def test_malformed_keys_are_refused_without_showing_a_key(
    given: t.Any, said: str
) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        provider_keys(given, name="ragops_provider_keys")
    message = str(raised.value)
    assert message.startswith("ragops_provider_keys: ") and said in message, message
    assert "one 'provider: key' line per provider" in message or "twice" in message
    assert SECRET not in message and "sk-live" not in message
