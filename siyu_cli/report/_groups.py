"""The group health report 群健康: each group's class day by day, its trend and the signals behind it.

Day D's class is what the runner decides with on day D: the events of the window before D's local
midnight (siyu_cli.health). The report runs from each group's cohort day 1 to the day after the
store's last event (the first day that sees every event) or the last day the ledger holds a post
to the group (the days the runner decided on), whichever is later, within the campaign, or to `until`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any

import sqlite_utils

from siyu_cli._time import from_db
from siyu_cli.health import LABELS, DayHealth, HealthBook
from siyu_cli.health._health import TYPES
from siyu_cli.playbook import LoadedPlaybook

MARKS = {"value": "●", "chicken_rib": "◐", "dead": "○", "spam": "✕", "new": "·", "unknown": "?"}
COLOURS = {"value": "#16a34a", "chicken_rib": "#ca8a04", "dead": "#dc2626", "spam": "#9333ea", "new": "#9ca3af", "unknown": "#6b7280"}
CSV_COLUMNS = ("date", "group", "name", "cohort", "health", "members", "talkers", "messages", "ads", "checkins", "orders", "active", "joined", "left", "why")


@dataclass
class GroupRow:
    group: str
    name: str
    cohort: str
    days: list[DayHealth] = field(default_factory=list)

    @property
    def latest(self) -> DayHealth | None:
        return self.days[-1] if self.days else None

    @property
    def trend(self) -> str:
        """One mark per day: ● value, ◐ chicken-rib, ○ dead, ✕ spam, · new, ? unknown."""
        return "".join(MARKS[d.health] for d in self.days)

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "group": self.group,
            "name": self.name,
            "cohort": self.cohort,
            "health": latest.health if latest else None,
            "why": latest.why if latest else None,
            "signals": latest.signals.to_dict() if latest else None,
            "days": [d.to_dict() for d in self.days],
        }


@dataclass
class GroupsReport:
    playbook_id: str
    title: str
    settings: dict[str, Any]
    rows: list[GroupRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook_id, "title": self.title, "settings": self.settings, "groups": [row.to_dict() for row in self.rows]}

    def csv_rows(self) -> list[list[Any]]:
        """One row per group and day, oldest first."""
        found: list[list[Any]] = []
        for row in self.rows:
            for day in row.days:
                s = day.signals
                found.append([day.date.isoformat(), row.group, row.name, row.cohort, day.health, s.members, s.talkers, s.messages, s.ads, s.checkins, s.orders, s.active, s.joined, s.left, day.why])
        return found


def groups_report(db: sqlite_utils.Database | None, playbook: LoadedPlaybook, *, until: date | None = None) -> GroupsReport:
    """Every group of the playbook, classed on each day of its cohort's campaign up to the data (or `until`)."""
    model = playbook.model
    rules = model.group_health
    report = GroupsReport(playbook.id, model.title, rules.model_dump(by_alias=True))
    book = HealthBook(playbook, db)
    last_event = None
    posted: dict[str, date] = {}  # each group's last post in the ledger
    if db is not None:
        row = db.execute(f"SELECT MAX(at) FROM events WHERE type IN ({', '.join('?' * len(TYPES))})", list(TYPES)).fetchone()
        if row and row[0]:
            last_event = from_db(row[0]).astimezone(playbook.tz).date()
        for group in model.groups:  # by the target index: a group's drafts, not the whole ledger's
            (at,) = db.execute("SELECT MAX(occurrence_at) FROM drafts WHERE target = ? AND +playbook_id = ?", [f"group:{group.id}", playbook.id]).fetchone()
            if at:
                posted[group.id] = from_db(at).astimezone(playbook.tz).date()
    names = {g.id: g.name for g in model.groups}
    for group in model.groups:
        run = next((r for r in playbook.cohorts if group.id in r.group_ids), playbook.cohorts[0])
        first = run.start
        end = first + timedelta(days=model.days - 1)
        seen = [day for day in (last_event + timedelta(days=1) if last_event is not None else None, posted.get(group.id)) if day is not None]
        upto = until if until is not None else max(seen, default=first)
        last = max(first, min(end, upto))
        report.rows.append(GroupRow(group.id, names[group.id], run.id, book.series(group.id, first, last)))
    return report


def health_html(report: GroupsReport) -> str:
    """The HTML report's section: class, trend marks per day and the signals of the latest day."""
    if not report.rows:
        return '<p class="note" id="group-health">The playbook has no groups.</p>'
    window = report.settings.get("window", "7d")
    head = (
        '<tr><th class="l">group</th><th class="l">health</th><th class="l">trend</th><th>members</th><th>talkers</th>'
        '<th>messages</th><th>ads</th><th>active</th><th>left</th><th class="l">why</th></tr>'
    )
    body = []
    for row in report.rows:
        latest = row.latest
        if latest is None:
            continue
        s = latest.signals
        marks = "".join(
            f'<span title="{d.date.isoformat()} {escape(LABELS[d.health])}" style="color:{COLOURS[d.health]}">{MARKS[d.health]}</span>' for d in row.days
        )
        body.append(
            f'<tr data-group="{escape(row.group)}" data-health="{latest.health}"><td class="l">{escape(row.name)}</td>'
            f'<td class="l" style="color:{COLOURS[latest.health]}">{escape(LABELS[latest.health])}</td><td class="l">{marks}</td>'
            f"<td>{s.members}</td><td>{s.talkers}</td><td>{s.messages}</td><td>{s.ads}</td><td>{s.active}</td><td>{s.left}</td>"
            f'<td class="l">{escape(latest.why)}</td></tr>'
        )
    legend = " · ".join(f'<span style="color:{COLOURS[k]}">{MARKS[k]}</span> {escape(LABELS[k])}' for k in MARKS)
    note = f'<p class="note">Each day is classed from the {escape(str(window))} before it (signals: the latest day). {legend}</p>'
    return f'<div class="scroll"><table id="group-health">{head}{"".join(body)}</table></div>{note}'


def groups_section(ctx: Any) -> Any:
    """The HTML report's builder (siyu_cli.report._html SECTIONS): only for playbooks with groups."""
    from siyu_cli.report._html import Section

    if not ctx.playbook.model.groups:
        return None
    return Section("groups", "Group health 群健康", health_html(groups_report(ctx.db, ctx.playbook)))
