"""Times, durations and the one text form the store keeps them in (UTC, seconds)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siyu_cli.errors import SiyuError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SiyuError(f"unknown timezone {name!r}", hint="use an IANA name such as Asia/Shanghai") from exc


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '2h', '1d', '1w' (an integer and one unit)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. 30m, 2h, 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_hhmm(text: str) -> time:
    match = _HHMM.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day; write HH:MM, e.g. 08:30")
    return time(int(match.group(1)), int(match.group(2)))


_LOOSE_TIME = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]+(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.\d+)?\s*秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
TIME_EXAMPLES = "write e.g. 2026-12-01 08:30, 2026/12/1 8:30, 2026年12月1日 08:30 or 2026-12-01T08:30:00+08:00"


def parse_when(text: str, tz: tzinfo) -> datetime:
    """A date or date-time in any form an import accepts (ISO, 2026/12/1 8:30, 2026年12月1日); one without a zone is read in `tz`.

    Raises ValueError (never OverflowError) for a time the store cannot hold, such as year 1 east of UTC.
    """
    raw = str(text).strip()
    if not raw:
        raise ValueError("empty time")
    candidate = raw.replace("/", "-")
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        moment = _loose(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return in_range(moment, raw)


YEARS = (1000, 9998)
OUT_OF_RANGE = "write a year from 1000 to 9998"


def in_range(moment: datetime, shown: object) -> datetime:
    """`moment` when the store can hold it, else a ValueError naming `shown`: one rule for imports, track, --now, --since.

    The store keeps UTC text sorted as text, so a year must have four digits in UTC; 9999 is left
    out so that showing the time in any zone cannot overflow.
    """
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not YEARS[0] <= utc.year <= YEARS[1]:
        raise ValueError(f"{shown!r} is out of range; {OUT_OF_RANGE}")
    return moment


def storable(text: str) -> bool:
    """Whether a time already in the store's form (YYYY-MM-DDTHH:MM:SSZ) has a year the store holds."""
    return "1000" <= text[:4] <= str(YEARS[1])


def _loose(text: str) -> datetime:
    match = _LOOSE_TIME.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time; {TIME_EXAMPLES}")
    year, month, day, hour, minute, second, offset = match.groups()
    if not YEARS[0] <= int(year) <= YEARS[1]:
        raise ValueError(f"{text!r} is out of range; {OUT_OF_RANGE}")
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid time: {exc}") from None
    if offset:
        if offset == "Z":
            return moment.replace(tzinfo=UTC)
        return datetime.fromisoformat(f"{moment.isoformat()}{offset[:3]}:{offset[-2:]}")
    return moment


def to_db(moment: datetime) -> str:
    """The store's form: UTC, second precision, sortable as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_db(text: str) -> datetime:
    """The store's UTC text (YYYY-MM-DDTHH:MM:SSZ). fromisoformat is C and takes the Z; strptime was a fifth of a big pass."""
    if len(text) != 20 or text[10] != "T" or text[19] != "Z":
        raise ValueError(f"not a store time (YYYY-MM-DDTHH:MM:SSZ): {text!r}")
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def wall_clock(day: date, clock: time, tz: tzinfo) -> datetime:
    """`day` at `clock` in `tz`. A time the clocks skip (spring forward) becomes the first moment after
    the gap, as cron does: read literally it would land on the same instant as a time an hour later,
    and the ledger would keep only one of the two drafts."""
    moment = datetime.combine(day, clock, tzinfo=tz)
    if moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None, fold=0) == moment.replace(tzinfo=None):
        return moment
    before = moment.replace(fold=1).astimezone(UTC)  # with the offset after the gap: an instant before it
    after = moment.astimezone(UTC)  # with the offset before the gap: an instant after it
    offset = after.astimezone(tz).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0).astimezone(tz)
