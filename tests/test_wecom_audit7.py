"""What audit 7 of the wecom output found, each through the CLI against the fake WeCom (time injected, never slept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbooks_fixtures import add_contacts, states, write_playbook
from tests.test_wecom_audit import killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, at, customers, once
from tests.wecom_fake import WecomFake

SKEW = 420.0  # this machine's clock 7 minutes ahead of WeCom's


@pytest.fixture
def corp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wecom: WecomFake) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    wecom.now = at("2026-12-01 12:31")
    return tmp_path


def test_a_task_in_doubt_is_found_though_wecoms_clock_is_7_minutes_off(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    wecom.now = at("2026-12-01 12:31") - SKEW
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")  # WeCom made it at its 12:24
    wecom.now = at("2026-12-01 12:33") - SKEW
    again = once("2026-12-01 12:33")
    assert again["readback"] == {"found": 1}
    assert len(wecom.templates) == 1  # one mass send, not two
    assert states(corp / "siyu.db") == {"sent": 4}
