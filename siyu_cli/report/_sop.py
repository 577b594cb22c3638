"""SOP execution: of what the playbook planned, what the front line was given and what it did.

Read from the draft ledger, per campaign day, beat and persona, in recipients (one draft each). A draft
is late when it was done (`done_at`: sent by the staff member, as WeCom reports it, or marked done) or
else finished more than 10 minutes after it was due (or its reason says late); skipped drafts are
counted by the head of their reason (`limit:per_contact_per_day` counts as `limit`).

What a staff member does is send a task, so SOP 执行率 and on time / late per staff member count send
tasks (drafts that went out together share `task_id`; a draft without one is its own task), with the
recipients they reached beside them: a 300-customer mass send is one task, as in WeCom's 群发记录.
A task is handed out when a recipient is (not skipped, not pending); done when any recipient was
sent by a staff member (`done_by`) and no part of it (a WeCom mass send of 10,000) still waits for them; on time when its first such send (`done_at`, the moment they
confirmed it) is within 10 minutes of its due time, late after; done with no send time known
(read back without one) is neither.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from siyu_cli.playbook import LoadedPlaybook

LATE_GRACE = "+10 minutes"
BEFORE_DAY_1 = "<before day 1>"  # the beat of the folded pre-campaign row: no beat id has '<' (a slug)


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
    quota: int = 0  # WeCom refused: the customer had the month's company mass sends (read back)
    not_friend: int = 0  # WeCom could not reach: not (or no longer) the staff member's customer
    not_sent: int = 0  # the staff member confirmed the task but left this recipient out, or never confirmed

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
        self.quota += other.quota
        self.not_friend += other.not_friend
        self.not_sent += other.not_sent
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
            "quota": self.quota,
            "not_friend": self.not_friend,
            "not_sent": self.not_sent,
        }


def percent(part: int, whole: int, places: int = 1) -> str:
    """part of whole as a percentage floored to `places` decimals: 12,795 of 12,800 is 99.9%, never 100.0% while
    anyone was missed (rounding would print it so). Counted in integers, so 941 of 1,000 is 94.1%, not 94.0%."""
    scale = 10 ** (places + 2)
    shown = part * scale // whole
    return f"{shown / 10 ** places:.{places}f}%"


@dataclass
class TaskCounts:
    """Send tasks handed to the front line and the recipients in them; per staff member (who sent
    the task first: a WeCom userid read back, or who typed `outbox done`) or for the whole report."""

    staff: str | None = None
    tasks: int = 0  # handed out (a staff member's: the ones they sent first, or WeCom handed them and nobody sent yet)
    done: int = 0
    on_time: int = 0
    late: int = 0
    time_unknown: int = 0  # done, but no send time was read back
    recipients: int = 0  # handed out in these tasks
    reached: int = 0  # of them, sent by a staff member (done_by)

    @property
    def rate(self) -> float | None:
        """SOP 执行率 in tasks: done of handed out."""
        return self.done / self.tasks if self.tasks else None

    @property
    def on_time_rate(self) -> float | None:
        timed = self.on_time + self.late
        return self.on_time / timed if timed else None

    def add(self, other: TaskCounts) -> None:
        self.tasks += other.tasks
        self.done += other.done
        self.on_time += other.on_time
        self.late += other.late
        self.time_unknown += other.time_unknown
        self.recipients += other.recipients
        self.reached += other.reached

    def to_dict(self) -> dict[str, Any]:
        # A staff member's tasks are the ones they sent; the whole report's are every task handed out, some done.
        head: dict[str, Any] = {"staff": self.staff, "tasks": self.tasks, "tasks_done": self.done} if self.staff is not None else {"tasks": self.tasks, "tasks_done": self.done, "rate": self.rate}
        return head | {
            "on_time": self.on_time,
            "late": self.late,
            "time_unknown": self.time_unknown,
            "on_time_rate": self.on_time_rate,
            "recipients": self.recipients,
            "recipients_reached": self.reached,
        }


@dataclass
class SopReport:
    playbook: str
    title: str
    day: int | None
    rows: list[SopRow]
    total: SopRow
    tasks: TaskCounts = field(default_factory=TaskCounts)
    staff: list[TaskCounts] = field(default_factory=list)

    @property
    def execution_rate(self) -> float | None:
        """SOP 执行率: done of the send tasks handed to the front line."""
        return self.tasks.rate

    @property
    def recipients_handed_out(self) -> int:
        return self.total.due - self.total.skipped_total - self.total.pending

    @property
    def recipient_rate(self) -> float | None:
        """Done of the recipients handed to the front line (due − skipped − pending)."""
        expected = self.recipients_handed_out
        return self.total.done / expected if expected > 0 else None

    def folded(self) -> list[SopRow]:
        """The rows with pre-campaign days (journey and welcome steps of contacts added before day 1) as one row."""
        before = [row for row in self.rows if row.day is not None and row.day < 1]
        if not before:
            return list(self.rows)
        personas = {row.persona for row in before}
        row = SopRow(day=None, beat=BEFORE_DAY_1, title="before day 1", channel="", persona=personas.pop() if len(personas) == 1 else None)
        for item in before:
            row.add(item)
        return [row, *(r for r in self.rows if r.day is None or r.day >= 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "title": self.title,
            "day": self.day,
            "execution_rate": self.execution_rate,
            "tasks": self.tasks.to_dict(),
            "recipients": {"handed_out": self.recipients_handed_out, "reached": self.total.done, "rate": self.recipient_rate},
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
            "staff": [row.to_dict() for row in self.staff],
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
               SUM(state = 'sent' AND (CASE WHEN outcome IS NOT NULL
                                              -- read back from WeCom: late is when the staff member sent it; not sent is not late
                                              THEN done_at IS NOT NULL AND done_at > strftime('%Y-%m-%dT%H:%M:%SZ', due_at, '{LATE_GRACE}')
                                              ELSE COALESCE(done_at, finished_at) IS NOT NULL
                                                   AND COALESCE(done_at, finished_at) > strftime('%Y-%m-%dT%H:%M:%SZ', due_at, '{LATE_GRACE}') END
                                       OR reason LIKE '%late%')),
               SUM(outcome = 'quota'), SUM(outcome = 'not_friend'), SUM(outcome = 'not_sent')
        FROM drafts WHERE playbook_id = ? {"AND day = ?" if day is not None else ""}
        GROUP BY day, beat, channel, persona, state, why
    """
    params: list[Any] = [playbook.id] + ([day] if day is not None else [])
    rows: dict[tuple[Any, ...], SopRow] = {}
    for d, beat, channel, persona, state, why, count, done, late, quota, not_friend, not_sent in db.conn.execute(sql, params):
        key = (d, beat, persona)
        row = rows.get(key)
        if row is None:
            row = rows[key] = SopRow(day=d, beat=beat, title=_beat_title(playbook, beat), channel=channel, persona=persona)
        row.due += count
        row.done += done or 0
        row.late += late or 0
        row.quota += quota or 0
        row.not_friend += not_friend or 0
        row.not_sent += not_sent or 0
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
    staff = _tasks(db, playbook, day)
    tasks = TaskCounts()
    for member in staff:
        tasks.add(member)
    return SopReport(playbook=playbook.id, title=playbook.model.title, day=day, rows=ordered, total=total, tasks=tasks, staff=[m for m in staff if m.staff is not None])


def task_cells(db: sqlite_utils.Database, playbook: LoadedPlaybook) -> dict[tuple[int | None, str], TaskCounts]:
    """Send tasks handed out per (day, beat), as SOP 执行率 counts them: each task once (it is one beat), on the
    earliest day of its recipients."""
    return {(day, beat): counts for (day, beat), counts in _task_counts(db, playbook, None, ("tasks.day", "tasks.beat"))}


def _tasks(db: sqlite_utils.Database, playbook: LoadedPlaybook, day: int | None) -> list[TaskCounts]:
    """Send tasks handed out, per the staff member who sent each first (None: not sent by anyone yet)."""
    found = []
    for (staff,), counts in _task_counts(db, playbook, day, ("sender.done_by",)):
        counts.staff = staff
        found.append(counts)
    return sorted(found, key=lambda m: (m.staff is None, m.staff or ""))


def _task_counts(db: sqlite_utils.Database, playbook: LoadedPlaybook, day: int | None, keys: tuple[str, ...]) -> list[tuple[tuple[Any, ...], TaskCounts]]:
    """Send tasks handed out grouped by `keys` (the staff member who sent each first, `sender.done_by`, or its
    `tasks.day` and `tasks.beat`), so the staff table, SOP 执行率 and the HTML heatmap count tasks one way."""
    grouped = ", ".join(keys)
    sql = f"""
        WITH handed AS (
            SELECT COALESCE(task_id, draft_id) AS task, day, beat, due_at, done_at, done_by
            FROM drafts WHERE playbook_id = ? AND state NOT IN ('skipped', 'pending') {"AND day = ?" if day is not None else ""}
        ),
        tasks AS (
            SELECT task, MIN(day) AS day, MIN(beat) AS beat, MIN(due_at) AS due, COUNT(*) AS recipients, SUM(done_by IS NOT NULL) AS reached,
                   MIN(CASE WHEN done_by IS NOT NULL THEN done_at END) AS sent_at
            FROM handed GROUP BY task
        ),
        first AS (  -- who sent it first: a task two people marked done by hand is one task, theirs who went first
            SELECT task, done_by FROM (
                SELECT task, done_by, ROW_NUMBER() OVER (PARTITION BY task ORDER BY done_at IS NULL, done_at, done_by) AS n
                FROM handed WHERE done_by IS NOT NULL
            ) WHERE n = 1
        ),
        parts AS (  -- the WeCom mass sends a task went in: its staff member, and whether one still waits for them
            SELECT task_id AS task, MIN(sender) AS assigned, MAX(closed_at IS NULL) AS open FROM wecom_tasks WHERE playbook_id = ? GROUP BY task_id
        ),
        sender AS (  -- a task is done when sent and no part of it still waits; it counts for who sent it, else who has it
            SELECT task, COALESCE(first.done_by, parts.assigned) AS done_by, first.done_by IS NOT NULL AND NOT COALESCE(parts.open, 0) AS finished
            FROM tasks LEFT JOIN first USING (task) LEFT JOIN parts USING (task)
        )
        SELECT {grouped}, COUNT(*), SUM(finished),
               SUM(finished AND sent_at IS NULL),
               SUM(finished AND sent_at > strftime('%Y-%m-%dT%H:%M:%SZ', due, '{LATE_GRACE}')),
               SUM(recipients), SUM(reached)
        FROM tasks LEFT JOIN sender USING (task)
        GROUP BY {grouped}
    """
    rows = []
    for row in db.conn.execute(sql, [playbook.id] + ([day] if day is not None else []) + [playbook.id]):
        key, (count, done, unknown, late, recipients, reached) = tuple(row[: len(keys)]), row[len(keys) :]
        timed = (done or 0) - (unknown or 0)
        rows.append((key, TaskCounts(None, count, done or 0, timed - (late or 0), late or 0, unknown or 0, recipients or 0, reached or 0)))
    return rows
