"""Journeys as run: per route and step, how many drafts the ledger holds in each state.

What a manager asks of a journey: how many entered, how far they got, how many stopped at an
exit (bought, refunded, deleted) before the next step, and whether the steps went out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlite_utils

from siyu_cli.journeys import JourneyBook
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.rules import TagRules


@dataclass
class StepRow:
    step: str
    when: str
    content: str
    states: dict[str, int] = field(default_factory=dict)  # sent, done, skipped(exit), pending …

    @property
    def drafts(self) -> int:
        return sum(self.states.values())


@dataclass
class RouteRow:
    id: str
    kind: str  # journey | welcome
    title: str
    enter: str
    audience: str
    exits: str
    entered: int  # runs with at least one draft in the ledger
    steps: list[StepRow] = field(default_factory=list)


@dataclass
class JourneyReport:
    playbook: str
    routes: list[RouteRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def journey_report(db: sqlite_utils.Database, playbook: LoadedPlaybook) -> JourneyReport:
    """One grouped read of the ledger's journey and welcome drafts."""
    from siyu_cli._time import format_duration

    book = JourneyBook(playbook, TagRules.of(playbook.model))
    counts: Counter[tuple[str, str]] = Counter()
    runs: dict[str, set[tuple[str, str]]] = {}
    rows = db.execute(
        "SELECT beat, target, entry, state, reason, done_at FROM drafts WHERE playbook_id = ? AND channel IN ('journey', 'welcome')",
        [playbook.id],
    )
    for beat, target, entry, state, reason, done_at in rows:
        label = "done" if done_at else (f"skipped({reason})" if state == "skipped" and reason else state)
        counts[(beat, label)] += 1
        found = book.by_beat.get(beat)
        if found is not None:
            runs.setdefault(found[0].id, set()).add((target, entry or ""))
    report = JourneyReport(playbook.id)
    model = playbook.model
    for route in book.routes:
        owner = model.hooks[int(route.path[1])] if route.kind == "welcome" else model.journeys[int(route.path[1])]
        exits = ", ".join(e.segment or (e.event + (f" via {e.hook}" if e.hook else "")) for e in owner.exit) or "-"
        enter = route.enter_type + (f" via {route.enter_hook}" if route.enter_hook else "") + (" (every time)" if route.repeat else "")
        row = RouteRow(route.id, route.kind, route.title, enter, route.audience.source if route.audience else "everyone who enters", exits, len(runs.get(route.id, ())))
        for step in route.steps:
            beat = route.beat_id(step)
            when = ("+" + format_duration(step.after) if step.after else "at once") + (f" at {step.at:%H:%M}" if step.at else "")
            content = step.template or ("inline text" if step.text is not None else "variants " + "/".join(step.variants or {}))
            states = {label: n for (b, label), n in sorted(counts.items()) if b == beat}
            row.steps.append(StepRow(step.id if route.kind == "journey" else str(step.index + 1), when, content, states))
        report.routes.append(row)
    return report


def journeys_html(report: JourneyReport) -> str:
    """The journeys section of the HTML report: each route's steps with how their drafts ended."""
    from html import escape

    if not report.routes:
        return ""
    blocks = []
    for route in report.routes:
        rows = []
        for step in route.steps:
            states = " · ".join(f"{escape(label)} {count:,}" for label, count in step.states.items()) or "no drafts yet"
            rows.append(f'<tr><td class="l">{escape(step.step)}</td><td class="l">{escape(step.when)}</td><td>{step.drafts:,}</td><td class="l">{states}</td></tr>')
        head = (
            f'<h3>{escape(route.title)} <span class="note">({escape(route.id)})</span></h3>'
            f'<p class="note">enter: {escape(route.enter)} · audience: {escape(route.audience)} · exit: {escape(route.exits)} · '
            f"{route.entered:,} run(s) with drafts</p>"
        )
        # In a .scroll box: a long end (skipped(limit:private_per_account_per_day)) must not widen a 390 px page.
        table = (
            '<div class="scroll"><table class="journey"><tr><th class="l">step</th><th class="l">when</th><th>drafts</th><th class="l">how they ended</th></tr>'
            + "".join(rows)
            + "</table></div>"
        )
        blocks.append(f'<section class="journey" data-journey="{escape(route.id)}">{head}{table}</section>')
    note = '<p class="note">Steps are relative to each contact\'s entering event. skipped(exit): the run had ended (an order, a tag, a delete) before the step went out.</p>'
    return '<section id="journeys">' + "".join(blocks) + note + "</section>"
