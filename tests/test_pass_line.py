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


def test_an_unreachable_wecom_reads_retrying_not_error(wecom_corp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}])
    add_contacts(wecom_corp / "siyu.db", customers(3))
    monkeypatch.setenv("SIYU_WECOM_API", "http://127.0.0.1:9")
    lines = invoke("run", "--once", "--now", "2026-12-01 12:31").stderr.splitlines()  # exit 0: tried again later
    assert "retrying 3 later" in lines[0]
    assert lines[1].strip().startswith("retrying: wecom:") and lines[1].rstrip().endswith("3 draft(s) retry later")


def test_a_rehearsal_clock_against_wecom_itself_is_refused_or_warned(wecom_corp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}])
    add_contacts(wecom_corp / "siyu.db", customers(3))
    monkeypatch.delenv("SIYU_WECOM_API")  # WeCom's public API: nothing below may reach it
    fast = invoke("run", "--clock", "fast", code=2)
    assert "would hand every task of the campaign to the real corp" in fast.stderr and "SIYU_WECOM_API" in fast.stderr
    # Before the campaign starts nothing is due and no task is open, so the pass calls no API: only the warning.
    early = invoke("run", "--once", "--now", "2026-11-20 09:00")
    assert "warning: --now is" in early.stderr and "real tasks" in early.stderr
    assert "warning: --now" in invoke("sync", "--now", "2026-11-20 09:00").stderr
    for spelling in ("http://QYAPI.weixin.qq.com", "https://qyapi.weixin.qq.com:443/", "https://qyapi.weixin.qq.com."):  # WeCom's own host however it is written
        monkeypatch.setenv("SIYU_WECOM_API", spelling)
        assert "real corp" in invoke("run", "--clock", "fast", code=2).stderr
    monkeypatch.setenv("SIYU_WECOM_API", "http://127.0.0.1:9")  # a server of the user's own: their choice
    assert "warning" not in invoke("run", "--once", "--now", "2026-11-20 09:00").stderr


def test_two_wecom_outputs_whose_variables_hold_one_corp_id_are_refused_before_anything_is_sent(wecom_corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}, {"type": "wecom", "corp_id_env": "CORP_B"}])
    add_contacts(wecom_corp / "siyu.db", customers(3))
    monkeypatch.setenv("CORP_B", wecom.corp_id)
    result = invoke("run", "--once", "--now", "2026-12-01 12:31", code=1)
    said = " ".join(result.stderr.split())
    assert "outputs wecom and wecom:2 are both corp" in said and "SIYU_WECOM_CORP_ID and CORP_B hold the same value" in said and "created twice" in said
    assert wecom.templates == {} and wecom.count("gettoken") == 0


def test_a_mass_send_resumed_after_a_crash_says_how_many_went_in_the_part_the_dead_run_made(wecom_corp: Path, wecom: WecomFake) -> None:
    from tests.test_wecom_audit import killed_in_second_part
    from tests.test_wecom_dispatch import at

    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(wecom_corp / "siyu.db", customers(10_003))
    wecom.now = at("2026-12-01 12:31")
    killed_in_second_part(wecom_corp, wecom, "2026-12-01 12:31", process=False)  # part 1 (10,000) made; part 2 never was
    [line] = [said for said in invoke("run", "--once", "--now", "2026-12-01 12:35").stderr.splitlines() if " · recorded " in said]
    assert "sent 10003 in 1 task(s) 任务 (10000 of them in part(s) made before)" in line
    assert "made 1 missing part(s) now" in line
    assert sorted(len(task.recipients) for task in wecom.templates.values()) == [3, 10_000]
