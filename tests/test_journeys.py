"""Each contact on its own clock, through the CLI: effective tags from hooks and rules, journeys with exits and repeats.

The scenario is a package-card shop: buyers add through the EYE100 card, a rule tags 已购 on
an order, a welcome sequence stops at the first order, and every order starts its own
repurchase journey that ends at the next order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks_fixtures import invoke, outbox_files, query, write_playbook

HOOK = {
    "id": "card-eye",
    "kind": "package_card",
    "title": "回购卡",
    "code": "EYE100",
    "tags": ["包裹卡", "回购卡"],
    "persona": "host",
    "welcome": [
        {"after": "0m", "text": "{{ contact.name }}您好，眼霜券已到账～"},
        {"after": "1d", "at": "10:00", "text": "眼霜用上了吗？满350减200券还在等您"},
        {"after": "3d", "at": "10:00", "text": "券还有几天过期哦"},
    ],
    "exit": [{"event": "order"}],
}
RULES = [
    {"on": {"event": "order"}, "tag": ["+已购"]},
    {"on": {"event": "order", "nth": 2}, "tag": ["+复购"]},
    {"on": {"event": "refund"}, "tag": ["+已退款"]},
]
SEGMENTS = {"parents": "家长", "eye_unordered": "回购卡 and not 已购", "refunded": "已退款", "repeat_buyers": "复购"}
REMIND = {"id": "remind", "title": "券提醒", "at": "12:00", "days": "all", "channel": "private", "audience": "eye_unordered", "text": "{{ contact.name }}，券快过期啦"}
LOYAL = {"id": "loyal", "title": "老客特权", "at": "12:10", "days": "all", "channel": "private", "audience": "repeat_buyers", "text": "老客专享"}
REPURCHASE = {
    "id": "repurchase",
    "title": "复购提醒",
    "enter": {"event": "order"},
    "repeat": True,
    "exit": [{"event": "order"}, {"segment": "refunded"}],
    "steps": [
        {"id": "usage", "after": "3d", "at": "20:00", "text": "您{{ entry.at.month }}月{{ entry.at.day }}日下单的{{ entry.amount | yuan }}元好物用得怎么样？（旅程第{{ journey.day }}天）"},
        {"id": "push", "after": "5d", "at": "10:00", "text": "{{ contact.name }}，该补货啦"},
    ],
}


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(
        tmp_path,
        beats=[REMIND, LOYAL],
        hooks=[HOOK],
        days=14,
        segments=SEGMENTS,
        rules=RULES,
        journeys=[REPURCHASE],
        limits={"quiet_hours": "22:30-08:00", "missed": {"max_late": "6h"}},
    )
    return tmp_path


siyu = invoke


def track(kind: str, contact: str, at: str, *extra: str) -> None:
    siyu("track", kind, "--contact", contact, "--at", at, "--create-contact", *extra)


def once(now: str) -> dict[str, Any]:
    return json.loads(siyu("run", "--once", "--now", now, "--json").stdout)


def ledger(root: Path, where: str = "1") -> list[dict[str, Any]]:
    columns = ("beat", "target", "state", "reason", "due_at", "text", "channel", "entry")
    rows = query(root / "siyu.db", f"SELECT {', '.join(columns)} FROM drafts WHERE {where} ORDER BY due_at, beat, target")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def sent(root: Path, contact: str) -> list[tuple[str, str]]:
    return [(d["beat"], d["due_at"]) for d in ledger(root, f"target = 'contact:{contact}' AND state = 'sent'")]


# --- effective tags --------------------------------------------------------------------------


def test_a_contact_tracked_through_a_hook_gets_its_tags_and_source_and_the_tag_based_beat_reaches_it(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    shown = json.loads(siyu("contacts", "show", "b1", "--json").stdout)
    assert shown["tags"] == ["包裹卡", "回购卡"] and shown["source"] == "EYE100"
    assert shown["own_tags"] == []
    assert {tag: origin["kind"] for tag, origin in shown["tag_origins"].items()} == {"包裹卡": "hook", "回购卡": "hook"}
    text = siyu("contacts", "show", "b1").stdout
    assert "回购卡  ← hook card-eye at 2026-12-01 09:00" in text

    once("2026-12-01 12:00")
    assert sent(shop, "b1") == [("welcome:card-eye:1", "2026-12-01T01:00:00Z"), ("remind", "2026-12-01T04:00:00Z")]
    # A contact siyu knows no name of (tracked, never imported) is greeted with none, never with its id.
    assert "，券快过期啦" in [d["text"] for d in ledger(shop, "beat = 'remind'")]


def test_an_order_tags_by_rule_and_the_segment_stops_matching_without_any_reimport(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "b1", "2026-12-01 20:00", "--amount", "199")
    once("2026-12-01 12:00")
    once("2026-12-02 12:00")
    # Day 1 noon: not yet ordered, reminded. Day 2: 已购 by the rule, so the reminder skips it.
    assert [beat for beat, _ in sent(shop, "b1") if beat == "remind"] == ["remind"]
    listed = json.loads(siyu("contacts", "list", "--segment", "eye_unordered", "--json").stdout)
    assert listed == []
    show = json.loads(siyu("contacts", "show", "b1", "--json").stdout)
    assert show["tag_origins"]["已购"]["kind"] == "rule"

    # Edit the rule: the next command sees the new tag for every contact at once.
    playbook = yaml.safe_load((shop / "playbook.yaml").read_text("utf-8"))
    playbook["rules"][0]["tag"] = ["+已下单"]
    (shop / "playbook.yaml").write_text(yaml.safe_dump(playbook, allow_unicode=True), encoding="utf-8")
    assert json.loads(siyu("contacts", "show", "b1", "--json").stdout)["tags"] == ["包裹卡", "回购卡", "已下单"]


def test_a_hand_edit_is_a_tagged_event_in_time_order(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    siyu("contacts", "tag", "b1", "--now", "2026-12-01 10:00", "--", "+VIP", "-回购卡")
    assert query(shop / "siyu.db", "SELECT type, props FROM events WHERE type = 'tagged'") == [("tagged", '{"add": ["VIP"], "remove": ["回购卡"]}')]
    shown = json.loads(siyu("contacts", "show", "b1", "--json").stdout)
    assert shown["tags"] == ["包裹卡", "VIP"]
    assert shown["tag_origins"]["VIP"]["kind"] == "manual"
    assert "VIP  ← edited by hand at 2026-12-01 10:00" in siyu("contacts", "show", "b1").stdout


def test_reimporting_the_same_events_applies_nothing_twice(shop: Path) -> None:
    rows = "type,contact_id,at,hook,amount\nfriend_added,b1,2026-12-01 09:00,EYE100,\norder,b1,2026-12-02 09:00,,199\norder,b1,2026-12-03 09:00,,99\n"
    (shop / "events.csv").write_text(rows, encoding="utf-8")
    siyu("import", "events", "events.csv", "--create-contacts")
    first = json.loads(siyu("contacts", "show", "b1", "--json").stdout)["tags"]
    siyu("import", "events", "events.csv", "--create-contacts")
    assert json.loads(siyu("contacts", "show", "b1", "--json").stdout)["tags"] == first == ["包裹卡", "回购卡", "已购", "复购"]
    once("2026-12-06 20:00")
    once("2026-12-06 20:00")
    # The 12-03 order ended the first run before its usage step (12-05) and started its own (usage 12-06).
    assert [(d["beat"], d["entry"]) for d in ledger(shop, "channel = 'journey'")] == [("journey:repurchase:usage", "order@2026-12-03T01:00:00Z")]


# --- journeys ----------------------------------------------------------------------------------


def test_each_step_goes_once_at_its_local_time_to_contacts_who_entered_on_different_days(shop: Path) -> None:
    track("order", "b2", "2026-12-02 15:00", "--amount", "199")
    track("order", "b3", "2026-12-04 09:30", "--amount", "49.9")
    for now in ("2026-12-05 20:00", "2026-12-05 20:00", "2026-12-07 10:00", "2026-12-07 20:00", "2026-12-09 10:00", "2026-12-09 10:00"):
        once(now)
    # usage: 3 days later at 20:00 local (12:00 UTC); push: 5 days later at 10:00 local (02:00 UTC).
    assert [(b, d) for b, d in sent(shop, "b2")] == [("journey:repurchase:usage", "2026-12-05T12:00:00Z"), ("journey:repurchase:push", "2026-12-07T02:00:00Z")]
    assert [(b, d) for b, d in sent(shop, "b3")] == [("journey:repurchase:usage", "2026-12-07T12:00:00Z"), ("journey:repurchase:push", "2026-12-09T02:00:00Z")]
    usage = next(d["text"] for d in ledger(shop, "target = 'contact:b3' AND beat = 'journey:repurchase:usage'"))
    assert usage == "您12月4日下单的49.9元好物用得怎么样？（旅程第4天）"
    files = [p for p in outbox_files(shop / "outbox") if "repurchase" in p.name]
    assert len(files) == 4


def test_the_next_order_ends_a_run_and_starts_a_new_one_with_repeat(shop: Path) -> None:
    track("order", "b2", "2026-12-02 15:00", "--amount", "199")
    once("2026-12-05 20:00")
    track("order", "b2", "2026-12-06 11:00", "--amount", "99")
    for now in ("2026-12-07 10:00", "2026-12-09 20:00", "2026-12-11 10:00"):
        once(now)
    journey = ledger(shop, "channel = 'journey'")
    assert [(d["beat"], d["due_at"], d["state"], d["entry"]) for d in journey] == [
        ("journey:repurchase:usage", "2026-12-05T12:00:00Z", "sent", "order@2026-12-02T07:00:00Z"),
        ("journey:repurchase:usage", "2026-12-09T12:00:00Z", "sent", "order@2026-12-06T03:00:00Z"),
        ("journey:repurchase:push", "2026-12-11T02:00:00Z", "sent", "order@2026-12-06T03:00:00Z"),
    ]
    # The first run's push (12-07 10:00) was never created: the 12-06 order had ended that run.


def test_the_welcome_sequence_stops_at_the_first_order(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    once("2026-12-01 09:00")
    once("2026-12-02 10:00")
    track("order", "b1", "2026-12-02 18:00", "--amount", "199")
    once("2026-12-04 10:00")
    welcome = [d["beat"] for d in ledger(shop, "channel = 'welcome'")]
    assert welcome == ["welcome:card-eye:1", "welcome:card-eye:2"]


def test_a_step_deferred_by_quiet_hours_is_skipped_exit_when_the_exit_comes_first(shop: Path) -> None:
    playbook = yaml.safe_load((shop / "playbook.yaml").read_text("utf-8"))
    playbook["journeys"][0]["steps"][0]["at"] = "23:00"
    (shop / "playbook.yaml").write_text(yaml.safe_dump(playbook, allow_unicode=True), encoding="utf-8")
    track("order", "b2", "2026-12-02 15:00", "--amount", "199")
    summary = once("2026-12-05 23:00")
    assert summary["deferred"] == 1
    track("refund", "b2", "2026-12-06 07:00", "--amount", "199")
    summary = once("2026-12-06 08:00")
    assert summary["skipped"] == {"exit": 1}
    usage = ledger(shop, "beat = 'journey:repurchase:usage'")
    assert [(d["state"], d["reason"]) for d in usage] == [("skipped", "exit")]
    assert not [p for p in outbox_files(shop / "outbox") if "repurchase" in p.name]


def test_a_pass_does_not_see_events_recorded_ahead_of_it(shop: Path) -> None:
    """A rehearsal's log holds the future: a pass at T acts on what had happened by T."""
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "b1", "2026-12-03 20:00", "--amount", "199")
    once("2026-12-02 12:00")
    assert ("remind", "2026-12-02T04:00:00Z") in sent(shop, "b1")
    assert ("welcome:card-eye:2", "2026-12-02T02:00:00Z") in sent(shop, "b1")


def test_preview_contact_lists_where_it_is_in_each_journey(shop: Path) -> None:
    track("order", "b2", "2026-12-02 15:00", "--amount", "199")
    once("2026-12-05 20:00")
    result = json.loads(siyu("preview", "day", "5", "--contact", "b2", "--json").stdout)
    (position,) = result["journeys"]
    assert (position["journey"], position["entered_at"], position["exited"]) == ("repurchase", "2026-12-02 15:00", None)
    assert [(s["step"], s["due"], s["status"]) for s in position["steps"]] == [("usage", "2026-12-05 20:00", "sent"), ("push", "2026-12-07 10:00", "next")]
    text = siyu("preview", "day", "5", "--contact", "b2").stdout
    assert "journeys 旅程 of this contact" in text and "next" in text


def test_preview_with_an_empty_store_shows_every_journey_and_welcome_step_for_a_sample_contact(shop: Path) -> None:
    result = json.loads(siyu("preview", "day", "3", "--json").stdout)
    beats = {d["beat"] for d in result["drafts"]}
    assert {"welcome:card-eye:1", "welcome:card-eye:2", "welcome:card-eye:3", "journey:repurchase:usage", "journey:repurchase:push"} <= beats
    usage = next(d for d in result["drafts"] if d["beat"] == "journey:repurchase:usage")
    assert usage["text"].startswith("您11月30日下单的") and usage["time"] == "20:00"


# --- check -------------------------------------------------------------------------------------


def _edit(shop: Path, change: Any) -> None:
    playbook = yaml.safe_load((shop / "playbook.yaml").read_text("utf-8"))
    change(playbook)
    (shop / "playbook.yaml").write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _problems(code: int) -> str:
    result = json.loads(siyu("check", "--json", code=code).stdout)
    return "\n".join(f"{p['severity']} {p['path']} {p['message']}" for p in result["files"][0]["problems"])


def test_check_names_every_bad_reference_of_a_journey(shop: Path) -> None:
    _edit(shop, lambda pb: pb["journeys"].append({"id": "broken", "enter": {"event": "friend_added", "hook": "EYE999"}, "persona": "nobody", "audience": "eye_unorderd", "exit": [{"segment": "refundd"}], "steps": [{"id": "s", "after": "1d", "text": "x"}]}))
    text = _problems(1)
    assert "error journeys[1].enter.hook unknown hook 'EYE999'" in text
    assert "error journeys[1].persona unknown persona 'nobody'" in text
    assert "error journeys[1].audience 'eye_unorderd' is not a segment" in text
    assert "error journeys[1].exit[0].segment 'refundd' is not a segment" in text


def test_check_lints_rules_exits_and_step_order(shop: Path) -> None:
    def change(playbook: dict[str, Any]) -> None:
        playbook["rules"].append({"on": {"event": "checkin"}, "tag": ["+打卡达人"]})
        playbook["journeys"].append(
            {
                "id": "odd",
                "enter": {"event": "friend_added", "hook": "EYE100"},
                "exit": [{"segment": "已购买"}, {"segment": "已购 and not 已购"}],
                "steps": [{"id": "late", "after": "3d", "text": "三天后"}, {"id": "early", "after": "1d", "text": "一天后"}],
            }
        )
        playbook["journeys"].append({"id": "instant", "enter": {"event": "order"}, "exit": [{"segment": "已购"}], "steps": [{"id": "s", "after": "1d", "text": "x"}]})

    _edit(shop, change)
    text = _problems(0)
    assert "warning rules[3].tag[0] this rule adds tag '打卡达人', but no segment, audience or exit reads it" in text
    assert "exit '已购买' can hold only through tags no hook or rule gives (已购买)" in text
    assert "exit '已购 and not 已购' can never hold" in text
    assert "step 'early' comes before step 'late'" in text
    assert "exit '已购' holds as soon as a contact enters" in text
    siyu("check", "--strict", code=1)


def test_check_with_the_store_warns_when_an_audience_reaches_nobody(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    result = json.loads(siyu("check", "--json", "--db", "siyu.db").stdout)
    warnings = [p["message"] for p in result["files"][0]["problems"] if p["severity"] == "warning"]
    assert "audience 'repeat_buyers' matches 0 of the 1 contacts in the store" in warnings
    assert not any("eye_unordered" in w for w in warnings)


def test_timeline_places_journey_steps_for_a_sample_then_for_real_contacts(shop: Path) -> None:
    text = siyu("timeline").stdout
    assert "复购提醒" in text and "journeys 旅程 · relative to each contact's entering event" in text
    assert "entry + 3d at 20:00" in text and "order (every time)" in text
    sample = [row for row in json.loads(siyu("timeline", "--json").stdout) if row["channel"] == "journey"]
    assert [(r["beat"], r["day"], r["at"][11:16], r["target"]) for r in sample] == [
        ("journey:repurchase:usage", 4, "20:00", "sample"),
        ("journey:repurchase:push", 6, "10:00", "sample"),
    ]
    track("order", "b2", "2026-12-02 15:00", "--amount", "199")
    track("order", "b3", "2026-12-02 16:00", "--amount", "99")
    real = [row for row in json.loads(siyu("timeline", "--json").stdout) if row["channel"] == "journey"]
    assert [(r["beat"], r["day"], r["target"]) for r in real] == [
        ("journey:repurchase:usage", 5, "contact:b2"),
        ("journey:repurchase:usage", 5, "contact:b3"),
        ("journey:repurchase:push", 7, "contact:b2"),
        ("journey:repurchase:push", 7, "contact:b3"),
    ]
    assert "usage ×2" in siyu("timeline").stdout


def test_two_runs_of_one_contact_with_a_step_due_the_same_minute_both_send(shop: Path) -> None:
    """Two orders the same day: each run's `usage` step falls on 12-05 20:00; neither may be lost."""
    _edit(shop, lambda pb: pb["journeys"][0].update(exit=[{"segment": "refunded"}]))
    track("order", "b1", "2026-12-02 10:00", "--amount", "99")
    track("order", "b1", "2026-12-02 15:00", "--amount", "199")
    first = once("2026-12-05 20:00")
    again = once("2026-12-05 20:05")
    usage = ledger(shop, "beat = 'journey:repurchase:usage'")
    assert sorted((d["entry"], d["due_at"], d["state"]) for d in usage) == [
        ("order@2026-12-02T02:00:00Z", "2026-12-05T12:00:00Z", "sent"),
        ("order@2026-12-02T07:00:00Z", "2026-12-05T12:00:00Z", "sent"),
    ]
    assert sorted(d["text"] for d in usage) == ["您12月2日下单的199元好物用得怎么样？（旅程第4天）", "您12月2日下单的99元好物用得怎么样？（旅程第4天）"]
    assert first["sent"] >= 2
    assert (again["recorded"], again["sent"]) == (0, 0)  # nothing left to plan again


def test_an_audience_is_matched_with_the_tags_a_contact_had_when_the_draft_was_due(shop: Path) -> None:
    """A pass that runs late acts as an on-time pass would have: an order after 12:00 does not make a buyer of the 12:00 beat."""
    buyers = {"id": "buyers", "title": "买家专享", "at": "12:00", "days": "1-3", "channel": "private", "audience": "已购", "text": "老客专享券"}
    _edit(shop, lambda pb: pb.update(beats=[buyers]))
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "b1", "2026-12-01 12:30", "--amount", "99")
    once("2026-12-01 13:00")  # late for 12:00: b1 was not a buyer then
    assert ledger(shop, "beat = 'buyers'") == []
    once("2026-12-02 12:00")
    assert [(d["due_at"], d["state"]) for d in ledger(shop, "beat = 'buyers'")] == [("2026-12-02T04:00:00Z", "sent")]


def test_a_journey_step_is_not_sent_to_a_contact_who_entered_the_audience_after_it_was_due(shop: Path) -> None:
    vip = {"id": "vip", "title": "老客回访", "enter": {"event": "friend_added"}, "audience": "已购", "steps": [{"id": "ask", "after": "1d", "at": "10:00", "text": "回访"}]}
    _edit(shop, lambda pb: pb["journeys"].append(vip))
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "b1", "2026-12-02 11:00", "--amount", "99")
    once("2026-12-02 12:00")  # the step was due at 10:00; b1 bought at 11:00
    assert ledger(shop, "beat = 'journey:vip:ask'") == []


def test_an_add_recorded_again_at_another_time_sends_no_step_twice(shop: Path) -> None:
    """The live add, then an export a few minutes off: the welcome and a once-only journey go once."""
    once_only = {"id": "guide", "title": "新客引导", "enter": {"event": "friend_added"}, "steps": [{"id": "tips", "after": "1h", "text": "使用小贴士"}]}
    _edit(shop, lambda pb: pb["journeys"].append(once_only))
    track("friend_added", "b1", "2026-12-01 10:00", "--hook", "EYE100")
    once("2026-12-01 11:05")
    track("friend_added", "b1", "2026-12-01 09:58", "--hook", "EYE100", "--event-id", "wecom-export-1")
    once("2026-12-01 11:10")
    once("2026-12-01 11:15")
    sent_beats = [beat for beat, _ in sent(shop, "b1")]
    assert sent_beats.count("welcome:card-eye:1") == 1
    assert sent_beats.count("journey:guide:tips") == 1
    assert len([p for p in outbox_files(shop / "outbox") if "guide" in p.name or "welcome" in p.name]) == 2


def test_two_orders_in_the_same_second_are_two_runs(shop: Path) -> None:
    _edit(shop, lambda pb: pb["journeys"][0].update(exit=[{"event": "order"}]))
    rows = "event_id,type,contact_id,at,amount\no1,order,x,2026-12-02 11:00,9.9\no2,order,x,2026-12-02 11:00,398\n"
    (shop / "orders.csv").write_text(rows, encoding="utf-8")
    siyu("import", "events", "orders.csv", "--create-contacts")
    once("2026-12-05 20:00")
    usage = ledger(shop, "beat = 'journey:repurchase:usage'")
    # o2 comes after o1 (recorded later), so it ends o1's run; its own run sends.
    assert [(d["entry"], d["state"]) for d in usage] == [("order@2026-12-02T03:00:00Z#1", "sent")]
    assert usage[0]["text"].startswith("您12月2日下单的398元")


def test_fast_clock_runs_steps_of_contacts_who_enter_after_the_last_day(shop: Path) -> None:
    track("order", "b9", "2026-12-20 10:00", "--amount", "99")  # the campaign has 14 days
    siyu("run", "--clock", "fast", "--now", "2026-12-01 00:00")
    assert [beat for beat, _ in sent(shop, "b9")] == ["journey:repurchase:usage", "journey:repurchase:push"]


def test_check_warns_when_the_audience_already_matches_the_exit_or_the_hook_gives_it(shop: Path) -> None:
    def change(playbook: dict[str, Any]) -> None:
        playbook["journeys"].append({"id": "never", "enter": {"event": "order"}, "audience": "已购 and not 已退款", "exit": [{"segment": "已购"}], "steps": [{"id": "s", "after": "1d", "text": "x"}]})
        playbook["journeys"].append({"id": "hooked", "enter": {"event": "friend_added", "hook": "card-eye"}, "exit": [{"segment": "回购卡"}], "steps": [{"id": "s", "after": "1d", "text": "x"}]})

    _edit(shop, change)
    text = _problems(0)
    assert "every contact the audience '已购 and not 已退款' accepts already matches exit '已购': no step would be sent" in text
    assert "journeys[2].exit[0].segment exit '回购卡' holds as soon as a contact enters" in text


def test_check_with_a_store_that_is_not_there_says_so(shop: Path) -> None:
    result = siyu("check", "--db", "nothere.db", code=1)
    assert "nothere.db: no such store" in result.stderr


def test_check_counts_journey_steps_against_the_account_cap(shop: Path) -> None:
    _edit(shop, lambda pb: pb["limits"].update(private_per_account_per_day=1))
    for n in range(3):
        track("order", f"b{n}", "2026-12-02 15:00", "--amount", "99")
    result = json.loads(siyu("check", "--json", "--db", "siyu.db").stdout)
    caps = [p["message"] for p in result["files"][0]["problems"] if p["code"] == "account-cap"]
    assert caps and "would send up to 3 1v1 drafts on day 5" in caps[0]


def test_preview_past_the_last_step_exits_2_and_track_warns_of_an_unknown_hook(shop: Path) -> None:
    siyu("preview", "day", "20", code=0)  # a contact who enters on day 14 gets its 5d step on day 19-20
    result = siyu("preview", "day", "21", code=2)
    assert "outside the campaign (days 1-14; welcome and journey steps reach day 20)" in result.stderr
    result = siyu("track", "friend_added", "--contact", "z1", "--hook", "NOPE", "--create-contact", "--at", "2026-12-01 09:00")
    assert "warning: 'NOPE' is no hook of camp (EYE100)" in result.stderr
    track("order", "late", "2026-12-25 10:00", "--amount", "99")  # an order after the campaign: its steps reach further
    siyu("preview", "day", "30", "--contact", "late")
    siyu("preview", "day", "32", code=2)
    assert "no such store" in siyu("preview", "day", "3", "--db", "missing.db", code=1).stderr
    assert "no such store" in siyu("contacts", "list", "--db", "missing.db", code=1).stderr
    assert not (shop / "missing.db").exists()


def test_the_html_report_shows_each_journey_and_how_its_steps_ended(shop: Path) -> None:
    _edit(shop, lambda pb: pb.update(funnel={"stages": [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}]}))
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "b1", "2026-12-02 15:00", "--amount", "199")
    track("order", "b2", "2026-12-02 15:00", "--amount", "99")
    for now in ("2026-12-01 09:00", "2026-12-05 20:00", "2026-12-07 10:00"):
        once(now)
    siyu("report", "html", "--out", "report.html")
    html = (shop / "report.html").read_text("utf-8")
    section = html[html.index('<section id="journeys">') :]
    assert 'data-journey="repurchase"' in section and 'data-journey="welcome:card-eye"' in section
    assert "复购提醒" in section and "+3d at 20:00" in section and "order (every time)" in section
    assert "sent 2" in section  # usage and push for b1 and b2
    assert "2 run(s) with drafts" in section


def test_cron_refuses_schedules_it_cannot_print_and_fast_refuses_an_end_before_its_start(shop: Path) -> None:
    for every in ("0", "90", "1500"):
        assert "cron can run a pass every 1-59 minutes or every whole number of hours" in siyu("cron", "--every", every, code=2).stderr
    text = siyu("cron", "--every", "120").stdout
    assert "\n0 */2 * * * cd " in text and "OnCalendar=*-*-* 00/2:00:00" in text
    assert "*/5 * * * * cd " in siyu("cron", "--every", "5").stdout
    assert "is before the start" in siyu("run", "--clock", "fast", "--now", "2026-12-05", "--until", "2026-12-01", code=2).stderr


def test_the_welcome_an_add_triggers_is_not_the_touch_that_brought_the_add(shop: Path) -> None:
    _edit(shop, lambda pb: pb.update(funnel={"stages": [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}]}))
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    once("2026-12-01 09:00")  # the welcome goes at the add's own second
    track("order", "b1", "2026-12-01 12:30", "--amount", "99")
    report = json.loads(siyu("report", "funnel", "--by", "touch", "--json").stdout)
    by_stage = {t["id"]: {k: v for k, v in t["channels"].items() if v} for t in report["touches"]}
    assert by_stage == {"added": {"none": 1}, "ordered": {"welcome": 1}}  # the welcome of 09:00 is the last touch before the order


def test_check_warns_when_the_store_holds_these_beats_under_another_id(shop: Path) -> None:
    track("friend_added", "b1", "2026-12-01 09:00", "--hook", "EYE100")
    once("2026-12-01 12:10")
    _edit(shop, lambda pb: pb.update(id="camp-renamed"))
    result = json.loads(siyu("check", "--json", "--db", "siyu.db").stdout)
    [warning] = [p for p in result["files"][0]["problems"] if p["code"] == "renamed"]
    assert "drafts of campaign 'camp'" in warning["message"] and "every beat due so far is sent again" in warning["message"]
    assert warning["hint"] == "keep `id: camp` to go on with that campaign (the id keys the ledger)"


def test_a_missing_value_prints_nothing_and_a_whole_amount_prints_without_its_point(shop: Path) -> None:
    _edit(shop, lambda pb: pb["journeys"][0]["steps"][0].update(text="来源[{{ contact.source }}] 金额{{ entry.amount }}元"))
    track("order", "b2", "2026-12-02 15:00", "--amount", "398")
    once("2026-12-05 20:00")
    [usage] = ledger(shop, "beat = 'journey:repurchase:usage'")
    assert usage["text"] == "来源[] 金额398元"


def test_a_file_that_is_not_a_store_is_a_clear_error(shop: Path) -> None:
    (shop / "empty.db").write_bytes(b"")
    for args in (("check", "--db", "empty.db"), ("preview", "day", "1", "--db", "empty.db")):
        result = siyu(*args, code=1)
        assert "not a siyu store" in result.stderr


def test_funnel_by_tier_reads_a_fan_tier_tag_when_the_tier_column_is_empty(shop: Path) -> None:
    hooks = [{**HOOK, "tags": ["包裹卡", "精准粉"]}, {"id": "lottery", "kind": "qr_code", "code": "LUCKY", "tags": ["泛粉"]}]
    _edit(shop, lambda pb: pb.update(hooks=hooks, funnel={"stages": [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}]}))
    track("friend_added", "p1", "2026-12-01 09:00", "--hook", "EYE100")
    track("friend_added", "g1", "2026-12-01 09:00", "--hook", "LUCKY")
    track("order", "p1", "2026-12-02 09:00", "--amount", "99")
    report = json.loads(siyu("report", "funnel", "--by", "tier", "--json").stdout)
    groups = {g["key"]: [s["count"] for s in g["stages"]] for g in report["groups"]}
    assert groups == {"精准粉": [1, 1], "泛粉": [1, 0]}
