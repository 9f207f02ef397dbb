"""The module documentation renders the way users read it."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from harness import BIN, ROOT

MODULES = ["shard_mark", "shard_info", "incident_lock", "snapshot_create", "snapshot_info", "snapshot_prune",
           "snapshot_restore", "golden_validate", "provider_check", "provider_switch", "generator_fallback",
           "traffic_throttle", "stack_info", "migration_run", "component_start", "shard_reopen", "evidence_collect",
           "shard_reindex", "snapshot_schedule", "provider_precheck", "drill_namespace", "drill_restore",
           "drill_report"]
# Modules that talk only to S3 document the S3 options instead of the Kubernetes ones.
S3_ONLY = {"snapshot_info", "snapshot_prune"}


@pytest.mark.parametrize("module", [*MODULES, "local_record"])
def test_ansible_doc_renders_options_and_examples(module: str) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"), "ANSIBLE_NOCOLOR": "1",
           "PATH": str(BIN)}
    done = subprocess.run([str(BIN / "ansible-doc"), "ragops.recovery." + module], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "EXAMPLES:" in done.stdout
    assert "ragops.recovery.%s:" % module in done.stdout
    if module == "local_record":
        assert "dir_mode" in done.stdout and "kubeconfig" not in done.stdout
    elif module in S3_ONLY:
        assert "endpoint_url" in done.stdout and "AWS_SECRET_ACCESS_KEY" in done.stdout
    else:
        assert "kubeconfig" in done.stdout and "K8S_AUTH_KUBECONFIG" in done.stdout


def test_action_group_lists_every_module() -> None:
    import yaml

    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    # A module run by an action plugin of its name on the controller alone (local_record) takes no
    # cluster options, so it is in no group.
    controller_only = {path.stem for path in (ROOT / "plugins" / "action").glob("*.py")}
    modules = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py")
                     if path.stem not in controller_only)
    assert controller_only == {"local_record"}
    assert sorted(runtime["action_groups"]["rag"]) == modules


# A test named in docs/reliability.md: `tests/<path>.py::test_<name>` with an optional `[parameter id]`.
NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)(?:\[([^\]`]+)\])?`")


def named_tests(text: str) -> list[tuple[str, str, str | None]]:
    return [(match.group(1), match.group(2), match.group(3)) for match in NAMED_TEST.finditer(text)]


def defined_tests(path: Path) -> set[str]:
    """The test functions a test file defines, at its top level or in its classes."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = [*tree.body, *(node for cls in tree.body if isinstance(cls, ast.ClassDef) for node in cls.body)]
    return {node.name for node in nodes if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")}


def missing_tests(text: str, root: Path) -> list[str]:
    """Each named test whose file, function or parameter id is not in the repository."""
    missing = []
    for file, name, parameter in named_tests(text):
        path = root / file
        if not path.is_file():
            missing.append("%s: no such file" % file)
        elif name not in defined_tests(path):
            missing.append("%s::%s: no such test" % (file, name))
        elif parameter and '"%s"' % parameter not in path.read_text():
            missing.append("%s::%s[%s]: no such parameter id" % (file, name, parameter))
    return missing


def test_the_reliability_matrix_names_only_tests_that_exist() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    covered, _, uncovered = text.partition("## Not yet covered")
    assert uncovered, "docs/reliability.md has no section 'Not yet covered'"
    assert len(named_tests(covered)) > 50, "the matrix names fewer tests than it did"
    assert missing_tests(text, ROOT) == []
    assert named_tests(uncovered) == [], "a fault not yet covered names a test"
    for row in (line for line in covered.splitlines() if line.startswith("| ") and not line.startswith("| fault")):
        assert named_tests(row), "a row names no test: %s" % row
    assert "(docs/reliability.md)" in (ROOT / "README.md").read_text()


def test_a_stale_reliability_matrix_is_caught(tmp_path: Path) -> None:
    tests = tmp_path / "tests" / "e2e"
    tests.mkdir(parents=True)
    (tests / "test_x.py").write_text('import pytest\n\n@pytest.mark.parametrize("a", [1], ids=["one"])\n'
                                     "def test_kept(a):\n    pass\n\n\nclass TestGroup:\n"
                                     "    def test_in_a_class(self):\n        pass\n")
    matrix = ("| f | p | `tests/e2e/test_x.py::test_kept[one]`, `tests/e2e/test_x.py::test_in_a_class` | l |\n"
              "| f | p | `tests/e2e/test_x.py::test_renamed`, `tests/e2e/test_gone.py::test_kept` | l |\n"
              "| f | p | `tests/e2e/test_x.py::test_kept[two]` | l |\n")
    assert missing_tests(matrix, tmp_path) == [
        "tests/e2e/test_x.py::test_renamed: no such test",
        "tests/e2e/test_gone.py: no such file",
        "tests/e2e/test_x.py::test_kept[two]: no such parameter id",
    ]


def test_the_ci_files_run_the_restore_drill_and_publish_the_junit_report_it_writes() -> None:
    """extensions/ci/: each runs the packaged playbook and publishes the JUnit file where the role writes it
    (<report dir>/restore-drill-<drill id>/restore-drill.xml)."""
    import fnmatch

    import yaml

    tasks = (ROOT / "roles" / "restore_drill" / "tasks" / "main.yml").read_text()
    assert "/restore-drill-{{ restore_drill_run_id }}/restore-drill" in tasks
    assert 'junit: "{{ restore_drill_report_path }}.xml"' in tasks
    github = yaml.safe_load((ROOT / "extensions" / "ci" / "github-restore-drill.yml").read_text())
    steps = github["jobs"]["restore-drill"]["steps"]
    assert any("ansible-playbook ragops.recovery.restore_drill" in step.get("run", "") for step in steps)
    published = next(step["with"]["report_paths"] for step in steps if "action-junit-report" in step.get("uses", ""))
    written = "${{ runner.temp }}/reports/restore-drill-20261207t100000z/restore-drill.xml"
    assert fnmatch.fnmatch(written, published), published
    assert "RAGOPS_REPORT_DIR=$RUNNER_TEMP/reports" in "\n".join(step.get("run", "") for step in steps)
    gitlab = yaml.safe_load((ROOT / "extensions" / "ci" / "gitlab-restore-drill.yml").read_text())["restore-drill"]
    assert gitlab["variables"]["RAGOPS_REPORT_DIR"] == "$CI_PROJECT_DIR/reports"
    assert any("ansible-playbook ragops.recovery.restore_drill" in line for line in gitlab["script"])
    assert fnmatch.fnmatch("reports/restore-drill-20261207t100000z/restore-drill.xml",
                           gitlab["artifacts"]["reports"]["junit"])
