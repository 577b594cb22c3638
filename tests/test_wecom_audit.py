"""What the hostile audit of issue 12 found in the wecom output, each through the CLI against the fake WeCom."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import add_contacts, invoke, query, run_siyu, siyu_cmd, siyu_env, states, write_playbook
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, POST, at, customers, once
from tests.wecom_fake import WecomFake

MOMENTS = {"id": "life", "title": "朋友圈", "at": "12:00", "days": "all", "channel": "moments", "text": "今天的早餐：燕麦 + 蓝莓～"}


@pytest.fixture
def corp(wecom_corp: Path, wecom: WecomFake) -> Path:
    """conftest's wecom_corp with the fake's clock at 12:31, when the beats below have come due."""
    wecom.now = at("2026-12-01 12:31")
    return wecom_corp


def env_for(wecom: WecomFake, **extra: str) -> dict[str, str]:
    return siyu_env(SIYU_WECOM_API=wecom.url, SIYU_WECOM_CORP_ID=wecom.corp_id, SIYU_WECOM_SECRET=wecom.secret, **extra)


def killed_mid(folder: Path, wecom: WecomFake, api: str, now: str, *, process: bool = True) -> None:
    """A pass killed -9 while WeCom holds its `api` call (acted on when `process`)."""
    wecom.hang(api, process=process)
    wecom._seen[api].clear()  # wait for this pass's call, not an earlier one
    proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", now), cwd=folder, env=env_for(wecom), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wecom.wait_for(api)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wecom.release()


def test_a_task_in_doubt_is_not_matched_to_another_stores_send_of_the_same_text(tmp_path: Path, wecom: WecomFake) -> None:
    wecom.now = at("2026-12-01 12:31")
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, prefix in ((first, "wmA"), (second, "wmB")):
        write_playbook(folder, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
        add_contacts(folder / "siyu.db", [{**c, "contact_id": c["contact_id"].replace("wm", prefix)} for c in customers(4)])
    assert run_siyu(first, "run", "--once", "--now", "2026-12-01 12:31", env=env_for(wecom)).returncode == 0
    killed_mid(second, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31", process=False)  # never made
    again = run_siyu(second, "run", "--once", "--now", "2026-12-01 12:33", "--json", env=env_for(wecom))
    assert again.returncode == 0, again.stderr
    made = [t for t in wecom.templates.values()]
    assert sorted(sorted(t.recipients) for t in made) == [[f"wmA{i:04d}" for i in range(4)], [f"wmB{i:04d}" for i in range(4)]]
    [(msgid,)] = query(second / "siyu.db", "SELECT remote_id FROM wecom_tasks")
    assert sorted(wecom.templates[msgid].recipients) == [f"wmB{i:04d}" for i in range(4)]


def killed_in_second_part(folder: Path, wecom: WecomFake, now: str, *, process: bool) -> None:
    """A pass killed -9 while WeCom holds the second part of a mass send, the first answered (the second made by
    WeCom when `process`, never answered)."""
    api = "externalcontact/add_msg_template"
    real = wecom._add_msg_template

    def first_part_answered(query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        answer = real(query, body)
        wecom.hang(api, process=process)  # the next call: the second part
        wecom._add_msg_template = real  # type: ignore[method-assign]
        return answer

    wecom._add_msg_template = first_part_answered  # type: ignore[method-assign]
    proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", now), cwd=folder, env=env_for(wecom), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while wecom.count(api) < 2 and proc.poll() is None:
        wecom._seen[api].clear()
        wecom.wait_for(api, timeout=0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wecom.release()
    wecom._add_msg_template = real  # type: ignore[method-assign]


def test_a_crash_after_the_first_part_keeps_its_fail_list(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(10_003))
    wecom.not_friends.update({"wm0005", "wm10002"})
    killed_in_second_part(corp, wecom, "2026-12-01 12:31", process=True)
    again = run_siyu(corp, "run", "--once", "--now", "2026-12-01 12:35", "--json", env=env_for(wecom))
    assert again.returncode == 0, again.stderr
    assert len(wecom.templates) == 2  # the second part was found, not made again
    assert query(corp / "siyu.db", "SELECT target, state, reason, outcome FROM drafts WHERE outcome IS NOT NULL ORDER BY target") == [
        ("contact:wm0005", "skipped", "not_friend", "not_friend"),
        ("contact:wm10002", "skipped", "not_friend", "not_friend"),
    ]
    assert states(corp / "siyu.db") == {"sent": 10_001, "skipped": 2}
    assert sorted(row[0] for row in query(corp / "siyu.db", "SELECT recipients FROM wecom_tasks")) == [3, 10_000]


def test_retry_unknown_looks_the_task_up_in_wecom_before_sending_it_again(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    wecom.drop("externalcontact/add_msg_template", process=True)  # WeCom made it; the answer was lost
    first = once("2026-12-01 12:31", code=1)
    assert first["unknown"] == 3
    retried = json.loads(invoke("retry", "--unknown", "--now", "2026-12-01 12:32", "--json").stdout)
    assert len(wecom.templates) == 1 and retried["readback"].get("found") == 1
    assert states(corp / "siyu.db") == {"sent": 3}


def test_outbox_done_leaves_what_wecom_read_back(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    once("2026-12-01 12:31")
    [msgid] = list(wecom.templates)
    wecom.confirm(msgid, "aqi", at=at("2026-12-01 12:33"), skip=["wm0003"])
    invoke("sync", "--now", "2026-12-01 12:34")
    [(task,)] = query(corp / "siyu.db", "SELECT DISTINCT task_id FROM drafts")
    result = invoke("outbox", "done", task, "--by", "莉莉")
    assert "left 4 draft(s) as WeCom read them back" in result.stdout
    assert query(corp / "siyu.db", "SELECT DISTINCT done_by FROM drafts WHERE outcome = 'sent'") == [("aqi",)]
    assert query(corp / "siyu.db", "SELECT done_by, outcome FROM drafts WHERE target = 'contact:wm0003'") == [(None, "not_sent")]


def test_a_wrong_secret_stops_the_output_for_the_pass_and_the_fixed_pass_sends(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    named = {**MASS, "id": "named", "text": "{{ contact.name }}，福利今晚截止～"}
    write_playbook(corp, beats=[named], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(6))
    monkeypatch.setenv("SIYU_WECOM_SECRET", "wrong")
    result = invoke("run", "--once", "--now", "2026-12-01 12:31", code=1)
    assert wecom.count("gettoken") == 1  # not one per task
    assert "stopped wecom: its setup is wrong" in result.stderr and "secret" in result.stderr
    assert states(corp / "siyu.db") == {"pending": 6}
    monkeypatch.setenv("SIYU_WECOM_SECRET", wecom.secret)
    assert once("2026-12-01 12:34")["sent"] == 6


def test_a_group_without_chat_id_is_skipped_alone(corp: Path, wecom: WecomFake) -> None:
    groups = [*GROUPS, {"id": "g3", "name": "秒杀3群", "persona": "host"}]
    write_playbook(corp, beats=[POST], days=1, personas=PERSONAS, groups=groups, outputs=[{"type": "wecom"}], limits={"missed": {"max_late": "6h"}})
    summary = once("2026-12-01 12:31")
    assert (summary["sent"], summary["skipped"]) == (2, {"no_chat_id": 1})
    [template] = wecom.templates.values()
    assert len(template.recipients) == 2


def test_a_moments_job_wecom_could_not_hand_to_the_staff_member_is_read_back_as_not_sent(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MOMENTS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    wecom.staff = {"someone-else"}
    once("2026-12-01 12:31")
    wecom.now = at("2026-12-01 12:40")
    once("2026-12-01 12:40")  # the job is still being made
    wecom.now = at("2026-12-01 12:50")
    result = invoke("sync", "--now", "2026-12-01 12:50", "--json", code=1)
    assert "invalid_sender_list" in json.loads(result.stdout)["errors"][0]
    [(outcome, error)] = query(corp / "siyu.db", "SELECT outcome, error FROM drafts")
    assert outcome == "not_sent" and "invalid_sender_list" in error


def test_a_pass_that_reads_back_a_moments_job_no_staff_member_could_post_exits_1_so_cron_mails_it(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MOMENTS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    wecom.staff = {"someone-else"}
    once("2026-12-01 12:31")
    wecom.now = at("2026-12-01 12:40")
    assert once("2026-12-01 12:40")["readback"] == {}  # the job is still being made: nothing to say yet
    wecom.now = at("2026-12-01 12:50")
    summary = once("2026-12-01 12:50", code=1)
    assert summary["readback"] == {"not_sent": 1, "errors": 1} and "invalid_sender_list" in summary["errors"][0]
    assert once("2026-12-01 12:51")["readback"] == {}  # read once: the next pass has nothing more to say


def test_with_the_wecom_output_the_first_welcome_goes_in_quiet_hours_and_when_wecom_says_the_code_expired_waits_for_morning_as_a_task(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli.store import open_store

    hook = {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": "你好呀，我是阿栖～"}]}
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook], outputs=[{"type": "wecom"}], limits={"quiet_hours": "22:30-08:00"})
    add_contacts(
        corp / "siyu.db",
        [
            {"contact_id": "wmNIGHT", "name": "夜猫子", "tags": [], "source": "EYE100", "added_at": "2026-12-01T15:24:00Z"},
            {"contact_id": "wmLATE", "name": "迟到", "tags": [], "source": "EYE100", "added_at": "2026-12-01T15:24:00Z"},
        ],
    )
    wecom.now = at("2026-12-01 23:24")
    night, late = wecom.welcome_code("aqi", "wmNIGHT"), wecom.welcome_code("aqi", "wmLATE")
    wecom.welcome_codes[late]["issued"] -= 25  # WeCom's own 20 s are over, though siyu received it just now
    db = open_store(str(corp / "siyu.db"))
    db.conn.executemany(
        "INSERT INTO wecom_welcome_codes (code, contact_id, userid, received_at) VALUES (?, ?, 'aqi', '2026-12-01T15:24:00Z')", [(night, "wmNIGHT"), (late, "wmLATE")]
    )
    db.conn.commit()
    summary = once("2026-12-01 23:24:05")
    assert summary["sent"] == 1 and summary["deferred"] == 1  # 23:24 is inside quiet hours: the welcome answers the add all the same
    welcomed = [c for c in wecom.of("externalcontact/send_welcome_msg")]
    assert [(c.body["welcome_code"], c.errcode) for c in welcomed] == [(late, 41050), (night, 0)] or [(c.body["welcome_code"], c.errcode) for c in welcomed] == [(night, 0), (late, 41050)]
    assert not wecom.templates  # the expired one can only be a task, which rings the staff member's phone: not at night
    wecom.now = at("2026-12-02 08:01")
    assert once("2026-12-02 08:01")["sent"] == 1
    [task] = [t for t in wecom.templates.values()]
    assert list(task.recipients) == ["wmLATE"]  # it went as a one-customer task when quiet hours ended


def test_a_customer_who_added_other_staff_is_not_sent_a_task_from_this_one(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli.store import open_store

    hook = {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": "你好"}, {"after": "1d", "text": "用得怎么样？"}]}
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook], outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", [{"contact_id": "wmZ", "name": "张客", "tags": [], "source": "EYE100", "account": "zhangsan", "added_at": "2026-12-01T04:00:00Z"}])
    db = open_store(str(corp / "siyu.db"))
    db.execute(
        "INSERT INTO events (event_id, type, contact_id, at, hook, props) VALUES ('cb1', 'friend_added', 'wmZ', '2026-12-01T04:00:00Z', 'card', ?)",
        [json.dumps({"callback": "add_external_contact", "userid": "zhangsan"})],
    )
    db.conn.commit()
    wecom.now = at("2026-12-02 12:01")
    summary = once("2026-12-02 12:01")
    # The first welcome's moment passed a day ago (missed); the second would go from aqi, whom the customer never added.
    assert summary["skipped"] == {"missed": 1, "not_friend": 1} and wecom.count("externalcontact/add_msg_template") == 0
    assert query(corp / "siyu.db", "SELECT beat, state, reason FROM drafts ORDER BY beat") == [
        ("welcome:card:1", "skipped", "missed"), ("welcome:card:2", "skipped", "not_friend"),
    ]  # fmt: skip


def test_one_task_wecom_no_longer_knows_stops_neither_the_others_read_back_nor_their_reminders(corp: Path, wecom: WecomFake) -> None:
    second = {**MASS, "id": "close2", "at": "12:30", "persona": "host", "text": "第二条福利～"}
    write_playbook(corp, beats=[MASS, second], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(2))
    once("2026-12-01 12:31")
    first_id, second_id = sorted(wecom.templates)
    del wecom.templates[first_id]  # WeCom answers 41047 for it from now on
    wecom.confirm(second_id, "aqi", at=at("2026-12-01 12:40"))
    wecom.now = at("2026-12-01 14:45")
    summary = once("2026-12-01 14:45", code=1)  # a person looks at what became of the first (cron mails it)
    assert summary["readback"] == {"sent": 2, "errors": 1}  # the second task was read back
    assert any("41047" in e or "no mass send" in e or "invalid msgid" in e for e in summary["errors"])
    assert query(corp / "siyu.db", "SELECT COUNT(*) FROM wecom_tasks WHERE closed_at IS NULL") == [(0,)]


def test_reminders_wait_for_the_end_of_quiet_hours(corp: Path, wecom: WecomFake) -> None:
    evening = {**MASS, "at": "20:00"}
    write_playbook(corp, beats=[evening], days=2, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}], limits={"quiet_hours": "22:30-08:00"})
    add_contacts(corp / "siyu.db", customers(2))
    wecom.now = at("2026-12-01 20:01")
    once("2026-12-01 20:01")
    for moment in ("2026-12-01 22:40", "2026-12-02 01:00", "2026-12-02 07:59"):
        wecom.now = at(moment)
        once(moment)
    assert wecom.count("externalcontact/remind_groupmsg_send") == 0
    wecom.now = at("2026-12-02 08:01")
    once("2026-12-02 08:01")
    assert wecom.count("externalcontact/remind_groupmsg_send") == 1


def test_a_later_welcome_step_in_doubt_is_looked_up_not_left_unknown(corp: Path, wecom: WecomFake) -> None:
    hook = {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": "你好"}, {"after": "1d", "text": "用得怎么样？"}]}
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook], outputs=[{"type": "wecom"}], limits={"missed": {"max_late": "6h"}})
    add_contacts(corp / "siyu.db", [{"contact_id": "wmW", "name": "小新", "tags": [], "source": "EYE100", "account": "wx_host_01", "added_at": "2026-12-01T04:00:00Z"}])
    from siyu_cli.store import open_store

    db = open_store(str(corp / "siyu.db"))
    db.execute("INSERT INTO wecom_welcome_codes (code, contact_id, userid, received_at, used_at) VALUES ('C1', 'wmW', 'aqi', '2026-12-01T04:00:00Z', '2026-12-01T04:00:03Z')")
    db.conn.commit()
    wecom.now = at("2026-12-02 12:01")
    wecom.drop("externalcontact/add_msg_template", process=True)  # the day-2 step reached WeCom; its answer did not
    once("2026-12-02 12:01", code=1)
    again = once("2026-12-02 12:10")
    assert again["readback"].get("found") == 1 and len(wecom.templates) == 1
    assert query(corp / "siyu.db", "SELECT state FROM drafts WHERE beat = 'welcome:card:2'") == [("sent",)]


def test_retry_unknown_sends_nothing_again_while_wecom_cannot_be_asked(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(2))
    wecom.drop("externalcontact/add_msg_template", process=True)
    once("2026-12-01 12:31", code=1)
    wecom.inject("externalcontact/get_groupmsg_list_v2", -1, times=None)
    result = invoke("retry", "--unknown", "--now", "2026-12-01 12:32", code=1)
    assert "none is sent again" in result.stderr and len(wecom.templates) == 1
    assert states(corp / "siyu.db") == {"unknown": 2}


def test_an_imported_customer_of_this_staff_member_who_also_added_a_colleague_still_gets_their_tasks(corp: Path, wecom: WecomFake) -> None:
    from siyu_cli.store import open_store

    named = {**MASS, "id": "named", "text": "{{ contact.name }}，福利今晚截止～"}
    write_playbook(corp, beats=[named], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", [{"contact_id": "wmL", "name": "老客", "tags": ["家长"], "account": "wx_host_01"}])
    db = open_store(str(corp / "siyu.db"))
    db.execute(
        "INSERT INTO events (event_id, type, contact_id, at, props) VALUES ('cb2', 'friend_added', 'wmL', '2026-11-30T04:00:00Z', ?)",
        [json.dumps({"callback": "add_external_contact", "userid": "zhangsan"})],
    )
    db.conn.commit()
    assert once("2026-12-01 12:31")["sent"] == 1 and len(wecom.templates) == 1
