"""Cell values as spreadsheet exports write them: times, amounts, tags, event types."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any

from siyu_cli._time import to_db
from siyu_cli.playbook import EVENTS

# One encoder for every row: json.dumps(..., ensure_ascii=False) would build a new one per call.
dumps = json.JSONEncoder(ensure_ascii=False).encode
TAG_SEPARATORS = re.compile(r"[,，;；|、]")
EVENT_TYPES = frozenset(EVENTS)
# Words Chinese exports use for the standard events.
TYPE_ALIASES = {
    "包裹卡": "card_sent",
    "发卡": "card_sent",
    "加微": "friend_added",
    "加好友": "friend_added",
    "删微": "friend_deleted",
    "删好友": "friend_deleted",
    "进群": "group_joined",
    "退群": "group_left",
    "打卡": "checkin",
    "回复": "message_replied",
    "下单": "order",
    "开单": "order",
    "复购": "order",
    "退款": "refund",
}
_LOOSE_TIME = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]+(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.\d+)?\s*秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_TIME_EXAMPLES = "write e.g. 2026-12-01 08:30, 2026/12/01 08:30:00 or 2026-12-01T08:30:00+08:00"
_CURRENCY = str.maketrans("", "", "¥￥,，元 ")


def cell_text(value: Any) -> str | None:
    """A cell as stripped text; None for an empty cell. Whole-number floats lose their '.0' (Excel ids)."""
    if value is None:
        return None
    if value.__class__ is str:
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip() or None


def split_tags(value: Any) -> list[str]:
    """Tags from one cell, in order, without blanks or repeats."""
    text = cell_text(value)
    if not text:
        return []
    return list(dict.fromkeys(tag for tag in (part.strip() for part in TAG_SEPARATORS.split(text)) if tag))


def event_type(value: Any) -> str | None:
    """The standard event type a cell names, or None."""
    text = cell_text(value)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in EVENT_TYPES:
        return lowered
    return TYPE_ALIASES.get(text)


def parse_amount(value: Any) -> float | None:
    """A number, also as '¥1,299.00' or '365元'; None for an empty cell. Raises ValueError otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"amount {value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).translate(_CURRENCY)
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"amount {str(value).strip()!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"amount {value!r} is not a finite number")
    return number


def time_parser(tz: tzinfo) -> Callable[[Any], str]:
    """A parser from a cell (text or an Excel datetime) to the store's UTC text; zone-less times are in `tz`."""

    @lru_cache(maxsize=8192)
    def parse_text(text: str) -> str:
        candidate = text.replace("/", "-")
        if candidate.endswith(("Z", "z")):
            candidate = candidate[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            moment = _loose(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return to_db(moment)

    def parse(value: Any) -> str:
        if value.__class__ is str:
            if len(value) == 20 and value[10] == "T" and value[19] == "Z":
                # Already the store's form: validate it in C and keep the text.
                try:
                    datetime.fromisoformat(value)
                    return value
                except ValueError:
                    pass
            text = value.strip()
            if not text:
                raise ValueError("missing time")
            return parse_text(text)
        if isinstance(value, datetime):
            return to_db(value if value.tzinfo else value.replace(tzinfo=tz))
        if isinstance(value, date):
            return to_db(datetime.combine(value, time(0, 0), tzinfo=tz))
        if value is None:
            raise ValueError("missing time")
        raise ValueError(f"{value!r} is not a time; format the cell as a date-time or {_TIME_EXAMPLES}")

    return parse


def _loose(text: str) -> datetime:
    match = _LOOSE_TIME.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time; {_TIME_EXAMPLES}")
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid time: {exc}") from None
    if offset:
        if offset == "Z":
            return moment.replace(tzinfo=UTC)
        return datetime.fromisoformat(f"{moment.isoformat()}{offset[:3]}:{offset[-2:]}")
    return moment


def derived_event_id(kind: str, contact_id: str, at: str, hook: str | None, cohort: str | None, group: str | None, amount: float | None) -> str:
    """The id of an event given without one: the same facts give the same id, so re-imports add nothing."""
    key = "\x1f".join((kind, contact_id, at, hook or "", cohort or "", group or "", "" if amount is None else repr(amount)))
    return hashlib.sha1(key.encode()).hexdigest()
