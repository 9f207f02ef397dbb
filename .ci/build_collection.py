"""Build the collection tarball to publish, with the link to the repository Galaxy requires.

galaxy.yml leaves ``repository`` empty, as the project names no public home of its own; Galaxy's
importer refuses a collection without one. This builds the collection from the files of this checkout (the
tracked ones and the new ones git does not ignore) with ``repository`` set to the URL given, by
default the URL of the checkout's ``origin``, so the link is always where the code came from.

    python .ci/build_collection.py --output-path build/dist [--repository URL]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit("git %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout


def origin_url() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit("This checkout has no origin remote: pass --repository <URL of the collection's repository> "
                         "(make collection REPOSITORY=<URL>).")
    return done.stdout.strip()


def stage(destination: Path, repository: str) -> Path:
    """A copy of the checkout's files under ansible_collections/ragops/recovery, galaxy.yml with the link."""
    collection = destination / "ansible_collections" / "ragops" / "recovery"
    for name in git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        source = ROOT / name
        if name and source.is_file():
            target = collection / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    galaxy = collection / "galaxy.yml"
    text, count = re.subn(r"^repository:.*$", "repository: %s" % repository, galaxy.read_text(encoding="utf-8"),
                          flags=re.M)
    if count != 1:
        raise SystemExit("galaxy.yml must have one repository key (empty) for the build to fill in.")
    galaxy.write_text(text, encoding="utf-8")
    return collection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-path", type=Path, required=True)
    parser.add_argument("--repository", default="", help="URL of the repository (default: the origin remote's)")
    args = parser.parse_args()
    repository = args.repository or origin_url()
    galaxy_cli = Path(sys.executable).with_name("ansible-galaxy")
    with tempfile.TemporaryDirectory(prefix="ragops-build-") as workdir:
        collection = stage(Path(workdir), repository)
        done = subprocess.run([str(galaxy_cli), "collection", "build", "--force", "--output-path",
                               str(args.output_path.resolve()), str(collection)], check=False)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
