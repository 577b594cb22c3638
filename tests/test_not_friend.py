"""A contact who deleted the account (friend_deleted) gets no 1v1: its private drafts are recorded skipped(not_friend).

The latest of a contact's friend_added / friend_deleted events (by time, then the order recorded) decides: a
delete stops private beats and journey steps from that moment, a later add (a re-add) brings them back. Group
posts still go. What the runner records, preview, timeline, plan and check count alike, and status says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, add_event, invoke, query, write_playbook

siyu = invoke


@pytest.fixture
def camp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1], limits={"quiet_hours": "22:30-08:00", "missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "name": "甲"}, {"contact_id": "c2", "name": "乙"}])
    return tmp_path


def track(kind: str, contact: str, at: str, *extra: str) -> None:
    siyu("track", kind, "--contact", contact, "--at", at, *extra)


def once(now: str) -> dict[str, Any]:
    return json.loads(siyu("run", "--once", "--now", now, "--json").stdout)


def drafts(root: Path, where: str = "1") -> list[tuple[Any, ...]]:
    return query(root / "siyu.db", f"SELECT beat, day, target, state, reason FROM drafts WHERE {where} ORDER BY day, beat, target")


TWO_STAFF = [
    {"id": "host", "name": "小丸子", "role": "班主任", "account": "wx_host_01", "wecom_userid": "aqi"},
    {"id": "advisor", "name": "李老师", "role": "顾问", "account": "wx_adv_02", "wecom_userid": "zhou"},
]


def two_staff(root: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[Any, ...]], **playbook: Any) -> None:
    """A campaign whose personas are two WeCom staff members (aqi, zhou), contacts 甲 (c1) and 乙 (c2), and these
    events (event_id, type, contact, at, amount, props) as siyu serve records them."""
    import sqlite3

    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    write_playbook(root, personas=TWO_STAFF, **playbook)
    add_contacts(root / "siyu.db", [{"contact_id": "c1", "name": "甲"}, {"contact_id": "c2", "name": "乙"}])
    with sqlite3.connect(root / "siyu.db") as conn:
        conn.executemany("INSERT INTO events (event_id, type, contact_id, at, amount, props) VALUES (?, ?, ?, ?, ?, ?)", events)
    conn.close()


def test_a_deleted_contact_gets_no_private_draft_and_status_says_why_while_the_group_post_goes(camp: Path) -> None:
    track("friend_deleted", "c2", "2026-12-01 10:00")
    summary = once("2026-12-01 12:30")
    assert summary["skipped"] == {"not_friend": 1} and summary["sent"] == 2
    assert drafts(camp) == [
        ("morning", 1, "group:g1", "sent", None),
        ("noon", 1, "contact:c1", "sent", None),
        ("noon", 1, "contact:c2", "skipped", "not_friend"),
    ]
    # Nothing in the outbox names 乙.
    assert not any("乙" in path.read_text("utf-8") for path in (camp / "outbox").rglob("*.md"))
    report = json.loads(siyu("status", "--json").stdout)
    assert report["skipped"] == {"camp": {"not_friend": 1}}
    text = siyu("status").stdout
    assert "skipped by reason · camp: not_friend 1 (not a friend 非好友: the contact deleted the account" in text
    listed = siyu("outbox", "--status", "skipped").stdout
    assert "c2" in listed and "not_friend" in listed
    only = json.loads(siyu("outbox", "--reason", "not_friend", "--json").stdout)
    assert [(row["target"], row["state"]) for row in only] == [("contact:c2", "skipped")]
    assert "did you mean 'not_friend'?" in siyu("outbox", "--reason", "not_fr%", "--json", code=2).stderr  # the reason as written, no pattern
    sop = json.loads(siyu("report", "sop", "--json").stdout)
    assert [(row["beat"], row["skipped"]) for row in sop["rows"] if row["beat"] == "noon"] == [("noon", {"not_friend": 1})]
    assert sop["total"]["not_friend"] == 0  # that column is what WeCom read back (fail_list); this one was never handed out


def test_a_re_add_makes_the_contact_reachable_again_from_that_moment(camp: Path) -> None:
    track("friend_deleted", "c2", "2026-12-01 10:00")
    track("friend_added", "c2", "2026-12-02 09:00")
    once("2026-12-01 12:30")
    once("2026-12-02 12:30")
    assert drafts(camp, "target = 'contact:c2'") == [("noon", 1, "contact:c2", "skipped", "not_friend"), ("noon", 2, "contact:c2", "sent", None)]
    # Deleted again on day 3, after that day's noon: day 3's 1v1 went, the next would not.
    track("friend_deleted", "c2", "2026-12-03 13:00")
    once("2026-12-03 12:30")
    assert drafts(camp, "target = 'contact:c2' AND day = 3") == [("noon", 3, "contact:c2", "sent", None)]


def test_a_delete_and_a_re_add_at_the_same_second_go_by_the_order_recorded(camp: Path) -> None:
    add_event(camp / "siyu.db", "e-add", "friend_added", "c1", "2026-12-01T02:00:00Z")
    add_event(camp / "siyu.db", "e-del", "friend_deleted", "c1", "2026-12-01T02:00:00Z")
    add_event(camp / "siyu.db", "e-del2", "friend_deleted", "c2", "2026-12-01T02:00:00Z")
    add_event(camp / "siyu.db", "e-add2", "friend_added", "c2", "2026-12-01T02:00:00Z")
    once("2026-12-01 12:30")
    assert drafts(camp, "beat = 'noon'") == [("noon", 1, "contact:c1", "skipped", "not_friend"), ("noon", 1, "contact:c2", "sent", None)]


def test_a_draft_recorded_before_the_delete_is_skipped_when_it_comes_due(camp: Path) -> None:
    late = {**NOON_1V1, "id": "night", "at": "23:00"}  # inside quiet hours: deferred to 08:00
    write_playbook(camp, beats=[late], limits={"quiet_hours": "22:30-08:00", "on_quiet": "defer", "missed": {"max_late": "6h"}})
    assert once("2026-12-01 23:00")["deferred"] == 2
    track("friend_deleted", "c2", "2026-12-02 01:00")
    summary = once("2026-12-02 08:00")
    assert summary["skipped"] == {"not_friend": 1} and summary["sent"] == 1
    assert drafts(camp) == [("night", 1, "contact:c1", "sent", "quiet_hours:deferred"), ("night", 1, "contact:c2", "skipped", "not_friend")]


def test_preview_says_a_1v1_deferred_past_a_delete_is_skipped_as_the_run_skips_it(camp: Path) -> None:
    early = {**NOON_1V1, "id": "dawn", "at": "06:00"}  # inside quiet hours: deferred to 07:00, the same day
    write_playbook(camp, beats=[early], limits={"quiet_hours": "22:30-07:00", "on_quiet": "defer", "missed": {"max_late": "6h"}})
    track("friend_deleted", "c2", "2026-12-01 06:30")  # after the slot, before the deferred send
    shown = json.loads(siyu("preview", "day", "1", "--json").stdout)
    assert sorted((d["contact"], d["decision"]) for d in shown["drafts"]) == [("c1", "defer 07:00"), ("c2", "skip:not_friend")]
    [gone] = [d for d in shown["drafts"] if d["contact"] == "c2"]
    assert "deferred to 07:00 by quiet hours, and the contact deleted the account at 2026-12-01 06:30" in gone["decision_text"]
    once("2026-12-01 06:00")
    summary = once("2026-12-01 07:05")
    assert summary["skipped"] == {"not_friend": 1} and summary["sent"] == 1


def test_an_import_of_删微_rows_stops_1v1_and_a_later_加微_row_restores_it(camp: Path) -> None:
    (camp / "流失客户.csv").write_text("type,contact_id,at\n删微,c1,2026-12-01 11:00\n删微,c2,2026-12-01 11:30\n加微,c2,2026-12-02 08:00\n", encoding="utf-8-sig")
    siyu("import", "events", "流失客户.csv")
    assert query(camp / "siyu.db", "SELECT type, COUNT(*) FROM events GROUP BY type") == [("friend_added", 1), ("friend_deleted", 2)]
    once("2026-12-01 12:30")
    once("2026-12-02 12:30")
    assert drafts(camp, "beat = 'noon'") == [
        ("noon", 1, "contact:c1", "skipped", "not_friend"),
        ("noon", 1, "contact:c2", "skipped", "not_friend"),
        ("noon", 2, "contact:c1", "skipped", "not_friend"),
        ("noon", 2, "contact:c2", "sent", None),
    ]
    assert drafts(camp, "beat = 'morning'") == [("morning", 1, "group:g1", "sent", None), ("morning", 2, "group:g1", "sent", None)]


def test_an_import_after_the_pass_that_planned_the_day_leaves_what_went_and_stops_the_rest(camp: Path) -> None:
    once("2026-12-01 12:30")
    (camp / "删微.csv").write_text("type,contact_id,at\n删好友,c2,2026-12-01 15:00\n", encoding="utf-8")
    siyu("import", "events", "删微.csv")
    once("2026-12-02 12:30")
    assert drafts(camp, "target = 'contact:c2'") == [("noon", 1, "contact:c2", "sent", None), ("noon", 2, "contact:c2", "skipped", "not_friend")]


def test_preview_shows_the_reason_and_counts_it_apart(camp: Path) -> None:
    track("friend_deleted", "c2", "2026-12-01 10:00")
    result = json.loads(siyu("preview", "day", "1", "--db", "siyu.db", "--json").stdout)
    decisions = {d["contact"]: (d["decision"], d["decision_text"]) for d in result["drafts"] if d["channel"] == "private"}
    assert decisions["c1"][0] == "send"
    assert decisions["c2"] == ("skip:not_friend", "not a friend 已删好友: deleted the account at 2026-12-01 10:00 (friend_deleted); recorded skipped(not_friend), not sent until a re-add")
    (noon,) = [row for row in result["summary"]["beats"] if row["beat"] == "noon"]
    assert (noon["drafts"], noon["pending"], noon["not_friend"], noon["other"]) == (2, 1, 1, 0)
    assert result["summary"]["private_per_account"][0]["pending"] == 1
    text = siyu("preview", "day", "1", "--db", "siyu.db", "--contact", "c2").stdout
    assert "not a friend 已删好友: deleted the account at 2026-12-01 10:00" in text
    # The day before the delete, it was a friend.
    track("friend_added", "c2", "2026-12-02 09:00")
    day2 = json.loads(siyu("preview", "day", "2", "--db", "siyu.db", "--contact", "c2", "--json").stdout)
    assert [d["decision"] for d in day2["drafts"] if d["channel"] == "private"] == ["send"]


def test_plan_and_timeline_count_what_the_runner_sends(camp: Path) -> None:
    track("friend_deleted", "c2", "2026-12-01 10:00")
    plan = json.loads(siyu("plan", "--now", "2026-12-01 12:30", "--json", code=2).stdout)
    created = {c["target"]: (c["state"], c["reason"]) for c in plan["changes"] if c["beat"] == "noon"}
    assert created == {"contact:c1": ("pending", None), "contact:c2": ("skipped", "not_friend")}
    table = " ".join(siyu("plan", "--now", "2026-12-01 12:30", code=2).stdout.split())
    assert "recorded as 记为" in table and "pending 1 · skipped(not_friend) 1" in table, table
    upcoming = json.loads(siyu("plan", "--now", "2026-12-01 12:00", "--json", code=2).stdout)["next_24h"]
    assert [(row["beat"], row["drafts"]) for row in upcoming if row["beat"] == "noon"] == [("noon", 1)]
    rows = json.loads(siyu("timeline", "--db", "siyu.db", "--json").stdout)
    assert {row["audience_size"] for row in rows if row["beat"] == "noon"} == {1}
    assert "1 (1 deleted 已删)" in siyu("timeline", "--db", "siyu.db").stdout


def test_check_counts_a_deleted_contact_in_no_1v1_cap(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING, NOON_1V1], limits={"private_per_account_per_day": 1})

    def codes() -> set[str]:
        problems = json.loads(siyu("check", "--db", "siyu.db", "--json").stdout)["files"][0]["problems"]
        return {p["code"] for p in problems}

    assert "account-cap" in codes()
    track("friend_deleted", "c2", "2026-11-30 10:00")
    assert "account-cap" not in codes()
    # A delete on day 2 leaves day 1 over the cap: check counts each day as the run that day did.
    track("friend_added", "c2", "2026-11-30 11:00")
    track("friend_deleted", "c2", "2026-12-02 10:00")
    problems = json.loads(siyu("check", "--db", "siyu.db", "--json").stdout)["files"][0]["problems"]
    [cap] = [p for p in problems if p["code"] == "account-cap"]
    assert "on day 1" in cap["message"] and "days 1 are over" in cap["message"], cap["message"]


# --- journeys ----------------------------------------------------------------------------------

REPURCHASE = {
    "id": "repurchase",
    "title": "复购提醒",
    "enter": {"event": "order"},
    "repeat": True,
    "steps": [{"id": "usage", "after": "1d", "at": "20:00", "text": "{{ contact.name }}，用得怎么样？"}],
}
WELCOME_HOOK = {
    "id": "card", "kind": "package_card", "code": "EYE100", "persona": "host",
    "welcome": [{"after": "0m", "text": "欢迎"}, {"after": "1d", "at": "10:00", "text": "券还在哦"}],
}  # fmt: skip


def test_a_journey_run_still_ends_at_the_delete_and_a_friends_journey_is_untouched(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING], hooks=[WELCOME_HOOK], journeys=[REPURCHASE], days=5)
    for contact in ("b1", "b2"):
        track("friend_added", contact, "2026-12-01 09:00", "--hook", "EYE100", "--create-contact")
    track("friend_deleted", "b2", "2026-12-01 12:00")
    once("2026-12-01 09:00")
    once("2026-12-02 10:00")
    steps = drafts(camp, "channel = 'welcome'")
    # b2's run ended at the delete: its second step is never made (no not_friend row), as before.
    assert steps == [
        ("welcome:card:1", 1, "contact:b1", "sent", None),
        ("welcome:card:1", 1, "contact:b2", "sent", None),
        ("welcome:card:2", 2, "contact:b1", "sent", None),
    ]


def test_a_journey_entered_while_the_contact_is_gone_skips_its_steps_until_a_re_add(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING], journeys=[REPURCHASE], days=5)
    track("friend_deleted", "c1", "2026-11-30 10:00")
    track("order", "c1", "2026-12-01 15:00", "--amount", "99")  # a Taobao order of someone who deleted WeCom
    track("order", "c2", "2026-12-01 15:00", "--amount", "99")
    once("2026-12-02 20:00")
    assert drafts(camp, "channel = 'journey'") == [
        ("journey:repurchase:usage", 2, "contact:c1", "skipped", "not_friend"),
        ("journey:repurchase:usage", 2, "contact:c2", "sent", None),
    ]
    position = json.loads(siyu("preview", "day", "2", "--db", "siyu.db", "--contact", "c1", "--json").stdout)
    assert [d["decision"] for d in position["drafts"] if d["channel"] == "journey"] == ["skip:not_friend"]
    track("friend_added", "c1", "2026-12-03 09:00")
    track("order", "c1", "2026-12-03 15:00", "--amount", "99")
    once("2026-12-04 20:00")
    assert drafts(camp, "channel = 'journey' AND day = 4") == [("journey:repurchase:usage", 4, "contact:c1", "sent", None)]


def test_a_journey_run_ends_at_a_delete_of_its_own_staff_member_not_of_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """siyu serve records which staff member a customer deleted: a run sent by another one goes on."""
    events = [
        ("o1", "order", "c1", "2026-12-01T07:00:00Z", 99, "{}"),
        ("o2", "order", "c2", "2026-12-01T07:00:00Z", 99, "{}"),
        ("d1", "friend_deleted", "c1", "2026-12-01T09:00:00Z", None, '{"callback": "del_follow_user", "userid": "aqi"}'),  # the host
        ("d2", "friend_deleted", "c2", "2026-12-01T09:00:00Z", None, '{"callback": "del_follow_user", "userid": "zhou"}'),  # the advisor
    ]
    two_staff(tmp_path, monkeypatch, events, beats=[MORNING], journeys=[{**REPURCHASE, "persona": "advisor"}], days=5)
    once("2026-12-02 20:00")
    # 甲 deleted the host: the advisor's step goes. 乙 deleted the advisor: the run ended there, no step is made.
    assert drafts(tmp_path, "channel = 'journey'") == [("journey:repurchase:usage", 2, "contact:c1", "sent", None)]


# --- the core --------------------------------------------------------------------------------------


def test_unfriended_reads_the_latest_add_or_delete_by_time_then_id_and_counts_added_at_as_an_add(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from siyu_cli.store import open_store, unfriended

    db_path = tmp_path / "siyu.db"
    add_contacts(
        db_path,
        [
            {"contact_id": "a", "added_at": "2026-11-01T00:00:00Z"},  # deleted, never re-added
            {"contact_id": "b", "added_at": "2026-12-05T00:00:00Z"},  # deleted, then imported again with a later add time
            {"contact_id": "c", "added_at": "2026-12-05T00:00:00Z"},  # has an add event: added_at is not an add then
            {"contact_id": "d"},  # never deleted
        ],
    )
    for event_id, kind, contact, at in [
        ("1", "friend_deleted", "a", "2026-12-01T00:00:00Z"),
        ("2", "friend_deleted", "b", "2026-12-01T00:00:00Z"),
        ("3", "friend_added", "c", "2026-11-01T00:00:00Z"),
        ("4", "friend_deleted", "c", "2026-12-01T00:00:00Z"),
        ("5", "friend_added", "d", "2026-11-01T00:00:00Z"),
    ]:
        add_event(db_path, event_id, kind, contact, at)
    db = open_store(db_path, readonly=True)
    found = unfriended(db)
    assert sorted(found.log) == ["a", "b", "c"]
    assert found.deleted_at("a") == found.deleted_at("c") == "2026-12-01T00:00:00Z"
    assert found.deleted_at("b") is None and found.deleted_at("b", "2026-12-02T00:00:00Z") == "2026-12-01T00:00:00Z"
    assert found.deleted_at("a", "2026-11-30T00:00:00Z") is None and found.deleted_at("d") is None
    # As of a moment: later events are not known yet; by id: only those contacts.
    assert unfriended(db, as_of=datetime(2026, 11, 30, tzinfo=UTC)).log == {}
    assert sorted(unfriended(db, ids=["b", "d"]).log) == ["b"]


def test_a_customer_who_deleted_one_staff_member_still_gets_the_other_s_1v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WeCom's adds and deletes are per staff member (siyu serve records the userid): a customer of two advisors who
    deleted one is still the other's friend. A delete that names no one (an import's 删微) stops both."""
    events = [
        ("a1", "friend_added", "c1", "2026-12-01T00:00:00Z", None, '{"userid": "aqi"}'),
        ("a2", "friend_added", "c1", "2026-12-01T00:00:00Z", None, '{"userid": "zhou"}'),
        ("d1", "friend_deleted", "c1", "2026-12-01T02:00:00Z", None, '{"callback": "del_follow_user", "userid": "zhou"}'),
        ("d2", "friend_deleted", "c2", "2026-12-01T02:00:00Z", None, "{}"),  # imported 删微: no staff member named
    ]
    evening = {**NOON_1V1, "id": "eve", "title": "晚间私聊", "at": "20:00", "persona": "advisor"}
    two_staff(tmp_path, monkeypatch, events, beats=[{**NOON_1V1, "persona": "host"}, evening], days=1)
    once("2026-12-01 12:35")
    once("2026-12-01 20:05")
    assert drafts(tmp_path) == [
        ("eve", 1, "contact:c1", "skipped", "not_friend"),  # from zhou, whom 甲 deleted
        ("eve", 1, "contact:c2", "skipped", "not_friend"),
        ("noon", 1, "contact:c1", "sent", None),  # from aqi, whom 甲 still has
        ("noon", 1, "contact:c2", "skipped", "not_friend"),
    ]
    # The audience counts (timeline, check --db) ask the same per staff member: noon reaches 甲, eve nobody.
    sizes = [line.split("│")[-2].strip() for line in siyu("timeline").stdout.splitlines() if "deleted 已删" in line]
    assert sizes == ["1 (1 deleted 已删)", "0 (2 deleted 已删)"]  # noon reaches 甲; eve nobody


def test_an_imported_add_or_delete_names_its_staff_member_by_account_as_the_wecom_export_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 客户列表 import (wecom-customers) keeps 添加人账号 as `account`: an add with the advisor is no re-add for the host."""
    events = [
        ("a1", "friend_added", "c1", "2026-12-01T00:00:00Z", None, '{"userid": "aqi"}'),
        ("d1", "friend_deleted", "c1", "2026-12-01T01:00:00Z", None, '{"callback": "del_follow_user", "userid": "aqi"}'),
        ("a2", "friend_added", "c1", "2026-12-01T02:00:00Z", None, '{"account": "zhou"}'),  # the export: added by the advisor
        ("d2", "friend_deleted", "c2", "2026-12-01T02:00:00Z", None, '{"account": "wx_host_01"}'),  # the host's account
    ]
    evening = {**NOON_1V1, "id": "eve", "title": "晚间私聊", "at": "20:00", "persona": "advisor"}
    two_staff(tmp_path, monkeypatch, events, beats=[{**NOON_1V1, "persona": "host"}, evening], days=1)
    once("2026-12-01 12:35")
    once("2026-12-01 20:05")
    assert drafts(tmp_path) == [
        ("eve", 1, "contact:c1", "sent", None),
        ("eve", 1, "contact:c2", "sent", None),
        ("noon", 1, "contact:c1", "skipped", "not_friend"),  # 甲 deleted the host; the export's add is the advisor's
        ("noon", 1, "contact:c2", "skipped", "not_friend"),
    ]
    preview = json.loads(siyu("preview", "day", "1", "--json").stdout)
    noon = [d for d in preview["drafts"] if d["beat"] == "noon"]
    assert sorted((d["contact"], d["decision"]) for d in noon) == [("c1", "skip:not_friend"), ("c2", "skip:not_friend")]
