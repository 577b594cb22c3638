"""The add's welcomes that miss their WelcomeCode at night go at the end of quiet hours as one WeCom task (audit 8 #10),
through the CLI against the fake WeCom (time injected, never slept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import test_wecom_audit
from tests.playbooks_fixtures import add_contacts, invoke, query, states, write_playbook
from tests.test_wecom_audit import killed_in_second_part, killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, at, customers, once
from tests.wecom_fake import WecomFake

corp = test_wecom_audit.corp  # the fixture: a folder for a campaign on the fake corp
HELLO = "你好呀，我是阿栖～包裹卡的福利已经发你啦"
QUIET = {"quiet_hours": "22:30-08:00"}


def hook(text: str = HELLO) -> dict[str, Any]:
    return {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": text}]}


def night_adds(n: int, *, first: int = 0) -> list[dict[str, Any]]:
    """Adds from 01:00 local on 12-02 (17:00Z on 12-01), a minute apart, none with a WelcomeCode (an import, or serve down)."""
    return [
        {"contact_id": f"wmN{i:03d}", "name": f"夜{i}", "tags": [], "source": "EYE100", "account": "wx_host_01", "added_at": f"2026-12-01T17:{i % 60:02d}:00Z"}
        for i in range(first, first + n)
    ]


def night(corp: Path, wecom: WecomFake, n: int, text: str = HELLO) -> None:
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook(text)], outputs=[{"type": "wecom"}], limits=QUIET)
    add_contacts(corp / "siyu.db", night_adds(n))
    for moment in ("2026-12-02 01:30", "2026-12-02 03:00"):  # cron's passes in the night: each welcome waits for 08:00
        wecom.now = at(moment)
        assert once(moment)["sent"] == 0
    assert not wecom.templates


def test_the_nights_welcomes_without_a_code_go_at_the_end_of_quiet_hours_as_one_task(corp: Path, wecom: WecomFake) -> None:
    night(corp, wecom, 12)
    assert query(corp / "siyu.db", "SELECT COUNT(DISTINCT send_key), COUNT(*), MIN(due_at), MAX(due_at) FROM drafts WHERE state = 'pending'") == [
        (1, 12, "2026-12-02T00:00:00Z", "2026-12-02T00:00:00Z")
    ]
    wecom.now = at("2026-12-02 08:00")
    summary = once("2026-12-02 08:00")
    assert (summary["sent"], summary["tasks"]) == (12, 1)
    [task] = wecom.templates.values()  # one notification on aqi's phone, not twelve
    assert sorted(task.recipients) == [f"wmN{i:03d}" for i in range(12)] and task.sender == "aqi" and task.text == HELLO
    assert wecom.count("externalcontact/send_welcome_msg") == 0
    assert query(corp / "siyu.db", "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM drafts WHERE state = 'sent'") == [(12, 1)]  # a row per recipient, one task

    wecom.confirm(task.msgid, "aqi", at=at("2026-12-02 08:20"))
    wecom.now = at("2026-12-02 08:30")
    assert once("2026-12-02 08:30")["readback"] == {"sent": 12}
    sop = json.loads(invoke("report", "sop", "--json").stdout)
    assert (sop["tasks"]["tasks"], sop["tasks"]["tasks_done"], sop["tasks"]["recipients_reached"]) == (1, 1, 12)
    [aqi] = sop["staff"]
    assert (aqi["staff"], aqi["tasks"], aqi["recipients_reached"]) == ("aqi", 1, 12)


def test_a_welcome_that_names_the_contact_stays_one_task_per_customer(corp: Path, wecom: WecomFake) -> None:
    night(corp, wecom, 3, text="{{ contact.name }}，你好呀，我是阿栖～")
    assert query(corp / "siyu.db", "SELECT COUNT(DISTINCT send_key) FROM drafts") == [(3,)]  # a task per rendered text
    wecom.now = at("2026-12-02 08:01")
    summary = once("2026-12-02 08:01")
    assert (summary["sent"], summary["tasks"]) == (3, 3)
    assert sorted((list(t.recipients), t.text) for t in wecom.templates.values()) == [([f"wmN{i:03d}"], f"夜{i}，你好呀，我是阿栖～") for i in range(3)]


def test_a_live_code_still_welcomes_at_once_and_the_nights_other_adds_wait_together(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli.store import open_store

    night(corp, wecom, 4)
    add_contacts(corp / "siyu.db", [{"contact_id": "wmLIVE", "name": "醒着", "tags": [], "source": "EYE100", "account": "wx_host_01", "added_at": "2026-12-01T19:00:00Z"}])
    wecom.now = at("2026-12-02 03:00")
    code = wecom.welcome_code("aqi", "wmLIVE")
    db = open_store(str(corp / "siyu.db"))
    db.execute("INSERT INTO wecom_welcome_codes (code, contact_id, userid, received_at) VALUES (?, 'wmLIVE', 'aqi', '2026-12-01T19:00:00Z')", [code])
    db.conn.commit()
    assert once("2026-12-02 03:00:05")["sent"] == 1  # within the code's 20 s: the welcome itself, quiet hours or not
    assert [c.body["welcome_code"] for c in wecom.of("externalcontact/send_welcome_msg")] == [code] and not wecom.templates
    wecom.now = at("2026-12-02 08:00")
    assert once("2026-12-02 08:00")["tasks"] == 1
    [task] = wecom.templates.values()
    assert sorted(task.recipients) == [f"wmN{i:03d}" for i in range(4)]


def test_kill_9_while_wecom_makes_the_mornings_welcome_task_finds_it_instead_of_making_a_second(corp: Path, wecom: WecomFake) -> None:
    night(corp, wecom, 6)
    wecom.now = at("2026-12-02 08:00")
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-02 08:00")  # WeCom made it; its msgid never reached the ledger
    assert states(corp / "siyu.db") == {"claimed": 6}
    wecom.now = at("2026-12-02 08:05")
    again = once("2026-12-02 08:05")
    assert again["readback"] == {"found": 1} and again["recovered"] == 6
    [task] = wecom.templates.values()  # found through get_groupmsg_list_v2, not made again
    assert sorted(task.recipients) == [f"wmN{i:03d}" for i in range(6)]
    assert states(corp / "siyu.db") == {"sent": 6}
    assert query(corp / "siyu.db", "SELECT task_id, recipients FROM wecom_tasks") == [(query(corp / "siyu.db", "SELECT MIN(task_id) FROM drafts")[0][0], 6)]


def test_a_welcome_whose_code_wecom_calls_expired_joins_the_mornings_task(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli.store import open_store

    night(corp, wecom, 3)
    add_contacts(corp / "siyu.db", [{"contact_id": "wmLATE", "name": "迟到", "tags": [], "source": "EYE100", "account": "wx_host_01", "added_at": "2026-12-01T19:30:00Z"}])
    wecom.now = at("2026-12-02 03:30")
    code = wecom.welcome_code("aqi", "wmLATE")
    wecom.welcome_codes[code]["issued"] -= 25  # WeCom's own 20 s are over, though siyu received it just now
    db = open_store(str(corp / "siyu.db"))
    db.execute("INSERT INTO wecom_welcome_codes (code, contact_id, userid, received_at) VALUES (?, 'wmLATE', 'aqi', '2026-12-01T19:30:00Z')", [code])
    db.conn.commit()
    assert once("2026-12-02 03:30:05")["deferred"] == 1
    assert [c.errcode for c in wecom.of("externalcontact/send_welcome_msg")] == [41050] and not wecom.templates
    wecom.now = at("2026-12-02 08:00")
    assert once("2026-12-02 08:00")["tasks"] == 1
    [task] = wecom.templates.values()
    assert sorted(task.recipients) == ["wmLATE", "wmN000", "wmN001", "wmN002"]


def test_an_edit_at_night_that_names_the_contact_splits_the_mornings_task(corp: Path, wecom: WecomFake) -> None:
    night(corp, wecom, 3)
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook("{{ contact.name }}，早呀～")], outputs=[{"type": "wecom"}], limits=QUIET)
    wecom.now = at("2026-12-02 04:00")
    assert once("2026-12-02 04:00")["revised"] == 3
    wecom.now = at("2026-12-02 08:00")
    assert once("2026-12-02 08:00")["tasks"] == 3  # each customer's own name, not the first one's sent to all three
    assert sorted((list(t.recipients), t.text) for t in wecom.templates.values()) == [([f"wmN{i:03d}"], f"夜{i}，早呀～") for i in range(3)]


def test_an_edit_at_night_that_reads_the_contact_but_renders_one_text_keeps_one_task(corp: Path, wecom: WecomFake) -> None:
    """Audit 10a #4: a conditional on tags that every customer renders alike is one text, so one notification."""
    night(corp, wecom, 3)
    edited = "{% if '老客' in contact.tags %}老朋友{% else %}新朋友{% endif %}，福利已到账"
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook(edited)], outputs=[{"type": "wecom"}], limits=QUIET)
    wecom.now = at("2026-12-02 04:00")
    assert once("2026-12-02 04:00")["revised"] == 3
    wecom.now = at("2026-12-02 08:00")
    assert once("2026-12-02 08:00")["tasks"] == 1
    [task] = wecom.templates.values()
    assert task.text == "新朋友，福利已到账" and sorted(task.recipients) == ["wmN000", "wmN001", "wmN002"]


def test_a_customer_who_deletes_at_night_and_adds_again_gets_the_held_welcome_once(corp: Path, wecom: WecomFake) -> None:
    """Audit 10a #15: the re-add makes them a friend again, so the welcome that waited for 08:00 goes; a delete alone skips it."""
    night(corp, wecom, 3)
    for i in (0, 1):  # their adds as siyu serve records them (an event, not only the contact's added_at)
        invoke("track", "friend_added", "--contact", f"wmN00{i}", "--at", f"2026-12-02 01:0{i}", "--hook", "EYE100", "--prop", "userid=aqi")
    invoke("track", "friend_deleted", "--contact", "wmN000", "--at", "2026-12-02 04:44:08", "--prop", "userid=aqi")
    invoke("track", "friend_added", "--contact", "wmN000", "--at", "2026-12-02 04:44:09", "--hook", "EYE100", "--prop", "userid=aqi")
    invoke("track", "friend_deleted", "--contact", "wmN001", "--at", "2026-12-02 04:50", "--prop", "userid=aqi")
    wecom.now = at("2026-12-02 08:00")
    summary = once("2026-12-02 08:00")
    assert (summary["sent"], summary["tasks"]) == (2, 1)
    [task] = wecom.templates.values()
    assert sorted(task.recipients) == ["wmN000", "wmN002"] and task.text == HELLO
    assert query(corp / "siyu.db", "SELECT target, state, reason FROM drafts ORDER BY target") == [
        ("contact:wmN000", "sent", "quiet_hours:deferred"), ("contact:wmN001", "skipped", "exit"), ("contact:wmN002", "sent", "quiet_hours:deferred")
    ]


def test_an_edit_at_night_to_another_plain_text_keeps_one_task(corp: Path, wecom: WecomFake) -> None:
    night(corp, wecom, 3)
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook("早呀～福利已发")], outputs=[{"type": "wecom"}], limits=QUIET)
    wecom.now = at("2026-12-02 08:00")
    assert once("2026-12-02 08:00")["tasks"] == 1
    [task] = wecom.templates.values()
    assert task.text == "早呀～福利已发" and len(task.recipients) == 3


def test_a_beat_edited_to_name_the_contact_while_deferred_goes_to_each_customer_with_their_own_name(corp: Path, wecom: WecomFake) -> None:
    late = {**MASS, "at": "23:00"}
    write_playbook(corp, beats=[late], days=2, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}], limits=QUIET)
    add_contacts(corp / "siyu.db", customers(3))
    wecom.now = at("2026-12-01 23:01")
    assert once("2026-12-01 23:01")["deferred"] == 3  # one mass send, due at 08:00
    write_playbook(corp, beats=[{**late, "text": "{{ contact.name }}，福利今晚截止～"}], days=2, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}], limits=QUIET)
    wecom.now = at("2026-12-02 08:01")
    assert once("2026-12-02 08:01")["tasks"] == 3
    assert sorted((list(t.recipients), t.text) for t in wecom.templates.values()) == [([f"wm{i:04d}"], f"客户{i}，福利今晚截止～") for i in range(3)]


def test_a_night_of_more_adds_than_one_mass_send_takes_goes_in_parts_and_a_crash_in_the_second_makes_neither_twice(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook()], outputs=[{"type": "wecom"}], limits=QUIET)
    adds = [  # 10,002 adds from 02:00 local, two a second
        {"contact_id": f"wmN{i:05d}", "name": f"夜{i}", "tags": [], "source": "EYE100", "account": "wx_host_01", "added_at": f"2026-12-01T{18 + i // 7200:02d}:{i // 120 % 60:02d}:{i // 2 % 60:02d}Z"}
        for i in range(10_002)
    ]
    add_contacts(corp / "siyu.db", adds)
    wecom.now = at("2026-12-02 03:30")
    assert once("2026-12-02 03:30")["deferred"] == 10_002
    wecom.now = at("2026-12-02 08:00")
    killed_in_second_part(corp, wecom, "2026-12-02 08:00", process=True)
    wecom.now = at("2026-12-02 08:05")
    again = once("2026-12-02 08:05")
    assert again["readback"] == {"found": 1} and again["recovered"] == 10_002
    assert sorted(len(t.recipients) for t in wecom.templates.values()) == [2, 10_000]  # WeCom's 10,000 a call: two parts, each made once
    assert states(corp / "siyu.db") == {"sent": 10_002}
    assert query(corp / "siyu.db", "SELECT COUNT(DISTINCT task_id) FROM drafts") == [(1,)]


def check_problems(*args: str) -> list[dict[str, Any]]:
    [found] = json.loads(invoke("check", "--json", *args).stdout)["files"]
    return [p for p in found["problems"] if p["code"] == "wecom-welcome-task"]


def test_check_warns_that_a_welcome_held_by_quiet_hours_takes_the_days_mass_send_of_its_staff_member(corp: Path, wecom: WecomFake) -> None:
    early = {**MASS, "id": "dawn", "at": "07:00", "days": [2, 3], "text": "早安福利～"}  # inside quiet hours: it goes at 08:00, beside the held welcome
    write_playbook(corp, beats=[{**MASS, "days": [1]}, early], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook()], outputs=[{"type": "wecom"}], limits=QUIET)
    found = check_problems()
    assert [(p["severity"], p["path"]) for p in found] == [("warning", "hooks[0].welcome[0]")] * 2
    said = " ".join(p["message"] for p in found)
    for words in ("quiet hours (22:30-08:00)", "waits until 08:00", "add_msg_template", "staff member aqi", "beat close (12:30)", "beat dawn (08:00)", "end on day(s) 1)", "end on day(s) 2-3)"):
        assert words in said, words
    assert "give beat close or hook card another persona" in found[0]["hint"]
    said = invoke("check")
    line = said.stdout + said.stderr
    assert "warning: hooks[0].welcome[0]: welcome message 1 of hook card goes with the add's WelcomeCode" in " ".join(line.split())


def test_check_says_nothing_of_a_held_welcome_without_quiet_hours_another_staff_member_or_the_wecom_output(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook()], outputs=[{"type": "wecom"}])
    assert check_problems() == []  # no quiet hours: the welcome without a code goes at once, and nothing waits for the morning
    write_playbook(corp, beats=[MASS], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook()], limits=QUIET)
    assert check_problems() == []  # the outbox: a person sends the welcome, no WeCom task
    advisor = {"id": "advisor", "name": "周老师", "role": "顾问", "account": "wx_zhou_01", "wecom_userid": "zhou"}
    write_playbook(corp, beats=[{**MASS, "persona": "advisor"}], days=3, personas=[*PERSONAS, advisor], groups=GROUPS, hooks=[hook()], outputs=[{"type": "wecom"}], limits=QUIET)
    assert check_problems() == []  # the beat goes from zhou, the welcome from aqi


def test_check_says_nothing_of_a_held_welcome_whose_hook_tags_its_customers_out_of_the_beats_audience(corp: Path, wecom: WecomFake) -> None:
    """Audit 10a #17: a night add through a hook that tags it 咨询 is a new lead, not one of the beat's 家长, that morning."""
    early = {**MASS, "id": "dawn", "at": "07:00", "days": [2, 3], "text": "早安福利～"}
    lead = {**hook(), "tags": ["咨询"]}
    write_playbook(corp, beats=[early], days=3, personas=PERSONAS, groups=GROUPS, hooks=[lead], outputs=[{"type": "wecom"}], limits=QUIET)
    assert check_problems() == []
    write_playbook(corp, beats=[early], days=3, personas=PERSONAS, groups=GROUPS, hooks=[{**lead, "tags": ["咨询", "家长"]}], outputs=[{"type": "wecom"}], limits=QUIET)
    assert [p["path"] for p in check_problems()] == ["hooks[0].welcome[0]"]  # its adds are 家长: the beat meets them
