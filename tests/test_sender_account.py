"""A private beat that names no persona goes to each contact from the account the contact added.

WeCom's 客户列表 export names that account by the staff member's userid (添加人账号); a persona is
known by its `account` or its `wecom_userid`. A 1v1 from another staff member would never arrive
(WeCom's fail_list: not a friend), so each staff member gets a task of their own customers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.playbooks_fixtures import add_contacts, invoke, query, write_playbook
from tests.test_wecom_dispatch import MASS, at, once
from tests.wecom_fake import WecomFake

PERSONAS = [
    {"id": "host", "name": "阿栖", "role": "班主任", "account": "wx_host_01", "wecom_userid": "aqi"},
    {"id": "advisor", "name": "周老师", "role": "顾问", "account": "wx_adv_01", "wecom_userid": "zhou"},
]
EXPORT = (
    "外部联系人ID,客户名称,添加人账号,添加时间,企业标签,添加渠道\n"
    '"=""wm0001""",客户1,aqi,2026-11-20 08:00,家长,搜索手机号\n'
    "wm0002,客户2,zhou,2026-11-20 09:00,家长,搜索手机号\n"
    "wm0003,客户3,zhou,2026-11-21 09:00,家长,搜索手机号\n"
    "wm0004,客户4,nobody,2026-11-21 10:00,家长,搜索手机号\n"
)


def test_a_beat_with_no_persona_is_one_wecom_task_per_staff_member_of_their_own_customers(wecom_corp: Path, wecom: WecomFake) -> None:
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}])
    (wecom_corp / "客户列表.csv").write_text(EXPORT, encoding="utf-8-sig")
    invoke("import", "contacts", "客户列表.csv", "--preset", "wecom-customers")
    wecom.now = at("2026-12-01 12:31")
    summary = once("2026-12-01 12:31")
    assert (summary["sent"], summary["tasks"]) == (4, 2)
    sent = sorted((template.sender, sorted(template.recipients)) for template in wecom.templates.values())
    # A contact whose account is no persona's goes from the first persona, as before.
    assert sent == [("aqi", ["wm0001", "wm0004"]), ("zhou", ["wm0002", "wm0003"])]
    assert dict(query(wecom_corp / "siyu.db", "SELECT target, persona FROM drafts")) == {
        "contact:wm0001": "host", "contact:wm0002": "advisor", "contact:wm0003": "advisor", "contact:wm0004": "host",
    }  # fmt: skip


def test_a_beat_that_names_its_persona_still_sends_from_it_and_the_outbox_files_a_task_per_account(wecom_corp: Path) -> None:
    named = {**MASS, "persona": "host"}
    write_playbook(wecom_corp, beats=[MASS, {**named, "id": "close2", "at": "12:45"}], days=1, personas=PERSONAS)
    add_contacts(
        wecom_corp / "siyu.db",
        [
            {"contact_id": "c1", "name": "甲", "tags": ["家长"], "account": "wx_host_01"},
            {"contact_id": "c2", "name": "乙", "tags": ["家长"], "account": "wx_adv_01"},
            {"contact_id": "c3", "name": "丙", "tags": ["家长"], "account": "zhou"},
        ],
    )
    invoke("run", "--once", "--now", "2026-12-01 12:50", "--json")
    rows = query(wecom_corp / "siyu.db", "SELECT beat, target, persona FROM drafts ORDER BY beat, target")
    assert rows == [
        ("close", "contact:c1", "host"), ("close", "contact:c2", "advisor"), ("close", "contact:c3", "advisor"),
        ("close2", "contact:c1", "host"), ("close2", "contact:c2", "host"), ("close2", "contact:c3", "host"),
    ]  # fmt: skip
    files = sorted(path.read_text(encoding="utf-8") for path in (wecom_corp / "outbox").rglob("*.md"))
    assert len(files) == 3  # close: one task per account (2); close2: one task from host (1)
    assert sum("周老师" in text for text in files) == 1


def test_check_names_every_persona_a_beat_without_persona_may_send_from(wecom_corp: Path) -> None:
    personas = [PERSONAS[0], {**PERSONAS[1], "wecom_userid": None}]
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=personas, outputs=[{"type": "wecom"}])
    result = invoke("check", code=1)
    assert "persona advisor (周老师) sends beat close (to contacts who added wx_adv_01)" in result.stderr, result.stderr


def test_the_timeline_names_no_one_sender_for_a_beat_that_goes_from_each_contacts_account(wecom_corp: Path) -> None:
    import csv
    import io
    import json

    write_playbook(wecom_corp, beats=[MASS, {**MASS, "id": "close2", "at": "12:45", "persona": "advisor"}], days=1, personas=PERSONAS)
    rows = {row["beat"]: row for row in json.loads(invoke("timeline", "--json").stdout)}
    assert (rows["close"]["persona"], rows["close2"]["persona"]) == (None, "advisor")
    table = list(csv.DictReader(io.StringIO(invoke("timeline", "--csv").stdout.lstrip("\ufeff"))))
    assert {row["beat"]: row["persona"] for row in table} == {"close": "the contact's account", "close2": "周老师"}


def test_check_refuses_a_beat_with_no_persona_and_an_advisor_beat_reaching_advisors_customers_the_same_day(wecom_corp: Path) -> None:
    eve = {**MASS, "id": "eve", "at": "20:00", "persona": "advisor", "text": "晚上好"}
    write_playbook(wecom_corp, beats=[MASS, eve], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}])
    (wecom_corp / "客户列表.csv").write_text(EXPORT, encoding="utf-8-sig")
    invoke("import", "contacts", "客户列表.csv", "--preset", "wecom-customers")
    problems = json.loads(invoke("check", "--db", "siyu.db", "--json", code=1).stdout)["files"][0]["problems"]
    (problem,) = [p for p in problems if p["code"] == "wecom-twice-a-day"]
    assert problem["severity"] == "error" and problem["path"] == "beats[1].days"
    assert "from persona advisor (staff member zhou), to contacts who added wx_adv_01 (close names no persona" in problem["message"], problem
    # A journey of advisor's on the beat's day meets the beat for advisor's own contacts too.
    journey = {"id": "ladder", "persona": "advisor", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "2h", "text": "您好"}]}
    write_playbook(wecom_corp, beats=[MASS], days=1, personas=PERSONAS, outputs=[{"type": "wecom"}], journeys=[journey])
    result = invoke("check", code=1)
    assert "step ask of journey ladder and beat close reach one contact on one day, both from persona advisor (staff member zhou; to contacts who added wx_adv_01)" in result.stderr, result.stderr
