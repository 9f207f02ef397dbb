# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fakes behind every module's clients, each patched in the one place that makes it."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.k8s import transport
from ansible_collections.ragops.recovery.plugins.module_utils.snapshots import s3
from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)


@pytest.fixture
def k8s_api(monkeypatch: pytest.MonkeyPatch) -> FakeTransport:
    """An in-memory Kubernetes API behind ``RecoveryModule.k8s_client()``."""
    fake = FakeTransport()
    monkeypatch.setattr(transport, "connect", lambda params: fake)
    return fake


@pytest.fixture
def s3_api(monkeypatch: pytest.MonkeyPatch) -> FakeS3:
    """An in-memory S3 behind ``RecoveryModule.s3_store()`` and the restore Job's entry point."""
    fake = FakeS3()
    monkeypatch.setattr(s3, "connect", lambda params, transfer: fake)
    return fake
