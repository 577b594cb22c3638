"""`check --db`: a persona's 1v1 work against its capacity (人效), day by day, as the runner will decide it.

The runner carries a draft that would take a persona's day past `capacity.operators` to the next day with
room (siyu_cli.dispatch._capacity); carried drafts go first the next day, so a short day can push work
days on. Check plays the campaign's days through the same rule (CapacityPlay), from the store's contacts, so
the carry-over shows before the first pass instead of in the ledger after it.
"""

from __future__ import annotations

from datetime import timedelta

from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner


def capacity_short(playbook: LoadedPlaybook, planner: Planner | None) -> list[Problem]:
    """A warning per persona whose 1v1 work needing a person does not fit its capacity on some day."""
    from siyu_cli.dispatch._capacity import DRAIN_DAYS, CapacityPlay

    if planner is None:
        return []
    play = CapacityPlay(playbook, planner)
    start = playbook.cohorts[0].start
    problems = []
    for index, persona in enumerate(playbook.model.personas):
        carried = {day: load.carried for day, load in play.days.get(persona.id, {}).items() if load.carried}
        if not carried:
            continue
        capacity = play.capacities[persona.id]
        busiest = max(carried, key=lambda d: carried[d])
        last = max(carried)
        if play.backlog[persona.id]:
            then = f"and {play.backlog[persona.id]} still wait {DRAIN_DAYS} days after the last day with work: the backlog grows"
        else:
            then = f"the last goes out on {last + timedelta(days=1)} (day {(last - start).days + 2})"
        per = " or ".join(f"{getattr(capacity, tier)} {word}" for tier, word in (("precise", "精准粉"), ("semi", "半精准粉"), ("general", "泛粉")))
        first = min(carried)
        cap = playbook.model.limits.per_contact_per_day
        if cap is not None:
            then += f"; before limits.per_contact_per_day ({cap}), which the runner applies first and which may skip some of this work"
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
