"""SOP execution: of what the playbook planned, what the front line was given and what it did.

Read from the draft ledger, per campaign day, beat and persona. A draft is late when it was
finished more than 10 minutes after it was due (or its reason says late); skipped drafts are
counted by the head of their reason (`limit:per_contact_per_day` counts as `limit`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from siyu_cli.playbook import LoadedPlaybook

LATE_GRACE = "+10 minutes"


@dataclass
class SopRow:
    """One (day, beat, persona): drafts by outcome. `due` is every draft the ledger recorded."""

    day: int | None
    beat: str
    title: str
    channel: str
    persona: str | None
    due: int = 0
    sent: int = 0
    done: int = 0
    late: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    unknown: int = 0
    pending: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: SopRow) -> None:
        self.due += other.due
        self.sent += other.sent
        self.done += other.done
        self.late += other.late
        self.failed += other.failed
        self.unknown += other.unknown
        self.pending += other.pending
        merged = Counter(self.skipped)
        merged.update(other.skipped)
        self.skipped = dict(sorted(merged.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "beat": self.beat,
            "title": self.title,
            "channel": self.channel,
            "persona": self.persona,
            "due": self.due,
            "sent": self.sent,
            "done": self.done,
            "late": self.late,
            "skipped": dict(self.skipped),
            "skipped_total": self.skipped_total,
            "failed": self.failed,
            "unknown": self.unknown,
            "pending": self.pending,
        }


@dataclass
class SopReport:
    playbook: str
    title: str
    day: int | None
    rows: list[SopRow]
    total: SopRow

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "title": self.title,
            "day": self.day,
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
        }


def _beat_title(playbook: LoadedPlaybook, beat: str) -> str:
    """The beat's title; welcome steps (`welcome:<hook>:<n>`) read as '欢迎语 <hook title> #n'."""
    for item in playbook.model.beats:
        if item.id == beat:
            return item.title or item.id
    kind, _, rest = beat.partition(":")
    if kind == "welcome":
        hook_id, _, step = rest.partition(":")
        hook = next((h for h in playbook.model.hooks if h.id == hook_id), None)
        name = (hook.title or hook.id) if hook else hook_id
        return f"欢迎语 {name} #{step}" if step else f"欢迎语 {name}"
    return beat


def sop(db: sqlite_utils.Database, playbook: LoadedPlaybook, *, day: int | None = None) -> SopReport:
    """Aggregate in SQL (the ledger can hold millions of drafts), fold the reasons in Python."""
    head = "CASE WHEN instr(reason, ':') > 0 THEN substr(reason, 1, instr(reason, ':') - 1) ELSE reason END"
    sql = f"""
        SELECT day, beat, channel, persona, state,
               CASE WHEN state = 'skipped' THEN {head} END AS why,
               COUNT(*),
               SUM(done_by IS NOT NULL),
               SUM(state = 'sent' AND ((finished_at IS NOT NULL AND finished_at > strftime('%Y-%m-%dT%H:%M:%SZ', due_at, '{LATE_GRACE}'))
                                       OR reason LIKE '%late%'))
        FROM drafts WHERE playbook_id = ? {"AND day = ?" if day is not None else ""}
        GROUP BY day, beat, channel, persona, state, why
    """
    params: list[Any] = [playbook.id] + ([day] if day is not None else [])
    rows: dict[tuple[Any, ...], SopRow] = {}
    for d, beat, channel, persona, state, why, count, done, late in db.conn.execute(sql, params):
        key = (d, beat, persona)
        row = rows.get(key)
        if row is None:
            row = rows[key] = SopRow(day=d, beat=beat, title=_beat_title(playbook, beat), channel=channel, persona=persona)
        row.due += count
        row.done += done or 0
        row.late += late or 0
        if state == "sent":
            row.sent += count
        elif state == "skipped":
            reason = why or "unknown"
            row.skipped[reason] = row.skipped.get(reason, 0) + count
        elif state == "failed":
            row.failed += count
        elif state == "unknown":
            row.unknown += count
        else:
            row.pending += count
    beat_order = {b.id: i for i, b in enumerate(playbook.model.beats)}
    ordered = sorted(rows.values(), key=lambda r: (r.day if r.day is not None else 0, beat_order.get(r.beat, len(beat_order)), r.beat, r.persona or ""))
    for row in ordered:
        row.skipped = dict(sorted(row.skipped.items()))
    total = SopRow(day=day, beat="", title="total", channel="", persona=None)
    for row in ordered:
        total.add(row)
    return SopReport(playbook=playbook.id, title=playbook.model.title, day=day, rows=ordered, total=total)
