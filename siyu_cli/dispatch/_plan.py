"""What an edited playbook will do to a running campaign, against the ledger: `siyu plan`, and a pass's own edits.

A draft is its slot (siyu_cli.render.Draft.slot). After an edit, each pending draft (deferred,
waiting for a retry) is compared with what the playbook now makes of its slot: a new time
re-times it, a new text re-renders it (a task whose text now names the contact splits into
one per recipient), a slot the playbook no longer has (a beat, step or day
removed, a contact the audience no longer names) cancels it as `skipped(removed)`. Drafts that
went out are never touched. Like `terraform plan`, the review changes nothing; a pass applies it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from siyu_cli._time import from_db, parse_hhmm, to_db
from siyu_cli.dispatch._capacity import CARRIED, PersonalRule
from siyu_cli.dispatch._policy import Guard
from siyu_cli.dispatch._tasks import SendKeys
from siyu_cli.ledger import PlanCursor
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Draft, Planner
from siyu_cli.render._media import to_json as media_json
from siyu_cli.store import immediate

_PENDING = (
    "SELECT draft_id, slot, channel, beat, day, target, due_at, text, variant, content_hash, reason, attachments, send_key FROM drafts "
    "WHERE +playbook_id = ? AND state = 'pending' AND content_hash != ?"
)


@dataclass(frozen=True)
class Change:
    """One pending draft the edit changes, or one draft a pass would create."""

    kind: str  # create | retime | rerender | cancel
    beat: str
    day: int
    target: str
    due_at: datetime
    draft_id: str | None = None
    was_due: datetime | None = None
    text: str | None = None
    was_text: str | None = None
    state: str = "pending"  # what the draft becomes
    reason: str | None = None
    error: str | None = None
    variant: str | None = None
    attachments: str | None = None  # the draft's attachments as the ledger stores them (JSON)
    send_key: str | None = None  # a re-rendered draft's: shared with the drafts of its task that still share its text


@dataclass
class PlanReport:
    """`siyu plan`: what the playbook will do, per beat and day, and what goes out in the next 24 hours."""

    now: datetime
    changes: list[Change] = field(default_factory=list)
    upcoming: list[tuple[datetime, str, str, int]] = field(default_factory=list)  # (due, beat, channel, drafts)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def counts(self) -> Counter[str]:
        return Counter(change.kind for change in self.changes)

    def by_beat(self) -> list[tuple[str, int, str, int]]:
        """(beat, day, kind, drafts), in beat and day order."""
        found = Counter((c.beat, c.day, c.kind) for c in self.changes)
        return [(beat, day, kind, n) for (beat, day, kind), n in sorted(found.items())]

    def becomes(self, beat: str, day: int, kind: str) -> str:
        """What these drafts become, when not all of them pending: `pending 3 · skipped(not_friend) 2` (the table's column)."""
        found = Counter(c.state if c.reason is None or c.state == "pending" else f"{c.state}({c.reason})" for c in self.changes if (c.beat, c.day, c.kind) == (beat, day, kind))
        return "" if set(found) <= {"pending"} else " · ".join(f"{label} {n}" for label, n in sorted(found.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "changed": self.changed,
            "counts": {kind: self.counts().get(kind, 0) for kind in ("create", "retime", "rerender", "cancel")},
            "by_beat": [{"beat": b, "day": d, "kind": k, "drafts": n} for b, d, k, n in self.by_beat()],
            "changes": [
                {
                    "kind": c.kind,
                    "draft_id": c.draft_id,
                    "beat": c.beat,
                    "day": c.day,
                    "target": c.target,
                    "due_at": c.due_at.isoformat(),
                    "was_due": c.was_due.isoformat() if c.was_due else None,
                    "state": c.state,
                    "reason": c.reason,
                    "text": c.text,
                    "was_text": c.was_text,
                }
                for c in self.changes[:500]
            ],
            "next_24h": [{"due_at": due.isoformat(), "beat": beat, "channel": channel, "drafts": n} for due, beat, channel, n in self.upcoming],
        }


def fill_slots(db: Any, playbook: LoadedPlaybook) -> None:
    """A ledger from before slots: this playbook's beat drafts get theirs, in place, from its `at` lists.

    A draft's position is the `at` entry its clock time matches; a time since edited away falls back to its
    rank among that beat's drafts of the day. A row whose slot another row holds keeps none (never re-keyed
    onto a slot that went out): it keeps a `legacy` slot of its own.
    """
    rows = db.execute(
        "SELECT draft_id, cohort, beat, day, occurrence_at, target FROM drafts "
        "WHERE playbook_id = ? AND slot IS NULL AND channel NOT IN ('journey', 'welcome')",
        [playbook.id],
    ).fetchall()
    if not rows:
        return
    clocks = {beat.id: [parse_hhmm(text) for text in beat.times] for beat in playbook.model.beats}
    seen: dict[tuple[str, str, int], set[str]] = {}
    for _, cohort, beat, day, occurrence, _ in rows:
        seen.setdefault((cohort, beat, day or 0), set()).add(occurrence)
    ranks = {key: {moment: rank for rank, moment in enumerate(sorted(moments))} for key, moments in seen.items()}
    updates = []
    for draft_id, cohort, beat, day, occurrence, target in rows:
        local = from_db(occurrence).astimezone(playbook.tz).time().replace(second=0, microsecond=0)
        times = clocks.get(beat, [])
        position = times.index(local) if local in times else ranks[(cohort, beat, day or 0)][occurrence]
        updates.append(("\x1f".join(("beat", cohort, beat, str(day or 0), str(position), target)), draft_id))
    with immediate(db):
        db.conn.executemany("UPDATE OR IGNORE drafts SET slot = ? WHERE draft_id = ? AND slot IS NULL", updates)
        # The losers of a collision keep a slot no plan makes, so they are neither planned again nor looked at again.
        db.conn.executemany("UPDATE drafts SET slot = 'legacy' || char(31) || draft_id WHERE draft_id = ? AND slot IS NULL", [(d,) for _, d in updates])


def review(playbook: LoadedPlaybook, db: Any, planner: Planner, now: datetime) -> list[Change]:
    """The pending drafts made under another version of the playbook, against what this version makes of their slots."""
    rows = db.execute(_PENDING, [playbook.id, playbook.content_hash]).fetchall()
    if not rows:
        return []
    by_slot = {row[1]: row for row in rows if row[1] is not None}
    days = {int(row[4] or 0) for row in rows if row[2] not in ("journey", "welcome")}
    steps = any(row[2] in ("journey", "welcome") for row in rows)
    expected: dict[str, Draft] = {}
    if days:
        expected.update((d.slot, d) for d in planner.drafts(days=days, journeys=False) if d.slot in by_slot)
    if steps:
        expected.update((d.slot, d) for d in planner.drafts(beats=False) if d.slot in by_slot)
    guard = Guard(playbook)
    keys = SendKeys(PersonalRule(playbook, planner.renderer))
    changes = []
    for slot, row in by_slot.items():
        draft_id, _, channel, beat, day, target, due_text, text, variant, _, reason, media, send_key = row
        was_due = from_db(due_text).astimezone(playbook.tz)
        draft = expected.get(slot)
        if draft is None:
            changes.append(Change("cancel", beat, int(day or 0), target, was_due, draft_id, was_due, state="skipped", reason="removed"))
            continue
        schedule = guard.schedule(draft.occurrence_at)
        due = schedule.due_at
        if reason in ("retry", *CARRIED) and due < was_due:
            due = was_due  # a retry waits for its backoff, a carried draft for the day it was carried to, whenever the beat now is
        late = None
        if due < now:
            # Moved to a time already past: it goes now, late, but never into quiet hours.
            due, late = now, guard.schedule(now)
            if late.deferred:
                due = late.due_at
        if schedule.skip_reason or draft.holdout or (late is not None and late.skip_reason):
            why = schedule.skip_reason or ("holdout" if draft.holdout else "quiet_hours")
            changes.append(Change("cancel", beat, int(day or 0), target, due, draft_id, was_due, state="skipped", reason=why))
            continue
        planner.render(draft)
        if draft.error is not None:
            changes.append(Change("rerender", beat, int(day or 0), target, due, draft_id, was_due, None, text, "failed", "template_error", str(draft.error)))
            continue
        attached = media_json(draft.attachments)
        if draft.text != text or draft.variant != variant or attached != media:
            key = keys.rekeyed(send_key, channel, beat, draft.variant, draft.text, attached)
            changes.append(
                Change("rerender", beat, int(day or 0), target, due, draft_id, was_due, draft.text, text, reason=reason, variant=draft.variant, attachments=attached, send_key=key)
            )
        elif due != was_due:
            changes.append(Change("retime", beat, int(day or 0), target, due, draft_id, was_due, text, text, reason=reason, variant=variant, attachments=media))
    return sorted(changes, key=lambda c: (c.beat, c.day, c.target))


def apply(db: Any, playbook: LoadedPlaybook, changes: Iterable[Change], now: datetime) -> None:
    """Within the caller's write transaction. Only drafts still pending change: one claimed meanwhile goes out as it was."""
    stamp = to_db(now)
    for change in changes:
        if change.kind == "create" or change.draft_id is None:
            continue
        if change.state == "pending":
            db.execute(
                "UPDATE drafts SET due_at = ?, text = ?, variant = ?, attachments = ?, content_hash = ?, send_key = CASE WHEN ? THEN ? ELSE send_key END "
                "WHERE draft_id = ? AND state = 'pending'",
                [to_db(change.due_at), change.text, change.variant, change.attachments, playbook.content_hash, change.kind == "rerender", change.send_key, change.draft_id],
            )
        else:
            db.execute(
                "UPDATE drafts SET state = ?, reason = ?, error = ?, finished_at = ?, content_hash = ? WHERE draft_id = ? AND state = 'pending'",
                [change.state, change.reason, change.error, stamp, playbook.content_hash, change.draft_id],
            )
            if change.state == "skipped":
                db.execute("UPDATE deliveries SET state = 'skipped' WHERE draft_id = ? AND state = 'pending'", [change.draft_id])


def creations(playbook: LoadedPlaybook, db: Any, planner: Planner, now: datetime) -> list[Change]:
    """Drafts a pass at `now` would record: due by now, their slot not in the ledger."""
    guard = Guard(playbook)
    found: list[Change] = []
    for d in PlanCursor(db).unrecorded(playbook.id, planner.drafts(until=now)):
        schedule = guard.schedule(d.occurrence_at)
        # In the runner's order (Runner._insert): quiet hours, then what the planner decided (group health, not_friend), holdout.
        why = schedule.skip_reason or d.skip or ("holdout" if d.holdout else None)
        state, reason = ("skipped", why) if why else ("pending", None)
        if state == "pending" and guard.missed(schedule.due_at, now):
            state, reason = "skipped", "missed"
        found.append(Change("create", d.beat, d.day, d.target, schedule.due_at, d.draft_id, state=state, reason=reason))
    return found


def upcoming(
    playbook: LoadedPlaybook, db: Any, planner: Planner, now: datetime, changes: Sequence[Change] = (), hours: int = 24
) -> list[tuple[datetime, str, str, int]]:
    """What goes out in the next `hours` once `changes` are made: drafts waiting in the ledger (at their new time,
    without the cancelled ones; one already due goes at the next pass, `now`), and the ones the playbook will make
    whose slot the ledger does not hold yet (a slot sent at its old time does not go again)."""
    end = now + timedelta(hours=hours)
    guard = Guard(playbook)
    revised = {c.draft_id: c for c in changes if c.kind != "create" and c.draft_id is not None}
    sends: Counter[tuple[datetime, str, str]] = Counter()
    rows = db.execute(
        "SELECT draft_id, due_at, beat, channel FROM drafts WHERE +playbook_id = ? AND state = 'pending' AND due_at <= ?",
        [playbook.id, to_db(end + timedelta(days=2))],
    )
    for draft_id, due_text, beat, channel in rows:
        change = revised.get(draft_id)
        if change is not None and change.state != "pending":
            continue
        due = change.due_at if change is not None else from_db(due_text).astimezone(playbook.tz)
        if due <= end:
            sends[(max(due, now).astimezone(playbook.tz), beat, channel)] += 1
    for draft in PlanCursor(db).unrecorded(playbook.id, planner.drafts(since=now + timedelta(microseconds=1), until=end)):
        schedule = guard.schedule(draft.occurrence_at)
        if schedule.skip_reason is None and draft.skip is None and not draft.holdout and schedule.due_at <= end:
            sends[(schedule.due_at.astimezone(playbook.tz), draft.beat, draft.channel)] += 1
    return sorted((due, beat, channel, n) for (due, beat, channel), n in sends.items())


def plan_report(playbook: LoadedPlaybook, db: Any, planner: Planner, now: datetime) -> PlanReport:
    """Everything `siyu plan` shows; reads the store, writes nothing."""
    report = PlanReport(now=now)
    report.changes = creations(playbook, db, planner, now) + review(playbook, db, planner, now)
    report.upcoming = upcoming(playbook, db, planner, now, report.changes)
    return report
