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
  enters by friend_added (through its hook, when the journey names one) whose audience it matches, on
  the add day plus the whole days of the step's `after`; each welcome step of its hook after the add's
  (`after` not 0), likewise; and every occurrence, from the day after its add, of a private beat whose
  template reads `contact` and whose audience it matches. A contact handled twice a day by one persona
  is one fan that day (at the larger share). Exits (an order ending a journey) are not taken off.
- An audience is matched by the hook's tags and the tier. One that needs a tag a rule gives on an event
  (回复过 from message_replied) counts for the share of contacts with that event (the likeliest events
  that give every tag it needs): the rate of the funnel stage with that event, from `--rates` or the
  funnel's targets as simulate reads them, relative to the add; else every contact (the upper bound).
  A journey or beat no contact reaches that way (its audience needs a tag set by hand, or a journey is
  entered by another event than the add) is left out, and the plan says which.
- Work is the persona's who sends it (the journey's or beat's persona, else the hook's, else the
  first): 1 / capacity of its tier per fan a day (the persona's `capacity`, else 20 / 30 / 40), summed
  into operator-days. Operators needed on a day: each persona's, rounded up, summed. Backlog: each
  persona with 1v1 work works with its own operators (`capacity.operators`, 1 without; or
  `--operators` for each), and work beyond a day's operators waits for the next day, as the runner
  carries drafts over. Personas with no 1v1 work are not counted. The table ends when the backlog
  clears or HORIZON days after the last day with new work, whichever comes first.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
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
HORIZON = 30  # days after the last new work the table follows a backlog that has not cleared
MAX_EVENTS = 6  # rule events tried together for an audience (2^6 sets at most)


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


@dataclass(frozen=True)
class Trigger:
    """An event a rule reads, and the tags its rules give a contact through one hook."""

    event: str
    nth: int


@dataclass(frozen=True)
class Work:
    """1v1 work a contact of one hook and tier gets: from a journey, a welcome sequence or a private beat."""

    kind: str  # journey | welcome | beat
    id: str
    persona: str
    after: frozenset[int]  # days after the add (0: the add day)
    on: frozenset[int]  # campaign days (beats: counted after the add day)
    needs: frozenset[Trigger]  # the rule events whose tags its audience needs (none: matched at the add)
    tags: tuple[str, ...] = ()  # the tags those rules give that it reads
    by_hand: tuple[str, ...] = ()  # tags no hook or rule gives that would also let a contact in


@dataclass
class StaffPlan:
    cards: int
    add_rate: float
    add_rate_source: str
    operators: int
    days: list[StaffDay]
    operators_source: str = "the playbook has"
    personas: list[dict[str, Any]] = field(default_factory=list)  # each persona with 1v1 work, its operators and operator-days
    assumed: list[dict[str, Any]] = field(default_factory=list)  # work counted for a share of contacts (rule tags)
    left_out: list[dict[str, Any]] = field(default_factory=list)  # journeys and beats the plan cannot reach
    backlog_left: float = 0.0  # operator-days still waiting on the table's last day (0: the backlog clears)
    more_days: int = 0  # days after the table's last one until it would clear, at the same operators

    def verdict(self) -> str:
        """What the table comes to, in a sentence (then what it assumed and left out): the busiest day's need, and whether the operators keep up."""
        return "; ".join([self._need(), *self.notes()])

    def _need(self) -> str:
        busiest = max(self.days, key=lambda d: (d.work, -d.day), default=None)
        if busiest is None or busiest.needed == 0:
            return "no day has 1v1 work that needs a person (no journey step, welcome step after the add's, or private beat whose text names the contact, reaches these contacts): nothing to staff"
        need = f"the busiest day (day {busiest.day}, {busiest.date}) needs {busiest.needed} operator(s) to do its 1v1 work the same day"
        staff = f"the {self.operators} operator(s) {self.operators_source}"
        peak = self.peak
        if peak is None:
            return f"{need}; {staff} keep up: no backlog"
        said = f"{need}; with {staff}, 1v1 work carries over and the backlog peaks on day {peak.day} ({peak.date}) at {peak.backlog:.2f} operator-days"
        if self.backlog_left > 1e-9:
            last = self.days[-1]
            said += (
                f"; the backlog does not clear within {HORIZON} days after the last new work: {self.backlog_left:,.2f} operator-days are left on "
                f"day {last.day} ({last.date}), about {self.more_days:,} more day(s) with the same operators"
            )
        return said

    def notes(self) -> list[str]:
        """What the figures assumed (work counted for a share of contacts) and what they leave out."""
        said = []
        for item in self.assumed:
            events = " and ".join(item["events"])
            by_hand = f", and {'、'.join(item['by_hand'])} set by hand or imported is not modelled" if item["by_hand"] else ""
            said.append(
                f"{item['kind']} {item['id']} counts for {_percent(item['share'])} of its contacts: those with {'、'.join(item['tags'])}, "
                f"which {'a rule gives' if len(item['events']) == 1 else 'rules give'} on {events} ({item['source']}){by_hand}"
            )
        if self.left_out:
            said.append("left out: " + ", ".join(f"{item['kind']} {item['id']} ({item['why']})" for item in self.left_out))
        return said

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
            "personas": self.personas, "operators_needed_max": self.most, "backlog_peak": peak.to_dict() if peak else None,
            "backlog_left": round(self.backlog_left, 3), "backlog_clears_in_more_days": self.more_days, "assumed": self.assumed, "left_out": self.left_out, "days": [d.to_dict() for d in self.days],
        }  # fmt: skip


def _percent(share: float) -> str:
    return f"{share * 100:.1f}".rstrip("0").rstrip(".") + "%"


class _Rules:
    """What the playbook's rules give a contact of a hook, for matching audiences the add alone does not."""

    def __init__(self, playbook: LoadedPlaybook) -> None:
        self.model = playbook.model
        self.rules = playbook.model.rules
        self.given = {tag for hook in self.model.hooks for tag in hook.tags} | set(TIER_OF) | {tag for rule in self.rules for adds, tag in rule.changes if adds}

    def _applies(self, rule: Any, hook: Hook | None) -> bool:
        return not rule.on.hook or (hook is not None and rule.on.hook in (hook.id, hook.code))

    def at_add(self, hook: Hook | None, tier_tag: str) -> set[str]:
        """A contact's tags once added: its hook's, its tier, and what rules on friend_added give."""
        tags = set(hook.tags if hook else ()) | {tier_tag}
        for rule in self.rules:
            if rule.on.event == "friend_added" and (rule.on.nth or 1) == 1 and self._applies(rule, hook):
                for adds, tag in rule.changes:
                    (tags.add if adds else tags.discard)(tag)
        return tags

    def reach(self, expression: str, tags: set[str], hook: Hook | None) -> tuple[frozenset[Trigger], tuple[str, ...]] | None:
        """(the rule events needed, the tags they give that the audience reads), or None: no rule events let the contact in."""
        expr = parse_tags(self.model.segments.get(expression, expression))
        if expr.matches(tags):
            return frozenset(), ()
        by_trigger: dict[Trigger, list[tuple[bool, str]]] = {}
        for rule in self.rules:
            if rule.on.event != "friend_added" and self._applies(rule, hook) and any(adds and tag in expr.tags for adds, tag in rule.changes):
                by_trigger.setdefault(Trigger(rule.on.event, rule.on.nth or 1), []).extend(rule.changes)
        triggers = list(by_trigger)[:MAX_EVENTS]
        for size in range(1, len(triggers) + 1):  # the fewest events first
            for chosen in itertools.combinations(triggers, size):
                after = set(tags)
                for trigger in chosen:
                    for adds, tag in by_trigger[trigger]:
                        (after.add if adds else after.discard)(tag)
                if expr.matches(after):
                    return frozenset(chosen), tuple(sorted(t for t in after - tags if t in expr.tags))
        return None

    def by_hand(self, expression: str, tags: set[str]) -> tuple[str, ...]:
        """Tags no hook or rule gives (set by hand) that alone would let the contact into the audience."""
        expr = parse_tags(self.model.segments.get(expression, expression))
        return tuple(sorted(tag for tag in expr.tags - self.given if expr.matches(tags | {tag})))


def work_items(playbook: LoadedPlaybook, hook: Hook | None, tier_tag: str, rule: Any, rules: _Rules | None = None) -> tuple[list[Work], dict[tuple[str, str], str]]:
    """The 1v1 work of a contact through `hook` with this tier (see the module's docstring), and why each
    journey or beat it does not reach is out of its reach ((kind, id) → why)."""
    model = playbook.model
    rules = rules or _Rules(playbook)
    first = model.personas[0].id
    tags = rules.at_add(hook, tier_tag)
    found: list[Work] = []
    missed: dict[tuple[str, str], str] = {}

    def add(kind: str, item_id: str, persona: str, audience: str | None, after: set[int], on: set[int]) -> None:
        reached = rules.reach(audience, tags, hook) if audience else (frozenset(), ())
        if reached is None:
            hand = rules.by_hand(audience or "", tags)
            missed[(kind, item_id)] = (
                f"its audience needs {'、'.join(hand)}, which no hook or rule gives (a tag set by hand or imported)" if hand else f"no contact the hooks bring matches its audience ({audience})"
            )
            return
        needs, gained = reached
        found.append(Work(kind, item_id, persona, frozenset(after), frozenset(on), needs, gained, rules.by_hand(audience or "", tags) if needs else ()))

    for journey in model.journeys:
        if journey.enter.event != "friend_added":
            missed[("journey", journey.id)] = f"it is entered by {journey.enter.event}, not by the add"
            continue
        if journey.enter.hook and (hook is None or journey.enter.hook not in (hook.id, hook.code)):
            missed[("journey", journey.id)] = f"it is entered through hook {journey.enter.hook}, which the planned cards do not come through"
            continue
        persona = journey.persona or (hook.persona if hook else None) or first
        add("journey", journey.id, persona, journey.audience, {parse_duration(step.after).days for step in journey.steps}, set())
    later = {parse_duration(step.after).days for step in (hook.welcome if hook else ()) if parse_duration(step.after) != timedelta(0)}
    if hook is not None and later:
        found.append(Work("welcome", hook.id, hook.persona or first, frozenset(later), frozenset(), frozenset()))
    for beat in model.beats:
        if beat.channel == "private" and rule("private", beat.id, None):
            # No persona named: from the account the contact added, the hook's (as the runner sends it).
            add("beat", beat.id, beat.persona or (hook.persona if hook else None) or first, beat.audience, set(), set(playbook.beat_days_of(playbook.cohorts[0])[beat.id]))
    return found, missed


def _stage_of(playbook: LoadedPlaybook, trigger: Trigger) -> Any:
    funnel = playbook.model.funnel
    return next((s for s in (funnel.stages if funnel else []) if s.event == trigger.event and s.nth == trigger.nth), None)


def _add_rate(playbook: LoadedPlaybook, given: dict[str, float], used: Sequence[Trigger] = ()) -> tuple[float, str, dict[Trigger, tuple[float, str]]]:
    """The add rate and where it comes from, and the share of contacts with each rule event `used` (and
    where that comes from); a --rates stage that cannot change the table is an error, not ignored."""
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
        raise UsageError(
            f"--rates {unknown[0]}: no such funnel stage",
            hint=f"stages: {', '.join(s.id for s in stages) or '(no funnel)'}" + (f", or their events ({events})" if events else "") + f"; the add rate is {key}",
        )
    through_card = funnel is not None and added is not None and stages[0].event == "card_sent" and added is not stages[0]
    counted = {key} | ({s.id for s in stages[1 : stages.index(added) + 1]} if through_card and added is not None else set())
    ruled = {trigger: stage for trigger in used if (stage := _stage_of(playbook, trigger)) is not None and stage is not added}
    counted |= {stage.id for stage in ruled.values()}
    ignored = sorted(set(rates) - counted, key=[s.id for s in stages].index)
    if ignored:
        stage = ignored[0]
        raise UsageError(
            f"--rates {named.get(stage, stage)}: plan capacity works from the add rate ({key}){' and the stages from the card to it' if through_card else ''}"
            + (f" and the stages whose events give a tag an audience needs ({', '.join(sorted({s.id for s in ruled.values()}))})" if ruled else " alone")
            + f"; {stage} changes no figure here (exits are not taken off)",
            hint=f"drop {named.get(stage, stage)}=…; give the add rate as {key}=RATE",
        )
    shares: dict[Trigger, tuple[float, str]] = {}
    reach: dict[str, float] = {}
    base = 1.0
    if ruled and funnel is not None:
        step, _ = step_rates(funnel, {sid: r for sid, r in rates.items() if sid not in (key, stages[0].id)})
        reach = _reached(funnel, step)
        base = reach[added.id] if added is not None else 1.0
    for trigger in used:
        stage = ruled.get(trigger)
        if stage is None:
            shares[trigger] = (1.0, f"no funnel stage after the add has {trigger.event} events: every contact, the upper bound")
        elif stage.id not in rates and funnel is not None and funnel.target(stage.id) is None:
            shares[trigger] = (1.0, f"no rate or target for {stage.id}: every contact, the upper bound; --rates {stage.id}=RATE sets it")
        else:
            share = min(reach[stage.id] / base, 1.0) if base > 0 else 0.0
            shares[trigger] = (share, f"--rates {named.get(stage.id, stage.id)}" if stage.id in rates else f"funnel target for {stage.id}")
    if key in rates:
        if not 0 < rates[key] <= 1:
            raise UsageError(f"--rates {named.get(key, key)}={rates[key]:g}: an add rate is above 0 and at most 1", hint=f"write {key}=0.15 or {key}=15%")
        return rates[key], f"--rates {named.get(key, key)}", shares
    if through_card:
        step, _ = step_rates(funnel, rates)
        share, index = 1.0, stages.index(added)
        for stage in stages[1 : index + 1]:
            if not stage.optional:
                share *= step[stage.id]
        return share, "funnel targets", shares
    return ADD_RATE, "default 15% (the seeds' package-card add rate, 引流率)", shares


def default_shares(playbook: LoadedPlaybook, used: Sequence[Trigger]) -> dict[Trigger, float]:
    """The share of contacts with each rule event, as `plan capacity` takes it without --rates (check's estimate);
    every contact (the upper bound) where the funnel's targets cannot say."""
    try:
        return {trigger: share for trigger, (share, _) in _add_rate(playbook, {}, list(dict.fromkeys(used)))[2].items()}
    except UsageError:
        return dict.fromkeys(used, 1.0)


def _reached(funnel: Any, step: Mapping[str, float]) -> dict[str, float]:
    """Each stage's expected share of the funnel's entrants, from the step rates (as simulate draws them)."""
    from siyu_cli.report._simulate import _last_required

    share = {funnel.stages[0].id: 1.0}
    for k, stage in enumerate(funnel.stages[1:], start=1):
        share[stage.id] = share[funnel.stages[_last_required(funnel, k)].id] * step[stage.id]
    return share


def _tier_mix(hook: Hook | None) -> list[tuple[str, float]]:
    from siyu_cli.report._simulate import _hook_tier

    options = _hook_tier(hook)
    total = sum(w for _, w in options)
    return [(TIER_OF[t], w / total) for t, w in options]


def plan_work(playbook: LoadedPlaybook, hooks: Sequence[Hook | None], rule: Any) -> tuple[dict[tuple[int, str], list[Work]], dict[tuple[str, str], str]]:
    """Each (hook index, tier)'s work items, and what no hook and tier reaches (kind, id → why)."""
    rules = _Rules(playbook)
    items: dict[tuple[int, str], list[Work]] = {}
    missed: dict[tuple[str, str], str] = {}
    for index, hook in enumerate(hooks):
        for tier, _ in _tier_mix(hook):
            found, out = work_items(playbook, hook, next(t for t, w in TIER_OF.items() if w == tier), rule, rules)
            items[(index, tier)] = found
            for key, why in out.items():
                missed.setdefault(key, why)
    reached = {(item.kind, item.id) for found in items.values() for item in found}
    return items, {key: why for key, why in missed.items() if key not in reached}


def staffing(playbook: LoadedPlaybook, cards: int, rates: dict[str, float] | None = None, operators: int | None = None) -> StaffPlan:
    """The day-by-day table (see the module's docstring)."""
    from siyu_cli.dispatch._capacity import PersonalRule
    from siyu_cli.render import Renderer

    if cards < 1:
        raise UsageError("--cards must be at least 1")
    model = playbook.model
    rule = PersonalRule(playbook, Renderer(playbook))
    start = playbook.cohorts[0].start
    spread = min(max(model.days // 3, 1), 14)
    hooks: list[Hook | None] = [h for h in model.hooks if h.kind == "package_card"] or list(model.hooks) or [None]
    items, missed = plan_work(playbook, hooks, rule)
    used = list(dict.fromkeys(t for found in items.values() for item in found for t in sorted(item.needs, key=lambda t: (t.event, t.nth))))
    rate, source, shares = _add_rate(playbook, rates or {}, used)
    capacity = {p.id: p.capacity or Capacity() for p in model.personas}
    cards_on: dict[int, float] = defaultdict(float)
    fans: dict[tuple[int, str], float] = defaultdict(float)
    adds_on: dict[int, float] = defaultdict(float)
    work: dict[tuple[str, int], float] = defaultdict(float)
    for sent in range(1, spread + 1):
        cards_on[sent] += cards / spread
    for index, hook in enumerate(hooks):
        for tier, mix in _tier_mix(hook):
            found = items[(index, tier)]
            for sent in range(1, spread + 1):
                for lag in ADD_DAYS:
                    added = sent + lag
                    count = cards / spread / len(hooks) * rate * mix / len(ADD_DAYS)
                    adds_on[added] += count
                    busy: dict[tuple[str, int], float] = {}
                    for item in found:
                        share = math.prod(shares[t][0] for t in item.needs)
                        for day in {added + o for o in item.after} | {d for d in item.on if d > added}:
                            busy[(item.persona, day)] = max(busy.get((item.persona, day), 0.0), share)
                    for (persona, day), share in busy.items():
                        fans[(day, tier)] += count * share
                        work[(persona, day)] += count * share / getattr(capacity[persona], tier)
    working = [p.id for p in model.personas if any(item.persona == p.id for found in items.values() for item in found)]
    staff = {persona: operators if operators is not None else capacity[persona].operators for persona in working}
    last = max([d for _, d in work] + [*adds_on, spread], default=1)
    table: list[StaffDay] = []
    backlog = dict.fromkeys(working, 0.0)
    day = 0
    while day < last or (sum(backlog.values()) > 1e-9 and day < last + HORIZON):
        day += 1
        row = StaffDay(day, start + timedelta(days=day - 1), cards_on.get(day, 0.0), adds_on.get(day, 0.0))
        for tier in row.fans:
            row.fans[tier] = fans.get((day, tier), 0.0)
        for persona in working:
            done = work.get((persona, day), 0.0)
            row.work += done
            row.needed += math.ceil(done - 1e-9)
            backlog[persona] = max(0.0, backlog[persona] + done - staff[persona])
        row.backlog = sum(backlog.values())
        table.append(row)
    total = sum(staff.values())
    if operators is not None:
        said = "given with --operators" if len(working) <= 1 else f"given with --operators ({operators} for each of the {len(working)} personas with 1v1 work)"
    else:
        said = "the playbook has" if len(working) <= 1 else "the playbook has (" + ", ".join(f"{p} {staff[p]}" for p in working) + ")"
    personas = [{"persona": p, "operators": staff[p], "operator_days": round(sum(v for (q, _), v in work.items() if q == p), 3)} for p in working]
    assumed = []
    for found in items.values():
        for item in found:
            if not item.needs:
                continue
            entry = {
                "kind": item.kind, "id": item.id, "share": round(math.prod(shares[t][0] for t in item.needs), 4), "tags": list(item.tags),
                "events": [t.event if t.nth == 1 else f"{t.event} (nth {t.nth})" for t in sorted(item.needs, key=lambda t: (t.event, t.nth))],
                "source": "; ".join(shares[t][1] for t in sorted(item.needs, key=lambda t: (t.event, t.nth))), "by_hand": list(item.by_hand),
            }  # fmt: skip
            if entry not in assumed:
                assumed.append(entry)
    left_out = [{"kind": kind, "id": item_id, "why": why} for (kind, item_id), why in missed.items()]
    more = max((math.ceil(backlog[p] / staff[p] - 1e-9) for p in working), default=0)
    return StaffPlan(cards, rate, source, total, table, said, personas, assumed, left_out, sum(backlog.values()), more)
