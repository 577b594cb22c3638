"""`siyu plan capacity`: how many operators a campaign of N package cards needs, day by day, and where the backlog peaks.

Expected values, not a draw, so the table can be checked by hand. With simulate's figures
(siyu_cli.report._simulate):

- The N cards go out evenly over the first third of the campaign (1-14 days, ENTRY), spread over the
  package-card hooks (else every hook) alike, like simulate's entries.
- A card is scanned 2-7 days after it was sent (DELIVERY): in whole days, a card sent on day e adds
  on days e+2 … e+6, a fifth each.
- The add rate (引流率): `--rates ADDED=R` for the funnel's friend_added stage (`added` when it has
  none), else the funnel's own
  rates from its first stage to that one when it starts from card_sent (its targets, as simulate
  reads them), else ADD_RATE 15%, the seeds' package-card figure (引流率 >15%).
- A contact's tier: a tier tag among its hook's tags, else 半精准粉 for a form hook, else simulate's
  mix 25% precise, 35% semi-precise, 40% general.
- The 1v1 work of a contact (what siyu_cli.dispatch._capacity counts): each step of the journeys it
  enters by friend_added (through its hook, when the journey names one) whose audience its tags at
  the add match, on the add day plus the whole days of the step's `after`; and every occurrence,
  from the day after its add, of a private beat whose template reads `contact` and whose audience
  it matches. A contact handled twice a day is one fan that day. Exits (an order ending a journey)
  are not taken off: the figure is the most work the campaign can bring.
- Cost: 1 / capacity of its tier per fan a day (the persona's `capacity`, else 20 / 30 / 40), summed
  into operator-days. Operators needed on a day: that, rounded up. Backlog: with the operators the
  playbook has (each persona's `capacity.operators`, 1 for a persona without; or `--operators`),
  work beyond a day's operators waits for the next day, as the runner carries drafts over.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from siyu_cli._time import parse_duration
from siyu_cli.errors import UsageError
from siyu_cli.playbook import LoadedPlaybook, parse_tags
from siyu_cli.playbook._model import Capacity, Hook

ADD_RATE = 0.15  # the seeds: package-card 引流率 >15%
ADD_DAYS = (2, 3, 4, 5, 6)  # DELIVERY 2-7 days after the card, in whole days
TIER_OF = {"精准粉": "precise", "半精准粉": "semi", "泛粉": "general"}


@dataclass
class StaffDay:
    day: int
    date: date
    cards: float = 0.0
    adds: float = 0.0
    fans: dict[str, float] = field(default_factory=lambda: {"precise": 0.0, "semi": 0.0, "general": 0.0})
    work: float = 0.0  # operator-days
    needed: int = 0
    backlog: float = 0.0  # operator-days waiting at the end of the day

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day, "date": self.date.isoformat(), "cards": round(self.cards, 2), "adds": round(self.adds, 2),
            "fans": {k: round(v, 2) for k, v in self.fans.items()}, "operator_days": round(self.work, 3),
            "operators_needed": self.needed, "backlog_operator_days": round(self.backlog, 3),
        }  # fmt: skip


@dataclass
class StaffPlan:
    cards: int
    add_rate: float
    add_rate_source: str
    operators: int
    days: list[StaffDay]
    operators_source: str = "the playbook has"

    def verdict(self) -> str:
        """What the table comes to, in a sentence: the busiest day's need, and whether the operators keep up."""
        busiest = max(self.days, key=lambda d: (d.needed, -d.day), default=None)
        if busiest is None or busiest.needed == 0:
            return "no day has 1v1 work that needs a person (no journey step, and no private beat whose text names the contact, reaches these contacts): nothing to staff"
        need = f"the busiest day (day {busiest.day}, {busiest.date}) needs {busiest.needed} operator(s) to do its 1v1 work the same day"
        staff = f"the {self.operators} operator(s) {self.operators_source}"
        peak = self.peak
        if peak is None:
            return f"{need}; {staff} keep up: no backlog"
        return f"{need}; with {staff}, 1v1 work carries over and the backlog peaks on day {peak.day} ({peak.date}) at {peak.backlog:.2f} operator-days"

    @property
    def peak(self) -> StaffDay | None:
        worst = max(self.days, key=lambda d: (d.backlog, -d.day), default=None)
        return worst if worst is not None and worst.backlog > 1e-9 else None

    @property
    def most(self) -> int:
        return max((d.needed for d in self.days), default=0)

    def to_dict(self) -> dict[str, Any]:
        peak = self.peak
        return {
            "cards": self.cards, "add_rate": self.add_rate, "add_rate_source": self.add_rate_source, "operators": self.operators, "operators_source": self.operators_source,
            "operators_needed_max": self.most, "backlog_peak": peak.to_dict() if peak else None, "days": [d.to_dict() for d in self.days],
        }  # fmt: skip


def _add_rate(playbook: LoadedPlaybook, given: dict[str, float]) -> tuple[float, str]:
    """The add rate and where it comes from; a --rates stage that cannot change the table is an error, not ignored."""
    from siyu_cli.report._simulate import by_stage, step_rates

    funnel = playbook.model.funnel
    stages = funnel.stages if funnel else []
    added = next((s for s in stages if s.event == "friend_added"), None)
    key = added.id if added is not None else "added"  # without a friend_added stage, `added` names the add rate
    aliases = {"friend_added": key}
    rates = by_stage(stages, given, aliases)
    named = {next(iter(by_stage(stages, {name: 0.0}, aliases))): name for name in given}  # each stage as the command line named it
    unknown = sorted(set(rates) - {s.id for s in stages} - {key})
    if unknown:
        events = ", ".join(dict.fromkeys(s.event for s in stages))
        raise UsageError(f"--rates {unknown[0]}: no such funnel stage", hint=f"stages: {', '.join(s.id for s in stages) or '(no funnel)'}" + (f", or their events ({events})" if events else "") + f"; the add rate is {key}")
    through_card = funnel is not None and added is not None and stages[0].event == "card_sent" and added is not stages[0]
    counted = {key} | ({s.id for s in stages[1 : stages.index(added) + 1]} if through_card and added is not None else set())
    ignored = sorted(set(rates) - counted, key=[s.id for s in stages].index)
    if ignored:
        stage = ignored[0]
        raise UsageError(
            f"--rates {named.get(stage, stage)}: plan capacity works from the add rate ({key}){' and the stages from the card to it' if through_card else ''} alone; "
            f"{stage} changes no figure here (the 1v1 work counted is every step a contact can get: exits are not taken off)",
            hint=f"drop {named.get(stage, stage)}=…; give the add rate as {key}=RATE",
        )
    if key in rates:
        if not 0 < rates[key] <= 1:
            raise UsageError(f"--rates {named.get(key, key)}={rates[key]:g}: an add rate is above 0 and at most 1", hint=f"write {key}=0.15 or {key}=15%")
        return rates[key], f"--rates {named.get(key, key)}"
    if through_card:
        step, _ = step_rates(funnel, rates)
        share, index = 1.0, stages.index(added)
        for stage in stages[1 : index + 1]:
            if not stage.optional:
                share *= step[stage.id]
        return share, "funnel targets"
    return ADD_RATE, "default 15% (the seeds' package-card add rate, 引流率)"


def _tier_mix(hook: Hook | None) -> list[tuple[str, float]]:
    from siyu_cli.report._simulate import _hook_tier

    options = _hook_tier(hook)
    total = sum(w for _, w in options)
    return [(TIER_OF[t], w / total) for t, w in options]


def _work_days(playbook: LoadedPlaybook, hook: Hook | None, tier_tag: str, rule: Any, persona: str | None = None) -> tuple[set[int], set[int]]:
    """When a contact through `hook` with this tier needs a person: days after its add (0 = the add day) from
    journey steps, and campaign days of private beats that name the contact (those after its add day count);
    with `persona`, only the journeys that persona sends (the journey's persona, else the hook's)."""
    model = playbook.model
    tags = set(hook.tags if hook else ()) | {tier_tag}
    after: set[int] = set()
    for journey in model.journeys:
        if journey.enter.event != "friend_added":
            continue
        if persona is not None and (journey.persona or (hook.persona if hook else None) or persona) != persona:
            continue
        if journey.enter.hook and (hook is None or journey.enter.hook not in (hook.id, hook.code)):
            continue
        if journey.audience and not parse_tags(model.segments.get(journey.audience, journey.audience)).matches(tags):
            continue
        after.update(parse_duration(step.after).days for step in journey.steps)
    on: set[int] = set()
    for beat in model.beats:
        if beat.channel == "private" and rule("private", beat.id, None) and playbook.audience(beat).matches(tags):
            on.update(playbook.beat_days_of(playbook.cohorts[0])[beat.id])
    return after, on


def staffing(playbook: LoadedPlaybook, cards: int, rates: dict[str, float] | None = None, operators: int | None = None) -> StaffPlan:
    """The day-by-day table (see the module's docstring)."""
    from siyu_cli.dispatch._capacity import PersonalRule
    from siyu_cli.render import Renderer

    if cards < 1:
        raise UsageError("--cards must be at least 1")
    model = playbook.model
    rate, source = _add_rate(playbook, rates or {})
    rule = PersonalRule(playbook, Renderer(playbook))
    start = playbook.cohorts[0].start
    spread = min(max(model.days // 3, 1), 14)
    hooks: list[Hook | None] = [h for h in model.hooks if h.kind == "package_card"] or list(model.hooks) or [None]
    personas = {p.id: p for p in model.personas}
    staff = operators if operators is not None else sum(p.capacity.operators if p.capacity else 1 for p in model.personas)
    cards_on: dict[int, float] = defaultdict(float)
    fans: dict[tuple[int, str], float] = defaultdict(float)
    adds_on: dict[int, float] = defaultdict(float)
    work: dict[int, float] = defaultdict(float)
    for sent in range(1, spread + 1):
        cards_on[sent] += cards / spread
    for hook in hooks:
        persona = personas.get(hook.persona or "") if hook else None
        capacity = (persona.capacity if persona else None) or Capacity()
        for tier, share in _tier_mix(hook):
            after, on = _work_days(playbook, hook, next(t for t, w in TIER_OF.items() if w == tier), rule)
            cost = 1 / getattr(capacity, tier)
            for sent in range(1, spread + 1):
                for lag in ADD_DAYS:
                    added = sent + lag
                    count = cards / spread / len(hooks) * rate * share / len(ADD_DAYS)
                    adds_on[added] += count
                    busy = {added + o for o in after} | {d for d in on if d > added}
                    for day in busy:
                        fans[(day, tier)] += count
                        work[day] += count * cost
    last = max([*work, *adds_on, spread], default=1)
    table: list[StaffDay] = []
    backlog = 0.0
    for day in range(1, last + 1):
        row = StaffDay(day, start + timedelta(days=day - 1), cards_on.get(day, 0.0), adds_on.get(day, 0.0))
        for tier in row.fans:
            row.fans[tier] = fans.get((day, tier), 0.0)
        row.work = work.get(day, 0.0)
        row.needed = math.ceil(row.work - 1e-9)
        backlog = max(0.0, backlog + row.work - staff)
        row.backlog = backlog
        table.append(row)
    while backlog > 1e-9:  # the tail: days after the last new work until the backlog is worked off
        day = table[-1].day + 1
        backlog = max(0.0, backlog - staff)
        table.append(StaffDay(day, start + timedelta(days=day - 1), backlog=backlog))
    return StaffPlan(cards, rate, source, staff, table, "given with --operators" if operators is not None else "the playbook has")
