"""Preview: exactly what a day will send, with the decisions the runner would take, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from siyu_cli.dispatch._policy import Budget, Guard
from siyu_cli.dispatch._setup import PlanInputs, plan_inputs
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import read
from siyu_cli.render import Draft


@dataclass
class PreviewItem:
    draft_id: str
    time: str
    due: str
    channel: str
    beat: str
    beat_title: str
    persona: str
    target: str
    category: str | None
    variant: str | None
    holdout: bool
    text: str | None
    error: str | None
    decision: str  # send | defer HH:MM | skip:<reason>
    decision_text: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PreviewResult:
    title: str
    playbook_id: str
    cohort: str
    day: int
    date: date
    phase: str | None
    sample: bool
    items: list[PreviewItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook_id,
            "title": self.title,
            "cohort": self.cohort,
            "day": self.day,
            "date": self.date.isoformat(),
            "phase": self.phase,
            "sample_contact": self.sample,
            "drafts": [item.to_dict() for item in self.items],
        }

    def write(self, folder: Path) -> list[Path]:
        """One Markdown file per draft, for people who review in an editor."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SiyuError(f"{folder}: cannot create folder: {exc.strerror}") from None
        written = []
        for item in self.items:
            name = f"{item.time.replace(':', '')}-{item.beat}-{item.target.replace(':', '-')}-{item.draft_id}.md"
            path = folder / _safe(name)
            header = f"<!-- {item.time} · {item.channel} · {item.beat_title} · {item.persona} → {item.target} · {item.decision_text} -->\n\n"
            try:
                path.write_text(header + (item.text or item.error or "(holdout: no message)") + "\n", encoding="utf-8")
            except OSError as exc:
                raise SiyuError(f"{path}: cannot write: {exc.strerror}") from None
            written.append(path)
        return written


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def preview(path: Path, day: int, *, cohort: str | None = None, contact: str | None = None, db_path: str | None = None) -> PreviewResult:
    playbook = read(path)
    # Welcome sequences of contacts added late run past the last day; nothing runs before day 1.
    if day < 1 or (day > playbook.model.days and not playbook.model.hooks):
        raise UsageError(f"day {day} is outside the campaign (days 1-{playbook.model.days})", hint=f"pick a day from 1 to {playbook.model.days}")
    inputs: PlanInputs = plan_inputs(playbook, db_path, readonly=True)
    person = None
    if contact is not None and inputs.planner.contacts:
        person = next((c for c in inputs.planner.contacts if c["id"] == contact), None)
        if person is None:
            raise SiyuError(f"no contact {contact!r} in the store", hint="list contacts with `siyu contacts list`")
    if cohort is None and person is not None and playbook.model.cohorts and person.get("cohort"):
        cohort = str(person["cohort"])  # the contact's own day N, not the first cohort's
    run = playbook.cohort(cohort)
    guard = Guard(playbook)
    budget = Budget(playbook, inputs.memberships)
    phase = playbook.phase_of(day) if 1 <= day <= playbook.model.days else None
    result = PreviewResult(
        title=playbook.model.title,
        playbook_id=playbook.id,
        cohort=run.id,
        day=day,
        date=run.start.fromordinal(run.start.toordinal() + day - 1),
        phase=phase.title if phase else None,
        sample=inputs.planner.sample_contact,
    )
    drafts = list(inputs.planner.drafts(cohort=run.id, days={day}))
    for draft in drafts:
        if draft.group_id is not None:
            budget.note_group_post(draft.group_id, guard.schedule(draft.occurrence_at).due_at)
    groups = inputs.memberships.get(contact, set()) if contact is not None else set()
    for draft in drafts:
        if contact is not None and draft.contact_id != contact and draft.group_id not in groups:
            continue
        result.items.append(_item(inputs, guard, budget, draft))
    return result


def _item(inputs: PlanInputs, guard: Guard, budget: Budget, draft: Draft) -> PreviewItem:
    inputs.planner.render(draft)
    schedule = guard.schedule(draft.occurrence_at)
    due = schedule.due_at.astimezone(guard.tz)
    decision, text = "send", "sends on time"
    if schedule.skip_reason:
        decision, text = f"skip:{schedule.skip_reason}", "quiet hours 免打扰: skipped"
    elif draft.holdout:
        decision, text = "skip:holdout", "holdout 对照组: recorded, not sent"
    elif draft.error is not None:
        decision, text = "skip:template_error", "template error: not sent"
    else:
        refusal = budget.take(draft, schedule.due_at)
        if refusal:
            decision, text = f"skip:{refusal}", f"limit 限频: {refusal.split(':', 1)[1]} reached, not sent"
        elif schedule.deferred:
            when = f"{due:%H:%M}" if due.date() == draft.occurrence_at.astimezone(guard.tz).date() else f"{due:%m-%d %H:%M} (next day)"
            decision, text = f"defer {due:%H:%M}", f"quiet hours 免打扰: deferred to {when}"
    return PreviewItem(
        draft_id=draft.draft_id,
        time=draft.occurrence_at.astimezone(guard.tz).strftime("%H:%M"),
        due=due.isoformat(),
        channel=draft.channel,
        beat=draft.beat,
        beat_title=draft.beat_title,
        persona=draft.persona_name,
        target=draft.target_label,
        category=draft.category,
        variant=draft.variant,
        holdout=draft.holdout,
        text=draft.text,
        error=str(draft.error) if draft.error else None,
        decision=decision,
        decision_text=text,
    )
