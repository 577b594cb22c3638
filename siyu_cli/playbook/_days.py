"""Day ranges: "3", "2-5", "8-", [1, 3, 5], all, {phase: learn}."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


class DaySpecError(ValueError):
    """A day range is malformed, names an unknown phase, or leaves the campaign."""


def check_syntax(spec: Any) -> None:
    """Syntax only, so the model can reject a malformed range before phases are known."""
    if spec == "all":
        return
    if isinstance(spec, bool):
        raise DaySpecError(f"{spec!r} is not a day range")
    if isinstance(spec, int):
        if spec < 1:
            raise DaySpecError(f"day {spec} is before day 1")
        return
    if isinstance(spec, str):
        match = _RANGE.match(spec)
        if not match:
            raise DaySpecError(f"{spec!r} is not a day range; write \"3\", \"2-5\", \"8-\", [1, 3], all or {{phase: ID}}")
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
            if isinstance(item, list | dict) or item == "all":
                raise DaySpecError(f"{item!r} inside a day list; list day numbers or ranges")
            check_syntax(item)
        return
    if isinstance(spec, Mapping):
        if set(spec) != {"phase"} or not isinstance(spec.get("phase"), str):
            raise DaySpecError("a phase range is written {phase: PHASE_ID}")
        return
    raise DaySpecError(f"{spec!r} is not a day range")


def resolve(spec: Any, days: int, phases: Mapping[str, Any]) -> list[int]:
    """The sorted campaign days `spec` names. `phases` maps phase id to its own day spec."""
    check_syntax(spec)
    if spec == "all":
        return list(range(1, days + 1))
    if isinstance(spec, int):
        return _bounded([spec], days, spec)
    if isinstance(spec, str):
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
    phase = spec["phase"]
    if phase not in phases:
        known = ", ".join(phases) or "none defined"
        raise DaySpecError(f"unknown phase {phase!r} (phases: {known})")
    return resolve(phases[phase], days, {})


def _bounded(values: list[int], days: int, spec: Any) -> list[int]:
    outside = [value for value in values if value > days]
    if outside:
        raise DaySpecError(f"{spec!r} reaches day {max(outside)}, but the campaign has {days} day(s)")
    return values
