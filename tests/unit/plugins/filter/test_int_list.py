# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lists given as an AWX survey or ``-e key=value`` gives them: text."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.recovery.plugins.filter.int_list import FilterModule

int_list = FilterModule().filters()["int_list"]


@pytest.mark.parametrize(
    "given",
    [
        [10, 25, 50, 100],
        ["10", "25", "50", "100"],
        "[10, 25, 50, 100]",
        "10,25,50,100",
        " 10, 25 ,50,100 ",
        "[10,25,50,100]",
    ],
)
def test_a_list_or_its_text_reads_as_the_numbers(given: t.Any) -> None:
    assert int_list(given, name="steps") == [10, 25, 50, 100]


def test_one_number_is_a_list_of_one() -> None:
    assert int_list("100", name="steps") == [100]


@pytest.mark.parametrize(
    "given, says",
    [
        ("10;25;50", "'10;25;50' is not one"),
        ("[10, 25", "unmatched bracket"),
        ("10, 25]", "unmatched bracket"),
        ("[]", "the list is empty"),
        ("", "the list is empty"),
        ("10,,100", "'' is not one"),
        ("10, 2.5", "'2.5' is not one"),
        ([10, True], "True is a boolean"),
        ({"a": 1}, "expected a list, got dict"),
        (12, "expected a list, got int"),
    ],
)
def test_anything_else_is_refused_naming_the_variable_and_the_fix(
    given: t.Any, says: str
) -> None:
    with pytest.raises(AnsibleFilterError) as refused:
        int_list(given, name="generator_failback_steps")
    message = str(refused.value)
    assert message.startswith("generator_failback_steps: ")
    assert says in message
    assert "[10, 25, 50, 100] or 10,25,50,100" in message
