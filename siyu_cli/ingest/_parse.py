"""Cell values as spreadsheet exports write them: times, amounts, tags, event types."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from siyu_cli._time import OUT_OF_RANGE, TIME_EXAMPLES, YEARS, in_range, parse_when, storable, to_db
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
_CURRENCY = str.maketrans("", "", "¥￥元 \u00a0")
_AMOUNT = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(\.\d+)?$")
_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def unwrap(text: str) -> str:
    """Text as the exporter meant it: stripped (tabs too), and out of Excel's `="…"` text-forcing wrapper."""
    text = text.strip()
    if text[:2] == '="' and text[-1:] == '"' and len(text) > 2:
        text = text[2:-1].replace('""', '"').strip()
    return text


def clean_id(value: Any) -> str | None:
    """An id as exports write it: unwrapped, without the leading apostrophe or tab that forced it to text."""
    text = cell_text(value)
    if text is not None and text[0] in "'\u2018\u2019`":
        text = text.lstrip("'\u2018\u2019`").strip() or None
    return text


MASK = "*"
_SCIENTIFIC_ID = re.compile(r"^[+-]?\d\.\d+[eE]\+?\d+$")


def read_id(value: Any) -> str | None:
    """An id cell (clean_id), refusing one whose digits are already lost: a number Excel holds as a float
    keeps 15 significant digits, and a CSV Excel re-saved writes it as 3.30123E+18."""
    if value.__class__ is float and abs(value) >= 1e15:
        raise ValueError(
            f"{value:.15G} is a number in the workbook, and Excel keeps only 15 digits: this id has lost its last ones; "
            "format the column as text in Excel (设置单元格格式 → 文本) and export it again, or import the platform's CSV"
        )
    text = clean_id(value)
    if text is not None and _SCIENTIFIC_ID.match(text):
        raise ValueError(
            f"{text!r} is an id in scientific notation: its digits were lost when Excel opened the file; "
            "import the platform's CSV as downloaded, or format the column as text in Excel before saving"
        )
    return text


def masked(text: str) -> bool:
    """Whether an id is masked (t**g, 138****0000): the platform hid part of it, so it cannot tell people apart."""
    return MASK in text


def cell_text(value: Any) -> str | None:
    """A cell as stripped text; None for an empty cell. Whole-number floats lose their '.0' (Excel ids)."""
    if value is None:
        return None
    if value.__class__ is str:
        text = value.strip()
        if text[:2] == '="':
            return unwrap(text) or None
        return text or None
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
    """A number, also as '¥1,299.00', '1,299.5', '￥88' or '365元'; None for an empty cell. Raises ValueError otherwise.

    Only forms that cannot be misread: thousands separators in groups of three, a decimal point.
    '1.299,00' (a decimal comma), '12,34.5' and '1e3' would each be read as another number, so they are refused.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"amount {value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"amount {value!r} is not a finite number")
        return number
    shown = str(value).strip()
    text = shown.translate(_CURRENCY).replace("，", ",")
    if not text:
        return None
    match = _AMOUNT.match(text)
    if match is None:
        raise ValueError(f"amount {shown!r} {_why_not_amount(text)}")
    return float(match.group(1) + match.group(2).replace(",", "") + (match.group(3) or ""))


def _why_not_amount(text: str) -> str:
    if _EXPONENT.match(text):
        return "is in scientific notation; write the amount in full digits (format the column as a number with 2 decimals)"
    if re.fullmatch(r"[+-]?[\d.]*\d,\d{1,2}", text) or re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+,\d+", text):
        return "has a decimal comma; write the decimals after a point, e.g. 1299.00"
    if re.fullmatch(r"[+-]?[\d,]+(\.\d+)?", text):
        return "has thousands separators not in groups of three; write e.g. 1,299.00 or 1299.00"
    return "is not a number; write e.g. 199, 1299.00 or ¥1,299.00"


def check_amount(kind: str, amount: float | None) -> None:
    """An order's or a refund's amount is money that moved: never below zero (money back is a refund, not a negative order)."""
    if amount is not None and amount < 0 and kind in ("order", "refund"):
        fix = "record money back as a refund event with a positive amount" if kind == "order" else "write the refund as a positive amount"
        raise ValueError(f"{kind} amount {amount:g} is negative; {fix}")


def time_parser(tz: tzinfo) -> Callable[[Any], str]:
    """A parser from a cell (text or an Excel datetime) to the store's UTC text; zone-less times are in `tz`.

    Exports write millions of distinct `YYYY-MM-DD HH:MM:SS` times: those are shifted by the zone's
    offset for their hour (cached per hour, and only where the hour has one offset) instead of
    going through astimezone and strftime one by one.
    """
    offsets: dict[str, timedelta | None] = {}
    fromiso = datetime.fromisoformat

    def offset_of(hour: str) -> timedelta | None:
        local = fromiso(hour + ":00:00")
        first, second = local.replace(tzinfo=tz, fold=0).utcoffset(), local.replace(tzinfo=tz, fold=1).utcoffset()
        end = (local + timedelta(minutes=59, seconds=59)).replace(tzinfo=tz)
        same = first == second and end.utcoffset() == first and end.replace(fold=1).utcoffset() == first
        return first if same and YEARS[0] < local.year < YEARS[1] else None

    @lru_cache(maxsize=8192)
    def parse_text(text: str) -> str:
        return to_db(parse_when(text, tz))

    def parse(value: Any) -> str:
        if value.__class__ is str:
            if len(value) == 19 and value[10] == " " and value[4] == "-" and value[13] == ":":
                hour = value[:13]
                offset = offsets.get(hour, False)
                if offset is False:
                    try:
                        offset = offsets[hour] = offset_of(hour)
                    except ValueError:
                        offset = None
                if offset is not None:
                    try:
                        return (fromiso(value) - offset).isoformat() + "Z"
                    except ValueError:
                        pass
            elif len(value) == 20 and value[10] == "T" and value[19] == "Z":
                # Already the store's form: validate it in C and keep the text (its year checked like any other).
                try:
                    fromiso(value)
                except ValueError:
                    pass
                else:
                    if storable(value):
                        return value
                    raise ValueError(f"{value!r} is out of range; {OUT_OF_RANGE}")
            text = unwrap(value)
            if not text:
                raise ValueError("missing time")
            return parse_text(text)
        if isinstance(value, datetime):
            return to_db(in_range(value if value.tzinfo else value.replace(tzinfo=tz), value.isoformat(sep=" ")))
        if isinstance(value, date):
            return to_db(in_range(datetime.combine(value, time(0, 0), tzinfo=tz), value.isoformat()))
        if value is None:
            raise ValueError("missing time")
        raise ValueError(f"{value!r} is not a time; format the cell as a date-time or {TIME_EXAMPLES}")

    return parse


def derived_event_id(kind: str, contact_id: str, at: str, hook: str | None, cohort: str | None, group: str | None, amount: float | None) -> str:
    """The id of an event given without one: the same facts give the same id, so re-imports add nothing."""
    key = "\x1f".join((kind, contact_id, at, hook or "", cohort or "", group or "", "" if amount is None else repr(amount)))
    return hashlib.sha1(key.encode()).hexdigest()
