"""Audit 11's ledger findings: who a private beat is for (a contact added later, a contact of another staff member)
and what a data-driven text counts (no look-ahead), each through the CLI on a real store, time injected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.playbooks_fixtures import NOON_1V1, add_contacts, add_event, invoke, query, write_playbook

LATE = {"missed": {"max_late": "3d", "action": "send"}}


def run(root: Path, now: str, *extra: str) -> dict:
    result = invoke("run", "--once", "--now", now, "-p", str(root / "playbook.yaml"), "--db", str(root / "siyu.db"), "--outbox", str(root / "outbox"), "--json", *extra)
    return json.loads(result.stdout)


def drafts(root: Path, where: str = "1") -> list[tuple]:
    return query(root / "siyu.db", f"SELECT beat, target, day, state, reason FROM drafts WHERE {where} ORDER BY target, day")


def test_a_contact_added_on_day_3_gets_no_1v1_of_days_1_and_2_even_when_missed_ones_are_sent(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "今天的茶泡得怎么样？"}], days=3, limits=LATE)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "early", "added_at": "2026-11-30T00:00:00Z"}, {"contact_id": "late", "added_at": "2026-12-03T05:00:00Z"}])
    summary = run(tmp_path, "2026-12-03 14:00")  # 13:00 Shanghai on day 3: after the add, so day 3's 12:30 is before it too
    assert drafts(tmp_path, "target = 'contact:late'") == []
    assert [row[2] for row in drafts(tmp_path, "target = 'contact:early'")] == [1, 2, 3]
    assert summary["sent"] == 3
    run(tmp_path, "2026-12-04 12:00")  # nothing new: the campaign had 3 days
    assert drafts(tmp_path, "target = 'contact:late'") == []


def test_preview_of_each_day_shows_the_1v1_only_to_contacts_added_by_then(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], days=3)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "a"}, {"contact_id": "b", "added_at": "2026-12-02T00:00:00Z"}])
    preview = json.loads(invoke("preview", "day", "1", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--json").stdout)
    assert sorted(d["target"] for d in preview["drafts"] if d["beat"] == "noon") == ["a (a)"]
    preview = json.loads(invoke("preview", "day", "2", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--json").stdout)
    assert sorted(d["target"] for d in preview["drafts"] if d["beat"] == "noon") == ["a (a)", "b (b)"]


ADVISOR_BEAT = {**NOON_1V1, "id": "tip", "persona": "advisor", "text": "李老师的小贴士～"}


def test_a_beat_of_one_persona_skips_customers_who_only_added_the_other_and_check_says_so(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[ADVISOR_BEAT], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [
        {"contact_id": "adv1", "account": "wx_adv_02"},
        {"contact_id": "host1", "account": "wx_host_01"},
        {"contact_id": "both", "account": "wx_host_01"},  # added host first, then the advisor (the export's second row)
        {"contact_id": "nobody", "account": "wx_someone"},  # an account no persona has: says nothing, WeCom decides
    ])  # fmt: skip
    add_event(tmp_path / "siyu.db", "add-both-adv", "friend_added", "both", "2026-11-30T01:00:00Z")
    with __import__("sqlite3").connect(tmp_path / "siyu.db") as conn:
        conn.execute("UPDATE events SET props = '{\"account\": \"wx_adv_02\"}' WHERE event_id = 'add-both-adv'")
    conn.close()
    result = invoke("check", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--json")
    [problem] = [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "persona-strangers"]
    assert problem["path"] == "beats[0].persona" and problem["severity"] == "warning"
    assert problem["message"].startswith("1 of the 4 contacts in this beat's audience never added persona advisor's account (1 added wx_host_01 (persona host))"), problem

    summary = run(tmp_path, "2026-12-01 12:31")
    assert (summary["sent"], summary["skipped"]) == (3, {"not_friend": 1})
    assert drafts(tmp_path) == [
        ("tip", "contact:adv1", 1, "sent", None),
        ("tip", "contact:both", 1, "sent", None),
        ("tip", "contact:host1", 1, "skipped", "not_friend"),
        ("tip", "contact:nobody", 1, "sent", None),
    ]


def test_a_beat_naming_no_persona_is_not_touched_by_the_other_staff_members_customers(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "adv1", "account": "wx_adv_02"}, {"contact_id": "host1", "account": "wx_host_01"}])
    assert not [p for p in json.loads(invoke("check", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--json").stdout)["files"][0]["problems"] if p["code"] == "persona-strangers"]
    assert run(tmp_path, "2026-12-01 12:31")["sent"] == 2
    assert query(tmp_path / "siyu.db", "SELECT target, persona FROM drafts ORDER BY target") == [("contact:adv1", "advisor"), ("contact:host1", "host")]


@pytest.mark.parametrize(("now", "count"), [("2026-12-01 21:05", 1), ("2026-12-01 21:40", 2)])
def test_a_night_summary_counts_the_days_checkins_up_to_the_pass_not_after_it(now: str, count: int, tmp_path: Path) -> None:
    night = {"id": "night", "at": "21:00", "days": "all", "channel": "group", "text": "今晚打卡{{ stats.checkins | length }}人"}
    write_playbook(tmp_path, beats=[night], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "a"}, {"contact_id": "b"}])
    add_event(tmp_path / "siyu.db", "c1", "checkin", "a", "2026-12-01T12:00:00Z", group="g1")  # 20:00
    add_event(tmp_path / "siyu.db", "c2", "checkin", "b", "2026-12-01T13:30:00Z", group="g1")  # 21:30, after a 21:05 pass
    run(tmp_path, now)
    assert query(tmp_path / "siyu.db", "SELECT text FROM drafts WHERE beat = 'night'") == [(f"今晚打卡{count}人",)]


def test_a_second_outbox_done_keeps_who_marked_the_task_first_and_when(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "午安～"}], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"c{i}"} for i in range(3)])
    run(tmp_path, "2026-12-01 12:31")
    [(task,)] = query(tmp_path / "siyu.db", "SELECT DISTINCT task_id FROM drafts")
    db = str(tmp_path / "siyu.db")
    assert "marked 3 draft(s) done" in invoke("outbox", "done", task, "--by", "林老师", "--db", db).stdout
    first = query(tmp_path / "siyu.db", "SELECT done_by, done_at FROM drafts ORDER BY draft_id")
    again = " ".join(invoke("outbox", "done", task, "--by", "小夏", "--db", db).stdout.split())
    assert "marked 0 draft(s) done" in again and "left 3 draft(s) as first marked: done by 林老师 at" in again, again
    assert query(tmp_path / "siyu.db", "SELECT done_by, done_at FROM drafts ORDER BY draft_id") == first
    [staff] = json.loads(invoke("report", "sop", "-p", str(tmp_path / "playbook.yaml"), "--db", db, "--json").stdout)["staff"]
    assert staff["staff"] == "林老师"


def test_days_0_is_one_error_not_one_per_range_measured_against_it(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "days": "2-3"}], days=3, phases=[{"id": "warm", "title": "预热", "days": "1-3"}])
    path = tmp_path / "playbook.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("days: 3\n", "days: 0\n", 1), encoding="utf-8")
    result = invoke("check", str(path), "--json", code=1)
    problems = json.loads(result.stdout)["files"][0]["problems"]
    assert [p["path"] for p in problems] == ["days"], problems


def test_plan_says_capacity_decides_1v1_drafts_when_they_fall_due(tmp_path: Path) -> None:
    personas = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 1}}]
    write_playbook(tmp_path, beats=[NOON_1V1], days=1, personas=personas)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "a"}, {"contact_id": "b"}])
    text = " ".join(invoke("plan", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--now", "2026-12-01 12:31", code=2).stdout.split())
    assert "create 2" in text and "capacity and the per-contact and per-account limits decide them when they fall due" in text, text
    write_playbook(tmp_path, beats=[NOON_1V1], days=1)
    text = " ".join(invoke("plan", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--now", "2026-12-01 12:31", code=2).stdout.split())
    assert "create 2" in text and "decide them when they fall due" not in text


@pytest.mark.parametrize(("line", "opened", "closing"), [("  - {id: g1, name: 阅读营1群, persona: host\n", "{", "}"), ("tags_x: [a, b\n", "[", "]")])
def test_an_unclosed_bracket_is_reported_where_it_opened(line: str, opened: str, closing: str, tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    path.write_text(f"id: camp\ntitle: 营\ngroups:\n{line}  - {{id: g2, name: 2群, persona: host}}\ndays: 3\n", encoding="utf-8")
    result = invoke("check", str(path), code=1)
    text = " ".join((result.stdout + result.stderr).split())
    assert "playbook.yaml:4:" in text and f"the {opened} opened here is not closed" in text and f"close it with {closing} on line 4" in text, text


def test_personas_sharing_an_account_each_reach_its_customers(tmp_path: Path) -> None:
    """verify11 #1: the account map holds one persona per account; a beat of the other is not a stranger's."""
    personas = [{"id": "teacher", "name": "林老师", "account": "lin_wx"}, {"id": "service", "name": "客服", "account": "lin_wx"}]
    write_playbook(tmp_path, beats=[{**NOON_1V1, "persona": "teacher", "text": "午安～"}], days=1, personas=personas, groups=[{"id": "g1", "name": "1群", "persona": "teacher"}], limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "account": "lin_wx"}, {"contact_id": "c2", "account": "lin_wx"}])
    problems = json.loads(invoke("check", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--json").stdout)["files"][0]["problems"]
    assert not [p for p in problems if p["code"] == "persona-strangers"]
    assert run(tmp_path, "2026-12-01 12:31")["sent"] == 2


def test_a_customer_who_adds_the_beats_persona_later_gets_only_the_beats_after_that_add(tmp_path: Path) -> None:
    """verify11 #3: first added host (11-30), then the advisor on day 3 at 13:00: the advisor's 1v1s of days 1-3 were never theirs."""
    write_playbook(tmp_path, beats=[ADVISOR_BEAT], days=4, limits=LATE)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "both", "account": "wx_host_01"}, {"contact_id": "adv", "account": "wx_adv_02"}])
    add_event(tmp_path / "siyu.db", "later", "friend_added", "both", "2026-12-03T05:00:00Z")
    with __import__("sqlite3").connect(tmp_path / "siyu.db") as conn:
        conn.execute("UPDATE events SET props = '{\"account\": \"wx_adv_02\"}' WHERE event_id = 'later'")
    conn.close()
    run(tmp_path, "2026-12-03 14:00")  # after the add: days 1-3's 12:30 were before it
    assert drafts(tmp_path, "target = 'contact:both'") == []
    run(tmp_path, "2026-12-04 12:31")
    assert drafts(tmp_path, "target = 'contact:both'") == [("tip", "contact:both", 4, "sent", None)]
    assert [row[2] for row in drafts(tmp_path, "target = 'contact:adv'")] == [1, 2, 3, 4]


def test_personas_sharing_a_staff_member_with_two_accounts_reach_each_others_customers(tmp_path: Path) -> None:
    """verify12 E: WeCom sees one staff member (lin), so one client holds both personas' customers."""
    personas = [{"id": "teacher", "name": "林老师", "account": "lin_wx", "wecom_userid": "lin"}, {"id": "service", "name": "客服", "account": "svc_wx", "wecom_userid": "lin"}]
    write_playbook(tmp_path, beats=[{**NOON_1V1, "persona": "teacher", "text": "午安～"}], days=1, personas=personas, groups=[{"id": "g1", "name": "1群", "persona": "teacher"}], limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "account": "svc_wx"}, {"contact_id": "c2", "account": "lin_wx"}])
    assert run(tmp_path, "2026-12-01 12:31")["sent"] == 2
