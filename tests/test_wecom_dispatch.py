"""The `wecom` output end to end against the fake WeCom server on 127.0.0.1, through the CLI.

Send tasks become WeCom tasks once; what staff confirm comes back into the ledger and `report sop`
without anyone typing `outbox done`; unconfirmed tasks are reminded at most 3 times in 24 hours;
a pass killed between creating a task and recording its msgid leaves it unknown, and the next
pass finds it in WeCom's list instead of creating a second one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import SHANGHAI, add_contacts, invoke, query, run_siyu, siyu_cmd, siyu_env, states, write_playbook
from tests.wecom_fake import WecomFake

MASS = {"id": "close", "title": "结营福利", "at": "12:30", "days": "all", "channel": "private", "audience": "parents", "text": "结营福利今晚24点截止～"}
NAMED = {**MASS, "id": "named", "title": "点名", "at": "13:00", "text": "{{ contact.name }}，结营福利今晚截止～"}
POST = {"id": "morning", "title": "早分享", "at": "12:00", "days": "all", "channel": "group", "text": "早上好，第{{ day }}天"}
PERSONAS = [{"id": "host", "name": "阿栖", "role": "班主任", "account": "wx_host_01", "wecom_userid": "aqi"}]
GROUPS = [{"id": "g1", "name": "秒杀1群", "persona": "host", "chat_id": "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA"}, {"id": "g2", "name": "秒杀2群", "persona": "host", "chat_id": "wrOgQhDgAAcwMTB7YmDkbeBsgT_BBBB"}]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def customers(n: int) -> list[dict[str, Any]]:
    return [{"contact_id": f"wm{i:04d}", "name": f"客户{i}", "tags": ["家长"], "account": "wx_host_01"} for i in range(n)]


@pytest.fixture
def corp(wecom_corp: Path) -> Path:
    """conftest's wecom_corp: a campaign folder as the working directory, the fake's clock at 12:00."""
    return wecom_corp


def once(now: str, code: int = 0) -> dict[str, Any]:
    return json.loads(invoke("run", "--once", "--now", now, "--json", code=code).stdout)


def ledger(db: Path) -> dict[str, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in query(db, "SELECT target, state, reason, outcome, done_by FROM drafts WHERE beat = 'close'")}


def test_a_mass_send_is_one_wecom_task_and_what_staff_send_comes_back(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[POST, MASS, NAMED], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}], limits={"missed": {"max_late": "6h"}})
    add_contacts(corp / "siyu.db", customers(30))
    wecom.not_friends.add("wm0029")
    wecom.now = at("2026-12-01 12:31")
    first = once("2026-12-01 12:31")
    calls = wecom.of("externalcontact/add_msg_template")
    assert [(c.body["chat_type"], len(c.body.get("external_userid") or c.body.get("chat_id_list"))) for c in calls] == [("group", 2), ("single", 30)]
    assert calls[1].body["sender"] == "aqi" and calls[1].body["text"] == {"content": "结营福利今晚24点截止～"}
    assert (first["sent"], first["skipped"], first["tasks"]) == (31, {"not_friend": 1}, 2)  # wm0029 is in WeCom's fail_list
    assert ledger(corp / "siyu.db")["contact:wm0029"] == ("skipped", "not_friend", "not_friend", None)
    assert once("2026-12-01 12:40")["sent"] == 0
    assert wecom.count("externalcontact/add_msg_template") == 2  # nothing created twice

    # The staff member confirms in their client at 12:35 (on time); two customers are over the month's quota, one deselected.
    [mass] = [t.msgid for t in wecom.templates.values() if t.chat_type == "single"]
    wecom.confirm(mass, "aqi", at=at("2026-12-01 12:35"), quota=["wm0001", "wm0002"], skip=["wm0003"])
    wecom.now = at("2026-12-01 12:55")
    back = once("2026-12-01 12:55")
    assert back["readback"] == {"sent": 26, "quota": 2, "not_sent": 1}
    rows = ledger(corp / "siyu.db")
    assert rows["contact:wm0000"] == ("sent", None, "sent", "aqi") and rows["contact:wm0001"][2] == "quota" and rows["contact:wm0003"][2] == "not_sent"
    [(done_at,)] = query(corp / "siyu.db", "SELECT done_at FROM drafts WHERE target = 'contact:wm0000' AND beat = 'close'")
    assert done_at == "2026-12-01T04:35:00Z"

    # The group task is still open: a pass reads it at most every 5 minutes (cron runs every minute); sync reads it now.
    reads = wecom.count("externalcontact/get_groupmsg_task")
    once("2026-12-01 12:57")
    assert wecom.count("externalcontact/get_groupmsg_task") == reads
    invoke("sync", "--now", "2026-12-01 12:58")
    assert wecom.count("externalcontact/get_groupmsg_task") == reads + 1
    once("2026-12-01 13:04")
    assert wecom.count("externalcontact/get_groupmsg_task") == reads + 2

    report = json.loads(invoke("report", "sop", "--json").stdout)
    close = next(row for row in report["rows"] if row["beat"] == "close")
    assert close["done"] == 26 and close["quota"] == 2 and close["not_friend"] == 1
    staff = {row["staff"]: row for row in report["staff"]}
    # Every task WeCom handed aqi (the table adds up with the line above): one confirmed on time, reaching 26 of its 29
    # (wm0029 was in the fail_list); the group task and the 29 named one-customer tasks are not confirmed yet.
    assert (staff["aqi"]["tasks"], staff["aqi"]["tasks_done"], staff["aqi"]["on_time"], staff["aqi"]["late"], staff["aqi"]["recipients_reached"], staff["aqi"]["recipients"]) == (31, 1, 1, 0, 26, 60)
    assert (report["tasks"]["tasks"], report["tasks"]["tasks_done"]) == (31, 1)  # with the post and the 29 named one-customer tasks


def test_an_unconfirmed_task_is_reminded_after_remind_after_at_most_three_times_a_day(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom", "remind_after": "2h"}])
    add_contacts(corp / "siyu.db", customers(3))
    wecom.now = at("2026-12-01 12:31")
    once("2026-12-01 12:31")
    reminded = []
    for moment in ("2026-12-01 13:31", "2026-12-01 14:31", "2026-12-01 16:31", "2026-12-01 18:40", "2026-12-01 21:00", "2026-12-02 08:00"):
        wecom.now = at(moment)
        once(moment)
        reminded.append(wecom.count("externalcontact/remind_groupmsg_send"))
    assert reminded == [0, 1, 2, 3, 3, 3]


def test_kill_9_between_creating_the_task_and_recording_its_msgid_is_found_not_sent_again(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(40))
    wecom.now = at("2026-12-01 12:31")
    wecom.hang("externalcontact/add_msg_template", process=True)  # WeCom makes the task; its answer never leaves
    env = siyu_env(SIYU_WECOM_API=wecom.url, SIYU_WECOM_CORP_ID=wecom.corp_id, SIYU_WECOM_SECRET=wecom.secret)
    proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", "2026-12-01 12:31"), cwd=corp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wecom.wait_for("externalcontact/add_msg_template")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wecom.release()
    assert states(corp / "siyu.db") == {"claimed": 40}
    again = run_siyu(corp, "run", "--once", "--now", "2026-12-01 12:40", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert wecom.count("externalcontact/add_msg_template") == 1  # found through get_groupmsg_list_v2
    assert wecom.count("externalcontact/get_groupmsg_list_v2") >= 1
    assert states(corp / "siyu.db") == {"sent": 40}
    [(msgid,)] = query(corp / "siyu.db", "SELECT remote_id FROM wecom_tasks")
    assert msgid in wecom.templates


def test_kill_9_before_wecom_made_the_task_sends_it_once_on_the_next_pass(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(5))
    wecom.now = at("2026-12-01 12:31")
    wecom.hang("externalcontact/add_msg_template", process=False)  # received, never acted on
    env = siyu_env(SIYU_WECOM_API=wecom.url, SIYU_WECOM_CORP_ID=wecom.corp_id, SIYU_WECOM_SECRET=wecom.secret)
    proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", "2026-12-01 12:31"), cwd=corp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wecom.wait_for("externalcontact/add_msg_template")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wecom.release()
    again = run_siyu(corp, "run", "--once", "--now", "2026-12-01 12:40", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"sent": 5}


def test_a_welcome_with_a_fresh_code_goes_through_send_welcome_msg_once(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli._time import to_db
    from siyu_cli.store import open_store

    hook = {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": "你好呀，我是阿栖～"}, {"after": "1d", "text": "用得怎么样？"}]}
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook], outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", [{"contact_id": "wmNEW", "name": "新客", "tags": [], "source": "EYE100", "added_at": "2026-12-01T04:31:00Z"}])
    wecom.now = at("2026-12-01 12:31")
    code = wecom.welcome_code("aqi", "wmNEW")
    db = open_store(str(corp / "siyu.db"))
    db.execute("INSERT INTO wecom_welcome_codes (code, contact_id, userid, received_at) VALUES (?, 'wmNEW', 'aqi', '2026-12-01T04:31:00Z')", [code])
    db.conn.commit()
    first = once("2026-12-01 12:31:05")
    assert first["sent"] == 1 and wecom.count("externalcontact/send_welcome_msg") == 1
    assert wecom.of("externalcontact/send_welcome_msg")[0].body["welcome_code"] == code
    assert wecom.count("externalcontact/add_msg_template") == 0
    assert query(corp / "siyu.db", "SELECT used_at FROM wecom_welcome_codes")[0][0] == to_db(datetime(2026, 12, 1, 12, 31, 5, tzinfo=SHANGHAI))
    # The second step, a day later, is a one-customer mass send: the code is spent.
    wecom.now = at("2026-12-02 12:31")
    once("2026-12-02 12:31:05")
    made = [c for c in wecom.of("externalcontact/add_msg_template") if c.errcode == 0]  # a day on, the token expired once (42001)
    assert wecom.count("externalcontact/send_welcome_msg") == 1 and len(made) == 1 and made[0].body["external_userid"] == ["wmNEW"]


def test_siyu_sync_reads_back_without_a_pass_and_refuses_a_playbook_without_wecom(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[POST], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    wecom.now = at("2026-12-01 12:01")
    once("2026-12-01 12:01")
    [msgid] = list(wecom.templates)
    wecom.confirm(msgid, "aqi", at=at("2026-12-01 12:05"))
    result = invoke("sync", "--now", "2026-12-01 12:06", "--json")
    assert json.loads(result.stdout)["readback"] == {"sent": 2}
    assert query(corp / "siyu.db", "SELECT target, outcome, done_by, done_at FROM drafts ORDER BY target") == [
        ("group:g1", "sent", "aqi", "2026-12-01T04:05:00Z"),
        ("group:g2", "sent", "aqi", "2026-12-01T04:05:00Z"),
    ]
    assert "nothing new" in invoke("sync", "--now", "2026-12-01 12:07").stderr  # a closed task is not read again
    plain = write_playbook(corp / "plain", beats=[POST], days=1)
    refused = invoke("sync", str(plain), code=2)
    assert "no output that reads back" in refused.stderr and "add {type: wecom}" in refused.stderr


def test_eight_processes_at_the_same_moment_create_each_task_once(corp: Path, wecom: WecomFake) -> None:
    named = {**NAMED, "at": "12:30"}
    write_playbook(corp, beats=[POST, MASS, named], days=1, personas=PERSONAS, groups=GROUPS, outputs=["outbox", {"type": "wecom"}], limits={"missed": {"max_late": "6h"}})
    add_contacts(corp / "siyu.db", customers(300))
    wecom.now = at("2026-12-01 12:31")
    env = siyu_env(SIYU_WECOM_API=wecom.url, SIYU_WECOM_CORP_ID=wecom.corp_id, SIYU_WECOM_SECRET=wecom.secret)
    procs = [
        subprocess.Popen(siyu_cmd("run", "--once", "--now", "2026-12-01 12:31"), cwd=corp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), errors
    made = [c for c in wecom.of("externalcontact/add_msg_template") if c.errcode == 0]
    # One group task, one mass send to 300, and a one-customer task per customer for the text that names them.
    assert sorted(len(c.body.get("external_userid") or c.body.get("chat_id_list")) for c in made) == [1] * 300 + [2, 300]
    assert len({tuple(c.body.get("external_userid") or c.body["chat_id_list"]) for c in made}) == len(made)
    assert states(corp / "siyu.db") == {"sent": 602}
    assert wecom.count("gettoken") == 1  # the token is shared through the store
    assert len(list((corp / "outbox").rglob("*.md"))) == 302
