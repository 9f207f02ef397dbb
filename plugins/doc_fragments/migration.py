# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Where the migration is described; the spec is the "migration" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  migration_configmap:
    description:
      - ConfigMap in O(namespace) holding the migration Job template (YAML or JSON) under O(migration_key).
      - Mutually exclusive with O(migration_template).
    type: str
  migration_key:
    description:
      - Key of the Job template in O(migration_configmap).
    type: str
    default: job.yaml
  migration_template:
    description:
      - The migration Job template itself, a C(batch/v1) Job manifest.
    type: dict
  migration_version:
    description:
      - The schema version the migration brings the stack to.
      - Defaults to the template's annotation C(ragops.io/migration-version), else the value of the
        environment variable O(migration_version_env) of the template's first container.
    type: str
  migration_version_env:
    description:
      - Environment variable of the template's first container that carries the target version.
    type: str
    default: TARGET_SCHEMA_VERSION
  migration_selector:
    description:
      - Label selector of the stack's migration Jobs, used to find a migration that is already running.
      - Defaults to the template's own labels.
    type: str
  schema_configmap:
    description:
      - ConfigMap in O(namespace) where the stack records the schema version it is at (under O(schema_key)).
        A migration is pending when that version is lower than the target.
      - V("") when the stack keeps no such record; then a migration counts as applied once a Job of the
        collection for its version has completed.
    type: str
    default: rag-schema
  schema_key:
    description:
      - Key of the applied version in O(schema_configmap).
    type: str
    default: version
"""
