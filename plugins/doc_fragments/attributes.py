# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What the attributes of every module mean; each module states its own support level.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
  action_group:
    description:
      - Use C(group/ragops.recovery.rag) in C(module_defaults) to set defaults for this module.
      - The modules that read or write S3 are in C(group/ragops.recovery.s3) too, so one entry
        carries the S3 options.
    membership:
      - ragops.recovery.rag
"""
