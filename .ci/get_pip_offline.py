"""Offline stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test runs ``get-pip.py`` to put pip into each virtual environment it
creates; the script is fetched from a host this project's CI cannot reach.
This file does the same job with the pip wheel that CPython bundles for
``ensurepip``: it installs the requested pip release from the package index.
``make test`` copies it to ``~/.ansible/test/cache/get_pip_<version>.py``.
"""

import ensurepip
import sys
from pathlib import Path


def main() -> int:
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    wheel = sorted(bundled.glob("pip-*.whl"))[-1]
    sys.path.insert(0, str(wheel))
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    # get-pip.py takes these two itself; pip install does not know them.
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    return int(pip_main(["install", "--upgrade", "--force-reinstall", *args]))


if __name__ == "__main__":
    sys.exit(main())
