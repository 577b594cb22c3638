"""The figures a manager reads first (cards, adds, 开单率, GMV, 客单价, 首购 : 复购) and the daily trend.

Counts and rates come from the funnel (`FunnelReport`), so a card never disagrees with the
funnel below it; each is held against the funnel's target for that stage when it has one.
Money comes from the store's `order` events with an amount (GMV: their sum, refunds shown
beside it, not taken off; 客单价: GMV per buyer, 笔单价: per order). The trend counts, per day
in the playbook's zone, each contact's first add, each contact's first order and the GMV.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

import sqlite_utils

from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.report._funnel import FunnelReport, StageResult

TREND_DAYS = 180  # the trend shows at most the last this many days that have events
ADD, ORDER = "friend_added", "order"
# The trend counts every contact's first add and first order, the headline only the funnel's: one label each way,
# so 12 all adds under the trend is not read against 9 funnel adds on the card as one figure.
SERIES = (("adds", "全部加微 all adds (in the funnel or not)", "#2563eb"), ("first_orders", "全部首单 all first orders", "#16a34a"), ("gmv", "GMV 成交额", "#9333ea"))
ADDS_CARD = "加微 adds (funnel)"


@dataclass
class Figure:
    """One headline card: `met` None when the funnel holds it against no target."""

    key: str
    label: str
    value: str
    detail: str = ""
    target: str | None = None
    met: bool | None = None


@dataclass
class Sales:
    """What the store's order and refund events add up to, and the per-day series of the trend."""

    orders: int = 0
    unpriced: int = 0
    buyers: int = 0
    gmv: float = 0.0
    refunds: int = 0
    refunded: float = 0.0
    days: list[date] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    clipped: int = 0  # earlier days with events left out of the trend


def _local_day(at: str, playbook: LoadedPlaybook, cache: dict[str, date]) -> date:
    """The store's UTC text as a date in the playbook's zone; cached per minute (zones differ by whole minutes)."""
    from siyu_cli._time import from_db

    key = at[:16]
    found = cache.get(key)
    if found is None:
        found = cache[key] = from_db(at[:16] + ":00Z").astimezone(playbook.tz).date()
    return found


def sales(db: sqlite_utils.Database, playbook: LoadedPlaybook) -> Sales:
    """A few grouped reads of the events table; per-day buckets in Python because zones are Python's."""
    conn = db.conn
    cache: dict[str, date] = {}
    result = Sales()
    result.orders, result.unpriced, result.gmv, result.buyers = conn.execute(
        "SELECT COUNT(*), SUM(amount IS NULL), TOTAL(amount), COUNT(DISTINCT CASE WHEN amount IS NOT NULL THEN contact_id END) "
        "FROM events WHERE type = ?",
        [ORDER],
    ).fetchone()
    result.unpriced = result.unpriced or 0
    result.refunds, result.refunded = conn.execute("SELECT COUNT(*), TOTAL(amount) FROM events WHERE type = 'refund'").fetchone()
    per_day: dict[str, Counter[date]] = {"adds": Counter(), "first_orders": Counter()}
    gmv: dict[date, float] = {}
    for name, kind in (("adds", ADD), ("first_orders", ORDER)):
        for (at,) in conn.execute("SELECT MIN(at) FROM events WHERE type = ? GROUP BY contact_id", [kind]):
            per_day[name][_local_day(at, playbook, cache)] += 1
    for at, amount in conn.execute("SELECT at, amount FROM events WHERE type = ? AND amount IS NOT NULL", [ORDER]):
        day = _local_day(at, playbook, cache)
        gmv[day] = gmv.get(day, 0.0) + amount
    seen = set(per_day["adds"]) | set(per_day["first_orders"]) | set(gmv)
    if seen:
        first, last = min(seen), max(seen)
        if (last - first).days >= TREND_DAYS:
            clipped_from = last - timedelta(days=TREND_DAYS - 1)
            result.clipped = (clipped_from - first).days
            first = clipped_from
        result.days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    result.series = {
        "adds": [float(per_day["adds"][d]) for d in result.days],
        "first_orders": [float(per_day["first_orders"][d]) for d in result.days],
        "gmv": [gmv.get(d, 0.0) for d in result.days],
    }
    return result


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def yuan(value: float) -> str:
    return f"¥{value:,.0f}" if abs(value) >= 100 else f"¥{value:,.2f}"


def _stage(report: FunnelReport | None, event: str, nth: int = 1) -> StageResult | None:
    if report is None:
        return None
    return next((s for s in report.stages if s.event == event and s.nth == nth), None)


def _held(stage: StageResult, figure: Figure) -> Figure:
    """The card against the stage's target: the rate the target is held against, the gap in points."""
    if stage.target is None:
        return figure
    of = f" of {stage.target_of}" if stage.target_of else ""
    figure.target = f"target {_pct(stage.target)}{of}"
    figure.met = stage.met
    if stage.target_rate is not None:
        gap = (stage.target_rate - stage.target) * 100
        figure.target += f" · {'✓ met' if stage.met else '✗ not met'} {gap:+.1f} pt"
    return figure


def figures(report: FunnelReport | None, money: Sales) -> list[Figure]:
    """The cards in the order a manager asks: how many came in, added, bought, for how much, bought again."""
    found: list[Figure] = []
    entry = report.stages[0] if report is not None and report.stages else None
    cards = _stage(report, "card_sent")
    adds = _stage(report, ADD)
    if entry is not None and entry is not cards and entry is not adds:  # an entry that is the adds stage is one card
        found.append(Figure("entered", f"{entry.label} entered", f"{entry.count:,}", "contacts who entered the funnel"))
    if cards is not None:
        found.append(_held(cards, Figure("cards", "包裹卡 cards", f"{cards.count:,}", "package cards sent")))
    if adds is not None and adds is not entry:
        detail = f"{_pct(adds.step_rate)} of {adds.base}" if adds.base else ""
        found.append(_held(adds, Figure("adds", ADDS_CARD, f"{adds.count:,}", detail)))
    elif adds is not None:
        found.append(Figure("adds", ADDS_CARD, f"{adds.count:,}", "contacts who added: the funnel's entry"))
    ordered = _stage(report, ORDER)
    if ordered is not None:
        if ordered.target is not None:
            rate, base = ordered.target_rate, ordered.target_of or ordered.base
        elif adds is not None and adds.count:
            rate, base = ordered.count / adds.count, adds.id
        else:
            rate, base = ordered.step_rate, ordered.base
        found.append(_held(ordered, Figure("first_order_rate", "开单率 first-order rate", _pct(rate), f"{ordered.count:,} first orders of {base}")))
    if money.orders:
        priced = money.orders - money.unpriced
        unpriced = f" · {money.unpriced:,} without an amount, not counted" if money.unpriced else ""
        refunds = f" · refunds {money.refunds:,} ({yuan(money.refunded)})" if money.refunds else ""
        found.append(Figure("gmv", "GMV 成交额", yuan(money.gmv), f"{priced:,} orders{unpriced}{refunds}"))
        if money.buyers:
            per_order = f" · 笔单价 {yuan(money.gmv / priced)} per order" if priced else ""
            found.append(Figure("aov", "客单价 order value", yuan(money.gmv / money.buyers), f"GMV per buyer, {money.buyers:,} buyers{per_order}"))
    else:
        found.append(Figure("gmv", "GMV 成交额", "–", "no order events yet"))
    again = _stage(report, ORDER, nth=2)
    if ordered is not None and again is not None:
        share = again.count / ordered.count if ordered.count else None
        found.append(_held(again, Figure("first_repeat", "首购 : 复购 first : repeat", f"{ordered.count:,} : {again.count:,}", f"{_pct(share)} of first buyers bought again")))
    return found


def cards_html(found: list[Figure]) -> str:
    """A grid of cards that wraps: two across on a phone, up to six on a desktop."""
    cards = []
    for figure in found:
        state = "" if figure.met is None else (" met" if figure.met else " miss")
        target = f'<div class="target">{escape(figure.target)}</div>' if figure.target else '<div class="target none">no target</div>'
        met = "" if figure.met is None else f' data-met="{str(figure.met).lower()}"'
        cards.append(
            f'<div class="card{state}" data-figure="{figure.key}"{met}><div class="label">{escape(figure.label)}</div>'
            f'<div class="value">{escape(figure.value)}</div><div class="detail">{escape(figure.detail)}</div>{target}</div>'
        )
    return '<div id="headline" class="cards">' + "".join(cards) + "</div>"


def _panel(name: str, title: str, colour: str, days: list[date], values: list[float]) -> str:
    """One small bar chart, 360 units wide: scaled to its box by the viewBox, so it fits a phone and a desktop alike."""
    width, height, left, bottom, top = 360, 140, 34, 20, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = max(values, default=0.0)
    slot = plot_w / max(len(days), 1)
    total = sum(values)
    shown = yuan(total) if name == "gmv" else f"{total:,.0f}"
    top_label = (yuan(peak) if name == "gmv" else f"{peak:,.0f}") if peak else "0"
    parts = [
        f'<svg class="chart" data-series="{name}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" stroke="#9ca3af"/>',
        f'<line x1="{left}" y1="{top}" x2="{width - 6}" y2="{top}" stroke="#f3f4f6"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10" fill="#6b7280">{escape(top_label)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#6b7280">0</text>',
    ]
    for k, (day, value) in enumerate(zip(days, values, strict=True)):
        if not value:
            continue
        h = max(plot_h * value / peak, 1.0)
        x = left + k * slot + slot * 0.1
        shown_value = yuan(value) if name == "gmv" else f"{value:,.0f}"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(slot * 0.8, 0.6):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{day:%m-%d}: {escape(shown_value)}</title></rect>"
        )
    if days:
        for k in sorted({0, len(days) // 2, len(days) - 1}):
            anchor = "start" if k == 0 else "end" if k == len(days) - 1 and k else "middle"
            x = left + (k + (0 if anchor == "start" else 1 if anchor == "end" else 0.5)) * slot
            parts.append(f'<text x="{x:.1f}" y="{height - 5}" text-anchor="{anchor}" font-size="10" fill="#6b7280">{days[k]:%m-%d}</text>')
    parts.append("</svg>")
    return f'<figure class="panel"><figcaption>{escape(title)} · <b>{escape(shown)}</b></figcaption>{"".join(parts)}</figure>'


def trend_html(money: Sales) -> str:
    """Three small charts side by side on a desktop, one under another on a phone."""
    if not money.days:
        return '<p class="note" id="trend">No adds or orders recorded yet.</p>'
    panels = "".join(_panel(name, title, colour, money.days, money.series[name]) for name, title, colour in SERIES)
    clipped = f" The {money.clipped:,} days before {money.days[0]:%Y-%m-%d} are left out." if money.clipped else ""
    note = (
        f'<p class="note">Per day in the playbook\'s zone, {money.days[0]:%Y-%m-%d} to {money.days[-1]:%Y-%m-%d}: each contact\'s first add, '
        f"each contact's first order, and the amounts of all orders (refunds not taken off). These count every contact in the store, "
        f"also those who came outside the funnel, so all adds can be more than the headline's {ADDS_CARD}.{clipped}</p>"
    )
    return f'<div id="trend" class="panels">{panels}</div>{note}'
