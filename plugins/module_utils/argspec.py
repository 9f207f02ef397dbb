# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs as objects, and the option groups of the modules, each defined once.

A module's :func:`argument_spec` returns an :class:`ArgumentSpec`: its own options, the
constraints between them and the names of the shared groups it takes.  Every group in
:data:`OPTION_GROUPS` is documented by exactly one doc fragment
(``OptionGroup.fragment``); a unit test checks that each module extends the fragments of
the groups it declares.
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass, field

from ansible.module_utils.basic import env_fallback

T = t.TypeVar("T")
Spec = t.Dict[str, t.Dict[str, t.Any]]
Rules = t.List[t.Sequence[t.Any]]
CONSTRAINTS = (
    "mutually_exclusive",
    "required_together",
    "required_one_of",
    "required_if",
)

# The collection's execution environment as `make ee` tags it
# (docs/execution-environment.md): the Jobs (and the nightly CronJob) run the
# collection's own code in it. A cluster pulls it from wherever it was pushed to, given
# as the modules' image option (the playbooks' ragops_ee_image), whose default this is.
EE_IMAGE = "localhost/ragops-recovery-ee:0.1.0"


@dataclass
class ArgumentSpec:
    """Options, the shared groups they extend and the constraints between them."""

    options: Spec = field(default_factory=dict)
    groups: t.Sequence[str] = ()
    mutually_exclusive: Rules = field(default_factory=list)
    required_together: Rules = field(default_factory=list)
    required_one_of: Rules = field(default_factory=list)
    required_if: Rules = field(default_factory=list)

    def merge(self, other: ArgumentSpec) -> ArgumentSpec:
        """A spec with the options and constraints of both; ``other`` wins a name."""
        merged = ArgumentSpec(
            dict(self.options, **other.options), (*self.groups, *other.groups)
        )
        for name in CONSTRAINTS:
            getattr(merged, name).extend([*getattr(self, name), *getattr(other, name)])
        return merged

    def expanded(self) -> ArgumentSpec:
        """This spec merged into its groups' specs: what the module really takes."""
        full = ArgumentSpec()
        for name in self.groups:
            full = full.merge(OPTION_GROUPS[name].build())
        return full.merge(self)

    def rules(self) -> t.List[Rules]:
        return [getattr(self, name) for name in CONSTRAINTS]

    def module_kwargs(self) -> t.Dict[str, t.Any]:
        """Keyword arguments for ``AnsibleModule``, without empty constraint lists."""
        kwargs: t.Dict[str, t.Any] = {"argument_spec": self.options}
        kwargs.update(
            (name, rules) for name, rules in zip(CONSTRAINTS, self.rules()) if rules
        )
        return kwargs


def from_params(cls: t.Type[T], params: t.Mapping[str, t.Any], **given: t.Any) -> T:
    """The dataclass ``cls`` with each field named like an option set from ``params``.

    ``given`` sets the fields that are not options, or that differ from the option;
    fields that are neither keep their defaults.
    """
    names = [item.name for item in dataclasses.fields(t.cast(t.Any, cls)) if item.init]
    values = {name: params[name] for name in names if name in params}
    values.update(given)
    return cls(**values)


@dataclass(frozen=True)
class OptionGroup:
    """A shared option group: how to build its spec and the doc fragment that documents
    it.

    ``libraries`` are the third-party imports every module of the group needs.  The
    ``k8s`` and ``s3`` groups have none here: their clients are made, and their
    libraries checked, on first use (``RecoveryModule.k8s_client``, ``.s3_store``).
    """

    fragment: str
    build: t.Callable[[], ArgumentSpec]
    libraries: t.Callable[[], t.Mapping[str, t.Optional[BaseException]]] = dict


def env(*names: str) -> t.Tuple[t.Any, t.List[str]]:
    """An option's ``fallback``: the first of the environment variables ``names``
    set."""
    return (env_fallback, list(names))


def k8s_auth() -> ArgumentSpec:
    """Kubernetes connection options, with the ``K8S_AUTH_*`` fallbacks of
    kubernetes.core."""
    path = {"type": "path"}
    return ArgumentSpec(
        {
            "kubeconfig": dict(path, fallback=env("K8S_AUTH_KUBECONFIG")),
            "context": {"type": "str", "fallback": env("K8S_AUTH_CONTEXT")},
            "host": {"type": "str", "fallback": env("K8S_AUTH_HOST")},
            "api_key": {
                "type": "str",
                "no_log": True,
                "fallback": env("K8S_AUTH_API_KEY"),
            },
            "ca_cert": dict(
                path, aliases=["ssl_ca_cert"], fallback=env("K8S_AUTH_SSL_CA_CERT")
            ),
            "client_cert": dict(
                path, aliases=["cert_file"], fallback=env("K8S_AUTH_CERT_FILE")
            ),
            "client_key": dict(
                path,
                aliases=["key_file"],
                no_log=False,
                fallback=env("K8S_AUTH_KEY_FILE"),
            ),
            "validate_certs": {
                "type": "bool",
                "aliases": ["verify_ssl"],
                "fallback": env("K8S_AUTH_VERIFY_SSL"),
            },
            "in_cluster": {
                "type": "bool",
                "default": False,
                "fallback": env("K8S_AUTH_IN_CLUSTER"),
            },
            "request_timeout": {"type": "float", "default": 30.0},
            "namespace": {
                "type": "str",
                "default": "default",
                "fallback": env("K8S_AUTH_NAMESPACE"),
            },
        },
        mutually_exclusive=[["in_cluster", "kubeconfig"], ["in_cluster", "context"]],
        required_together=[["client_cert", "client_key"]],
    )


def s3_auth() -> ArgumentSpec:
    """S3 endpoint and credentials, with the usual AWS environment fallbacks."""
    endpoint = env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT_URL")
    # An access key id alone grants nothing, but it names the credential: keep it
    # out of -vvv output too.
    secret = {"type": "str", "no_log": True}
    return ArgumentSpec(
        {
            "endpoint_url": {
                "type": "str",
                "aliases": ["s3_url"],
                "fallback": endpoint,
            },
            "access_key": dict(
                secret, aliases=["aws_access_key_id"], fallback=env("AWS_ACCESS_KEY_ID")
            ),
            "secret_key": dict(
                secret,
                aliases=["aws_secret_access_key"],
                fallback=env("AWS_SECRET_ACCESS_KEY"),
            ),
            "session_token": dict(
                secret, aliases=["aws_session_token"], fallback=env("AWS_SESSION_TOKEN")
            ),
            "region": {
                "type": "str",
                "fallback": env("AWS_REGION", "AWS_DEFAULT_REGION"),
            },
            "profile": {
                "type": "str",
                "aliases": ["aws_profile"],
                "fallback": env("AWS_PROFILE"),
            },
            "s3_validate_certs": {"type": "bool", "default": True},
            "s3_ca_bundle": {"type": "path", "fallback": env("AWS_CA_BUNDLE")},
        },
        required_together=[["access_key", "secret_key"]],
        mutually_exclusive=[["profile", "access_key"]],
    )


def wait() -> ArgumentSpec:
    """Options of modules that wait for the cluster to reach a state."""
    return ArgumentSpec(
        {
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 300},
            "wait_sleep": {"type": "int", "default": 2},
        }
    )


def components() -> ArgumentSpec:
    """The stack's components as the inventory lists them."""
    component = {
        "name": {"type": "str", "required": True},
        "kind": {
            "type": "str",
            "default": "Deployment",
            "choices": ["Deployment", "StatefulSet"],
        },
        "depends_on": {"type": "list", "elements": "str", "default": []},
        "replicas": {"type": "int"},
        "wait_timeout": {"type": "int"},
    }
    return ArgumentSpec(
        {
            "components": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": component,
            },
            "dependency_env": {"type": "str"},
        }
    )


def migration() -> ArgumentSpec:
    """Where a stack's migration Job template and its applied schema version live."""
    return ArgumentSpec(
        {
            "migration_configmap": {"type": "str"},
            "migration_key": {"type": "str", "default": "job.yaml", "no_log": False},
            "migration_template": {"type": "dict"},
            "migration_version": {"type": "str"},
            "migration_version_env": {
                "type": "str",
                "default": "TARGET_SCHEMA_VERSION",
            },
            "migration_selector": {"type": "str"},
            "schema_configmap": {"type": "str", "default": "rag-schema"},
            "schema_key": {"type": "str", "default": "version", "no_log": False},
        },
        mutually_exclusive=[["migration_configmap", "migration_template"]],
    )


def snapshot() -> ArgumentSpec:
    """Where a shard's snapshots live in S3 and how they move."""
    return ArgumentSpec(
        {
            "shard": {"type": "str", "required": True},
            "bucket": {"type": "str", "required": True},
            "prefix": {"type": "str", "default": "snapshots"},
            "part_size": {"type": "int", "default": 16},
            "concurrency": {"type": "int", "default": 4},
            "s3_read_timeout": {"type": "float", "default": 60.0},
            "s3_attempts": {"type": "int", "default": 5},
        }
    )


def generator() -> ArgumentSpec:
    """Where the generator's flags live, and whether to set them or put them back."""
    return ArgumentSpec(
        {
            "state": {
                "type": "str",
                "default": "present",
                "choices": ["present", "restored"],
            },
            "deployment": {"type": "str", "default": "generator"},
            "container": {"type": "str"},
            "flags_configmap": {"type": "str"},
        }
    )


def shard() -> ArgumentSpec:
    """How the stack labels its shards' pods (the stack contract)."""
    return ArgumentSpec({"shard_label": {"type": "str", "default": "ragops.io/shard"}})


def registry() -> ArgumentSpec:
    """The shard registry ConfigMap (the stack contract)."""
    return ArgumentSpec({"registry": {"type": "str", "default": "rag-shard-registry"}})


def yaml_library() -> t.Mapping[str, t.Optional[BaseException]]:
    # Imported here: only the modules of the migration group read YAML, and the
    # others need not import PyYAML to build their argument spec.
    from . import yaml_text

    return {yaml_text.YAML_REQUIREMENT: yaml_text.YAML_IMPORT_ERROR}


def zstd_library() -> t.Mapping[str, t.Optional[BaseException]]:
    """The library that snapshots are compressed with, for the snapshot modules' own
    check (imported when the check runs, after the argument check)."""
    from .snapshots import create

    return {create.ZSTD_REQUIREMENT: create.ZSTD_IMPORT_ERROR}


OPTION_GROUPS: t.Mapping[str, OptionGroup] = {
    "k8s": OptionGroup("ragops.recovery.k8s_auth", k8s_auth),
    "s3": OptionGroup("ragops.recovery.s3_auth", s3_auth),
    "wait": OptionGroup("ragops.recovery.wait", wait),
    "components": OptionGroup("ragops.recovery.components", components),
    "migration": OptionGroup("ragops.recovery.migration", migration, yaml_library),
    "snapshot": OptionGroup("ragops.recovery.snapshot", snapshot),
    "generator": OptionGroup("ragops.recovery.generator", generator),
    "shard": OptionGroup("ragops.recovery.shard", shard),
    "registry": OptionGroup("ragops.recovery.shard.registry", registry),
}
