"""The module documentation renders the way users read it."""

from __future__ import annotations

import subprocess

import pytest
from harness import BIN, ROOT

MODULES = ["shard_mark", "shard_info", "incident_lock", "snapshot_create", "snapshot_info", "snapshot_prune",
           "snapshot_restore", "golden_validate", "provider_check", "provider_switch", "generator_fallback",
           "traffic_throttle", "stack_info", "migration_run", "component_start", "shard_reopen", "evidence_collect",
           "shard_reindex", "snapshot_schedule", "provider_precheck"]
# Modules that talk only to S3 document the S3 options instead of the Kubernetes ones.
S3_ONLY = {"snapshot_info", "snapshot_prune"}


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_options_and_examples(module: str) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"), "ANSIBLE_NOCOLOR": "1",
           "PATH": str(BIN)}
    done = subprocess.run([str(BIN / "ansible-doc"), "ragops.recovery." + module], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "EXAMPLES:" in done.stdout
    assert "ragops.recovery.%s:" % module in done.stdout
    if module in S3_ONLY:
        assert "endpoint_url" in done.stdout and "AWS_SECRET_ACCESS_KEY" in done.stdout
    else:
        assert "kubeconfig" in done.stdout and "K8S_AUTH_KUBECONFIG" in done.stdout


def test_action_group_lists_every_module() -> None:
    import yaml

    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    modules = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py"))
    assert sorted(runtime["action_groups"]["rag"]) == modules
