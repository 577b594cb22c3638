"""Editing a running campaign: a draft is its slot, so an edit re-times, re-renders or cancels; `siyu plan` shows it first.

Every test edits the playbook file between real passes (`siyu run --once --now`) the way an
operator edits it while cron runs, and checks what was sent, what waits, and what `siyu plan`
said beforehand (exit 0: nothing changes, 2: something does; the ledger untouched either way).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import invoke, query, write_playbook

QUIET = {"quiet_hours": "22:30-08:00", "on_quiet": "defer"}
LEDGER = "SELECT draft_id, beat, target, state, reason, due_at, text FROM drafts ORDER BY draft_id"


def share(at: str = "10:00", text: str = "早上好，第{{ day }}天") -> dict[str, Any]:
    return {"id": "share", "title": "早分享", "at": at, "days": "all", "channel": "group", "text": text}


def night(at: str = "23:00", text: str = "晚安，明天见") -> dict[str, Any]:
    return {"id": "night", "title": "晚安", "at": at, "days": "all", "channel": "group", "text": text}


@pytest.fixture
def camp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def once(now: str) -> dict[str, Any]:
    return json.loads(invoke("run", "--once", "--now", now, "--json").stdout)


def plan(now: str, code: int) -> dict[str, Any]:
    before = query(Path("siyu.db"), LEDGER)
    found = json.loads(invoke("plan", "--now", now, "--json", code=code).stdout)
    assert query(Path("siyu.db"), LEDGER) == before  # plan never writes
    return found


def test_moving_a_beat_after_it_went_out_sends_nothing_again(camp: Path) -> None:
    write_playbook(camp, beats=[share("10:00")])
    assert once("2026-12-01 10:05")["sent"] == 1
    write_playbook(camp, beats=[share("10:30")])
    shown = plan("2026-12-01 10:35", 0)
    assert shown["counts"] == {"create": 0, "retime": 0, "rerender": 0, "cancel": 0}
    # Today's share went out at 10:00: the next 24 hours hold only tomorrow's, at the new time.
    assert [(row["beat"], row["due_at"][:16]) for row in shown["next_24h"]] == [("share", "2026-12-02T10:30")]
    summary = once("2026-12-01 10:35")
    assert (summary["recorded"], summary["sent"]) == (0, 0)
    # The next day's share goes at the new time.
    assert once("2026-12-02 10:31")["sent"] == 1
    assert query(camp / "siyu.db", "SELECT due_at FROM drafts WHERE day = 2") == [("2026-12-02T02:30:00Z",)]


def test_a_waiting_draft_moved_into_the_past_never_goes_inside_quiet_hours(camp: Path) -> None:
    """Deferred to 08:00, then moved to 22:00 at 23:10: its new time is past and it is still quiet: it waits for 08:00."""
    write_playbook(camp, beats=[night("23:00")], limits=QUIET)
    once("2026-12-01 23:05")
    assert query(camp / "siyu.db", "SELECT state, due_at FROM drafts") == [("pending", "2026-12-02T00:00:00Z")]  # 08:00
    write_playbook(camp, beats=[night("22:00")], limits=QUIET)
    assert plan("2026-12-01 23:10", 0)["counts"]["retime"] == 0
    summary = once("2026-12-01 23:10")
    assert summary["sent"] == 0
    assert once("2026-12-02 08:01")["sent"] == 1


def test_shorter_quiet_hours_re_time_a_deferred_draft(camp: Path) -> None:
    write_playbook(camp, beats=[night("23:00")], limits=QUIET)
    once("2026-12-01 23:05")
    write_playbook(camp, beats=[night("23:00")], limits={**QUIET, "quiet_hours": "22:30-07:00"})
    shown = plan("2026-12-01 23:10", 2)
    assert shown["counts"]["retime"] == 1
    change = shown["changes"][0]
    assert change["was_due"].startswith("2026-12-02T08:00") and change["due_at"].startswith("2026-12-02T07:00")
    assert [(row["beat"], row["due_at"][:16]) for row in shown["next_24h"]][0] == ("night", "2026-12-02T07:00")
    assert once("2026-12-01 23:10")["revised"] == 1
    assert once("2026-12-02 07:01")["sent"] == 1
    assert query(camp / "siyu.db", "SELECT state FROM drafts") == [("sent",)]


def test_a_text_edit_reaches_a_draft_not_yet_sent(camp: Path) -> None:
    write_playbook(camp, beats=[night(text="晚安，明天见")], limits=QUIET)
    once("2026-12-01 23:05")
    write_playbook(camp, beats=[night(text="晚安！明早8点直播，记得来")], limits=QUIET)
    shown = plan("2026-12-01 23:10", 2)
    assert shown["counts"] == {"create": 0, "retime": 0, "rerender": 1, "cancel": 0}
    assert (shown["changes"][0]["was_text"], shown["changes"][0]["text"]) == ("晚安，明天见", "晚安！明早8点直播，记得来")
    once("2026-12-01 23:10")
    once("2026-12-02 08:01")
    assert query(camp / "siyu.db", "SELECT state, text FROM drafts") == [("sent", "晚安！明早8点直播，记得来")]
    outbox = [p.read_text("utf-8") for p in (camp / "outbox").rglob("*.md")]
    assert len(outbox) == 1 and "明早8点直播" in outbox[0]


def test_a_removed_beat_cancels_its_waiting_drafts(camp: Path) -> None:
    write_playbook(camp, beats=[share("10:00"), night()], limits=QUIET)
    once("2026-12-01 23:05")
    write_playbook(camp, beats=[share("10:00")], limits=QUIET)
    shown = plan("2026-12-01 23:10", 2)
    assert [(c["beat"], c["kind"], c["state"], c["reason"]) for c in shown["changes"]] == [("night", "cancel", "skipped", "removed")]
    summary = once("2026-12-01 23:10")
    assert summary["skipped"] == {"removed": 1}
    once("2026-12-02 10:01")
    rows = query(camp / "siyu.db", "SELECT beat, day, state, reason FROM drafts ORDER BY beat, day")
    assert rows == [("night", 1, "skipped", "removed"), ("share", 1, "skipped", "missed"), ("share", 2, "sent", None)]
    assert not any("晚安" in p.read_text("utf-8") for p in (camp / "outbox").rglob("*.md"))


def test_plan_lists_what_a_pass_would_create_and_the_next_24_hours(camp: Path) -> None:
    write_playbook(camp, beats=[share("10:00"), night("21:00")])
    once("2026-12-01 09:00")
    shown = plan("2026-12-01 10:01", 2)  # the 10:00 share came due and no pass has run since
    assert [(c["beat"], c["kind"], c["day"]) for c in shown["changes"]] == [("share", "create", 1)]
    assert [(row["beat"], row["due_at"][:16]) for row in shown["next_24h"]] == [("night", "2026-12-01T21:00"), ("share", "2026-12-02T10:00")]
    once("2026-12-01 10:01")
    assert plan("2026-12-01 10:02", 0)["changed"] is False
    people = invoke("plan", "--now", "2026-12-01 10:02").stdout
    assert "no changes" in people and "next 24 hours" in people and "晚安" in people


def test_a_ledger_from_before_slots_is_migrated_in_place(camp: Path) -> None:
    """Drafts recorded before slots existed get theirs from the playbook's times on the first pass: nothing goes twice."""
    write_playbook(camp, beats=[share("10:00"), night("21:00")])
    once("2026-12-01 21:05")
    with_slots = query(camp / "siyu.db", "SELECT draft_id, slot FROM drafts ORDER BY draft_id")
    with sqlite3.connect(camp / "siyu.db") as conn:
        conn.execute("UPDATE drafts SET slot = NULL")
        conn.execute("DELETE FROM plan_cursor")
    write_playbook(camp, beats=[share("10:15"), night("21:00")])  # and an edit made before the upgrade's first pass
    summary = once("2026-12-01 21:10")
    assert (summary["recorded"], summary["sent"]) == (0, 0)
    assert query(camp / "siyu.db", "SELECT draft_id, slot FROM drafts ORDER BY draft_id") == with_slots


def test_plan_without_a_store_says_so(camp: Path) -> None:
    write_playbook(camp, beats=[share()])
    result = invoke("plan", code=1)
    assert "no such store" in result.stderr and "siyu preview" in result.stderr


def test_a_renamed_campaign_warns_at_its_first_pass(camp: Path) -> None:
    write_playbook(camp, beats=[share("10:00")])
    once("2026-12-01 10:05")
    write_playbook(camp, beats=[share("10:00")], playbook_id="camp-v2")
    result = invoke("run", "--once", "--now", "2026-12-01 10:06", "--json")
    assert "warning: the store holds 1 drafts of campaign 'camp'" in result.stderr and "keep `id: camp`" in result.stderr
    assert json.loads(result.stdout)["warnings"]
    again = invoke("run", "--once", "--now", "2026-12-01 10:07", "--json")
    assert "warning" not in again.stderr  # said once, at the pass that started it over


def test_an_attachment_edit_reaches_a_draft_not_yet_sent(camp: Path) -> None:
    link = {"link": "https://shop.example.com/live?from=group", "title": "明早8点直播", "description": "点击预约"}
    write_playbook(camp, beats=[{**night(), "attachments": [link]}], limits=QUIET)
    once("2026-12-01 23:05")
    fixed = {**link, "link": "https://shop.example.com/live?from=night"}
    write_playbook(camp, beats=[{**night(), "attachments": [fixed]}], limits=QUIET)
    assert plan("2026-12-01 23:10", 2)["counts"]["rerender"] == 1
    once("2026-12-01 23:10")
    [(stored,)] = query(camp / "siyu.db", "SELECT attachments FROM drafts")
    assert "from=night" in stored and "from=group" not in stored
