"""`check --db`: a persona's 1v1 work against its capacity (人效), day by day, as the runner will decide it.

The runner carries a draft that would take a persona's day past `capacity.operators` to the next day with
room (siyu_cli.dispatch._capacity); carried drafts go first the next day, so a short day can push work
days on. Check plays the campaign's days through the same rule (the same drafts need a person, the same
cost by tier, a contact written to twice a day paid for once), from the store's contacts, so the carry-over
shows before the first pass instead of in the ledger after it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from siyu_cli._time import parse_hhmm, wall_clock
from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner, assign_variant

DRAIN_DAYS = 60  # how far past the campaign the backlog is followed before it is called growing


def capacity_short(playbook: LoadedPlaybook, planner: Planner | None) -> list[Problem]:
    """A warning per persona whose 1v1 work needing a person does not fit its capacity on some day."""
    from siyu_cli.dispatch._capacity import Caps

    capacities = {p.id: p.capacity for p in playbook.model.personas if p.capacity is not None}
    if planner is None or planner.db is None or not planner.contacts or not capacities:
        return []
    caps = Caps(playbook, planner.db, planner.renderer)
    work = _work(playbook, planner, caps, set(capacities))
    problems = []
    for index, persona in enumerate(playbook.model.personas):
        days = work.get(persona.id)
        if not days:
            continue
        capacity = capacities[persona.id]
        carried: dict[date, int] = {}
        backlog: list[str] = []
        day = min(days)
        last = max(days) + timedelta(days=DRAIN_DAYS)
        while day <= last and (backlog or day <= max(days)):
            load, paid, kept = Fraction(0), set(), []
            for contact in dict.fromkeys(backlog + days.get(day, [])):
                # One contact once a day: a carried draft meeting a fresh one of its beat gives way (superseded),
                # and a contact written to twice is one fan handled.
                if contact in paid:
                    continue
                cost = caps.cost(persona.id, contact)
                if load + cost > capacity.operators:
                    kept.append(contact)
                    continue
                load += cost
                paid.add(contact)
            if kept:
                carried[day] = len(kept)
            backlog = kept
            day += timedelta(days=1)
        if not carried:
            continue
        first = min(carried)
        start = playbook.cohorts[0].start
        busiest = max(carried, key=lambda d: carried[d])
        if backlog:
            then = f"and {len(backlog)} still wait {DRAIN_DAYS} days after the last day with work: the backlog grows"
        else:
            then = f"the last goes out on {max(carried) + timedelta(days=1)} (day {(max(carried) - start).days + 2})"
        per = " or ".join(f"{getattr(capacity, tier)} {word}" for tier, word in (("precise", "精准粉"), ("semi", "半精准粉"), ("general", "泛粉")))
        problems.append(
            playbook.located.problem(
                ("personas", index, "capacity"),
                f"persona {persona.id}'s 1v1 work that needs a person does not fit its capacity ({capacity.operators} operator(s), each handling {per} a day) "
                f"on {len(carried)} day(s) from {first} (day {(first - start).days + 1}): the most carried to the next day 顺延 is {carried[busiest]}, on {busiest}; {then}",
                hint="raise capacity.operators, spread the 1v1 beats over more days, or make a beat one mass send (a text that does not read contact needs no person)",
                severity="warning",
                code="capacity-short",
            )
        )
    return problems


def _work(playbook: LoadedPlaybook, planner: Planner, caps: Any, personas: set[str]) -> dict[str, dict[date, list[str]]]:
    """persona → local day → the contacts it writes to that day in drafts that need a person, in due order."""
    found: dict[str, dict[date, list[tuple[datetime, str]]]] = defaultdict(lambda: defaultdict(list))
    first = playbook.model.personas[0].id
    for beat in playbook.model.beats:
        if beat.channel != "private":
            continue
        weights = {name: variant.weight for name, variant in (beat.variants or {}).items()}
        for cohort in playbook.cohorts:
            for number in sorted(playbook.beat_days_of(cohort)[beat.id]):
                day = cohort.start + timedelta(days=number - 1)
                for clock in beat.times:
                    moment = wall_clock(day, parse_hhmm(clock), playbook.tz)
                    for person in planner.recipients(cohort, beat.id, playbook.audience(beat), at=moment):
                        persona = beat.persona or planner.own_persona(person, first)
                        variant = assign_variant(beat.id, str(person["id"]), weights) if weights else None
                        if persona in personas and caps.personal("private", beat.id, variant):
                            found[persona][day].append((moment, str(person["id"])))
    for cohort in playbook.cohorts:
        for draft in planner.journey_calendar(cohort):
            if draft.persona in personas and draft.skip is None and draft.contact_id and caps.personal(draft.channel, draft.beat, draft.variant):
                found[draft.persona][draft.occurrence_at.astimezone(playbook.tz).date()].append((draft.occurrence_at, draft.contact_id))
    return {persona: {day: [cid for _, cid in sorted(items)] for day, items in days.items()} for persona, days in found.items()}
