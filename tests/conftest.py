"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
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


@pytest.fixture
def wecom_corp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wecom: WecomFake) -> Path:
    """A campaign folder as the working directory (its ./siyu.db the store), no SIYU_DB or SIYU_PLAYBOOK from the
    environment, and the fake's clock at 2026-12-01 12:00 Asia/Shanghai."""
    from tests.playbooks_fixtures import SHANGHAI

    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    wecom.now = datetime(2026, 12, 1, 12, 0, tzinfo=SHANGHAI).timestamp()
    return tmp_path
