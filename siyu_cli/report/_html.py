"""One self-contained HTML report a manager reads on a phone or a desktop: inline CSS and SVG, nothing fetched.

The page is a list of sections (`Section`), each built by one function of `SECTIONS` from a
`ReportContext` that computes each funnel grouping and the SOP once for all sections. To add a
section, write a builder `(ReportContext) -> Section | None` (in its own module if it is large)
and put it in `SECTIONS` where it belongs; the page, its contents list and the CLI's summary
line follow. Ids are stable (`headline`, `next-list`, `trend`, `funnel-chart`, `funnel-table`,
`hook-comparison`, `hook-chart`, `hook-table`, `variant-table`, `touch-table`, `sop-heatmap`,
`sop-table`, `timeline`) so people can link to them and tests can find them.

Phones: charts are SVGs scaled by their viewBox to the width of their box (`width: 100%`), laid
out in grids that stack below 700 px; long tables sit in boxes that scroll sideways on their
own, so the page itself never does. Chinese renders with the fonts every phone and desktop
carries (PingFang on Apple, Microsoft YaHei on Windows, Noto/Source Han on Android and Linux).
Every piece of text from a playbook or the store goes through html.escape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from html import escape
from pathlib import Path

import sqlite_utils

from siyu_cli.errors import SiyuError
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.report._capacity_section import capacity_section
from siyu_cli.report._compare import comparison_svg, hooks_html, stage_cell, stage_name, variants_html
from siyu_cli.report._execution import Execution, execution, heatmap_html
from siyu_cli.report._funnel import CHANNELS, FunnelReport, funnel, human_duration
from siyu_cli.report._groups import groups_section
from siyu_cli.report._headline import Sales, cards_html, figures, sales, trend_html
from siyu_cli.report._journeys import journey_report, journeys_html
from siyu_cli.report._next import next_html, next_steps
from siyu_cli.report._sop import SopReport, sop, task_cells

FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif'
FUNNEL_BLUE = "#2563eb"
CSS = f"""
*, *::before, *::after {{ box-sizing: border-box; }}
body {{ font-family: {FONT}; color: #1f2937; margin: 0 auto; max-width: 1180px; padding: 16px; line-height: 1.45; }}
h1 {{ font-size: 22px; margin: 4px 0; }}
h2 {{ font-size: 18px; margin-top: 32px; border-bottom: 2px solid #e5e7eb; padding-bottom: 6px; }}
h3 {{ font-size: 15px; }}
.meta, .note {{ color: #6b7280; font-size: 13px; }}
.synthetic {{ background: #fef3c7; border: 1px solid #f59e0b; padding: 6px 10px; border-radius: 6px; display: inline-block; }}
nav.toc {{ display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 13px; margin: 8px 0; }}
nav.toc a {{ color: #2563eb; text-decoration: none; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 10px; margin: 12px 0; }}
.card, ol.next li, ul.verdicts li, .meta {{ overflow-wrap: anywhere; }}
.card {{ border: 1px solid #e5e7eb; border-left: 4px solid #9ca3af; border-radius: 8px; padding: 10px 12px; min-width: 0; }}
.card.met {{ border-left-color: #16a34a; }}
.card.miss {{ border-left-color: #dc2626; }}
.card .label {{ font-size: 13px; color: #4b5563; }}
.card .value {{ font-size: 24px; font-weight: bold; margin: 2px 0; }}
.card .detail, .card .target {{ font-size: 12px; color: #6b7280; }}
.card.met .target {{ color: #15803d; }}
.card.miss .target {{ color: #b91c1c; font-weight: bold; }}
ol.next {{ padding-left: 22px; }}
ol.next li {{ margin: 6px 0; }}
ol.next li.ok {{ color: #15803d; }}
ol.next a {{ text-decoration: none; color: #2563eb; }}
.panels, .pair {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 14px; align-items: start; }}
.pair > * {{ min-width: 0; }}
figure.panel {{ margin: 0; min-width: 0; }}
figure.panel figcaption {{ font-size: 13px; color: #4b5563; }}
svg.chart {{ display: block; width: 100%; height: auto; max-width: 560px; }}
svg text {{ font-family: {FONT}; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 6px 0; }}
.legend i {{ display: inline-block; width: 11px; height: 11px; margin-right: 4px; vertical-align: -1px; }}
ul.verdicts {{ padding-left: 18px; font-size: 14px; }}
ul.verdicts li {{ margin: 6px 0; }}
.chips {{ display: flex; flex-wrap: wrap; gap: 4px; margin-top: 3px; }}
.chip {{ font-size: 12px; border-radius: 10px; padding: 1px 8px; background: #f3f4f6; white-space: nowrap; }}
.chip.better {{ background: #dcfce7; color: #166534; }}
.chip.worse {{ background: #fee2e2; color: #991b1b; }}
.scroll {{ max-width: 100%; overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 10px 0; }}
th, td {{ border: 1px solid #e5e7eb; padding: 5px 9px; min-width: 3.5em; text-align: right; vertical-align: top; }}
th {{ background: #f3f4f6; }}
td.l, th.l {{ text-align: left; }}
.met {{ color: #16a34a; font-weight: bold; }}
.miss {{ color: #dc2626; font-weight: bold; }}
.ci {{ color: #6b7280; font-size: 11px; }}
.better {{ color: #16a34a; }}
.worse {{ color: #dc2626; }}
.warn {{ color: #b45309; }}
table.heat {{ table-layout: fixed; width: 100%; font-size: 11px; }}
table.heat th, table.heat td {{ padding: 2px 1px; text-align: center; vertical-align: middle; overflow: hidden; }}
table.heat thead th, table.heat tr:first-child th {{ font-weight: normal; font-size: 11px; vertical-align: bottom; }}
table.heat th.day {{ width: 2.6em; }}
table.heat td.off {{ background: #f9fafb; }}
table.heat td.na {{ background: #e5e7eb; }}
table.heat tr.all th, table.heat tr.all td {{ font-weight: bold; border-top: 2px solid #9ca3af; }}
details {{ margin: 10px 0; }}
summary {{ cursor: pointer; color: #2563eb; font-size: 14px; }}
.timeline td {{ text-align: left; font-size: 12px; min-width: 70px; }}
.timeline td.empty {{ background: #fafafa; }}
.timeline .chip {{ display: block; background: none; padding: 0; }}
.timeline tr[data-calendar="holiday"] td.day {{ background: #fee2e2; }}
.timeline .cal {{ font-size: 11px; font-weight: bold; white-space: nowrap; }}
.timeline .cal.holiday {{ color: #b91c1c; }}
.timeline .cal.workday {{ color: #1d4ed8; }}
@media (max-width: 480px) {{ body {{ padding: 10px; }} .card .value {{ font-size: 20px; }} .cards {{ grid-template-columns: repeat(2, minmax(0, 1fr)); }} }}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


@dataclass
class Section:
    """One part of the page: `id` is its anchor, `title` its heading and its entry in the contents."""

    id: str
    title: str
    body: str


@dataclass
class ReportContext:
    """What the sections read, each computed once however many sections read it."""

    db: sqlite_utils.Database
    playbook: LoadedPlaybook
    generated_at: datetime
    _funnels: dict[str | None, FunnelReport] = field(default_factory=dict)

    def funnel(self, by: str | None = None) -> FunnelReport | None:
        """The funnel, overall or grouped; None when the playbook has none."""
        if self.playbook.model.funnel is None:
            return None
        if by not in self._funnels:
            self._funnels[by] = funnel(self.db, self.playbook, by=by)
        return self._funnels[by]

    @property
    def entered(self) -> int:
        overall = self.funnel()
        return overall.entered if overall is not None else 0

    def hooks(self) -> FunnelReport | None:
        return self.funnel("hook") if self.playbook.model.hooks and self.entered else None

    def variants(self) -> FunnelReport | None:
        return self.funnel("variant") if self.has_variants and self.entered else None

    @cached_property
    def has_variants(self) -> bool:
        model = self.playbook.model
        return any(b.variants for b in model.beats) or any(s.variants for j in model.journeys for s in j.steps)

    @cached_property
    def sop(self) -> SopReport:
        return sop(self.db, self.playbook)

    @cached_property
    def execution(self) -> Execution:
        return execution(self.sop, task_cells(self.db, self.playbook), self.playbook)

    @cached_property
    def sales(self) -> Sales:
        return sales(self.db, self.playbook)


def funnel_svg(report: FunnelReport) -> str:
    """One bar per stage, 360 units wide, its name above it: readable at a phone's width, every bar visible."""
    stages = report.stages
    width, bar_h, label_h, gap = 360, 20, 17, 9
    row = label_h + bar_h + gap
    top = max((s.count for s in stages), default=0)
    height = gap + len(stages) * row
    parts = [f'<svg id="funnel-chart" class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="funnel" xmlns="http://www.w3.org/2000/svg">']
    for k, stage in enumerate(stages):
        y = gap + k * row
        w = 0.0 if not top else max(width * stage.count / top, 3.0 if stage.count else 0.0)
        detail = f"{stage.count:,} · {_pct(stage.from_top)}" + (f" · step {_pct(stage.step_rate)}" if k else "")
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{escape(stage_name(stage))}</text>')
        parts.append(f'<text x="{width}" y="{y + 12}" text-anchor="end" font-size="11" fill="#4b5563">{escape(detail)}</text>')
        parts.append(f'<rect x="0" y="{y + label_h}" width="{width}" height="{bar_h}" rx="3" fill="#eff6ff"/>')
        parts.append(
            f'<rect class="bar" data-stage="{escape(stage.id)}" data-count="{stage.count}" x="{(width - w) / 2:.1f}" y="{y + label_h}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{FUNNEL_BLUE}">'
            f"<title>{escape(stage_name(stage))}: {stage.count:,}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hook_svg(report: FunnelReport) -> str:
    """The hooks' grouped bars (kept under this name for callers of the package)."""
    return comparison_svg(report, "hook-chart")


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
            f'<td class="l">{stage_cell(stage)}</td>'
            f"<td>{stage.count:,}</td><td>{step}</td><td>{_pct(stage.from_top)}</td>"
            f"<td>{escape(human_duration(stage.median_seconds))}</td><td>{target}</td><td>{actual}</td>"
            f"<td>{met}</td></tr>"
        )
    head = (
        '<tr><th class="l">stage</th><th>contacts</th><th>step rate</th><th>from top</th><th>median time</th>'
        "<th>target</th><th>actual</th><th>met</th></tr>"
    )
    return f'<div class="scroll"><table id="funnel-table">{head}{"".join(rows)}</table></div>'




def _touch_table(report: FunnelReport) -> str:
    """Stages by the channel of the last touch in the 24 h before: count · share, and live : group : 1v1."""
    head = '<tr><th class="l">stage</th><th>contacts</th>' + "".join(f"<th>{name}</th>" for name in CHANNELS) + "<th>live : group : 1v1</th></tr>"
    rows = []
    for stage, touch in zip(report.stages, report.touches, strict=True):
        cells = "".join(f'<td data-channel="{name}">{touch.channels[name]:,} · {_pct(touch.share[name])}</td>' for name in CHANNELS)
        ratio = f"1 : {touch.ratio['group']:.1f} : {touch.ratio['1v1']:.1f}" if touch.ratio else "–"
        rows.append(f'<tr data-stage="{escape(stage.id)}"><td class="l">{stage_cell(stage)}</td><td>{touch.count:,}</td>{cells}<td>{ratio}</td></tr>')
    note = (
        "Each contact who reached a stage counts for the channel of the last draft sent to it, posted in a group it was in, "
        "or sent live to its account, in the 24 h before that stage's event (none: no such draft). 1v1 = private + journey + welcome; "
        "Moments posts are not touches."
    )
    return f'<div class="scroll"><table id="touch-table">{head}{"".join(rows)}</table></div><p class="note">{note}</p>'


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
    return f'<div class="scroll"><table id="sop-table">{head}{"".join(body)}</table></div>'


def _timeline_table(playbook: LoadedPlaybook) -> str:
    """Days as rows, beats as columns; each cell lists the times and targets of that beat that day. Each day is
    marked on China's calendar as `siyu timeline` marks it (休 春节 for a holiday, 班 调休 for a make-up workday)."""
    from siyu_cli.timeline import calendar_days, occurrences

    run = playbook.cohorts[0]
    search = [playbook.base_dir, playbook.base_dir / "templates", playbook.base_dir.parent / "templates"]
    cells: dict[tuple[int, str], list[str]] = defaultdict(list)
    try:
        for occ in occurrences(playbook, run, search):
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
    marks, unknown = calendar_days(playbook, run)
    beats = playbook.model.beats
    head = "<tr><th>day</th>" + "".join(f'<th class="l">{escape(b.title or b.id)}<br><span class="note">{escape(b.channel)}</span></th>' for b in beats) + "</tr>"
    rows = []
    for day in range(1, playbook.model.days + 1):
        phase = playbook.phase_of(day)
        when = run.start + timedelta(days=day - 1)
        mark = marks.get(day)  # None where the year has no schedule: left unmarked, never guessed
        calendar = f' data-calendar="{mark.kind}"' if mark else ""
        label = f"{day}<div class='note'>{when:%m-%d}{(' · ' + escape(phase.title)) if phase else ''}</div>"
        if mark and mark.label:
            label += f'<div class="cal {mark.kind}">{escape(mark.label)}</div>'
        row = [f'<td class="day">{label}</td>']
        for beat in beats:
            entries = cells.get((day, beat.id))
            if entries:
                row.append("<td>" + "".join(f'<span class="chip">{escape(e)}</span>' for e in entries) + "</td>")
            else:
                row.append('<td class="empty"></td>')
        rows.append(f'<tr data-day="{day}"{calendar}>' + "".join(row) + "</tr>")
    gaps = f" Holidays not marked in {', '.join(map(str, unknown))}: no State Council schedule in the holidays package (see calendar: in the README)." if unknown else ""
    note = f'<p class="note">Cohort {escape(run.id)}, day 1 = {run.start.isoformat()}, times in {escape(playbook.model.timezone)}; 休 a holiday, 班 a make-up workday (调休).{gaps}</p>'
    return f'{note}<div class="scroll"><table id="timeline" class="timeline">{head}{"".join(rows)}</table></div>'


def _headline(ctx: ReportContext) -> Section:
    return Section("figures", "Headline 核心指标", cards_html(figures(ctx.funnel(), ctx.sales)))


def _next(ctx: ReportContext) -> Section:
    items = next_steps(ctx.funnel(), ctx.hooks(), ctx.variants(), ctx.execution)
    return Section("next", "What to look at next 下一步看什么", next_html(items))


def _trend(ctx: ReportContext) -> Section:
    return Section("daily", "Daily trend 每日趋势", trend_html(ctx.sales))


def _funnel(ctx: ReportContext) -> Section:
    overall = ctx.funnel()
    if overall is None:
        return Section("funnel", "Funnel 漏斗", '<p class="note" id="funnel-chart">The playbook has no funnel.</p>')
    if not overall.entered:
        body = '<p class="note" id="funnel-chart">No contacts entered the funnel yet; import events with <code>siyu import events</code>.</p>'
        return Section("funnel", "Funnel 漏斗", body)
    window = f" within {human_duration(overall.window_seconds)} of entering" if overall.window_seconds else ""
    note = (
        f'<p class="note">{overall.entered:,} contacts entered{escape(window)}. '
        "Step rate: a stage's count over the last required stage before it (an optional stage may be skipped and does not move the clock). "
        "A number as target is held against the step rate, {rate, of} against count(stage) / count(of).</p>"
    )
    return Section("funnel", "Funnel 漏斗", f'<div class="pair"><div>{funnel_svg(overall)}</div><div>{_funnel_table(overall)}{note}</div></div>')


def _hooks(ctx: ReportContext) -> Section | None:
    if ctx.funnel() is None:
        return None
    report = ctx.hooks()
    if not ctx.playbook.model.hooks:
        body = '<p class="note">The playbook has no hooks to compare.</p>'
    elif report is None:
        body = '<p class="note">No contacts yet.</p>'
    else:
        body = hooks_html(report)
    return Section("hooks", "Hooks 钩子对比", f'<section id="hook-comparison">{body}</section>')


def _ab(ctx: ReportContext) -> Section | None:
    if ctx.funnel() is None or not ctx.has_variants:
        return None
    report = ctx.variants()
    body = variants_html(report) if report is not None else '<p class="note">No contacts yet.</p>'
    return Section("ab", "A/B test 对照实验", f'<section id="ab-test">{body}</section>')


def _touches(ctx: ReportContext) -> Section | None:
    if not ctx.entered:
        return None
    report = ctx.funnel("touch")
    assert report is not None  # entered implies a funnel
    return Section("touches", "Touches 触达归因", _touch_table(report))


def _journeys(ctx: ReportContext) -> Section | None:
    body = journeys_html(journey_report(ctx.db, ctx.playbook))
    return Section("journeys", "Journeys 旅程", body) if body else None


def _sop(ctx: ReportContext) -> Section:
    rows = len(ctx.sop.rows)
    table = f"<details><summary>Every day, beat and persona ({rows:,} rows)</summary>{_sop_table(ctx.sop)}</details>" if rows else ""
    return Section("sop", "SOP execution 执行情况", heatmap_html(ctx.execution) + table)


def _timeline(ctx: ReportContext) -> Section:
    days = ctx.playbook.model.days
    return Section("timeline-section", "Campaign timeline 排期", f"<details><summary>The plan, day by day ({days} days)</summary>{_timeline_table(ctx.playbook)}</details>")


Builder = Callable[[ReportContext], Section | None]
# Capacity 人效 is built in siyu_cli.report._capacity_section, group health 群健康 in siyu_cli.report._groups.
SECTIONS: list[Builder] = [_headline, _next, _trend, _funnel, _hooks, _ab, _touches, _journeys, _sop, capacity_section, groups_section, _timeline]


def render(playbook: LoadedPlaybook, sections: list[Section], *, generated_at: datetime, synthetic: int) -> str:
    """The page around the sections: title, provenance, the synthetic banner, a contents line."""
    model = playbook.model
    banner = f'<p class="synthetic">Includes {synthetic:,} synthetic contacts (siyu simulate): not real customers.</p>' if synthetic else ""
    toc = '<nav class="toc">' + "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections) + "</nav>"
    body = "".join(f'<h2 id="{s.id}">{escape(s.title)}</h2>{s.body}' for s in sections)
    title = escape(model.title)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} · siyu report</title><style>{CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="meta">playbook {escape(playbook.id)} · {escape(str(playbook.path))} · generated {escape(generated_at.astimezone(playbook.tz).strftime("%Y-%m-%d %H:%M %Z"))}</p>'
        f"{banner}{toc}{body}</body></html>\n"
    )


def html_report(db: sqlite_utils.Database, playbook: LoadedPlaybook, *, generated_at: datetime) -> str:
    """The whole report as one HTML string."""
    return _page(db, playbook, generated_at)[0]


def _page(db: sqlite_utils.Database, playbook: LoadedPlaybook, generated_at: datetime) -> tuple[str, list[Section]]:
    ctx = ReportContext(db, playbook, generated_at)
    sections = [section for build in SECTIONS if (section := build(ctx)) is not None]
    overall = ctx.funnel()
    return render(playbook, sections, generated_at=generated_at, synthetic=overall.synthetic if overall else 0), sections


def write_html(db: sqlite_utils.Database, playbook: LoadedPlaybook, out: Path, *, generated_at: datetime) -> list[Section]:
    """Write atomically, so a browser never shows half a report; the sections written, for the CLI to name."""
    if out.parent and not out.parent.exists():
        raise SiyuError(f"{out}: folder {out.parent} does not exist", hint="create the folder first or pass --out to an existing one")
    if out.is_dir():
        raise SiyuError(f"{out} is a folder, not a file to write the report to", hint=f"name a file, e.g. --out {out / 'report.html'}")
    text, sections = _page(db, playbook, generated_at)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)  # nothing half-written is left beside it
        raise SiyuError(f"{out}: cannot write the report: {exc.strerror}", hint="pass --out a file in a folder you can write to") from None
    return sections
