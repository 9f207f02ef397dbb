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
      - Id of the shard (for example V(shard-2)).
    type: str
    required: true
  incident_id:
    description:
      - Id of the incident; the bundle is stored under it.
    type: str
    required: true
  name:
    description:
      - Name of the bundle, without extension. Defaults to C(evidence-<shard>).
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
  registry:
    description:
      - Name of the shard registry ConfigMap.
    type: str
    default: rag-shard-registry
  shard_label:
    description:
      - Pod label whose value is the shard id.
    type: str
    default: ragops.io/shard
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

import os
import typing as t

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ragops.recovery.plugins.module_utils import evidence
from ansible_collections.ragops.recovery.plugins.module_utils.errors import RecoveryError
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.client import K8sClient
from ansible_collections.ragops.recovery.plugins.module_utils.k8s.transport import (
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
    connect,
)
from ansible_collections.ragops.recovery.plugins.module_utils.module import RecoveryModule, recovery_errors
from ansible_collections.ragops.recovery.plugins.module_utils.shard_http import HttpCall, http_call
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import layout, store
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.options import check_name, utc_now
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    BOTO3_IMPORT_ERROR,
    BOTO3_REQUIREMENT,
    S3Store,
    Transfer,
)
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import connect as s3_connect


def argument_spec() -> dict[str, dict[str, t.Any]]:
    return {
        "shard": {"type": "str", "required": True},
        "incident_id": {"type": "str", "required": True},
        "name": {"type": "str"},
        "dest": {"type": "path"},
        "bucket": {"type": "str"},
        "prefix": {"type": "str", "default": "evidence"},
        "snapshot_bucket": {"type": "str"},
        "snapshot_prefix": {"type": "str", "default": "snapshots"},
        "registry": {"type": "str", "default": "rag-shard-registry"},
        "shard_label": {"type": "str", "default": "ragops.io/shard"},
        "port": {"type": "int", "default": 8080},
        "health_paths": {"type": "list", "elements": "str", "default": ["/readyz", "/stats"]},
        "http_timeout": {"type": "float", "default": 5.0},
    }


class Targets:
    """Where the bundle goes: a local path and/or an S3 key, each with its manifest beside it."""

    def __init__(self, params: t.Mapping[str, t.Any], s3: S3Store | None) -> None:
        incident = check_name("incident_id", params["incident_id"])
        self.name = check_name("name", params["name"] or "evidence-" + check_name("shard", params["shard"]))
        self.path = os.path.join(params["dest"], incident, self.name + ".tar.gz") if params["dest"] else None
        base = "/".join(part for part in (params["prefix"].strip("/"), incident, self.name) if part)
        self.key = base + ".tar.gz" if s3 is not None else None
        self.s3 = s3

    def existing(self) -> bool:
        """Whether every requested location already holds the bundle."""
        local = self.path is None or os.path.exists(self.path)
        remote = self.s3 is None or self.s3.exists(t.cast(str, self.key))
        return local and remote

    def view(self) -> dict[str, t.Any]:
        view: dict[str, t.Any] = {"name": self.name}
        if self.path:
            view["path"] = self.path
        if self.s3 is not None:
            view["s3_uri"] = "s3://%s/%s" % (self.s3.bucket, self.key)
        return view

    def write(self, bundle: bytes, listing: bytes) -> None:
        if self.path and not os.path.exists(self.path):
            evidence.write_once_local(self.path[:-len(".tar.gz")] + ".manifest.json", listing)
            if not evidence.write_once_local(self.path, bundle):
                raise evidence.refuse_existing(self.path)
        if self.s3 is not None and not self.s3.exists(t.cast(str, self.key)):
            if not self.s3.put_bytes(t.cast(str, self.key), bundle, exclusive=True):
                raise evidence.refuse_existing("s3://%s/%s" % (self.s3.bucket, self.key))
            self.s3.put_bytes(t.cast(str, self.key)[:-len(".tar.gz")] + ".manifest.json", listing, exclusive=True)


def _snapshots(s3: S3Store | None, params: t.Mapping[str, t.Any]) -> t.List[dict[str, t.Any]] | None:
    if s3 is None:
        return None
    location = layout.ShardLocation(s3.bucket, params["snapshot_prefix"] or "", params["shard"])
    now = utc_now()
    found = store.load(s3, location, now, 300)
    return [found[key].to_dict(now) for key in sorted(found)]


def _s3_store(params: t.Mapping[str, t.Any], bucket: str | None) -> S3Store | None:
    if not bucket:
        return None
    if BOTO3_IMPORT_ERROR is not None:
        raise RecoveryError(missing_required_lib(BOTO3_REQUIREMENT), reason=str(BOTO3_IMPORT_ERROR))
    return S3Store(s3_connect(params, Transfer()), bucket)


def run_module(module: RecoveryModule, client: K8sClient, call: HttpCall) -> dict[str, t.Any]:
    params = module.params
    targets = Targets(params, _s3_store(params, params["bucket"]))
    if targets.existing():
        return {"changed": False, "evidence": dict(targets.view(), existed=True)}
    if module.check_mode:
        return {"changed": True, "evidence": dict(targets.view(), existed=False)}
    request = evidence.EvidenceRequest(
        namespace=params["namespace"], shard=params["shard"], incident_id=params["incident_id"],
        registry=params["registry"], shard_label=params["shard_label"], port=params["port"],
        health_paths=params["health_paths"], http_timeout=params["http_timeout"])
    snapshot_store = _s3_store(params, params["snapshot_bucket"] or params["bucket"])
    bundle = evidence.gather(client, call, request, _snapshots(snapshot_store, params))
    now = utc_now()
    listing = evidence.manifest(bundle, request, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    data = evidence.archive(bundle, listing, now.timestamp())
    targets.write(data, evidence.json_bytes(listing))
    return {"changed": True, "evidence": dict(targets.view(), existed=False, sha256=evidence.sha256(data),
                                              size=len(data), files=sorted(bundle.files), errors=bundle.errors)}


def main() -> None:
    module = RecoveryModule(argument_spec(), groups=["k8s", "s3"],
                            libraries={KUBERNETES_REQUIREMENT: KUBERNETES_IMPORT_ERROR},
                            required_one_of=[["dest", "bucket"]])
    with recovery_errors(module):
        result = run_module(module, K8sClient(connect(module.params)), http_call)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
