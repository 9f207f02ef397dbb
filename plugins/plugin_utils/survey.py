# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role inputs as an AWX survey or ``-e key=value`` gives them: text.

A survey's text answer for a list is ``[10, 25, 50, 100]`` or ``10,25,50,100``;
a role's argument spec cannot turn either into a list (it splits on commas only and
leaves the variable as text), so the role reads such inputs through
:func:`int_list` before it changes anything.
"""

from __future__ import annotations

import json
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


KEYS_EXAMPLE = "one 'provider: key' line per provider, for example 'backup: sk-...'"


def _key_pair(name: str, provider: t.Any, key: t.Any, where: str) -> t.Tuple[str, str]:
    # Never show a key: a message names the provider and the line only.
    if not isinstance(provider, str) or not provider.strip():
        raise SurveyValueError(
            "%s: %s has no provider name; give %s" % (name, where, KEYS_EXAMPLE)
        )
    if not isinstance(key, str) or not key.strip():
        raise SurveyValueError(
            "%s: the key of provider %r (%s) is empty or not text; give %s"
            % (name, provider.strip(), where, KEYS_EXAMPLE)
        )
    return provider.strip(), key.strip()


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def provider_keys(value: t.Any, name: str = "value") -> t.Dict[str, str]:
    """The LLM providers' API keys by provider name, from a mapping (inventory, vault)
    or from text, as a credential injects it: one ``provider: key`` line per provider
    (blank lines and ``#`` comments ignored) or a JSON object. Empty gives ``{}``.
    Anything else raises :class:`SurveyValueError`, whose message never holds a key."""
    if value is None:
        return {}
    if isinstance(value, t.Mapping):
        pairs = [
            _key_pair(name, provider, key, "entry %r" % provider)
            for provider, key in value.items()
        ]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as error:
                raise SurveyValueError(
                    "%s: the text starts with '{' but is not a JSON object (line %d, "
                    "column %d); give %s, or a JSON object of them"
                    % (name, error.lineno, error.colno, KEYS_EXAMPLE)
                ) from None
            if not isinstance(loaded, dict):
                raise SurveyValueError("%s: give %s" % (name, KEYS_EXAMPLE))
            return provider_keys(loaded, name)
        pairs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            provider, colon, key = line.partition(":")
            if not colon:
                raise SurveyValueError(
                    "%s: line %d has no ':' between the provider and its key; give %s"
                    % (name, number, KEYS_EXAMPLE)
                )
            pairs.append(_key_pair(name, provider, _unquoted(key), "line %d" % number))
    else:
        raise SurveyValueError(
            "%s: expected a mapping or text, got %s; give %s"
            % (name, type(value).__name__, KEYS_EXAMPLE)
        )
    keys: t.Dict[str, str] = {}
    for provider, key in pairs:
        if provider in keys:
            raise SurveyValueError(
                "%s: provider %r is given twice; give one key per provider"
                % (name, provider)
            )
        keys[provider] = key
    return keys
