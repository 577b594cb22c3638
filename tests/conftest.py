"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.wecom_fake import WecomFake


@pytest.fixture
def wecom(monkeypatch: pytest.MonkeyPatch) -> Iterator[WecomFake]:
    """The fake WeCom server API on 127.0.0.1, with SIYU_WECOM_API and the wecom output's default
    SIYU_WECOM_CORP_ID / SIYU_WECOM_SECRET pointing at it."""
    from tests.wecom_fake import WecomFake

    with WecomFake() as fake:
        monkeypatch.setenv("SIYU_WECOM_API", fake.url)
        monkeypatch.setenv("SIYU_WECOM_CORP_ID", fake.corp_id)
        monkeypatch.setenv("SIYU_WECOM_SECRET", fake.secret)
        yield fake
