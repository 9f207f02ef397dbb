"""Run a job template of extensions/awx/ the way AWX runs a job, without an AWX server.

AWX turns a launch into an ansible-runner private data directory (awx/main/tasks/jobs.py): the project's
checkout with the collections its sync installed, the inventory as a script, the extra variables (the
template's, the survey's defaults and answers) written with AWX's safe_dump, and each credential's
injectors: files under env/, environment variables, extra variables in a file given with ``-e @``
(CredentialType.inject_credential, awx/main/models/credential.py). This builds the same directory and
runs ``ansible-runner run`` on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml
from awx_rules import launch_extra_vars, safe_dump
from harness import BIN, ROOT
from jinja2 import nativetypes, sandbox

AWX_DIR = ROOT / "extensions" / "awx"
Obj = dict[str, t.Any]


class Unsafe(str):
    """A string tagged !unsafe in the definitions: an AWX template, not rendered when they are read."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))


def _render(value: t.Any, names: Obj) -> t.Any:
    if isinstance(value, dict):
        return {key: _render(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, names) for item in value]
    if isinstance(value, str) and not isinstance(value, Unsafe):
        text = jinja2.Template(value, undefined=jinja2.StrictUndefined).render(**names)
        whole = value.strip()
        if whole.startswith("{{") and whole.endswith("}}") and whole.count("{{") == 1:
            # As Ansible templates a value that is one expression: to the expression's type (a list, ...).
            native = nativetypes.NativeEnvironment(undefined=jinja2.StrictUndefined).from_string(whole)
            found = native.render(**names)
            return text if isinstance(found, str) else found
        return text
    return value


def definitions(names: Obj) -> Obj:
    """Every list of extensions/awx/ (controller_templates, ...), with the ragops_awx_* names filled in."""
    found: Obj = {}
    for name in ("credential_types", "job_templates", "schedules", "workflows", "notifications"):
        found.update(yaml.load((AWX_DIR / ("%s.yml" % name)).read_text(), Loader=_Loader))
    return t.cast(Obj, _render(found, names))


@dataclass
class Credential:
    """A credential: its type's definition and its inputs."""

    credential_type: Obj
    inputs: Obj


@dataclass
class Injected:
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def inject(credential: Credential, private_data_dir: Path, injected: Injected) -> None:
    """CredentialType.inject_credential: files first (their paths in tower.filename), then env and extra vars."""
    env_dir = private_data_dir / "env"
    kind = credential.credential_type
    namespace: Obj = {"tower": {}}
    for item in kind["inputs"].get("fields", []):
        value = credential.inputs.get(item["id"], item.get("default"))
        if value not in (None, ""):
            namespace[item["id"]] = value
    render = sandbox.ImmutableSandboxedEnvironment()
    files: Obj = {}
    for label, template in kind["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as out:
            out.write(render.from_string(template).render(**namespace))
        os.chmod(path, 0o600)
        if "." in label:
            files[label.split(".", 1)[1]] = path
        else:
            namespace["tower"]["filename"] = path
    if files:
        namespace["tower"]["filename"] = files
    for name, template in kind["injectors"].get("env", {}).items():
        injected.env[name] = render.from_string(template).render(**namespace)
    extra = {name: render.from_string(template).render(**namespace)
             for name, template in kind["injectors"].get("extra_vars", {}).items()}
    if extra:
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as out:
            out.write(safe_dump(extra))
        os.chmod(path, 0o400)
        injected.args += ["-e", "@%s" % path]


def inventory_script(hosts: dict[str, Obj], group: str) -> str:
    """The inventory as AWX hands it to a job: a script printing the inventory's JSON."""
    data = {"all": {"children": [group]}, group: {"hosts": sorted(hosts), "vars": {}},
            "_meta": {"hostvars": hosts}}
    return "#! %s\n# -*- coding: utf-8 -*-\nprint(%r)\n" % (BIN / "python", json.dumps(data))


@dataclass
class Job:
    """A finished job: ansible-runner's exit code, its stdout, events and the artifacts (set_stats)."""

    private_data_dir: Path
    returncode: int
    stdout: str
    events: list[Obj]

    @property
    def artifacts(self) -> Obj:
        stats = [event for event in self.events if event["event"] == "playbook_on_stats"]
        return t.cast(Obj, stats[-1]["event_data"]["artifact_data"]) if stats else {}


def launch(private_data_dir: Path, project: Path, collections: Path, template: Obj, answers: Obj,
           credentials: list[Credential], hosts: dict[str, Obj], task_env: dict[str, str],
           job_id: int = 1) -> Job:
    """Build the private data directory for one launch of ``template`` and run it with ansible-runner."""
    shutil.copytree(project, private_data_dir / "project", symlinks=True)
    (private_data_dir / "requirements_collections").symlink_to(collections)
    for sub in ("env", "inventory"):
        (private_data_dir / sub).mkdir(parents=True, exist_ok=True)
    hosts_file = private_data_dir / "inventory" / "hosts"
    hosts_file.write_text(inventory_script(hosts, "rag_stacks"))
    hosts_file.chmod(0o700)
    template_vars = yaml.safe_load(template.get("extra_vars") or "{}") or {}
    extra = launch_extra_vars(template["survey_spec"], template_vars, answers) if template.get(
        "survey_enabled") else dict(template_vars, **answers)
    extra.update({"awx_job_id": job_id, "awx_job_template_name": template["name"]})
    (private_data_dir / "env" / "extravars").write_text(safe_dump(extra, safe=template_vars))
    injected = Injected()
    for credential in credentials:
        inject(credential, private_data_dir, injected)
    args = list(injected.args)
    if template.get("job_type") == "check":
        args.append("--check")
    (private_data_dir / "env" / "cmdline").write_text(" ".join(args))
    env = dict(task_env, **injected.env, JOB_ID=str(job_id), ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_COLLECTIONS_PATH=str(private_data_dir / "requirements_collections"))
    (private_data_dir / "env" / "envvars").write_text(yaml.safe_dump(env))
    done = subprocess.run([str(BIN / "ansible-runner"), "run", str(private_data_dir), "-p", template["playbook"],
                           "--ident", str(job_id)],
                          env={"PATH": "%s:/usr/bin:/bin" % BIN, "HOME": str(private_data_dir),
                               "LANG": os.environ.get("LANG", "C.UTF-8")},
                          capture_output=True, text=True, timeout=900, check=False)
    files = (private_data_dir / "artifacts").glob("*/job_events/*.json")
    events = sorted((json.loads(path.read_text()) for path in files), key=lambda event: int(event["counter"]))
    return Job(private_data_dir, done.returncode, done.stdout + done.stderr, events)
