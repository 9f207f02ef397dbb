"""The collection as it is shipped: the tarball ``make collection`` builds (.ci/build_collection.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import BIN, ROOT


def build_collection(output: Path) -> Path:
    """Build the collection from this checkout into ``output``; the tarball's path."""
    output.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(BIN / "python"), str(ROOT / ".ci" / "build_collection.py"), "--output-path",
                           str(output)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    tarballs = sorted(output.glob("ragops-recovery-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def project_checkout(destination: Path) -> Path:
    """What an AWX project sync checks out: the repository's files (tracked, or new and not ignored)."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in names:
        source = ROOT / name
        if name and not name.startswith("lab/") and source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return destination


def project_sync(project: Path, collections: Path) -> str:
    """The content step of AWX's project update (awx/playbooks/project_update.yml): ansible-galaxy run in the
    project's directory on collections/requirements.yml, installing into the job's requirements_collections."""
    env = {"PATH": "%s:/usr/bin:/bin" % BIN, "HOME": str(collections.parent),
           "ANSIBLE_COLLECTIONS_PATHS": str(collections), "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r",
                           str(project / "collections" / "requirements.yml")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
