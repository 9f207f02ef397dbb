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
