# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""YAML text in and out: the collection's one guarded PyYAML import.

Modules that read YAML name :data:`YAML_REQUIREMENT` in their libraries, so a missing
PyYAML is reported with ``missing_required_lib`` before anything is parsed.
"""

from __future__ import annotations

import typing as t

try:
    import yaml
except ImportError as error:
    YAML_IMPORT_ERROR: ImportError | None = error
else:
    YAML_IMPORT_ERROR = None

YAML_REQUIREMENT = "PyYAML"


class YamlSyntaxError(ValueError):
    """Text that is not valid YAML; the message gives the position."""


def load(text: str) -> t.Any:
    """Parse ``text`` with the safe loader (libyaml's when it is installed)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        raise YamlSyntaxError(str(error)) from error


def dump(document: t.Any, **options: t.Any) -> str:
    """``document`` as block-style YAML; ``options`` as ``yaml.safe_dump`` takes
    them."""
    return t.cast(str, yaml.safe_dump(document, **options))
