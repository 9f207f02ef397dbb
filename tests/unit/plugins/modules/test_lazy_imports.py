# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start-up: the Kubernetes client, boto3 and PyYAML are imported when a module uses
them, not when it starts.

Each check runs in a fresh interpreter, since this one has imported them all already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils import base

# <root>/ansible_collections/ragops/recovery/plugins/module_utils/base.py
BASE = Path(os.path.abspath(base.__file__))
COLLECTIONS_ROOT = BASE.parents[5]
MODULES = sorted(
    path.stem
    for path in (BASE.parents[1] / "modules").glob("*.py")
    if path.stem != "__init__"
)
PACKAGE = "ansible_collections.ragops.recovery.plugins"
HEAVY = ("kubernetes", "boto3", "botocore", "yaml")
# The modules that read YAML (golden sets, migrations, cached answers, evidence).
READS_YAML = {
    "evidence_collect",
    "generator_fallback",
    "golden_validate",
    "migration_run",
    "provider_precheck",
    "stack_info",
}


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
    expected = ["yaml"] if name in READS_YAML else []
    assert loaded == expected


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
