"""Every occurrence of a campaign: which beat, when, by whom, to which target, with what content."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from siyu_cli._time import parse_hhmm, wall_clock
from siyu_cli.playbook import Beat, CohortRun, LoadedPlaybook
from siyu_cli.playbook._calendar import Day
from siyu_cli.timeline._mix import Rotation, choose_categories


@dataclass(frozen=True)
class Content:
    """A template file name or inline text, with a label for error messages."""

    template: str | None
    text: str | None
    label: str
    attachments: tuple[Any, ...] | None = None  # a pool entry's own (playbook Attachment); None: the beat's

    @property
    def name(self) -> str:
        return self.template or self.label


@dataclass(frozen=True)
class Occurrence:
    """One beat at one time for one target. Private beats carry their audience, not each contact."""

    cohort: str
    day: int
    date: date
    at: datetime
    beat: Beat
    channel: str
    persona: str
    target_kind: str  # group | persona | audience
    target_id: str
    category: str | None
    content: Content | None  # None for variant beats: the variant picks it per contact
    position: int = 0  # which of the beat's `at` times: with the day, what a draft is (a moved time is the same slot)

    @property
    def target(self) -> str:
        return f"{self.target_kind}:{self.target_id}"


def pool_entries(playbook: LoadedPlaybook, beat: Beat, category: str, search: list[Path]) -> list[Content]:
    """A pool's templates: a list, or a glob looked up along the template search path."""
    spec = (beat.pools or {})[category]
    path = f"beats.{beat.id}.pools.{category}"
    if isinstance(spec, str):
        if any(ch in spec for ch in "*?["):
            for root in search:
                found = sorted(p for p in root.glob(spec) if p.is_file())
                if found:
                    return [Content(str(p.relative_to(root)).replace("\\", "/"), None, path) for p in found]
            return []
        return [Content(spec, None, path)]
    entries: list[Content] = []
    for index, item in enumerate(spec):
        if isinstance(item, str):
            entries.append(Content(item, None, f"{path}[{index}]"))
        else:
            label = f"<inline {path}[{index}]>" if item.template is None else f"{path}[{index}]"
            entries.append(Content(item.template, item.text, label, tuple(item.attachments) or None))
    return entries


def calendar_days(playbook: LoadedPlaybook, cohort: CohortRun) -> tuple[dict[int, Day], list[int]]:
    """Each campaign day's place on China's calendar (holiday, weekend, workday), and the years it cannot tell.

    For display: a day whose kind needs a year with no holiday schedule is left out, never guessed."""
    days: dict[int, Day] = {}
    unknown: set[int] = set()
    for day in range(1, playbook.model.days + 1):
        when = cohort.start + timedelta(days=day - 1)
        gap = playbook.calendar.gap(when)
        if gap is None:
            days[day] = playbook.calendar.days[when]
        else:
            unknown.add(gap.year)
    return days, sorted(unknown)


def occurrences(
    playbook: LoadedPlaybook,
    cohort: CohortRun,
    search: list[Path],
    *,
    days: set[int] | None = None,
) -> Iterator[Occurrence]:
    """Occurrences in time order. The mix is computed over the whole campaign so day N matches a full run."""
    model = playbook.model
    personas = [p.id for p in model.personas]
    group_persona = {g.id: g.persona for g in model.groups}
    mix_plan = {beat.id: _mix_plan(playbook, beat, cohort, search, personas) for beat in model.beats if beat.mix}
    beat_days = playbook.beat_days_of(cohort)
    found: list[Occurrence] = []
    for day in range(1, model.days + 1):
        if days is not None and day not in days:
            continue
        when = cohort.start + timedelta(days=day - 1)
        for beat in model.beats:
            if day not in beat_days[beat.id]:
                continue
            for position, clock in enumerate(beat.times):
                at = wall_clock(when, parse_hhmm(clock), playbook.tz)
                base = dict(cohort=cohort.id, day=day, date=when, at=at, beat=beat, channel=beat.channel, position=position)
                content = None if beat.variants else Content(beat.template, beat.text, f"<inline beats.{beat.id}.text>")
                if beat.channel == "group":
                    targets = [g for g in (beat.group_ids or cohort.group_ids) if g in cohort.group_ids or not model.cohorts]
                    for group in targets:
                        persona = beat.persona or group_persona.get(group) or personas[0]
                        found.append(Occurrence(**base, persona=persona, target_kind="group", target_id=group, category=None, content=content))
                elif beat.channel == "private":
                    persona = beat.persona or personas[0]
                    found.append(Occurrence(**base, persona=persona, target_kind="audience", target_id=beat.audience or "", category=None, content=content))
                else:
                    for persona in [beat.persona] if beat.persona else personas:
                        category, mixed = (None, content)
                        if beat.id in mix_plan:
                            category, mixed = mix_plan[beat.id].get((persona, at), (None, None))
                        found.append(Occurrence(**base, persona=persona, target_kind="persona", target_id=persona, category=category, content=mixed))
    found.sort(key=lambda o: (o.at, o.beat.id, o.target))
    # Two times the clocks skip can land on one instant; the ledger holds one draft per instant, so does the timeline.
    seen: set[tuple[datetime, str, str]] = set()
    unique = []
    for occurrence in found:
        key = (occurrence.at, occurrence.beat.id, occurrence.target)
        if key not in seen:
            seen.add(key)
            unique.append(occurrence)
    return iter(unique)


def _mix_plan(
    playbook: LoadedPlaybook, beat: Beat, cohort: CohortRun, search: list[Path], personas: list[str]
) -> dict[tuple[str, datetime], tuple[str | None, Content | None]]:
    """Categories per post, range by range, and the template each post rotates to."""
    plan: dict[tuple[str, datetime], tuple[str | None, Content | None]] = {}
    pools = {name: pool_entries(playbook, beat, name, search) for name in beat.pools or {}}
    for persona in [beat.persona] if beat.persona else personas:
        rotation = Rotation({name: list(range(len(entries))) for name, entries in pools.items() if entries})
        for entry in beat.mix or []:
            entry_days = [d for d in playbook.days_of(entry.days) if d in playbook.beat_days_of(cohort)[beat.id]]
            slots = [
                wall_clock(cohort.start + timedelta(days=d - 1), parse_hhmm(clock), playbook.tz)
                for d in entry_days
                for clock in sorted(beat.times)
            ]
            for slot, category in zip(slots, choose_categories(entry.ratio, len(slots)), strict=True):
                if (persona, slot) in plan:
                    continue
                if not pools.get(category):
                    plan[(persona, slot)] = (category, None)
                    continue
                index, _ = rotation.next(category)
                plan[(persona, slot)] = (category, pools[category][index])
    return plan
