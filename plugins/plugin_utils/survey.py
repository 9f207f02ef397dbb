# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role inputs as an AWX survey or ``-e key=value`` gives them: text.

A survey's text answer for a list is ``[10, 25, 50, 100]`` or ``10,25,50,100``;
a role's argument spec cannot turn either into a list (it splits on commas only and
leaves the variable as text), so the role reads such inputs through
:func:`int_list` before it changes anything.
"""

from __future__ import annotations

import typing as t

EXAMPLE = "[10, 25, 50, 100] or 10,25,50,100"


class SurveyValueError(ValueError):
    """A value that does not mean what the role needs; the message says what to give."""


def _integer(name: str, item: t.Any, value: t.Any) -> int:
    if isinstance(item, bool):
        raise SurveyValueError(
            "%s: %r is not a list of whole numbers (%r is a boolean); give a list, "
            "for example %s" % (name, value, item, EXAMPLE)
        )
    if isinstance(item, int):
        return item
    text = str(item).strip()
    try:
        return int(text)
    except ValueError:
        raise SurveyValueError(
            "%s: %r is not a list of whole numbers (%r is not one); give a list, for "
            "example %s" % (name, value, text, EXAMPLE)
        ) from None


def _items(name: str, value: t.Any) -> t.List[t.Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        raise SurveyValueError(
            "%s: expected a list, got %s %r; give a list, for example %s"
            % (name, type(value).__name__, value, EXAMPLE)
        )
    text = value.strip()
    if text.startswith("[") != text.endswith("]"):
        raise SurveyValueError(
            "%s: %r has an unmatched bracket; give a list, for example %s"
            % (name, value, EXAMPLE)
        )
    inner = text[1:-1] if text.startswith("[") else text
    return inner.split(",") if inner.strip() else []


def int_list(value: t.Any, name: str = "value") -> t.List[int]:
    """A list of whole numbers from a list (of numbers or numeric text) or from text
    such as ``[10, 25, 50, 100]`` or ``10,25,50,100``; anything else raises
    :class:`SurveyValueError` naming ``name`` and what to give instead."""
    items = _items(name, value)
    if not items:
        raise SurveyValueError(
            "%s: the list is empty; give at least one number, for example %s"
            % (name, EXAMPLE)
        )
    return [_integer(name, item, value) for item in items]
