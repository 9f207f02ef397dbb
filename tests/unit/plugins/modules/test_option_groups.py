# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module documents the option groups it takes, and the action groups list it."""

from __future__ import annotations

import importlib
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.recovery.plugins.module_utils.argspec import (
    OPTION_GROUPS,
)

ROOT = Path(__file__).resolve().parents[4]
# A module that an action plugin of its name runs on the controller (local_record) has only its
# documentation here: no argument spec, no option group.
CONTROLLER_ONLY = {path.stem for path in (ROOT / "plugins" / "action").glob("*.py")}
MODULES = sorted(
    path.stem
    for path in (ROOT / "plugins" / "modules").glob("*.py")
    if path.stem not in CONTROLLER_ONLY
)


def load(name: str) -> t.Any:
    return importlib.import_module(
        "ansible_collections.ragops.recovery.plugins.modules." + name
    )


def fragments(module: t.Any) -> t.Set[str]:
    documentation = yaml.safe_load(module.DOCUMENTATION)
    return set(documentation.get("extends_documentation_fragment") or [])


@pytest.mark.parametrize("name", MODULES)
def test_a_module_extends_the_fragment_of_each_group_it_takes(name: str) -> None:
    module = load(name)
    groups = module.argument_spec().groups
    documented = {OPTION_GROUPS[group].fragment for group in groups}
    group_fragments = {group.fragment for group in OPTION_GROUPS.values()}
    assert fragments(module) & group_fragments == documented


@pytest.mark.parametrize("name", MODULES)
def test_no_module_declares_an_option_of_its_groups_again(name: str) -> None:
    spec = load(name).argument_spec()
    shared = set()
    for group in spec.groups:
        shared |= set(OPTION_GROUPS[group].build().options)
    # provider_check's api_key is the provider's key, not the Kubernetes token of the k8s group.
    assert set(spec.options) & shared <= {"api_key"}


def test_the_s3_action_group_lists_the_modules_of_the_s3_option_group() -> None:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    takes_s3 = [name for name in MODULES if "s3" in load(name).argument_spec().groups]
    assert sorted(runtime["action_groups"]["s3"]) == takes_s3
    assert sorted(runtime["action_groups"]["rag"]) == MODULES
