"""China's working calendar (调休): which campaign dates are workdays, weekends or holidays.

The State Council publishes each year's holidays and make-up workdays in a notice
(国务院办公厅关于部分节假日安排的通知). The `holidays` package carries them: its
China calendar lists the statutory days and each notice's swapped days off, and
`weekend_workdays` holds the Saturdays and Sundays worked instead (调休上班). A year
whose notice the package does not have yet is not guessed: the playbook must give
it under `calendar:`, or the package must be upgraded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

WORDS = ("workdays", "weekends", "holidays")
DayKind = Literal["workday", "weekend", "holiday"]
# A holiday period is a run of days off around a holiday; the longest, 春节 or 国庆, is 9 days,
# so this many days either side of a campaign show whether its first and last days are in one.
_PAD = 10


class CalendarUnknown(Exception):
    """A campaign date falls in a year neither the package nor the playbook gives a calendar for."""

    def __init__(self, year: int, first: date) -> None:
        super().__init__(f"no official holiday schedule for {year}")
        self.year = year
        self.first = first


@dataclass(frozen=True)
class Day:
    """One date: workday, weekend or holiday, and the holiday's name (调休上班 for a make-up workday)."""

    kind: DayKind
    name: str = ""

    @property
    def makeup(self) -> bool:
        return self.kind == "workday" and bool(self.name)

    @property
    def label(self) -> str:
        """How a calendar marks it: 休 春节 for a holiday, 班 调休 for a make-up workday, nothing otherwise."""
        if self.kind == "holiday":
            return f"休 {self.name}"
        return "班 调休" if self.makeup else ""


@functools.cache
def official_years() -> frozenset[int]:
    """The years whose State Council notice the installed `holidays` package carries.

    The package records every notice as swapped days (its China calendar's
    special_public_holidays); a year without one is a year it has no notice for.
    """
    import holidays

    return frozenset(getattr(holidays.country_holidays("CN"), "special_public_holidays", {}))


def package_version() -> str:
    import holidays

    return str(holidays.__version__)


@functools.cache
def _package_days(years: tuple[int, ...]) -> tuple[dict[date, str], frozenset[date]]:
    """Days off with their Chinese names, and make-up workdays, for these years."""
    import holidays

    found = holidays.country_holidays("CN", years=years, language="zh_CN")
    return dict(found.items()), frozenset(found.weekend_workdays)


class Calendar:
    """Each date from `first` to `last` classified once; `off`/`work` are the playbook's overrides."""

    def __init__(self, first: date, last: date, *, off: Iterable[date] = (), work: Iterable[date] = ()) -> None:
        self.off = frozenset(off)
        self.work = frozenset(work)
        self.first, self.last = first, last
        own_years = {d.year for d in self.off | self.work}
        official = official_years()
        self.known_years = frozenset(y for y in range(first.year - 1, last.year + 2) if y in official or y in own_years)
        start, end = first - timedelta(days=_PAD), last + timedelta(days=_PAD)
        from_package = tuple(y for y in range(start.year, end.year + 1) if y in official)
        names, workdays = _package_days(from_package) if from_package else ({}, frozenset())
        self.days: dict[date, Day] = {}
        run: list[date] = []
        holiday: str | None = None  # the run's holiday name once a day of it is a holiday
        moment = start
        while moment <= end:
            name = self._name_off(moment, names)
            if moment not in self.work and (name is not None or (moment.weekday() >= 5 and moment not in workdays)):
                run.append(moment)
                if name is not None and not holiday:
                    holiday = _base_name(name)
            else:
                self._close(run, holiday)
                run, holiday = [], None
                self.days[moment] = Day("workday", "调休上班" if moment.weekday() >= 5 else "")
            moment += timedelta(days=1)
        self._close(run, holiday)

    def _name_off(self, moment: date, names: dict[date, str]) -> str | None:
        """The holiday's name when the day is a holiday (package or override), else None."""
        if moment in self.work:
            return None
        if moment in self.off:
            return names.get(moment) or "calendar.off"
        return names.get(moment)

    def _close(self, run: list[date], holiday: str | None) -> None:
        """A run of days off is a holiday period when one of its days is a holiday; else a plain weekend."""
        for moment in run:
            self.days[moment] = Day("weekend") if holiday is None else Day("holiday", holiday or "放假")

    def day(self, moment: date) -> Day:
        """Raise CalendarUnknown for a date in a year without a schedule."""
        if moment.year not in self.known_years:
            raise CalendarUnknown(moment.year, moment)
        return self.days[moment]

    def known(self, moment: date) -> Day | None:
        """The day, or None when its year has no schedule (for display, never for deciding)."""
        return self.days.get(moment) if moment.year in self.known_years else None

    def dates_of(self, word: str, dates: Iterable[date]) -> set[date]:
        """Those of `dates` that are `word` (workdays, weekends or holidays)."""
        kind = word[:-1]
        return {d for d in dates if self.day(d).kind == kind}


def _base_name(name: str) -> str:
    """The holiday a day off belongs to: 春节 for 春节（补假）; a swapped day off names none ("" until another day does)."""
    if "调休" in name:
        return ""
    base = name.split("（", 1)[0]
    return "春节" if base == "农历除夕" else base  # New Year's Eve is a day of the 春节 holiday
