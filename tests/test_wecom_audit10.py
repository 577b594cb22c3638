"""What audit 10a of the wecom output found, each through the CLI against the fake WeCom (time injected, never slept)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests import test_wecom_audit
from tests.playbooks_fixtures import add_contacts, invoke, query, run_siyu, states, write_playbook
from tests.test_wecom_audit import env_for, killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, at, customers, once
from tests.wecom_fake import WecomFake

corp = test_wecom_audit.corp  # the fixture: a folder for a campaign on the fake corp, its clock at 12:31
REMIND = [{"type": "wecom", "remind_after": "1h"}]


def reminded(db: Path) -> list[int]:
    return [row[0] for row in query(db, "SELECT reminded FROM wecom_tasks ORDER BY part")]


def test_a_reminder_that_never_reached_wecom_counts_nothing_and_the_next_pass_sends_it(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=REMIND)
    add_contacts(corp / "siyu.db", customers(3))
    once("2026-12-01 12:31")
    monkeypatch.setenv("SIYU_WECOM_API", "http://127.0.0.1:9")
    summary = once("2026-12-01 13:40")  # exit 0: WeCom unreachable is retried, not a failure
    assert "reminded" not in summary["readback"] and "errors" not in summary["readback"]
    assert reminded(corp / "siyu.db") == [0]
    [line] = [error for error in summary["errors"] if "127.0.0.1:9" in error]
    assert "read back at a later pass" in line
    text = invoke("run", "--once", "--now", "2026-12-01 13:41").stderr
    assert "retrying:" in text and "error:" not in text
    monkeypatch.setenv("SIYU_WECOM_API", wecom.url)
    wecom.now = at("2026-12-01 13:45")
    assert once("2026-12-01 13:45")["readback"] == {"reminded": 1}
    assert reminded(corp / "siyu.db") == [1] and wecom.count("externalcontact/remind_groupmsg_send") == 1


def test_a_busy_answer_to_a_reminder_counts_nothing_and_waits_remind_after(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=REMIND)
    add_contacts(corp / "siyu.db", customers(3))
    once("2026-12-01 12:31")
    wecom.inject("externalcontact/remind_groupmsg_send", 45009, times=2)  # the client tries twice
    wecom.now = at("2026-12-01 13:40")
    summary = once("2026-12-01 13:40")
    assert "reminded" not in summary["readback"] and reminded(corp / "siyu.db") == [0]
    assert once("2026-12-01 13:50")["readback"] == {}  # not asked again every minute
    wecom.now = at("2026-12-01 14:41")
    assert once("2026-12-01 14:41")["readback"] == {"reminded": 1} and reminded(corp / "siyu.db") == [1]


def test_a_part_found_after_kill_9_keeps_the_customers_wecom_refused_and_report_sop_waits_for_every_part(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=REMIND)
    add_contacts(corp / "siyu.db", customers(10_003))
    wecom.not_friends.update({"wm0005", "wm0007"})  # both in part 1, the part the dead run never heard back from
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")
    wecom.now = at("2026-12-01 12:35")
    again = once("2026-12-01 12:35")
    assert again["readback"] == {"found": 1, "remade": 1} and len(wecom.templates) == 2
    assert (again["sent"], again["sent_before"], again["skipped"]) == (10_001, 9_998, {"not_friend": 2})
    assert query(corp / "siyu.db", "SELECT target, state, reason, outcome FROM drafts WHERE outcome IS NOT NULL ORDER BY target") == [
        ("contact:wm0005", "skipped", "not_friend", "not_friend"),
        ("contact:wm0007", "skipped", "not_friend", "not_friend"),
    ]
    first, second = sorted(wecom.templates)
    wecom.confirm(first, "aqi", at=at("2026-12-01 12:40"))  # part 2 (3 customers) still waits for aqi
    wecom.now = at("2026-12-01 13:40")
    assert once("2026-12-01 13:40")["readback"] == {"sent": 9_998, "reminded": 1}  # the task's one open part
    report = json.loads(invoke("report", "sop", "--json").stdout)
    assert (report["tasks"]["tasks"], report["tasks"]["tasks_done"]) == (1, 0)
    [aqi] = report["staff"]
    assert (aqi["staff"], aqi["tasks"], aqi["tasks_done"], aqi["recipients"]) == ("aqi", 1, 0, 10_001)
    wecom.confirm(second, "aqi", at=at("2026-12-01 13:45"))
    invoke("sync", "--now", "2026-12-01 13:50")
    assert json.loads(invoke("report", "sop", "--json").stdout)["tasks"]["tasks_done"] == 1


def test_reminders_count_siyus_tasks_and_say_the_mass_sends_apart(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=REMIND)
    add_contacts(corp / "siyu.db", customers(10_002))
    once("2026-12-01 12:31")
    wecom.now = at("2026-12-01 13:40")
    assert once("2026-12-01 13:40")["readback"] == {"reminded": 1, "reminded_parts": 2}
    assert "reminded 1 task(s) (2 mass sends)" in invoke("run", "--once", "--now", "2026-12-01 14:50").stderr


def test_drafts_left_out_before_a_send_killed_9_are_settled_as_what_they_were_not_left_in_doubt(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    wecom.inject("externalcontact/add_msg_template", -1, times=2)  # the first pass records them; WeCom busy, a retry later
    assert once("2026-12-01 12:31")["retrying"] == 4
    with sqlite3.connect(corp / "siyu.db") as conn:  # wm0003 deleted aqi before the retry: the retry leaves them out
        conn.execute("INSERT INTO events (event_id, type, contact_id, at, props) VALUES ('gone', 'friend_deleted', 'wm0003', '2026-12-01T04:32:00Z', '{}')")
    conn.close()
    wecom.now = at("2026-12-01 12:33")
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:33")
    wecom.now = at("2026-12-01 12:45")
    after = run_siyu(corp, "run", "--once", "--now", "2026-12-01 12:45", "--json", env=env_for(wecom))
    assert after.returncode == 0, after.stderr
    summary = json.loads(after.stdout)
    assert (summary["unknown"], summary["readback"], summary["skipped"]) == (0, {"found": 1}, {"not_friend": 1})
    assert sorted(next(iter(wecom.templates.values())).recipients) == ["wm0000", "wm0001", "wm0002"]
    assert states(corp / "siyu.db") == {"sent": 3, "skipped": 1}


def test_http_404_from_a_call_after_the_token_is_a_setup_error_and_the_fixed_pass_sends(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    later = {**MASS, "id": "later", "at": "13:00", "text": "第二条福利～"}
    write_playbook(corp, beats=[MASS, later], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(2))
    once("2026-12-01 12:31")  # the token is cached now: the next pass makes no gettoken
    monkeypatch.setenv("SIYU_WECOM_API", wecom.url + "/wecom")
    wecom.now = at("2026-12-01 13:01")
    summary = once("2026-12-01 13:01", code=1)
    assert summary["blocked"] == ["wecom"] and summary["failed"] == 0
    assert any("HTTP 404" in error and "without /cgi-bin" in error for error in summary["errors"])
    assert query(corp / "siyu.db", "SELECT state, COUNT(*) FROM drafts WHERE beat = 'later' GROUP BY state") == [("pending", 2)]
    monkeypatch.setenv("SIYU_WECOM_API", wecom.url)
    assert once("2026-12-01 13:03")["sent"] == 2


def test_retry_exits_1_when_its_read_back_holds_an_error_as_run_and_sync_do(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(2))
    once("2026-12-01 12:31")
    wecom.templates.clear()  # WeCom answers 41047 for the open task: a person looks
    wecom.now = at("2026-12-01 12:45")
    result = invoke("retry", "--unknown", "--now", "2026-12-01 12:45", "--json", code=1)
    assert json.loads(result.stdout)["readback"]["errors"] == 1
