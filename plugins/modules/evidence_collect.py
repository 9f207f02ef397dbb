#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: evidence_collect
short_description: Collect a shard's evidence into a write-once bundle before anything changes
version_added: 0.1.0
description:
  - Gathers, read-only, the evidence of a vectorstore shard incident - the logs of every container of
    the shard's pods (current and previous), the events about those pods and their PVCs, the pods and
    PVCs as YAML, the shard registry, the shard's snapshot listing and the shard's health answers -
    into one C(tar.gz) whose C(MANIFEST.json) lists every file with its size and SHA-256.
  - O(documents) adds what a play recorded itself (the generator's flags and probes in Scenario B, the
    stack as read in Scenario C), O(files) the files a run wrote on the controller (its postmortem,
    timeline and reports); without O(shard) the bundle holds only those, so every scenario keeps its
    evidence and its records in the same write-once store.
  - Stores the bundle under O(dest) (a local folder) and/or O(bucket) (an S3 prefix), write-once - a
    local file is created exclusively, an S3 object is written with C(If-None-Match=*), so an existing
    bundle is never overwritten. Never truncates or deletes anything.
  - One bundle per incident and name - when it already exists the task reports no change and returns
    where it is, so a re-run keeps the evidence taken before the first change.
  - Literal environment values whose names look secret (key, token, secret, password, credential) are
    redacted from the pod specs in the bundle.
author:
  - ragops.recovery maintainers (@ragops)
options:
  shard:
    description:
      - Id of the shard (for example V(shard-2)) whose evidence is gathered from the cluster.
      - At least one of O(shard), O(documents) and O(files) is required.
    type: str
  documents:
    description:
      - Files to put into the bundle, by their path in it (relative, plain names such as
        C(stack-before.json) or C(generator/config.json)); a text value is stored as it is, any other
        value as JSON.
    type: dict
  files:
    description:
      - Files on the controller to put into the bundle, by their path in it (named like O(documents)),
        for example a postmortem, a timeline and the reports a run wrote. A file that cannot be read is
        named in C(errors.txt) and the rest is kept.
      - At least one of O(shard), O(documents) and O(files) is required.
    type: dict
  incident_id:
    description:
      - Id of the incident; the bundle is stored under it.
    type: str
    required: true
  name:
    description:
      - Name of the bundle, without extension. Defaults to C(evidence-<shard>), or C(evidence) without
        O(shard).
    type: str
  dest:
    description:
      - Local folder; the bundle goes to C(<dest>/<incident_id>/<name>.tar.gz) with its manifest beside it.
      - At least one of O(dest) and O(bucket) is required.
    type: path
  bucket:
    description:
      - S3 bucket; the bundle goes to C(<prefix>/<incident_id>/<name>.tar.gz), its manifest written last.
    type: str
  prefix:
    description:
      - Key prefix of evidence bundles in O(bucket).
    type: str
    default: evidence
  snapshot_bucket:
    description:
      - Bucket of the shard's snapshots, whose listing goes into the bundle. Defaults to O(bucket);
        without either the listing is left out.
    type: str
  snapshot_prefix:
    description:
      - Key prefix of the snapshots.
    type: str
    default: snapshots
  port:
    description:
      - Port of the shard's HTTP API on its pods.
    type: int
    default: 8080
  health_paths:
    description:
      - Paths asked on every shard pod; the answers go into the bundle.
    type: list
    elements: str
    default: [/readyz, /stats]
  http_timeout:
    description:
      - Seconds one health call may take.
    type: float
    default: 5
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.s3_auth
  - ragops.recovery.shard
  - ragops.recovery.shard.registry
attributes:
  check_mode:
    support: full
    details: Nothing is gathered or written; the locations are reported.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: An existing bundle is kept and reported unchanged.
  action_group:
    support: full
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
seealso:
  - module: ragops.recovery.incident_lock
  - module: ragops.recovery.shard_mark
"""

EXAMPLES = r"""
- name: Keep the evidence of shard-2 in S3 and on the bastion before changing anything
  ragops.recovery.evidence_collect:
    namespace: rag-prod
    shard: shard-2
    incident_id: INC-1042
    bucket: rag-evidence
    dest: /var/lib/ragops/evidence
  register: evidence

- name: Keep what the play read of the stack in the same write-once store
  ragops.recovery.evidence_collect:
    incident_id: INC-1043
    name: evidence-stack
    bucket: rag-evidence
    documents:
      stack-before.json: "{{ stack_before }}"

- name: Keep the postmortem and the timeline of the run next to the evidence, written once
  ragops.recovery.evidence_collect:
    incident_id: INC-1043
    name: postmortem-bootstrap-20261127T221000Z
    bucket: rag-evidence
    files:
      postmortem.md: incidents/INC-1043/20261127T221000Z/postmortem.md
      timeline.json: timeline/timeline.json
"""

RETURN = r"""
evidence:
  description: Where the bundle is and what it holds.
  returned: always
  type: dict
  contains:
    name:
      description: Bundle name.
      type: str
      sample: evidence-shard-2
    path:
      description: Local path of the bundle; absent without O(dest).
      type: str
      sample: /var/lib/ragops/evidence/INC-1042/evidence-shard-2.tar.gz
    s3_uri:
      description: S3 location of the bundle; absent without O(bucket).
      type: str
      sample: s3://rag-evidence/evidence/INC-1042/evidence-shard-2.tar.gz
    existed:
      description: Whether the bundle was already there (then it was kept as it was).
      type: bool
    sha256:
      description: SHA-256 of the bundle written by this run.
      type: str
      returned: when a bundle was written
    size:
      description: Size of the bundle in bytes.
      type: int
      returned: when a bundle was written
    files:
      description: Paths inside the bundle.
      type: list
      elements: str
      returned: when a bundle was written
    errors:
      description: What could not be gathered (also in C(errors.txt) in the bundle).
      type: list
      elements: str
      returned: when a bundle was written
"""

import typing as t

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base

if t.TYPE_CHECKING:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "shard": {"type": "str"},
            "documents": {"type": "dict"},
            "files": {"type": "dict"},
            "incident_id": {"type": "str", "required": True},
            "name": {"type": "str"},
            "dest": {"type": "path"},
            "bucket": {"type": "str"},
            "prefix": {"type": "str", "default": "evidence"},
            "snapshot_bucket": {"type": "str"},
            "snapshot_prefix": {"type": "str", "default": "snapshots"},
            "port": {"type": "int", "default": 8080},
            "health_paths": {
                "type": "list",
                "elements": "str",
                "default": ["/readyz", "/stats"],
            },
            "http_timeout": {"type": "float", "default": 5.0},
        },
        groups=("k8s", "s3", "shard", "registry"),
        required_one_of=[["dest", "bucket"], ["shard", "documents", "files"]],
    )


def run_module(module: base.RecoveryModule, call: admin.HttpCall) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import evidence
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import (
        evidence_targets,
    )

    params = module.params
    files = {name: str(path) for name, path in (params["files"] or {}).items()}
    request = argspec.from_params(
        evidence.EvidenceRequest,
        params,
        documents=params["documents"] or {},
        files=files,
    )
    evidence.check_documents(dict(request.documents, **request.files))
    evidence.check_names(request.documents, request.files)
    bucket = params["bucket"]
    snapshot_bucket = params["snapshot_bucket"] or bucket
    store = module.s3_store(bucket) if bucket else None
    targets = evidence_targets.Targets.of(
        request, params["name"], params["dest"], params["prefix"], store
    )
    return evidence_targets.collect(
        module.k8s_client,
        call,
        request,
        targets,
        lambda: module.s3_store(snapshot_bucket) if snapshot_bucket else None,
        check_mode=module.check_mode,
    )


def collect_by_http(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin

    return run_module(module, admin.http_call)


def main() -> None:
    module = base.RecoveryModule(argument_spec(), libraries=argspec.yaml_library)
    module.run(collect_by_http)


if __name__ == "__main__":
    main()
