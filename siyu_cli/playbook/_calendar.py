"""China's working calendar (调休): which campaign dates are workdays, weekends or holidays.

The State Council publishes each year's holidays and make-up workdays in a notice
(国务院办公厅关于部分节假日安排的通知). The `holidays` package carries them: its
China calendar lists the statutory days and each notice's swapped days off, and
`weekend_workdays` holds the Saturdays and Sundays worked instead (调休上班).

A year whose notice the package does not have yet is not guessed. The law fixes its
statutory days (元旦, 除夕 and 春节 初一 to 初三, 清明, 劳动节 two days, 端午, 中秋, 国庆
three days), but the notice moves the days around them: which weekdays are off and which
weekends are worked. A few days off or worked listed for such a year say nothing of its
other days, so it is decided only on the dates the playbook gives whole
(`calendar.complete`): weekends and statutory days, plus its `off`, less its `work`. Every
other date of it has no kind, nor has a day off whose run of days off reaches one, since
that run decides whether the day is a holiday or a weekend.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

WORDS = ("workdays", "weekends", "holidays")
DayKind = Literal["workday", "weekend", "holiday"]
MAKEUP = "调休上班"
# The name of a day the playbook's own calendar: made off or worked, where no holiday names it.
OVERRIDE = "override"
# A holiday period is a run of days off around a holiday; the longest, 春节 or 国庆, is 9 days,
# so this many days either side of a campaign show whether its first and last days are in one.
_PAD = 10


class CalendarUnknown(Exception):
    """A campaign date whose kind needs a date that neither the package nor the playbook gives a calendar for."""

    def __init__(self, year: int, first: date) -> None:
        super().__init__(f"no official holiday schedule for {year}")
        self.year = year
        self.first = first


@dataclass(frozen=True)
class Day:
    """One date: workday, weekend or holiday, and the holiday's name (调休上班 for a make-up workday, override for the playbook's own)."""

    kind: DayKind
    name: str = ""

    @property
    def makeup(self) -> bool:
        return self.kind == "workday" and self.name == MAKEUP

    @property
    def label(self) -> str:
        """How a calendar marks it: 休 春节 for a holiday, 班 调休 for a make-up workday, (override) for the playbook's own."""
        if self.kind == "weekend" or not self.name:
            return ""
        what = f"({OVERRIDE})" if self.name == OVERRIDE else "调休" if self.makeup else self.name
        return ("休 " if self.kind == "holiday" else "班 ") + what


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
    """Days off with their Chinese names, and make-up workdays, for these years.

    A year without a notice gets its statutory days only: the package's own substitute
    days for it (春节（补假）) are its rule, not the State Council's."""
    import holidays

    names: dict[date, str] = {}
    workdays: set[date] = set()
    official = tuple(y for y in years if y in official_years())
    for chosen, observed in ((official, True), (tuple(y for y in years if y not in official), False)):
        if chosen:
            found = holidays.country_holidays("CN", years=chosen, language="zh_CN", observed=observed)
            names.update(found.items())
            workdays |= found.weekend_workdays
    return names, frozenset(workdays)


class Calendar:
    """Each date from `first` to `last` classified once.

    `off`/`work` are the playbook's overrides; `complete` the dates it gives whole in years
    the package has no notice for (see the module's docstring)."""

    def __init__(self, first: date, last: date, *, off: Iterable[date] = (), work: Iterable[date] = (), complete: Iterable[date] = ()) -> None:
        self.off = frozenset(off)
        self.work = frozenset(work)
        self.complete = frozenset(complete)
        self.first, self.last = first, last
        start, end = first - timedelta(days=_PAD), last + timedelta(days=_PAD)
        names, workdays = _package_days(tuple(range(start.year, end.year + 1)))
        official = official_years()
        self.days: dict[date, Day] = {}
        self._gaps: dict[date, date] = {}  # a date without a kind -> the date without a schedule it needs
        run: list[date] = []
        after: date | None = None  # the date without a schedule just before the run, if any
        moment = start
        while moment <= end:
            if moment.year not in official and moment not in self.complete:
                self._close(run, names, after or moment)
                run, after = [], moment
                self._gaps[moment] = moment
            elif moment not in self.work and (moment in self.off or moment in names or (moment.weekday() >= 5 and moment not in workdays)):
                run.append(moment)
            else:
                self._close(run, names, after)
                run, after = [], None
                self.days[moment] = Day("workday", OVERRIDE if moment in self.work else MAKEUP if moment.weekday() >= 5 else "")
            moment += timedelta(days=1)
        self._close(run, names, after)

    def _close(self, run: list[date], names: dict[date, str], gap: date | None) -> None:
        """A run of days off is a holiday period when one of its days is a holiday, else a plain weekend.

        When the run touches a date without a schedule (`gap`), its holidays and own days off are
        still holidays, but its other days (weekends) may be either: they are left unknown."""
        certain = [moment for moment in run if moment in names or moment in self.off]
        if not certain and gap is None:
            self.days.update(dict.fromkeys(run, Day("weekend")))
            return
        named = (_base_name(names[moment]) for moment in certain if moment in names)
        holiday = next((name for name in named if name), OVERRIDE if self.off.intersection(run) else "放假")
        for moment in run:
            if gap is not None and moment not in certain:
                self._gaps[moment] = gap
            else:
                self.days[moment] = Day("holiday", holiday)

    def gap(self, moment: date) -> date | None:
        """The date without a schedule that `moment`'s kind needs (itself, or one its run of days off reaches); None when known."""
        return None if moment in self.days else self._gaps.get(moment, moment)

    def day(self, moment: date) -> Day:
        """Raise CalendarUnknown for a date whose kind needs a year without a schedule."""
        gap = self.gap(moment)
        if gap is not None:
            raise CalendarUnknown(gap.year, gap)
        return self.days[moment]

    def known(self, moment: date) -> Day | None:
        """The day, or None when its kind needs a year without a schedule (for display, never for deciding)."""
        return self.days.get(moment)


def _base_name(name: str) -> str:
    """The holiday a day off belongs to: 春节 for 春节（补假）; a swapped day off names none ("" until another day does)."""
    if "调休" in name:
        return ""
    base = name.split("（", 1)[0]
    return "春节" if base == "农历除夕" else base  # New Year's Eve is a day of the 春节 holiday
