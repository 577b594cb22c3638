"""Capacity (人效) and account nurturing (养号): real passes with --now over days, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import test_run
from tests.playbooks_fixtures import MORNING, add_contacts, invoke, query, write_playbook

DAY_A = {"id": "a", "title": "一对一", "at": "20:00", "days": "1", "channel": "private", "audience": "a", "text": "{{ contact.name }}，今晚聊聊"}
DAY_B = {"id": "b", "title": "一对一", "at": "20:00", "days": "2", "channel": "private", "audience": "b", "text": "{{ contact.name }}，第二天"}
MASS = {"id": "mass", "title": "群发", "at": "20:00", "days": "1", "channel": "private", "audience": "a", "text": "今晚8点直播，记得来"}
PERSONAS = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 2, "general": 4}}]


camp = test_run.camp  # a folder to run in, SIYU_* cleared
once = test_run.once


def ledger(camp: Path, where: str = "1") -> list[tuple[Any, ...]]:
    return query(camp / "siyu.db", f"SELECT target, state, reason, due_at, first_due_at FROM drafts WHERE {where} ORDER BY due_at, target")


def contacts(prefix: str, n: int, tag: str, tier: str | None = "precise") -> list[dict[str, Any]]:
    return [{"contact_id": f"{prefix}{i}", "name": f"{prefix}{i}", "tags": [tag], "tier": tier} for i in range(1, n + 1)]


def write(camp: Path, beats: list[dict[str, Any]], **extra: Any) -> Path:
    extra.setdefault("personas", PERSONAS)
    return write_playbook(camp, beats=beats, segments={"a": "a", "b": "b"}, limits={"missed": {"max_late": "2h"}}, **extra)


def test_over_capacity_drafts_carry_over_to_the_next_day_oldest_first(camp: Path) -> None:
    # One operator, 2 precise fans a day: each precise contact is half a day's 1v1 work.
    write(camp, [DAY_A, DAY_B])
    add_contacts(camp / "siyu.db", contacts("a", 5, "a") + contacts("b", 2, "b"))

    first = once("2026-12-01 20:01")
    assert first["sent"] == 2 and first["carried"] == {"capacity": 3} and first["deferred"] == 0 and not first["skipped"]
    rows = ledger(camp)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("contact:a1", "sent", None),
        ("contact:a2", "sent", None),
        ("contact:a3", "pending", "capacity:carried"),  # day 2 takes two more
        ("contact:a4", "pending", "capacity:carried"),
        ("contact:a5", "pending", "capacity:carried"),  # day 2 is full already: day 3
    ]
    assert [r[3] for r in rows[2:]] == ["2026-12-02T12:00:00Z", "2026-12-02T12:00:00Z", "2026-12-03T12:00:00Z"]
    assert {r[4] for r in rows[2:]} == {"2026-12-01T12:00:00Z"}  # the original due is kept

    # Day 2: yesterday's carried drafts go first; today's fresh 1v1 drafts wait for day 3 and 4.
    second = once("2026-12-02 20:01")
    assert second["sent"] == 2 and second["carried"] == {"capacity": 2} and second["deferred"] == 0
    sent_day2 = [r[0] for r in ledger(camp, "state = 'sent' AND due_at LIKE '2026-12-02%'")]
    assert sent_day2 == ["contact:a3", "contact:a4"]
    carried_b = {r[0]: (r[2], r[3], r[4]) for r in ledger(camp, "target LIKE 'contact:b%'")}
    assert carried_b == {
        "contact:b1": ("capacity:carried", "2026-12-03T12:00:00Z", "2026-12-02T12:00:00Z"),
        "contact:b2": ("capacity:carried", "2026-12-04T12:00:00Z", "2026-12-02T12:00:00Z"),
    }

    # Day 3 (the last campaign day) and day 4 (after it: carried drafts still go), each found on time.
    assert once("2026-12-03 20:01")["sent"] == 2
    assert [r[0] for r in ledger(camp, "due_at LIKE '2026-12-03%'")] == ["contact:a5", "contact:b1"]
    assert once("2026-12-04 20:01")["sent"] == 1
    assert {r[1] for r in ledger(camp)} == {"sent"}
    # Exactly once: every slot has one draft, and a rerun changes nothing.
    assert len(ledger(camp)) == 7
    again = once("2026-12-04 20:30")
    assert again["recorded"] == 0 and again["sent"] == 0


CARE = {"id": "care", "title": "精准粉1v1", "at": "20:00", "days": "1-3", "channel": "private", "audience": "a", "text": "{{ contact.name }}，第{{ day }}天护理"}


def test_a_contact_gets_one_draft_of_a_beat_a_day_and_the_older_carried_ones_are_superseded(camp: Path) -> None:
    # The audit's case: a 3-day 1v1 beat, 5 precise contacts, 2 a day. Carried day-1/day-2 drafts of a5 used to land on day 3 with its day-3 draft.
    write(camp, [CARE])
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    for day in ("2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-05", "2026-12-06"):
        once(f"{day} 20:01")
    rows = query(camp / "siyu.db", "SELECT target, day, state, reason, substr(due_at, 1, 10) FROM drafts WHERE beat = 'care' ORDER BY target, day")
    assert len(rows) == 15 and len({(r[0], r[1]) for r in rows}) == 15  # exactly once: one draft a slot
    out = [(r[0], r[4]) for r in rows if r[2] != "skipped"]
    assert len(out) == len(set(out))  # at most one draft of the beat per contact per day
    assert {r[2] for r in rows} == {"sent", "skipped"} and {r[3] for r in rows if r[2] == "skipped"} == {"capacity:superseded"}
    superseded = {(r[0], r[1]) for r in rows if r[2] == "skipped"}
    # a3, a4: carried to day 2, where their day-2 draft takes their place; a5's day-1 gives way to its day-2 on day 3, that to day 3's.
    assert {("contact:a3", 1), ("contact:a4", 1), ("contact:a5", 1), ("contact:a5", 2)} <= superseded
    assert ("contact:a5", 3, "sent", None, "2026-12-03") in rows  # the newest message is the one that goes out
    for contact in ("a1", "a2", "a3", "a4", "a5"):
        assert any(r[0] == f"contact:{contact}" and r[1] == 3 and r[2] == "sent" for r in rows)  # the last beat always reaches them
    assert once("2026-12-06 20:30")["recorded"] == 0


def test_a_carried_draft_counts_against_its_new_days_per_contact_touches(camp: Path) -> None:
    # One precise contact a day, one touch a contact a day: a2's two 1v1 beats of day 1 both carry, to day 2 and day 3.
    other = {**DAY_A, "id": "tip", "text": "{{ contact.name }}，小贴士"}
    write_playbook(camp, beats=[DAY_A, other], segments={"a": "a"}, personas=[{**PERSONAS[0], "capacity": {"precise": 1}}], limits={"per_contact_per_day": 1})
    add_contacts(camp / "siyu.db", contacts("a", 2, "a"))
    once("2026-12-01 20:01")
    carried = query(camp / "siyu.db", "SELECT substr(due_at, 1, 10) FROM drafts WHERE target = 'contact:a2' AND reason = 'capacity:carried' ORDER BY due_at")
    assert carried == [("2026-12-02",), ("2026-12-03",)]


def test_a_carried_draft_counts_its_new_days_group_posts(camp: Path) -> None:
    # One precise contact a day, one touch a contact a day; a group post on day 2 only: a2's 1v1 of day 1 cannot go on day 2.
    post = {**MORNING, "days": "2"}
    write_playbook(camp, beats=[DAY_A, post], segments={"a": "a"}, personas=[{**PERSONAS[0], "capacity": {"precise": 1}}], limits={"per_contact_per_day": 1})
    add_contacts(camp / "siyu.db", contacts("a", 2, "a"))
    once("2026-12-01 20:01")
    carried = query(camp / "siyu.db", "SELECT substr(due_at, 1, 10) FROM drafts WHERE target = 'contact:a2' AND reason = 'capacity:carried'")
    assert carried == [("2026-12-03",)]


def test_a_pass_offers_capacity_oldest_first_across_beats_and_journey_steps(camp: Path) -> None:
    # One precise fan a day. j1 adds at 09:00 and its journey's step is due at 10:00; b1's 1v1 beat is due at 18:00.
    # One pass at 19:00 covers both: the 10:00 step is older, so it goes and the beat carries over.
    from tests.playbooks_fixtures import add_event

    beat = {**DAY_A, "at": "18:00", "audience": "b"}
    journey = {"id": "hello", "enter": {"event": "friend_added"}, "audience": "a", "steps": [{"id": "hi", "after": "1h", "text": "{{ contact.name }}，你好"}]}
    write_playbook(camp, beats=[beat], journeys=[journey], segments={"a": "a", "b": "b"}, personas=[{**PERSONAS[0], "capacity": {"precise": 1}}], limits={"missed": {"max_late": "12h"}})
    add_contacts(camp / "siyu.db", contacts("b", 1, "b"))
    once("2026-12-01 08:00")  # a first pass: the cursor
    add_contacts(camp / "siyu.db", [{**contacts("a", 1, "a")[0], "contact_id": "j1", "added_at": "2026-12-01T01:00:00Z"}])
    add_event(camp / "siyu.db", "add-j1", "friend_added", "j1", "2026-12-01T01:00:00Z")
    once("2026-12-01 19:00")
    rows = dict(query(camp / "siyu.db", "SELECT target, COALESCE(reason, state) FROM drafts"))
    assert rows == {"contact:j1": "sent", "contact:b1": "capacity:carried"}, rows


def test_a_carried_draft_is_held_to_max_late_from_its_new_day_not_its_first(camp: Path) -> None:
    write(camp, [DAY_A])
    add_contacts(camp / "siyu.db", contacts("a", 3, "a"))
    once("2026-12-01 20:01")
    # 24 hours after it was first due, far past max_late 2h of that: still sent, as it is on time for its new day.
    result = once("2026-12-02 21:30")
    assert result["sent"] == 1 and not result["skipped"]


def test_mass_sends_and_general_fans_cost_what_the_rule_says(camp: Path) -> None:
    # A text that never reads `contact` is one 群发 task: no capacity. General fans cost 1/4 here, untiered counts as precise.
    write(camp, [MASS, DAY_A])
    add_contacts(camp / "siyu.db", contacts("a", 4, "a", tier="泛粉") + [{"contact_id": "a9", "name": "a9", "tags": ["a"]}])
    once("2026-12-01 20:01")
    rows = {(r[0], r[1], r[2]) for r in query(camp / "siyu.db", "SELECT target, state, reason FROM drafts WHERE beat = 'a'")}
    # 4 general (4 × 1/4 = 1 operator-day) fill the day; the untiered one (precise, 1/2) carries over.
    assert ("contact:a9", "pending", "capacity:carried") in rows
    assert sum(1 for r in rows if r[1] == "sent") == 4
    mass = query(camp / "siyu.db", "SELECT state, COUNT(*) FROM drafts WHERE beat = 'mass' GROUP BY state")
    assert mass == [("sent", 5)]


def test_without_capacity_nothing_changes(camp: Path) -> None:
    write(camp, [DAY_A], personas=[{"id": "host", "name": "小丸子", "account": "wx_host_01"}])
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    assert once("2026-12-01 20:01")["sent"] == 5


def test_plan_capacity_on_a_hand_checkable_campaign(camp: Path) -> None:
    # 3 days: every card goes out on day 1 (the first third, at least a day); 15% add (the seeds' 引流率),
    # a fifth each on days 3-7: 30 precise fans a day, each in a journey that starts at the add.
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "close", "enter": {"event": "friend_added"}, "steps": [{"id": "hi", "after": "0m", "text": "{{ contact.name }}，你好"}]}
    write(camp, [DAY_A], hooks=[card], journeys=[journey], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--json").stdout)
    assert found["add_rate"] == 0.15 and found["operators"] == 1
    days = {d["day"]: d for d in found["days"]}
    assert [days[d]["adds"] for d in range(1, 9)] == [0, 0, 30, 30, 30, 30, 30, 0]
    # 30 precise fans at 20 a day per operator: 1.5 operator-days, 2 people; one person falls 0.5 behind a day.
    assert {days[d]["operator_days"] for d in range(3, 8)} == {1.5} and {days[d]["operators_needed"] for d in range(3, 8)} == {2}
    assert [days[d]["backlog_operator_days"] for d in range(3, 11)] == [0.5, 1.0, 1.5, 2.0, 2.5, 1.5, 0.5, 0.0]
    assert found["backlog_peak"]["day"] == 7 and found["operators_needed_max"] == 2
    table = invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--rates", "added=0.3").stdout
    assert "add rate 30.0% (--rates added)" in table
    assert "the busiest day (day 3, 2026-12-03) needs 3 operator(s) to do its 1v1 work the same day; with the 1 operator(s) the playbook has, 1v1 work carries over" in table
    enough = invoke("plan", "capacity", "-p", "playbook.yaml", "--cards", "1000", "--operators", "2").stdout
    assert "needs 2 operator(s) to do its 1v1 work the same day; the 2 operator(s) given with --operators keep up: no backlog" in enough


def test_plan_capacity_takes_event_names_and_percentages_and_refuses_rates_it_cannot_use(camp: Path) -> None:
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "close", "enter": {"event": "friend_added"}, "steps": [{"id": "hi", "after": "0m", "text": "{{ contact.name }}，你好"}]}
    funnel = {"stages": [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}, {"id": "again", "event": "order", "nth": 2}]}
    write(camp, [DAY_A], hooks=[card], journeys=[journey], funnel=funnel, personas=[{"id": "host", "name": "小丸子", "capacity": {}}])

    def plan(*rates: str, code: int = 0) -> Any:
        return invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", *(["--rates", *rates] if rates else []), "--json", code=code)

    for given, source in (("friend_added=0.3", "--rates friend_added"), ("added=30%", "--rates added"), ("friend_added=30％", "--rates friend_added")):
        found = json.loads(plan(given).stdout)
        assert (found["add_rate"], found["add_rate_source"]) == (0.3, source), given
    refused = plan("ordered=0.5", code=2).stderr
    assert "--rates ordered: plan capacity works from the add rate (added) alone; ordered changes no figure here" in refused
    assert "stages ordered, again are all order events" in plan("order=0.5", code=2).stderr
    assert "write added=0.3 or added=30%" in plan("added=30", code=2).stderr
    assert "two rates" in plan("friend_added=0.3,added=0.2", code=2).stderr


def test_plan_capacity_says_when_nothing_needs_a_person(camp: Path) -> None:
    write(camp, [MASS], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    said = invoke("plan", "capacity", "playbook.yaml", "--cards", "100").stdout
    assert "no day has 1v1 work that needs a person" in said and "at most 0" not in said


def test_plan_capacity_refuses_a_bad_rate_and_keeps_plan_as_it_was(camp: Path) -> None:
    write(camp, [DAY_A])
    result = invoke("plan", "capacity", "playbook.yaml", "--cards", "10", "--rates", "nosuch=0.2", code=2)
    assert "no such funnel stage" in result.stderr
    assert "no such store" in invoke("plan", "playbook.yaml", code=1).stderr  # the ledger plan: unchanged


NEW_ACCOUNT = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "account_since": "2026-11-30"}]


def test_a_new_account_defers_1v1_sends_over_its_stage_cap_and_status_shows_the_stage(camp: Path) -> None:
    # Day 1 of the campaign is the account's day 2: 初生号, 2 sends a day here (mass-sent or not: the platform counts messages).
    path = write(camp, [MASS], personas=NEW_ACCOUNT)
    text = path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 2}}\n")
    path.write_text(text, encoding="utf-8")
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    first = once("2026-12-01 20:01")
    assert first["sent"] == 2 and first["carried"] == {"nurture": 3} and first["deferred"] == 0
    rows = ledger(camp)
    assert [(r[0], r[2], r[3][:10]) for r in rows if r[1] == "pending"] == [
        ("contact:a3", "nurture:carried", "2026-12-02"),
        ("contact:a4", "nurture:carried", "2026-12-02"),
        ("contact:a5", "nurture:carried", "2026-12-03"),
    ]
    status = json.loads(invoke("status", "playbook.yaml", "--now", "2026-12-01 20:05", "--json").stdout)
    assert status["accounts"] == [
        {
            "persona": "host", "account": "wx_host_01", "account_since": "2026-11-30", "age_days": 2, "stage": "new",
            "stage_label": "初生号", "caps": {"adds": None, "private": 2, "invites": None}, "capacity": None,
        }
    ]  # fmt: skip
    later = json.loads(invoke("status", "-p", "playbook.yaml", "--now", "2026-12-20 09:00", "--json").stdout)["accounts"][0]
    assert (later["age_days"], later["stage_label"]) == (21, "成长号")  # days 16-29: still growing
    assert "初生号 (new)" in invoke("status", "playbook.yaml", "--now", "2026-12-01 20:05").stdout


def test_check_warns_when_a_new_accounts_1v1_sends_or_adds_pass_its_stage_cap(camp: Path) -> None:
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    path = write(camp, [DAY_A], hooks=[card], personas=NEW_ACCOUNT)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 2, adds: 3}}\n"), encoding="utf-8")
    rows = contacts("a", 5, "a")
    for row in rows:
        row.update(source="EYE100", added_at="2026-12-01T02:00:00Z")
    add_contacts(camp / "siyu.db", rows)
    found = json.dumps(json.loads(invoke("check", "playbook.yaml", "--json").stdout), ensure_ascii=False)
    assert "5 1v1 sends on 2026-12-01 as a 初生号 (new) account, above its cap of 2" in found
    assert "5 adds accepted on 2026-12-01 as a 初生号 (new) account, above its cap of 3" in found
    assert found.count("nurture-cap") == 2


def _nurtured(camp: Path, nurture: str, **extra: Any) -> Path:
    path = write(camp, [DAY_A], personas=NEW_ACCOUNT, **extra)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", f"limits:\n  nurture: {nurture}\n"), encoding="utf-8")
    return path


def _warnings(code: str) -> list[dict[str, Any]]:
    problems = json.loads(invoke("check", "playbook.yaml", "--json").stdout)["files"][0]["problems"]
    return [p for p in problems if p["code"] == code]


def test_an_account_registered_after_the_campaign_starts_is_warned_about(camp: Path) -> None:
    write(camp, [DAY_A], personas=[{**NEW_ACCOUNT[0], "account_since": "2026-12-03"}])
    (problem,) = _warnings("nurture-account")
    assert problem["path"] == "personas[0].account_since" and problem["severity"] == "warning"
    assert "registered on 2026-12-03, after the campaign starts on 2026-12-01: on days 1–2 it does not exist yet" in problem["message"]
    write(camp, [DAY_A], personas=NEW_ACCOUNT)
    assert _warnings("nurture-account") == []


def test_check_counts_the_invitations_into_a_personas_groups_against_its_stage_cap(camp: Path) -> None:
    from tests.playbooks_fixtures import add_event

    _nurtured(camp, "{new: {invites: 2}}")
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    for n in range(1, 6):
        add_event(camp / "siyu.db", f"join{n}", "group_joined", f"a{n}", "2026-12-01T03:00:00Z", "g1")
    (problem,) = _warnings("nurture-cap")
    assert "persona host would have 5 group invitations on 2026-12-01 as a 初生号 (new) account, above its cap of 2" in problem["message"]
    assert problem["path"] == "groups"


def test_without_contacts_check_estimates_from_the_playbooks_own_figures_and_says_so(camp: Path) -> None:
    # A 初生号 taking its cap of 10 adds a day, each entering a two-step journey (the add day and the next): 20 1v1 sends
    # from day 2, above its cap of 15. Its group takes members on day 1 while it may invite nobody.
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "close", "enter": {"event": "friend_added"}, "steps": [{"id": "hi", "after": "0m", "text": "你好"}, {"id": "ask", "after": "1d", "text": "用了吗"}]}
    _nurtured(camp, "{new: {adds: 10, private: 15, invites: 0}}", hooks=[card], journeys=[journey])
    invites, sends = sorted(_warnings("nurture-cap"), key=lambda p: p["path"])
    assert sends["path"] == "limits.nurture"
    assert "persona host would have 20 1v1 sends (estimated) on 2026-12-02 as a 初生号 (new) account, above its cap of 15" in sends["message"]
    assert "an estimate from the playbook's own figures, as the store has no contacts to count" in sends["message"]
    assert invites["path"] == "groups[0]" and "cap is 0 group invitations a day: an estimate from the playbook" in invites["message"]
    # With contacts in the store the counts are real: no estimate.
    add_contacts(camp / "siyu.db", contacts("a", 2, "a"))
    assert not [p for p in _warnings("nurture-cap") if "estimate" in p["message"]]


# --- the second audit of issue 14 (items 1 and 2) --------------------------------------------------------------

NAMED = "{{ contact.name }}，今天感觉怎么样？"
LATER_WELCOME = {"id": "h", "kind": "qr_code", "code": "H1", "tags": ["精准粉"], "persona": "host", "welcome": [{"after": "0m", "text": "欢迎"}, {"after": "1d", "at": "10:00", "text": NAMED}]}


def _added(camp: Path, n: int, at: str = "2026-12-01T01:00:00Z", hook: str | None = "h", prefix: str = "c", props: str = "{}", contacts_added_at: str | None = None) -> None:
    """n contacts, each with a friend_added event through `hook` (the contacts' own added_at as given)."""
    import sqlite3

    add_contacts(camp / "siyu.db", [{"contact_id": f"{prefix}{i}", "name": f"客{i}", "tags": [], "added_at": contacts_added_at} for i in range(1, n + 1)])
    with sqlite3.connect(camp / "siyu.db") as conn:
        conn.executemany(
            "INSERT INTO events (event_id, type, contact_id, at, hook, props) VALUES (?, 'friend_added', ?, ?, ?, ?)",
            [(f"add-{prefix}{i}", f"{prefix}{i}", at, hook, props) for i in range(1, n + 1)],
        )
    conn.close()


def test_plan_capacity_counts_welcome_steps_after_the_add_as_1v1_work(camp: Path) -> None:
    # The only 1v1 work is the hook's second welcome step, a day after the add: a person sends it (only the
    # `after: 0m` one goes with the add). 1,000 cards on day 1, 15%: 30 precise fans a day on days 4-8.
    card = {**LATER_WELCOME, "kind": "package_card"}
    write(camp, [MASS], hooks=[card], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--json").stdout)
    days = {d["day"]: d for d in found["days"]}
    assert [days[d]["operator_days"] for d in range(3, 10)] == [0.0, 1.5, 1.5, 1.5, 1.5, 1.5, 0.0]


def test_check_counts_welcome_steps_after_the_add_against_the_nurture_private_cap(camp: Path) -> None:
    path = write(camp, [MASS], hooks=[LATER_WELCOME], personas=NEW_ACCOUNT)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 3, adds: 50}}\n"), encoding="utf-8")
    _added(camp, 5)
    sends = [p["message"] for p in _warnings("nurture-cap")]
    assert any("persona host would have 5 1v1 sends on 2026-12-02 as a 初生号 (new) account, above its cap of 3" in m for m in sends), sends


def test_welcome_steps_after_the_add_take_capacity_and_carry_over(camp: Path) -> None:
    # Capacity 2 precise fans a day: the second welcome step of 4 contacts added on day 1 goes to 2 of them on day 2.
    write(camp, [], hooks=[LATER_WELCOME], personas=[{**PERSONAS[0], "capacity": {"precise": 2}}])
    _added(camp, 4)
    once("2026-12-01 09:10")
    once("2026-12-02 10:01")
    rows = query(camp / "siyu.db", "SELECT state, reason, substr(due_at, 1, 10) FROM drafts WHERE beat = 'welcome:h:2' ORDER BY due_at, target")
    assert rows == [("sent", None, "2026-12-02")] * 2 + [("pending", "capacity:carried", "2026-12-03")] * 2, rows


def test_plan_capacity_counts_only_the_operators_of_personas_with_1v1_work(camp: Path) -> None:
    # host has the journeys and one operator; helper (5 operators) sends nothing that needs a person.
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "close", "enter": {"event": "friend_added"}, "persona": "host", "steps": [{"id": "hi", "after": "0m", "text": NAMED}]}
    personas = [{"id": "host", "name": "小丸子", "capacity": {}}, {"id": "helper", "name": "小助手", "capacity": {"operators": 5}}]
    write(camp, [MASS], hooks=[card], journeys=[journey], personas=personas)
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--json").stdout)
    assert found["operators"] == 1
    assert found["backlog_peak"]["day"] == 7 and found["backlog_peak"]["backlog_operator_days"] == 2.5  # as with host alone
    assert [p["persona"] for p in found["personas"]] == ["host"]


RULED = {
    "rules": [{"on": {"event": "message_replied"}, "tag": ["+回复过"]}],
    "funnel": {"stages": [{"id": "added", "event": "friend_added"}, {"id": "replied", "event": "message_replied"}, {"id": "ordered", "event": "order"}]},
}


def test_plan_capacity_models_journeys_whose_audience_needs_a_tag_a_rule_gives(camp: Path) -> None:
    # 泛粉 are only written to once they replied (回复过, from message_replied): the journey counts for the share that reply.
    card = {"id": "card", "kind": "package_card", "code": "DRAW", "tags": ["泛粉"], "persona": "host"}
    journey = {"id": "warm", "enter": {"event": "friend_added"}, "audience": "泛粉 and 回复过", "steps": [{"id": "hi", "after": "0m", "text": NAMED}]}
    write(camp, [MASS], hooks=[card], journeys=[journey], personas=[{"id": "host", "name": "小丸子", "capacity": {}}], **RULED)

    def plan(*flags: str) -> dict[str, Any]:
        return json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", *flags, "--json").stdout)

    # 30 general fans a day on days 3-7 at 40 a day: 0.75 operator-days if all of them replied (the upper bound, no target).
    upper = plan()
    assert {d["operator_days"] for d in upper["days"] if 3 <= d["day"] <= 7} == {0.75}
    (assumed,) = upper["assumed"]
    assert (assumed["kind"], assumed["id"]) == ("journey", "warm") and assumed["share"] == 1.0 and "upper bound" in assumed["source"]
    half = plan("--rates", "replied=0.5")
    assert {d["operator_days"] for d in half["days"] if 3 <= d["day"] <= 7} == {0.375}
    assert half["assumed"][0]["source"] == "--rates replied"
    said = invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--rates", "replied=50%").stdout
    assert "journey warm counts for 50% of its contacts: those with 回复过, which a rule gives on message_replied (--rates replied)" in said


def test_plan_capacity_says_which_journeys_it_leaves_out(camp: Path) -> None:
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    hand = {"id": "vip", "enter": {"event": "friend_added"}, "audience": "精准粉 and 朋友圈互动", "steps": [{"id": "hi", "after": "0m", "text": NAMED}]}
    bought = {"id": "after", "enter": {"event": "order"}, "steps": [{"id": "use", "after": "2d", "text": NAMED}]}
    write(camp, [MASS], hooks=[card], journeys=[hand, bought], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--json").stdout)
    assert {(x["kind"], x["id"], x["why"]) for x in found["left_out"]} == {
        ("journey", "vip", "its audience needs 朋友圈互动, which no hook or rule gives (a tag set by hand or imported)"),
        ("journey", "after", "it is entered by order, not by the add"),
    }
    said = invoke("plan", "capacity", "playbook.yaml", "--cards", "1000").stdout
    assert "left out: journey vip (its audience needs 朋友圈互动" in said and "no day has 1v1 work" in said


def test_check_counts_adds_recorded_as_friend_added_events(camp: Path) -> None:
    # Adds recorded as events (import events, track, siyu serve), the contacts without added_at: counted once per contact and account.
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    _nurtured(camp, "{new: {adds: 3}}", hooks=[card])
    _added(camp, 5, at="2026-12-01T02:00:00Z", hook="card")
    (problem,) = _warnings("nurture-cap")
    assert "persona host would have 5 adds accepted on 2026-12-01 as a 初生号 (new) account, above its cap of 3" in problem["message"]


def test_check_counts_an_add_once_when_the_contact_and_an_event_both_record_it(camp: Path) -> None:
    import sqlite3

    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    _nurtured(camp, "{new: {adds: 3}}", hooks=[card])
    _added(camp, 3, at="2026-12-01T02:00:00Z", hook="card", contacts_added_at="2026-12-01T02:00:00Z")
    with sqlite3.connect(camp / "siyu.db") as conn:  # a second record of the same adds (serve's callback beside the import)
        conn.executemany(
            "INSERT INTO events (event_id, type, contact_id, at, hook, props) VALUES (?, 'friend_added', ?, '2026-12-01T02:00:05Z', 'card', '{\"persona\": \"host\"}')",
            [(f"cb-{i}", f"c{i}") for i in (1, 2, 3)],
        )
    conn.close()
    assert _warnings("nurture-cap") == []  # 3 adds, not 6 or 9


SHARED = [
    {"id": "host", "name": "小丸子", "account": "wx_same", "account_since": "2026-11-30"},
    {"id": "advisor", "name": "李老师", "account": "wx_same", "account_since": "2026-11-30"},
]


def test_two_personas_on_one_account_share_its_nurture_cap(camp: Path) -> None:
    # The cap is the account's (养号 is about the WeChat account): 3 1v1 sends a day between both personas, not 3 each.
    first = {**MASS, "id": "pa", "persona": "host"}
    second = {**MASS, "id": "qa", "persona": "advisor", "at": "20:30"}
    path = write(camp, [first, second], personas=SHARED)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 3}}\n"), encoding="utf-8")
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    once("2026-12-01 20:31")
    sent = query(camp / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE state = 'sent' AND due_at LIKE '2026-12-01%'")
    assert sent == [(3,)]
    (shared,) = [p for p in _warnings("nurture-account") if "share" in p["message"]]
    assert shared["path"] == "personas[1].account"
    assert "personas host and advisor both speak from account wx_same: its 养号 caps (limits.nurture) are shared" in shared["message"]
    sends = [p["message"] for p in _warnings("nurture-cap")]
    assert any("account wx_same (personas host, advisor) would have 10 1v1 sends on 2026-12-01" in m for m in sends), sends


def test_the_nurture_cap_message_gives_each_day_its_own_stage(camp: Path) -> None:
    # Account day 2 on the campaign's day 1: 初生号 until the account's day 3 here, then 成长号.
    path = write(camp, [{**MASS, "days": "1-3"}], personas=NEW_ACCOUNT)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {growing_from: 3, new: {private: 2}, growing: {private: 4}}\n"), encoding="utf-8")
    add_contacts(camp / "siyu.db", contacts("a", 5, "a"))
    (problem,) = _warnings("nurture-cap")
    assert "over on 2026-12-01 as a 初生号 (new, cap 2); 2026-12-02, 2026-12-03 as a 成长号 (growing, cap 4)" in problem["message"], problem["message"]


def test_limits_nurture_without_any_account_since_is_warned_about(camp: Path) -> None:
    path = write(camp, [DAY_A], personas=[{"id": "host", "name": "小丸子", "account": "wx_host_01"}])
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 2}}\n"), encoding="utf-8")
    (problem,) = _warnings("nurture-account")
    assert problem["path"] == "limits.nurture"
    assert "no persona has account_since: limits.nurture caps nothing" in problem["message"]


def test_plan_capacitys_busiest_day_is_the_one_with_the_most_work(camp: Path) -> None:
    playbook = Path(__file__).resolve().parent.parent / "playbooks" / "skincare-persona.yaml"
    found = json.loads(invoke("plan", "capacity", str(playbook), "--cards", "3000", "--json").stdout)
    busiest = max(found["days"], key=lambda d: d["operator_days"])
    assert any(d["day"] < busiest["day"] and d["operators_needed"] == busiest["operators_needed"] for d in found["days"])  # a tie on people
    said = invoke("plan", "capacity", str(playbook), "--cards", "3000").stdout
    assert f"the busiest day (day {busiest['day']}, {busiest['date']})" in said


def test_plan_capacity_refuses_two_rates_for_one_stage_named_alike(camp: Path) -> None:
    write(camp, [DAY_A], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    refused = invoke("plan", "capacity", "playbook.yaml", "--cards", "10", "--rates", "added=0.3,added=0.2", code=2).stderr
    assert "two rates" in refused


def test_plan_capacity_with_a_backlog_that_never_clears_stops_and_says_so(camp: Path) -> None:
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "close", "enter": {"event": "friend_added"}, "steps": [{"id": "hi", "after": "0m", "text": NAMED}]}
    write(camp, [MASS], hooks=[card], journeys=[journey], personas=[{"id": "host", "name": "小丸子", "capacity": {}}])
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "99999999", "--json").stdout)
    assert len(found["days"]) == 7 + 30  # the last day with new work, then 30 days
    assert found["backlog_left"] > 700000
    said = invoke("plan", "capacity", "playbook.yaml", "--cards", "99999999").stdout
    assert "the backlog does not clear within 30 days after the last new work" in said


def test_a_beat_with_no_persona_is_counted_against_each_contacts_own_account(camp: Path) -> None:
    # 3 contacts of each account: 3 1v1 sends a day per account, within the cap of 4; all 6 on one account was the old count.
    two = [
        {"id": "host", "name": "小丸子", "account": "wx_host_01", "account_since": "2026-11-30"},
        {"id": "advisor", "name": "李老师", "account": "wx_adv_01", "account_since": "2026-11-30"},
    ]
    path = write(camp, [MASS], personas=two)
    path.write_text(path.read_text(encoding="utf-8").replace("limits:\n", "limits:\n  nurture: {new: {private: 4}}\n"), encoding="utf-8")
    mine = [{**c, "account": "wx_host_01"} for c in contacts("a", 3, "a")]
    theirs = [{**c, "account": "wx_adv_01"} for c in contacts("b", 3, "a")]
    add_contacts(camp / "siyu.db", [*mine, *theirs])
    assert _warnings("nurture-cap") == []
    once("2026-12-01 20:01")
    assert query(camp / "siyu.db", "SELECT persona, COUNT(*) FROM drafts WHERE state = 'sent' GROUP BY persona") == [("advisor", 3), ("host", 3)]


def test_plan_capacity_gives_a_beat_with_no_persona_to_the_account_the_hooks_contacts_added(camp: Path) -> None:
    card = {"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["精准粉"], "persona": "advisor"}
    beat = {"id": "close", "title": "成交", "at": "20:00", "days": "2-3", "channel": "private", "audience": "精准粉", "text": "{{ contact.name }}，今晚截止"}
    personas = [{"id": "host", "name": "小丸子", "capacity": {}}, {"id": "advisor", "name": "李老师", "capacity": {}}]
    write(camp, [beat], hooks=[card], personas=personas)
    found = json.loads(invoke("plan", "capacity", "playbook.yaml", "--cards", "1000", "--json").stdout)
    assert [p["persona"] for p in found["personas"]] == ["advisor"]  # the card's contacts added advisor: the beat reaches them from it
