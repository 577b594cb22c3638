""""What to look at next": read off the numbers the report shows, never a new statistic.

The stage furthest below its target (by how far the top of its 95% Wilson interval falls short,
relative to the target; a miss whose interval reaches the target is within noise and comes last),
each hook or variant the funnel's test finds significantly worse than another, the beats the
front line executed least (SOP 执行率, in send tasks), and drafts that failed or are in doubt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from siyu_cli.report._compare import compared, pct, stage_name
from siyu_cli.report._execution import LOW_EXECUTION, Execution
from siyu_cli.report._funnel import BETTER, WORSE, FunnelGroup, FunnelReport, GroupStage, StageResult
from siyu_cli.report._stats import wilson

SHOWN_BEATS = 3


@dataclass
class Next:
    """One thing to look at: `kind` (stage, hook, variant, execution, delivery, ok) and the section it points to."""

    kind: str
    text: str
    section: str


def _interval(overall: FunnelReport, stage: StageResult) -> tuple[float, float]:
    """The 95% Wilson interval of the rate the target is held against: count over its base stage's count."""
    counts = {s.id: s.count for s in overall.stages}
    return wilson(stage.count, counts.get(stage.target_of or stage.base or "", 0))


def _stage(overall: FunnelReport | None) -> tuple[list[Next], list[Next]]:
    """The worst miss beyond noise (first in the list), and the misses within noise (last)."""
    if overall is None or not overall.entered:
        return [], []
    held = [s for s in overall.stages if s.target and s.target_rate is not None]
    missed = [(s, _interval(overall, s)) for s in held if not s.met]
    if not missed:
        return ([Next("ok", f"Every stage with a target meets it ({', '.join(s.id for s in held)}).", "funnel")] if held else []), []
    real = [(s, ci) for s, ci in missed if ci[1] < (s.target or 0.0)]
    found = []
    if real:
        worst, ci = min(real, key=lambda pair: pair[1][1] / (pair[0].target or 1.0))
        text = (
            f"{stage_name(worst)} is furthest below its target: {pct(worst.target_rate)}{_of(worst)} against {pct(worst.target)} "
            f"({_gap(worst)} pt; even its 95% interval's top, {pct(ci[1])}, is below). Look at what happens just before it."
        )
        found.append(Next("stage", text, "funnel"))
    noise = [
        Next(
            "noise",
            f"{stage_name(s)} is {_gap(s)} pt off its target ({pct(s.target_rate)}{_of(s)} against {pct(s.target)}): within noise, "
            f"its 95% interval [{pct(ci[0])}–{pct(ci[1])}] reaches the target.",
            "funnel",
        )
        for s, ci in sorted(missed, key=lambda pair: pair[1][1] / (pair[0].target or 1.0))
        if (s, ci) not in real
    ]
    return found, noise


def _of(stage: StageResult) -> str:
    return f" of {stage.target_of}" if stage.target_of else f" of {stage.base}"


def _gap(stage: StageResult) -> str:
    return f"{((stage.target_rate or 0.0) - (stage.target or 0.0)) * 100:+.1f}"


def _losses(report: FunnelReport | None, kind: str, section: str) -> list[Next]:
    """Per group, its most significant loss: worse than the baseline, or the baseline worse than it."""
    if report is None:
        return []
    baseline = next((g for g in report.groups if g.baseline), None)
    if baseline is None:
        return []
    found: list[tuple[float, str]] = []
    labels = {s.id: stage_name(s) for s in report.stages}
    for group in compared(report):
        if group.baseline:
            continue
        rows = [r for r in group.stages[1:] if r.verdict in (WORSE, BETTER) and r.p_value is not None]
        if not rows:
            continue
        row = min(rows, key=lambda r: r.p_value or 1.0)
        loser, winner = (group, baseline) if row.verdict == WORSE else (baseline, group)
        found.append((row.p_value or 1.0, _loss_text(kind, loser, winner, row, labels[row.id])))
    return [Next(kind, text, section) for _, text in sorted(found)]


def _loss_text(kind: str, loser: FunnelGroup, winner: FunnelGroup, row: GroupStage, stage: str) -> str:
    rate = {g.key: next(s.from_top for s in g.stages if s.id == row.id) for g in (loser, winner)}
    small = " (small sample: read as a hint)" if row.small_sample else ""
    return (
        f"{kind.capitalize()} {loser.label} loses to {winner.label} at {stage}: {pct(rate[loser.key])} against {pct(rate[winner.key])} "
        f"of those who entered (p {row.p_value:.3f}){small}."
    )


def _execution(found: Execution | None) -> list[Next]:
    if found is None or not found.total.tasks.tasks:
        return []
    tasks = found.total.tasks
    if not tasks.done:
        return [
            Next(
                "execution",
                f"No send task was marked done: {tasks.tasks:,} ({tasks.recipients:,} recipients) were handed to the front line. "
                "Mark what was posted with `siyu outbox done ID` so execution can be read.",
                "sop",
            )
        ]
    low = found.low()
    if not low:
        return []
    names = ", ".join(f"{c.title} {pct(c.total.rate)}" for c in low[:SHOWN_BEATS])
    more = f" and {len(low) - SHOWN_BEATS} more" if len(low) > SHOWN_BEATS else ""
    return [Next("execution", f"Beats executed below {LOW_EXECUTION * 100:.0f}%: {names}{more}.", "sop")]


def _delivery(found: Execution | None) -> list[Next]:
    if found is None or not (found.total.failed or found.total.unknown):
        return []
    return [
        Next(
            "delivery",
            f"{found.total.failed:,} drafts failed and {found.total.unknown:,} are in doubt: `siyu status` lists them; "
            "`siyu retry` resends failed ones, `siyu outbox done ID` marks one that arrived.",
            "sop",
        )
    ]


def next_steps(overall: FunnelReport | None, hooks: FunnelReport | None, variants: FunnelReport | None, found: Execution | None) -> list[Next]:
    first, noise = _stage(overall)
    return [*first, *_losses(hooks, "hook", "hooks"), *_losses(variants, "variant", "ab"), *_execution(found), *_delivery(found), *noise]


def _code(text: str) -> str:
    """Escaped, with `commands` as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def next_html(items: list[Next]) -> str:
    if not items:
        return '<p class="note" id="next-list">Nothing stands out yet: no target missed, no hook or variant losing, no beat left undone.</p>'
    rows = "".join(f'<li class="{item.kind}" data-kind="{item.kind}">{_code(item.text)} <a href="#{item.section}">→</a></li>' for item in items)
    return f'<ol id="next-list" class="next">{rows}</ol>'
