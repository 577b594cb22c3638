"""What audit 8 of the wecom output found, each through the CLI against the fake WeCom (time injected, never slept)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from siyu_cli.wecom._client import LIST_SPAN
from siyu_cli.wecom._sync import search_spans
from tests import test_wecom_audit
from tests.playbooks_fixtures import add_contacts, invoke, states, write_playbook
from tests.test_wecom_audit import killed_mid
from tests.test_wecom_dispatch import GROUPS, MASS, PERSONAS, SHANGHAI, at, customers, once
from tests.wecom_fake import WecomFake

corp = test_wecom_audit.corp  # the fixture: a folder for a campaign on the fake corp, its clock at 12:31


def test_a_task_a_rehearsal_4_days_ahead_left_in_doubt_is_found_by_the_pass_on_wecoms_clock(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=7, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    # WeCom stamps it with the real time (this machine's, give or take): a send listed before the ask would not be this task.
    wecom.now = time.time()
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-05 12:31")
    wecom.now = time.time() + 120
    assert once("2026-12-01 12:33")["readback"] == {"found": 1}  # cron, on its own clock
    assert len(wecom.templates) == 1  # one mass send, not two
    assert states(corp / "siyu.db") == {"sent": 4, "skipped": 16}  # days 1 to 4 the rehearsal skipped as missed


def test_a_rehearsal_resumed_on_its_own_clock_finds_the_task_wecom_stamped_with_the_real_time(corp: Path, wecom: WecomFake) -> None:
    wall = datetime.now(SHANGHAI).replace(second=0, microsecond=0)
    wecom.now = time.time()  # WeCom's clock is the real one: only this machine's clock says when it stamped the task
    write_playbook(corp, beats=[MASS], days=9, start=f"{wall:%Y-%m-%d}", personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    ahead = wall + timedelta(days=4)
    killed_mid(corp, wecom, "externalcontact/add_msg_template", f"{ahead:%Y-%m-%d} 12:31")
    assert once(f"{ahead:%Y-%m-%d} 12:33")["readback"] == {"found": 1}
    assert len(wecom.templates) == 1 and states(corp / "siyu.db")["sent"] == 4


def test_a_recovery_with_a_now_years_in_the_past_does_not_make_the_task_again(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")
    assert once("1999-01-01 00:00")["readback"] == {"found": 1}  # a mistyped year: the list is still searched around the claim
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"sent": 3}


def test_a_task_wecom_may_hold_where_the_search_cannot_reach_is_left_for_a_person_not_made_again(corp: Path, wecom: WecomFake) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(3))
    wecom.now = at("2026-11-01 12:31")  # WeCom stamps it a month before the claim: neither search reaches it
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")
    summary = once("1999-01-01 00:00", code=1)
    assert summary["readback"] == {"to_check": 1, "errors": 1}
    said = " ".join(" ".join(summary["errors"]).split())
    assert "--now is before the task's claim" in said and "群发记录" in said and "siyu outbox done" in said
    assert "--now from 2026-12-01 12:31 to a month after it" in said
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"unknown": 3}
    result = invoke("retry", "--unknown", "--now", "1999-01-01 00:05", code=1)
    assert "a person settles it as the error says" in " ".join(result.stderr.split())
    assert len(wecom.templates) == 1


@pytest.mark.parametrize(("claim", "now"), [("2026-12-05", "2026-12-01"), ("2026-12-01", "1999-01-01"), ("2026-12-01", "2027-06-01"), ("2026-12-01", "2026-12-01"), ("2027-03-01", "2027-03-02")])
def test_the_spans_searched_never_run_backwards_and_each_fits_wecoms_month(claim: str, now: str) -> None:
    wall = datetime(2026, 12, 1, 18, tzinfo=UTC)
    spans, _ = search_spans(datetime.fromisoformat(claim).replace(tzinfo=UTC), datetime.fromisoformat(now).replace(tzinfo=UTC), wall)
    assert all(start <= end for start, end in spans)
    assert all(b[0] > a[1] for a, b in zip(spans, spans[1:], strict=False))  # merged when they overlap
    assert any(start <= wall - timedelta(days=7) and wall + timedelta(days=1) <= end for start, end in spans)
    assert sum((end - start for start, end in spans), timedelta(0)) <= LIST_SPAN + timedelta(days=8)


def test_a_task_claimed_on_the_real_clock_and_not_in_the_list_is_still_made_now() -> None:
    claim = datetime(2026, 12, 1, 4, 31, tzinfo=UTC)
    spans, doubt = search_spans(claim, claim + timedelta(minutes=2), claim + timedelta(minutes=2))
    assert doubt is None and len(spans) == 1
    assert search_spans(claim, claim + timedelta(days=40), claim)[1] is not None  # a claim older than the month searched


@pytest.mark.parametrize("made", [True, False])
def test_retry_unknown_after_a_crash_recovers_the_dead_runs_task_and_settles_it_against_wecoms_list(corp: Path, wecom: WecomFake, made: bool) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31", process=made)
    wecom.now = at("2026-12-01 12:45")  # the dead run's lease long over
    summary = json.loads(invoke("retry", "--unknown", "--now", "2026-12-01 12:45", "--json").stdout)
    assert summary["recovered"] == 4
    assert summary["readback"] == ({"found": 1} if made else {"remade": 1})
    assert len(wecom.templates) == 1  # found, or made now because WeCom never had it: once either way
    assert states(corp / "siyu.db") == {"sent": 4}


@pytest.mark.parametrize("as_json", [True, False])
def test_sync_after_a_crash_recovers_the_dead_runs_task_and_reports_it(corp: Path, wecom: WecomFake, as_json: bool) -> None:
    write_playbook(corp, beats=[MASS], days=1, personas=PERSONAS, groups=GROUPS, outputs=[{"type": "wecom"}])
    add_contacts(corp / "siyu.db", customers(4))
    killed_mid(corp, wecom, "externalcontact/add_msg_template", "2026-12-01 12:31")
    wecom.now = at("2026-12-01 12:45")
    if as_json:
        said = json.loads(invoke("sync", "--now", "2026-12-01 12:45", "--json").stdout)
        assert (said["recovered"], said["readback"], said["errors"]) == (4, {"found": 1}, [])
    else:
        line = invoke("sync", "--now", "2026-12-01 12:45").stderr
        assert "recovered 4 from a dead run" in line and "found 1" in line and "nothing new" not in line
    assert len(wecom.templates) == 1 and states(corp / "siyu.db") == {"sent": 4}
