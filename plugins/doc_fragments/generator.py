# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Where the generator's flags live; the spec is the "generator" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  deployment:
    description:
      - Name of the generator Deployment in O(namespace). Its container's env vars hold the flags,
        unless O(flags_configmap) is set.
    type: str
    default: generator
  container:
    description:
      - Container of the Deployment's pod template whose env holds the flags. Defaults to the first.
    type: str
  flags_configmap:
    description:
      - Keep the flags in this ConfigMap's keys (named like the env vars) instead of the Deployment's
        env, for a generator that reads its flags from a ConfigMap at run time (the lab generator's
        C(FLAGS_CONFIGMAP)). No rollout happens then, so nothing is waited for.
    type: str
  state:
    description:
      - V(present) sets the flags given. The values they had before the first change are recorded in
        the annotation C(ragops.io/previous-<group>) of the object holding the flags, and kept across
        further changes.
      - V(restored) sets the recorded values back and removes the annotation; without a recorded
        change it changes nothing.
    type: str
    choices: [present, restored]
    default: present
"""
