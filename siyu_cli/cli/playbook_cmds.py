"""Commands a strategy team uses before a campaign touches a customer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from siyu_cli.cli._app import app, examples
from siyu_cli.cli._common import DB_HELP, JSON_HELP, err, find_playbook, out, playbook_argument, playbook_option, print_json

PANEL = "Plan 策划"

CHANNEL_LABELS = {
    "group": "group 群",
    "moments": "Moments 朋友圈",
    "private": "1v1 私聊",
    "live": "live 直播",
    "welcome": "welcome 欢迎语",
    "journey": "journey 旅程",
}


@app.command(rich_help_panel=PANEL, epilog=examples("siyu check", "siyu check playbooks/camp.yaml --strict --db siyu.db"))
def check(
    playbooks: list[Path] = typer.Argument(None, metavar="PLAYBOOK", help="Playbook files, or one with -p (default: found as for -p)."),
    playbook: str = playbook_option(),
    strict: bool = typer.Option(False, "--strict", help="Fail on lint warnings too."),
    db: str = typer.Option(None, "--db", help=DB_HELP + " Its contacts size the 1v1 volume lint."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Validate and lint playbooks (校验): every error and warning, located by file, line and field."""
    from siyu_cli.check import check_file
    from siyu_cli.errors import UsageError

    files = list(playbooks) if playbooks else [find_playbook(playbook)]
    if playbooks and playbook:
        files = [find_playbook(playbook, str(playbooks[0]))] if len(playbooks) == 1 else []
        if not files:
            raise UsageError(f"-p {playbook} and {len(playbooks)} playbook arguments", hint="name the playbooks as arguments, or one with -p")
    store, contacts = _store_contacts(db)
    results = [check_file(path, contacts=contacts, db=store) for path in files]
    failed = any(r.errors for r in results) or (strict and any(r.warnings for r in results))
    if as_json:
        print_json(
            {
                "ok": not failed,
                "files": [
                    {
                        "file": r.file,
                        "errors": len(r.errors),
                        "warnings": len(r.warnings),
                        "failed_on": [p.to_dict() for p in (r.problems if strict else r.errors)],
                        "problems": [p.to_dict() for p in r.problems],
                    }
                    for r in results
                ],
            }
        )
        raise typer.Exit(1 if failed else 0)
    # Text, not markup: a location such as "playbook.yaml:100:14:" must print as written (markup
    # would read "[…]" and emoji codes would turn ":100:" into 💯).
    from rich.text import Text

    console, errors = out(), err()
    for result in results:
        for problem in result.problems:
            errors.print(Text(str(problem), style="red" if problem.severity == "error" else "yellow"), soft_wrap=True)
        line = Text(f"{result.file}: ")
        if result.errors:
            line.append(f"✗ {len(result.errors)} error(s)", style="red")
        elif result.warnings:
            line.append(f"! {len(result.warnings)} warning(s)", style="yellow")
            if strict:
                line.append(" ✗ failed under --strict", style="red")
        else:
            line.append("✓ ok", style="green")
        if result.playbook is not None:
            model = result.playbook.model
            line.append(
                f" · {model.id} · {model.days} days · {len(model.beats)} beats · {len(model.hooks)} hooks · {len(model.journeys)} journeys"
                f" · {len(model.rules)} rules · {len(result.playbook.cohorts)} cohort(s)"
            )
        console.print(line, soft_wrap=True)
        if strict and result.warnings and not result.errors:
            reasons = ", ".join(f"{p.code or 'warning'} at {p.location}" for p in result.warnings)
            console.print(Text(f"  --strict fails on {len(result.warnings)} warning(s): {reasons}"), soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


def _store_contacts(db: str | None) -> tuple[Any, list[dict[str, Any]]]:
    """The store (read-only) and its contacts, when there is one."""
    from siyu_cli.errors import StoreError
    from siyu_cli.store import default_path

    path = default_path(db)
    if not path.exists():
        if db is not None:
            raise StoreError(f"{path}: no such store", hint="pass the store siyu run/import wrote (default ./siyu.db), or leave out --db")
        return None, []
    from siyu_cli.ingest import load_contacts
    from siyu_cli.store import open_store

    store = open_store(path, readonly=True)
    return store, load_contacts(store)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu schema > schema.json"))
def schema() -> None:
    """Print the playbook JSON Schema, for editors with yaml-language-server (siyu init writes it as schema.json)."""
    from siyu_cli.playbook._schema import playbook_schema

    print_json(playbook_schema())


@app.command(rich_help_panel=PANEL, epilog=examples("siyu timeline playbooks/camp.yaml --db siyu.db", "siyu timeline --ics > camp.ics"))
def timeline(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    cohort: str = typer.Option(None, "--cohort", help="A cohort id, or all (default: all; a cohort column shows when there are several)."),
    db: str = typer.Option(None, "--db", help=DB_HELP + " Its contacts place journey and welcome steps on the calendar and size the audiences."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV for Excel (UTF-8 with BOM): a row per beat occurrence, journey and welcome steps as relative rows."),
    as_ics: bool = typer.Option(False, "--ics", help="Print an iCalendar (RFC 5545) feed to subscribe to: an event per beat occurrence, its draft as the description."),
) -> None:
    """Show the whole campaign as a calendar (日历): days as rows, beats and journeys as columns, then the audiences.

    Journey and welcome steps run on each contact's own clock: with contacts in the store each
    cell counts the steps due that day; with none, a sample contact enters every journey on day 1.
    --csv and --ics write to stdout: redirect them to a file (`> camp.ics`) to share or publish.
    """
    from siyu_cli.errors import UsageError
    from siyu_cli.playbook import read

    if as_json + as_csv + as_ics > 1:
        raise UsageError("--json, --csv and --ics cannot be combined", hint="pick one output")
    loaded = read(find_playbook(playbook, playbook_arg))
    known = [run.id for run in loaded.cohorts]
    if cohort not in (None, "all", *known):
        raise UsageError(f"--cohort {cohort}: {loaded.path} has no cohort {cohort!r}", hint=f"write one of {', '.join(known)}, or all")
    runs = list(loaded.cohorts) if cohort in (None, "all") else [loaded.cohort(cohort)]
    if as_ics:
        from siyu_cli._time import utcnow
        from siyu_cli.timeline._export import ics_text

        _write_bytes(ics_text(loaded, runs, now=utcnow()))
        return
    from siyu_cli.dispatch._setup import plan_inputs
    from siyu_cli.render import search_path
    from siyu_cli.store import groups_with_membership_events
    from siyu_cli.timeline import calendar_days, occurrences
    from siyu_cli.timeline._export import audiences

    inputs = plan_inputs(loaded, db, readonly=True)
    planner = inputs.planner
    evented = groups_with_membership_events(inputs.db) if inputs.db is not None else set()
    found = audiences(loaded, planner, inputs.memberships, runs, evented)
    sizes = {(a.cohort, a.id): (a.expression, a.size) for a in found if a.kind in ("private", "group")}
    cohorts = [(run, list(occurrences(loaded, run, search_path(loaded))), calendar_days(loaded, run)) for run in runs]
    # A step to a contact who deleted the account is recorded not_friend, not sent: not on the calendar.
    steps = {run.id: sorted((d for d in planner.journey_calendar(run) if d.skip is None), key=lambda d: (d.occurrence_at, d.beat, d.target)) for run in runs}
    if as_csv:
        from siyu_cli.timeline._export import csv_text, occurrence_row, step_rows

        rows = [
            occurrence_row(loaded, o, marks.get(o.day), _target_label(loaded, o), sizes.get(_audience_key(o)))
            for _, items, (marks, _) in cohorts
            for o in items
        ]
        rows.sort(key=lambda r: (r[2], r[7], r[0]))
        entered: dict[str, int | None] = {}
        for a in found:
            if a.kind in ("journey", "welcome"):
                entered[a.id] = None if a.size is None else (entered.get(a.id) or 0) + a.size
        _write_bytes(csv_text(rows + step_rows(loaded, planner, entered)))
        return
    if as_json:
        print_json([row for run, items, (marks, _) in cohorts for row in _json_rows(loaded, items, steps[run.id], marks, sizes)])
        return
    _print_timeline(loaded, planner, cohorts, steps, found, multiple=len(runs) > 1)


def _write_bytes(text: str) -> None:
    """CSV and iCalendar as written (CRLF kept, no newline translation), UTF-8 whatever the console's encoding."""
    import sys

    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _audience_key(occ: Any) -> tuple[str, str]:
    """Where timeline.audiences() keeps an occurrence's audience: a group by its id, a 1v1 beat's by the beat."""
    return (occ.cohort, occ.target_id if occ.target_kind == "group" else occ.beat.id)


def _target_label(loaded: Any, occ: Any) -> str:
    if occ.target_kind == "group":
        return next((g.name for g in loaded.model.groups if g.id == occ.target_id), occ.target_id)
    return occ.target


def _json_rows(loaded: Any, items: list[Any], steps: list[Any], marks: Any, sizes: dict[tuple[str, str], tuple[str, int | None]]) -> list[dict[str, Any]]:
    from siyu_cli.timeline._export import by_account

    rows: list[dict[str, Any]] = [
        {
            "cohort": o.cohort,
            "day": o.day,
            "date": o.date.isoformat(),
            "at": o.at.isoformat(),
            "beat": o.beat.id,
            "title": o.beat.title,
            "channel": o.channel,
            "persona": None if by_account(loaded, o) else o.persona,  # None: each contact's own account
            "target": o.target,
            "category": o.category,
            "template": o.content.name if o.content else None,
            "audience": sizes.get(_audience_key(o), (None, None))[0],
            "audience_size": sizes.get(_audience_key(o), (None, None))[1],
            **_calendar_fields(marks.get(o.day)),
        }
        for o in items
    ]
    rows += [
        {
            "cohort": d.cohort,
            "day": d.day,
            "date": d.date.isoformat(),
            "at": d.occurrence_at.isoformat(),
            "beat": d.beat,
            "title": d.beat_title,
            "channel": d.channel,
            "persona": d.persona,
            "target": "sample" if d.sample else d.target,
            "category": None,
            "template": d.content.name if d.content else None,
            "variant": d.variant,
            **_calendar_fields(marks.get(d.day)),
        }
        for d in steps
    ]
    return rows


def _print_timeline(loaded: Any, planner: Any, cohorts: list[Any], steps: dict[str, list[Any]], found: list[Any], *, multiple: bool) -> None:
    from collections import Counter

    from rich.table import Table

    beats = loaded.model.beats
    routes = planner.book.routes
    who = "sample contact entering on day 1 at 10:00" if planner.sample_contact else f"{len(planner.contacts)} contacts in the store"
    notes = [f"journey and welcome columns: {who}"] if routes else []
    unknown = sorted({year for _, _, (_, years) in cohorts for year in years})
    if unknown:
        notes.append(f"holidays not marked in {', '.join(map(str, unknown))}: no State Council schedule in the holidays package; see calendar: in the README")
    first = cohorts[0][0]
    title = f"{loaded.model.title} · {len(cohorts)} cohorts" if multiple else f"{loaded.model.title} · cohort {first.id} · from {first.start}"
    table = Table(title=title, caption="\n".join(notes) or None, show_lines=False)
    for column in ("cohort",) * multiple + ("day", "date", "phase"):
        table.add_column(column, justify="right" if column == "day" else "left")
    sized = {(a.cohort, a.id): a.size for a in found if a.kind == "private"}
    for beat in beats:
        head = f"{beat.title or beat.id}\n{CHANNEL_LABELS.get(beat.channel, beat.channel)}"
        if beat.channel == "private" and not multiple and sized.get((first.id, beat.id)) is not None:
            head += f"\n{beat.audience} · {sized[(first.id, beat.id)]}"
        table.add_column(head, overflow="fold")
    for route in routes:
        table.add_column(f"{route.title}\n{CHANNEL_LABELS.get(route.kind, route.kind)}", overflow="fold")
    rows: list[tuple[Any, ...]] = []
    for run, items, (marks, _) in cohorts:
        by_day: dict[int, dict[str, list[str]]] = {}
        for o in items:
            cell = by_day.setdefault(o.day, {}).setdefault(o.beat.id, [])
            label = o.at.strftime("%H:%M") + (f" {o.category}" if o.category else "")
            if label not in cell:
                cell.append(label)
        counts: Counter[tuple[int, str, str]] = Counter()
        for d in steps[run.id]:
            route_id, step = planner.book.by_beat[d.beat][0].id, planner.book.by_beat[d.beat][1]
            label = step.id if planner.book.by_id[route_id].kind == "journey" else f"#{step.index + 1}"
            counts[(d.day, route_id, label if not planner.sample_contact else f"{label} {d.occurrence_at:%H:%M}")] += 1
        for (day, route_id, label), count in sorted(counts.items()):
            by_day.setdefault(day, {}).setdefault(route_id, []).append(label if planner.sample_contact else f"{label} ×{count}")
        last = max([loaded.model.days, *(d.day for d in steps[run.id])])
        for day in range(1, last + 1):
            phase = loaded.phase_of(day) if day <= loaded.model.days else None
            cells = by_day.get(day, {})
            if day > loaded.model.days and not cells:
                continue
            when = run.start.fromordinal(run.start.toordinal() + day - 1)
            row = (
                *(run.id,) * multiple,
                str(day),
                "\n".join(filter(None, (str(when), marks[day].label if day in marks else ""))),
                phase.title if phase else ("" if day <= loaded.model.days else "after"),
                *["\n".join(cells.get(beat.id, [])) or "·" for beat in beats],
                *["\n".join(cells.get(route.id, [])) or "·" for route in routes],
            )
            rows.append(((when, run.id), row))
    for _, row in sorted(rows, key=lambda r: r[0]):
        table.add_row(*row)
    console = out()
    if not console.is_terminal:
        console.width = max(console.width, 30 + 16 * (len(beats) + len(routes)))
    console.print(table)
    _print_audiences(found, multiple=multiple, known=not planner.sample_contact)
    if routes:
        _print_routes(loaded, routes)


def _print_audiences(found: list[Any], *, multiple: bool, known: bool) -> None:
    """Who each 1v1 beat, group, journey and welcome sequence reaches, with the store's counts."""
    if not found:
        return
    from rich.markup import escape
    from rich.table import Table

    caption = None if known else "no contacts in the store: sizes come with `siyu import contacts` (or pass --db)"
    table = Table(title="audiences 受众 · contacts in the store now", title_justify="left", caption=caption)
    for column in ("cohort",) * multiple + ("kind", "beat / journey", "audience", "contacts"):
        table.add_column(column, justify="right" if column == "contacts" else "left", overflow="fold")
    for audience in found:
        size = "-" if audience.size is None else str(audience.size) + (f" ({audience.deleted} deleted 已删)" if audience.deleted else "")
        table.add_row(*(audience.cohort,) * multiple, CHANNEL_LABELS.get(audience.kind, audience.kind), escape(f"{audience.title} ({audience.id})"), escape(audience.expression), size)
    out().print(table)


def _calendar_fields(day: Any) -> dict[str, str | None]:
    """A timeline row's place on China's calendar: workday, weekend or holiday (None where the year has no schedule)."""
    return {"calendar": day.kind if day else None, "holiday": (day.name or None) if day else None}


def _print_routes(loaded: Any, routes: Any) -> None:
    """Journeys relative to each contact: when each step goes after the entering event."""
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli.timeline._export import relative_when

    table = Table(title="journeys 旅程 · relative to each contact's entering event", title_justify="left")
    for column in ("journey", "enter", "audience", "exit", "step", "when", "content"):
        table.add_column(column, overflow="fold")
    model = loaded.model
    for route in routes:
        owner = model.hooks[int(route.path[1])] if route.kind == "welcome" else model.journeys[int(route.path[1])]
        exits = ", ".join(e.segment or (e.event + (f" via {e.hook}" if e.hook else "")) for e in owner.exit) or "-"
        enter = route.enter_type + (f" via {route.enter_hook}" if route.enter_hook else "") + (f" #{route.enter_nth}" if route.enter_nth else "") + (" (every time)" if route.repeat else "")
        audience = route.audience.source if route.audience is not None else "everyone who enters"
        for index, step in enumerate(route.steps):
            when = relative_when(step)
            content = step.template or ("inline text" if step.text is not None else "variants " + "/".join(step.variants or {}))
            head = index == 0
            table.add_row(
                escape(f"{route.title} ({route.id})") if head else "",
                escape(enter) if head else "",
                escape(audience) if head else "",
                escape(exits) if head else "",
                escape(step.id),
                when,
                escape(content),
            )
    out().print(table)


PREVIEW_EXAMPLES = examples("siyu preview day 1", "siyu preview day 6 playbooks/camp.yaml --contact c001")
preview_app = typer.Typer(help="Show what the campaign will send, without sending (预览).", no_args_is_help=True, epilog=PREVIEW_EXAMPLES)
app.add_typer(preview_app, name="preview", rich_help_panel=PANEL)


@preview_app.command("day", epilog=PREVIEW_EXAMPLES)
def preview_day(
    day: int = typer.Argument(..., help="Campaign day (1 = the cohort's start)."),
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    cohort: str = typer.Option(None, "--cohort", help="Cohort id (default: the first)."),
    contact: str = typer.Option(None, "--contact", help="Only drafts for this contact id."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    out_dir: Path = typer.Option(None, "--out", help="Also write each draft as a Markdown file under DIR/DATE/ (one folder per day)."),
    all_variants: bool = typer.Option(False, "--all-variants", help="Show every variant of an A/B beat or step, not only the one each contact gets."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show day N: a summary (drafts per beat and decision, touches per contact, 1v1 load per account), then every draft.

    Drafts come in time order, rendered, with what quiet hours and limits would do; a group post
    that reads the same in several groups is shown once with their names. With no contacts in the
    store each welcome step, journey step and variant is shown for its own sample contact, and
    data-driven templates (stats) render with sample stats and without.
    """
    from siyu_cli.dispatch import preview

    result = preview(find_playbook(playbook, playbook_arg), day, cohort=cohort, contact=contact, db_path=db, all_variants=all_variants)
    if out_dir is not None:
        written = result.write(out_dir)
        err().print(f"wrote {len(written)} draft file(s) to {out_dir / result.date.isoformat()}")
    if as_json:
        print_json(result.to_dict())
    else:
        _print_preview(result, contact)
    failed = sum(1 for item in result.items if item.error)
    if failed:
        err().print(f"[red]error:[/] {failed} draft(s) of day {day} do not render; `siyu check` names the template and line")
        raise typer.Exit(1)


def _print_preview(result: Any, contact: str | None) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.text import Text

    console = out()
    mark = f" {result.calendar.label}" if result.calendar and result.calendar.label else ""
    console.print(
        f"[bold]{escape(result.title)}[/] · cohort {escape(result.cohort)} · day {result.day} ({result.date}{escape(mark)}, {escape(result.phase or '-')}) · {len(result.items)} draft(s)"
    )
    if result.sample:
        console.print(
            "[yellow]No contacts in the store: each 1v1 beat, welcome step, journey step and variant is shown for its own sample contact 示例联系人 (sample:…);"
            " templates that read stats render with sample stats 示例数据 and without.[/]"
        )
    if not result.items:
        console.print(f"Nothing for {escape(contact)} on this day." if contact else "Nothing is scheduled on this day.")
    else:
        _print_summary(result.summary)
    _print_positions(result.journeys)
    for panel in result.panels():
        item = panel.item
        header = f"{item.time} · {CHANNEL_LABELS.get(item.channel, item.channel)} · {escape(item.beat_title)} · {escape(item.persona)} → {escape(panel.target)}"
        if item.category:
            header += f" · {escape(item.category)}"
        if item.variant:
            header += f" · variant {escape(item.variant)}"
        style, notes = "green", []
        if item.decision != "send":
            style = "yellow" if item.decision.startswith("defer") else "red"
            notes.append(item.decision_text)
        body = Text(item.text or "", style="")
        if item.error:
            body = Text(item.error, style="red")
            style = "red"
        elif item.holdout:
            body = Text("holdout 对照组: no message; recorded and counted in the funnel", style="dim")
        elif item.text_without_stats is not None:
            from siyu_cli.dispatch._preview import NO_STATS_NOTE, SAMPLE_STATS_NOTE

            body = Text.assemble((SAMPLE_STATS_NOTE + "\n", "dim"), item.text or "", ("\n\n" + NO_STATS_NOTE + "\n", "dim"), item.text_without_stats)
        if item.attachments:
            body.append("\n\n附件 attachments:\n" + "\n".join(f"- {line}" for line in item.attachments), style="cyan")
        if item.extra:
            style = "blue"
        subtitle = " · ".join(notes) if notes else None
        console.print(Panel(body, title=header, title_align="left", subtitle=subtitle, subtitle_align="left", border_style=style))


SUMMARY_COLUMNS = ["drafts", "send\n待发", "of which\ndeferred\n顺延", "holdout\n对照", "quiet\n免打扰", "limit\n限频", "error"]


def _summary_table(summary: Any, labels: list[str]) -> Any:
    """Short headers, single-space gaps and no cell cut, so the table fits 80 columns; a beat too long for its
    column folds rather than ending in '…'. Deferred drafts are counted in send: the runner sends them later."""
    from rich import box
    from rich.table import Table

    gone = any(row.not_friend for row in summary.beats)
    other = any(row.other for row in summary.beats)
    table = Table(title="summary 概览", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    table.add_column("beat", overflow="fold")
    for column in ["channel", "variant"]:
        table.add_column(column, no_wrap=True)
    for column in SUMMARY_COLUMNS + ["not\nfriend\n已删"] * gone + ["skip"] * other:
        table.add_column(column, justify="right", no_wrap=True)
    for row, label in zip(summary.beats, labels, strict=True):
        cells = [row.drafts, row.pending, row.deferred, row.holdout, row.quiet, row.limit, row.error] + [row.not_friend] * gone + [row.other] * other
        channel = CHANNEL_LABELS.get(row.channel, row.channel).split()[0]
        table.add_row(label, channel, row.variant or "-", *[str(c) if c else "·" for c in cells])
    return table


def _print_summary(summary: Any) -> None:
    """What a reviewer reads first: counts by beat and decision, the busiest contact, each account against its cap."""
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.measure import Measurement

    console = out()
    fixed = Measurement.get(console, console.options.update(max_width=10_000), _summary_table(summary, [""] * len(summary.beats))).maximum
    room = console.width - fixed + len("beat")
    labels = [row.title if cell_len(row.title) <= room else row.beat for row in summary.beats]
    console.print(_summary_table(summary, [escape(label) for label in labels]))
    touches = summary.touches
    cap = f" · cap per_contact_per_day {touches.cap} ({touches.at_cap} at the cap)" if touches.cap is not None else " · no per_contact_per_day cap"
    if touches.contacts:
        console.print(f"touches per contact 每人触达: {touches.contacts} contact(s) reached · max {touches.max} ({escape(str(touches.top))}) · p95 {touches.p95}{cap}")
    for load in summary.accounts:
        against = f" / {load.cap} cap" if load.cap is not None else " (no private_per_account_per_day cap)"
        refused = f" · {load.refused} refused at the cap" if load.refused else ""
        style = "red" if load.refused else ""
        line = f"1v1 load 私聊量 · {escape(load.name)} ({escape(load.account or load.persona)}): {load.pending}{against}{refused}"
        console.print(f"[{style}]{line}[/]" if style else line)
    for persona, name, load in summary.capacity:
        carried_in = f" + {load.carried_in} carried in from earlier days" if load.carried_in else ""
        line = f"capacity 人效 · {escape(name)} ({escape(persona)}): 1v1 work for {load.fresh} contact(s){carried_in}; {load.fits} fit"
        line += f", [yellow]{load.carried} carried to the next day 顺延[/] (capacity:carried)" if load.carried else ""
        if load.carried and summary.per_contact_cap is not None:
            line += f" (before per_contact_per_day {summary.per_contact_cap}, which may skip some first)"
        console.print(line)
    if summary.extra:
        console.print(f"[blue]--all-variants: {summary.extra} extra draft(s) shown for review, not counted and never sent[/]")


def _print_positions(positions: list[Any]) -> None:
    """`preview --contact`: where the contact is in each journey and what it gets next."""
    if not positions:
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="journeys 旅程 of this contact", title_justify="left")
    for column in ("journey", "entered", "step", "due", "status"):
        table.add_column(column)
    for position in positions:
        for index, step in enumerate(position.steps):
            head = index == 0
            status = step.status + (f" · {position.exited}" if step.status == "exited" and position.exited else "")
            style = "bold" if step.status == "next" else ("dim" if step.status in ("exited", "not in audience", "not a friend") else "")
            table.add_row(
                escape(f"{position.title} ({position.journey})") if head else "",
                escape(f"{position.entered_at} by {position.entry}") if head else "",
                escape(step.step),
                step.due,
                f"[{style}]{escape(status)}[/]" if style else escape(status),
            )
    out().print(table)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu init my-camp --from education", "siyu init . --from ecommerce --force"))
def init(
    directory: Path = typer.Argument(..., help="Folder to create the project in."),
    archetype: str = typer.Option("education", "--from", help="Starter: education (群转 camp), skincare (个微 persona), ecommerce (企微 package card)."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty."),
) -> None:
    """Scaffold a project from a starter playbook (初始化): playbook, templates, a README, and schema.json with VS Code settings for the editor."""
    from siyu_cli.starters import scaffold

    created = scaffold(directory, archetype, force=force)
    console = out()
    console.print(f"[green]created[/] {directory} from the {archetype} starter ({len(created)} files)")
    console.print(f"next: cd {directory} && siyu check && siyu preview day 1 (README.md lists the commands; open the folder in an editor with the YAML extension)")
