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


@app.command(rich_help_panel=PANEL, epilog=examples("siyu timeline playbooks/camp.yaml", "siyu timeline -p playbooks/camp.yaml --cohort batch-13 --json"))
def timeline(
    playbook_arg: str = playbook_argument(),
    playbook: str = playbook_option(),
    cohort: str = typer.Option(None, "--cohort", help="Cohort id (default: the first)."),
    db: str = typer.Option(None, "--db", help=DB_HELP + " Its contacts place journey and welcome steps on the calendar."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the whole campaign as a calendar (日历): days as rows, beats and journeys as columns.

    Journey and welcome steps run on each contact's own clock: with contacts in the store each
    cell counts the steps due that day; with none, a sample contact enters every journey on day 1.
    """
    from siyu_cli.dispatch._setup import plan_inputs
    from siyu_cli.playbook import read
    from siyu_cli.render import search_path
    from siyu_cli.timeline import calendar_days, occurrences

    loaded = read(find_playbook(playbook, playbook_arg))
    run = loaded.cohort(cohort)
    items = list(occurrences(loaded, run, search_path(loaded)))
    marks, unknown_years = calendar_days(loaded, run)
    planner = plan_inputs(loaded, db, readonly=True).planner
    steps = sorted(planner.journey_calendar(run), key=lambda d: (d.occurrence_at, d.beat, d.target))
    if as_json:
        rows = [
            {
                "cohort": o.cohort,
                "day": o.day,
                "date": o.date.isoformat(),
                "at": o.at.isoformat(),
                "beat": o.beat.id,
                "title": o.beat.title,
                "channel": o.channel,
                "persona": o.persona,
                "target": o.target,
                "category": o.category,
                "template": o.content.name if o.content else None,
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
        print_json(rows)
        return
    from collections import Counter

    from rich.table import Table

    beats = loaded.model.beats
    routes = planner.book.routes
    who = "sample contact entering on day 1 at 10:00" if planner.sample_contact else f"{len(planner.contacts)} contacts in the store"
    notes = [f"journey and welcome columns: {who}"] if routes else []
    if unknown_years:
        notes.append(f"holidays not marked in {', '.join(map(str, unknown_years))}: no State Council schedule in the holidays package; see calendar: in the README")
    table = Table(title=f"{loaded.model.title} · cohort {run.id} · from {run.start}", caption="\n".join(notes) or None, show_lines=False)
    table.add_column("day", justify="right")
    table.add_column("date")
    table.add_column("phase")
    for beat in beats:
        table.add_column(f"{beat.title or beat.id}\n{CHANNEL_LABELS.get(beat.channel, beat.channel)}", overflow="fold")
    for route in routes:
        table.add_column(f"{route.title}\n{CHANNEL_LABELS.get(route.kind, route.kind)}", overflow="fold")
    by_day: dict[int, dict[str, list[str]]] = {}
    for o in items:
        cell = by_day.setdefault(o.day, {}).setdefault(o.beat.id, [])
        label = o.at.strftime("%H:%M")
        if o.category:
            label += f" {o.category}"
        if label not in cell:
            cell.append(label)
    counts: Counter[tuple[int, str, str]] = Counter()
    for d in steps:
        route_id, step = planner.book.by_beat[d.beat][0].id, planner.book.by_beat[d.beat][1]
        label = step.id if planner.book.by_id[route_id].kind == "journey" else f"#{step.index + 1}"
        counts[(d.day, route_id, label if not planner.sample_contact else f"{label} {d.occurrence_at:%H:%M}")] += 1
    for (day, route_id, label), count in sorted(counts.items()):
        by_day.setdefault(day, {}).setdefault(route_id, []).append(label if planner.sample_contact else f"{label} ×{count}")
    last = max([loaded.model.days, *(d.day for d in steps)])
    for day in range(1, last + 1):
        phase = loaded.phase_of(day) if day <= loaded.model.days else None
        cells = by_day.get(day, {})
        if day > loaded.model.days and not cells:
            continue
        table.add_row(
            str(day),
            "\n".join(filter(None, (str(run.start.fromordinal(run.start.toordinal() + day - 1)), marks[day].label if day in marks else ""))),
            phase.title if phase else ("" if day <= loaded.model.days else "after"),
            *["\n".join(cells.get(beat.id, [])) or "·" for beat in beats],
            *["\n".join(cells.get(route.id, [])) or "·" for route in routes],
        )
    console = out()
    if not console.is_terminal:
        console.width = max(console.width, 30 + 16 * (len(beats) + len(routes)))
    console.print(table)
    if routes:
        _print_routes(loaded, routes)


def _calendar_fields(day: Any) -> dict[str, str | None]:
    """A timeline row's place on China's calendar: workday, weekend or holiday (None where the year has no schedule)."""
    return {"calendar": day.kind if day else None, "holiday": (day.name or None) if day else None}


def _print_routes(loaded: Any, routes: Any) -> None:
    """Journeys relative to each contact: when each step goes after the entering event."""
    from rich.markup import escape
    from rich.table import Table

    from siyu_cli._time import format_duration

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
            when = ("+" + format_duration(step.after) if step.after else "at once") + (f" at {step.at:%H:%M}" if step.at else "")
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
    console.print(
        f"[bold]{escape(result.title)}[/] · cohort {escape(result.cohort)} · day {result.day} ({result.date}, {escape(result.phase or '-')}) · {len(result.items)} draft(s)"
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


def _print_summary(summary: Any) -> None:
    """What a reviewer reads first: counts by beat and decision, the busiest contact, each account against its cap."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="summary 概览", title_justify="left")
    for column in ("beat", "channel", "variant", "drafts", "pending 待发", "deferred 顺延", "holdout 对照", "quiet 免打扰", "limit 限频", "error"):
        table.add_column(column, justify="left" if column in ("beat", "channel", "variant") else "right")
    for row in summary.beats:
        cells = [row.drafts, row.pending, row.deferred, row.holdout, row.quiet, row.limit, row.error]
        table.add_row(escape(row.title), CHANNEL_LABELS.get(row.channel, row.channel), escape(row.variant or "-"), *[str(c) if c else "·" for c in cells])
    console = out()
    console.print(table)
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
            style = "bold" if step.status == "next" else ("dim" if step.status in ("exited", "not in audience") else "")
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
    """Scaffold a project from a starter playbook (初始化): playbook, templates and a README."""
    from siyu_cli.starters import scaffold

    created = scaffold(directory, archetype, force=force)
    console = out()
    console.print(f"[green]created[/] {directory} from the {archetype} starter ({len(created)} files)")
    console.print(f"next: cd {directory} && siyu check && siyu preview day 1")
