"""Preview: exactly what a day will send, with the decisions the runner would take, writing nothing."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from siyu_cli._time import from_db, utcnow
from siyu_cli.dispatch._policy import BUDGETED, Budget, Guard
from siyu_cli.dispatch._setup import PlanInputs, plan_inputs
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.journeys import step_due
from siyu_cli.playbook import read
from siyu_cli.playbook._calendar import Day
from siyu_cli.render import NOT_FRIEND, Draft


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
    decision: str  # send | defer HH:MM | skip:<reason> | preview (an --all-variants extra, never sent)
    decision_text: str
    persona_id: str = ""
    account: str | None = None
    contact: str | None = None
    group: str | None = None
    sample: bool = False
    stats: str | None = None  # "sample": rendered with sample stats (the store has none); see text_without_stats
    text_without_stats: str | None = None
    extra: bool = False  # --all-variants: a variant this contact does not get, shown for review only
    attachments: list[str] = field(default_factory=list)  # what goes with the text: 图片 image: file …

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def pending(self) -> bool:
        """What the runner would send: on time or after quiet hours."""
        return not self.extra and (self.decision == "send" or self.decision.startswith("defer"))


@dataclass
class BeatCount:
    """One row of the summary: drafts of a beat (and variant) by what the runner would decide."""

    beat: str
    title: str
    channel: str
    variant: str | None
    drafts: int = 0
    pending: int = 0
    deferred: int = 0
    holdout: int = 0
    quiet: int = 0
    limit: int = 0
    error: int = 0
    not_friend: int = 0  # 1v1 to a contact who deleted the account (friend_deleted): recorded skipped(not_friend)
    other: int = 0  # skipped for another reason (e.g. group health)


@dataclass
class Touches:
    """Messages reaching each contact that day (1v1, journey and welcome drafts, and group posts in their groups)."""

    contacts: int
    max: int
    p95: int
    top: str | None
    cap: int | None
    at_cap: int


@dataclass
class AccountLoad:
    """1v1 drafts (private beats and journey steps) an account sends that day, against its cap."""

    persona: str
    name: str
    account: str | None
    pending: int
    refused: int
    cap: int | None


@dataclass
class Summary:
    beats: list[BeatCount]
    touches: Touches
    accounts: list[AccountLoad]
    extra: int  # --all-variants drafts, not counted above
    capacity: list[tuple[str, str, Any]] = field(default_factory=list)  # (persona, name, its DayLoad that day): with --db and capacity:
    per_contact_cap: int | None = None  # limits.per_contact_per_day, which the runner applies before capacity (the play does not)

    def to_dict(self) -> dict[str, Any]:
        return {
            "beats": [dict(row.__dict__) for row in self.beats],
            "touches_per_contact": dict(self.touches.__dict__),
            "private_per_account": [dict(row.__dict__) for row in self.accounts],
            "capacity": [{"persona": persona, **{k: (v.isoformat() if k == "day" else v) for k, v in load.__dict__.items()}} for persona, _, load in self.capacity],
            "all_variants_extra": self.extra,
        }


@dataclass
class PreviewPanel:
    """What a reviewer reads once: a draft, or one group post identical in several groups."""

    item: PreviewItem
    groups: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return "groups: " + ", ".join(self.groups) if len(self.groups) > 1 else self.item.target


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
    summary: Summary | None = None
    calendar: Day | None = None  # the date on China's calendar; None where its year has no schedule

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook_id,
            "title": self.title,
            "cohort": self.cohort,
            "day": self.day,
            "date": self.date.isoformat(),
            "calendar": self.calendar.kind if self.calendar else None,
            "holiday": (self.calendar.name or None) if self.calendar else None,
            "phase": self.phase,
            "sample_contact": self.sample,
            "summary": self.summary.to_dict() if self.summary else None,
            "drafts": [item.to_dict() for item in self.items],
            "journeys": [position.to_dict() for position in self.journeys],
        }

    def panels(self) -> list[PreviewPanel]:
        """Drafts in time order, a group post that reads the same in several groups once, with their names."""
        found: list[PreviewPanel] = []
        same: dict[tuple[Any, ...], PreviewPanel] = {}
        for item in self.items:
            if item.channel != "group":
                found.append(PreviewPanel(item))
                continue
            key = (item.time, item.beat, item.persona_id, item.text, item.error, item.decision)
            panel = same.get(key)
            if panel is None:
                panel = same[key] = PreviewPanel(item)
                found.append(panel)
            panel.groups.append(item.target)
        return found

    def write(self, folder: Path) -> list[Path]:
        """One Markdown file per panel under FOLDER/DATE/, so the drafts of two days never mix."""
        folder = folder / self.date.isoformat()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SiyuError(f"{folder}: cannot create folder: {exc.strerror}") from None
        written = []
        for panel in self.panels():
            item = panel.item
            target = f"{len(panel.groups)}-groups" if len(panel.groups) > 1 else item.target.replace(":", "-")
            variant = f"-{item.variant}" if item.variant else ""
            path = folder / _safe(f"{item.time.replace(':', '')}-{item.beat}-{target}{variant}-{item.draft_id}.md")
            header = f"<!-- {self.date} {item.time} · {item.channel} · {item.beat_title} · {item.persona} → {panel.target} · {item.decision_text} -->\n\n"
            body = item.text or item.error or "(holdout: no message)"
            if item.text_without_stats is not None:
                body = f"{SAMPLE_STATS_NOTE}\n\n{body}\n\n---\n{NO_STATS_NOTE}\n\n{item.text_without_stats}"
            try:
                path.write_text(header + body + "\n", encoding="utf-8")
            except OSError as exc:
                raise SiyuError(f"{path}: cannot write: {exc.strerror}") from None
            written.append(path)
        return written


SAMPLE_STATS_NOTE = "with sample stats 示例数据 (the store has none yet: 示例学员一 and 示例学员二 checked in, joined and ordered):"
NO_STATS_NOTE = "with no stats yet 无数据时:"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def preview(
    path: Path, day: int, *, cohort: str | None = None, contact: str | None = None, db_path: str | None = None, all_variants: bool = False
) -> PreviewResult:
    """Day N's drafts with the runner's decisions, and a summary of them.

    With no contacts in the store every sample draft gets its own sample contact (one per welcome
    step, journey step and variant) and data-driven templates render with sample stats and without."""
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
    when = run.start.fromordinal(run.start.toordinal() + day - 1)
    result = PreviewResult(
        title=playbook.model.title,
        playbook_id=playbook.id,
        cohort=run.id,
        day=day,
        date=when,
        phase=phase.title if phase else None,
        sample=inputs.planner.sample_contact,
        calendar=playbook.calendar.known(when),
    )
    drafts = list(inputs.planner.drafts(cohort=run.id, days={day}))
    if inputs.planner.sample_contact:
        drafts = _samples(inputs.planner, drafts)
    for draft in drafts:
        if draft.group_id is not None and draft.skip is None:
            budget.note_group_post(draft.group_id, guard.schedule(draft.occurrence_at).due_at)
    groups = inputs.memberships.get(contact, set()) if contact is not None else set()
    shown: set[tuple[Any, ...]] = set()
    for draft in drafts:
        if contact is not None and draft.contact_id != contact and draft.group_id not in groups:
            continue
        result.items.append(_item(inputs, guard, budget, draft))
        key = (draft.beat, draft.occurrence_at if draft.channel == "private" else None)
        if all_variants and not inputs.planner.sample_contact and draft.variant is not None and key not in shown:
            shown.add(key)
            for name in inputs.planner.variants_of(draft):
                if name != draft.variant:
                    result.items.append(_item(inputs, guard, budget, inputs.planner.as_contact(draft, str(draft.contact_id), name), extra=True))
    if person is not None:
        result.journeys = positions(inputs, person, min(as_of, utcnow()))
    result.summary = summarize(result.items, playbook, inputs.memberships)
    if not inputs.planner.sample_contact and any(p.capacity for p in playbook.model.personas):
        # The drafts above are each shown as if its day had room; capacity decides them when they fall due.
        from siyu_cli.dispatch._capacity import CapacityPlay, DayLoad

        play = CapacityPlay(playbook, inputs.planner)
        names = {p.id: p.name for p in playbook.model.personas}
        result.summary.capacity = [(persona, names[persona], days.get(when, DayLoad(when))) for persona, days in sorted(play.days.items())]
        result.summary.per_contact_cap = playbook.model.limits.per_contact_per_day
    return result


def _samples(planner: Any, drafts: list[Draft]) -> list[Draft]:
    """One sample contact per welcome step, journey step, 1v1 beat and variant: every variant renders, and no two
    samples share a contact's daily budget (they stand for different people)."""
    found: list[Draft] = []
    for draft in drafts:
        if not draft.sample:
            found.append(draft)
            continue
        names = planner.variants_of(draft)
        if not names:
            found.append(planner.as_contact(draft, f"sample:{draft.beat}"))
        found.extend(planner.as_contact(draft, f"sample:{draft.beat}:{name}", name) for name in names)
    return found


def summarize(items: list[PreviewItem], playbook: Any, memberships: dict[str, set[str]]) -> Summary:
    """Drafts per beat, channel, variant and decision; touches per contact; each account's 1v1 load against its cap."""
    limits = playbook.model.limits
    rows: dict[tuple[str, str | None], BeatCount] = {}
    touches: Counter[str] = Counter()
    members: dict[str, list[str]] = {}
    for cid, groups in memberships.items():
        for group in groups:
            members.setdefault(group, []).append(cid)
    loads: dict[str, AccountLoad] = {}
    counted = [item for item in items if not item.extra]
    for item in counted:
        row = rows.setdefault((item.beat, item.variant), BeatCount(item.beat, item.beat_title, item.channel, item.variant))
        row.drafts += 1
        kind = item.decision
        if item.pending:
            row.pending += 1
            row.deferred += kind.startswith("defer")
        elif kind == "skip:holdout":
            row.holdout += 1
        elif kind == "skip:quiet_hours":
            row.quiet += 1
        elif kind.startswith("skip:limit:"):
            row.limit += 1
        elif kind == "skip:template_error":
            row.error += 1
        elif kind == f"skip:{NOT_FRIEND}":
            row.not_friend += 1
        else:
            row.other += 1
        if item.pending and item.contact is not None:
            touches[item.contact] += 1
        elif item.pending and item.group is not None:
            touches.update(members.get(item.group, ()))
        if item.channel in BUDGETED and item.contact is not None:
            load = loads.setdefault(item.persona_id, AccountLoad(item.persona_id, item.persona, item.account, 0, 0, limits.private_per_account_per_day))
            load.pending += item.pending
            load.refused += kind == "skip:limit:private_per_account_per_day"
    values = sorted(touches.values())
    top = touches.most_common(1)[0] if touches else None
    cap = limits.per_contact_per_day
    reached = Touches(
        contacts=len(values),
        max=values[-1] if values else 0,
        p95=values[math.ceil(0.95 * len(values)) - 1] if values else 0,
        top=top[0] if top else None,
        cap=cap,
        at_cap=sum(1 for v in values if cap is not None and v >= cap),
    )
    return Summary(list(rows.values()), reached, sorted(loads.values(), key=lambda a: a.persona), len(items) - len(counted))


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
    cohort = planner.playbook.cohort(planner.cohort_of(person))
    found: list[JourneyPosition] = []
    for run in planner.runs.get(str(person["id"]), []):
        route = run.route
        persona = planner.book.persona_of(run, person)
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
                elif planner.not_friend(person, min(due, now), persona) is not None:
                    status = "not a friend"
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


def _item(inputs: PlanInputs, guard: Guard, budget: Budget, draft: Draft, *, extra: bool = False) -> PreviewItem:
    planner = inputs.planner
    stats, without = _render(planner, draft)
    schedule = guard.schedule(draft.occurrence_at)
    due = schedule.due_at.astimezone(guard.tz)
    decision, text = "send", "sends on time"
    if extra:
        decision, text = "preview", f"--all-variants: variant {draft.variant} as this contact would read it; the runner sends its own variant"
    elif schedule.skip_reason:
        decision, text = f"skip:{schedule.skip_reason}", "quiet hours 免打扰: skipped"
    elif draft.skip == NOT_FRIEND:
        decision, text = f"skip:{NOT_FRIEND}", f"not a friend 已删好友: {draft.skip_why}; recorded skipped({NOT_FRIEND}), not sent until a re-add"
    elif draft.skip is not None:
        decision, text = f"skip:{draft.skip}", f"group health 群健康: {health_label(draft.skip)} ({draft.skip_why}), not in the beat's health list"
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
            person = planner.by_id.get(draft.contact_id) if draft.contact_id is not None else None
            gone = planner.not_friend(person, schedule.due_at, draft.persona) if person is not None else None
            if gone is not None:
                # The runner checks again when a deferred 1v1 comes due: a delete in between skips it then.
                deleted = from_db(gone).astimezone(guard.tz)
                decision = f"skip:{NOT_FRIEND}"
                text = (
                    f"not a friend 已删好友: deferred to {when} by quiet hours, and the contact deleted the account at {deleted:%Y-%m-%d %H:%M} "
                    f"(friend_deleted) before then; skipped({NOT_FRIEND}) when it comes due"
                )
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
        persona_id=draft.persona,
        account=draft.account,
        contact=draft.contact_id,
        group=draft.group_id,
        sample=draft.sample,
        stats=stats,
        text_without_stats=without,
        extra=extra,
        attachments=[media.describe() for media in draft.attachments],
    )


def health_label(reason: str) -> str:
    from siyu_cli.health import LABELS

    return LABELS.get(reason.partition(":")[2], reason)


def _render(planner: Any, draft: Draft) -> tuple[str | None, str | None]:
    """Render the draft; with no contacts in the store a data-driven one renders with sample stats and again without."""
    if not planner.sample_contact or draft.holdout or draft.content is None or not _needs_stats(planner, draft):
        planner.render(draft)
        return None, None
    from dataclasses import replace

    from siyu_cli.render._context import sample_stats

    bare = planner.render(replace(draft, text=None, error=None), stats=sample_stats(draft.occurrence_at, empty=True))
    planner.render(draft, stats=sample_stats(draft.occurrence_at))
    return "sample", bare.text if bare.error is None else str(bare.error)


def _needs_stats(planner: Any, draft: Draft) -> bool:
    try:
        return bool(planner.renderer.needs_stats(draft.content))
    except SiyuError:
        return False  # it does not compile: render() reports the failure
