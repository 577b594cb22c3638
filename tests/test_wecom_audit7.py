"""What audit 7 of the wecom output found, each through the CLI against the fake WeCom (time injected, never slept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import test_wecom_audit
from tests.playbooks_fixtures import add_contacts, invoke, query, states, write_playbook
from tests.test_wecom_audit import MOMENTS, killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, POST, at, customers, once
from tests.wecom_fake import WecomFake

SKEW = 420.0  # this machine's clock 7 minutes ahead of WeCom's
corp = test_wecom_audit.corp  # the fixture: a folder for a campaign on the fake corp, its clock at 12:31


def test_a_task_in_doubt_is_found_though_wecoms_clock_is_7_minutes_off(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    wecom.now = at("2026-12-01 12:31") - SKEW
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")  # WeCom made it at its 12:24
    wecom.now = at("2026-12-01 12:33") - SKEW
    again = once("2026-12-01 12:33")
    assert again["readback"] == {"found": 1}
    assert len(wecom.templates) == 1  # one mass send, not two
    assert states(corp / "siyu.db") == {"sent": 4}


@pytest.mark.parametrize("value", ["qyapi.weixin.qq.com", "ftp://qyapi.weixin.qq.com", " https://qyapi.weixin.qq.com", "https://qyapi.weixin.qq.com "])
def test_a_wecom_api_url_that_can_never_work_stops_the_output_and_names_the_variable(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    monkeypatch.setenv("SIYU_WECOM_API", value)
    result = invoke("run", "--once", "--now", "2026-12-01 12:31", code=1)
    assert "SIYU_WECOM_API" in result.stderr and "https://qyapi.weixin.qq.com" in result.stderr
    assert "stopped wecom" in result.stderr
    assert states(corp / "siyu.db") == {"pending": 3}  # they wait for a pass after the fix
    monkeypatch.setenv("SIYU_WECOM_API", wecom.url)
    assert once("2026-12-01 12:33")["sent"] == 3


def test_a_base_url_with_cgi_bin_is_a_setup_error_not_every_draft_failed(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    monkeypatch.setenv("SIYU_WECOM_API", wecom.url + "/cgi-bin/")
    summary = once("2026-12-01 12:31", code=1)
    assert summary["blocked"] == ["wecom"] and summary["failed"] == 0
    assert any("ends in /cgi-bin, which siyu adds to every call itself" in error and "without /cgi-bin" in error for error in summary["errors"])
    assert states(corp / "siyu.db") == {"pending": 3}


def test_an_unreachable_wecom_is_retried_and_the_pass_says_why_once(corp: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch) -> None:
    named = {**MASS, "id": "named", "text": "{{ contact.name }}，福利今晚截止～"}  # one task per customer
    write_playbook(corp, beats=[named], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(5))
    monkeypatch.setenv("SIYU_WECOM_API", "http://127.0.0.1:9")
    summary = once("2026-12-01 12:31")  # exit 0: a transient failure is tried again
    assert summary["retrying"] == 5 and summary["failed"] == 0
    reasons = [error for error in summary["errors"] if "127.0.0.1:9" in error]
    assert len(reasons) == 1 and reasons[0].startswith("wecom: ") and "cannot reach" in reasons[0] and "5 draft(s) retry later" in reasons[0]
    text = invoke("run", "--once", "--now", "2026-12-01 12:40")
    assert "cannot reach http://127.0.0.1:9" in text.stderr


def test_a_moments_post_read_back_has_no_publish_time_so_report_sop_counts_it_neither_on_time_nor_late(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MOMENTS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    wecom.now = at("2026-12-01 12:01")
    once("2026-12-01 12:01")
    wecom.now = at("2026-12-01 12:10")
    once("2026-12-01 12:10")  # the job is still being made
    [moment] = list(wecom.moments)
    wecom.publish(moment, "aqi")  # posted at 12:11, on time; WeCom's get_moment_task says only that it was
    wecom.now = at("2026-12-01 14:00")
    invoke("sync", "--now", "2026-12-01 14:00")
    assert query(corp / "siyu.db", "SELECT state, outcome, done_by, done_at FROM drafts") == [("sent", "sent", "aqi", None)]
    report = json.loads(invoke("report", "sop", "--json").stdout)
    [row] = report["rows"]
    assert (row["sent"], row["late"]) == (1, 0)  # not late because siyu read it back at 14:00
    assert (report["tasks"]["tasks_done"], report["tasks"]["on_time"], report["tasks"]["late"], report["tasks"]["time_unknown"]) == (1, 0, 0, 1)


@pytest.mark.parametrize("as_json", [True, False])
def test_a_task_in_doubt_wecom_never_made_is_made_now_and_the_pass_does_not_call_it_a_resend(corp: Path, wecom: WecomFake, as_json: bool) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31", process=False)  # WeCom never made it
    if as_json:
        assert once("2026-12-01 12:33")["readback"] == {"remade": 1}
    else:
        line = invoke("run", "--once", "--now", "2026-12-01 12:33").stderr
        assert "read back made 1 missing part(s) now" in line and "resend" not in line
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"sent": 3}


def test_retry_unknown_on_a_group_task_in_doubt_says_what_a_person_does_not_to_run_it_again(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[POST], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    wecom.now = at("2026-12-01 12:01")
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:01")  # made; no group sent to yet
    line = " ".join(invoke("run", "--once", "--now", "2026-12-01 12:03", code=1).stderr.split())  # cron's next pass: a person must look
    assert "as its line above says" in line and "siyu retry --unknown ID" not in line  # retry would refuse it
    status = " ".join(invoke("status", "--now", "2026-12-01 12:04").stdout.split())
    assert "for a WeCom task, 群发记录 in the admin console" in status and "refuses what siyu cannot tell apart there until you name the task" in status
    result = invoke("retry", "--unknown", "--now", "2026-12-01 12:05", code=1)
    said = " ".join(result.stderr.split())
    assert "try again when WeCom answers" not in said and "or `siyu retry --unknown`" not in said
    assert "群发记录" in said and "siyu outbox done" in said and "aqi" in said
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"unknown": 2}
    [msgid] = list(wecom.templates)
    wecom.confirm(msgid, "aqi", at=at("2026-12-01 12:20"))  # what the message asks: aqi sends it
    wecom.now = at("2026-12-01 12:21")
    assert once("2026-12-01 12:21")["readback"].get("found") == 1
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"sent": 2}


def test_a_first_welcome_with_no_welcome_code_waits_out_quiet_hours_as_a_task(corp: Path, wecom: WecomFake) -> None:
    hook = {"id": "card", "kind": "package_card", "code": "EYE100", "persona": "host", "welcome": [{"after": "0m", "text": "你好呀，我是阿栖～"}]}
    write_playbook(corp, beats=[], days=3, personas=PERSONAS, groups=GROUPS, hooks=[hook], outputs=[{"type": "wecom"}], limits={"quiet_hours": "22:30-08:00"})
    add_contacts(corp / "siyu.db", [{"contact_id": "wmNOCODE", "name": "夜猫子", "tags": [], "source": "EYE100", "added_at": "2026-12-01T17:29:00Z"}])
    wecom.now = at("2026-12-02 01:29:05")
    summary = once("2026-12-02 01:29:05")  # the add carried no WelcomeCode: the welcome can only be a task, which rings aqi's phone
    assert (summary["sent"], summary["deferred"], summary["errors"]) == (0, 1, [])
    assert wecom.count("externalcontact/add_msg_template") == 0
    assert query(corp / "siyu.db", "SELECT state, reason, due_at FROM drafts") == [("pending", "quiet_hours:deferred", "2026-12-02T00:00:00Z")]
    wecom.now = at("2026-12-02 08:01")
    assert once("2026-12-02 08:01")["sent"] == 1
    [task] = wecom.templates.values()
    assert list(task.recipients) == ["wmNOCODE"] and task.create_time == int(at("2026-12-02 08:01"))
