"""Measuring the campaign: `report funnel|sop|html` and `simulate`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import typer

from siyu_cli.cli._app import app, examples
from siyu_cli.cli._common import DB_HELP, JSON_HELP, find_playbook, out, playbook_argument, playbook_option, print_json
from siyu_cli.errors import UsageError

PANEL = "Measure 复盘"

report_app = typer.Typer(
    help="Measure the campaign: funnel vs targets, SOP execution, HTML report 数据报告",
    no_args_is_help=True,
    epilog=examples("siyu report funnel playbooks/camp.yaml --by hook", "siyu report html -p playbooks/camp.yaml --out report.html"),
)
app.add_typer(report_app, name="report", rich_help_panel=PANEL)

_DATE_ONLY = re.compile(r"^\s*\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?\s*$")
BAR_WIDTH = 40
EIGHTHS = " ▏▎▍▌▋▊▉"
NO_ENTRY = "no contacts entered the funnel; import events with `siyu import events`"


@contextmanager
def _store(db: str | None) -> Iterator[Any]:
    from siyu_cli.store import default_path, open_store

    handle = open_store(default_path(db), create=False)
    try:
        yield handle
    finally:
        handle.conn.close()


def _bound(text: str | None, tz: tzinfo, *, end: bool) -> datetime | None:
    """A date or date-time in the playbook's zone, in any form an import reads; a bare date as --until includes that whole day."""
    if text is None:
        return None
    from siyu_cli._time import parse_when

    try:
        moment = parse_when(text, tz)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if end and _DATE_ONLY.match(text):
        moment += timedelta(days=1)
    return moment


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(interval: Any) -> str:
    return "" if interval is None else f" [{interval[0] * 100:.1f}–{interval[1] * 100:.1f}%]"


def _stage_name(label: str, stage_id: str) -> str:
    return f"{label} {stage_id}" if label != stage_id else stage_id


def _bar(fraction: float) -> str:
    eighths = round(max(0.0, min(1.0, fraction)) * BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


def _print_funnel(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli.report import human_duration

    console = out()
    window = f" · window {human_duration(report.window_seconds)}" if report.window_seconds else ""
    scope = f" · cohort {report.cohort}" if report.cohort else ""
    console.print(f"[bold]Funnel 漏斗[/] · {escape(report.title)} ({escape(report.playbook)}){escape(window + scope)} · {report.entered:,} contacts entered")
    table = Table(show_edge=False, header_style="bold")
    table.add_column("stage", no_wrap=True)
    for name in ("contacts", "step rate", "from top", "median time", "target", "actual"):
        table.add_column(name, justify="right")
    table.add_column("met", justify="center")
    for k, stage in enumerate(report.stages):
        met = "" if stage.met is None else ("[green]✓[/]" if stage.met else "[red]✗[/]")
        table.add_row(
            _stage_cell(stage),
            f"{stage.count:,}",
            escape(_step_text(report, k)),
            _pct(stage.from_top),
            human_duration(stage.median_seconds) if k else "–",
            escape(_target_text(stage)),
            escape(_actual_text(stage)),
            met,
        )
    console.print(table)
    chart = Table.grid(padding=(0, 1))
    chart.add_column(justify="right", no_wrap=True)
    chart.add_column(no_wrap=True)
    chart.add_column(justify="right", no_wrap=True)
    for stage in report.stages:
        fraction = stage.count / report.entered if report.entered else 0.0
        chart.add_row(escape(_stage_name(stage.label, stage.id)), f"[blue]{_bar(fraction)}[/]", f"{stage.count:,} {_pct(stage.from_top)}")
    console.print(chart)
    for line in _funnel_notes(report):
        console.print(f"[dim]{escape(line)}[/]")
    _synthetic_note(report)


def _stage_cell(stage: Any) -> str:
    from rich.markup import escape

    name = escape(_stage_name(stage.label, stage.id))
    return f"{name} [dim](optional)[/]" if stage.optional else name


def _step_text(report: Any, k: int) -> str:
    """The step rate, naming its base when that is not the stage just above (an optional stage lies between)."""
    if not k:
        return "–"
    stage = report.stages[k]
    if stage.base != report.stages[k - 1].id:
        return f"{_pct(stage.step_rate)} of {stage.base}"
    return _pct(stage.step_rate)


def _target_text(stage: Any) -> str:
    if stage.target is None:
        return ""
    return f"{_pct(stage.target)} of {stage.target_of}" if stage.target_of else _pct(stage.target)


def _actual_text(stage: Any) -> str:
    """The rate the target is held against: the step rate, or count / count(of)."""
    if stage.target is None:
        return ""
    return f"{_pct(stage.target_rate)} of {stage.target_of}" if stage.target_of else _pct(stage.target_rate)


def _funnel_notes(report: Any) -> list[str]:
    """What the rates mean, told with the playbook's own stages and targets."""
    stages = report.stages
    notes = ["Step rate and median time are counted from the last required stage before each stage."]
    step = next((s for s in stages[1:] if s.target is not None and s.target_of is None), None)
    if step is not None:
        notes.append(f"A number as target is held against the step rate: {step.id} {step.target:g} means {step.target * 100:g}% of the contacts who reached {step.base} reach {step.id}.")
    based = next((s for s in stages[1:] if s.target_of is not None), None)
    if based is not None:
        notes.append(
            f"{{rate, of}} is held against count(stage) / count(of): {based.id} {{rate: {based.target:g}, of: {based.target_of}}} "
            f"means {based.target * 100:g}% of the contacts who reached {based.target_of} reach {based.id}."
        )
    if step is None and based is None:
        notes.append("No targets: add `targets:` to the funnel to hold stages against benchmarks.")
    optional = [s.id for s in stages if s.optional]
    if optional:
        notes.append(f"Optional ({', '.join(optional)}): a contact who skips it still goes on; the next stage is looked for from the last required stage reached.")
    return notes


def _synthetic_note(report: Any) -> None:
    if report.synthetic:
        out().print(f"[yellow]includes {report.synthetic:,} synthetic contacts (siyu simulate): not real customers[/]")


GROUP_COLUMN = 28  # characters one group needs side by side: "top 16.8% [11.6–23.6%]", "no significant difference"


def _print_groups(report: Any) -> None:
    """Groups side by side (a column each) when they fit the terminal, else one table per stage."""
    from rich.markup import escape

    console = out()
    console.print(f"[bold]Funnel 漏斗 by {report.by}[/] · {escape(report.title)} ({escape(report.playbook)}) · {report.entered:,} contacts entered")
    if 20 + GROUP_COLUMN * len(report.groups) <= console.width:
        _groups_side_by_side(report)
    else:
        _groups_per_stage(report)
    baseline = next((g for g in report.groups if g.baseline), None)
    verdicts = "two-proportion z-test at p < 0.05: better, worse or no significant difference"
    if report.by == "variant":
        if baseline is not None:
            console.print(f"[dim]Lift: each variant's rate from the top minus the holdout's; {verdicts}.[/]")
        else:
            console.print("[dim]No holdout drafts recorded: nothing to compare the variants against.[/]")
    elif report.by == "hook":
        if baseline is not None:
            console.print(f"[dim]Lift: each hook's rate from the top minus {escape(baseline.label)}'s (the first hook in the playbook with contacts); {verdicts}.[/]")
        else:
            console.print("[dim]No contacts came in through a hook of the playbook: nothing to compare the hooks against.[/]")
    for warning in report.warnings:
        console.print(f"[yellow]⚠ {escape(warning)}[/]")
    _synthetic_note(report)


def _lift_cell(row: Any) -> str:
    if row.lift is None:
        return ""
    relative = "" if row.relative_lift is None else f" ({row.relative_lift * 100:+.0f}%)"
    p_value = "" if row.p_value is None else f" p {row.p_value:.3f}"
    return f"{row.lift * 100:+.1f} pt{relative}{p_value}"


def _verdict_cell(row: Any) -> str:
    """better in green, worse in red; ⚠ small when the test has too few successes or failures to mean much."""
    if row.verdict is None:
        return ""
    colour = {"better": "green", "worse": "red"}.get(row.verdict)
    verdict = f"[{colour}]{row.verdict}[/]" if colour else row.verdict
    return verdict + (" [yellow]⚠ small[/]" if row.small_sample else "")


def _group_header(group: Any) -> str:
    from rich.markup import escape

    return escape(group.label) + (" [dim](baseline)[/]" if group.baseline else "")


def _groups_side_by_side(report: Any) -> None:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", show_lines=True)
    table.add_column("stage", no_wrap=True)
    for group in report.groups:
        table.add_column(_group_header(group), justify="right")
    for k, stage in enumerate(report.stages):
        name = _stage_cell(stage)
        cells = []
        for group in report.groups:
            row = group.stages[k]
            lines = [f"[bold]{row.count:,}[/]"]
            if k:
                lines.append(f"step {_pct(row.step_rate)}{_ci(row.step_ci)}")
                lines.append(f"top {_pct(row.from_top)}{_ci(row.top_ci)}")
                if row.lift is not None:
                    lines += ["lift " + _lift_cell(row), _verdict_cell(row)]
            cells.append("\n".join(lines))
        table.add_row(name if k else f"{name}\n[dim]entered[/]", *cells)
    out().print(table)
    out().print("[dim]step = of the last required stage before it, top = of those who entered; [95% Wilson interval].[/]")


def _groups_per_stage(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out()
    baseline = next((g for g in report.groups if g.baseline), None)
    for k, stage in enumerate(report.stages):
        title = f"{_stage_name(stage.label, stage.id)} ({stage.event}{'' if stage.nth == 1 else f' #{stage.nth}'}{', optional' if stage.optional else ''})"
        table = Table(title=escape(title), title_justify="left", show_edge=False, header_style="bold")
        table.add_column(report.by, no_wrap=True)
        table.add_column("contacts", justify="right")
        if k:
            table.add_column("step rate [95% CI]", justify="right")
            table.add_column("from top [95% CI]", justify="right")
        for group in report.groups:
            row = group.stages[k]
            cells = [_group_header(group), f"{row.count:,}"]
            if k:
                cells += [_pct(row.step_rate) + _ci(row.step_ci), _pct(row.from_top) + _ci(row.top_ci)]
            table.add_row(*cells)
        console.print(table)
        for group in report.groups:  # one line each: a lift column would be squeezed unreadable here
            row = group.stages[k]
            if row.lift is not None and baseline is not None:
                console.print(f"  {escape(group.label)} vs {escape(baseline.key)}: lift {_lift_cell(row)} {_verdict_cell(row)}")


def _print_touches(report: Any) -> None:
    """Stages by the channel of the last touch: counts and shares, and live : group : 1v1."""
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli.report._funnel import CHANNELS

    console = out()
    console.print(f"[bold]Funnel 漏斗 by touch 触达[/] · {escape(report.title)} ({escape(report.playbook)}) · {report.entered:,} contacts entered")
    table = Table(show_edge=False, header_style="bold")
    table.add_column("stage", no_wrap=True)
    table.add_column("contacts", justify="right")
    for name in CHANNELS:
        table.add_column(name, justify="right")
    table.add_column("live : group : 1v1", justify="right")
    for stage, touch in zip(report.stages, report.touches, strict=True):
        cells = [f"{touch.channels[name]:,} · {_pct(touch.share[name])}" if touch.count else "0" for name in CHANNELS]
        ratio = touch.ratio
        table.add_row(_stage_cell(stage), f"{touch.count:,}", *cells, f"1 : {ratio['group']:.1f} : {ratio['1v1']:.1f}" if ratio else "–")
    console.print(table)
    console.print(
        "[dim]Each contact who reached a stage counts for the channel of the last draft sent to it, posted in a group it was in, "
        "or sent live to its account, in the 24 h before that stage's event; none: no such draft. 1v1 = private + journey + welcome. "
        "A draft counts from when the front line marked it done, else from when siyu sent it; Moments posts are not touches.[/]"
    )
    if all(touch.channels["none"] == touch.count for touch in report.touches):
        console.print("[yellow]no sent drafts of this playbook reached these contacts in the 24 h before a stage: run `siyu run`, and mark drafts sent by hand with `siyu outbox done`[/]")
    _synthetic_note(report)


def _csv_out() -> Any:
    """A CSV writer on stdout, after a BOM: Excel reads a CSV without one as the system code page and garbles the Chinese."""
    import csv
    import sys

    sys.stdout.write("\ufeff")
    return csv.writer(sys.stdout, lineterminator="\n")


def _write_csv(report: Any) -> None:
    from siyu_cli.report._funnel import CHANNELS

    writer = _csv_out()
    if report.by == "touch":
        writer.writerow(["stage", "label", "stage_count", "channel", "count", "share"])
        for stage, touch in zip(report.stages, report.touches, strict=True):
            for name in CHANNELS:
                writer.writerow([stage.id, stage.label, touch.count, name, touch.channels[name], _num(touch.share[name])])
        return
    if report.by is None:
        writer.writerow(["stage", "label", "event", "nth", "optional", "base", "count", "step_rate", "from_top", "median_seconds", "target", "target_of", "target_rate", "met"])
        for s in report.stages:
            writer.writerow(
                [
                    s.id, s.label, s.event, s.nth, _flag(s.optional), s.base or "", s.count, _num(s.step_rate), _num(s.from_top),
                    _num(s.median_seconds), _num(s.target), s.target_of or "", _num(s.target_rate), _flag(s.met),
                ]
            )
        return
    writer.writerow(
        [
            report.by, "holdout", "baseline", "stage", "count", "step_rate", "step_low", "step_high", "from_top", "top_low", "top_high",
            "lift", "relative_lift", "p_value", "significant", "verdict", "small_sample",
        ]
    )
    for group in report.groups:
        for s in group.stages:
            step = s.step_ci or (None, None)
            top = s.top_ci or (None, None)
            writer.writerow(
                [
                    group.key, _flag(group.holdout), _flag(group.baseline), s.id, s.count, _num(s.step_rate), _num(step[0]), _num(step[1]),
                    _num(s.from_top), _num(top[0]), _num(top[1]), _num(s.lift), _num(s.relative_lift), _num(s.p_value),
                    _flag(s.significant), s.verdict or "", _flag(s.small_sample),
                ]
            )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


@report_app.command("funnel", epilog=examples("siyu report funnel playbooks/camp.yaml", "siyu report funnel --by hook --csv > hooks.csv"))
def funnel_cmd(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    cohort: str = typer.Option(None, "--cohort", help="Only contacts of this cohort (the contact's cohort, else its entry event's)."),
    since: str = typer.Option(None, "--since", help="Only contacts who entered at or after this date/time (playbook zone)."),
    until: str = typer.Option(None, "--until", help="Only contacts who entered before this date/time; a bare date includes that day."),
    by: str = typer.Option(
        None,
        "--by",
        help="Compare groups side by side: hook, cohort, tier, source, variant or persona (hook and variant with lift and verdict); "
        "touch: each stage by the channel that last reached the contact in the 24 h before it.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV to stdout (one row per stage, per group and stage with --by, per stage and channel with --by touch)."),
) -> None:
    """The funnel 漏斗 against the playbook's targets: count, step rate, rate from the top, median time, met or not."""
    from siyu_cli.playbook import read
    from siyu_cli.report import funnel

    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be combined; pick one")
    pb = read(find_playbook(playbook, playbook_arg))
    start, end = _bound(since, pb.tz, end=False), _bound(until, pb.tz, end=True)
    with _store(db) as store:
        report = funnel(store, pb, cohort=cohort, since=start, until=end, by=by)
    if as_json:
        print_json(report.to_dict())
    elif as_csv:
        _write_csv(report)
    elif not report.entered:
        out().print(NO_ENTRY, markup=False)
    elif by == "touch":
        _print_touches(report)
    elif by:
        _print_groups(report)
    else:
        _print_funnel(report)


@report_app.command("sop", epilog=examples("siyu report sop playbooks/camp.yaml", "siyu report sop --day 3 --json"))
def sop_cmd(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    day: int = typer.Option(None, "--day", min=1, help="Only this campaign day."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """SOP execution 执行情况 per day, beat and persona: due, sent, done by the front line, late, skipped by reason, failed."""
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli.playbook import read
    from siyu_cli.report import sop
    from siyu_cli.report._sop import percent

    pb = read(find_playbook(playbook, playbook_arg))
    with _store(db) as store:
        report = sop(store, pb, day=day)
    if day is not None and day > pb.model.days and not report.rows:
        # Journey steps can fall after the last day (and are shown then); nothing there is a mistyped day.
        raise UsageError(f"--day {day}: the campaign {pb.id} has {pb.model.days} days and nothing was recorded on day {day}", hint=f"pass --day 1 to {pb.model.days}")
    if as_json:
        print_json(report.to_dict())
        return
    console = out()
    if not report.rows:
        scope = f" on day {day}" if day is not None else ""
        console.print(f"no drafts recorded for {pb.id}{scope} yet; run `siyu run` first", markup=False)
        return
    total = report.total
    rows = report.folded()
    counts, by_reason, dropped = _sop_columns(rows, total, console.width)
    table = Table(
        title=f"SOP execution 执行情况 · {escape(pb.model.title)} · recipients 人次",
        title_justify="left",
        box=None,
        padding=(0, 0, 0, 1),
        pad_edge=False,
        show_edge=False,
        header_style="bold",
    )
    table.add_column("day", justify="right", no_wrap=True)
    table.add_column("beat", min_width=SOP_BEAT_WIDTH, overflow="fold")
    table.add_column("persona", no_wrap=True)
    colours = {"late": "yellow", "failed": "red", "unknown": "red"}
    for _, label in counts:
        table.add_column(label, justify="right", no_wrap=True)
    if by_reason:
        table.add_column("skipped by reason", no_wrap=True)
    for row in [*rows, total]:
        is_total = row is total
        cells = [_sop_day(row, is_total), "[bold]total[/]" if is_total else escape(row.title), escape(row.persona or "")]
        for key, _ in counts:
            value = getattr(row, key)
            cells.append(f"[{colours[key]}]{value}[/]" if value and key in colours else str(value))
        if by_reason:
            cells.append(escape(_reasons(row, ", ")))
        table.add_row(*cells, end_section=not is_total and row is rows[-1])
    console.print(table)
    if dropped:
        console.print(f"[dim]per row in a wider terminal or with --json: {', '.join(dropped)}[/]")
    tasks = report.tasks
    if tasks.tasks:
        console.print(f"SOP 执行率 execution rate: {percent(tasks.done, tasks.tasks)} of send tasks 任务 · {_task_line(tasks)}", markup=False)
    if total.skipped and not by_reason:
        console.print(f"skipped by reason: {escape(_reasons(total, ' · '))}")
    read_back = bool(total.quota or total.not_friend or total.not_sent)
    if read_back:
        console.print(
            f"read back from WeCom: refused by the monthly quota {total.quota} · not a friend {total.not_friend} · left out by staff {total.not_sent}",
            markup=False,
        )
    if report.staff:
        unknown = any(member.time_unknown for member in report.staff)
        staff = Table(title="by staff member 员工 · send tasks", title_justify="left", box=None, padding=(0, 0, 0, 1), pad_edge=False, show_edge=False, header_style="bold")
        for name in ("staff", "tasks", "done", "on time", "late", *(["time unknown"] if unknown else []), "on time %", "recipients reached"):
            staff.add_column(name, justify="left" if name == "staff" else "right", no_wrap=True)
        for member in report.staff:
            share = percent(member.on_time, member.on_time + member.late, 0) if member.on_time_rate is not None else ""
            cells = [escape(member.staff or ""), str(member.tasks), str(member.done), str(member.on_time), f"[yellow]{member.late}[/]" if member.late else "0"]
            cells += [str(member.time_unknown)] if unknown else []
            staff.add_row(*cells, share, f"{member.reached} of {member.recipients}")
        console.print(staff)
    console.print(
        "[dim]The table counts recipients (a mass send to 300 customers is 300); the rate and the staff table count send tasks "
        "(a mass send is one, as in WeCom's 群发记录), with the recipients they reached beside them. "
        "A task is done when a staff member sent it (read back from WeCom) or marked it sent (siyu outbox done); "
        "on time when they first sent it within 10 minutes of due, late after"
        + ("; time unknown: read back as sent with no send time" if tasks.time_unknown else "")
        + ". A recipient is late when sent more than 10 minutes after due"
        + ("; quota = refused by the customer's monthly mass-send quota, not friend = WeCom could not reach them, left out = the staff member did not send to them" if read_back else "")
        + ".[/]"
    )


SOP_BEAT_WIDTH = 12
# The count columns of `report sop`, in the order they drop when the terminal is too narrow for them all (last first);
# only those some row has a non-zero value in are shown at all. The read-back outcomes have their totals on a line below.
SOP_COUNTS = (
    ("due", "due"), ("sent", "sent"), ("done", "done"), ("late", "late"), ("skipped_total", "skipped"), ("failed", "failed"),
    ("unknown", "unknown"), ("pending", "pending"), ("quota", "quota"), ("not_friend", "not friend"), ("not_sent", "left out"),
)  # fmt: skip
SOP_KEEP = {key for key, _ in SOP_COUNTS[:8]}  # due … pending are never dropped


def _sop_day(row: Any, is_total: bool) -> str:
    from siyu_cli.report._sop import BEFORE_DAY_1

    return "" if is_total else "<1" if row.beat == BEFORE_DAY_1 else "" if row.day is None else str(row.day)


def _reasons(row: Any, sep: str) -> str:
    return sep.join(f"{reason} {count}" for reason, count in row.skipped.items())


def _sop_columns(rows: list[Any], total: Any, width: int) -> tuple[list[tuple[str, str]], bool, list[str]]:
    """The count columns that fit `width` beside day, persona and a beat column of SOP_BEAT_WIDTH (folded),
    whether "skipped by reason" fits too, and the labels dropped to fit."""
    every = [*rows, total]

    def need(values: list[str], label: str) -> int:
        return max([len(label), *(len(v) for v in values)]) + 1  # the column's left padding

    fixed = need([_sop_day(r, False) for r in rows], "day") - 1 + SOP_BEAT_WIDTH + 1 + need([r.persona or "" for r in rows], "persona")
    counts = [(key, label) for i, (key, label) in enumerate(SOP_COUNTS) if i == 0 or getattr(total, key)]
    widths = {key: need([str(getattr(r, key)) for r in every], label) for key, label in counts}
    dropped: list[str] = []
    while counts[-1][0] not in SOP_KEEP and fixed + sum(widths[k] for k, _ in counts) > width:
        dropped.insert(0, counts.pop()[1])
    used = fixed + sum(widths[k] for k, _ in counts)
    by_reason = bool(total.skipped) and used + need([_reasons(r, ", ") for r in every], "skipped by reason") <= width
    return counts, by_reason, dropped


def _task_line(tasks: Any) -> str:
    """'3 of 4 handed out done: 2 on time · 1 late · 285 of 303 recipients reached (94.0%)' (floored: never 100.0% below all)."""
    from siyu_cli.report._sop import percent

    timing = f"{tasks.on_time} on time · {tasks.late} late" + (f" · {tasks.time_unknown} time unknown" if tasks.time_unknown else "")
    reached = f"{tasks.reached} of {tasks.recipients} recipients reached" + (f" ({percent(tasks.reached, tasks.recipients)})" if tasks.recipients else "")
    return f"{tasks.done} of {tasks.tasks} handed out done: {timing} · {reached}"


@report_app.command("groups", epilog=examples("siyu report groups playbooks/camp.yaml", "siyu report groups --csv > groups.csv"))
def groups_cmd(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    until: str = typer.Option(None, "--until", help="Class the days up to this date (default: the day after the store's last group event, or the group's last post in the ledger if later)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV to stdout: one row per group and day with every signal."),
) -> None:
    """Group health 群健康 per group: value 价值群, chicken-rib 鸡肋群, dead 死群, spam 广告群, its trend day by day and the signals behind it."""
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli.health import LABELS
    from siyu_cli.playbook import read
    from siyu_cli.report._groups import COLOURS, CSV_COLUMNS, MARKS, groups_report

    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be combined; pick one")
    pb = read(find_playbook(playbook, playbook_arg))
    last = _bound(until, pb.tz, end=False)
    with _store(db) as store:
        report = groups_report(store, pb, until=last.date() if last is not None else None)
    if as_json:
        print_json(report.to_dict())
        return
    if as_csv:
        writer = _csv_out()
        writer.writerow(CSV_COLUMNS)
        writer.writerows(report.csv_rows())
        return
    console = out()
    if not report.rows:
        console.print(f"{pb.id} has no groups: group health 群健康 classes the groups: beats post into", markup=False)
        return
    table = Table(title=f"Group health 群健康 · {escape(pb.model.title)}", title_justify="left", box=None, padding=(0, 0, 0, 1), pad_edge=False, show_edge=False, header_style="bold")
    wide = console.width >= 140
    narrow = console.width < 110  # a phone-sized terminal: the group's id, two weeks of trend
    days = 14 if narrow else 21
    # Below 80 columns the counts each class is decided on (talkers: value, ads: spam, active: dead); the why lines say the rest.
    counts = ["members", "talkers", "messages", "ads", "active", "left"] if console.width >= 80 else ["members", "talkers", "ads", "active"]
    columns = ["group", "health", "trend", *counts] + (["why"] if wide else [])
    for name in columns:
        table.add_column(name, justify="left" if name in ("group", "health", "trend", "why") else "right", no_wrap=name != "why")
    colours = {"value": "green", "chicken_rib": "yellow", "dead": "red", "spam": "magenta", "new": "dim", "unknown": "cyan"}
    for row in report.rows:
        latest = row.latest
        if latest is None:
            continue
        s = latest.signals
        trend = "".join(f"[{colours[d.health]}]{MARKS[d.health]}[/]" for d in row.days[-days:])
        name = escape(row.group) if narrow else f"{escape(row.name)} ({escape(row.group)})"
        cells = [name, f"[{colours[latest.health]}]{LABELS[latest.health]}[/]", trend]
        cells += [str(getattr(s, column)) for column in counts]
        table.add_row(*cells, *([escape(latest.why)] if wide else []))
    console.print(table)
    if not wide:
        for row in report.rows:
            if row.latest is not None:
                console.print(f"{escape(row.group)}: {escape(row.latest.why)}")
    window = pb.model.group_health.window
    legend = " · ".join(f"{MARKS[k]} {LABELS[k]}" for k in COLOURS)
    console.print(f"[dim]Each day is classed from the events of the {window} before it; trend: the last {days} days, oldest first; signals: the latest day. {legend}[/]")


@report_app.command("html", epilog=examples("siyu report html playbooks/camp.yaml --out report.html"))
def html_cmd(
    playbook_arg: str = playbook_argument(),
    out_file: Path = typer.Option(..., "--out", help="HTML file to write (one self-contained file: inline CSS and SVG, no network)."),
    playbook: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """One HTML file a manager reads on a phone: headline figures against targets, what to look at next, daily trend, funnel, hooks, A/B, touches, journeys, SOP execution heatmap, timeline."""
    from siyu_cli._time import utcnow
    from siyu_cli.playbook import read
    from siyu_cli.report import write_html

    pb = read(find_playbook(playbook, playbook_arg))
    with _store(db) as store:
        sections = write_html(store, pb, out_file, generated_at=utcnow())
    out().print(f"wrote {out_file} ({', '.join(s.title for s in sections)})", markup=False)


@app.command("simulate", rich_help_panel=PANEL, epilog=examples("siyu simulate playbooks/camp.yaml --contacts 300 --seed 7", "siyu simulate -p playbooks/camp.yaml --rates added=0.2 --db rehearsal.db"))
def simulate_cmd(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    contacts: int = typer.Option(200, "--contacts", "-n", min=1, max=999_999, help="How many synthetic contacts (sim-000001 …)."),
    seed: int = typer.Option(1, "--seed", help="Random seed: the same seed writes the same rows (re-running adds nothing)."),
    rates: list[str] = typer.Option(None, "--rates", help="Rate of a stage, STAGE=RATE (repeatable), over the same base as its target (a {rate, of} target's of, else the stage before); default: the playbook's target, else 0.5."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    start: str = typer.Option(None, "--start", help="When the first contacts enter (ISO; default: each cohort's day 1 at 09:00)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a labelled synthetic event log (contacts sim-…, marked synthetic) that walks the funnel at given rates."""
    from rich.table import Table

    from siyu_cli.playbook import read
    from siyu_cli.report import parse_rates, require_funnel, simulate
    from siyu_cli.store import default_path, open_store

    pb = read(find_playbook(playbook, playbook_arg))
    wanted = parse_rates(rates or [])
    begin = _bound(start, pb.tz, end=False)
    store = open_store(default_path(db))
    try:
        result = simulate(store, pb, contacts=contacts, seed=seed, rates=wanted, start=begin)
    finally:
        store.conn.close()
    if as_json:
        print_json(result.to_dict())
        return
    console = out()
    console.print(
        f"simulated {result.contacts:,} synthetic contacts (sim-000001 … sim-{result.contacts:06d}) for {pb.id}, seed {seed}: "
        f"{result.events:,} events ({result.new_events:,} new, {result.removed_events:,} replaced)",
        markup=False,
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("stage")
    table.add_column("step rate", justify="right")
    table.add_column("contacts", justify="right")
    for stage in require_funnel(pb, "to simulate").stages:
        rate = result.rates.get(stage.id)
        table.add_row(_stage_name(stage.label or stage.id, stage.id), "entry" if rate is None else _pct(rate), f"{result.reached[stage.id]:,}")
    console.print(table)
    console.print("[dim]Labelled synthetic (contacts.extra / events.props {\"synthetic\": true}); reports say how many they include.[/]")
