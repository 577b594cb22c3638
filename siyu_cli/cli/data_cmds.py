"""Getting data in and looking at it: `import contacts|events`, `track`, `contacts list|show|tag`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import typer

from siyu_cli.cli._app import app, examples
from siyu_cli.cli._common import DB_HELP, JSON_HELP, did_you_mean, err, find_playbook, out, print_json
from siyu_cli.errors import UsageError

PANEL = "Data 数据"

DEFAULT_TZ = "Asia/Shanghai"
TZ_HELP = f"Zone for times written without one when no playbook is given or found (default {DEFAULT_TZ})."
OPT_PLAYBOOK_HELP = "Playbook whose timezone reads zone-less times (default: $SIYU_PLAYBOOK, the only playbook in ./playbooks/, or ./playbook.yaml; optional)."
MAP_HELP = "Map one of the file's columns to a field: THEIR_COLUMN=FIELD (repeatable; FIELD '-' drops the column)."
MAP_FILE_HELP = "YAML or JSON file of `their column: field` lines, e.g. for a WeCom export (客户ID: contact_id)."
DRY_RUN_HELP = "Validate and count, write nothing."
SKIP_BAD_HELP = "Import the good rows and write the bad ones, with a `reason` column, to this CSV (instead of rejecting the file)."

import_app = typer.Typer(
    help="Import contacts and events (CSV/XLSX) into the store 导入",
    no_args_is_help=True,
    epilog=examples("siyu import contacts 客户.xlsx --map 客户ID=contact_id", "siyu import events orders.csv --dry-run"),
)
contacts_app = typer.Typer(
    help="List, show and tag contacts 联系人",
    no_args_is_help=True,
    epilog=examples("siyu contacts list --segment unpaid", "siyu contacts show c001"),
)
app.add_typer(import_app, name="import", rich_help_panel=PANEL)
app.add_typer(contacts_app, name="contacts", rich_help_panel=PANEL)


def _zone(playbook: str | None, tz: str | None) -> tuple[tzinfo, dict[str, str], dict[str, str]]:
    """--tz, else the named or found playbook's zone, else Asia/Shanghai; and the playbook's hooks (id or code -> code) and groups (id -> name).

    A named playbook must exist; a found one must read cleanly (its zone decides the times).
    """
    from siyu_cli._time import zone
    from siyu_cli.errors import PlaybookNotFound
    from siyu_cli.playbook import read

    try:
        loaded = read(find_playbook(playbook)) if playbook else read(find_playbook(None))
    except PlaybookNotFound:
        if playbook:
            raise
        loaded = None
    hooks, groups = _known(loaded)
    if tz:
        return zone(tz), hooks, groups
    return (loaded.tz if loaded is not None else zone(DEFAULT_TZ)), hooks, groups


def _known(loaded: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The playbook's hooks (id or code -> code) and groups (id -> name) an event may name; none without a playbook."""
    if loaded is None:
        return {}, {}
    hooks = {ref: hook.code or hook.id for hook in loaded.model.hooks for ref in (hook.id, hook.code) if ref}
    return hooks, {group.id: group.name for group in loaded.model.groups}


@contextmanager
def _store(db: str | None, *, create: bool = True) -> Iterator[Any]:
    """The store; `create=False` for commands that only read or edit what is there (a typo in --db is an error, not a new file)."""
    from siyu_cli.store import default_path, open_store

    handle = open_store(default_path(db), create=create)
    try:
        yield handle
    finally:
        handle.conn.close()


@contextmanager
def _progress(label: str, hidden: bool) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    console = err()
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=hidden or not console.is_terminal, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


def _mapping(kind: str, preset: str | None, map_file: Path | None, maps: list[str] | None) -> Any:
    """The preset, then the mapping file on top, then --map options on top of both."""
    from siyu_cli.ingest import ColumnMap, load_mapping, load_preset, parse_map_options

    mapping = ColumnMap()
    if preset:
        mapping = load_preset(preset)
        if mapping.kind not in (None, kind):
            raise UsageError(f"--preset {preset} is for `siyu import {mapping.kind}`, not `import {kind}`", hint=f"run siyu import {mapping.kind} FILE --preset {preset}")
    if map_file is not None:
        mapping = mapping.then(load_mapping(map_file))
    if maps:
        mapping = mapping.then(parse_map_options(maps))
    return mapping


@dataclass(frozen=True)
class ImportOptions:
    """The options both import commands share."""

    maps: list[str] | None
    map_file: Path | None
    preset: str | None
    dry_run: bool
    skip_bad: Path | None
    force: bool
    encoding: str | None
    sheet: str | None
    db: str | None
    playbook: str | None
    tz: str | None
    as_json: bool


def _run_import(kind: str, file: Path, how: ImportOptions, **options: Any) -> None:
    from siyu_cli.ingest import check_rejects_path, import_contacts, import_events

    mapping = _mapping(kind, how.preset, how.map_file, how.maps)
    if how.skip_bad is not None:
        check_rejects_path(how.skip_bad, file, force=how.force)
    zone, hooks, groups = _zone(how.playbook, how.tz)
    action = import_contacts if kind == "contacts" else import_events
    if kind == "events":
        options["groups"] = groups
    sheet: str | int | None = int(how.sheet) if how.sheet and how.sheet.isdigit() else how.sheet
    from siyu_cli.errors import SiyuError
    from siyu_cli.store import default_path

    path = default_path(how.db)
    fresh = not path.exists()
    try:
        with _store(how.db) as store, _progress(f"importing {file.name}", how.as_json) as progress:
            result = action(
                store, file, tz=zone, mapping=mapping, dry_run=how.dry_run, skip_bad_to=how.skip_bad, progress=progress,
                encoding=how.encoding, sheet=sheet, hooks=hooks, **options,
            )
    except SiyuError:
        if fresh:
            # A refused import changes nothing, so it leaves no empty store behind either.
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
        raise
    if how.as_json:
        print_json(result.to_dict())
        return
    _print_import(kind, file, result, how)


def _print_import(kind: str, file: Path, result: Any, how: ImportOptions) -> None:
    console, notes = out(), err()
    for name in result.unused_mapping:
        notes.print(f"note: the mapping names column {name!r}, which {file.name} does not have", markup=False, soft_wrap=True)
    for column, count in result.unmatched_hooks.items():
        notes.print(f"note: {count} row(s): {column} named no hook of the playbook; their hook is empty (the cell is kept as {column})", markup=False, soft_wrap=True)
    for column, codes in result.unknown_codes.items():
        listed = ", ".join(f"{code} ({count})" for code, count in sorted(codes.items()))
        notes.print(f"note: {column} gave codes that are no hook of the playbook: {listed}; they are kept as the source, and no hook's tags or welcome apply", markup=False, soft_wrap=True)
    for ref in result.unknown_refs:
        rows = ", ".join(str(n) for n in ref["row_numbers"]) + (f" … ({ref['rows']} rows)" if ref["rows"] > len(ref["row_numbers"]) else "")
        column = "/".join(ref["columns"])
        notes.print(f"note: {file.name}, column {column}, row(s) {rows}: {ref['why']}; kept as written", markup=False, soft_wrap=True)
    parts = [f"read {result.read}", f"inserted {result.inserted}", f"updated {result.updated}"]
    if kind == "contacts":
        parts.append(f"unchanged {result.unchanged}")
        if result.events_inserted or result.events_updated:
            parts.append(f"add events inserted {result.events_inserted} updated {result.events_updated}")
    else:
        parts.append(f"duplicates skipped {result.duplicates}")
        if result.contacts_created:
            parts.append(f"contacts created {result.contacts_created}")
    if result.aliases_linked:
        parts.append(f"aliases linked {result.aliases_linked}" + (f" ({result.contacts_merged} contacts merged)" if result.contacts_merged else ""))
    if result.left_out:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.left_out.items()))
        parts.append(f"left out by the mapping {sum(result.left_out.values())} ({reasons})")
    if result.closed_orders:
        parts.append(f"closed orders refunded {result.closed_orders}")
    if how.skip_bad is not None:
        parts.append(f"bad rows skipped {result.skipped} (written to {how.skip_bad})")
    where = "" if result.format != "xlsx" else f", sheet {result.sheet}"
    encoding = "" if result.format == "xlsx" else f", {result.encoding}"
    header = f", header on row {result.header_row}" if result.header_row != 1 else ""
    prefix = "dry run, nothing written: " if how.dry_run else ""
    console.print(f"{prefix}{kind} from {file} ({result.format}{encoding}{where}{header}): " + " · ".join(parts), markup=False, soft_wrap=True)
    verb = "would update" if how.dry_run else "updated"
    for change in result.changes:
        what = "; ".join(f"{name} {old!r} → {new!r}" for name, (old, new) in change["changes"].items())
        whose = f"contact {change['contact_id']}" if "contact_id" in change else f"event {change['event_id']}"
        console.print(f"  {verb} row {change['row']}: {whose}: {what}", markup=False, soft_wrap=True)
    if result.updated + result.events_updated > len(result.changes):
        console.print(f"  … and {result.updated + result.events_updated - len(result.changes)} more", markup=False, soft_wrap=True)
    for closed in result.closed:
        how_known = "counted before, now closed" if closed["stored_before"] else "paid, then refunded"
        amount = "" if closed["refund"] is None else f" {closed['refund']:g}"
        console.print(
            f"  closed row {closed['row']}: order {closed['event_id']} ({closed['why']}; {how_known}): refund{amount} {'would be ' if how.dry_run else ''}recorded",
            markup=False, soft_wrap=True,
        )
    if result.closed_orders > len(result.closed):
        console.print(f"  … and {result.closed_orders - len(result.closed)} more closed", markup=False, soft_wrap=True)


FILE_HELP = "CSV (UTF-8, UTF-8 BOM, GBK/GB18030; the whole file is checked) or XLSX (first sheet, or --sheet); title rows above the header are passed over."
PRESET_HELP = "A shipped mapping for a platform's export: wecom-customers, taobao-orders, douyin-orders (`siyu import presets` lists them); --map-file and --map go on top."
ENCODING_HELP = "The CSV's encoding when detection guesses wrong (e.g. gb18030, utf-8, utf-16)."
SHEET_HELP = "The XLSX sheet to read: its name, or its number from 1 (default: the mapping's, else the first)."
FORCE_HELP = "Let --skip-bad overwrite an existing file (never the file being imported)."


@import_app.command(
    "contacts",
    epilog=examples("siyu import contacts 客户列表.xlsx --preset wecom-customers -p playbooks/ecommerce-card.yaml", "siyu import contacts 客户.xlsx --map 客户ID=contact_id --dry-run"),
)
def import_contacts_cmd(
    file: Path = typer.Argument(..., help=FILE_HELP + " Columns contact_id, name, tags, source, tier, account, cohort, added_at."),
    maps: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    map_file: Path = typer.Option(None, "--map-file", help=MAP_FILE_HELP),
    preset: str = typer.Option(None, "--preset", help=PRESET_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    skip_bad: Path = typer.Option(None, "--skip-bad", help=SKIP_BAD_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    encoding: str = typer.Option(None, "--encoding", help=ENCODING_HELP),
    sheet: str = typer.Option(None, "--sheet", help=SHEET_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help=OPT_PLAYBOOK_HELP),
    tz: str = typer.Option(None, "--tz", help=TZ_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import contacts 联系人: upsert by contact_id (or an alias of one); tags (split on , ， ; ； | 、) replace the stored tags. All or nothing."""
    _run_import("contacts", file, ImportOptions(maps, map_file, preset, dry_run, skip_bad, force, encoding, sheet, db, playbook, tz, as_json))


@import_app.command(
    "events",
    epilog=examples(
        "siyu import events 订单报表.csv --preset taobao-orders --create-contacts --also card_sent",
        "siyu import events orders.csv --create-contacts --skip-bad bad.csv",
    ),
)
def import_events_cmd(
    file: Path = typer.Argument(..., help=FILE_HELP + " Columns event_id (optional), type, contact_id, at, hook, cohort, group, amount."),
    maps: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    map_file: Path = typer.Option(None, "--map-file", help=MAP_FILE_HELP),
    preset: str = typer.Option(None, "--preset", help=PRESET_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP + " Lists the events that would be updated."),
    skip_bad: Path = typer.Option(None, "--skip-bad", help=SKIP_BAD_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    encoding: str = typer.Option(None, "--encoding", help=ENCODING_HELP),
    sheet: str = typer.Option(None, "--sheet", help=SHEET_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help=OPT_PLAYBOOK_HELP),
    tz: str = typer.Option(None, "--tz", help=TZ_HELP),
    create_contacts: bool = typer.Option(False, "--create-contacts", help="Create a bare contact for an unknown contact id instead of rejecting its rows (e.g. card_sent to buyers not yet added)."),
    also: list[str] = typer.Option(None, "--also", help="Every imported row also records an event of this type at its time, e.g. --also card_sent: each order shipped a package card (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import events 事件 (加微, 进群, 打卡, 下单…); re-importing a file adds nothing, a changed event is an update, listed. All or nothing."""
    how = ImportOptions(maps, map_file, preset, dry_run, skip_bad, force, encoding, sheet, db, playbook, tz, as_json)
    _run_import("events", file, how, create_contacts=create_contacts, also=list(also or []))


@import_app.command("presets", epilog=examples("siyu import presets", "siyu import presets --show taobao-orders > my-taobao.yaml"))
def import_presets_cmd(
    show: str = typer.Option(None, "--show", help="Print this preset's mapping file, to copy and edit as your own --map-file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the shipped presets 预设 for platforms' exports, with the columns each reads."""
    from siyu_cli.ingest import load_preset, preset_names, preset_text
    from siyu_cli.ingest._import import REQUIRED

    if show:
        typer.echo(preset_text(show), nl=False)
        return
    rows = []
    for name in preset_names():
        mapping = load_preset(name)
        needs = list(dict.fromkeys((*REQUIRED[str(mapping.kind)], *mapping.needs)))
        columns = {column: [rule.field or "alias" for rule in mapping.rules if rule.column == column] for column in dict.fromkeys(mapping.columns)}
        rows.append(
            {
                "name": name,
                "for": mapping.kind,
                "about": mapping.about,
                "needs": needs,
                "columns": columns,
                "optional": [column for column, targets in columns.items() if not set(targets) & {*needs, "-"}],
                "constants": {rule.field: rule.const for rule in mapping.rules if rule.const is not None},
            }
        )
    if as_json:
        print_json(rows)
        return
    console = out()
    for row in rows:
        console.print(f"{row['name']}  (siyu import {row['for']} FILE --preset {row['name']})", markup=False, soft_wrap=True)
        if row["about"]:
            console.print(f"  {row['about']}", markup=False, soft_wrap=True)
        console.print(f"  needs {', '.join(row['needs'])}: one of the columns for each must be in the file; the others are optional", markup=False, soft_wrap=True)
        for column, targets in row["columns"].items():
            optional = "  (optional)" if column in row["optional"] else "  (not stored)" if targets == ["-"] else ""
            console.print(f"    {column} → {', '.join(targets)}{optional}", markup=False, soft_wrap=True)
        for name, value in row["constants"].items():
            console.print(f"    {name} = {value}", markup=False, soft_wrap=True)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu track order --contact c001 --amount 365", "siyu track friend_added --contact c002 --hook EYE100 --create-contact"))
def track(
    kind: str = typer.Argument(..., metavar="TYPE", help="Event type: card_sent, friend_added, friend_deleted, group_joined, group_left, checkin, message_replied, order, refund."),
    contact: str = typer.Option(..., "--contact", help="Contact id."),
    at: str = typer.Option(None, "--at", help="When it happened (ISO; zone-less times are in the playbook's zone). Default: now."),
    hook: str = typer.Option(None, "--hook", help="Hook code 钩子 the event came through."),
    cohort: str = typer.Option(None, "--cohort", help="Cohort id."),
    group: str = typer.Option(None, "--group", help="Group id 群."),
    amount: str = typer.Option(None, "--amount", help="Amount (orders and refunds), a number."),
    event_id: str = typer.Option(None, "--event-id", help="Your id for the event; recording the same id again adds nothing."),
    props: list[str] = typer.Option(None, "--prop", help="Extra property k=v (repeatable)."),
    create_contact: bool = typer.Option(False, "--create-contact", help="Create a bare contact when the id is not in the store."),
    now: str = typer.Option(None, "--now", help="Pretend it is this moment (ISO); the default for --at. For tests and rehearsals."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help=OPT_PLAYBOOK_HELP),
    tz: str = typer.Option(None, "--tz", help=TZ_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Record one event 记录事件, such as an order closed in 1v1, validated like an imported row."""
    from siyu_cli._time import utcnow
    from siyu_cli.ingest import new_event, track
    from siyu_cli.ingest._parse import EVENTS, event_type

    if event_type(kind) is None:
        raise UsageError(f"unknown event type {kind!r}", hint=f"{did_you_mean(kind.lower(), EVENTS)}use one of: {', '.join(EVENTS)}")
    zone, loaded = _playbook_view(playbook, tz)
    moment = _moment(at, zone, "--at") or _moment(now, zone, "--now") or utcnow()
    if loaded is not None:
        from siyu_cli.ingest import group_miss, hook_miss

        hooks, groups = _known(loaded)
        for why in (hook_miss(hook, hooks, loaded.id), group_miss(group, groups, loaded.id)):
            if why:
                err().print(f"warning: {why}; recorded as written", markup=False, soft_wrap=True)
    extra: dict[str, str] = {}
    for item in props or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--prop {item!r}: write KEY=VALUE")
        extra[key.strip()] = value
    with _store(db) as store:
        event = new_event(kind, contact, at=moment, hook=hook, cohort=cohort, group=group, amount=amount, event_id=event_id, props=extra, create_contact=create_contact)
        result = track(store, event)
    if as_json:
        print_json(result.to_dict())
        return
    console = out()
    if result.contact_created:
        console.print(f"created contact {result.contact_id}", markup=False, soft_wrap=True)
    local = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")
    verb = "recorded" if result.inserted else "already recorded"
    console.print(f"{verb} {result.type} for {result.contact_id} at {local} (event {result.event_id})", markup=False, soft_wrap=True)


def _moment(text: str | None, zone: tzinfo, option: str) -> datetime | None:
    if text is None:
        return None
    from siyu_cli._time import from_db
    from siyu_cli.ingest import time_parser

    try:
        return from_db(time_parser(zone)(text))
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


@contacts_app.command(
    "tag",
    context_settings={"ignore_unknown_options": True},
    epilog=examples("siyu contacts tag c001 +已购 -潜客", "siyu contacts tag c001 --add 已购 --remove 潜客"),
)
def contacts_tag(
    contact_id: str = typer.Argument(..., help="Contact id."),
    changes: list[str] = typer.Argument(None, help="+tag adds, -tag removes, a bare tag adds (use `--` before -tags if a tag looks like an option)."),
    add: list[str] = typer.Option(None, "--add", help="Tag to add (repeatable)."),
    remove: list[str] = typer.Option(None, "--remove", help="Tag to remove (repeatable)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help="Playbook whose hooks and rules give the effective tags printed (optional; found as usual)."),
    now: str = typer.Option(None, "--now", help="When the edit was made (default: now); it takes its place among the contact's events at that time."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add and remove tags 标签 on one contact; prints its effective tags after the edit.

    The edit is recorded as a `tagged` event, so it takes its place among the contact's events:
    a rule that fires on a later event can still change the tag.
    """
    from siyu_cli._time import utcnow
    from siyu_cli.ingest import edit_tags, get_contact
    from siyu_cli.rules import contact_tag_state

    adds, removes = list(add or []), list(remove or [])
    for change in changes or []:
        if change.startswith("-"):
            removes.append(change[1:])
        else:
            adds.append(change[1:] if change.startswith("+") else change)
    if not [t for t in adds + removes if t.strip()]:
        raise UsageError("no tags to change", hint="e.g. siyu contacts tag c001 +已购 -潜客, or --add 已购 --remove 潜客")
    zone, loaded = _playbook_view(playbook, None)
    moment = _moment(now, zone, "--now") or utcnow()
    with _store(db, create=False) as store:
        edit_tags(store, contact_id, adds, removes, at=moment)
        tags = contact_tag_state(store, _tag_rules(loaded), get_contact(store, contact_id), explain=False).tags
    if as_json:
        print_json({"contact_id": contact_id, "tags": tags})
        return
    out().print(f"{contact_id}: {', '.join(tags) if tags else '(no tags)'}", markup=False, soft_wrap=True)


def _tag_rules(loaded: Any) -> Any:
    from siyu_cli.rules import TagRules

    return TagRules.of(loaded.model if loaded is not None else None)


@contacts_app.command("link", epilog=examples("siyu contacts link wm_0001 tb_小明 tb_id_2201", "siyu contacts link wm_0001 13800000001 --json"))
def contacts_link(
    contact_id: str = typer.Argument(..., help="The contact the aliases join (its id, or an alias of it)."),
    aliases: list[str] = typer.Argument(..., help="Other ids of the same person: a Taobao buyer, a phone hash, a union id."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Link other ids of one person to a contact 合并身份: events naming an alias land on the contact.

    An alias that is a contact in the store (a bare buyer from an order import) is merged in:
    its events move over, its fields fill the empty ones, its tags join. All or none.
    """
    from siyu_cli.ingest import link_contact

    with _store(db, create=False) as store:
        result = link_contact(store, contact_id, aliases)
    if as_json:
        print_json(result.to_dict())
        return
    console = out()
    if result.linked:
        console.print(f"{result.contact_id}: linked {', '.join(result.linked)}", markup=False, soft_wrap=True)
    if result.merged:
        console.print(f"{result.contact_id}: merged contacts {', '.join(result.merged)} ({result.events_moved} events moved)", markup=False, soft_wrap=True)
    if result.already:
        console.print(f"{result.contact_id}: already linked {', '.join(result.already)}", markup=False, soft_wrap=True)


@contacts_app.command("list", epilog=examples("siyu contacts list --segment unpaid --limit 20", "siyu contacts list --segment '家长 and not 已购' --json"))
def contacts_list(
    segment: str = typer.Option(None, "--segment", help="A segment id of the playbook, or a tag expression such as '家长 and not 已购'."),
    cohort: str = typer.Option(None, "--cohort", help="Only contacts of this cohort."),
    limit: int = typer.Option(None, "--limit", min=1, help="Show at most this many contacts."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help="Playbook whose segments and zone to use (optional; found as usual when omitted)."),
    tz: str = typer.Option(None, "--tz", help=TZ_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List contacts 联系人 with their tags, filtered by segment and cohort."""
    from itertools import islice

    from siyu_cli.ingest import list_contacts

    zone, loaded = _playbook_view(playbook, tz)
    segments = dict(loaded.model.segments) if loaded is not None else {}
    expr = segments.get(segment, segment) if segment else None
    with _store(db, create=False) as store:
        rows = list(islice(list_contacts(store, segment=expr, cohort=cohort, rules=_tag_rules(loaded)), limit))
        if not rows and segment and segment not in segments:
            _no_such_segment(store, segment, loaded, _tag_rules(loaded))
    if as_json:
        print_json([_jsonable(row) for row in rows])
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(rows)} contact(s)" + (f" in {escape(segment)}" if segment else ""))
    for column in ("id", "name", "tags", "source", "tier", "cohort", "added_at"):
        table.add_column(column)
    for row in rows:
        added = row["added_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M") if row["added_at"] else ""
        table.add_row(*(escape(str(v or "")) for v in (row["id"], row["name"], ", ".join(row["tags"]), row["source"], row["tier"], row["cohort"])), added)
    out().print(table)


def _no_such_segment(store: Any, segment: str, loaded: Any, rules: Any) -> None:
    """`--segment unpaidd` listed no one: a usage error when it is one word no contact has as a tag and that is no
    segment (a near one is named) nor a tag the playbook's segments, hooks or rules name; an expression, or a tag
    the playbook uses that no one has yet (已购 before the first order), lists 0 as asked."""
    from siyu_cli.ingest import list_contacts
    from siyu_cli.playbook import TagExprError, parse_tags

    try:
        expr = parse_tags(segment)
    except TagExprError:
        return
    if expr.tags != {segment.strip()}:
        return
    word = segment.strip()
    model = loaded.model if loaded is not None else None
    segments = dict(model.segments) if model is not None else {}
    held = {tag for contact in list_contacts(store, rules=rules) for tag in contact["tags"]}
    if word in held:
        return
    named: set[str] = set()
    if model is not None:
        for text in segments.values():
            try:
                named |= set(parse_tags(text).tags)
            except TagExprError:
                continue
        named |= {tag for hook in model.hooks for tag in hook.tags}
        named |= {change[1:] for rule in model.rules for change in rule.tag}
    if word in named:
        return
    close = did_you_mean(word, segments, "the segment ") or did_you_mean(word, sorted(held | named), "the tag ")
    known = f"the playbook's segments: {', '.join(segments)}" if segments else "no playbook with segments was found (pass -p PLAYBOOK)"
    raise UsageError(
        f"--segment {word!r} is no segment and no contact has the tag {word!r}, so it lists no one",
        hint=f"{close}{known}; or a tag expression such as '家长 and not 已购'",
    )


@contacts_app.command("show", epilog=examples("siyu contacts show c001", "siyu contacts show c001 -p playbooks/camp.yaml --json"))
def contacts_show(
    contact_id: str = typer.Argument(..., help="Contact id."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    playbook: str = typer.Option(None, "-p", "--playbook", help=OPT_PLAYBOOK_HELP),
    tz: str = typer.Option(None, "--tz", help=TZ_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one contact (by its id or an alias), its aliases, its effective tags with where each came from, and its events 事件 in time order."""
    from siyu_cli.ingest import contact_aliases, contact_events, get_contact, resolve_contact
    from siyu_cli.rules import contact_tag_state

    zone, loaded = _playbook_view(playbook, tz, strict=bool(playbook))
    with _store(db, create=False) as store:
        contact_id = resolve_contact(store, contact_id)
        contact = get_contact(store, contact_id)
        contact["aliases"] = contact_aliases(store, contact_id)
        state = contact_tag_state(store, _tag_rules(loaded), contact)
        events = contact_events(store, contact_id)
    origins = {tag: state.origins[tag] for tag in state.tags} if state.origins is not None else {}
    own_tags = contact["tags"]
    contact = {**contact, "own_tags": own_tags, "tags": state.tags, "source": state.source}
    if as_json:
        data = _jsonable(contact)
        data["tag_origins"] = {tag: {"kind": o.kind, "detail": o.detail, "at": o.at, "event_id": o.event_id} for tag, o in origins.items()}
        print_json({**data, "events": [_jsonable(event) for event in events]})
        return
    from rich.markup import escape
    from rich.table import Table

    console = out()
    fields = [("name", contact["name"]), ("source", contact["source"]), ("tier", contact["tier"]),
              ("account", contact["account"]), ("cohort", contact["cohort"]),
              ("added_at", contact["added_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M") if contact["added_at"] else None),
              ("aliases", ", ".join(contact["aliases"]))]
    fields += sorted(contact["extra"].items())
    console.print(f"[bold]{escape(contact['id'])}[/]")
    for name, value in fields:
        if value not in (None, ""):
            console.print(f"  {escape(str(name))}: {escape(str(value))}")
    console.print("  tags 标签:" + ("" if state.tags else " (none)"))
    for tag in state.tags:
        origin = origins.get(tag)
        how = origin.describe() if origin is not None else "imported"
        console.print(f"    {escape(tag)}  [dim]← {escape(_local_origin(how, origin, zone))}[/]")
    table = Table(title=f"{len(events)} event(s)")
    for column in ("at", "type", "hook", "cohort", "group", "amount"):
        table.add_column(column)
    for event in events:
        amount = "" if event["amount"] is None else f"{event['amount']:g}"
        table.add_row(event["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M"), *(escape(str(event[k] or "")) for k in ("type", "hook", "cohort", "group")), amount)
    console.print(table)


def _playbook_view(playbook: str | None, tz: str | None, *, strict: bool = True) -> tuple[tzinfo, Any]:
    """Zone and the playbook (its segments, hooks and rules): the named one, or a found one when it reads cleanly."""
    from siyu_cli._time import zone
    from siyu_cli.errors import PlaybookInvalid, PlaybookNotFound
    from siyu_cli.playbook import read

    if playbook:
        loaded = read(find_playbook(playbook))
    else:
        try:
            loaded = read(find_playbook(None))
        except (PlaybookNotFound, PlaybookInvalid):
            return zone(tz or DEFAULT_TZ), None
    return (zone(tz) if tz else loaded.tz), loaded


def _local_origin(how: str, origin: Any, zone: tzinfo) -> str:
    """An origin's UTC time in the zone the operator reads."""
    from siyu_cli._time import from_db

    if origin is None or not origin.at:
        return how
    local = from_db(origin.at).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return how.replace(origin.at, local)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    from siyu_cli._time import to_db

    return {key: to_db(value) if isinstance(value, datetime) else value for key, value in row.items()}
