"""timeline for the whole campaign (issue 13 item 4): every cohort, welcome and journey steps as relative rows,
audiences with their sizes from the store, a CSV Excel reads and an iCalendar feed a real parser reads."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, add_event, invoke, parents, write_playbook

GROUPS = [{"id": "g1", "name": "阅读营1群", "persona": "host"}, {"id": "g2", "name": "阅读营2群", "persona": "host"}]
COHORTS = [{"id": "a", "start": "2026-12-01", "groups": ["g1"]}, {"id": "b", "start": "2026-12-08", "groups": ["g2"]}]
HOOKS = [{"id": "card", "kind": "package_card", "code": "CARD1", "tags": ["家长"], "welcome": [{"after": "0m", "text": "欢迎！"}, {"after": "2h", "text": "两小时后"}, {"after": "1d", "at": "20:00", "text": "第二天晚上"}]}]
# Text that needs every iCalendar escape, and long enough (in UTF-8) to be folded several times.
TRICKY = {**MORNING, "id": "tricky", "title": "早分享", "at": "09:00", "text": "第{{ day }}天：读书, 打卡; 路径 C:\\书\n" + "坚持阅读的孩子越来越多了" * 4}


@pytest.fixture(autouse=True)
def _no_store_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _camp(root: Path, **extra: Any) -> Path:
    return write_playbook(root, beats=[MORNING, NOON_1V1], groups=GROUPS, cohorts=COHORTS, hooks=HOOKS, **extra)


def test_every_cohort_in_one_calendar_with_steps_as_relative_rows(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    rows = json.loads(invoke("timeline", str(path), "--json").stdout)
    morning = [(r["cohort"], r["date"], r["target"]) for r in rows if r["beat"] == "morning"]
    assert ("a", "2026-12-01", "group:g1") in morning and ("b", "2026-12-08", "group:g2") in morning and len(morning) == 6
    assert json.loads(invoke("timeline", str(path), "--json", "--cohort", "all").stdout) == rows
    assert {r["cohort"] for r in json.loads(invoke("timeline", str(path), "--json", "--cohort", "b").stdout)} == {"b"}
    text = invoke("timeline", str(path)).stdout
    assert "2 cohorts" in text and "┃ cohort" in text
    assert "at entry" in text and "entry + 2h" in text and "entry + 1d at 20:00" in text
    assert "audiences 受众" in text and "no contacts in the store" in text


def test_audiences_carry_their_sizes_from_the_store(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    db = tmp_path / "siyu.db"
    add_contacts(db, [*parents(3), *({**p, "cohort": "b"} for p in parents(2, prefix="b")), {"contact_id": "x1", "tags": ["学生"]}])
    invoke("track", "friend_added", "-p", str(path), "--contact", "c0001", "--hook", "CARD1", "--at", "2026-12-01 09:00", "--db", str(db))
    rows = json.loads(invoke("timeline", str(path), "--db", str(db), "--json").stdout)
    noon = {r["cohort"]: (r["audience"], r["audience_size"]) for r in rows if r["beat"] == "noon"}
    assert noon == {"a": ("parents", 3), "b": ("parents", 2)}, "x1 (学生) is in no audience; cohort b holds b0000 and b0001"
    # a cohort with one group counts each of its contacts as a member, as the runner's budget does
    assert {r["cohort"]: r["audience_size"] for r in rows if r["beat"] == "morning"} == {"a": 4, "b": 2}
    text = invoke("timeline", str(path), "--db", str(db), "--cohort", "a").stdout
    assert "audiences 受众" in text and "no contacts in the store" not in text
    table = text[text.index("audiences 受众") :]
    assert any("午间私聊 (noon)" in line and line.rstrip(" │").endswith("3") for line in table.splitlines())
    csv_rows = list(csv.DictReader(io.StringIO(invoke("timeline", str(path), "--db", str(db), "--csv").stdout.lstrip("\ufeff"))))
    (welcome, *_) = [r for r in csv_rows if r["beat"] == "welcome:card:1"]
    assert (welcome["when"], welcome["audience_size"]) == ("at entry", "1")


def test_a_group_with_join_events_counts_its_joins_not_the_whole_cohort(tmp_path: Path) -> None:
    """As report groups counts: g1 has group_joined events (two joined, one left), g2 none (its cohort's contacts)."""
    path = _camp(tmp_path)
    db = tmp_path / "siyu.db"
    add_contacts(db, [*parents(4), *({**p, "cohort": "b"} for p in parents(2, prefix="b"))])
    add_event(db, "j1", "group_joined", "c0000", "2026-12-01T01:00:00Z", "g1")
    add_event(db, "j2", "group_joined", "c0001", "2026-12-01T01:00:00Z", "g1")
    add_event(db, "l2", "group_left", "c0001", "2026-12-01T02:00:00Z", "g1")
    add_event(db, "j3", "group_joined", "c0002", "2026-12-01T01:00:00Z", "g1")
    rows = json.loads(invoke("timeline", str(path), "--db", str(db), "--json").stdout)
    assert {r["cohort"]: r["audience_size"] for r in rows if r["beat"] == "morning"} == {"a": 2, "b": 2}
    text = invoke("timeline", str(path), "--db", str(db)).stdout
    table = text[text.index("audiences 受众") :]
    assert any("(g1)" in line and "members (group_joined events)" in line and line.rstrip(" │").endswith("2") for line in table.splitlines()), table
    assert any("(g2)" in line and "no group_joined events: the cohort's contacts" in line for line in table.splitlines()), table


def test_csv_is_utf8_with_a_bom_one_row_per_occurrence_and_relative_steps(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    result = invoke("timeline", str(path), "--csv")
    raw = result.stdout_bytes
    assert raw.startswith("\ufeff".encode()) and b"\r\n" in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    beats = [r for r in rows if r["day"]]
    assert len(beats) == 12 and [r["date"] for r in beats] == sorted(r["date"] for r in beats)
    first = beats[0]
    assert (first["cohort"], first["weekday"], first["time"], first["target"], first["persona"]) == ("a", "周二", "08:30", "阅读营1群", "小丸子")
    steps = [(r["beat"], r["when"]) for r in rows if not r["day"]]
    assert steps == [("welcome:card:1", "at entry"), ("welcome:card:2", "entry + 2h"), ("welcome:card:3", "entry + 1d at 20:00")]
    invoke("timeline", str(path), "--csv", "--ics", code=2)


def _ics(path: Path) -> tuple[bytes, Any]:
    import icalendar  # a test dependency (pyproject test extras): a real RFC 5545 parser reads the feed
    raw = invoke("timeline", str(path), "--ics").stdout_bytes
    return raw, icalendar.Calendar.from_ical(raw)


def test_ics_is_a_calendar_a_real_parser_reads_one_event_per_occurrence(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[TRICKY, NOON_1V1], groups=GROUPS)
    raw, calendar = _ics(path)
    lines = raw.split(b"\r\n")
    assert raw.endswith(b"END:VCALENDAR\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in lines), max(lines, key=len)
    assert any(line.startswith(b" ") for line in lines), "the long description is folded"
    for line in lines:
        line.decode("utf-8")  # folding never splits a character
    events = calendar.walk("VEVENT")
    assert len(events) == 3 * 2 + 3  # tricky in two groups, noon once per day for the audience, three days
    tricky = sorted((e for e in events if str(e["SUMMARY"]) == "早分享 · 小丸子"), key=lambda e: e.decoded("DTSTART"))
    assert tricky[0].decoded("DTSTART") == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    description = str(tricky[0]["DESCRIPTION"])
    assert description.startswith("第1天：读书, 打卡; 路径 C:\\书\n坚持阅读") and "group 群 → 阅读营1群" in description
    assert b"\\, \xe6\x89\x93\xe5\x8d\xa1\\; " in raw.replace(b"\r\n ", b"") and b"C:\\\\" in raw.replace(b"\r\n ", b"")
    noon = [e for e in events if str(e["SUMMARY"]) == "午间私聊 · 小丸子"]
    assert "示例联系人，您好！今天是第1天。" in str(noon[0]["DESCRIPTION"])
    assert len({str(e["UID"]) for e in events}) == len(events)


def test_ics_uids_are_stable_so_a_reexport_updates_events(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[MORNING], groups=GROUPS)
    _, before = _ics(path)
    data = yaml.safe_load(path.read_text("utf-8"))
    data["beats"][0]["at"] = "09:15"  # a moved time is the same occurrence
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    _, after = _ics(path)
    old = {str(e["UID"]): e.decoded("DTSTART") for e in before.walk("VEVENT")}
    new = {str(e["UID"]): e.decoded("DTSTART") for e in after.walk("VEVENT")}
    assert old.keys() == new.keys() and len(old) == 6
    assert all(new[uid] - old[uid] == (new[uid] - old[uid]).__class__(minutes=45) for uid in old)


def test_ics_describes_every_variant_of_an_ab_beat(tmp_path: Path) -> None:
    beat = {**NOON_1V1, "variants": {"a": {"weight": 45, "text": "A版{{ day }}"}, "b": {"weight": 45, "text": "B版{{ day }}"}, "holdout": {"weight": 10}}}
    del beat["text"]
    _, calendar = _ics(write_playbook(tmp_path, beats=[beat]))
    (first, *_) = calendar.walk("VEVENT")
    description = str(first["DESCRIPTION"])
    assert "variant a:\nA版1" in description and "variant b:\nB版1" in description and "variant holdout:\n(holdout" in description
