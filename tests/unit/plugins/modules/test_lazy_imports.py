# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start-up: the Kubernetes client, boto3 and PyYAML are imported when a module uses
them, not when it starts.

Each check runs in a fresh interpreter, since this one has imported them all already.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils import base
from ansible_collections.ragops.recovery.plugins.module_utils.generator import state
from ansible_collections.ragops.recovery.plugins.module_utils.notify import message
from ansible_collections.ragops.recovery.plugins.module_utils.shards import rules
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
    volumesource,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack import startup
from ansible_collections.ragops.recovery.plugins.modules import incident_info

# <root>/ansible_collections/ragops/recovery/plugins/module_utils/base.py
BASE = Path(os.path.abspath(base.__file__))
COLLECTIONS_ROOT = BASE.parents[5]
# A module that an action plugin of its name runs on the controller (local_record) is never
# started as a module process.
CONTROLLER_ONLY = {path.stem for path in (BASE.parents[1] / "action").glob("*.py")}
MODULES = sorted(
    path.stem
    for path in (BASE.parents[1] / "modules").glob("*.py")
    if path.stem != "__init__" and path.stem not in CONTROLLER_ONLY
)
PACKAGE = "ansible_collections.ragops.recovery.plugins"
HEAVY = ("kubernetes", "boto3", "botocore", "yaml")
# What a module may load of the collection's module_utils before its argument check:
# the wrapper, the option groups and the errors.  An AnsiballZ payload's code is
# compiled from source at every run, so the engine (and the clients) that
# ``run_module`` uses are imported there, once the arguments are accepted.
STARTUP = {"argspec", "base", "errors"}
# Standard and Ansible libraries that cost tens of milliseconds and that a module
# needs only for its work (HTTP, archives, threads).
SLOW = (
    "ansible.module_utils.urls",
    "cryptography",
    "urllib.request",
    "http.client",
    "tarfile",
    "zstandard",
    "concurrent.futures",
)


def loaded_after(code: str) -> t.Dict[str, t.Any]:
    """Run ``code`` in a new interpreter; it leaves its findings in ``found``, and
    which of ``HEAVY`` it imported is added."""
    program = "import json, sys\nfound = {}\n%s\n" % textwrap.dedent(code)
    program += "found['loaded'] = [n for n in %r if n in sys.modules]\n" % (HEAVY,)
    program += "print(json.dumps(found))\n"
    path = os.pathsep.join([str(COLLECTIONS_ROOT)] + [p for p in sys.path if p])
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return t.cast(t.Dict[str, t.Any], json.loads(done.stdout.splitlines()[-1]))


def test_every_module_is_found() -> None:
    assert {"shard_mark", "snapshot_create", "golden_validate"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_module_starts_without_the_kubernetes_client_or_boto3(name: str) -> None:
    loaded = loaded_after("import %s.modules.%s" % (PACKAGE, name))["loaded"]
    assert loaded == []


def started(name: str) -> t.Dict[str, t.Any]:
    """What ``name`` loaded when its ``main()`` stopped at the argument check, as the
    start-up benchmark (bench/module_startup.py) stops it."""
    return loaded_after(
        """
        from ansible.module_utils.testing import patch_module_args
        from %(package)s.modules import %(name)s as module

        before = set(sys.modules)
        with patch_module_args({"_startup_probe": True}):
            try:
                module.main()
            except SystemExit:
                pass
        prefix = "%(package)s.module_utils."
        found["module_utils"] = sorted(
            n[len(prefix):] for n in sys.modules
            if n.startswith(prefix) and not n.endswith("__init__")
            and getattr(sys.modules[n], "__path__", None) is None
        )
        found["slow"] = [n for n in %(slow)r if n in set(sys.modules) - before]
        """
        % {"package": PACKAGE, "name": name, "slow": SLOW}
    )


@pytest.mark.parametrize("name", MODULES)
def test_a_module_starts_with_its_argument_check_alone(name: str) -> None:
    found = started(name)
    assert set(found["module_utils"]) <= STARTUP, found["module_utils"]
    assert found["slow"] == []
    assert found["loaded"] == []


@pytest.mark.parametrize(
    "module, option, values",
    [
        ("component_start", "mode", lambda: startup.MODES),
        ("shard_mark", "state", lambda: rules.STATES),
        ("notify", "event", lambda: message.EVENTS),
        ("snapshot_create", "source", lambda: volumesource.SOURCES),
    ],
)
def test_choices_written_out_are_the_engines(
    module: str, option: str, values: t.Callable[[], t.Sequence[str]]
) -> None:
    """Choices are written out in the modules that would otherwise import their engine
    to build the argument spec; they must be the engine's."""
    spec = importlib.import_module("%s.modules.%s" % (PACKAGE, module)).argument_spec()
    assert tuple(spec.options[option]["choices"]) == tuple(values())


def test_the_default_flag_names_are_the_generators() -> None:
    assert dataclasses.asdict(state.FlagNames()) == incident_info.FLAG_NAMES


def test_a_reopen_by_exec_loads_no_http_client() -> None:
    found = loaded_after(
        """
        from %(package)s.modules import shard_reopen
        from %(package)s.module_utils.shards import reopen_exec

        found["urls"] = "ansible.module_utils.urls" in sys.modules
        """
        % {"package": PACKAGE}
    )
    assert found["urls"] is False


def test_the_kubernetes_client_is_imported_for_the_first_call() -> None:
    found = loaded_after(
        """
        from ansible.module_utils.testing import patch_module_args
        from %(package)s.module_utils import base
        from %(package)s.modules import shard_mark

        args = {"shard": "shard-2", "state": "quarantined",
                "host": "https://127.0.0.1:6443", "api_key": "token"}
        with patch_module_args(args):
            module = base.RecoveryModule(shard_mark.argument_spec())
        found["before"] = "kubernetes" in sys.modules
        client = module.k8s_client()
        found["transport"] = type(client.transport).__name__
        found["host"] = client.transport.api.configuration.host
        """
        % {"package": PACKAGE}
    )
    assert found["before"] is False
    assert found["transport"] == "KubernetesTransport"
    assert found["host"] == "https://127.0.0.1:6443"
    assert "kubernetes" in found["loaded"] and "boto3" not in found["loaded"]


def test_boto3_is_imported_for_the_first_s3_store() -> None:
    found = loaded_after(
        """
        from ansible.module_utils.testing import patch_module_args
        from %(package)s.module_utils import base
        from %(package)s.modules import snapshot_info

        args = {"bucket": "snapshots", "shard": "shard-2",
                "endpoint_url": "http://127.0.0.1:8333",
                "access_key": "key", "secret_key": "secret"}
        with patch_module_args(args):
            module = base.RecoveryModule(snapshot_info.argument_spec())
        found["before"] = "boto3" in sys.modules
        store = module.s3_store()
        found["client"] = type(store.client).__module__
        found["endpoint"] = store.client.meta.endpoint_url
        """
        % {"package": PACKAGE}
    )
    assert found["before"] is False
    assert found["client"].startswith("botocore.")
    assert found["endpoint"] == "http://127.0.0.1:8333"
    assert "boto3" in found["loaded"] and "kubernetes" not in found["loaded"]


def test_a_missing_boto3_is_reported_when_s3_is_first_used() -> None:
    found = loaded_after(
        """
        sys.modules["boto3"] = None  # what Python does for a package it cannot import
        from ansible.module_utils.testing import patch_module_args
        from %(package)s.module_utils import base, errors
        from %(package)s.modules import snapshot_info

        args = {"bucket": "snapshots", "shard": "shard-2"}
        with patch_module_args(args):
            module = base.RecoveryModule(snapshot_info.argument_spec())
        try:
            module.s3_store()
        except errors.RecoveryError as error:
            found["msg"] = error.msg
        """
        % {"package": PACKAGE}
    )
    assert "Failed to import the required Python library (boto3)" in found["msg"]
