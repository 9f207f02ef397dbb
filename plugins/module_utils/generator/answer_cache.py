# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generator's answer cache: known query ids and their answers, one ConfigMap key
per qid.

Values are JSON ``{"answer": text, "citations": [doc ids]}``, the format the generator
reads in ``cache`` fallback mode (see docs/provider-outage.md).
"""

from __future__ import annotations

import json
import re
import typing as t

from .. import yaml_text
from ..errors import RecoveryError
from ..k8s.client import K8sClient
from ..k8s.resources import MANAGED_BY, Ref

# ConfigMap keys: alphanumerics, '-', '_' and '.'.
KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
Obj = t.Dict[str, t.Any]


def load_answers(path: str) -> t.Dict[str, t.Any]:
    """A JSON or YAML file mapping qid to an answer (text, or ``{"answer",
    "citations"}``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise RecoveryError(
            "Failed to read the answer cache file %s: %s" % (path, error.strerror),
            resource=path,
            reason="unreadable",
        ) from None
    try:
        data = json.loads(text)
    except ValueError:
        data = _yaml(text, path)
    if not isinstance(data, dict):
        raise RecoveryError(
            "Failed to load the answer cache file %s: not a mapping of qid to answer"
            % path,
            resource=path,
            reason="invalid answer cache",
        )
    return data


def _yaml(text: str, path: str) -> t.Any:
    if yaml_text.YAML_IMPORT_ERROR is not None:
        raise RecoveryError(
            "Failed to load %s: not JSON, and PyYAML is missing to read YAML" % path,
            resource=path,
        ) from None
    try:
        return yaml_text.load(text)
    except yaml_text.YamlSyntaxError as error:
        raise RecoveryError(
            "Failed to load the answer cache file %s: %s" % (path, error), resource=path
        ) from None


def cache_data(
    answers: t.Mapping[str, t.Any], qids: t.Sequence[str] = ()
) -> t.Dict[str, str]:
    """ConfigMap data for ``answers`` (only ``qids`` when given); every problem
    reported at once."""
    problems = [qid for qid in qids if qid not in answers]
    data: t.Dict[str, str] = {}
    for qid, answer in answers.items():
        qid = str(qid)
        if qids and qid not in qids:
            continue
        if not KEY.match(qid):
            problems.append("%s (not a valid ConfigMap key)" % qid)
            continue
        if isinstance(answer, str):
            answer = {"answer": answer, "citations": []}
        if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
            problems.append("%s (no answer text)" % qid)
            continue
        entry = {
            "answer": answer["answer"],
            "citations": [str(c) for c in answer.get("citations") or []],
        }
        data[qid] = json.dumps(entry, sort_keys=True)
    if problems:
        raise RecoveryError(
            "Failed to build the answer cache: %d problem(s): %s"
            % (len(problems), ", ".join(problems[:10])),
            reason="invalid answers",
            next_step="Fix the answers file (or the qids asked for) and re-run.",
        )
    return data


def write_cache(
    client: K8sClient,
    namespace: str,
    name: str,
    data: t.Dict[str, str],
    check_mode: bool,
) -> t.Tuple[bool, t.Dict[str, str]]:
    """Create or update the cache ConfigMap to hold exactly ``data``; whether it
    changed and what it held."""
    ref = Ref("ConfigMap", name, namespace)
    current = client.get_or_none(ref)
    if current is None:
        client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "data": data,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(MANAGED_BY),
                },
            },
            dry_run=check_mode,
        )
        return True, {}

    def mutate(obj: Obj) -> Obj | None:
        if (obj.get("data") or {}) == data:
            return None
        obj["data"] = data
        return obj

    return client.update(ref, mutate, dry_run=check_mode).changed, dict(
        current.get("data") or {}
    )
