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
    assert "calendar: off: [...] and work: [...]" in text and "complete: [2030]" in text and "pip install -U holidays" in text
    assert "Traceback" not in text
    # A rule that never reaches the year, or no calendar rule at all, needs no schedule.
    write_playbook(tmp_path, beats=[MORNING], days=5, start="2030-03-01")
    invoke("check", "--strict", str(tmp_path / "playbook.yaml"))


def test_overrides_give_a_missing_year_and_change_a_known_one(tmp_path: Path) -> None:
    # 2030: the playbook gives the year whole; Sat 2 and Sun 3 Mar join the team's day off on Mon 4 Mar.
    calendar = {"off": ["2030-03-04"], "work": ["2030-03-09"], "complete": [2030]}
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
        "calendar": {"off": ["2027-01-01", "2027-02-05..2027-02-11"], "work": ["2027-01-30"], "complete": [2027, "2028-01-01..2028-01-14"]},
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


# 2030 stands for a year the holidays package has no State Council notice for (0.109 carries up to 2026).
def _check_refuses(root: Path, *words: str) -> str:
    text = invoke("check", str(root / "playbook.yaml"), code=1).output
    assert "Traceback" not in text and "playbook.yaml:" in text and "beats[0].days" in text
    for word in words:
        assert word in text, text
    return text


def test_a_few_days_off_do_not_give_a_year_without_a_notice(tmp_path: Path) -> None:
    # Day 14 is Sat 2 Feb 2030, 除夕: listing 元旦 alone must not turn 春节 into a plain weekend.
    beats = [_beat("qa", {"in": [14, 21], "not": "holidays"})]
    write_playbook(tmp_path, beats=beats, days=30, start="2030-01-20", calendar={"off": ["2030-01-01"]})
    _check_refuses(tmp_path, "day 14 is 2030-02-02", "no State Council notice for 2030", "calendar: lists days of 2030 but does not give the year whole", "complete: [2030]")
    invoke("timeline", "-p", str(tmp_path / "playbook.yaml"), "--json", code=1)
    # Given whole, the statutory days the law fixes (除夕 and 春节 初一-初三) are holidays even when off: leaves them out.
    write_playbook(tmp_path, beats=beats, days=30, start="2030-01-20", calendar={"off": ["2030-01-01"], "complete": [2030]})
    rows = json.loads(invoke("timeline", "-p", str(tmp_path / "playbook.yaml"), "--json").stdout)
    assert [row["day"] for row in rows] == [21], "Sat 9 Feb is a plain weekend once 2030 is given whole"
    assert (rows[0]["calendar"], rows[0]["holiday"]) == ("weekend", None)
    table = invoke("timeline", "-p", str(tmp_path / "playbook.yaml")).stdout
    assert "休 春节" in table


def test_days_worked_alone_do_not_make_new_year_a_workday(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    beats = [_beat("work", "workdays")]
    write_playbook(tmp_path, beats=beats, days=14, start="2030-01-01", calendar={"work": ["2030-01-12"]}, outputs=["outbox"])
    _check_refuses(tmp_path, "day 1 is 2030-01-01", "calendar: lists days of 2030 but does not give the year whole", "complete: [2030]")
    refused = invoke("run", "--once", "--now", "2030-01-01 09:05", code=1).output
    assert "2030" in refused and "Traceback" not in refused
    assert not (tmp_path / "outbox").exists()
    # Given whole: 元旦 (Tue 1 Jan) is the law's holiday, Sat 12 Jan the playbook's day worked.
    write_playbook(tmp_path, beats=beats, days=14, start="2030-01-01", calendar={"work": ["2030-01-12"], "complete": [2030]}, outputs=["outbox"])
    invoke("check", "--strict", str(tmp_path / "playbook.yaml"))
    days = _days(tmp_path)
    assert days["work"] == [2, 3, 4, 7, 8, 9, 10, 11, 12, 14]
    assert json.loads(invoke("run", "--once", "--now", "2030-01-01 09:05", "--json").stdout)["sent"] == 0
    assert json.loads(invoke("run", "--once", "--now", "2030-01-02 09:05", "--json").stdout)["sent"] == 1


def test_complete_may_give_only_the_dates_the_campaign_reaches(tmp_path: Path) -> None:
    calendar = {"off": ["2030-01-01"], "complete": ["2030-01-01..2030-01-14"]}
    write_playbook(tmp_path, beats=[_beat("open", {"in": [1, 3, 10], "not": "holidays"})], days=20, start="2030-01-01", calendar=calendar)
    assert _days(tmp_path)["open"] == [3, 10]
    write_playbook(tmp_path, beats=[_beat("open", {"in": [3, 20], "not": "holidays"})], days=20, start="2030-01-01", calendar=calendar)
    _check_refuses(tmp_path, "day 20 is 2030-01-20", "complete: gives 2030 only for 2030-01-01..2030-01-14")
    # A day off is a holiday or a weekend by the days off around it: Sat 5 Jan is unknown while Sun 6 Jan is.
    calendar = {"complete": ["2030-01-01..2030-01-05"]}
    write_playbook(tmp_path, beats=[_beat("weekend", {"in": "1-5", "only": "weekends"})], days=10, start="2030-01-01", calendar=calendar)
    _check_refuses(tmp_path, "day 5 is 2030-01-05, next to 2030-01-06", "complete: gives 2030 only for 2030-01-01..2030-01-05")


def test_a_bad_complete_entry_is_located(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[_beat("b", "all")], days=5, calendar={"complete": [True, "Jan 2030"]})
    text = invoke("check", str(tmp_path / "playbook.yaml"), code=1).output
    assert "calendar.complete" in text and "True is not a year or a date" in text and "a year (2027)" in text
    write_playbook(tmp_path, beats=[_beat("b", "all")], days=5, calendar={"complete": ["Jan 2030"]})
    text = invoke("check", str(tmp_path / "playbook.yaml"), code=1).output
    assert "'Jan 2030' is not a date" in text and "write a year (2027)" in text


def test_the_playbooks_own_days_are_marked_as_its_own(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], days=10, start="2026-12-20", calendar={"off": ["2026-12-24..2026-12-25"], "work": ["2026-12-20"]})
    rows = {row["day"]: row for row in json.loads(invoke("timeline", "-p", str(tmp_path / "playbook.yaml"), "--json").stdout)}
    assert (rows[5]["calendar"], rows[5]["holiday"]) == ("holiday", "override")
    assert (rows[1]["calendar"], rows[1]["holiday"]) == ("workday", "override"), "Sun 20 Dec worked by the playbook's own choice"
    table = invoke("timeline", "-p", str(tmp_path / "playbook.yaml")).stdout
    assert "休 (override)" in table and "班 (override)" in table and "calendar.off" not in table


@pytest.mark.parametrize("start", ["2026-02-01", "2026-09-20", "2027-01-20", "2030-09-20"])
def test_the_skincare_qa_night_never_meets_a_holiday_whatever_the_start(tmp_path: Path, start: str) -> None:
    """The starter's promise (改了 start 也不会撞上春节、国庆): a known year skips its holidays, any other is refused."""
    import holidays

    from siyu_cli.playbook._calendar import official_years

    invoke("init", str(tmp_path / "camp"), "--from", "skincare")
    path = tmp_path / "camp" / "playbooks" / "skincare-persona.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nstart: 2026-12-01\n" in text
    path.write_text(text.replace("\nstart: 2026-12-01\n", f"\nstart: {start}\n"), encoding="utf-8")
    reach = [date.fromisoformat(start) + timedelta(days=day - 1) for day in (14, 21, 28, 35, 42)]
    unknown = sorted({when.year for when in reach} - official_years())
    if unknown:
        output = invoke("check", str(path), code=1).output
        assert f"no State Council notice for {unknown[0]}" in output and "beats[" in output
        return
    rows = json.loads(invoke("timeline", "-p", str(path), "--json").stdout)
    nights = [date.fromisoformat(row["date"]) for row in rows if row["beat"] == "qa-night"]
    off = holidays.country_holidays("CN", years=sorted({when.year for when in reach}))
    assert nights and not [when for when in nights if when in off], nights
