# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""evidence_collect through main(): a write-once bundle with a SHA-256 manifest."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
import typing as t
from pathlib import Path

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.shards import admin
from ansible_collections.ragops.recovery.plugins.module_utils.shards.admin import Answer
from ansible_collections.ragops.recovery.plugins.modules import evidence_collect
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main

NS = "/api/v1/namespaces/rag"
run = functools.partial(
    run_main, evidence_collect, namespace="rag", shard="shard-2", incident_id="INC-9"
)


@pytest.fixture
def api(k8s_api: FakeTransport, monkeypatch: pytest.MonkeyPatch) -> FakeTransport:
    fake = k8s_api
    fake.add(
        NS + "/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "vectorstore-2",
                "namespace": "rag",
                "labels": {"ragops.io/shard": "shard-2"},
                "managedFields": [{"manager": "x"}],
            },
            "spec": {
                "containers": [
                    {
                        "name": "shard",
                        "env": [
                            {"name": "API_KEY", "value": "s3cr3t-value"},
                            {"name": "DATA_DIR", "value": "/data"},
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "data",
                        "persistentVolumeClaim": {"claimName": "data-vectorstore-2"},
                    }
                ],
            },
            "status": {"phase": "Running", "podIP": "10.0.0.7"},
        },
    )
    fake.add(
        NS + "/persistentvolumeclaims",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-vectorstore-2", "namespace": "rag"},
        },
    )
    fake.add(
        NS + "/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rag-shard-registry", "namespace": "rag"},
            "data": {"shard-2": json.dumps({"state": "serving"})},
        },
    )
    fake.add(
        NS + "/events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "rag"},
            "involvedObject": {"name": "vectorstore-2"},
            "message": "Readiness probe failed",
        },
    )
    fake.add(
        NS + "/events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e2", "namespace": "rag"},
            "involvedObject": {"name": "other"},
            "message": "unrelated",
        },
    )
    fake.logs[NS + "/pods/vectorstore-2/log"] = '{"event": "index_load_failed"}\n'
    monkeypatch.setattr(
        admin,
        "http_call",
        lambda method, url, body, timeout: Answer(
            503, {"ready": False, "reason": "corrupt"}
        ),
    )
    return fake


def test_bundle_written_once_with_manifest(
    api: FakeTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = run(capsys, dest=str(tmp_path), _ansible_check_mode=True)
    assert planned["changed"] is True and not list(tmp_path.iterdir())
    result = run(capsys, dest=str(tmp_path))
    bundle = Path(result["evidence"]["path"])
    assert bundle == tmp_path / "INC-9" / "evidence-shard-2.tar.gz"
    data = bundle.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result["evidence"]["sha256"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {
            m.name: t.cast(t.IO[bytes], tar.extractfile(m)).read()
            for m in tar.getmembers()
        }
    manifest = json.loads(members.pop("MANIFEST.json"))
    assert set(manifest["files"]) == set(members)
    for name, content in members.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(content).hexdigest()
    assert b"index_load_failed" in members["logs/vectorstore-2/shard.log"]
    assert (
        b"Readiness probe failed" in members["events.yaml"]
        and b"unrelated" not in members["events.yaml"]
    )
    assert b"s3cr3t-value" not in members["objects/pod-vectorstore-2.yaml"]
    assert b"managedFields" not in members["objects/pod-vectorstore-2.yaml"]
    assert b"data-vectorstore-2" in members["objects/pvc-data-vectorstore-2.yaml"]
    assert b"corrupt" in members["health/vectorstore-2.json"]
    assert b"shard-2" in members["registry.yaml"]
    assert (tmp_path / "INC-9" / "evidence-shard-2.manifest.json").exists()

    again = run(capsys, dest=str(tmp_path))
    assert again["changed"] is False and again["evidence"]["existed"] is True
    assert bundle.read_bytes() == data


def test_needs_a_destination(
    api: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys)
    assert result["failed"] is True and "dest, bucket" in result["msg"]


def test_incident_id_cannot_escape_the_folder(
    api: FakeTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, dest=str(tmp_path), incident_id="../x")
    assert result["failed"] is True and "Invalid incident_id" in result["msg"]


def test_documents_alone_go_into_the_same_write_once_store(
    k8s_api: FakeTransport, s3_api: FakeS3, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "namespace": "rag",
        "incident_id": "INC-C1",
        "name": "evidence-stack",
        "bucket": "snaps",
        "access_key": "AK",
        "secret_key": "SK",
        "documents": {
            "stack-before.json": {"diagnosis": {"cause": "pending_migration"}},
            "notes/cause.txt": "schema 1 < 2\n",
        },
    }
    planned = run_main(evidence_collect, capsys, _ansible_check_mode=True, **args)
    assert planned["changed"] is True and s3_api.objects == {}
    written = run_main(evidence_collect, capsys, **args)
    key = "evidence/INC-C1/evidence-stack.tar.gz"
    written_bundle = s3_api.objects[key]
    assert written["evidence"]["s3_uri"] == "s3://snaps/" + key
    with tarfile.open(fileobj=io.BytesIO(s3_api.objects[key])) as tar:
        members = {
            m.name: t.cast(t.IO[bytes], tar.extractfile(m)).read()
            for m in tar.getmembers()
        }
    manifest = json.loads(members.pop("MANIFEST.json"))
    assert set(members) == {"stack-before.json", "notes/cause.txt"}
    assert manifest["shard"] is None and manifest["incident_id"] == "INC-C1"
    assert json.loads(members["stack-before.json"])["diagnosis"]["cause"] == (
        "pending_migration"
    )
    assert members["notes/cause.txt"] == b"schema 1 < 2\n"
    assert k8s_api.calls == []  # nothing read from the cluster
    changed = {**args, "documents": {"stack-before.json": {"later": True}}}
    again = run_main(evidence_collect, capsys, **changed)
    assert again["changed"] is False and again["evidence"]["existed"] is True
    assert s3_api.objects[key] == written_bundle  # the first evidence is kept


@pytest.mark.parametrize(
    "name", ["../x.json", "/etc/x", "a//b", ".hidden", "MANIFEST.json"]
)
def test_a_document_name_that_is_no_plain_relative_path_is_refused(
    k8s_api: FakeTransport,
    tmp_path: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_main(
        evidence_collect,
        capsys,
        incident_id="INC-C1",
        dest=str(tmp_path),
        documents={name: "x"},
    )
    assert result["failed"] is True and "Invalid document names" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_needs_a_shard_or_documents(
    k8s_api: FakeTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_main(
        evidence_collect, capsys, incident_id="INC-C1", dest=str(tmp_path)
    )
    assert result["failed"] is True and "shard, documents, files" in result["msg"]


def test_files_go_into_the_bundle_and_an_unreadable_one_is_noted(
    k8s_api: FakeTransport,
    tmp_path: Path,
    s3_api: FakeS3,
    capsys: pytest.CaptureFixture[str],
) -> None:
    postmortem = tmp_path / "postmortem.md"
    postmortem.write_text("# INC-C1\n\n## Follow-up\n")
    args = {
        "namespace": "rag",
        "incident_id": "INC-C1",
        "name": "postmortem-bootstrap-20261207T100000Z",
        "bucket": "snaps",
        "access_key": "AK",
        "secret_key": "SK",
        "documents": {"outcome.json": {"outcome": "recovered"}},
        "files": {
            "postmortem.md": str(postmortem),
            "timeline.json": str(tmp_path / "timeline" / "timeline.json"),
        },
    }
    written = run_main(evidence_collect, capsys, **args)
    key = "evidence/INC-C1/postmortem-bootstrap-20261207T100000Z.tar.gz"
    assert written["evidence"]["s3_uri"] == "s3://snaps/" + key
    with tarfile.open(fileobj=io.BytesIO(s3_api.objects[key])) as tar:
        members = {
            m.name: t.cast(t.IO[bytes], tar.extractfile(m)).read()
            for m in tar.getmembers()
        }
    assert members["postmortem.md"] == b"# INC-C1\n\n## Follow-up\n"
    assert b"timeline.json: not read from" in members["errors.txt"]
    assert "timeline.json" not in members and "outcome.json" in members
    manifest = json.loads(members["MANIFEST.json"])
    assert set(manifest["files"]) == {"postmortem.md", "outcome.json", "errors.txt"}
    # Written once: a second run with another postmortem keeps the first.
    postmortem.write_text("changed")
    again = run_main(evidence_collect, capsys, **args)
    assert again["changed"] is False and again["evidence"]["existed"] is True


def test_a_name_given_as_document_and_file_is_refused(
    k8s_api: FakeTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_main(
        evidence_collect,
        capsys,
        incident_id="INC-C1",
        dest=str(tmp_path / "out"),
        documents={"postmortem.md": "x"},
        files={"postmortem.md": str(tmp_path / "p.md")},
    )
    assert result["failed"] is True and "given both" in result["msg"]
    assert not (tmp_path / "out").exists()


def test_a_file_name_that_is_no_plain_relative_path_is_refused(
    k8s_api: FakeTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_main(
        evidence_collect,
        capsys,
        incident_id="INC-C1",
        dest=str(tmp_path),
        files={"../postmortem.md": str(tmp_path / "p.md")},
    )
    assert result["failed"] is True and "Invalid document names" in result["msg"]
