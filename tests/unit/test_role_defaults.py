# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's defaults/main.yml and meta/argument_specs.yml say the same defaults."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())


def read(role: str) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]:
    """The role's defaults and the options of each of its entry points."""
    defaults = yaml.safe_load(
        (ROOT / "roles" / role / "defaults" / "main.yml").read_text()
    )
    specs = yaml.safe_load(
        (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text()
    )
    entry_points = specs["argument_specs"]
    return defaults or {}, {
        name: entry.get("options") or {} for name, entry in entry_points.items()
    }


def test_every_role_is_checked() -> None:
    assert ROLES == [
        "bootstrap_recovery",
        "generator_failback",
        "generator_outage",
        "incident_notify",
        "incident_status",
        "provider_precheck",
        "restore_drill",
        "shard_recovery",
        "snapshot_nightly",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role: str) -> None:
    defaults, entry_points = read(role)
    documented = {name for options in entry_points.values() for name in options}
    assert sorted(set(defaults) - documented) == [], "defaults without an argument spec"
    for options in entry_points.values():
        for name, option in options.items():
            check_default(name, option, defaults)


def check_default(
    name: str, option: t.Dict[str, t.Any], defaults: t.Dict[str, t.Any]
) -> None:
    if option.get("required"):
        assert name not in defaults, "%s is required and has a default" % name
        assert "default" not in option, "%s is required and has a default" % name
    elif "default" in option or name in defaults:
        assert name in defaults, (
            "%s has a documented default but none in defaults/main.yml" % name
        )
        assert option.get("default") == defaults[name], name
