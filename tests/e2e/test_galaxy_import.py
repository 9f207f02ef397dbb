"""The built collection passes Galaxy's import checks (galaxy-importer, run without containers)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import BIN, ROOT
from shipped import build_collection

ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())


@pytest.fixture(scope="module", name="imported")
def imported_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    """galaxy-importer's log and its result (importer_result.json) for the built tarball."""
    workdir = tmp_path_factory.mktemp("galaxy-import")
    tarball = build_collection(workdir / "dist")
    env = dict(os.environ, GALAXY_IMPORTER_CONFIG=str(Path(__file__).with_name("galaxy-importer.cfg")),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    done = subprocess.run([str(BIN / "python"), "-m", "galaxy_importer.main", str(tarball)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    return log, json.loads((workdir / "importer_result.json").read_text())


def test_import_passes_without_errors_or_warnings(imported: tuple[str, dict[str, object]]) -> None:
    log, _ = imported
    assert "Importer processing completed successfully" in log
    problems = [line for line in log.splitlines() if line.startswith(("ERROR", "WARNING"))]
    assert problems == [], log


def test_every_role_is_imported_with_its_readme_and_description(imported: tuple[str, dict[str, object]]) -> None:
    _, result = imported
    contents = {item["name"]: item for item in t_list(result["contents"]) if item["content_type"] == "role"}
    assert sorted(contents) == ROLES
    blob = result["docs_blob"]
    assert isinstance(blob, dict)
    docs = {item["content_name"]: item for item in t_list(blob["contents"]) if item["content_type"] == "role"}
    for name, item in contents.items():
        specs = yaml.safe_load((ROOT / "roles" / name / "meta" / "argument_specs.yml").read_text())
        assert item["description"] == specs["argument_specs"]["main"]["short_description"], name
        assert docs[name]["readme_file"] == "README.md" and "<table>" in docs[name]["readme_html"], name


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_lists_exactly_the_role_variables(role: str) -> None:
    """Every variable of meta/argument_specs.yml is in the README's table, and nothing else is."""
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = set(specs["argument_specs"]["main"]["options"])
    readme = (ROOT / "roles" / role / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines()
            if line.startswith("| `%s_" % role)}
    assert rows == options
    assert "```yaml" in readme and "ragops.recovery.%s" % role in readme


def test_galaxy_metadata_names_no_link_of_its_own_and_the_build_links_the_origin(
        imported: tuple[str, dict[str, object]]) -> None:
    """galaxy.yml names no host the project does not have; the built tarball links where the code came from."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert galaxy["repository"] == ""
    assert not {"documentation", "homepage", "issues"} & set(galaxy)
    origin = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True,
                            check=True).stdout.strip()
    _, result = imported
    metadata = result["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["repository"] == origin


def t_list(value: object) -> list[dict[str, str]]:
    assert isinstance(value, list)
    return value
