# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-module runs: arguments in, one JSON result out, through the module's ``main()``."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args


def run(
    module: t.Any,
    capsys: pytest.CaptureFixture[str],
    *,
    hidden: t.Sequence[str] = (),
    **args: t.Any,
) -> t.Dict[str, t.Any]:
    """The result of ``module.main()`` with ``args``; none of the ``hidden`` values is in it."""
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    for value in hidden:
        assert value not in out
    return t.cast(t.Dict[str, t.Any], json.loads(out))
