# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's tests run over an in-memory S3 of their own."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.recovery.plugins.module_utils.snapshots.s3 import (
    S3Store,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.fake_s3 import (
    FakeS3,
)
from ansible_collections.ragops.recovery.tests.unit.plugins.module_utils.snapshots.helpers import (
    store,
)


@pytest.fixture
def fake() -> FakeS3:
    return FakeS3()


@pytest.fixture
def s3(fake: FakeS3) -> S3Store:
    """A store over ``fake`` with 8 MiB parts."""
    return store(fake, part_size=8 << 20)
