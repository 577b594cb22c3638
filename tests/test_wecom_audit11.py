"""What audit 11 (auditw) of the wecom output found, each through the CLI against the fake WeCom (time injected, never slept);
and the pass line's capacity carries (auditg 5)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests import test_capacity, test_wecom_audit
from tests.playbooks_fixtures import add_contacts, invoke, query, run_siyu, states, write_playbook
from tests.test_wecom_audit import env_for, killed_in_second_part, killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, POST, at, customers, once
from tests.wecom_fake import WecomFake

corp = test_wecom_audit.corp  # the fixture: a folder for a campaign on the fake corp, its clock at 12:31
camp = test_capacity.camp
DAILY = {**MASS, "id": "p", "title": "打卡", "at": "12:00", "text": "今天记得打卡哦"}  # the same copy every day, in every cohort
EVENING = {**POST, "id": "live", "title": "直播", "text": "今晚8点直播开始啦"}


def cohort(folder: Path, ids: list[str], beat: dict[str, object], start: str = "2026-11-30", **extra: object) -> None:
    write_playbook(folder, beats=[beat], days=3, start=start, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}], **extra)
    add_contacts(folder / "siyu.db", [{"contact_id": ident, "name": ident, "tags": ["家长"], "account": "wx_host_01", "added_at": "2026-11-01T00:00:00Z"} for ident in ids])


def run(folder: Path, wecom: WecomFake, now: str, code: int = 0) -> dict[str, object]:
    result = run_siyu(folder, "run", "--once", "--now", now, "--json", env=env_for(wecom))
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def test_a_task_in_doubt_never_adopts_another_stores_send_of_the_same_text_made_before_its_claim(tmp_path: Path, wecom: WecomFake) -> None:
    other, ours = tmp_path / "xf", tmp_path / "xe"
    cohort(other, ["wmX1"], DAILY, start="2026-11-29")
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY)
    for name in ("wmX1", "wmX2", "wmX3"):
        wecom.add_contact(name, name, follow=("aqi",))  # all three are aqi's customers: WeCom would refuse none
    wecom.now = at("2026-11-29 12:01")
    run(other, wecom, "2026-11-29 12:01")  # the other cohort's store: its 11-29 send to wmX1
    wecom.now = at("2026-11-30 12:01")
    run(other, wecom, "2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)  # WeCom never got it
    wecom.now = at("2026-11-30 12:06")
    again = run(ours, wecom, "2026-11-30 12:06", code=1)  # exit 1: the other store's same-day send needs a person
    # Its 11-30 send reaches wmX1 only, and wmX2 and wmX3 are still aqi's customers: not this task minus WeCom's refusals.
    assert again["readback"] == {"to_check": 1, "errors": 1}
    [line] = [error for error in again["errors"] if "cannot tell that WeCom refused" in error]
    assert "reaches 1 of this part's 3 customers" in line and "siyu outbox done" in line
    assert states(ours / "siyu.db") == {"unknown": 3}  # nothing adopted, nothing made again
    assert len(wecom.templates) == 2


def test_a_send_listed_before_the_claim_is_not_the_task_so_it_is_made(tmp_path: Path, wecom: WecomFake) -> None:
    other, ours = tmp_path / "xf", tmp_path / "xe"
    cohort(other, ["wmX1"], DAILY, start="2026-11-29")
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY)
    wecom.now = at("2026-11-29 12:01")
    run(other, wecom, "2026-11-29 12:01")  # the day before: the same text, staff member and a customer of ours
    wecom.now = at("2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)
    wecom.now = at("2026-11-30 12:06")
    again = run(ours, wecom, "2026-11-30 12:06")
    assert again["readback"] == {"remade": 1} and again["sent"] == 3
    [(msgid,)] = query(ours / "siyu.db", "SELECT remote_id FROM wecom_tasks")
    assert sorted(wecom.templates[msgid].recipients) == ["wmX1", "wmX2", "wmX3"]
    assert query(ours / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE outcome = 'not_friend'") == [(0,)]


def test_a_group_post_in_doubt_does_not_adopt_yesterdays_post_of_another_store(tmp_path: Path, wecom: WecomFake) -> None:
    yesterday, ours, third = tmp_path / "xb", tmp_path / "xa", tmp_path / "xc"
    for folder in (yesterday, ours, third):
        cohort(folder, [], EVENING, start="2026-11-29" if folder is yesterday else "2026-11-30")
    wecom.now = at("2026-11-29 12:01")
    run(yesterday, wecom, "2026-11-29 12:01")
    [posted] = list(wecom.templates)
    wecom.confirm(posted, "aqi", at=at("2026-11-29 12:03"))
    wecom.now = at("2026-11-30 12:01")
    for folder in (ours, third):
        killed_mid(folder, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)
    wecom.now = at("2026-11-30 12:06")
    again = run(ours, wecom, "2026-11-30 12:06")  # yesterday's post is not today's: made now
    assert again["readback"] == {"remade": 1} and again["sent"] == 2
    assert query(ours / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE done_at IS NOT NULL") == [(0,)]
    # The third store sees ours, made since its claim and sent to no group yet: it may be its own, so a person looks.
    left = run(third, wecom, "2026-11-30 12:07", code=1)
    assert left["readback"] == {"to_check": 1, "errors": 1} and states(third / "siyu.db") == {"unknown": 2}
    assert query(third / "siyu.db", "SELECT COUNT(*) FROM wecom_tasks") == [(0,)]
    owned = [query(folder / "siyu.db", "SELECT remote_id FROM wecom_tasks") for folder in (yesterday, ours)]
    assert len({row[0][0] for row in owned}) == 2 and len(wecom.templates) == 2  # none owned twice


def test_two_sends_that_may_be_the_task_are_left_for_a_person(tmp_path: Path, wecom: WecomFake) -> None:
    first, second, ours = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (first, second, ours):
        cohort(folder, ["wmX1", "wmX2"], DAILY)
    wecom.now = at("2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)
    run(first, wecom, "2026-11-30 12:02")  # two copies of the store sent the same text to the same customers
    run(second, wecom, "2026-11-30 12:02")
    wecom.now = at("2026-11-30 12:06")
    again = run(ours, wecom, "2026-11-30 12:06", code=1)
    assert again["readback"] == {"to_check": 1, "errors": 1}
    assert any("siyu cannot tell which" in error for error in again["errors"])
    assert states(ours / "siyu.db") == {"unknown": 2} and len(wecom.templates) == 2


def test_a_wrong_secret_stops_read_back_at_its_first_call_with_one_error_and_the_fix(corp: Path, wecom: WecomFake) -> None:
    named = {**MASS, "id": "named", "text": "{{ contact.name }}，结营福利今晚截止～"}  # one task per customer: 6 open tasks
    later = {**MASS, "id": "later", "at": "13:00", "text": "第二条福利～"}
    write_playbook(corp, beats=[named, later], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(6))
    assert once("2026-12-01 12:31")["sent"] == 6
    wecom.expire_tokens()
    wecom.secret = "rotated"
    wecom.now = at("2026-12-01 13:01")
    before = wecom.count("gettoken")
    summary = once("2026-12-01 13:01", code=1)
    assert summary["readback"] == {"errors": 1} and summary["blocked"] == ["wecom"]
    assert wecom.count("gettoken") - before <= 2  # read-back's one, dispatch's one: not one per open task
    [line] = [error for error in summary["errors"] if "40001" in error]  # said once, read-back and dispatch alike
    assert "SIYU_WECOM_SECRET" in line
    assert query(corp / "siyu.db", "SELECT state, COUNT(*) FROM drafts WHERE beat = 'later' GROUP BY state") == [("pending", 6)]
    before = wecom.count("gettoken")
    result = invoke("sync", "--now", "2026-12-01 13:02", code=1)
    assert result.stderr.count("40001") == 1 and "SIYU_WECOM_SECRET" in result.stderr
    assert wecom.count("gettoken") - before == 1


def test_reminders_are_capped_at_3_in_any_24_hours_and_wecom_is_not_asked_for_a_fourth(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom", "remind_after": "1h"}])
    add_contacts(corp / "siyu.db", customers(2))
    once("2026-12-01 12:31")
    for moment in ("2026-12-01 13:40", "2026-12-02 09:00", "2026-12-02 11:00", "2026-12-02 13:45"):
        wecom.now = at(moment)
        assert once(moment)["readback"] == {"reminded": 1}, moment
    # 12-02 13:45 was allowed: 09:00 and 11:00 are the only others in the 24 hours before it. At 15:00 three are.
    wecom.now = at("2026-12-02 15:00")
    asked = wecom.count("externalcontact/remind_groupmsg_send")
    summary = once("2026-12-02 15:00")
    assert summary["readback"] == {} and not summary["errors"]
    assert wecom.count("externalcontact/remind_groupmsg_send") == asked  # not asked (WeCom would answer 45009)
    [(times,)] = query(corp / "siyu.db", "SELECT reminder_times FROM wecom_tasks")
    assert json.loads(times) == ["2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z", "2026-12-02T05:45:00Z"]
    wecom.now = at("2026-12-03 09:01")  # 09:00 has left the 24 hours
    assert once("2026-12-03 09:01")["readback"] == {"reminded": 1}


def test_the_pass_counts_what_a_recovery_settled(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(10_003))
    wecom.not_friends.update({"wm0005", "wm10002"})
    killed_in_second_part(corp, wecom, "2026-12-01 12:31", process=True)
    wecom.now = at("2026-12-01 12:35")
    result = run_siyu(corp, "run", "--once", "--now", "2026-12-01 12:35", "--json", env=env_for(wecom))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["recovered"], summary["sent"], summary["settled"]) == (10_003, 0, {"sent": 10_001, "not_friend": 2})
    assert states(corp / "siyu.db") == {"sent": 10_001, "skipped": 2}


def test_the_pass_line_says_a_recovery_settled_drafts_sent(corp: Path, wecom: WecomFake) -> None:
    named = {**MASS, "id": "named", "text": "{{ contact.name }}，结营福利今晚截止～"}  # one task per customer
    write_playbook(corp, beats=[named], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")  # the first task made, its answer lost
    wecom.now = at("2026-12-01 12:35")
    text = invoke("run", "--once", "--now", "2026-12-01 12:35").stderr
    assert "sent 3 ·" in text
    assert "recovered 4 from a dead run (settled 1 sent)" in text and "read back found 1" in text
    assert states(corp / "siyu.db") == {"sent": 4} and len(wecom.templates) == 4


def test_report_sop_never_rounds_a_missed_recipient_up_to_100_percent(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(2_001))
    once("2026-12-01 12:31")
    [msgid] = list(wecom.templates)
    wecom.confirm(msgid, "aqi", at=at("2026-12-01 12:33"), quota=["wm0007"])  # one refused by the monthly quota
    invoke("sync", "--now", "2026-12-01 12:40")
    text = " ".join(invoke("report", "sop").stdout.split())
    assert "2000 of 2001 recipients reached (99.9%)" in text and "100.0%" in text  # the task rate is 1 of 1
    assert "recipients reached (100.0%)" not in text


def test_the_pass_line_says_capacity_carries_apart_from_quiet_hours(camp: Path) -> None:
    test_capacity.write(camp, [test_capacity.DAY_A])
    add_contacts(camp / "siyu.db", test_capacity.contacts("a", 5, "a"))
    result = invoke("run", "--once", "--now", "2026-12-01 20:01")
    assert "deferred 0 · carried 3 (capacity) · skipped 0" in result.stderr
    summary = json.loads(invoke("run", "--once", "--now", "2026-12-01 20:02", "--json").stdout)
    assert summary["carried"] == {} and summary["deferred"] == 0


def test_two_days_of_a_daily_text_in_doubt_at_once_each_keep_their_own_send_and_none_goes_twice(tmp_path: Path, wecom: WecomFake) -> None:
    """verify11 #2: day 1's task (never made) must not take day 2's send (made, its answer lost), or day 2 is made again."""
    ours = tmp_path / "xg"
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY, limits={"missed": {"max_late": "2d"}})
    for name in ("wmX1", "wmX2", "wmX3"):
        wecom.add_contact(name, name, follow=("aqi",))
    wecom.now = at("2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)  # day 1: WeCom never got it
    wecom.now = at("2026-12-01 12:01")
    with sqlite3.connect(ours / "siyu.db") as conn:
        conn.execute("DELETE FROM wecom_tokens")  # the fake's clock jumped a day: its token would answer 42001 to a hung call
    conn.close()
    wecom.inject("externalcontact/get_groupmsg_list_v2", 45009, times=None)  # day 1 cannot be looked for today
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-12-01 12:01")  # day 2: made, its answer lost
    wecom.clear()
    [day2] = list(wecom.templates)
    wecom.now = at("2026-12-01 12:06")
    again = run(ours, wecom, "2026-12-01 12:06")
    assert again["readback"] == {"found": 1, "remade": 1}, again
    assert len(wecom.templates) == 2  # day 2's send, and day 1's made now: nobody gets a text twice
    remote = dict(query(ours / "siyu.db", "SELECT d.day, t.remote_id FROM wecom_tasks t JOIN drafts d ON d.task_id = t.task_id GROUP BY d.day"))
    assert remote[2] == day2 and remote[1] != day2


def test_in_a_rehearsal_two_days_in_doubt_seconds_apart_leave_the_one_send_to_a_person_and_none_goes_twice(tmp_path: Path, wecom: WecomFake) -> None:
    """verify12 A, verify13 3: WeCom stamps real time while --now runs days ahead, so both days' asks are seconds
    apart, and clocks a few seconds off cannot say whose the one send is: neither takes it, neither is made again."""
    import time

    ours = tmp_path / "r1"
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY, start="2026-12-10", limits={"missed": {"max_late": "2d"}})
    for name in ("wmX1", "wmX2", "wmX3"):
        wecom.add_contact(name, name, follow=("aqi",))
    wecom.now = time.time()
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-12-10 12:01", process=False)  # day 1: never made
    wecom.now = time.time() + 8  # WeCom's clock a few seconds ahead of this machine's
    wecom.inject("externalcontact/get_groupmsg_list_v2", 45009, times=None)
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-12-11 12:01")  # day 2: made, its answer lost
    wecom.clear()
    wecom.now = time.time() + 20
    again = run(ours, wecom, "2026-12-11 12:06", code=1)
    assert again["readback"] == {"to_check": 2, "errors": 2}, again
    assert len(wecom.templates) == 1  # the one send WeCom holds; nobody gets the text twice
    assert states(ours / "siyu.db") == {"unknown": 6}
    assert sum("also in doubt, may be too" in error for error in again["errors"]) == 2


def test_retry_unknown_of_a_task_siyu_cannot_tell_apart_makes_it_when_a_person_names_it(tmp_path: Path, wecom: WecomFake) -> None:
    """verify12 B: the to-check message says `siyu retry --unknown TASK` makes a task WeCom has no send of; it must."""
    other, ours = tmp_path / "b", tmp_path / "a"
    cohort(other, ["wmX1"], DAILY, start="2026-11-30")
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY)
    for name in ("wmX1", "wmX2", "wmX3"):
        wecom.add_contact(name, name, follow=("aqi",))
    wecom.now = at("2026-11-30 12:01")
    run(other, wecom, "2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01", process=False)
    wecom.now = at("2026-11-30 12:06")
    again = run(ours, wecom, "2026-11-30 12:06", code=1)
    assert again["readback"]["to_check"] == 1
    [(task,)] = query(ours / "siyu.db", "SELECT DISTINCT task_id FROM drafts")  # the name the message gives
    assert f"`siyu retry --unknown {task}` makes it" in " ".join(again["errors"])
    blind = run_siyu(ours, "retry", "--unknown", "--now", "2026-11-30 12:08", env=env_for(wecom))
    assert blind.returncode == 1 and "none is sent again" in blind.stderr  # unnamed: every task in doubt waits for a person
    [(draft,)] = query(ours / "siyu.db", "SELECT MIN(draft_id) FROM drafts")
    one = run_siyu(ours, "retry", "--unknown", draft, "--now", "2026-11-30 12:08", env=env_for(wecom))
    assert one.returncode == 1 and "none is sent again" in one.stderr  # a draft of it is no decision about the task
    assert len(wecom.templates) == 1  # the other store's send only
    named = run_siyu(ours, "retry", "--unknown", task, "--now", "2026-11-30 12:08", "--json", env=env_for(wecom))
    assert named.returncode == 0, named.stderr
    summary = json.loads(named.stdout)
    assert summary["sent"] == 3 and len(wecom.templates) == 2
    assert any("made as you named it, though siyu could not rule out that WeCom holds it" in w and "reaches 1 of this part's 3 customers" in w for w in summary["warnings"]), summary


def test_retry_unknown_of_a_task_wecom_did_make_finds_it_and_sends_nothing_again(tmp_path: Path, wecom: WecomFake) -> None:
    """verify13 #4: it was found and settled sent, then refused as 'sent, not failed' (exit 1)."""
    ours = tmp_path / "a"
    cohort(ours, ["wmX1", "wmX2", "wmX3"], DAILY)
    wecom.now = at("2026-11-30 12:01")
    killed_mid(ours, wecom, "externalcontact/add_msg_template", "2026-11-30 12:01")  # made, its answer lost
    [(draft,)] = query(ours / "siyu.db", "SELECT MIN(draft_id) FROM drafts")  # as siyu status names it
    result = run_siyu(ours, "retry", "--unknown", draft, "--now", "2026-11-30 12:03", "--json", env=env_for(wecom))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["readback"] == {"found": 1} and len(wecom.templates) == 1
    assert any("found in WeCom's list and settled sent" in w for w in summary["warnings"]), summary
