"""Group health 群健康 (issue 14 item 3): classes from events, `report groups`, beats that skip groups by health."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.playbooks_fixtures import create_store, invoke, query, write_playbook

GROUPS = [
    {"id": "g1", "name": "阅读营1群", "persona": "host"},  # members talk to each other → value
    {"id": "g2", "name": "阅读营2群", "persona": "host"},  # members, nobody says anything → dead
    {"id": "g3", "name": "阅读营3群", "persona": "host"},  # only ads → spam
    {"id": "g4", "name": "阅读营4群", "persona": "host"},  # one member of twenty speaks → chicken-rib
]
FISSION = {
    "id": "fission",
    "title": "裂变",
    "at": "10:00",
    "days": "8-10",
    "channel": "group",
    "groups": {"health": ["value", "chicken_rib"]},
    "text": "第{{ day }}天：把营里的好书推荐给朋友",
}


def _events(db: Path, rows: list[tuple[str, str, str, str | None, dict[str, Any] | None]], prefix: str = "e") -> None:
    create_store(db)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO events (event_id, type, contact_id, at, group_id, props) VALUES (?, ?, ?, ?, ?, ?)",
            [(f"{prefix}{n}", kind, contact, at, group, json.dumps(props or {}, ensure_ascii=False)) for n, (kind, contact, at, group, props) in enumerate(rows)],
        )
    conn.close()


def _camp(tmp_path: Path, **extra: Any) -> tuple[Path, Path]:
    playbook = write_playbook(tmp_path, beats=[FISSION], days=10, groups=GROUPS, **extra)
    db = tmp_path / "siyu.db"
    rows: list[tuple[str, str, str, str | None, dict[str, Any] | None]] = []
    for group, size in (("g1", 10), ("g2", 10), ("g3", 10), ("g4", 20)):
        rows += [("group_joined", f"{group}-m{i}", "2026-11-30T02:00:00Z", group, None) for i in range(size)]
    for day in range(1, 8):  # 2026-12-01 .. 12-07, local noon
        at = f"2026-12-{day:02d}T04:00:00Z"
        rows += [("message_replied", f"g1-m{i}", at, "g1", None) for i in range(4)]
        rows += [("message_replied", "g3-m0", at, "g3", {"kind": "ad"})]
        rows += [("message_replied", "g4-m0", at, "g4", None)]
    rows += [("group_left", "g2-m9", "2026-12-03T04:00:00Z", "g2", None)]
    _events(db, rows)
    return playbook, db


def test_report_groups_classes_each_group_with_its_signals(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path)
    data = json.loads(invoke("report", "groups", str(playbook), "--db", str(db), "--json", "--until", "2026-12-08").stdout)
    latest = {g["group"]: g for g in data["groups"]}
    assert {k: v["health"] for k, v in latest.items()} == {"g1": "value", "g2": "dead", "g3": "spam", "g4": "chicken_rib"}
    assert latest["g1"]["signals"] == {"members": 10, "talkers": 4, "messages": 28, "ads": 0, "checkins": 0, "orders": 0, "active": 4, "joined": 0, "left": 0}
    assert latest["g2"]["signals"]["members"] == 9 and latest["g2"]["signals"]["left"] == 1
    assert "7 ads of" not in latest["g3"]["why"] and "7 of 7 messages were ads" in latest["g3"]["why"]
    assert "1 of 20 members spoke (5%" in latest["g4"]["why"]
    # History starts at the first event (the joins of 11-30, before day 1): 12-07 is the first day with 7 days before it.
    g1 = [d["health"] for d in latest["g1"]["days"]]
    assert g1 == ["new"] * 6 + ["value", "value"]
    assert data["settings"]["window"] == "7d" and data["settings"]["value"] == {"talkers": 3, "share": 0.1}


def test_a_spam_groups_columns_count_the_ads_it_is_classed_by(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu_cli.cli import app

    playbook, db = _camp(tmp_path)
    args = ["report", "groups", str(playbook), "--db", str(db), "--until", "2026-12-08"]
    g3 = next(g for g in json.loads(invoke(*args, "--json").stdout)["groups"] if g["group"] == "g3")
    assert (g3["health"], g3["signals"]["messages"], g3["signals"]["ads"], g3["signals"]["talkers"]) == ("spam", 7, 7, 0)
    assert "7 of 7 messages were ads" in g3["why"]
    for columns, cells in (("200", ["10", "0", "7", "7", "0", "0"]), ("60", ["10", "0", "7", "0"])):
        table = CliRunner().invoke(app, args, env={"NO_COLOR": "1", "COLUMNS": columns}).stdout
        row = next(line for line in table.splitlines() if "广告群 spam" in line)
        assert row.split("✕")[-1].split()[: len(cells)] == cells, (columns, row)


def test_report_groups_table_and_csv(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path)
    table = invoke("report", "groups", str(playbook), "--db", str(db), "--until", "2026-12-08").stdout
    assert "价值群 value" in table and "死群 dead" in table and "广告群 spam" in table and "鸡肋群 chicken-rib" in table
    assert "······●●" in table  # 6 new days, then value
    csv = invoke("report", "groups", str(playbook), "--db", str(db), "--csv", "--until", "2026-12-08").stdout
    lines = csv.splitlines()
    assert lines[0].startswith("\ufeffdate,group,name,cohort,health,members,talkers")
    assert "2026-12-08,g2,阅读营2群,default,dead,9,0,0,0,0,0,0,0,1," in csv
    assert len(lines) == 1 + 4 * 8
    invoke("report", "groups", str(playbook), "--db", str(db), "--csv", "--json", code=2)


def test_thresholds_are_the_playbooks(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path, group_health={"window": "5d", "value": {"talkers": 5}, "ads": {"prop": "kind", "values": ["广告"]}})
    data = json.loads(invoke("report", "groups", str(playbook), "--db", str(db), "--json", "--until", "2026-12-08").stdout)
    latest = {g["group"]: g["health"] for g in data["groups"]}
    assert latest["g1"] == "chicken_rib"  # 4 talkers < 5
    assert latest["g3"] == "chicken_rib"  # "ad" is no longer an ad mark: one member speaks
    days = next(g for g in data["groups"] if g["group"] == "g2")["days"]
    assert [d["health"] for d in days][:5] == ["new"] * 4 + ["dead"]  # history from the joins of 11-30


def test_a_pass_skips_groups_whose_health_is_not_listed_and_records_why(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path)
    # Day 8's messages in g2 come after its midnight: day 8 is decided on the days before (no look-ahead).
    _events(db, [("message_replied", f"g2-m{i}", "2026-12-08T01:00:00Z", "g2", None) for i in range(5)], prefix="late")
    invoke("run", str(playbook), "--once", "--now", "2026-12-08T10:30:00+08:00", "--db", str(db), "--outbox", str(tmp_path / "outbox"))
    rows = dict(
        (target, (state, reason))
        for target, state, reason in query(db, "SELECT target, state, reason FROM drafts WHERE beat = 'fission' AND day = 8")
    )
    assert rows == {
        "group:g1": ("sent", None),
        "group:g2": ("skipped", "group_health:dead"),
        "group:g3": ("skipped", "group_health:spam"),
        "group:g4": ("sent", None),
    }
    # One send task to the two groups whose health the beat lists: one file naming both.
    [task] = sorted((tmp_path / "outbox").rglob("*.md"))
    assert "fission-groups-2" in task.name
    body = task.read_text(encoding="utf-8")
    listed = body.split("## 发给 recipients (2)\n")[1]
    assert [line.split(" · ")[1] for line in listed.strip().splitlines()] == ["group:g1", "group:g4"]
    invoke("run", str(playbook), "--once", "--now", "2026-12-09T10:30:00+08:00", "--db", str(db), "--outbox", str(tmp_path / "outbox"))
    day9 = dict(query(db, "SELECT target, state FROM drafts WHERE beat = 'fission' AND day = 9"))
    assert day9["group:g2"] == "sent"  # five members spoke on day 8: value from day 9


def test_preview_shows_which_groups_are_skipped_and_why(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path)
    data = json.loads(invoke("preview", "day", "8", str(playbook), "--db", str(db), "--json").stdout)
    decisions = {d["group"]: (d["decision"], d["decision_text"]) for d in data["drafts"] if d["beat"] == "fission"}
    assert decisions["g1"][0] == "send" and decisions["g4"][0] == "send"
    assert decisions["g2"][0] == "skip:group_health:dead" and "死群 dead" in decisions["g2"][1] and "0 active members in 7 days" in decisions["g2"][1]
    assert decisions["g3"][0] == "skip:group_health:spam"
    shown = invoke("preview", "day", "8", str(playbook), "--db", str(db)).stdout
    assert "group health 群健康: 死群 dead" in shown


def test_check_validates_health_filters(tmp_path: Path) -> None:
    early = dict(FISSION, days="1-10")
    playbook = write_playbook(tmp_path, beats=[early], days=10, groups=GROUPS)
    said = invoke("check", str(playbook), "--strict", code=1).stderr
    assert "beats[0].groups.health: on day(s) 1, 2, 3, 4, 5, 6, 7 every group of this beat is new 新群" in said
    assert "add new to health" in said
    fixed = write_playbook(tmp_path, beats=[dict(early, groups={"health": ["value", "new"]})], days=10, groups=GROUPS)
    invoke("check", str(fixed), "--strict")
    bad = write_playbook(tmp_path, beats=[dict(FISSION, groups={"in": ["g1", "g9"], "health": ["valuable"]})], days=10, groups=GROUPS)
    said = invoke("check", str(bad), code=1).stderr
    assert "beats[0].groups.in[1]: unknown group 'g9'" in said
    assert "beats[0].groups.health[0]" in said and "valuable" in said
    window = write_playbook(tmp_path, beats=[FISSION], days=10, groups=GROUPS, group_health={"window": "36h"})
    assert "not a whole number of days" in invoke("check", str(window), code=1).stderr


@pytest.mark.parametrize("kind", ["checkin", "order"])
def test_checkins_and_orders_without_a_group_count_for_the_contacts_group(tmp_path: Path, kind: str) -> None:
    playbook = write_playbook(tmp_path, beats=[FISSION], days=10, groups=GROUPS[:2])
    db = tmp_path / "siyu.db"
    rows: list[tuple[str, str, str, str | None, dict[str, Any] | None]] = [("group_joined", f"m{i}", "2026-11-30T02:00:00Z", "g1", None) for i in range(5)]
    rows += [(kind, "m0", "2026-12-05T04:00:00Z", None, None)]
    _events(db, rows)
    data = json.loads(invoke("report", "groups", str(playbook), "--db", str(db), "--json", "--until", "2026-12-08").stdout)
    g1 = next(g for g in data["groups"] if g["group"] == "g1")
    assert g1["health"] == "chicken_rib" and g1["signals"]["active"] == 1 and g1["signals"][kind + "s"] == 1


def test_html_report_has_a_group_health_section(tmp_path: Path) -> None:
    playbook, db = _camp(tmp_path)
    out = tmp_path / "report.html"
    result = invoke("report", "html", str(playbook), "--db", str(db), "--out", str(out))
    assert "群健康" in result.stdout
    page = out.read_text(encoding="utf-8")
    assert 'id="group-health"' in page and 'data-group="g2"' in page


def test_the_education_starter_runs_fission_only_in_live_groups(tmp_path: Path) -> None:
    project = tmp_path / "camp"
    invoke("init", str(project), "--from", "education")
    playbook = project / "playbooks" / "education-camp.yaml"
    invoke("check", str(playbook), "--strict")
    db = tmp_path / "siyu.db"
    # g1 has members who check in; g2's members never do anything: by day 8 (结营后) it is dead.
    rows: list[tuple[str, str, str, str | None, dict[str, Any] | None]] = []
    rows += [("group_joined", f"a{i}", "2026-11-30T02:00:00Z", "g1", None) for i in range(5)]
    rows += [("group_joined", f"b{i}", "2026-11-30T02:00:00Z", "g2", None) for i in range(5)]
    rows += [("checkin", f"a{i}", f"2026-12-0{d}T12:00:00Z", None, None) for i in range(3) for d in range(1, 8)]
    _events(db, rows)
    data = json.loads(invoke("preview", "day", "8", str(playbook), "--db", str(db), "--json").stdout)
    launch = {d["group"]: d["decision"] for d in data["drafts"] if d["beat"] == "fission-launch"}
    assert launch == {"g1": "send", "g2": "skip:group_health:dead"}


def test_groups_without_any_signal_are_unknown_and_get_the_post(tmp_path: Path) -> None:
    """No events at all (WeCom gives no group messages without 会话存档): the fission beat posts everywhere, report groups says why."""
    project = tmp_path / "camp"
    invoke("init", str(project), "--from", "education")
    playbook = project / "playbooks" / "education-camp.yaml"
    db = tmp_path / "siyu.db"
    invoke("run", str(playbook), "--clock", "fast", "--db", str(db), "--outbox", str(tmp_path / "outbox"))
    fission = query(db, "SELECT target, occurrence_at, state, reason FROM drafts WHERE beat LIKE 'fission-%'")
    assert fission and {(state, reason) for _, _, state, reason in fission} == {("sent", None)}
    # report groups classes the days the runner decided on, with the runner's classifier.
    data = json.loads(invoke("report", "groups", str(playbook), "--db", str(db), "--json").stdout)
    days = {(g["group"], d["date"]): d for g in data["groups"] for d in g["days"]}
    for target, at, _, _ in fission:
        local = datetime.fromisoformat(at).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        day = days[(target.removeprefix("group:"), local)]
        assert day["health"] == "unknown" and "no group activity in the store" in day["why"], day
    g1 = next(g for g in data["groups"] if g["group"] == "g1")
    assert [d["health"] for d in g1["days"]] == ["new"] * 7 + ["unknown"] * 2
    table = invoke("report", "groups", str(playbook), "--db", str(db)).stdout
    assert "未知 unknown" in table
    # check names each filter that has nothing to decide on, with the store it read; without a store there is nothing to say yet.
    def no_data(*store: str) -> list[dict[str, Any]]:
        found = json.loads(invoke("check", str(playbook), "--json", *store).stdout)["files"][0]["problems"]
        return [p for p in found if p["code"] == "group-health-no-data"]

    warned = no_data("--db", str(db))
    assert [p["severity"] for p in warned] == ["warning", "warning"]  # fission-launch and fission-leaderboard
    assert "the store has no group activity" in warned[0]["message"] and "会话存档" in warned[0]["hint"]
    assert no_data() == []


def test_joins_alone_are_no_evidence_but_a_store_with_messages_is(tmp_path: Path) -> None:
    """Membership events (siyu serve's group joins) and no activity anywhere: unknown; once the store holds messages, a silent group is dead."""
    playbook = write_playbook(tmp_path, beats=[FISSION], days=10, groups=GROUPS[:2])
    db = tmp_path / "siyu.db"
    rows: list[tuple[str, str, str, str | None, dict[str, Any] | None]] = []
    rows += [("group_joined", f"{g}-m{i}", "2026-11-30T02:00:00Z", g, None) for g in ("g1", "g2") for i in range(5)]
    _events(db, rows)
    args = ("report", "groups", str(playbook), "--db", str(db), "--json", "--until", "2026-12-08")
    latest = {g["group"]: g["health"] for g in json.loads(invoke(*args).stdout)["groups"]}
    assert latest == {"g1": "unknown", "g2": "unknown"}
    preview = json.loads(invoke("preview", "day", "8", str(playbook), "--db", str(db), "--json").stdout)
    assert {d["group"]: d["decision"] for d in preview["drafts"] if d["beat"] == "fission"} == {"g1": "send", "g2": "send"}
    _events(db, [("message_replied", f"g1-m{i}", "2026-12-05T04:00:00Z", "g1", None) for i in range(4)], prefix="m")
    latest = {g["group"]: g["health"] for g in json.loads(invoke(*args).stdout)["groups"]}
    assert latest == {"g1": "value", "g2": "dead"}
    preview = json.loads(invoke("preview", "day", "8", str(playbook), "--db", str(db), "--json").stdout)
    assert {d["group"]: d["decision"] for d in preview["drafts"] if d["beat"] == "fission"} == {"g1": "send", "g2": "skip:group_health:dead"}
    said = json.loads(invoke("check", str(playbook), "--json", "--db", str(db)).stdout)["files"][0]["problems"]
    assert [p for p in said if p["code"] == "group-health-no-data"] == []


def test_a_bad_health_class_is_one_error(tmp_path: Path) -> None:
    bad = write_playbook(tmp_path, beats=[dict(FISSION, groups={"health": ["value", "alive"]})], days=10, groups=GROUPS)
    said = invoke("check", str(bad), code=1).stderr
    assert "beats[0].groups.health[1]" in said and "'alive'" in said
    assert "valid list" not in said and said.count("error:") == 1, said
    listed = write_playbook(tmp_path, beats=[dict(FISSION, groups=7)], days=10, groups=GROUPS)
    assert "beats[0].groups" in invoke("check", str(listed), code=1).stderr  # a shape neither form takes is still said


def test_unknown_may_be_listed_and_a_list_without_it_still_posts_in_groups_with_no_data(tmp_path: Path) -> None:
    """g5 has no event of its own: unknown. `[unknown]` posts only there; `[value]` posts in g1 and still in g5 (no data is no evidence)."""
    groups = [*GROUPS, {"id": "g5", "name": "阅读营5群", "persona": "host"}]
    only_unknown = dict(FISSION, id="ask", groups={"health": ["unknown"]})
    value = dict(FISSION, id="value", at="10:05", groups={"health": ["value"]})
    listed = dict(FISSION, id="listed", at="10:10", groups={"in": ["g2", "g5"], "health": ["value", "unknown"]})
    playbook, db = _camp(tmp_path)
    write_playbook(tmp_path, beats=[only_unknown, value, listed], days=10, groups=groups)
    checked = json.loads(invoke("check", str(playbook), "--strict", "--json", "--db", str(db)).stdout)["files"][0]
    assert checked["problems"] == [], checked
    invoke("run", str(playbook), "--once", "--now", "2026-12-08T10:30:00+08:00", "--db", str(db), "--outbox", str(tmp_path / "outbox"))
    rows = query(db, "SELECT beat, target, state, reason FROM drafts WHERE day = 8 ORDER BY beat, target")
    sent = {(beat, target.removeprefix("group:")) for beat, target, state, _ in rows if state == "sent"}
    assert sent == {("ask", "g5"), ("value", "g1"), ("value", "g5"), ("listed", "g5")}
    skipped = {(beat, target.removeprefix("group:")): reason for beat, target, state, reason in rows if state == "skipped"}
    assert skipped == {
        ("ask", "g1"): "group_health:value", ("ask", "g2"): "group_health:dead", ("ask", "g3"): "group_health:spam", ("ask", "g4"): "group_health:chicken_rib",
        ("value", "g2"): "group_health:dead", ("value", "g3"): "group_health:spam", ("value", "g4"): "group_health:chicken_rib",
        ("listed", "g2"): "group_health:dead",
    }  # fmt: skip
    preview = json.loads(invoke("preview", "day", "8", str(playbook), "--db", str(db), "--json").stdout)
    assert {d["group"]: d["decision"] for d in preview["drafts"] if d["beat"] == "ask"}["g5"] == "send"


def test_a_misspelt_unknown_is_a_located_error_in_check_and_run(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, beats=[dict(FISSION, groups={"health": ["value", "unkown"]})], days=10, groups=GROUPS)
    line = playbook.read_text(encoding="utf-8").splitlines().index("    - unkown") + 1
    said = invoke("check", str(playbook), code=1).stderr
    assert f"playbook.yaml:{line}:7: error: beats[0].groups.health[1]" in said and "(got 'unkown')" in said, said
    assert "'new' or 'unknown'" in said and said.count("error:") == 1
    db = tmp_path / "siyu.db"
    ran = invoke("run", str(playbook), "--once", "--now", "2026-12-08T10:30:00+08:00", "--db", str(db), "--outbox", str(tmp_path / "outbox"), code=1)
    assert f"playbook.yaml:{line}:7" in ran.output and "beats[0].groups.health[1]" in ran.output and "Traceback" not in ran.output
    assert not (tmp_path / "outbox").exists() and (not db.exists() or query(db, "SELECT COUNT(*) FROM drafts") == [(0,)])


@pytest.mark.parametrize(("health", "said"), [(["value", "chicken-rib"], "'chicken-rib' is no health class: did you mean chicken_rib?"), (["value", "value"], "value listed twice")])
def test_a_hyphenated_or_repeated_health_class_is_one_located_error(tmp_path: Path, health: list[str], said: str) -> None:
    playbook = write_playbook(tmp_path, beats=[dict(FISSION, groups={"health": health})], days=10, groups=GROUPS)
    result = invoke("check", str(playbook), code=1).stderr
    assert "beats[0].groups.health" in result and said in result and result.count("error:") == 1, result
