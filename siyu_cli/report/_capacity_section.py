"""The HTML report's capacity section 人效: `siyu plan capacity` for the campaign the store holds, as a chart and a
table, and beside it what the ledger did.

Only for playbooks where a persona sets `capacity:`. The chart and its table are a model: siyu_cli.report._staffing's
expected values, from the package cards in the store (card_sent events); a store without any is planned from the
contacts who entered the funnel and reached its friend_added stage, each taken as a card scanned at an add rate of
100% (they were added, so the default 15% would understate the work). The section says which, and gives the
`plan capacity` command that prints the same table. The model spreads those cards over the campaign's first days as
simulate does, not on the days the store's contacts were really added, so it can keep up where the runner did not:
when the ledger holds 1v1 drafts, the section also shows, per day, how many were due, how many the caps carried over
to a later day (capacity:carried, nurture:carried), where those went (carried to a day, gave way there to a newer draft
of their beat for the contact: capacity:superseded) and how many still wait, and says so in its note.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from html import escape
from typing import Any

from siyu_cli.report._staffing import StaffPlan, staffing

NEEDED, BACKLOG, STAFF = "#2563eb", "#dc2626", "#6b7280"


def _basis(ctx: Any) -> tuple[int, dict[str, float], str, str] | None:
    """(cards, rates, what the figure is, the `plan capacity` flags that reproduce it), or None when the store has neither."""
    row = ctx.db.execute("SELECT COUNT(*) FROM events WHERE type = 'card_sent'").fetchone()
    if row and row[0]:
        return row[0], {}, f"{row[0]:,} package cards 包裹卡 in the store (card_sent events)", f"--cards {row[0]}"
    overall = ctx.funnel()
    added = next((s for s in overall.stages if s.event == "friend_added"), None) if overall is not None else None
    if added is None or not added.count:
        # No funnel stage for adds: the contacts added (friend_added events), each taken as a card added at 100%.
        found = ctx.db.execute("SELECT COUNT(DISTINCT contact_id) FROM events WHERE type = 'friend_added'").fetchone()
        if not found or not found[0]:
            return None
        what = f"no package cards in the store (no card_sent events): the {found[0]:,} contacts added (friend_added events), each taken as a card added at 100%"
        return found[0], {"friend_added": 1.0}, what, f"--cards {found[0]} --rates friend_added=1"
    what = (
        f"no package cards in the store (no card_sent events): the {added.count:,} contacts who entered the funnel and reached "
        f"{escape(added.label)} {escape(added.id)}, each taken as a card added at 100%"
    )
    return added.count, {added.id: 1.0}, what, f"--cards {added.count} --rates {added.id}=1"


def capacity_svg(plan: StaffPlan) -> str:
    """Operators needed a day (bars), the backlog in operator-days (line) and the operators the playbook has (dashed): 360 units wide."""
    width, height, left, bottom, top = 360, 160, 30, 20, 10
    plot_w, plot_h = width - left - 6, height - bottom - top
    days = plan.days
    scale = max([plan.operators, *(d.needed for d in days), *(d.backlog for d in days)]) or 1
    slot = plot_w / max(len(days), 1)

    def y(value: float) -> float:
        return top + plot_h - plot_h * value / scale

    parts = [
        f'<svg id="capacity-chart" class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="operators needed and backlog" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" stroke="#9ca3af"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10" fill="#6b7280">{scale:.3g}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#6b7280">0</text>',
    ]
    for k, d in enumerate(days):
        if d.needed:
            h = plot_h * d.needed / scale
            parts.append(
                f'<rect class="bar" data-day="{d.day}" data-needed="{d.needed}" x="{left + k * slot + slot * 0.15:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{max(slot * 0.7, 0.6):.1f}" height="{h:.1f}" fill="{NEEDED}" fill-opacity="0.55"><title>day {d.day} {d.date:%m-%d}: {d.needed} operator(s)</title></rect>'
            )
    staff = y(plan.operators)
    parts.append(f'<line class="staff" x1="{left}" y1="{staff:.1f}" x2="{width - 6}" y2="{staff:.1f}" stroke="{STAFF}" stroke-dasharray="4 3"/>')
    points = " ".join(f"{left + (k + 0.5) * slot:.1f},{y(d.backlog):.1f}" for k, d in enumerate(days))
    parts.append(f'<polyline class="backlog" points="{points}" fill="none" stroke="{BACKLOG}" stroke-width="2"/>')
    peak = plan.peak
    if peak is not None:
        k = days.index(peak)
        parts.append(
            f'<circle class="peak" data-day="{peak.day}" cx="{left + (k + 0.5) * slot:.1f}" cy="{y(peak.backlog):.1f}" r="3.5" fill="{BACKLOG}">'
            f"<title>backlog peak, day {peak.day} {peak.date:%m-%d}: {peak.backlog:.2f} operator-days</title></circle>"
        )
    for k in sorted({0, len(days) // 2, len(days) - 1}):
        anchor = "start" if k == 0 else "end" if k == len(days) - 1 and k else "middle"
        x = left + (k + (0 if anchor == "start" else 1 if anchor == "end" else 0.5)) * slot
        parts.append(f'<text x="{x:.1f}" y="{height - 5}" text-anchor="{anchor}" font-size="10" fill="#6b7280">{days[k].date:%m-%d}</text>')
    parts.append("</svg>")
    legend = (
        f'<div class="legend"><span><i style="background:{NEEDED};opacity:.55"></i>operators needed 人</span>'
        f'<span><i style="background:{BACKLOG}"></i>backlog (operator-days)</span>'
        f'<span><i style="background:{STAFF}"></i>operators the playbook has ({plan.operators})</span></div>'
    )
    return "".join(parts) + legend


def capacity_table(plan: StaffPlan) -> str:
    """The `plan capacity` table, a row per day, the backlog's peak marked."""
    head = '<tr><th>day</th><th class="l">date</th><th>cards</th><th>adds 加微</th><th>精准粉</th><th>半精准粉</th><th>泛粉</th><th>operator-days</th><th>needed 人</th><th>backlog</th></tr>'
    peak = plan.peak
    rows = []
    for d in plan.days:
        mark = ' <span class="warn">← peak</span>' if peak is not None and d.day == peak.day else ""
        fans = "".join(f"<td>{d.fans[t]:.1f}</td>" for t in ("precise", "semi", "general"))
        rows.append(
            f'<tr data-day="{d.day}" data-needed="{d.needed}" data-backlog="{d.backlog:.3f}"><td>{d.day}</td><td class="l">{d.date.isoformat()}</td>'
            f"<td>{d.cards:.0f}</td><td>{d.adds:.1f}</td>{fans}<td>{d.work:.2f}</td><td>{d.needed}</td><td>{d.backlog:.2f}{mark}</td></tr>"
        )
    return f'<div class="scroll"><table id="capacity-table">{head}{"".join(rows)}</table></div>'


def ledger_days(ctx: Any) -> list[dict[str, Any]]:
    """Per local day with 1v1 drafts in the ledger: those due (not skipped), those first due that day that a cap
    carried to a later day, and on the day they were carried to: those still to go there, those that gave way to a
    newer draft of their beat for the same contact (capacity:superseded), those skipped there for another reason,
    and the ones still pending. Carried from, summed over the days, is carried to + gave way + skipped there."""
    from siyu_cli._time import from_db
    from siyu_cli.dispatch._capacity import ONE_ON_ONE, SUPERSEDED, added_with

    playbook = ctx.playbook
    tz, start, instant = playbook.tz, playbook.cohorts[0].start, added_with(playbook)
    columns = ("due", "carried_from", "carried_to", "superseded", "skipped", "waiting")
    counts: dict[str, Counter[date]] = {name: Counter() for name in columns}
    marks = ", ".join("?" * len(ONE_ON_ONE))
    rows = ctx.db.execute(
        f"SELECT substr(due_at, 1, 16), substr(first_due_at, 1, 16), beat, state, carried_to IS NOT NULL, reason = ?, COUNT(*) FROM drafts "
        f"WHERE +playbook_id = ? AND channel IN ({marks}) AND NOT (state = 'skipped' AND carried_to IS NULL) GROUP BY 1, 2, 3, 4, 5, 6",
        [SUPERSEDED, playbook.id, *ONE_ON_ONE],
    )
    for due_at, first_due, beat, state, carried, superseded, n in rows:
        if beat in instant:
            continue  # the add's own welcome: no person's work
        day = from_db(due_at + ":00Z").astimezone(tz).date()
        if state != "skipped":
            counts["due"][day] += n
        if carried:
            counts["carried_from"][from_db((first_due or due_at) + ":00Z").astimezone(tz).date()] += n
            counts["superseded" if superseded else "skipped" if state == "skipped" else "carried_to"][day] += n
            if state == "pending":
                counts["waiting"][day] += n
    days = sorted(set().union(*counts.values()))
    return [{"day": (d - start).days + 1, "date": d, **{name: counts[name][d] for name in columns}} for d in days]


def ledger_table(days: list[dict[str, Any]]) -> str:
    """What the ledger did, a row per day: 1v1 drafts due, carried over from the day, carried to it, gave way there
    (and skipped there, when any was), still waiting; a total row, where carried over = carried to + gave way (+ skipped)."""
    skipped = any(d["skipped"] for d in days)
    columns = ["due", "carried_from", "carried_to", "superseded", *(["skipped"] if skipped else []), "waiting"]
    names = {
        "due": "1v1 drafts due",
        "carried_from": "carried over from the day",
        "carried_to": "carried to the day",
        "superseded": "gave way there 让位 (capacity:superseded)",
        "skipped": "skipped there (another reason)",
        "waiting": "still waiting",
    }
    head = '<tr><th>day</th><th class="l">date</th>' + "".join(f"<th>{names[c]}</th>" for c in columns) + "</tr>"
    rows = "".join(
        f'<tr data-day="{d["day"]}" data-carried="{d["carried_from"]}"><td>{d["day"]}</td><td class="l">{d["date"].isoformat()}</td>'
        + "".join(f'<td data-column="{c}">{d[c]}</td>' for c in columns)
        + "</tr>"
        for d in days
    )
    total = '<tr class="total"><th>all</th><th class="l"></th>' + "".join(f'<th data-column="{c}">{sum(d[c] for d in days)}</th>' for c in columns) + "</tr>"
    return f'<div class="scroll"><table id="capacity-ledger">{head}{rows}{total}</table></div>'


def _ledger_note(days: list[dict[str, Any]], modelled: bool) -> str:
    carried = sum(d["carried_from"] for d in days)
    if not carried:
        return f"The ledger: {sum(d['due'] for d in days):,} 1v1 drafts that need a person, none carried over by capacity or nurturing caps."
    worst = max(days, key=lambda d: (d["carried_from"], -d["day"]))
    waiting, gave_way, skipped = (sum(d[name] for d in days) for name in ("waiting", "superseded", "skipped"))
    ended = f"; {gave_way:,} of them gave way on their new day to a newer draft of their beat for the same contact (capacity:superseded)" if gave_way else ""
    ended += f"; {skipped:,} were skipped there for another reason" if skipped else ""
    return (
        f"The ledger: {carried:,} 1v1 drafts carried over to a later day by capacity or nurturing caps (capacity:carried, nurture:carried), "
        f"most from day {worst['day']} ({worst['date']}, {worst['carried_from']:,}){ended}; {waiting:,} still waiting"
        + (". The model above spreads the adds over the campaign's first days, not over the days they really came: where they differ, the ledger is what happened" if modelled else "")
    )


def capacity_section(ctx: Any) -> Any:
    """The HTML report's builder (siyu_cli.report._html SECTIONS): only when a persona sets `capacity:`."""
    from siyu_cli.report._html import Section

    playbook = ctx.playbook
    if not any(p.capacity for p in playbook.model.personas):
        return None
    title = "Capacity 人效"
    days = ledger_days(ctx)
    basis = _basis(ctx)
    ledger = ""
    if days:
        ledger = (
            f'<h3>What the ledger did 实际</h3><p class="note" id="capacity-ledger-note">{escape(_ledger_note(days, basis is not None))}.</p>'
            f"<details{' open' if any(d['carried_from'] for d in days) else ''}><summary>Every day with 1v1 drafts ({len(days)} days)</summary>{ledger_table(days)}</details>"
        )
    if basis is None:
        body = '<p class="note" id="capacity-chart">No package cards (card_sent) and no added contacts in the store yet: nothing to plan from.</p>'
        return Section("capacity", title, body + ledger)
    cards, rates, what, flags = basis
    plan = staffing(playbook, cards, rates)
    verdict = plan.verdict()
    real = " The ledger's own carry-overs are below the chart." if days else ""
    note = (
        f'<p class="note" id="capacity-basis">A model, not the ledger: planned from {what}; add rate {plan.add_rate:.1%} ({escape(plan.add_rate_source)}). '
        f"{escape(verdict[0].upper() + verdict[1:])}. Expected values, as "
        f'<code style="overflow-wrap:anywhere">siyu plan capacity {escape(str(playbook.path))} {escape(flags)}</code> prints them.{real}</p>'
    )
    table = f"<details><summary>Every day ({len(plan.days)} days)</summary>{capacity_table(plan)}</details>"
    return Section("capacity", title, f"{note}{capacity_svg(plan)}{table}{ledger}")
