"""Lint for what lives on each contact's clock: rules, journeys, exits, and audiences against the store."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from siyu_cli._time import to_db, wall_clock
from siyu_cli.errors import Problem
from siyu_cli.journeys import Route, satisfying_tags, step_due
from siyu_cli.playbook import LoadedPlaybook, TagExpr, parse_tags
from siyu_cli.playbook._yaml import Path_
from siyu_cli.rules import TagRules

# Entering times that put `at` steps on either side of midnight: an order that holds for all is the order.
_PROBE_TIMES = (time(0, 30), time(12, 0), time(23, 30))


def journey_problems(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]] = ()) -> list[Problem]:
    from siyu_cli.journeys import JourneyBook

    rules = TagRules.of(playbook.model)
    book = JourneyBook(playbook, rules)
    problems: list[Problem] = []
    problems += _unread_rule_tags(playbook)
    for route in book.routes:
        problems += _steps_out_of_order(playbook, route)
        problems += _exits(playbook, rules, route)
    problems += _empty_audiences(playbook, contacts)
    return problems


def _read_atoms(playbook: LoadedPlaybook) -> set[str]:
    """Every tag some segment, audience or exit reads."""
    model = playbook.model
    expressions = list(model.segments.values())
    expressions += [b.audience for b in model.beats if b.audience and b.audience not in model.segments]
    expressions += [j.audience for j in model.journeys if j.audience and j.audience not in model.segments]
    exits = [e for j in model.journeys for e in j.exit] + [e for h in model.hooks for e in h.exit]
    expressions += [e.segment for e in exits if e.segment and e.segment not in model.segments]
    atoms: set[str] = set()
    for text in expressions:
        atoms |= parse_tags(text).tags
    return atoms


def _unread_rule_tags(playbook: LoadedPlaybook) -> list[Problem]:
    read = _read_atoms(playbook)
    problems = []
    for ri, rule in enumerate(playbook.model.rules):
        for ti, (adds, tag) in enumerate(rule.changes):
            if tag not in read:
                verb = "adds" if adds else "removes"
                problems.append(
                    playbook.located.problem(
                        ("rules", ri, "tag", ti),
                        f"this rule {verb} tag {tag!r}, but no segment, audience or exit reads it",
                        hint=f"use {tag!r} in a segment (e.g. segments: {{x: \"not {tag}\"}}), or drop it from the rule",
                        severity="warning",
                        code="rule-tag",
                    )
                )
    return problems


def _steps_out_of_order(playbook: LoadedPlaybook, route: Route) -> list[Problem]:
    tz = playbook.tz
    day = playbook.model.start
    problems = []
    for index in range(1, len(route.steps)):
        before, step = route.steps[index - 1], route.steps[index]
        for clock in _PROBE_TIMES:
            entered = wall_clock(day, clock, tz)
            first, then = step_due(entered, before, tz), step_due(entered, step, tz)
            if then < first:
                where = route.path + (("welcome", index) if route.kind == "welcome" else ("steps", index))
                problems.append(
                    playbook.located.problem(
                        where,
                        f"step {step.id!r} comes before step {before.id!r} for a contact who enters at {clock:%H:%M} "
                        f"({then:%m-%d %H:%M} vs {first:%m-%d %H:%M})",
                        hint="list steps in the order they are sent, or fix `after`/`at`",
                        severity="warning",
                        code="step-order",
                    )
                )
                break
    return problems


def _exits(playbook: LoadedPlaybook, rules: TagRules, route: Route) -> list[Problem]:
    """Exit segments that no tag a hook or rule gives can satisfy, or that hold the moment a contact enters."""
    model = playbook.model
    given = {tag for hook in model.hooks for tag in hook.tags} | {tag for rule in model.rules for adds, tag in rule.changes if adds}
    index = int(route.path[1])
    exits = model.hooks[index].exit if route.kind == "welcome" else model.journeys[index].exit
    problems = []
    for ei, item in enumerate(exits):
        if item.segment is None:
            continue
        expr = parse_tags(model.segments.get(item.segment, item.segment))
        where: Path_ = route.path + ("exit", ei, "segment")
        if not _satisfiable(expr, expr.tags):
            problems.append(playbook.located.problem(where, f"exit {item.segment!r} can never hold: no set of tags matches it", hint="fix the tag expression", severity="warning", code="exit"))
            continue
        if not _satisfiable(expr, expr.tags & given):
            missing = ", ".join(sorted(expr.tags - given))
            problems.append(
                playbook.located.problem(
                    where,
                    f"exit {item.segment!r} can hold only through tags no hook or rule gives ({missing}): imported or edited by hand",
                    hint="add a rule that gives the tag (rules: [{on: {event: order}, tag: [+已购]}]) or check its spelling",
                    severity="warning",
                    code="exit",
                )
            )
            continue
        if route.audience is not None and _implies(route.audience, expr):
            problems.append(
                playbook.located.problem(
                    where,
                    f"every contact the audience {route.audience.source!r} accepts already matches exit {item.segment!r}: no step would be sent",
                    hint="the audience and the exit contradict each other; narrow the exit or the audience",
                    severity="warning",
                    code="exit",
                )
            )
            continue
        if _holds_at_entry(playbook, rules, route, expr):
            problems.append(
                playbook.located.problem(
                    where,
                    f"exit {item.segment!r} holds as soon as a contact enters (the entering {route.enter_type} gives its tags): no step would be sent",
                    hint="exit on a later event instead, e.g. {event: order}, or a tag the entering event does not give",
                    severity="warning",
                    code="exit",
                )
            )
    return problems


def _implies(first: TagExpr, then: TagExpr) -> bool:
    """Every tag set that satisfies `first` satisfies `then` (over the atoms the two read), and some set satisfies `first`."""
    atoms = sorted(first.tags | then.tags)[:12]
    matched = False
    for n in range(len(atoms) + 1):
        for combo in itertools.combinations(atoms, n):
            tags = set(combo)
            if first.matches(tags):
                matched = True
                if not then.matches(tags):
                    return False
    return matched


def _satisfiable(expr: TagExpr, allowed: set[str] | frozenset[str]) -> bool:
    atoms = sorted(allowed)[:12]
    return any(expr.matches(set(combo)) for n in range(len(atoms) + 1) for combo in itertools.combinations(atoms, n))


def _holds_at_entry(playbook: LoadedPlaybook, rules: TagRules, route: Route, expr: TagExpr) -> bool:
    """True when the exit holds right after the entering event whatever exit tags the contact had before."""
    hook = route.hook or rules.hook_of(route.enter_hook)
    base = satisfying_tags(route.audience, hook.tags if hook and route.enter_type != "friend_added" else ())
    entered = datetime.combine(playbook.model.start, time(12, 0), tzinfo=playbook.tz)
    code = (hook.code or hook.id) if hook else None
    rows = [("probe-earlier", route.enter_type, to_db(entered - timedelta(days=1)), code, None, None, None)] * ((route.enter_nth or 1) - 1)
    rows.append(("probe", route.enter_type, to_db(entered), code, None, None, None))
    atoms = sorted(expr.tags)[:12]
    tried = False
    for n in range(len(atoms) + 1):
        for combo in itertools.combinations(atoms, n):
            prior = [t for t in base if t not in expr.tags] + list(combo)
            if route.audience is not None and not route.audience.matches(prior):
                continue
            if expr.matches(prior):
                continue  # already exited before entering: not what this warning is about
            tried = True
            if not expr.matches(rules.fold(prior, code, rows).tags):
                return False
    return tried


def _empty_audiences(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """With --db: an audience no contact in the store matches (effective tags, as of now) reaches nobody."""
    if not contacts:
        return []
    model = playbook.model
    problems = []
    targets: list[tuple[Path_, str]] = [(("beats", bi, "audience"), b.audience) for bi, b in enumerate(model.beats) if b.audience]
    targets += [(("journeys", ji, "audience"), j.audience) for ji, j in enumerate(model.journeys) if j.audience]
    for where, audience in targets:
        expr = parse_tags(model.segments.get(audience, audience))
        if not any(expr.matches(c.get("tags") or ()) for c in contacts):
            problems.append(
                playbook.located.problem(
                    where,
                    f"audience {audience!r} matches 0 of the {len(contacts)} contacts in the store",
                    hint="check the tags it reads against `siyu contacts list`, or the rules and hooks that should give them",
                    severity="warning",
                    code="empty-audience",
                )
            )
    return problems
