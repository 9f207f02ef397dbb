"""`make ee-context` produces a complete ansible-builder build context for the execution environment.

No container runtime runs here, so the image is not built; the context's own galaxy-stage command and
builder-stage introspection script run outside a container instead, on a copy of ``_build/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from harness import BIN, ROOT

CONTEXT = ROOT / "build" / "ee" / "context"
IMAGE_TAG = re.compile(r"^EE_IMAGE \?= (\S+)$", re.M)


@pytest.fixture(scope="module", name="context")
def context_fixture() -> Path:
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    done = subprocess.run(["make", "--no-print-directory", "ee-context"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return CONTEXT


def manifest(tarball: Path) -> dict[str, object]:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("MANIFEST.json")
        assert member is not None
        return dict(json.load(member)["collection_info"])


def build_args(containerfile: str) -> dict[str, str]:
    return dict(re.findall(r'^ARG (\w+)="([^"]*)"$', containerfile, re.M))


def test_context_installs_ansible_runner_and_the_collection_tarball(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    refs = build_args(containerfile)["ANSIBLE_INSTALL_REFS"].split()
    assert [ref.split("~=")[0] for ref in refs] == ["ansible-core", "ansible-runner"]
    # The refs are expanded unquoted in a RUN line: a < or > would be a shell redirection.
    assert not re.search(r"[<>|;&$`]", " ".join(refs)), refs
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": "collections/ragops-recovery.tar.gz", "type": "file"}]
    info = manifest(context / "_build" / "collections" / "ragops-recovery.tar.gz")
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert (info["namespace"], info["name"], info["version"]) == ("ragops", "recovery", version)
    assert "ENV PYTHONPATH=/usr/share/ansible/collections" in containerfile


def test_galaxy_and_introspection_stages_install_the_collection_and_its_requirements(
        context: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(context / "_build", build)  # the galaxy stage's COPY _build /build; WORKDIR /build
    collections = tmp_path / "usr" / "share" / "ansible" / "collections"
    # As in the image's galaxy stage: no collection installed anywhere else that would make it "Nothing to do".
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(collections),
           "ANSIBLE_GALAXY_DISABLE_GPG_VERIFY": "1"}
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "requirements.yml",
                                "--collections-path", str(collections)], cwd=build, capture_output=True, text=True,
                               timeout=300, check=False, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    collection = collections / "ansible_collections" / "ragops" / "recovery"
    assert (collection / "plugins" / "modules" / "snapshot_restore.py").is_file(), installed.stdout + installed.stderr
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    introspected = subprocess.run([str(BIN / "python"), str(build / "scripts" / "introspect.py"), "introspect",
                                   "--write-pip", str(pip), "--write-bindep", str(bindep), str(collections)],
                                  capture_output=True, text=True, timeout=120, check=False)
    assert introspected.returncode == 0, introspected.stdout + introspected.stderr
    # ansible-builder leaves out what ansible-core brings (PyYAML, its own EXCLUDE_REQUIREMENTS).
    wanted = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line and not line.startswith(("#", "PyYAML"))]
    assert [line.split("#")[0].strip() for line in pip.read_text().splitlines()] == wanted
    assert [line.split("#")[0].strip() for line in bindep.read_text().splitlines()] == [
        "tar [platform:rpm platform:dpkg]", "zstd [platform:rpm platform:dpkg]"]
    # The restore Job's entry point, as the image runs it: python3 -m with the image's PYTHONPATH.
    entry = subprocess.run([str(BIN / "python"), "-c", "import ansible_collections.ragops.recovery."
                            "plugins.module_utils.snapshots.jobrun as m; print(m.__file__)"],
                           env={"PYTHONPATH": str(collections), "PATH": os.environ.get("PATH", "")}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)
    assert entry.returncode == 0, entry.stderr
    assert entry.stdout.strip().startswith(str(collection))


def test_restore_jobs_default_to_the_image_make_ee_tags() -> None:
    """One image reference: the tag `make ee` builds is the default of the restore and snapshot Jobs."""
    source = (ROOT / "plugins" / "module_utils" / "argspec.py").read_text()
    default = re.search(r'^EE_IMAGE = "([^"]+)"$', source, re.M)
    assert default is not None
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    make_tag = IMAGE_TAG.search((ROOT / "Makefile").read_text())
    assert make_tag is not None
    assert make_tag.group(1).replace("$(VERSION)", version) == default.group(1)
    for module in ("snapshot_restore", "snapshot_create", "snapshot_schedule"):
        documented = (ROOT / "plugins" / "modules" / (module + ".py")).read_text()
        assert "default: %s\n" % default.group(1) in documented, module
