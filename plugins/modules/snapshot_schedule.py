#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_schedule
short_description: Keep the nightly snapshots running in the cluster as a CronJob
version_added: 0.1.0
description:
  - Creates, updates or removes a CronJob in O(namespace) that runs a playbook of this collection (by default
    C(ragops.recovery.snapshot_nightly)) inside the collection's execution environment image, so that the
    cluster keeps snapshotting without a controller such as AWX.
  - The CronJob's pod runs C(ansible-playbook <playbook> -i localhost, -c local -e <extra_vars>) as the
    ServiceAccount O(service_account), with in-cluster Kubernetes access in its own namespace
    (C(K8S_AUTH_IN_CLUSTER), C(K8S_AUTH_NAMESPACE)), the S3 endpoint and region of this task
    (C(AWS_ENDPOINT_URL), C(AWS_REGION)) and the S3 credentials from a Secret.
  - Unless O(s3_secret) names a Secret, the S3 credentials of this task are written into a Secret
    C(<name>-s3) owned by the CronJob, so that removing the CronJob removes them too.
  - Runs never overlap (C(concurrencyPolicy=Forbid)) and a failed run is not retried (C(backoffLimit=0)), so a
    failure stays visible in the Job's status.
  - The CronJob carries the SHA-256 of the spec the module wrote; a run with the same settings changes nothing.
author:
  - ragops.recovery maintainers (@ragops)
options:
  state:
    description:
      - V(present) creates or updates the CronJob; V(absent) removes it (its Jobs and its own credentials Secret
        go with it, by garbage collection).
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the CronJob.
    type: str
    default: ragops-snapshot-nightly
  schedule:
    description:
      - When to run, in cron syntax.
    type: str
    default: "0 2 * * *"
  time_zone:
    description:
      - Time zone of O(schedule) (for example V(Europe/Berlin)); by default the controller manager's, usually UTC.
    type: str
  suspend:
    description:
      - Keep the CronJob but start no run.
    type: bool
    default: false
  image:
    description:
      - Image of the runs; it must contain this collection, ansible-core and the collection's Python
        requirements (the collection's execution environment, the same default as the Jobs of
        M(ragops.recovery.snapshot_create) and M(ragops.recovery.snapshot_restore)).
    type: str
    default: localhost/ragops-recovery-ee:0.1.0
  service_account:
    description:
      - ServiceAccount of the runs; it must exist. The collection ships C(ragops-recovery) with the Role the
        nightly snapshots need (C(meta/rbac/snapshots.yaml)).
    type: str
    default: ragops-recovery
  playbook:
    description:
      - The playbook the runs execute, by its fully qualified name.
    type: str
    default: ragops.recovery.snapshot_nightly
  extra_vars:
    description:
      - Variables passed to the playbook (C(-e)), in the CronJob's spec as JSON; never put a secret here.
      - C(ansible_python_interpreter) is set to the Python that runs the playbook.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds a run may take before Kubernetes stops it (the Job's C(activeDeadlineSeconds)).
    type: int
    default: 21600
  s3_secret:
    description:
      - Existing Secret with C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and optionally
        C(AWS_SESSION_TOKEN)) for the runs; by default the module writes the credentials it was given.
    type: str
extends_documentation_fragment:
  - ragops.recovery.attributes
  - ragops.recovery.k8s_auth
  - ragops.recovery.s3_auth
attributes:
  check_mode:
    support: full
    details: The CronJob is created, updated or deleted as a server-side dry run; the Secret is compared only.
  diff_mode:
    support: full
    details: The schedule, image, command and account before and after; never a credential.
  idempotent:
    support: full
  action_group:
    support: full
    membership:
      - ragops.recovery.rag
      - ragops.recovery.s3
seealso:
  - module: ragops.recovery.snapshot_create
  - module: ragops.recovery.snapshot_prune
"""

EXAMPLES = r"""
- name: Snapshot every shard at 02:00 from inside the cluster
  ragops.recovery.snapshot_schedule:
    namespace: rag-prod
    schedule: "0 2 * * *"
    time_zone: Etc/UTC
    endpoint_url: https://minio.example.com
    access_key: "{{ s3_access_key }}"
    secret_key: "{{ s3_secret_key }}"
    extra_vars:
      target: localhost
      ragops_s3_bucket: rag-snapshots

- name: Stop the nightly snapshots
  ragops.recovery.snapshot_schedule:
    namespace: rag-prod
    state: absent
"""

RETURN = r"""
cronjob:
  description: The CronJob as the module wants it; null after O(state=absent).
  returned: always
  type: dict
  sample: {"name": "ragops-snapshot-nightly", "namespace": "rag-prod", "schedule": "0 2 * * *",
           "time_zone": null, "suspend": false, "image": "localhost/ragops-recovery-ee:0.1.0",
           "service_account": "ragops-recovery",
           "args": ["ansible-playbook", "ragops.recovery.snapshot_nightly", "-i", "localhost,", "-c", "local",
                    "-e", "{\"ansible_python_interpreter\": \"{{ ansible_playbook_python }}\"}"]}
secret:
  description:
    - The Secret the runs take their S3 credentials from, C(managed) when the module writes it, and whether
      this run C(changed) it. Its values are never returned.
  returned: always
  type: dict
  sample: {"name": "ragops-snapshot-nightly-s3", "managed": true, "changed": false}
"""

from ansible_collections.ragops.recovery.plugins.module_utils import argspec
from ansible_collections.ragops.recovery.plugins.module_utils import base


def argument_spec() -> argspec.ArgumentSpec:
    return argspec.ArgumentSpec(
        options={
            "state": {
                "type": "str",
                "choices": ["present", "absent"],
                "default": "present",
            },
            "name": {"type": "str", "default": "ragops-snapshot-nightly"},
            "schedule": {"type": "str", "default": "0 2 * * *"},
            "time_zone": {"type": "str"},
            "suspend": {"type": "bool", "default": False},
            "image": {"type": "str", "default": argspec.EE_IMAGE},
            "service_account": {"type": "str", "default": "ragops-recovery"},
            "playbook": {"type": "str", "default": "ragops.recovery.snapshot_nightly"},
            "extra_vars": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 21600},
            "s3_secret": {"type": "str", "no_log": False},
        },
        groups=("k8s", "s3"),
        # The runs need S3 credentials: a Secret, or the ones this task has.
        required_if=[["state", "present", ["s3_secret", "access_key"], True]],
    )


def run_module(module: base.RecoveryModule) -> base.Result:
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        jobkit,
    )
    from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import (
        schedule,
    )

    params = module.params
    s3_env = {
        "AWS_ENDPOINT_URL": params["endpoint_url"],
        "AWS_REGION": params["region"],
    }
    request = argspec.from_params(
        schedule.ScheduleRequest,
        params,
        credentials=jobkit.credentials_of(params),
        s3_env={key: value for key, value in s3_env.items() if value},
        check_mode=module.check_mode,
    )
    outcome = schedule.apply(module.k8s_client(), request)
    return outcome.to_result(module._diff)


def main() -> None:
    base.RecoveryModule(argument_spec()).run(run_module)


if __name__ == "__main__":
    main()
