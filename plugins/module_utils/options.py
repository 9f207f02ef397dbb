# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option groups shared by the modules, each defined once.

Every group here has a doc fragment of the same name in
``plugins/doc_fragments/``; keep the two in step.  The functions return fresh
dictionaries so that a module can extend its spec without touching another's.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import env_fallback

Spec = t.Dict[str, t.Dict[str, t.Any]]


def k8s_auth_spec() -> Spec:
    """Kubernetes connection options, with the ``K8S_AUTH_*`` fallbacks of kubernetes.core."""
    return {
        "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
        "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
        "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
        "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
        "ca_cert": {
            "type": "path",
            "aliases": ["ssl_ca_cert"],
            "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"]),
        },
        "client_cert": {
            "type": "path",
            "aliases": ["cert_file"],
            "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"]),
        },
        "client_key": {
            "type": "path",
            "aliases": ["key_file"],
            "no_log": False,
            "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"]),
        },
        "validate_certs": {
            "type": "bool",
            "aliases": ["verify_ssl"],
            "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"]),
        },
        "in_cluster": {"type": "bool", "default": False, "fallback": (env_fallback, ["K8S_AUTH_IN_CLUSTER"])},
        "request_timeout": {"type": "float", "default": 30.0},
        "namespace": {"type": "str", "default": "default", "fallback": (env_fallback, ["K8S_AUTH_NAMESPACE"])},
    }


def k8s_auth_constraints() -> dict[str, t.Any]:
    """AnsibleModule keyword arguments that go with :func:`k8s_auth_spec`."""
    return {
        "mutually_exclusive": [["in_cluster", "kubeconfig"], ["in_cluster", "context"]],
        "required_together": [["client_cert", "client_key"]],
    }


def s3_auth_spec() -> Spec:
    """S3 endpoint and credentials, with the usual AWS environment fallbacks."""
    return {
        "endpoint_url": {
            "type": "str",
            "aliases": ["s3_url"],
            "fallback": (env_fallback, ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT_URL"]),
        },
        # An access key id alone grants nothing, but it names the credential: keep it out of -vvv output too.
        "access_key": {
            "type": "str",
            "aliases": ["aws_access_key_id"],
            "no_log": True,
            "fallback": (env_fallback, ["AWS_ACCESS_KEY_ID"]),
        },
        "secret_key": {
            "type": "str",
            "aliases": ["aws_secret_access_key"],
            "no_log": True,
            "fallback": (env_fallback, ["AWS_SECRET_ACCESS_KEY"]),
        },
        "session_token": {
            "type": "str",
            "aliases": ["aws_session_token"],
            "no_log": True,
            "fallback": (env_fallback, ["AWS_SESSION_TOKEN"]),
        },
        "region": {"type": "str", "fallback": (env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])},
        "profile": {"type": "str", "aliases": ["aws_profile"], "fallback": (env_fallback, ["AWS_PROFILE"])},
        "s3_validate_certs": {"type": "bool", "default": True},
        "s3_ca_bundle": {"type": "path", "fallback": (env_fallback, ["AWS_CA_BUNDLE"])},
    }


def s3_auth_constraints() -> dict[str, t.Any]:
    """AnsibleModule keyword arguments that go with :func:`s3_auth_spec`."""
    return {
        "required_together": [["access_key", "secret_key"]],
        "mutually_exclusive": [["profile", "access_key"]],
    }


def wait_spec() -> Spec:
    """Options of modules that wait for the cluster to reach a state."""
    return {
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 300},
        "wait_sleep": {"type": "int", "default": 2},
    }


def components_spec() -> Spec:
    """The stack's components as the inventory lists them (doc fragment ``components``)."""
    return {
        "components": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "kind": {"type": "str", "default": "Deployment", "choices": ["Deployment", "StatefulSet"]},
                "depends_on": {"type": "list", "elements": "str", "default": []},
                "replicas": {"type": "int"},
                "wait_timeout": {"type": "int"},
            },
        },
        "dependency_env": {"type": "str"},
    }


def migration_spec() -> Spec:
    """Where a stack's migration Job template and its applied schema version live (doc fragment ``migration``)."""
    return {
        "migration_configmap": {"type": "str"},
        "migration_key": {"type": "str", "default": "job.yaml", "no_log": False},
        "migration_template": {"type": "dict"},
        "migration_version": {"type": "str"},
        "migration_version_env": {"type": "str", "default": "TARGET_SCHEMA_VERSION"},
        "migration_selector": {"type": "str"},
        "schema_configmap": {"type": "str", "default": "rag-schema"},
        "schema_key": {"type": "str", "default": "version", "no_log": False},
    }


def migration_constraints() -> dict[str, t.Any]:
    return {"mutually_exclusive": [["migration_configmap", "migration_template"]]}


def merge_constraints(*groups: dict[str, t.Any]) -> dict[str, t.Any]:
    """Combine the constraint lists of several option groups into one set of kwargs."""
    merged: dict[str, list[t.Any]] = {}
    for group in groups:
        for key, rules in group.items():
            merged.setdefault(key, []).extend(rules)
    return dict(merged)
