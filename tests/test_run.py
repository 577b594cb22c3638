"""`siyu run --once` and `siyu retry` through the CLI: what is sent, what is held back and why.

Every decision a guardrail makes is recorded in the ledger with its reason; these tests read the
ledger (drafts table) and the outbox folder the way an operator would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import (
    MORNING,
    NOON_1V1,
    add_contacts,
    add_event,
    invoke,
    outbox_files,
    parents,
    query,
    states,
    write_playbook,
)

EVENING = {"id": "evening", "title": "晚总结", "at": "20:00", "days": "all", "channel": "group", "text": "晚安，第{{ day }}天"}
LATE = {"id": "late", "title": "夜读", "at": "23:00", "days": "all", "channel": "group", "text": "夜读时间"}


@pytest.fixture
def camp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to run in: cwd, SIYU_* cleared so ./siyu.db and ./outbox are used."""
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


siyu = invoke


def once(now: str, *extra: str, code: int = 0) -> dict[str, Any]:
    return json.loads(siyu("run", "--once", "--now", now, "--json", *extra, code=code).stdout)


def drafts(camp: Path, where: str = "1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    columns = ("draft_id", "beat", "target", "state", "reason", "due_at", "variant", "persona", "text", "error", "channel")
    rows = query(camp / "siyu.db", f"SELECT {', '.join(columns)} FROM drafts WHERE {where} ORDER BY due_at, beat, target", params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


# --- one pass -----------------------------------------------------------------------------------


def test_once_sends_what_is_due_and_a_second_pass_sends_nothing(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING, NOON_1V1], limits={"missed": {"max_late": "6h"}})
    add_contacts(camp / "siyu.db", parents(3))

    first = siyu("run", "--once", "--now", "2026-12-01 12:31")
    line = first.stderr
    assert "2026-12-01 12:31 · recorded 4 · sent 4 · deferred 0 · skipped 0 · failed 0" in line
    assert "next due 12-02 08:30" in line
    files = outbox_files(camp / "outbox")
    assert [p.parent.name for p in files] == ["2026-12-01"] * 4
    assert {p.name.split("-")[1] for p in files} == {"morning", "noon"}
    assert "家长0，您好！今天是第1天。" in (camp / "outbox" / "2026-12-01" / next(p.name for p in files if "c0000" in p.name)).read_text("utf-8")
    stamps = {p: p.stat().st_mtime_ns for p in files}

    again = once("2026-12-01 12:31")
    assert again == {
        "now": "2026-12-01T12:31:00+08:00",
        "recorded": 0,
        "sent": 0,
        "tasks": 0,
        "sent_before": 0,
        "readback": {},
        "deferred": 0,
        "carried": {},
        "skipped": {},
        "failed": 0,
        "unknown": 0,
        "retrying": 0,
        "revised": 0,
        "paused": [],
        "held": [],
        "blocked": [],
        "warnings": [],
        "recovered": 0,
        "settled": {},
        "errors": [],
        "next_due": "2026-12-02T08:30:00+08:00",
    }
    assert {p: p.stat().st_mtime_ns for p in outbox_files(camp / "outbox")} == stamps
    assert states(camp / "siyu.db") == {"sent": 4}


def test_nothing_is_due_before_the_campaign(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING])
    summary = once("2026-11-30 09:00")
    assert (summary["recorded"], summary["sent"], summary["next_due"]) == (0, 0, "2026-12-01T08:30:00+08:00")
    assert outbox_files(camp / "outbox") == []


def test_console_flag_prints_each_draft(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING])
    result = siyu("run", "--once", "--now", "2026-12-01 08:31", "--console")
    assert "早上好，第1天" in result.stdout and "早分享" in result.stdout
    assert len(outbox_files(camp / "outbox")) == 1


# --- missed beats -----------------------------------------------------------------------------


def test_a_beat_found_later_than_max_late_is_skipped_and_recorded(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING], limits={"missed": {"max_late": "2h", "action": "skip"}})
    summary = once("2026-12-01 10:31")
    assert summary["skipped"] == {"missed": 1} and summary["sent"] == 0
    assert [(d["state"], d["reason"]) for d in drafts(camp)] == [("skipped", "missed")]
    assert outbox_files(camp / "outbox") == []


def test_a_beat_found_late_within_max_late_is_sent_once(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING], limits={"missed": {"max_late": "2h", "action": "skip"}})
    assert once("2026-12-01 10:29")["sent"] == 1
    assert once("2026-12-01 10:45")["sent"] == 0
    assert len(outbox_files(camp / "outbox")) == 1
    assert [d["state"] for d in drafts(camp)] == ["sent"]


def test_missed_action_send_sends_however_late(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING], limits={"missed": {"max_late": "1h", "action": "send"}})
    assert once("2026-12-01 18:00")["sent"] == 1


# --- quiet hours --------------------------------------------------------------------------------


def test_quiet_hours_defer_to_the_end_of_quiet_hours(camp: Path) -> None:
    write_playbook(camp, beats=[LATE], limits={"quiet_hours": "22:30-08:00", "on_quiet": "defer"})
    at_night = once("2026-12-01 23:01")
    assert (at_night["recorded"], at_night["deferred"], at_night["sent"]) == (1, 1, 0)
    assert at_night["next_due"] == "2026-12-02T08:00:00+08:00"
    [row] = drafts(camp)
    assert (row["state"], row["reason"], row["due_at"]) == ("pending", "quiet_hours:deferred", "2026-12-02T00:00:00Z")
    assert outbox_files(camp / "outbox") == []

    assert once("2026-12-02 07:59")["sent"] == 0
    morning = once("2026-12-02 08:05")
    assert morning["sent"] == 1
    [path] = outbox_files(camp / "outbox")
    assert path.parent.name == "2026-12-02" and path.name.startswith("0800-late-")


def test_max_late_counts_from_the_end_of_quiet_hours(camp: Path) -> None:
    write_playbook(camp, beats=[LATE], limits={"quiet_hours": "22:30-08:00", "missed": {"max_late": "2h"}})
    # Nobody ran at night: found at 09:55 the 23:00 beat is 11 h old but only 1 h 55 late.
    assert once("2026-12-02 09:55")["sent"] == 1
    # Day 2's 23:00 beat, found at 10:05 on day 3: 2 h 5 after 08:00.
    late = once("2026-12-03 10:05")
    assert late["skipped"] == {"missed": 1} and late["sent"] == 0


def test_a_deferred_draft_recorded_at_night_is_still_missed_when_found_too_late(camp: Path) -> None:
    write_playbook(camp, beats=[LATE], limits={"quiet_hours": "22:30-08:00", "missed": {"max_late": "2h"}})
    assert once("2026-12-01 23:05")["deferred"] == 1
    late = once("2026-12-02 10:30")
    assert late["sent"] == 0 and late["skipped"] == {"missed": 1}
    assert [(d["state"], d["reason"]) for d in drafts(camp)] == [("skipped", "missed")]
    assert outbox_files(camp / "outbox") == []


def test_quiet_hours_skip_records_the_reason(camp: Path) -> None:
    write_playbook(camp, beats=[LATE, MORNING], limits={"quiet_hours": "22:30-08:00", "on_quiet": "skip", "missed": {"max_late": "1d"}})
    summary = once("2026-12-01 23:01")
    assert summary["skipped"] == {"quiet_hours": 1}
    assert [(d["beat"], d["state"], d["reason"]) for d in drafts(camp)] == [
        ("morning", "sent", None),
        ("late", "skipped", "quiet_hours"),
    ]


# --- budgets --------------------------------------------------------------------------------------


def test_group_posts_count_against_a_contacts_daily_touches(camp: Path) -> None:
    write_playbook(
        camp,
        beats=[MORNING, NOON_1V1, EVENING],
        limits={"per_contact_per_day": 2, "missed": {"max_late": "6h"}},
        groups=[{"id": "g1", "name": "阅读营1群", "persona": "host"}, {"id": "g2", "name": "阅读营2群", "persona": "host"}],
    )
    add_contacts(camp / "siyu.db", [{"contact_id": "in_g1", "name": "王妈妈"}, {"contact_id": "no_group", "name": "李爸爸"}])
    add_event(camp / "siyu.db", "j1", "group_joined", "in_g1", "2026-11-30T02:00:00Z", group="g1")

    summary = once("2026-12-01 12:31")
    assert summary["skipped"] == {"limit:per_contact_per_day": 1}
    private = {d["target"]: (d["state"], d["reason"]) for d in drafts(camp, "channel = 'private'")}
    assert private == {"contact:in_g1": ("skipped", "limit:per_contact_per_day"), "contact:no_group": ("sent", None)}


def test_private_drafts_per_account_per_day(camp: Path) -> None:
    write_playbook(camp, beats=[NOON_1V1], limits={"private_per_account_per_day": 2})
    add_contacts(camp / "siyu.db", parents(5))
    first = once("2026-12-01 12:31")
    assert first["sent"] == 2 and first["skipped"] == {"limit:private_per_account_per_day": 3}
    # The next day has a fresh budget.
    assert once("2026-12-02 12:31")["sent"] == 2
    assert len(outbox_files(camp / "outbox")) == 4


def test_the_contacts_an_account_cap_refused_go_first_the_next_day(camp: Path) -> None:
    write_playbook(camp, beats=[NOON_1V1], limits={"private_per_account_per_day": 2}, days=3)
    add_contacts(camp / "siyu.db", parents(3))
    served = []
    for day in ("01", "02", "03"):
        once(f"2026-12-{day} 12:31")
        served.append(sorted(d["target"][-5:] for d in drafts(camp, "state = 'sent' AND due_at LIKE ?", (f"2026-12-{day}%",))))
    # Day 1 in contact order; then whoever was served least, then longest ago, first: nobody loses every day.
    assert served[1] == ["c0000", "c0002"]
    counts = {c: sum(c in day for day in served) for c in ("c0000", "c0001", "c0002")}
    assert sorted(counts.values()) == [2, 2, 2], served


# --- variants ------------------------------------------------------------------------------------

VARIANT_BEAT = {
    "id": "close",
    "title": "逼单",
    "at": "20:00",
    "days": "all",
    "channel": "private",
    "audience": "parents",
    "variants": {
        "a": {"weight": 45, "text": "A版：{{ contact.name }}，年卡今晚截止"},
        "b": {"weight": 45, "text": "B版：{{ contact.name }}，最后名额"},
        "holdout": {"weight": 10},
    },
}


def test_variants_are_stable_across_stores_and_holdout_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assignments = []
    for copy in ("first", "second"):
        folder = tmp_path / copy
        write_playbook(folder, beats=[VARIANT_BEAT], days=1)
        add_contacts(folder / "siyu.db", parents(200))
        monkeypatch.chdir(folder)
        summary = once("2026-12-01 20:01")
        rows = drafts(folder)
        assignments.append({d["target"]: d["variant"] for d in rows})
        counts: dict[str, int] = {}
        for d in rows:
            counts[d["variant"]] = counts.get(d["variant"], 0) + 1
        assert set(counts) == {"a", "b", "holdout"} and counts["holdout"] < counts["a"]
        assert summary["skipped"] == {"holdout": counts["holdout"]}
        assert summary["sent"] == counts["a"] + counts["b"] == len(outbox_files(folder / "outbox"))
        for d in rows:
            if d["variant"] == "holdout":
                assert (d["state"], d["reason"], d["text"]) == ("skipped", "holdout", None)
            else:
                assert d["state"] == "sent" and d["text"].startswith(f"{d['variant'].upper()}版：")
    assert assignments[0] == assignments[1]


# --- template errors and retry ------------------------------------------------------------------


def test_template_error_is_recorded_and_retry_after_the_fix_sends_it(camp: Path) -> None:
    beat = {"id": "morning", "title": "早分享", "at": "08:30", "days": "all", "channel": "group", "template": "morning.md.j2"}
    write_playbook(camp, beats=[beat], templates={"morning.md.j2": "早上好 {{ missing_var }}\n"})
    summary = once("2026-12-01 08:31", code=1)
    assert summary["failed"] == 1 and summary["sent"] == 0
    assert "missing_var" in summary["errors"][0]
    [row] = drafts(camp)
    assert (row["state"], row["reason"]) == ("failed", "template_error") and "missing_var" in row["error"]
    assert outbox_files(camp / "outbox") == []
    # A later pass does not try again on its own, and does not report it twice.
    assert once("2026-12-01 08:40")["failed"] == 0

    (camp / "morning.md.j2").write_text("早上好，第{{ day }}天\n", encoding="utf-8")
    result = siyu("retry", "--now", "2026-12-01 10:00", "--json")
    assert json.loads(result.stdout)["sent"] == 1
    [row] = drafts(camp)
    assert (row["state"], row["error"]) == ("sent", None) and row["text"] == "早上好，第1天"
    [path] = outbox_files(camp / "outbox")
    assert "早上好，第1天" in path.read_text("utf-8")


def test_retry_with_nothing_failed_sends_nothing(camp: Path) -> None:
    write_playbook(camp, beats=[MORNING])
    once("2026-12-01 08:31")
    assert json.loads(siyu("retry", "--json").stdout)["sent"] == 0


# --- welcome sequences --------------------------------------------------------------------------


def test_welcome_steps_follow_each_contacts_add_time_in_the_hooks_persona(camp: Path) -> None:
    hook = {
        "id": "card-eye",
        "kind": "package_card",
        "title": "回购卡",
        "offer": "免费领眼霜",
        "code": "EYE100",
        "tags": ["包裹卡"],
        "persona": "advisor",
        "welcome": [
            {"after": "0m", "text": "{{ contact.name }}，欢迎！我是{{ persona.name }}"},
            {"after": "1d", "at": "10:00", "text": "{{ contact.name }}，眼霜用得怎么样？"},
        ],
    }
    write_playbook(camp, beats=[], hooks=[hook])
    add_contacts(
        camp / "siyu.db",
        [
            {"contact_id": "eye1", "name": "张姐", "tags": ["包裹卡"], "source": "EYE100", "added_at": "2026-12-01T03:15:00Z"},
            {"contact_id": "eye2", "name": "刘姐", "tags": ["包裹卡"], "source": "EYE100", "added_at": "2026-12-01T06:00:00Z"},
            {"contact_id": "other", "name": "路人", "tags": [], "source": "SHOP", "added_at": "2026-12-01T03:00:00Z"},
        ],
    )
    assert once("2026-12-01 12:00")["sent"] == 1  # eye1 added 11:15; eye2 adds at 14:00
    assert once("2026-12-01 14:01")["sent"] == 1
    assert once("2026-12-02 10:01")["sent"] == 2
    rows = drafts(camp)
    assert [(d["beat"], d["target"], d["due_at"], d["persona"], d["channel"]) for d in rows] == [
        ("welcome:card-eye:1", "contact:eye1", "2026-12-01T03:15:00Z", "advisor", "welcome"),
        ("welcome:card-eye:1", "contact:eye2", "2026-12-01T06:00:00Z", "advisor", "welcome"),
        ("welcome:card-eye:2", "contact:eye1", "2026-12-02T02:00:00Z", "advisor", "welcome"),
        ("welcome:card-eye:2", "contact:eye2", "2026-12-02T02:00:00Z", "advisor", "welcome"),
    ]
    assert rows[0]["text"] == "张姐，欢迎！我是李老师"
    assert all(d["state"] == "sent" for d in rows)
    texts = [p.read_text("utf-8") for p in outbox_files(camp / "outbox")]
    assert any("刘姐，眼霜用得怎么样？" in t and "李老师 (wx_adv_02)" in t for t in texts)


# --- planning cost --------------------------------------------------------------------------------


def test_a_pass_renders_only_drafts_not_in_the_ledger(camp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu_cli.dispatch import Runner
    from siyu_cli.render import Planner
    from tests.playbooks_fixtures import local

    path = write_playbook(camp, beats=[MORNING, NOON_1V1], limits={"missed": {"max_late": "6h"}})
    add_contacts(camp / "siyu.db", parents(50))
    rendered: list[str] = []
    original = Planner.render

    def counting(self: Planner, draft: Any, **kwargs: Any) -> Any:
        rendered.append(draft.draft_id)
        return original(self, draft, **kwargs)

    monkeypatch.setattr(Planner, "render", counting)
    runner = Runner(path, outbox_dir=camp / "outbox")
    try:
        assert runner.run_once(local("2026-12-01 12:31")).sent == 51
        assert len(rendered) == 51
        rendered.clear()
        assert runner.run_once(local("2026-12-01 12:45")).sent == 0
        assert rendered == []
        runner.run_once(local("2026-12-02 08:31"))
        assert len(rendered) == 1
    finally:
        runner.db.conn.close()


def test_recovery_never_takes_a_claim_made_while_it_looks(camp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass starting beside another must not mistake the other's fresh claim for a dead run's."""
    from siyu_cli.dispatch import PassSummary, Runner
    from siyu_cli.ledger import Ledger
    from siyu_cli.store import open_store
    from tests.playbooks_fixtures import local

    path = write_playbook(camp, beats=[MORNING])
    moment = local("2026-12-01 08:31")
    runner = Runner(path, outbox_dir=camp / "outbox")
    other = Ledger(open_store(camp / "siyu.db"))
    try:
        runner.plan(moment, PassSummary(now=moment))
        original = Ledger.runs
        raced: list[str] = []

        def runs_while_another_claims(self: Ledger, *, live_only: bool = False) -> Any:
            found = original(self, live_only=live_only)
            if self is runner.ledger and not raced:
                run_id = other.start_run("camp", "once", moment)
                raced.append(run_id)
                assert other.claim(run_id, moment, 10, "camp")
            return found

        monkeypatch.setattr(Ledger, "runs", runs_while_another_claims)
        assert runner.recover(moment, runner.inputs()) == (0, 0)
        assert raced
        assert query(camp / "siyu.db", "SELECT state, claimed_by FROM drafts") == [("claimed", raced[0])]
    finally:
        runner.db.conn.close()
        other.db.conn.close()


def test_retry_of_a_fixed_template_error_is_held_to_max_late(camp: Path) -> None:
    beat = {"id": "morning", "title": "早分享", "at": "08:30", "days": "all", "channel": "group", "template": "morning.md.j2"}
    write_playbook(camp, beats=[beat], templates={"morning.md.j2": "早上好 {{ missing_var }}\n"})
    once("2026-12-01 08:31", code=1)
    (camp / "morning.md.j2").write_text("早上好，第{{ day }}天\n", encoding="utf-8")
    result = json.loads(siyu("retry", "--now", "2026-12-01 11:00", "--json").stdout)  # 2.5 h late; max_late is 2h
    assert (result["sent"], result["skipped"]) == (0, {"missed": 1})
    assert [(d["state"], d["reason"]) for d in drafts(camp)] == [("skipped", "missed")]
    assert outbox_files(camp / "outbox") == []
