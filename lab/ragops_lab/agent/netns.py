"""Pods placed in a network namespace of someone else's making, chosen by a label selector.

A test that puts a pod behind a faulty network (a namespace joined to this host by a veth pair, with
``tc`` and ``nftables`` inside) writes the lab setting ``pod-netns.json`` in the state folder: a JSON object
from a label selector (``job-name=ragops-restore-shard-0-s1``; ``key=value`` and ``key`` terms, comma
separated, all of them must hold) to the name of a namespace made by ``ip netns add``.  The agent reads it
whenever it starts a container: a pod that the first matching selector picks runs its containers, and the
commands exec'd in them, under ``ip netns exec <name>``.  Such a pod reaches only what the namespace routes
to (not the host's loopback: no API server, no Service address), so the setting is for pods that serve
nothing, such as a Job's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .podspec import ContainerConfigError

SETTING_FILE = "pod-netns.json"
# Where `ip netns add` makes the namespaces it names.
NAMED_NAMESPACES = Path("/run/netns")

Requirement = tuple[str, str | None]


def parse_selector(text: str) -> list[Requirement]:
    """``a=b,c`` as [("a", "b"), ("c", None)]: equality and existence terms."""
    terms = [term.strip() for term in text.split(",")]
    if not text.strip() or not all(terms):
        raise ValueError(f"empty term in label selector {text!r}")
    parsed: list[Requirement] = []
    for term in terms:
        key, equals, value = term.partition("=")
        if any(mark in term for mark in ("!", " ", "(")) or not key or value.startswith("="):
            raise ValueError(f"label selector {text!r}: use key=value or key terms only, not {term!r}")
        parsed.append((key, value if equals else None))
    return parsed


def selects(requirements: list[Requirement], labels: Mapping[str, str]) -> bool:
    return all(key in labels and (value is None or labels[key] == value) for key, value in requirements)


def read_setting(path: Path) -> dict[str, str]:
    """The selectors and their namespaces, in the file's order ({} without the file)."""
    try:
        setting = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ContainerConfigError(f"{path} is not JSON ({exc}): write an object of selector to namespace") from exc
    if not isinstance(setting, dict) or not all(isinstance(v, str) and v for v in setting.values()):
        raise ContainerConfigError(f"{path} must be a JSON object of label selector to network namespace name")
    return setting


def namespace_for(setting: Path, pod: Mapping[str, Any]) -> str:
    """The network namespace the pod's containers run in: "" for the node's own."""
    labels = pod["metadata"].get("labels") or {}
    for selector, name in read_setting(setting).items():
        try:
            chosen = selects(parse_selector(selector), labels)
        except ValueError as exc:
            raise ContainerConfigError(f"{setting}: {exc}") from exc
        if not chosen:
            continue
        if not (NAMED_NAMESPACES / name).exists():
            raise ContainerConfigError(f"network namespace {name} (chosen by {selector} in {setting}) does not "
                                       f"exist: make it with ip netns add, or remove the selector")
        return name
    return ""


def command_prefix(name: str) -> list[str]:
    """What runs a command inside namespace ``name`` (nothing for the node's own)."""
    return [shutil.which("ip") or "ip", "netns", "exec", name] if name else []
