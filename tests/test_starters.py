"""The starter playbooks: strict-clean, valid against the published schema, previewable on several days,
and doing what an operator reads in them: 1v1 on each contact's own clock, stopping once they buy."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app
from siyu_cli.playbook import LoadedPlaybook, parse_tags, read
from siyu_cli.playbook._yaml import load_located
from tests.playbooks_fixtures import run_siyu

ROOT = Path(__file__).resolve().parent.parent
STARTERS = sorted((ROOT / "playbooks").glob("*.yaml"))
ECOMMERCE = ROOT / "playbooks" / "ecommerce-card.yaml"
SKINCARE = ROOT / "playbooks" / "skincare-persona.yaml"
EDUCATION = ROOT / "playbooks" / "education-camp.yaml"


def _data(path: Path) -> Any:
    """The playbook as siyu reads it: YAML keys keep their text (`on:` is the key "on", not True as YAML 1.1 has it)."""
    located, problems = load_located(path.read_text(encoding="utf-8"), str(path))
    assert located is not None, problems
    return json.loads(json.dumps(located.data, default=str))


def _matches(loaded: LoadedPlaybook, audience: str, tags: set[str]) -> bool:
    return parse_tags(loaded.model.segments.get(audience, audience)).matches(tags)


def test_three_starters_exist() -> None:
    assert len(STARTERS) == 3


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_passes_check_strict(path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--strict", str(path)])
    assert result.exit_code == 0, result.output


def _schema() -> dict:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    return json.loads(result.output)


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_validates_against_schema(path: Path) -> None:
    jsonschema.validate(_data(path), _schema())


def test_broken_playbook_fails_schema() -> None:
    data = _data(STARTERS[0])
    data["beats"][0]["channel"] = "fax"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema())
    data = _data(STARTERS[0])
    data["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema())


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
@pytest.mark.parametrize("day", [1, 2, 5, 7])
def test_preview_starter_days(path: Path, day: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["preview", "day", str(day), "-p", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["day"] == day
    assert all(item["error"] is None for item in data["drafts"]), [i["error"] for i in data["drafts"] if i["error"]]
    texts = [item["text"] for item in data["drafts"] if item["text"]]
    assert texts, "a starter day with nothing to send"
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts)
    times = [item["time"] for item in data["drafts"]]
    assert times == sorted(times)
    assert not (tmp_path / "siyu.db").exists(), "preview must not write a store"


def test_preview_rich_output_marks_sample_and_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = next(p for p in STARTERS if "education" in p.name)
    result = CliRunner().invoke(app, ["preview", "day", "6", "-p", str(path)])
    assert result.exit_code == 0
    assert "sample" in result.output
    assert "早分享" in result.output


def test_preview_out_writes_files_under_the_date(tmp_path: Path) -> None:
    for day in ("2", "3"):
        result = CliRunner().invoke(app, ["preview", "day", day, "-p", str(STARTERS[0]), "--out", str(tmp_path / "drafts")])
        assert result.exit_code == 0
    folders = sorted(p.name for p in (tmp_path / "drafts").iterdir())
    assert len(folders) == 2 and all(len(name) == 10 and name[4] == "-" for name in folders), folders
    for folder in folders:
        files = list((tmp_path / "drafts" / folder).glob("*.md"))
        assert files and all(f.read_text(encoding="utf-8").startswith(f"<!-- {folder} ") for f in files)


def test_preview_day_outside_campaign(tmp_path: Path) -> None:
    path = next(p for p in STARTERS if "education" in p.name)
    result = CliRunner().invoke(app, ["preview", "day", "99", "-p", str(path)])
    assert result.exit_code == 2 and "outside the campaign" in result.output


@pytest.mark.parametrize("archetype", ["education", "skincare", "ecommerce"])
def test_init_scaffolds_a_checkable_project(archetype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "proj"
    result = CliRunner().invoke(app, ["init", str(target), "--from", archetype])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(target)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    result = CliRunner().invoke(app, ["check", "--strict"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(app, ["init", str(target), "--from", archetype])
    assert again.exit_code == 1 and "not empty" in again.output


def test_init_unknown_archetype(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "x"), "--from", "crypto"])
    assert result.exit_code == 2 and "education" in result.output


def test_timeline_calendar(tmp_path: Path) -> None:
    path = next(p for p in STARTERS if "skincare" in p.name)
    result = CliRunner().invoke(app, ["timeline", "-p", str(path), "--json"])
    assert result.exit_code == 0
    items = json.loads(result.output)
    moments = [i for i in items if i["channel"] == "moments"]
    assert {i["category"] for i in moments} >= {"life"}
    table = CliRunner().invoke(app, ["timeline", "-p", str(path)])
    assert table.exit_code == 0 and "day" in table.output


def test_all_starters_pass_check_strict_in_one_cli_call(tmp_path: Path) -> None:
    """What `make lint` runs: the real entry point, all three at once, no warning (strict fails on one)."""
    done = run_siyu(tmp_path, "check", "--strict", "--json", *map(str, STARTERS))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    text = json.dumps(report, ensure_ascii=False)
    assert '"warning"' not in text and '"error"' not in text, text


# ---- 电商 · 包裹卡: welcomes stop at the first order; each order runs its own repurchase journey ----


def test_ecommerce_welcomes_exit_on_the_first_order() -> None:
    loaded = read(ECOMMERCE)
    hooks = [h for h in loaded.model.hooks if h.welcome]
    assert {h.code for h in hooks} == {"EYE100", "CASH5"}
    for hook in hooks:
        assert [(e.event, e.segment) for e in hook.exit] == [("order", None)], hook.id


def test_ecommerce_repurchase_is_a_repeat_journey_entered_by_each_order() -> None:
    model = read(ECOMMERCE).model
    journey = next(j for j in model.journeys if j.id == "repurchase")
    assert journey.enter.event == "order" and journey.enter.nth is None and journey.repeat is True
    assert any(e.event == "order" for e in journey.exit), "the next order ends this order's reminders"
    steps = {s.id: s for s in journey.steps}
    assert (steps["usage"].after, steps["restock"].after) == ("3d", "25d")
    variants = steps["restock"].variants or {}
    assert {"a", "b", "holdout"} <= set(variants) and variants["holdout"].template is None and variants["holdout"].text is None
    # The calendar "day 30" push is gone: every 1v1 message runs on the contact's own clock.
    assert not [b.id for b in model.beats if b.channel == "private"]


def test_ecommerce_segments_read_the_tags_rules_give() -> None:
    loaded = read(ECOMMERCE)
    given = {tag for rule in loaded.model.rules for adds, tag in rule.changes if adds}
    assert {"已购", "复购", "已退款"} <= given
    on = {(r.on.event, r.on.nth): r.changes for r in loaded.model.rules}
    assert (True, "已购") in on[("order", None)] and (True, "复购") in on[("order", 2)] and (True, "已退款") in on[("refund", None)]
    # The names a person used to type by hand are gone from every segment.
    assert not any(old in expr for expr in loaded.model.segments.values() for old in ("已下单", "已复购"))
    assert _matches(loaded, "cash_unordered", {"包裹卡", "返现卡"}) and not _matches(loaded, "cash_unordered", {"包裹卡", "返现卡", "已购"})
    assert _matches(loaded, "loyal", {"已购", "复购"}) and not _matches(loaded, "loyal", {"已购", "复购", "已退款"})


def test_ecommerce_funnel_counts_first_orders_of_those_who_added() -> None:
    funnel = read(ECOMMERCE).model.funnel
    assert funnel is not None
    stages = {s.id: s for s in funnel.stages}
    assert stages["joined"].optional and not stages["ordered"].optional
    assert funnel.target("added") == (0.15, None)
    assert funnel.target("ordered") == (0.10, "added")


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def ecommerce_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e-commerce starter run end to end on simulated buyers, with enough orders to see repurchases."""
    folder = tmp_path_factory.mktemp("ecom")
    db = str(folder / "siyu.db")
    for args in (
        ("simulate", str(ECOMMERCE), "-n", "120", "--seed", "5", "--rates", "added=0.6,ordered=0.5", "--db", db),
        ("run", str(ECOMMERCE), "--clock", "fast", "--db", db, "--outbox", str(folder / "outbox")),
    ):
        done = run_siyu(folder, *args, timeout=180)
        assert done.returncode == 0, done.stderr + done.stdout
    return folder / "siyu.db"


def test_ecommerce_sends_welcome_and_journey_steps(ecommerce_run: Path) -> None:
    sent = dict(_rows(ecommerce_run, "SELECT beat, COUNT(*) FROM drafts WHERE state = 'sent' GROUP BY beat"))
    for beat in ("welcome:card-repurchase:1", "welcome:card-cashback:1", "journey:invite-flash:invite", "journey:repurchase:usage", "journey:repurchase:restock", "journey:vip:privilege"):
        assert sent.get(beat, 0) > 0, (beat, sent)
    channels = {c for (c,) in _rows(ecommerce_run, "SELECT DISTINCT channel FROM drafts WHERE state = 'sent'")}
    assert {"welcome", "journey", "group", "moments"} <= channels
    # The restock A/B test keeps its holdout, recorded, so `report funnel --by variant` has a control group.
    variants = dict(_rows(ecommerce_run, "SELECT variant, COUNT(*) FROM drafts WHERE beat = 'journey:repurchase:restock' GROUP BY variant"))
    assert set(variants) == {"a", "b", "holdout"}, variants
    assert _rows(ecommerce_run, "SELECT DISTINCT state, reason FROM drafts WHERE variant = 'holdout'") == [("skipped", "holdout")]
    texts = [t for (t,) in _rows(ecommerce_run, "SELECT text FROM drafts WHERE beat = 'journey:repurchase:usage' AND text IS NOT NULL")]
    assert texts and all(re.search(r"您\d{1,2}月\d{1,2}日(下单|开)的", t) for t in texts), "the usage check names the order's date"


def test_ecommerce_coupon_reminders_stop_once_a_contact_orders(ecommerce_run: Path) -> None:
    orders: dict[str, list[datetime]] = defaultdict(list)
    for cid, at in _rows(ecommerce_run, "SELECT contact_id, at FROM events WHERE type = 'order' ORDER BY at"):
        orders[cid].append(_utc(at))
    assert len(orders) > 10
    welcomes = _rows(ecommerce_run, "SELECT substr(target, 9), due_at FROM drafts WHERE channel = 'welcome' AND state = 'sent'")
    late = [(cid, due) for cid, due in welcomes if cid in orders and _utc(due) > orders[cid][0]]
    assert not late, late
    # Each order's repurchase push is sent only if no later order came before it (that order starts its own run).
    for cid, entry, due in _rows(ecommerce_run, "SELECT substr(target, 9), entry, due_at FROM drafts WHERE beat = 'journey:repurchase:restock'"):
        entered = _utc(entry.split("@", 1)[1])
        assert not [o for o in orders[cid] if entered < o <= _utc(due)], (cid, entry, due)
    repeat_buyers = {cid for cid, times in orders.items() if len(times) > 1}
    runs = _rows(ecommerce_run, "SELECT substr(target, 9), COUNT(DISTINCT entry) FROM drafts WHERE beat = 'journey:repurchase:usage' GROUP BY 1")
    assert any(cid in repeat_buyers and count > 1 for cid, count in runs), "a second order starts a second repurchase run"


# ---- 功能型产品 · 护肤: one 1v1 ladder per fan tier, from the add, ending at the order ----


def test_skincare_has_one_ladder_per_fan_tier_entered_at_the_add() -> None:
    loaded = read(SKINCARE)
    ladders = {j.id: j for j in loaded.model.journeys if j.id.endswith("-ladder")}
    assert set(ladders) == {"precise-ladder", "semi-ladder", "general-ladder"}
    for journey in ladders.values():
        assert journey.enter.event == "friend_added" and journey.enter.hook is None
        assert [e.event for e in journey.exit] == ["order"]
        assert [s.id for s in journey.steps] == ["ask", "pain", "close"]
    days = {jid: int(j.steps[0].after.rstrip("d")) for jid, j in ladders.items()}
    assert days["precise-ladder"] <= 1 < days["semi-ladder"] < 7 and days["general-ladder"] >= 28, "泛粉 are nurtured about a month first"


def test_skincare_tiers_are_exclusive_and_buyers_leave_the_ladders() -> None:
    loaded = read(SKINCARE)
    audiences = {j.id: j.audience for j in loaded.model.journeys if j.id.endswith("-ladder")}
    assert audiences["general-ladder"] is not None

    def ladders(tags: set[str]) -> set[str]:
        return {jid for jid, audience in audiences.items() if audience and _matches(loaded, audience, tags)}

    assert ladders({"精准粉", "小红书"}) == {"precise-ladder"}
    assert ladders({"精准粉", "泛粉", "回复过"}) == {"precise-ladder"}
    assert ladders({"半精准粉", "问卷"}) == {"semi-ladder"}
    assert ladders({"泛粉", "抽奖"}) == set(), "a general fan who never interacted is only nurtured in Moments"
    assert ladders({"泛粉", "抽奖", "回复过"}) == {"general-ladder"}
    assert ladders({"精准粉", "已购"}) == ladders({"半精准粉", "暂不需要"}) == set()
    upsell = next(j for j in loaded.model.journeys if j.id == "after-first-order")
    assert upsell.enter.event == "order" and any(e.event == "order" for e in upsell.exit)


# ---- 教育 · 群转: the unpaid close reads tags the events give ----


def test_education_unpaid_close_reads_effective_tags(tmp_path: Path) -> None:
    db = str(tmp_path / "siyu.db")
    with (tmp_path / "contacts.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["contact_id", "name", "cohort"], ["p1", "王妈妈", "batch-12"], ["p2", "李爸爸", "batch-12"]])
    with (tmp_path / "events.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [
                ["event_id", "type", "contact_id", "at", "group", "amount"],
                ["j1", "group_joined", "p1", "2026-12-01T09:00", "g1", ""],
                ["j2", "group_joined", "p2", "2026-12-01T09:10", "g1", ""],
                ["o1", "order", "p1", "2026-12-05T21:00", "", "365"],
            ]
        )
    for args in (("import", "contacts", "contacts.csv"), ("import", "events", "events.csv")):
        done = run_siyu(tmp_path, *args, "--db", db)
        assert done.returncode == 0, done.stderr + done.stdout

    def listed(segment: str) -> set[str]:
        done = run_siyu(tmp_path, "contacts", "list", "--segment", segment, "-p", str(EDUCATION), "--db", db, "--json")
        assert done.returncode == 0, done.stderr
        return {row["id"] for row in json.loads(done.stdout)}

    assert listed("parents") == {"p1", "p2"}, "joining the camp group makes a contact a 家长"
    assert listed("unpaid") == {"p2"}, "an order tags 已购: no hand tagging"
    assert listed("members") == {"p1"}
    # The 1v1 close on day 6 goes to the unpaid parent only.
    done = run_siyu(tmp_path, "run", str(EDUCATION), "--once", "--now", "2026-12-06T21:30", "--db", db, "--outbox", str(tmp_path / "outbox"))
    assert done.returncode == 0, done.stderr + done.stdout
    closes = _rows(tmp_path / "siyu.db", "SELECT target FROM drafts WHERE beat = 'close-1v1' AND day = 6")
    assert closes == [("contact:p2",)], closes
