"""`siyu check --db`: contacts whose account is no persona's, where a beat, journey or welcome sends by the contact's account.

Such a contact gets those from the first persona (Planner.account_personas): WeCom hands the task back
(fail_list: not a friend), and the outbox has a person send from an account the contact never added."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.playbooks_fixtures import NOON_1V1, add_contacts, invoke, write_playbook

CONTACTS = [
    {"contact_id": "c1", "account": "wx_host_01"},
    {"contact_id": "c2", "account": "wx_adv_02"},
    {"contact_id": "c3", "account": "li"},
    {"contact_id": "c4", "account": "li"},
    {"contact_id": "c5", "account": "wang"},
    {"contact_id": "c6", "account": ""},
]


def _unmatched(root: Path, *args: str) -> list[dict[str, Any]]:
    result = invoke("check", "--db", str(root / "siyu.db"), "--json", *args)
    return [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "account-unmatched"]


def test_contacts_of_an_account_no_persona_has_are_named_with_what_happens(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], outputs=[{"type": "wecom"}], personas=[
        {"id": "host", "name": "小丸子", "account": "wx_host_01", "wecom_userid": "xiaowanzi"},
        {"id": "advisor", "name": "李老师", "account": "wx_adv_02", "wecom_userid": "lilaoshi"},
    ])  # fmt: skip
    add_contacts(tmp_path / "siyu.db", CONTACTS)
    (problem,) = _unmatched(tmp_path, str(tmp_path / "playbook.yaml"))
    assert problem["severity"] == "warning" and problem["path"] == "personas"
    assert problem["message"].startswith("2 contacts' account li, 1 contact's account wang, 1 with no account: beat noon names no persona"), problem
    assert "from persona host (小丸子), the first, by default" in problem["message"] and "fail_list: not a friend" in problem["message"]
    assert "account: li" in problem["hint"]
    # A contact's account may be the staff member's userid (添加人账号 in WeCom's 客户列表).
    add_contacts(tmp_path / "userids.db", [{"contact_id": "c1", "account": "xiaowanzi"}, {"contact_id": "c2", "account": "lilaoshi"}])
    result = invoke("check", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "userids.db"), "--json")
    assert not [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "account-unmatched"]


def test_without_the_wecom_output_the_outbox_would_send_from_an_account_never_added(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[NOON_1V1])
    add_contacts(tmp_path / "siyu.db", CONTACTS)
    (problem,) = _unmatched(tmp_path, str(path))
    assert problem["severity"] == "warning" and "a person would send them from host's account" in problem["message"], problem
    result = invoke("check", str(path), "--db", str(tmp_path / "siyu.db"))
    assert "warning: personas: 2 contacts' account li" in result.stderr


def test_nothing_to_say_when_every_sender_is_named_or_there_is_one_persona(tmp_path: Path) -> None:
    add_contacts(tmp_path / "siyu.db", CONTACTS)
    path = write_playbook(tmp_path, beats=[{**NOON_1V1, "persona": "host"}])
    assert not _unmatched(tmp_path, str(path))
    path = write_playbook(tmp_path, beats=[NOON_1V1], personas=[{"id": "host", "name": "小丸子", "account": "wx_host_01"}])
    assert not _unmatched(tmp_path, str(path))
    # Contacts outside the beat's audience are not its business.
    path = write_playbook(tmp_path, beats=[{**NOON_1V1, "audience": "已购"}])
    assert not _unmatched(tmp_path, str(path))


def test_a_journey_with_no_persona_sends_by_account_to_any_contact(tmp_path: Path) -> None:
    journey = {"id": "ladder", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "1d", "text": "您好"}]}
    path = write_playbook(tmp_path, beats=[{**NOON_1V1, "persona": "host", "audience": "已购"}], journeys=[journey])
    add_contacts(tmp_path / "siyu.db", CONTACTS)
    (problem,) = _unmatched(tmp_path, str(path))
    assert "journey ladder names no persona" in problem["message"], problem
    assert not _unmatched(tmp_path, str(write_playbook(tmp_path, beats=[], journeys=[{**journey, "persona": "advisor"}])))


def test_account_cap_counts_a_beat_with_no_persona_against_each_contacts_own_account(tmp_path: Path) -> None:
    personas = [{"id": "host", "name": "阿栖", "account": "wx_host_01"}, {"id": "advisor", "name": "周老师", "account": "wx_adv_01"}]
    beat = {"id": "close", "title": "结营福利", "at": "12:30", "days": "1", "channel": "private", "audience": "家长", "text": "福利今晚截止～"}
    path = write_playbook(tmp_path, beats=[beat], days=1, personas=personas, limits={"private_per_account_per_day": 3})
    db = tmp_path / "s.db"
    add_contacts(db, [{"contact_id": f"c{i}", "name": f"客{i}", "tags": ["家长"], "account": "wx_host_01" if i < 3 else "wx_adv_01"} for i in range(6)])
    found = json.loads(invoke("check", str(path), "--db", str(db), "--json").stdout)["files"][0]["problems"]
    assert [p for p in found if p["code"] == "account-cap"] == []  # 3 from each account: at the cap, not over (6 from host was the old count)
