"""One self-contained HTML report: inline CSS and SVG drawn here, nothing fetched when it is viewed.

Sections carry stable ids (`funnel-chart`, `funnel-table`, `hook-comparison`, `hook-chart`,
`hook-table`, `touch-table`, `sop-table`, `timeline`) so people can link to them and tests can
find them. Every piece of text from a playbook or the store goes through html.escape.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from html import escape
from pathlib import Path

import sqlite_utils

from siyu_cli.errors import SiyuError
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.report._funnel import CHANNELS, FunnelReport, GroupStage, StageResult, funnel, human_duration
from siyu_cli.report._journeys import journey_report, journeys_html
from siyu_cli.report._sop import SopReport, sop

FONT = '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif'
COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#4b5563")
CSS = f"""
body {{ font-family: {FONT}; color: #1f2937; margin: 32px auto; max-width: 1180px; padding: 0 16px; }}
h1 {{ font-size: 24px; margin-bottom: 4px; }}
h2 {{ font-size: 19px; margin-top: 36px; border-bottom: 2px solid #e5e7eb; padding-bottom: 6px; }}
.meta, .note {{ color: #6b7280; font-size: 13px; }}
.synthetic {{ background: #fef3c7; border: 1px solid #f59e0b; padding: 6px 10px; border-radius: 6px; display: inline-block; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 10px 0; }}
th, td {{ border: 1px solid #e5e7eb; padding: 5px 9px; text-align: right; vertical-align: top; }}
th {{ background: #f3f4f6; }}
td.l, th.l {{ text-align: left; }}
.met {{ color: #16a34a; font-weight: bold; }}
.miss {{ color: #dc2626; font-weight: bold; }}
.ci {{ color: #6b7280; font-size: 11px; }}
.better {{ color: #16a34a; }}
.worse {{ color: #dc2626; }}
.warn {{ color: #b45309; }}
.timeline td {{ text-align: left; font-size: 12px; min-width: 70px; }}
.timeline td.empty {{ background: #fafafa; }}
.chip {{ display: block; white-space: nowrap; }}
svg text {{ font-family: {FONT}; }}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f'<div class="ci">[{interval[0] * 100:.1f}–{interval[1] * 100:.1f}%]</div>'


def _stage_name(stage_label: str, stage_id: str) -> str:
    return f"{stage_label} {stage_id}" if stage_label != stage_id else stage_id


def funnel_svg(report: FunnelReport) -> str:
    """Centred horizontal bars, widest at the top: the funnel's shape at a glance."""
    stages = report.stages
    width, bar_h, gap, left, right = 900, 34, 12, 190, 220
    span = width - left - right
    top = max((s.count for s in stages), default=0)
    height = gap + len(stages) * (bar_h + gap)
    parts = [f'<svg id="funnel-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="funnel">']
    for k, stage in enumerate(stages):
        y = gap + k * (bar_h + gap)
        w = 0.0 if not top else max(span * stage.count / top, 2.0 if stage.count else 0.0)
        x = left + (span - w) / 2
        name = escape(_stage_name(stage.label, stage.id))
        parts.append(f'<text x="{left - 10}" y="{y + bar_h / 2 + 5}" text-anchor="end" font-size="14">{name}</text>')
        parts.append(
            f'<rect class="bar" data-stage="{escape(stage.id)}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" fill="{COLOURS[0]}" fill-opacity="{1 - 0.12 * k:.2f}"/>'
        )
        detail = f"{stage.count:,} · {_pct(stage.from_top)}"
        if k:
            detail += f" · step {_pct(stage.step_rate)}"
        parts.append(f'<text x="{left + span + 10}" y="{y + bar_h / 2 + 5}" font-size="13">{escape(detail)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _stage_cell(stage: StageResult) -> str:
    name = escape(_stage_name(stage.label, stage.id))
    return f'{name} <span class="note">(optional)</span>' if stage.optional else name


def _rate_of(rate: float | None, base: str | None) -> str:
    return _pct(rate) + (f' <span class="note">of {escape(base)}</span>' if base else "")


def _funnel_table(report: FunnelReport) -> str:
    rows = []
    for k, stage in enumerate(report.stages):
        if stage.met is None:
            met = ""
        else:
            met = '<span class="met">✓ met</span>' if stage.met else '<span class="miss">✗ not met</span>'
        step = "–"
        if k:
            step = _rate_of(stage.step_rate, stage.base if stage.base != report.stages[k - 1].id else None)
        target = actual = ""
        if stage.target is not None:
            target, actual = _rate_of(stage.target, stage.target_of), _rate_of(stage.target_rate, stage.target_of)
        rows.append(
            "<tr>"
            f'<td class="l">{_stage_cell(stage)}</td>'
            f"<td>{stage.count:,}</td><td>{step}</td><td>{_pct(stage.from_top)}</td>"
            f"<td>{escape(human_duration(stage.median_seconds))}</td><td>{target}</td><td>{actual}</td>"
            f"<td>{met}</td></tr>"
        )
    head = (
        '<tr><th class="l">stage</th><th>contacts</th><th>step rate</th><th>from top</th><th>median time</th>'
        "<th>target</th><th>actual</th><th>met</th></tr>"
    )
    return f'<table id="funnel-table">{head}{"".join(rows)}</table>'


def hook_svg(report: FunnelReport) -> str:
    """Grouped bars: for each stage after entry, each hook's rate from the top, side by side."""
    groups = report.groups
    stages = report.stages[1:]
    width, height, left, bottom, top_pad = 900, 300, 50, 60, 20
    plot_h = height - bottom - top_pad
    slot = (width - left - 20) / max(len(stages), 1)
    bar_w = min(36.0, slot * 0.8 / max(len(groups), 1))
    peak = max((g.stages[k + 1].from_top or 0 for g in groups for k in range(len(stages))), default=0) or 1
    peak = min(1.0, peak * 1.15)
    parts = [f'<svg id="hook-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 24 * ((len(groups) + 3) // 4)}" role="img" aria-label="hooks">']
    parts.append(f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#9ca3af"/>')
    for tick in range(5):
        value = peak * tick / 4
        y = top_pad + plot_h - plot_h * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">{value * 100:.0f}%</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#f3f4f6"/>')
    for k, stage in enumerate(stages):
        x0 = left + k * slot + (slot - bar_w * len(groups)) / 2
        for g, group in enumerate(groups):
            rate = group.stages[k + 1].from_top or 0.0
            h = plot_h * rate / peak
            x = x0 + g * bar_w
            y = top_pad + plot_h - h
            parts.append(
                f'<rect class="bar" data-group="{escape(group.key)}" data-stage="{escape(stage.id)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{COLOURS[g % len(COLOURS)]}"><title>{escape(group.label)} · {escape(stage.id)}: {_pct(rate)}</title></rect>'
            )
        parts.append(
            f'<text x="{left + k * slot + slot / 2:.1f}" y="{top_pad + plot_h + 20}" text-anchor="middle" font-size="13">{escape(_stage_name(stage.label, stage.id))}</text>'
        )
    for g, group in enumerate(groups):
        x = left + (g % 4) * 210
        y = height - 10 + 24 * (g // 4)
        parts.append(f'<rect x="{x}" y="{y - 11}" width="12" height="12" fill="{COLOURS[g % len(COLOURS)]}"/>')
        parts.append(f'<text x="{x + 18}" y="{y}" font-size="12">{escape(group.label)} ({group.entered:,})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _lift(row: GroupStage) -> str:
    if row.lift is None:
        return ""
    relative = "" if row.relative_lift is None else f" ({row.relative_lift * 100:+.0f}%)"
    p_value = "" if row.p_value is None else f" p {row.p_value:.3f}"
    verdict = f' <span class="{"better" if row.verdict == "better" else "worse" if row.verdict == "worse" else "note"}">{escape(row.verdict or "")}</span>'
    small = ' <span class="warn">⚠ small</span>' if row.small_sample else ""
    return f'<div class="ci">lift {row.lift * 100:+.1f} pt{relative}{p_value}{verdict}{small}</div>'


def _hook_table(report: FunnelReport) -> str:
    head = '<tr><th class="l">hook</th>' + "".join(f"<th>{_stage_cell(s)}</th>" for s in report.stages) + "</tr>"
    rows = []
    for group in report.groups:
        label = escape(group.label) + (' <span class="note">(baseline)</span>' if group.baseline else "")
        cells = [f'<td class="l">{label}</td>']
        for k, stage in enumerate(group.stages):
            if k == 0:
                cells.append(f"<td>{stage.count:,}</td>")
            else:
                cells.append(f"<td>{stage.count:,} · {_pct(stage.from_top)}{_ci(stage.top_ci)}{_lift(stage)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    baseline = next((g for g in report.groups if g.baseline), None)
    note = "Count · rate from the top, with its 95% Wilson interval."
    if baseline is not None:
        note += (
            f" Lift: each hook's rate from the top minus {escape(baseline.label)}'s (the first hook in the playbook with contacts);"
            " two-proportion z-test at p &lt; 0.05: better, worse or no significant difference."
        )
    warnings = "".join(f'<p class="note warn">⚠ {escape(w)}</p>' for w in report.warnings)
    return f'<table id="hook-table">{head}{"".join(rows)}</table><p class="note">{note}</p>{warnings}'


def _touch_table(report: FunnelReport) -> str:
    """Stages by the channel of the last touch in the 24 h before: count · share, and live : group : 1v1."""
    head = '<tr><th class="l">stage</th><th>contacts</th>' + "".join(f"<th>{name}</th>" for name in CHANNELS) + "<th>live : group : 1v1</th></tr>"
    rows = []
    for stage, touch in zip(report.stages, report.touches, strict=True):
        cells = "".join(f'<td data-channel="{name}">{touch.channels[name]:,} · {_pct(touch.share[name])}</td>' for name in CHANNELS)
        ratio = f"1 : {touch.ratio['group']:.1f} : {touch.ratio['1v1']:.1f}" if touch.ratio else "–"
        rows.append(f'<tr data-stage="{escape(stage.id)}"><td class="l">{_stage_cell(stage)}</td><td>{touch.count:,}</td>{cells}<td>{ratio}</td></tr>')
    note = (
        "Each contact who reached a stage counts for the channel of the last draft sent to it, posted in a group it was in, "
        "or sent live to its account, in the 24 h before that stage's event (none: no such draft). 1v1 = private + journey + welcome; "
        "Moments posts are not touches."
    )
    return f'<table id="touch-table">{head}{"".join(rows)}</table><p class="note">{note}</p>'


def _sop_table(report: SopReport) -> str:
    head = (
        '<tr><th>day</th><th class="l">beat</th><th class="l">persona</th><th>due</th><th>sent</th><th>done</th>'
        '<th>late</th><th class="l">skipped</th><th>failed</th><th>unknown</th><th>pending</th></tr>'
    )
    body = []
    for row in [*report.rows, report.total]:
        skipped = ", ".join(f"{escape(reason)} {count}" for reason, count in row.skipped.items()) or ""
        is_total = row is report.total
        beat = "<b>total</b>" if is_total else f"{escape(row.title)} <span class='note'>{escape(row.beat)}</span>"
        body.append(
            f"<tr><td>{'' if is_total or row.day is None else row.day}</td><td class='l'>{beat}</td><td class='l'>{escape(row.persona or '')}</td>"
            f"<td>{row.due}</td><td>{row.sent}</td><td>{row.done}</td><td>{row.late}</td><td class='l'>{skipped}</td>"
            f"<td>{row.failed}</td><td>{row.unknown}</td><td>{row.pending}</td></tr>"
        )
    if not report.rows:
        return '<table id="sop-table">' + head + '</table><p class="note">No drafts recorded yet: run <code>siyu run</code> first.</p>'
    return f'<table id="sop-table">{head}{"".join(body)}</table>'


def _timeline_table(playbook: LoadedPlaybook) -> str:
    """Days as rows, beats as columns; each cell lists the times and targets of that beat that day."""
    from siyu_cli.timeline import occurrences

    run = playbook.cohorts[0]
    search = [playbook.base_dir, playbook.base_dir / "templates", playbook.base_dir.parent / "templates"]
    cells: dict[tuple[int, str], list[str]] = defaultdict(list)
    dates: dict[int, datetime] = {}
    try:
        for occ in occurrences(playbook, run, search):
            dates.setdefault(occ.day, occ.at)
            label = occ.at.astimezone(playbook.tz).strftime("%H:%M")
            if occ.target_kind == "group":
                label += f" {occ.target_id}"
            elif occ.target_kind == "audience":
                label += f" → {occ.target_id}"
            if occ.category:
                label += f" · {occ.category}"
            cells[(occ.day, occ.beat.id)].append(label)
    except SiyuError as exc:
        return f'<table id="timeline" class="timeline"></table><p class="note">Timeline unavailable: {escape(exc.message)}</p>'
    beats = playbook.model.beats
    head = "<tr><th>day</th>" + "".join(f'<th class="l">{escape(b.title or b.id)}<br><span class="note">{escape(b.channel)}</span></th>' for b in beats) + "</tr>"
    rows = []
    for day in range(1, playbook.model.days + 1):
        phase = playbook.phase_of(day)
        when = dates.get(day)
        date_text = (when.astimezone(playbook.tz).strftime("%m-%d") if when else "")
        label = f"{day}<div class='note'>{escape(date_text)}{(' · ' + escape(phase.title)) if phase else ''}</div>"
        row = [f"<td>{label}</td>"]
        for beat in beats:
            entries = cells.get((day, beat.id))
            if entries:
                row.append("<td>" + "".join(f'<span class="chip">{escape(e)}</span>' for e in entries) + "</td>")
            else:
                row.append('<td class="empty"></td>')
        rows.append("<tr>" + "".join(row) + "</tr>")
    note = f'<p class="note">Cohort {escape(run.id)}, day 1 = {run.start.isoformat()}, times in {escape(playbook.model.timezone)}.</p>'
    return f'{note}<table id="timeline" class="timeline">{head}{"".join(rows)}</table>'


def html_report(db: sqlite_utils.Database, playbook: LoadedPlaybook, *, generated_at: datetime) -> str:
    """The whole report as one HTML string."""
    model = playbook.model
    sections: list[str] = []
    if model.funnel is None:
        sections.append('<h2>Funnel 漏斗</h2><p class="note" id="funnel-chart">The playbook has no funnel.</p>')
        synthetic = 0
    else:
        overall = funnel(db, playbook)
        synthetic = overall.synthetic
        if overall.entered:
            chart = funnel_svg(overall) + _funnel_table(overall)
        else:
            chart = '<p class="note" id="funnel-chart">No contacts entered the funnel yet; import events with <code>siyu import events</code>.</p>'
        window = f" within {human_duration(overall.window_seconds)} of entering" if overall.window_seconds else ""
        sections.append(
            f'<h2>Funnel 漏斗</h2><p class="note">{overall.entered:,} contacts entered{escape(window)}. '
            "Step rate: a stage's count over the last required stage before it (an optional stage may be skipped and does not move the clock). "
            "A number as target is held against the step rate, {rate, of} against count(stage) / count(of).</p>" + chart
        )
        if model.hooks:
            by_hook = funnel(db, playbook, by="hook")
            if by_hook.groups:
                body = hook_svg(by_hook) + _hook_table(by_hook)
            else:
                body = '<p class="note">No contacts yet.</p>'
        else:
            body = '<p class="note">The playbook has no hooks to compare.</p>'
        sections.append(f'<h2>Hooks 钩子对比</h2><section id="hook-comparison">{body}</section>')
        if overall.entered:
            sections.append("<h2>Touches 触达归因</h2>" + _touch_table(funnel(db, playbook, by="touch")))
    journeys = journeys_html(journey_report(db, playbook))
    if journeys:
        sections.append("<h2>Journeys 旅程</h2>" + journeys)
    sections.append("<h2>SOP execution 执行情况</h2>" + _sop_table(sop(db, playbook)))
    sections.append("<h2>Campaign timeline 排期</h2>" + _timeline_table(playbook))
    banner = (
        f'<p class="synthetic">Includes {synthetic:,} synthetic contacts (siyu simulate): not real customers.</p>' if synthetic else ""
    )
    title = escape(model.title)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} · siyu report</title><style>{CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="meta">playbook {escape(playbook.id)} · {escape(str(playbook.path))} · generated {escape(generated_at.astimezone(playbook.tz).strftime("%Y-%m-%d %H:%M %Z"))}</p>'
        f"{banner}{''.join(sections)}</body></html>\n"
    )


def write_html(db: sqlite_utils.Database, playbook: LoadedPlaybook, out: Path, *, generated_at: datetime) -> Path:
    """Write atomically, so a browser never shows half a report."""
    text = html_report(db, playbook, generated_at=generated_at)
    if out.parent and not out.parent.exists():
        raise SiyuError(f"{out}: folder {out.parent} does not exist")
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    return out
