"""China's holidays and make-up workdays (调休) in day rules: workdays, weekends, holidays, not: holidays,
the playbook's calendar: overrides, and a year without a State Council notice refused, never guessed."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from siyu_cli.playbook import read
from siyu_cli.playbook._calendar import Calendar
from tests.playbooks_fixtures import MORNING, invoke, write_playbook

# 国务院办公厅关于2026年部分节假日安排的通知 (国办发明电〔2025〕7号, 4 November 2025): each period off and the days worked instead.
NOTICE_2026_OFF = {
    "元旦": ("2026-01-01", "2026-01-03"),
    "春节": ("2026-02-15", "2026-02-23"),
    "清明节": ("2026-04-04", "2026-04-06"),
    "劳动节": ("2026-05-01", "2026-05-05"),
    "端午节": ("2026-06-19", "2026-06-21"),
    "中秋节": ("2026-09-25", "2026-09-27"),
    "国庆节": ("2026-10-01", "2026-10-07"),
}
NOTICE_2026_WORK = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]


def _span(first: str, last: str) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def test_2026_matches_the_state_council_notice() -> None:
    calendar = Calendar(date(2026, 1, 1), date(2026, 12, 31))
    year = _span("2026-01-01", "2026-12-31")
    holidays: dict[str, list[date]] = {}
    for day in year:
        found = calendar.day(day)
        if found.kind == "holiday":
            holidays.setdefault(found.name, []).append(day)
    assert holidays == {name: _span(*span) for name, span in NOTICE_2026_OFF.items()}
    assert [str(d) for d in year if calendar.day(d).makeup] == NOTICE_2026_WORK
    assert calendar.day(date(2026, 2, 14)).kind == "workday" and calendar.day(date(2026, 2, 14)).label == "班 调休"
    assert calendar.day(date(2026, 3, 7)).kind == "weekend" and calendar.day(date(2026, 3, 9)).kind == "workday"


def _beat(beat_id: str, days: Any) -> dict[str, Any]:
    return {"id": beat_id, "at": "09:00", "days": days, "channel": "group", "text": f"{beat_id} 第{{{{ day }}}}天"}


def _days(root: Path, *extra: str) -> dict[str, list[int]]:
    rows = json.loads(invoke("timeline", "-p", str(root / "playbook.yaml"), "--json", *extra).stdout)
    found: dict[str, list[int]] = {}
    for row in rows:
        found.setdefault(row["beat"], []).append(row["day"])
    return found


def test_day_rules_follow_the_2026_spring_festival(tmp_path: Path) -> None:
    # Day 1 is Tue 10 Feb 2026: Sat 14 Feb is worked, 15-23 Feb is 春节, Sat 28 Feb is worked.
    beats = [
        _beat("work", "workdays"),
        _beat("weekend", "weekends"),
        _beat("holiday", "holidays"),
        _beat("open", {"not": "holidays"}),
        _beat("early-work", {"in": "1-7", "only": "workdays"}),
        _beat("phase-open", {"phase": "late", "not": "holidays"}),
    ]
    phases = [{"id": "early", "title": "前", "days": "1-10"}, {"id": "late", "title": "后", "days": "11-20"}]
    write_playbook(tmp_path, beats=beats, days=20, start="2026-02-10", phases=phases)
    days = _days(tmp_path)
    holiday = list(range(6, 15))  # 15-23 Feb
    assert days["holiday"] == holiday
    assert days["work"] == [1, 2, 3, 4, 5, 15, 16, 17, 18, 19], "Sat 14 Feb (day 5) and Sat 28 Feb (day 19) are make-up workdays"
    assert days["weekend"] == [20], "Sun 1 Mar is the only plain weekend day; 21-22 Feb are inside 春节"
    assert days["open"] == [d for d in range(1, 21) if d not in holiday]
    assert days["early-work"] == [1, 2, 3, 4, 5]
    assert days["phase-open"] == [15, 16, 17, 18, 19, 20]


def test_timeline_marks_holidays_and_makeup_workdays(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], days=20, start="2026-02-10")
    table = invoke("timeline", "-p", str(tmp_path / "playbook.yaml")).stdout
    assert "休 春节" in table and "班 调休" in table
    rows = json.loads(invoke("timeline", "-p", str(tmp_path / "playbook.yaml"), "--json").stdout)
    by_day = {row["day"]: row for row in rows}
    assert (by_day[7]["calendar"], by_day[7]["holiday"]) == ("holiday", "春节")
    assert (by_day[5]["calendar"], by_day[1]["calendar"]) == ("workday", "workday")


def test_cohorts_read_the_calendar_on_their_own_dates(tmp_path: Path) -> None:
    cohorts = [{"id": "a", "start": "2026-09-28"}, {"id": "b", "start": "2026-10-08"}]
    write_playbook(tmp_path, beats=[_beat("open", {"not": "holidays"})], days=5, cohorts=cohorts)
    assert _days(tmp_path, "--cohort", "a")["open"] == [1, 2, 3], "国庆 1-7 Oct is days 4-5 of cohort a"
    assert _days(tmp_path, "--cohort", "b")["open"] == [1, 2, 3, 4, 5]
    assert read(tmp_path / "playbook.yaml").beat_days["open"] == frozenset(range(1, 6))


def test_a_year_without_a_notice_is_an_error_naming_it_and_the_fix(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING, _beat("open", {"in": "1-5", "not": "holidays"})], days=5, start="2030-03-01")
    result = invoke("check", str(tmp_path / "playbook.yaml"), code=1)
    text = result.output
    assert "playbook.yaml:" in text and "beats[1].days" in text
    assert "2030" in text and "no State Council notice for 2030" in text
    assert "calendar: {off: [...], work: [...]}" in text and "pip install -U holidays" in text
    assert "Traceback" not in text
    # A rule that never reaches the year, or no calendar rule at all, needs no schedule.
    write_playbook(tmp_path, beats=[MORNING], days=5, start="2030-03-01")
    invoke("check", "--strict", str(tmp_path / "playbook.yaml"))


def test_overrides_give_a_missing_year_and_change_a_known_one(tmp_path: Path) -> None:
    # 2030: the playbook gives the year; Sat 2 and Sun 3 Mar join the team's day off on Mon 4 Mar.
    calendar = {"off": ["2030-03-04"], "work": ["2030-03-09"]}
    write_playbook(tmp_path, beats=[_beat("open", {"not": "holidays"}), _beat("work", "workdays")], days=10, start="2030-03-01", calendar=calendar)
    days = _days(tmp_path)
    assert days["open"] == [1, 5, 6, 7, 8, 9, 10]
    assert days["work"] == [1, 5, 6, 7, 8, 9], "Sat 9 Mar worked (work:), Sun 10 Mar a weekend"
    # 2026: a span of days off on top of the package's calendar.
    write_playbook(tmp_path, beats=[_beat("holiday", "holidays")], days=10, start="2026-12-20", calendar={"off": ["2026-12-24..2026-12-25"]})
    assert _days(tmp_path)["holiday"] == [5, 6, 7, 8], "Thu 24 - Sun 27 Dec: the playbook's days off and the weekend after them"


@pytest.mark.parametrize(
    ("days", "calendar", "expected"),
    [
        ("holiday", None, "did you mean holidays?"),
        ({"in": "1-3"}, None, "needs only: or not:"),
        ({"in": "1-3", "not": "holiday"}, None, "did you mean holidays?"),
        ({"in": "holidays", "not": "weekends"}, None, "put workdays/weekends/holidays under only: or not:"),
        ({"in": "1-3", "phase": "p", "not": "holidays"}, None, "either in: or phase:"),
        ({"in": "1-3", "except": "holidays"}, None, "unknown key 'except'"),
        ("all", {"off": ["2026-12-02"], "work": ["2026-12-02"]}, "2026-12-02 is both off and work"),
        ("all", {"off": ["2026-12-09..2026-12-02"]}, "ends before it starts"),
        ("all", {"off": ["Dec 2"]}, "is not a date"),
    ],
)
def test_bad_rules_are_located(tmp_path: Path, days: Any, calendar: Any, expected: str) -> None:
    extra = {"calendar": calendar} if calendar else {}
    write_playbook(tmp_path, beats=[_beat("b", days)], days=5, **extra)
    text = invoke("check", str(tmp_path / "playbook.yaml"), code=1).output
    assert expected in text, text
    assert "playbook.yaml:" in text and ("beats[0].days" in text or "calendar" in text)


def test_phases_and_mix_ranges_stay_day_numbers(tmp_path: Path) -> None:
    write_playbook(tmp_path, days=5, phases=[{"id": "p", "title": "全程", "days": "workdays"}])
    text = invoke("check", str(tmp_path / "playbook.yaml"), code=1).output
    assert "phases[0].days" in text and "calendar rule" in text


def test_schema_covers_day_rules_calendar_and_lint(tmp_path: Path) -> None:
    schema = json.loads(invoke("schema").stdout)
    data = {
        "siyu": 1,
        "id": "x",
        "title": "x",
        "start": "2026-12-01",
        "days": 3,
        "personas": [{"id": "p", "name": "P"}],
        "beats": [
            {"id": "a", "at": "09:00", "channel": "moments", "text": "a", "days": "workdays"},
            {"id": "b", "at": "09:00", "channel": "moments", "text": "b", "days": {"in": "2-", "not": "holidays"}},
            {"id": "c", "at": "09:00", "channel": "moments", "text": "c", "days": {"phase": "p", "only": "weekends"}},
        ],
        "calendar": {"off": ["2027-01-01", "2027-02-05..2027-02-11"], "work": ["2027-01-30"]},
        "lint": {"words": ["秒杀全网", {"term": "吊打", "category": "absolute", "why": "贬低同行", "source": "广告法第十三条"}], "allow": ["第一名"]},
    }
    jsonschema.validate(data, schema)
    for bad in ("holiday", {"in": "2-"}, {"not": "holiday"}, {"in": "1", "phase": "p", "not": "holidays"}):
        data["beats"][0]["days"] = bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schema)


def test_preview_skips_a_not_holidays_beat_on_a_holiday(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING, _beat("life", {"not": "holidays"})], days=5, start="2026-09-30")
    path = str(tmp_path / "playbook.yaml")
    on_holiday = json.loads(invoke("preview", "day", "2", "-p", path, "--json").stdout)
    assert {d["beat"] for d in on_holiday["drafts"]} == {"morning"}
    before = json.loads(invoke("preview", "day", "1", "-p", path, "--json").stdout)
    assert {d["beat"] for d in before["drafts"]} == {"morning", "life"}
