"""Importing contacts and events: one streaming pass, all or nothing.

The pass validates each row and writes good rows in batches inside one BEGIN IMMEDIATE
transaction. The first bad row stops the writing (validation goes on, to name every bad row);
at the end a file with bad rows is rolled back unless `skip_bad_to` is given. A dry run does the
same work and always rolls back, so its counts (updates and duplicates included) are exact.

Events: an event id already stored with the same facts is a duplicate; with other facts, from
before this import, an update (counted and listed); from an earlier row of this file, a bad row.
Contacts: rows are staged in a temporary table and read back by contact, so rows sharing an id
are decided by their content, never by their order in the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from array import array
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import tzinfo
from itertools import groupby
from pathlib import Path
from typing import Any, TextIO

import sqlite_utils

from siyu_cli._time import to_db, utcnow
from siyu_cli.errors import ImportRejected, SiyuError, UsageError
from siyu_cli.ingest._identity import AliasConflict, Identities
from siyu_cli.ingest._mapping import DROP, Closed, ColumnMap, Compiled, Rule, Skip, compile_mapping
from siyu_cli.ingest._parse import EVENT_TYPES, cell_text, check_amount, derived_event_id, dumps, event_type, parse_amount, read_id, split_tags, time_parser
from siyu_cli.ingest._refs import UnknownRefs
from siyu_cli.ingest._source import Progress, Source
from siyu_cli.playbook import EVENTS
from siyu_cli.store import immediate

CONTACT_FIELDS = ("contact_id", "name", "tags", "source", "tier", "account", "cohort", "added_at")
EVENT_FIELDS = ("event_id", "type", "contact_id", "at", "hook", "cohort", "group", "amount")
REQUIRED = {"contacts": ("contact_id",), "events": ("type", "contact_id", "at")}
IMPLICIT = {"events": {"group_id": "group"}, "contacts": {}}
BATCH = 5000
MAX_LISTED = 200
_FACTS = ("type", "contact_id", "at", "hook", "cohort", "group", "amount", "props")
_EVENT_SQL = "INSERT OR IGNORE INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CONTACT_SQL = "INSERT OR IGNORE INTO contacts (contact_id, updated_at) VALUES (?, ?)"


def _raw(value: Any) -> Any:
    return value


# Ids lose Excel's wrappers; times and amounts keep the cell (an Excel date, a number) for their parsers.
_CLEAN: dict[str, Callable[[Any], Any]] = {"contact_id": read_id, "event_id": read_id, "at": _raw, "added_at": _raw, "amount": _raw, "refund": _raw}


@dataclass
class ImportResult:
    """What an import did. Contacts: inserted/updated/unchanged contacts. Events: inserted/updated/duplicate events.

    `skipped`: bad rows written to the rejects file. `left_out`: rows the mapping leaves out on
    purpose, by reason (`订单状态 等待买家付款`). `changes`: the updated contacts and events, listed (capped).
    `closed`: orders whose type value maps to `closed` and that were recorded with their refund (capped;
    `closed_orders` counts them all). `unknown_codes`: codes a hooks column gave that are no hook of the playbook.
    `unknown_refs`: events' group and hook values the playbook lacks, and contacts' tier values capacity does not
    know (counted as untiered), each with why, its row count and first rows.
    """

    file: str
    kind: str
    format: str
    encoding: str
    sheet: str = ""
    header_row: int = 1
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    skipped: int = 0
    contacts_created: int = 0
    events_inserted: int = 0
    events_updated: int = 0
    aliases_linked: int = 0
    contacts_merged: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    unmatched_hooks: dict[str, int] = field(default_factory=dict)
    unknown_codes: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown_refs: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    closed_orders: int = 0
    closed: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    rejects_file: str | None = None
    unused_mapping: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Rollback(Exception):
    """Leaves `immediate()` by its rollback path."""


def _as_map(mapping: ColumnMap | Mapping[str, str] | None) -> ColumnMap:
    if isinstance(mapping, ColumnMap):
        return mapping
    rules = tuple(Rule(str(k).replace("\ufeff", "").strip(), v, origin="--map") for k, v in (mapping or {}).items())
    return ColumnMap(rules, name="--map")


def _open(path: Path, mapping: ColumnMap, kind: str, fields: tuple[str, ...], progress: Progress | None, encoding: str | None, sheet: str | int | None) -> Source:
    if mapping.kind is not None and mapping.kind != kind:
        raise UsageError(f"{mapping.name} is a mapping for `siyu import {mapping.kind}`, not `import {kind}`", hint=f"run siyu import {mapping.kind} {path}")
    known = [*fields, *mapping.columns]
    return Source(path, progress, encoding=encoding, sheet=sheet if sheet is not None else mapping.sheet, header_row=mapping.header_row, known=known)


def _compile(source: Source, mapping: ColumnMap, fields: tuple[str, ...], kind: str, file: Path, hooks: Mapping[str, str]) -> Compiled:
    try:
        return _compile_on(source, mapping, fields, kind, file, hooks)
    except SiyuError as exc:
        if len(source.sheets) < 2 or isinstance(exc, UsageError):
            raise
        others = [name for name in source.sheets if name != source.sheet]
        raise SiyuError(f"{exc.message} (sheet {source.sheet!r})", hint=f"the workbook also has: {', '.join(others)}; pick one with --sheet NAME or --sheet N") from None


def _compile_on(source: Source, mapping: ColumnMap, fields: tuple[str, ...], kind: str, file: Path, hooks: Mapping[str, str]) -> Compiled:
    return compile_mapping(
        mapping,
        source.header,
        fields,
        kind,
        file,
        required=REQUIRED[kind],
        implicit=IMPLICIT[kind],
        clean=_CLEAN,
        text=cell_text,
        hook_refs=hooks,
    )


def _result(file: Path, kind: str, source: Source, cols: Compiled, dry_run: bool) -> ImportResult:
    return ImportResult(str(file), kind, source.kind, source.encoding, source.sheet, source.header_row, dry_run=dry_run, unused_mapping=cols.unused)


def import_contacts(
    db: sqlite_utils.Database,
    path: str | os.PathLike[str],
    *,
    tz: tzinfo,
    mapping: ColumnMap | Mapping[str, str] | None = None,
    dry_run: bool = False,
    skip_bad_to: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    hooks: Mapping[str, str] | None = None,
) -> ImportResult:
    """Upsert contacts by contact_id (or the contact an alias names); tags in the file replace the stored tags.

    Rows sharing a contact id must agree, unless the mapping says `merge_rows` (a WeCom export
    lists a customer once per staff member): then the earliest add decides added_at, account,
    source and the other single values, and the tags are every row's. With `add_events`, each
    row's add is a friend_added event (one per contact and staff member). A tier capacity does not
    know is noted in `unknown_refs` (still imported: the column may hold the team's own words).
    """
    file = Path(path)
    cmap = _as_map(mapping)
    with _open(file, cmap, "contacts", CONTACT_FIELDS, progress, encoding, sheet) as source:
        cols = _compile(source, cmap, CONTACT_FIELDS, "contacts", file, hooks or {})
        result = _result(file, "contacts", source, cols, dry_run)
        get = cols.getters
        parse_at = time_parser(tz)
        width = len(source.header)
        fields = [name for name in CONTACT_FIELDS[1:] if name in get]
        tiers = UnknownRefs({}, {}, columns=cols.sources)

        def row_of(cells: list[Any]) -> tuple[Any, ...] | str:
            reasons: list[str] = []
            values: dict[str, Any] = {}
            for name in CONTACT_FIELDS:
                getter = get.get(name)
                if getter is None:
                    continue
                try:
                    value = getter(cells)
                    if name == "added_at" and value is not None and value != "":
                        value = parse_at(value)
                    elif name == "tags":
                        value = split_tags(value)
                    elif value == "":
                        value = None
                except ValueError as exc:
                    reasons.append(_located(exc, cols, name))
                    continue
                values[name] = value
            cid = values.get("contact_id")
            if cid is None and not reasons:
                reasons.append("missing contact_id" + (f" ({'/'.join(cols.sources['contact_id'])} is empty)" if cols.sources["contact_id"] != ["contact_id"] else ""))
            aliases = [alias for _, alias in _alias_values(cols.aliases, cells, reasons) if alias != cid]
            if reasons:
                return "; ".join(reasons)
            extra = _extra(cells, cols.extra)
            return (
                cid, values.get("name"), dumps(values["tags"]) if "tags" in values else None, values.get("source"), values.get("tier"),
                values.get("account"), values.get("cohort"), values.get("added_at"), extra, dumps(aliases) if aliases else None,
            )

        with _rejects_file(skip_bad_to, source.header, file) as rejects:
            bad = _Bad(file, rejects)
            try:
                with _bulk(db), immediate(db):
                    conn = db.conn
                    conn.execute("DROP TABLE IF EXISTS temp.siyu_staged")
                    conn.execute(
                        "CREATE TEMP TABLE siyu_staged (contact_id TEXT, rowno INTEGER, name TEXT, tags TEXT, source TEXT, tier TEXT, "
                        "account TEXT, cohort TEXT, added_at TEXT, extra TEXT, aliases TEXT)"
                    )
                    batch: list[tuple[Any, ...]] = []
                    staging = "INSERT INTO temp.siyu_staged VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    for rowno, cells in source.rows():
                        result.read += 1
                        cells, overflow = _fit(cells, width)
                        row = overflow or _skipping(row_of, cells, result)
                        if row is None:
                            continue
                        if isinstance(row, str):
                            bad.add(rowno, cells, row)
                            continue
                        batch.append((row[0], rowno, *row[1:]))
                        tiers.add_tier(rowno, row[4])
                        if len(batch) >= BATCH:
                            _flush(conn, staging, batch)
                    _flush(conn, staging, batch)
                    _write_contacts(conn, cmap, fields, result, bad, file, rejects is not None)
                    conn.execute("DROP TABLE temp.siyu_staged")
                    if dry_run or bad.blocking:
                        raise _Rollback
            except _Rollback:
                pass
        bad.raise_if_blocking()
        result.unmatched_hooks = dict(cols.unmatched_hooks)
        result.unknown_codes = {column: dict(codes) for column, codes in cols.unknown_codes.items()}
        result.unknown_refs = tiers.listed()
        result.skipped = bad.total
        result.rejects_file = str(skip_bad_to) if skip_bad_to is not None else None
        return result


_STAGED = ("name", "tags", "source", "tier", "account", "cohort", "added_at", "extra")


def _write_contacts(conn: Any, cmap: ColumnMap, fields: list[str], result: ImportResult, bad: _Bad, file: Path, skipping: bool) -> None:
    """Read the staged rows back by contact (earliest add first, then by content), decide each contact, write it."""
    identities = Identities(conn)
    stamp = to_db(utcnow())
    sql = _contact_sql(fields)
    writer = _EventWriter(conn, bad, result, None)
    rows = conn.execute(
        "SELECT contact_id, rowno, name, tags, source, tier, account, cohort, added_at, extra, aliases FROM temp.siyu_staged "
        "ORDER BY contact_id, added_at IS NULL, added_at, account IS NULL, account, source, name, tags, extra, rowno"
    )
    stored_sql = f"SELECT {', '.join(fields)}, extra FROM contacts WHERE contact_id = ?"
    pending: list[tuple[str, list[tuple[Any, ...]]]] = []
    for written, group in groupby(rows, key=lambda row: row[0]):
        members = list(group)
        first = members[0]
        if len(members) > 1 and not cmap.merge_rows:
            differs = [row for row in members[1:] if row[2:10] != first[2:10]]
            if differs:
                for row in differs:
                    what = ", ".join(f"{name} {a!r} vs {b!r}" for name, a, b in zip(_STAGED, first[2:10], row[2:10], strict=True) if a != b)
                    bad.add(row[1], [], f"contact {written!r} is also on row {first[1]} with other values ({what}); keep one row per contact")
                continue
        tags: list[str] | None = None
        if first[3] is not None:
            tags = list(dict.fromkeys(tag for row in members for tag in json.loads(row[3] or "[]")))
        extra: dict[str, Any] = {}
        for row in reversed(members):
            extra.update(json.loads(row[9]))
        values = {"name": first[2], "tags": dumps(tags) if tags is not None else None, "source": first[4], "tier": first[5], "account": first[6], "cohort": first[7], "added_at": first[8]}
        for name in ("name", "source", "tier", "cohort"):
            if values[name] is None:
                values[name] = next((row[2 + _STAGED.index(name)] for row in members if row[2 + _STAGED.index(name)] is not None), None)
        pending.append((written, members))
        if bad.blocking:
            continue
        cid = identities.resolve(written)
        stored = conn.execute(stored_sql, [cid]).fetchone()
        if stored is not None:
            what = _contact_changes(fields, values, extra, stored)
            if not what:
                continue  # unchanged: nothing written, updated_at stays
            result.updated += 1
            if len(result.changes) < MAX_LISTED:
                result.changes.append({"row": first[1], "contact_id": cid, "changes": what})
        else:
            result.inserted += 1
        _flush(conn, sql, [(cid, *(values[name] for name in fields), dumps(extra) if extra else "{}", stamp)])
    if bad.blocking:
        return
    result.unchanged = len(pending) - result.inserted - result.updated
    known = {cid for (cid,) in conn.execute("SELECT contact_id FROM contacts")}
    for written, members in pending:
        cid = identities.resolve(written)
        for row in members:
            for alias in json.loads(row[10] or "[]"):
                try:
                    outcome, _ = identities.link(cid, alias, known=known, origin=str(file))
                except AliasConflict as exc:
                    bad.add(row[1], [], f"alias {exc}")
                    continue
                result.aliases_linked += outcome != "already"
                result.contacts_merged += outcome == "merged"
        if cmap.add_events:
            for row in members:
                if row[8] is None:
                    continue
                account = row[6]
                eid = key_event_id("friend_added", (written, account or "", row[8]))
                writer.add(row[1], (eid, "friend_added", cid, row[8], row[4], row[7], None, None, dumps({"account": account}) if account else "{}"))
    writer.flush()
    result.events_inserted, result.events_updated = writer.inserted, writer.updated


def import_events(
    db: sqlite_utils.Database,
    path: str | os.PathLike[str],
    *,
    tz: tzinfo,
    mapping: ColumnMap | Mapping[str, str] | None = None,
    dry_run: bool = False,
    skip_bad_to: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    create_contacts: bool = False,
    encoding: str | None = None,
    sheet: str | int | None = None,
    hooks: Mapping[str, str] | None = None,
    also: Collection[str] = (),
    groups: Mapping[str, str] | None = None,
) -> ImportResult:
    """Add events for known contacts (or the contacts their ids are aliases of).

    With `create_contacts`, an unknown contact id gets a bare contact instead of making its row bad.
    `hooks` (id or code → code) and `groups` (id → name), the playbook's: kept rows naming others are listed
    in `unknown_refs` (they are still imported).
    `also` (and the mapping's `also:`): every kept row also records events of these types at its
    time, e.g. card_sent for orders that shipped a package card.
    """
    file = Path(path)
    cmap = _as_map(mapping)
    extra_types = []
    for name in (*cmap.also, *also):
        standard = event_type(name)
        if standard is None:
            raise UsageError(f"also: {name!r} is not an event type", hint=f"use one of: {', '.join(EVENTS)}")
        extra_types.append(standard)
    with _open(file, cmap, "events", EVENT_FIELDS, progress, encoding, sheet) as source:
        cols = _compile(source, cmap, EVENT_FIELDS, "events", file, hooks or {})
        result = _result(file, "events", source, cols, dry_run)
        get = cols.getters
        known = {cid for (cid,) in db.execute("SELECT contact_id FROM contacts")}
        identities = Identities(db.conn)
        owner = identities.owner
        g_type, g_cid, g_at = get["type"], get["contact_id"], get["at"]
        g_eid, g_hook, g_cohort, g_group, g_amount, g_refund = (get.get(name) for name in ("event_id", "hook", "cohort", "group", "amount", "refund"))
        key = cmap.key
        extra = cols.extra
        aliases = cols.aliases
        parse_at = time_parser(tz)
        width = len(source.header)
        types = EVENT_TYPES
        stamp = to_db(utcnow())
        new_contacts: list[tuple[str, str]] = []
        src = cols.sources
        refs = UnknownRefs(groups or {}, hooks or {}, cols.unknown_codes, src) if groups or hooks else None

        def columns(name: str) -> str:
            """The user's columns for a field, as a message prefix; nothing when the column is the field."""
            given = src.get(name, [name])
            return "" if given == [name] else f"{'/'.join(given)}: "

        def amount_of(getter: Callable[[list[Any]], Any], cells: list[Any], name: str, reasons: list[str]) -> float | None:
            cell = getter(cells)
            if cell is None or cell == "":
                return None
            if cell.__class__ is str and cell.isascii() and cell.replace(".", "", 1).isdigit():
                return float(cell)  # the common plain amount, without the parser
            try:
                return parse_amount(cell)
            except ValueError as exc:
                reasons.append(f"{columns(name)}{exc}")
                return None

        def checked(kind: str, amount: float | None, name: str, reasons: list[str]) -> None:
            try:
                check_amount(kind, amount)
            except ValueError as exc:
                reasons.append(f"{columns(name)}{exc}")

        def read(getter: Callable[[list[Any]], Any] | None, cells: list[Any], name: str, reasons: list[str]) -> Any:
            """An id field's value; a masked or lost-digits id is the row's reason, not a traceback."""
            if getter is None:
                return None
            try:
                return getter(cells)
            except ValueError as exc:
                reasons.append(_located(exc, cols, name))
                return None

        closing_now: list[dict[str, Any] | None] = [None]  # the row just read, when it was a closed order recorded with its refund
        closed_by_id: dict[str, dict[str, Any]] = {}

        def closed_refund(eid: str, amount: float | None, refund: float | None, closing: str) -> tuple[float | None, bool]:
            """A closed order's refund: the file's refund amount, else (an order stored before, now closed) the whole amount."""
            stored = db.execute("SELECT amount FROM events WHERE event_id = ? AND type = 'order'", [eid]).fetchone()
            if refund:
                return refund, stored is not None
            if stored is None:
                raise Skip(closing)  # closed and never counted: left out, as before
            return (amount if amount is not None else stored[0]), True

        def row_of(cells: list[Any]) -> list[tuple[Any, ...]] | str:
            reasons: list[str] = []
            closing_now[0] = None
            closing = ""
            try:
                kind = g_type(cells)
            except Closed as closed:
                kind, closing = "order", str(closed.args[0])
            except ValueError as exc:
                reasons.append(str(exc))
                kind = None
            else:
                if kind not in types:
                    standard = event_type(kind)
                    if standard is None:
                        reasons.append(_bad_type(kind, src["type"]))
                    kind = standard
            failed = len(reasons)
            written = read(g_cid, cells, "contact_id", reasons)
            if written is None and len(reasons) == failed:
                reasons.append("missing contact_id" + (f" ({'/'.join(src['contact_id'])} is empty)" if src["contact_id"] != ["contact_id"] else ""))
            try:
                at = parse_at(g_at(cells))
            except Skip:
                if closing:
                    raise Skip(closing) from None  # a closed order never paid: left out for being closed
                raise
            except ValueError as exc:
                reasons.append(f"{columns('at') or 'at: '}{exc}")
                at = ""
            amount = amount_of(g_amount, cells, "amount", reasons) if g_amount is not None else None
            refund = amount_of(g_refund, cells, "refund", reasons) if g_refund is not None else None
            if kind is not None:
                checked(kind, amount, "amount", reasons)
            checked("refund", refund, "refund", reasons)
            eid = read(g_eid, cells, "event_id", reasons)
            cid = owner.get(written, written) if written is not None else None
            unknown = cid is not None and cid not in known
            if unknown and not create_contacts:
                from_column = f" ({'/'.join(src['contact_id'])})" if src["contact_id"] != ["contact_id"] else ""
                reasons.append(f"contact {cid!r}{from_column} is not in the store (import it first with `siyu import contacts`, or pass --create-contacts)")
            if reasons:
                return "; ".join(reasons)
            assert cid is not None and kind is not None and written is not None
            hook = g_hook(cells) if g_hook is not None else None
            cohort = g_cohort(cells) if g_cohort is not None else None
            group = g_group(cells) if g_group is not None else None
            if eid is None:
                if key:
                    facts = {"type": kind, "contact_id": written, "at": at, "hook": hook, "cohort": cohort, "group": group, "amount": amount}
                    eid = key_event_id(kind, [facts.get(name) for name in key])
                else:
                    eid = derived_event_id(kind, written, at, hook, cohort, group, amount)
            if closing:
                refund, stored = closed_refund(eid, amount, refund, closing)
                closing_now[0] = {"event_id": eid, "why": closing, "refund": refund, "stored_before": stored}
            if unknown:
                known.add(cid)
                new_contacts.append((cid, stamp))
            props = _extra(cells, extra) if extra else "{}"
            events = [(eid, kind, cid, at, hook, cohort, group, amount, props)]
            if refund or closing:
                events.append((f"{eid}/refund", "refund", cid, at, hook, cohort, group, refund, props))
            for other in extra_types:
                events.append((f"{eid}/{other}", other, cid, at, hook, cohort, group, None, props))
            return events

        with _rejects_file(skip_bad_to, source.header, file) as rejects:
            bad = _Bad(file, rejects)
            try:
                with _bulk(db), immediate(db):
                    conn = db.conn
                    writer = _EventWriter(conn, bad, result, new_contacts)
                    staged = _Staged(conn, writer, bad) if cmap.merge_rows else None
                    add = staged.add if staged is not None else writer.add
                    for rowno, cells in source.rows():
                        result.read += 1
                        if len(cells) != width:
                            cells, overflow = _fit(cells, width)
                            if overflow:
                                bad.add(rowno, cells, overflow)
                                continue
                        events = _skipping(row_of, cells, result)
                        if events is None:
                            continue
                        if isinstance(events, str):
                            bad.add(rowno, cells, events)
                            continue
                        if aliases:
                            reason = _link_row(writer, identities, events[0][2], cells, aliases, known, result, file)
                            if reason:
                                bad.add(rowno, cells, reason)
                                continue
                        # Written on after a bad row too (the file is rolled back then): an id another row
                        # contradicts is found in the same round, so one import lists every bad row.
                        for event in events:
                            add(rowno, event, cells)
                        if refs is not None:
                            refs.add(rowno, events[0][4], events[0][6])
                        if closing_now[0] is not None:
                            _note_closed(result, closed_by_id, rowno, closing_now[0])
                    if staged is not None:
                        staged.finish()
                    writer.flush()  # its last rows' contradictions are bad rows too
                    if dry_run or bad.blocking:
                        raise _Rollback
            except _Rollback:
                pass
        bad.raise_if_blocking()
        result.unmatched_hooks = dict(cols.unmatched_hooks)
        result.unknown_codes = {column: dict(codes) for column, codes in cols.unknown_codes.items()}
        result.unknown_refs = refs.listed() if refs is not None else []
        result.skipped = bad.total
        result.rejects_file = str(skip_bad_to) if skip_bad_to is not None else None
        result.inserted, result.updated, result.contacts_created = writer.inserted, writer.updated, writer.created
        result.duplicates = writer.duplicates
        return result


class _Staged:
    """Events of a file whose rows are parts of one event (a Douyin order's sub-orders): staged, then read back by
    event id, so the parts' amounts add up whatever their order. Parts that disagree on anything else are a bad row."""

    def __init__(self, conn: Any, writer: _EventWriter, bad: _Bad) -> None:
        self.conn, self.writer, self.bad = conn, writer, bad
        self.batch: list[tuple[Any, ...]] = []
        conn.execute("DROP TABLE IF EXISTS temp.siyu_parts")
        conn.execute(
            "CREATE TEMP TABLE siyu_parts (event_id TEXT, rowno INTEGER, type TEXT, contact_id TEXT, at TEXT, hook TEXT, cohort TEXT, grp TEXT, amount REAL, props TEXT)"
        )

    def add(self, rowno: int, event: tuple[Any, ...], _cells: list[Any] | None = None) -> None:
        self.batch.append((event[0], rowno, *event[1:]))
        if len(self.batch) >= BATCH:
            _flush(self.conn, "INSERT INTO temp.siyu_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.batch)

    def finish(self) -> None:
        _flush(self.conn, "INSERT INTO temp.siyu_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.batch)
        rows = self.conn.execute("SELECT * FROM temp.siyu_parts ORDER BY event_id, rowno").fetchall()
        self.conn.execute("DROP TABLE temp.siyu_parts")
        for eid, group in groupby(rows, key=lambda row: row[0]):
            parts = list(group)
            first = parts[0]
            differs = [row for row in parts[1:] if row[2:8] != first[2:8]]
            for row in differs:
                what = _differences(first[2:8], row[2:8])
                self.bad.add(row[1], [], f"event {eid!r} is also on row {first[1]} with other facts ({what}); the parts of one event must agree")
            if differs:
                continue
            amounts = [row[8] for row in parts if row[8] is not None]
            total = round(sum(amounts), 6) if amounts else None
            self.writer.add(first[1], (eid, *first[2:8], total, first[9]))


def _note_closed(result: ImportResult, listed: dict[str, dict[str, Any]], rowno: int, closed: dict[str, Any]) -> None:
    """Count and list a closed order once; the parts of one (抖店 sub-orders, `merge_rows`) add up their refunds."""
    entry = listed.get(closed["event_id"])
    if entry is not None:
        if entry["refund"] is not None and closed["refund"] is not None:
            entry["refund"] = round(entry["refund"] + closed["refund"], 6)
        return
    result.closed_orders += 1
    entry = {"row": rowno, **closed}
    listed[closed["event_id"]] = entry
    if len(result.closed) < MAX_LISTED:
        result.closed.append(entry)


def _alias_values(aliases: list[tuple[str, Callable[[list[Any]], str | None]]], cells: list[Any], reasons: list[str]) -> list[tuple[str, str]]:
    """A row's aliases as (column, id); an id that lost its digits is a reason, a masked or unmatched cell no alias."""
    found = []
    for column, getter in aliases:
        try:
            alias = getter(cells)
        except ValueError as exc:
            reasons.append(f"{column}: {exc}")
            continue
        if alias is not None:
            found.append((column, alias))
    return found


def _link_row(
    writer: _EventWriter, identities: Identities, cid: str, cells: list[Any], aliases: list[tuple[str, Callable[[list[Any]], str | None]]], known: set[str], result: ImportResult, file: Path
) -> str:
    """An events row's alias columns join its contact; a merge moves stored events, so pending ones are written first."""
    reasons: list[str] = []
    found = _alias_values(aliases, cells, reasons)
    if reasons:
        return "; ".join(reasons)
    for column, alias in found:
        if identities.resolve(alias) == cid:
            continue
        if alias in known:
            writer.flush()
        try:
            outcome, _ = identities.link(cid, alias, known=known, origin=str(file))
        except AliasConflict as exc:
            return f"{column}: alias {exc}"
        result.aliases_linked += 1
        result.contacts_merged += outcome == "merged"
    return ""


def key_event_id(kind: str, parts: Collection[Any]) -> str:
    """An event's id from its natural key: the same key is the same event, whatever else changed."""
    return hashlib.sha1("\x1f".join((kind, *("" if part is None else str(part) for part in parts))).encode()).hexdigest()


class _EventWriter:
    """Writes events in batches. An id met again is told apart only when a batch inserts fewer rows than it holds.

    Stored rows inserted by this import have ids above `start`, in the order they were written; `rownos`
    maps them back to their rows, so a conflict names the earlier row. Rows whose event was stored before
    (duplicates) are remembered in a temporary table, and updates in `updated_by`: a later row of the
    file with the same id and other facts is a conflict whatever the store held.
    """

    def __init__(self, conn: Any, bad: _Bad, result: ImportResult, new_contacts: list[tuple[str, str]] | None) -> None:
        self.conn = conn
        self.bad = bad
        self.result = result
        self.new_contacts = new_contacts
        self.start = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        self.rownos = array("q")
        self.batch: list[tuple[Any, ...]] = []
        self.rows: list[int] = []
        self.cells: list[list[Any]] = []
        self.updated_by: dict[str, int] = {}
        self.inserted = self.updated = self.duplicates = self.created = 0
        conn.execute("DROP TABLE IF EXISTS temp.siyu_seen")
        conn.execute("CREATE TEMP TABLE siyu_seen (event_id TEXT PRIMARY KEY, rowno INTEGER) WITHOUT ROWID")

    def add(self, rowno: int, event: tuple[Any, ...], cells: list[Any] | None = None) -> None:
        self.batch.append(event)
        self.rows.append(rowno)
        if self.bad.rejects is not None:
            self.cells.append(cells or [])
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.new_contacts:
            self.created += _flush(self.conn, _CONTACT_SQL, self.new_contacts)
        if not self.batch:
            return
        batch, rows, cells = self.batch, self.rows, self.cells
        self.batch, self.rows, self.cells = [], [], []
        inserted = int(self.conn.executemany(_EVENT_SQL, batch).rowcount)
        self.inserted += inserted
        if inserted == len(batch):
            self.rownos.extend(rows)
            return
        self._sort_out(batch, rows, cells)

    def _sort_out(self, batch: list[tuple[Any, ...]], rows: list[int], cells: list[list[Any]]) -> None:
        """Which rows of the batch were not inserted, and what each one is: a duplicate, an update or a conflict."""
        conn = self.conn
        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT event_id, id, type, contact_id, at, hook, cohort, group_id, amount, props FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                [json.dumps([event[0] for event in batch])],
            )
        }
        ids = json.dumps([event[0] for event in batch])
        seen = dict(conn.execute("SELECT event_id, rowno FROM temp.siyu_seen WHERE event_id IN (SELECT value FROM json_each(?))", [ids]))
        first_seen: list[tuple[str, int]] = []
        first_new = self.start + len(self.rownos) + 1
        claimed: set[str] = set()
        bad_rows: set[int] = set()
        for k, event in enumerate(batch):
            eid, rowno = event[0], rows[k]
            found = stored[eid]
            if found[0] >= first_new and eid not in claimed:
                claimed.add(eid)
                self.rownos.append(rowno)
                continue
            facts = tuple(event[1:])
            earlier = self.rownos[found[0] - self.start - 1] if found[0] > self.start else self.updated_by.get(eid, seen.get(eid))
            if tuple(found[1:-1]) == facts[:-1]:
                self.duplicates += 1  # the same facts; the other columns (props) are kept from the first import
                if earlier is None:
                    seen[eid] = rowno
                    first_seen.append((eid, rowno))
                continue
            if earlier is not None:
                if rowno not in bad_rows:
                    bad_rows.add(rowno)
                    what = _differences(found[1:-1], facts[:-1])
                    self.bad.add(rowno, cells[k] if cells else [], f"event {eid!r} is also on row {earlier} with other facts ({what}); one event, one row")
                continue
            self.updated_by[eid] = rowno
            conn.execute(
                "UPDATE events SET type = ?, contact_id = ?, at = ?, hook = ?, cohort = ?, group_id = ?, amount = ?, props = ? WHERE id = ?",
                [*facts, found[0]],
            )
            stored[eid] = (found[0], *facts)
            self.updated += 1
            if len(self.result.changes) < MAX_LISTED:
                self.result.changes.append(
                    {"row": rowno, "event_id": eid, "changes": {name: [old, new] for name, old, new in zip(_FACTS, found[1:-1], facts[:-1], strict=False) if old != new}}
                )
        _flush(conn, "INSERT OR IGNORE INTO temp.siyu_seen VALUES (?, ?)", first_seen)


def _differences(old: tuple[Any, ...], new: tuple[Any, ...]) -> str:
    return ", ".join(f"{name} {a!r} there, {b!r} here" for name, a, b in zip(_FACTS, old, new, strict=False) if a != b)


def _skipping(row_of: Callable[[list[Any]], Any], cells: list[Any], result: ImportResult) -> Any:
    """A row's values, or None when the mapping leaves it out (counted by reason)."""
    try:
        return row_of(cells)
    except Skip as skip:
        reason = str(skip.args[0])
        result.left_out[reason] = result.left_out.get(reason, 0) + 1
        return None


def _located(exc: ValueError, cols: Compiled, name: str) -> str:
    text = str(exc)
    sources = cols.sources.get(name, [name])
    return text if any(text.startswith(f"{source}:") for source in sources) else f"{'/'.join(sources)}: {text}"


def _contact_changes(fields: list[str], values: Mapping[str, Any], extra: Mapping[str, Any], stored: tuple[Any, ...]) -> dict[str, list[Any]]:
    """What writing the contact would change, compared by value: tags and extra as parsed JSON, so a store
    whose JSON was written with other spacing or key order (a `contacts link` merge) is not a change."""
    what: dict[str, list[Any]] = {}
    for name, old in zip(fields, stored, strict=False):
        new = values[name]
        if new is None:
            continue  # an empty cell keeps the stored value
        if name == "tags":
            old, new = json.loads(old or "[]"), json.loads(new)
        if old != new:
            what[name] = [old, new]
    old_extra = json.loads(stored[-1] or "{}")
    for key, value in extra.items():
        if old_extra.get(key) != value:
            what[key] = [old_extra.get(key), value]  # an extra column, by the user's own name
    return what


def _contact_sql(present: list[str]) -> str:
    columns = ["contact_id", *present, "extra", "updated_at"]
    values = ["?"] * (len(columns) - 2) + ["json(?)", "?"]
    sets = [f"{name} = COALESCE(excluded.{name}, contacts.{name})" for name in present]
    sets += ["extra = json_patch(contacts.extra, excluded.extra)", "updated_at = excluded.updated_at"]
    return f"INSERT INTO contacts ({', '.join(columns)}) VALUES ({', '.join(values)}) ON CONFLICT(contact_id) DO UPDATE SET {', '.join(sets)}"


@contextmanager
def _bulk(db: sqlite_utils.Database) -> Iterator[None]:
    """A bigger page cache while importing: index pages of a big insert stay in memory until commit."""
    previous = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute("PRAGMA cache_size = -65536")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(previous)}")


def _flush(conn: Any, sql: str, batch: list[tuple[Any, ...]]) -> int:
    """Write a batch; returns the rows actually inserted or changed."""
    if not batch:
        return 0
    cursor = conn.executemany(sql, batch)
    batch.clear()
    return int(cursor.rowcount)  # the statement's own rows (total_changes would count the tag log's trigger rows too)


def _fit(cells: list[Any], width: int) -> tuple[list[Any], str]:
    """Pad a short row; a row with values beyond the header is bad (a stray delimiter)."""
    if len(cells) < width:
        return cells + [None] * (width - len(cells)), ""
    if len(cells) > width and any(cell not in (None, "") for cell in cells[width:]):
        return cells, f"{len(cells)} cells but the header names {width} columns (an unquoted comma?)"
    return cells[:width], ""


def _extra(cells: list[Any], extra: list[tuple[str, int]]) -> str:
    """The unmapped columns as one JSON object; text cells (nearly all of a CSV) are read inline."""
    values = {}
    for name, i in extra:
        cell = cells[i]
        if cell.__class__ is str:
            cell = cell.strip()
            if cell[:2] == '="':
                cell = cell_text(cell)
        else:
            cell = cell_text(cell)
        if cell:
            values[name] = cell
    return dumps(values) if values else "{}"


def _bad_type(value: Any, columns: list[str]) -> str:
    text = cell_text(value)
    where = "/".join(columns)
    if text is None:
        return "missing type" + (f" ({where} is empty)" if columns != ["type"] else "")
    prefix = "" if columns == ["type"] else f"{where}: "
    return f"{prefix}unknown event type {text!r} (standard types: {', '.join(EVENTS)}; map the export's words with values: in a mapping file)"


class _Bad:
    """Bad rows: listed (capped) for the error, all written to the rejects file when skipping."""

    def __init__(self, file: Path, rejects: _RejectsWriter | None) -> None:
        self.file = file
        self.rejects = rejects
        self.rows: list[tuple[int, str]] = []
        self.total = 0

    @property
    def blocking(self) -> bool:
        return self.total > 0 and self.rejects is None

    def add(self, rowno: int, cells: list[Any], reason: str) -> None:
        self.total += 1
        if len(self.rows) < MAX_LISTED:
            self.rows.append((rowno, reason))
        if self.rejects is not None:
            self.rejects.write(cells, reason)

    def raise_if_blocking(self) -> None:
        if self.blocking:
            self.rows.sort()
            raise ImportRejected(str(self.file), self.rows, total_bad=self.total)


class _RejectsWriter:
    def __init__(self, handle: TextIO, header: list[str]) -> None:
        self._writer = csv.writer(handle)
        self._writer.writerow([*header, "reason"])
        self._width = len(header)

    def write(self, cells: list[Any], reason: str) -> None:
        texts = ["" if cell is None else (cell if cell.__class__ is str else cell_text(cell) or "") for cell in cells]
        texts += [""] * (self._width - len(texts))
        self._writer.writerow([*texts, reason])


def check_rejects_path(path: str | os.PathLike[str], source: str | os.PathLike[str], *, force: bool) -> None:
    """The --skip-bad file must not be the input, nor (without force) any file that exists: it is overwritten."""
    target, given = Path(path), Path(source)
    same = target.exists() and given.exists() and os.path.samefile(target, given)  # a hard link or symlink too
    if same or target.resolve() == given.resolve():
        raise UsageError(f"--skip-bad {target}: that is the file being imported; the rejects would overwrite it", hint="write the rejects to another file, e.g. --skip-bad rejects.csv")
    if target.exists() and not force:
        raise UsageError(f"--skip-bad {target}: the file exists and would be overwritten", hint="name a new file, or pass --force to overwrite it")


@contextmanager
def _rejects_file(path: str | os.PathLike[str] | None, header: list[str], source: Path) -> Iterator[_RejectsWriter | None]:
    """The --skip-bad file: CSV in UTF-8 with BOM so Excel shows the Chinese right. Never the input itself."""
    if path is None:
        yield None
        return
    check_rejects_path(path, source, force=True)
    try:
        handle = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the with below; open errors get their own message)
    except OSError as exc:
        raise SiyuError(f"{path}: cannot write the rejects file: {exc.strerror}") from None
    with handle:
        yield _RejectsWriter(handle, header)


__all__ = ["CONTACT_FIELDS", "DROP", "EVENT_FIELDS", "ImportResult", "check_rejects_path", "import_contacts", "import_events", "key_event_id"]
