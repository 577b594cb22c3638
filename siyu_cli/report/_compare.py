"""Hooks and A/B variants in the HTML report: the verdicts `funnel(by=hook|variant)` computed, drawn and said.

Nothing is tested here: lift, p and verdict are the funnel's own (`_funnel._compare`), so the
report says what `siyu report funnel --by hook|variant` says.
"""

from __future__ import annotations

from html import escape

from siyu_cli.report._funnel import BETTER, NONE, WORSE, FunnelGroup, FunnelReport, GroupStage, StageResult

COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#4b5563")
KINDS = {"hook": ("hook", "the first hook in the playbook with contacts"), "variant": ("variant", "the holdout, who were sent nothing")}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def stage_name(stage: StageResult) -> str:
    return f"{stage.label} {stage.id}" if stage.label != stage.id else stage.id


def stage_cell(stage: StageResult) -> str:
    name = escape(stage_name(stage))
    return f'{name} <span class="note">(optional)</span>' if stage.optional else name


def compared(report: FunnelReport) -> list[FunnelGroup]:
    """The groups a comparison shows: '(none)' (no hook, no variant draft) is not a side of the test."""
    return [g for g in report.groups if g.key != NONE]


def comparison_svg(report: FunnelReport, chart_id: str) -> str:
    """Grouped bars, 360 units wide: per stage after entry, each group's rate from the top. The legend is HTML, so it wraps."""
    groups = compared(report)
    stages = report.stages[1:]
    width, height, left, bottom, top_pad = 360, 200, 34, 22, 10
    plot_h = height - bottom - top_pad
    slot = (width - left - 4) / max(len(stages), 1)
    bar_w = min(22.0, slot * 0.8 / max(len(groups), 1))
    peak = max((g.stages[k + 1].from_top or 0 for g in groups for k in range(len(stages))), default=0) or 1
    peak = min(1.0, peak * 1.15)
    parts = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{chart_id}" xmlns="http://www.w3.org/2000/svg">']
    for tick in range(5):
        y = top_pad + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" stroke="{"#9ca3af" if not tick else "#f3f4f6"}"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="9" fill="#6b7280">{peak * tick / 4 * 100:.0f}%</text>')
    for k, stage in enumerate(stages):
        x0 = left + k * slot + (slot - bar_w * len(groups)) / 2
        for g, group in enumerate(groups):
            rate = group.stages[k + 1].from_top or 0.0
            h = plot_h * rate / peak
            parts.append(
                f'<rect class="bar" data-group="{escape(group.key)}" data-stage="{escape(stage.id)}" x="{x0 + g * bar_w:.1f}" y="{top_pad + plot_h - h:.1f}" '
                f'width="{bar_w - 1.5:.1f}" height="{h:.1f}" fill="{COLOURS[g % len(COLOURS)]}"><title>{escape(group.label)} · {escape(stage.id)}: {pct(rate)}</title></rect>'
            )
        parts.append(f'<text x="{left + k * slot + slot / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="11">{escape(stage.label)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{COLOURS[g % len(COLOURS)]}"></i>{escape(group.label)} ({group.entered:,})</span>' for g, group in enumerate(groups))
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _chip(stage: StageResult, row: GroupStage) -> str:
    verdict = row.verdict or ""
    css = "better" if verdict == BETTER else "worse" if verdict == WORSE else "same"
    p_value = "" if row.p_value is None else f", p {row.p_value:.3f}"
    small = " ⚠" if row.small_sample else ""
    lift = "" if row.lift is None else f" {row.lift * 100:+.1f} pt"
    short = "n.s." if verdict not in (BETTER, WORSE) else verdict
    return f'<span class="chip {css}" data-stage="{escape(stage.id)}" title="{escape(verdict + p_value)}">{escape(stage.label)}{lift} {short}{small}</span>'


def verdict_of(group: FunnelGroup) -> str:
    """One line per group: where it does significantly better or worse than the baseline, else that nothing differs."""
    worse = [s.id for s in group.stages[1:] if s.verdict == WORSE]
    better = [s.id for s in group.stages[1:] if s.verdict == BETTER]
    parts = ([f"better at {', '.join(better)}"] if better else []) + ([f"worse at {', '.join(worse)}"] if worse else [])
    return "; ".join(parts) if parts else "no significant difference at any stage"


def verdicts_html(report: FunnelReport, kind: str) -> str:
    """The verdict of the test for each group against the baseline, stage by stage, as chips that wrap."""
    baseline = next((g for g in report.groups if g.baseline), None)
    if baseline is None:
        return ""
    items = []
    for group in compared(report):
        if group.baseline:
            continue
        chips = "".join(_chip(stage, row) for stage, row in zip(report.stages[1:], group.stages[1:], strict=True) if row.verdict is not None)
        thin = " (⚠ small samples: read as a hint)" if any(row.small_sample for row in group.stages[1:]) else ""
        items.append(
            f'<li data-group="{escape(group.key)}"><b>{escape(group.label)}</b> vs {escape(baseline.label)}: '
            f'<span class="verdict">{escape(verdict_of(group))}</span>{escape(thin)}<div class="chips">{chips}</div></li>'
        )
    what, base = KINDS[kind]
    note = (
        f'<p class="note">Each {what}\'s rate from the top against {escape(baseline.label)} ({base}): lift in points, '
        "two-proportion z-test at p &lt; 0.05 (better, worse, n.s. = no significant difference); ⚠ fewer than 10 successes or failures.</p>"
    )
    if report.before_test:
        note += (
            f'<p class="note" id="{kind}-before-test">Not tested, before the test: {escape(", ".join(report.before_test))}. '
            "Most contacts reached these stages before their first A/B draft, so the draft cannot have moved them.</p>"
        )
    return f'<ul class="verdicts" id="{kind}-verdicts">{"".join(items)}</ul>{note}'


def _lift(row: GroupStage) -> str:
    if row.lift is None:
        return ""
    relative = "" if row.relative_lift is None else f" ({row.relative_lift * 100:+.0f}%)"
    p_value = "" if row.p_value is None else f" p {row.p_value:.3f}"
    verdict = f' <span class="{"better" if row.verdict == BETTER else "worse" if row.verdict == WORSE else "note"}">{escape(row.verdict or "")}</span>'
    small = ' <span class="warn">⚠ small</span>' if row.small_sample else ""
    return f'<div class="ci">lift {row.lift * 100:+.1f} pt{relative}{p_value}{verdict}{small}</div>'


def _ci(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f'<div class="ci">[{interval[0] * 100:.1f}–{interval[1] * 100:.1f}%]</div>'


def group_table(report: FunnelReport, kind: str, table_id: str) -> str:
    """Every group's count · rate from the top with its 95% Wilson interval and its lift, in a box that scrolls on a phone."""
    head = f'<tr><th class="l">{kind}</th>' + "".join(f"<th>{stage_cell(s)}</th>" for s in report.stages) + "</tr>"
    rows = []
    for group in report.groups:
        label = escape(group.label) + (' <span class="note">(baseline)</span>' if group.baseline else "")
        cells = [f'<td class="l">{label}</td>']
        for k, stage in enumerate(group.stages):
            if k == 0:
                cells.append(f"<td>{stage.count:,}</td>")
            else:
                before = '<div class="note before">before the test</div>' if stage.id in report.before_test else ""
                cells.append(f"<td>{stage.count:,} · {pct(stage.from_top)}{_ci(stage.top_ci)}{_lift(stage)}{before}</td>")
        rows.append(f'<tr data-group="{escape(group.key)}">' + "".join(cells) + "</tr>")
    warnings = "".join(f'<p class="note warn">⚠ {escape(w)}</p>' for w in report.warnings)
    note = '<p class="note">Count · rate from the top, with its 95% Wilson interval.</p>'
    return f'<div class="scroll"><table id="{table_id}">{head}{"".join(rows)}</table></div>{note}{warnings}'


def hooks_html(report: FunnelReport) -> str:
    if not report.groups:
        return '<p class="note">No contacts yet.</p>'
    return f'<div class="pair"><div>{comparison_svg(report, "hook-chart")}</div><div>{verdicts_html(report, "hook")}</div></div>' + group_table(report, "hook", "hook-table")


def variants_html(report: FunnelReport) -> str:
    """The A/B section: variants against the holdout; without a holdout there is no test, only the rates."""
    groups = compared(report)
    if not groups:
        return '<p class="note">No contact has received a variant draft yet.</p>'
    left_out = next((g.entered for g in report.groups if g.key == NONE), 0)
    note = f'<p class="note">{left_out:,} contacts received no variant draft and are not part of the test.</p>' if left_out else ""
    if not any(g.baseline for g in groups):
        note += '<p class="note warn">No holdout drafts recorded: nothing to compare the variants against (give a variant <code>holdout: {weight: 10}</code>).</p>'
    pair = f'<div class="pair"><div>{comparison_svg(report, "variant-chart")}</div><div>{verdicts_html(report, "variant")}{note}</div></div>'
    return pair + group_table(report, "variant", "variant-table")
