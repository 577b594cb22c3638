"""What a pass and `siyu sync` say when the wecom output cannot work: one clause an operator can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbooks_fixtures import add_contacts, invoke, write_playbook
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, customers
from tests.wecom_fake import WecomFake


def test_a_wrong_secret_is_one_clause_stopped_not_also_paused_and_retrying(wecom_corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    named = {**MASS, "id": "named", "text": "{{ contact.name }}，福利今晚截止～"}
    write_playbook(wecom_corp, beats=[named], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(wecom_corp / "siyu.db", customers(6))
    monkeypatch.setenv("SIYU_WECOM_SECRET", "wrong")
    line, *rest = invoke("run", "--once", "--now", "2026-12-01 12:31", code=1).stderr.splitlines()
    assert "stopped wecom: its setup is wrong (6 draft(s) wait for a pass after the fix)" in line
    assert "paused" not in line and "retrying" not in line
    assert rest[0].strip().startswith("error: wecom:") and "40001" in rest[0]  # a setup error, not a failed draft


def test_sync_refuses_a_store_that_does_not_exist_and_creates_none(wecom_corp: Path) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}])
    result = invoke("sync", "--db", "sium.db", code=1)
    assert "sium.db: no such store" in result.stderr and "siyu run" in result.stderr
    assert not (wecom_corp / "sium.db").exists()


def test_a_playbook_that_does_not_load_creates_no_store(wecom_corp: Path) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=[{**PERSONAS[0], "wecom_userid": "a qi"}], outputs=[{"type": "wecom"}])
    result = invoke("run", "--once", "--now", "2026-12-01 12:31", "--db", "s.db", code=1)
    assert "wecom_userid" in result.stderr
    assert not (wecom_corp / "s.db").exists()
