# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How the stack labels its shards' pods; the spec is the "shard" group of
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  shard_label:
    description:
      - Pod label whose value is the shard id (the stack contract, C(docs/contract.md)).
    type: str
    default: ragops.io/shard
"""

    # Where the shard registry lives; the spec is the "registry" group of
    # plugins/module_utils/argspec.py.
    REGISTRY = r"""
options:
  registry:
    description:
      - Name of the shard registry ConfigMap in O(namespace) (the stack contract,
        C(docs/contract.md)).
    type: str
    default: rag-shard-registry
"""
