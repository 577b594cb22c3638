"""Preview: exactly what a day will send, with the decisions the runner would take, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from siyu_cli._time import utcnow
from siyu_cli.dispatch._policy import Budget, Guard
from siyu_cli.dispatch._setup import PlanInputs, plan_inputs
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.journeys import step_due
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
class StepPosition:
    step: str
    due: str
    status: str  # sent | skipped(reason) | pending | … from the ledger; else next | upcoming | due | exited | not in audience


@dataclass
class JourneyPosition:
    """Where one contact is in one run of a journey or welcome sequence: what it got and what comes next."""

    journey: str
    title: str
    kind: str
    entered_at: str
    entry: str
    exited: str | None
    steps: list[StepPosition] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "steps"}, "steps": [dict(s.__dict__) for s in self.steps]}


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
    journeys: list[JourneyPosition] = field(default_factory=list)

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
            "journeys": [position.to_dict() for position in self.journeys],
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
    if day < 1:
        raise UsageError(f"day {day} is outside the campaign (days 1-{playbook.model.days})", hint="campaign days start at 1")
    # Events up to the end of the day shown count (tags, entries, exits); later ones are not known yet on that day.
    shown = playbook.cohort(cohort).start + timedelta(days=day)
    as_of = datetime.combine(shown, time(0, 0), tzinfo=playbook.tz)
    inputs: PlanInputs = plan_inputs(playbook, db_path, readonly=True, as_of=as_of)
    reach = _last_day(playbook, inputs.db, playbook.cohort(cohort))
    if day > reach:
        extra = f"; welcome and journey steps reach day {reach}" if reach > playbook.model.days else ""
        raise UsageError(f"day {day} is outside the campaign (days 1-{playbook.model.days}{extra})", hint=f"pick a day from 1 to {reach}")
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
    if person is not None:
        result.journeys = positions(inputs, person, min(as_of, utcnow()))
    return result


def _last_day(playbook: Any, db: Any, cohort: Any) -> int:
    """The last day anything can fall on: the campaign's, or a step of a contact who enters on its last day or later."""
    from siyu_cli._time import from_db, parse_duration

    model = playbook.model
    delays = [parse_duration(s.after) for h in model.hooks for s in h.welcome] + [parse_duration(s.after) for j in model.journeys for s in j.steps]
    if not delays:
        return int(model.days)
    last = int(model.days)
    if db is not None:
        kinds = sorted({"friend_added"} | {j.enter.event for j in model.journeys})
        row = db.execute(f"SELECT MAX(at) FROM events WHERE type IN ({', '.join('?' * len(kinds))})", kinds).fetchone()
        if row and row[0]:
            last = max(last, (from_db(row[0]).astimezone(playbook.tz).date() - cohort.start).days + 1)
    return last + max(delays).days + 1


def positions(inputs: PlanInputs, person: dict[str, Any], now: datetime) -> list[JourneyPosition]:
    """Each run of the contact: entered when, exited or not, and every step's state in the ledger or what comes next."""
    planner = inputs.planner
    planner.prepare()
    tz = planner.playbook.tz
    first = planner.playbook.model.personas[0].id
    cohort = planner.playbook.cohort(planner.cohort_of(person))
    found: list[JourneyPosition] = []
    for run in planner.runs.get(str(person["id"]), []):
        route = run.route
        persona = planner.book.persona_of(run, person, planner.account_personas, first)
        exited = f"{run.exit_reason} at {run.exit_at.astimezone(tz):%Y-%m-%d %H:%M}" if run.exit_at is not None else None
        position = JourneyPosition(route.id, route.title, route.kind, f"{run.entered_at.astimezone(tz):%Y-%m-%d %H:%M}", run.entry[1], exited)
        drafts = []
        for step in route.steps:
            due = step_due(run.entered_at, step, tz)
            drafts.append((step, due, planner._step_draft(cohort, run, step, person, persona, due, (due.date() - cohort.start).days + 1)))
        states = _ledger_states(inputs.db, [d.draft_id for _, _, d in drafts])
        upcoming = False
        for step, due, draft in drafts:
            status = states.get(draft.draft_id)
            if status is None:
                if run.exited_by(due):
                    status = "exited"
                elif route.audience is not None and not route.audience.matches(planner.tags_at(person, min(due, now))):
                    status = "not in audience"
                elif due > now:
                    status = "upcoming" if upcoming else "next"
                    upcoming = True
                else:
                    status = "due"
            position.steps.append(StepPosition(step.id, f"{due:%Y-%m-%d %H:%M}", status))
        found.append(position)
    return found


def _ledger_states(db: Any, ids: list[str]) -> dict[str, str]:
    if db is None or not ids:
        return {}
    rows = db.execute(f"SELECT draft_id, state, reason FROM drafts WHERE draft_id IN ({', '.join('?' * len(ids))})", ids)
    return {draft_id: f"{state}({reason})" if state == "skipped" and reason else state for draft_id, state, reason in rows}


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
