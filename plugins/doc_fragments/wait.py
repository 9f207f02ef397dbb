# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Wait options; the spec is the "wait" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Whether to wait until the change has taken effect before returning.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait. A wait that runs out fails the task with the last state seen.
    type: int
    default: 300
  wait_sleep:
    description:
      - Seconds between two checks while waiting, at most. The first check comes 0.1 seconds after the
        change and the pause doubles after each check up to O(wait_sleep), so a change that completes in
        a second is seen within a tenth of one.
    type: int
    default: 2
"""
