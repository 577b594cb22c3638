"""Day rules: "3", "2-5", "8-", [1, 3, 5], all, {phase: learn}; for beats also the calendar:
workdays, weekends, holidays, and {in: RANGE or phase: ID, only: WORD, not: WORD}."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from siyu_cli.playbook._calendar import WORDS

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")
_RULE_KEYS = {"phase", "in", "only", "not"}
_SYNTAX = 'write "3", "2-5", "8-", [1, 3], all or {phase: ID}'
_CALENDAR_SYNTAX = 'write "3", "2-5", "8-", [1, 3], all, workdays, weekends, holidays, {phase: ID} or {in: "8-", not: holidays}'

# The campaign days that are workdays, weekends or holidays (of one cohort).
CalendarDays = Callable[[str], set[int]]


class DaySpecError(ValueError):
    """A day range is malformed, names an unknown phase, or leaves the campaign."""


def uses_calendar(spec: Any) -> bool:
    """Whether the rule needs the holiday calendar to say which days it is."""
    if isinstance(spec, str):
        return spec in WORDS
    return isinstance(spec, Mapping) and bool({"only", "not"} & set(spec))


def describe(spec: Any) -> str:
    """A rule as the playbook writes it, for messages: `days: {in: "8-", not: holidays}`."""
    if isinstance(spec, Mapping):
        return "days: {" + ", ".join(f"{key}: {value}" for key, value in spec.items()) + "}"
    return f"days: {spec}"


def check_syntax(spec: Any, *, calendar: bool = False) -> None:
    """Syntax only, so the model can reject a malformed rule before phases are known.

    `calendar`: the rule may name workdays, weekends and holidays (beats' days may; phases
    and mix ranges are campaign day numbers)."""
    if spec == "all":
        return
    if isinstance(spec, bool):
        raise DaySpecError(f"{spec!r} is not a day range")
    if isinstance(spec, int):
        if spec < 1:
            raise DaySpecError(f"day {spec} is before day 1")
        return
    if isinstance(spec, str):
        if spec in WORDS:
            if not calendar:
                raise DaySpecError(f"{spec!r} is a calendar rule; phases and mix ranges are campaign day numbers, e.g. \"2-5\"")
            return
        match = _RANGE.match(spec)
        if not match:
            close = difflib.get_close_matches(spec, WORDS, n=1) if calendar else []
            raise DaySpecError(f"{spec!r} is not a day range; " + (f"did you mean {close[0]}?" if close else _CALENDAR_SYNTAX if calendar else _SYNTAX))
        first = int(match.group(1))
        last = match.group(2)
        if first < 1:
            raise DaySpecError(f"day {first} is before day 1")
        if last and int(last) < first:
            raise DaySpecError(f"range {spec!r} ends before it starts")
        return
    if isinstance(spec, list):
        if not spec:
            raise DaySpecError("an empty list of days")
        for item in spec:
            if isinstance(item, list | dict) or item == "all" or item in WORDS:
                raise DaySpecError(f"{item!r} inside a day list; list day numbers or ranges")
            check_syntax(item)
        return
    if isinstance(spec, Mapping):
        if set(spec) == {"phase"}:
            if not isinstance(spec.get("phase"), str):
                raise DaySpecError("a phase range is written {phase: PHASE_ID}")
            return
        if not calendar:
            raise DaySpecError("a phase range is written {phase: PHASE_ID}")
        _check_rule(spec)
        return
    raise DaySpecError(f"{spec!r} is not a day range")


def _check_rule(spec: Mapping[str, Any]) -> None:
    unknown = sorted(set(spec) - _RULE_KEYS)
    if unknown:
        raise DaySpecError(f"unknown key {unknown[0]!r} in a day rule; it takes in: (or phase:), only: and not:")
    if "phase" in spec and "in" in spec:
        raise DaySpecError("give either in: or phase:, not both")
    if not {"only", "not"} & set(spec):
        raise DaySpecError("a day rule needs only: or not: (e.g. {in: \"8-\", not: holidays}); for days alone write the range")
    if "phase" in spec and not isinstance(spec["phase"], str):
        raise DaySpecError("phase: takes a phase id")
    if "in" in spec:
        if isinstance(spec["in"], Mapping) or spec["in"] in WORDS:
            raise DaySpecError("in: takes day numbers or a range (\"8-\", [1, 3]); put workdays/weekends/holidays under only: or not:")
        check_syntax(spec["in"])
    for key in ("only", "not"):
        if key in spec and spec[key] not in WORDS:
            close = difflib.get_close_matches(str(spec[key]), WORDS, n=1)
            guess = f"; did you mean {close[0]}?" if close else ""
            raise DaySpecError(f"{key}: takes workdays, weekends or holidays (got {spec[key]!r}){guess}")


def resolve(spec: Any, days: int, phases: Mapping[str, Any], calendar: CalendarDays | None = None) -> list[int]:
    """The sorted campaign days `spec` names. `phases` maps phase id to its own day spec.

    `calendar` says which days are workdays, weekends or holidays; without it a calendar
    rule is checked for its ranges only and taken as every day it could be."""
    check_syntax(spec, calendar=True)
    if spec == "all":
        return list(range(1, days + 1))
    if isinstance(spec, int):
        return _bounded([spec], days, spec)
    if isinstance(spec, str):
        if spec in WORDS:
            return sorted(calendar(spec)) if calendar else list(range(1, days + 1))
        match = _RANGE.match(spec)
        assert match is not None
        first = int(match.group(1))
        if match.group(2) is None:
            return _bounded([first], days, spec)
        last = int(match.group(2)) if match.group(2) else days
        return _bounded(list(range(first, last + 1)), days, spec)
    if isinstance(spec, list):
        found: set[int] = set()
        for item in spec:
            found.update(resolve(item, days, phases))
        return sorted(found)
    if "phase" in spec:
        phase = spec["phase"]
        if phase not in phases:
            known = ", ".join(phases) or "none defined"
            raise DaySpecError(f"unknown phase {phase!r} (phases: {known})")
        base = set(resolve(phases[phase], days, {}))
    else:
        base = set(resolve(spec.get("in", "all"), days, phases))
    if calendar is not None:
        if "only" in spec:
            base &= calendar(spec["only"])
        if "not" in spec:
            base -= calendar(spec["not"])
    return sorted(base)


def _bounded(values: list[int], days: int, spec: Any) -> list[int]:
    outside = [value for value in values if value > days]
    if outside:
        raise DaySpecError(f"{spec!r} reaches day {max(outside)}, but the campaign has {days} day(s)")
    return values
