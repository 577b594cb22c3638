"""Importing contacts and events: one streaming pass, all or nothing.

The pass validates each row and inserts good rows in batches inside one BEGIN IMMEDIATE
transaction. The first bad row stops the inserting (validation goes on, to name every bad
row); at the end a file with bad rows is rolled back unless `skip_bad_to` is given. A dry
run does the same work and always rolls back, so its counts (duplicates included) are exact.
Memory holds one batch, the bad-row list (capped) and, for events, the set of known contact ids.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import tzinfo
from math import isfinite
from pathlib import Path
from typing import Any, TextIO

import sqlite_utils

from siyu_cli._time import to_db, utcnow
from siyu_cli.errors import ImportRejected, SiyuError, UsageError
from siyu_cli.ingest._parse import EVENT_TYPES, cell_text, derived_event_id, dumps, event_type, parse_amount, split_tags, time_parser
from siyu_cli.ingest._source import Progress, Source
from siyu_cli.playbook import EVENTS
from siyu_cli.store import immediate

CONTACT_FIELDS = ("contact_id", "name", "tags", "source", "tier", "account", "cohort", "added_at")
EVENT_FIELDS = ("event_id", "type", "contact_id", "at", "hook", "cohort", "group", "amount")
REQUIRED = {"contacts": ("contact_id",), "events": ("type", "contact_id", "at")}
ALIASES = {"events": {"group_id": "group"}, "contacts": {}}
DROP = "-"
BATCH = 5000
MAX_LISTED = 200


@dataclass
class ImportResult:
    """What an import did. `updated`/`unchanged` are for contacts, `duplicates` for events."""

    file: str
    kind: str
    format: str
    encoding: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    skipped: int = 0
    contacts_created: int = 0
    dry_run: bool = False
    rejects_file: str | None = None
    unused_mapping: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Columns:
    index: dict[str, int]
    extra: list[tuple[str, int]]
    unused: list[str]


class _Rollback(Exception):
    """Leaves `immediate()` by its rollback path."""


def import_contacts(
    db: sqlite_utils.Database,
    path: str | os.PathLike[str],
    *,
    tz: tzinfo,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    skip_bad_to: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Upsert contacts by contact_id; tags in the file replace the stored tags, empty cells keep stored values."""
    file = Path(path)
    with Source(file, progress) as source:
        cols = _columns(source.header, CONTACT_FIELDS, mapping, "contacts", file)
        result = ImportResult(str(file), "contacts", source.kind, source.encoding, dry_run=dry_run, unused_mapping=cols.unused)
        present = [name for name in CONTACT_FIELDS[1:] if name in cols.index]
        sql = _contact_sql(present)
        i_id = cols.index["contact_id"]
        getters = [(name, cols.index[name]) for name in present]
        parse_at = time_parser(tz)
        stamp = to_db(utcnow())
        width = len(source.header)
        conn = db.conn
        changes = 0
        tag_json: dict[Any, str] = {}

        def tags_of(cell: Any) -> str:
            """Exports repeat a few tag combinations many times: encode each once."""
            found = tag_json.get(cell)
            if found is None:
                found = dumps(split_tags(cell))
                if len(tag_json) < 100_000:
                    tag_json[cell] = found
            return found

        def row_of(cells: list[Any]) -> tuple[Any, ...] | str:
            reasons = []
            cid = cell_text(cells[i_id])
            if cid is None:
                reasons.append("missing contact_id")
            values: list[Any] = [cid]
            for name, index in getters:
                cell = cells[index]
                if name == "tags":
                    values.append(tags_of(cell))
                elif name == "added_at":
                    if cell is None or cell == "":
                        values.append(None)
                        continue
                    try:
                        values.append(parse_at(cell))
                    except ValueError as exc:
                        reasons.append(f"added_at: {exc}")
                else:
                    values.append(cell_text(cell))
            values.append(_extra_json(cells, cols.extra))
            values.append(stamp)
            return "; ".join(reasons) if reasons else tuple(values)

        with _rejects_file(skip_bad_to, source.header) as rejects:
            bad = _Bad(file, rejects)
            try:
                with _bulk(db), immediate(db):
                    before = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
                    batch: list[tuple[Any, ...]] = []
                    for rowno, cells in source.rows():
                        result.read += 1
                        cells, overflow = _fit(cells, width)
                        row = overflow or row_of(cells)
                        if isinstance(row, str):
                            bad.add(rowno, cells, row)
                            continue
                        if bad.blocking:
                            continue
                        batch.append(row)
                        if len(batch) >= BATCH:
                            changes += _flush(conn, sql, batch)
                    if not bad.blocking:
                        changes += _flush(conn, sql, batch)
                    after = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
                    if dry_run or bad.blocking:
                        raise _Rollback
            except _Rollback:
                pass
        bad.raise_if_blocking()
        result.skipped = bad.total
        result.rejects_file = str(skip_bad_to) if skip_bad_to is not None else None
        result.inserted = after - before
        result.updated = changes - result.inserted
        result.unchanged = result.read - bad.total - result.inserted - result.updated
        return result


def import_events(
    db: sqlite_utils.Database,
    path: str | os.PathLike[str],
    *,
    tz: tzinfo,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    skip_bad_to: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    create_contacts: bool = False,
) -> ImportResult:
    """Add events for known contacts; an event already stored (same event_id, given or derived) is skipped.

    With `create_contacts`, an unknown contact id gets a bare contact instead of making its row bad.
    """
    file = Path(path)
    with Source(file, progress) as source:
        cols = _columns(source.header, EVENT_FIELDS, mapping, "events", file)
        result = ImportResult(str(file), "events", source.kind, source.encoding, dry_run=dry_run, unused_mapping=cols.unused)
        known = {cid for (cid,) in db.execute("SELECT contact_id FROM contacts")}
        index = cols.index
        i_type, i_cid, i_at = index["type"], index["contact_id"], index["at"]
        i_eid, i_hook, i_cohort, i_group, i_amount = (index.get(name) for name in ("event_id", "hook", "cohort", "group", "amount"))
        extra = cols.extra
        parse_at = time_parser(tz)
        width = len(source.header)
        conn = db.conn
        sql = "INSERT OR IGNORE INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        types = EVENT_TYPES
        stamp = to_db(utcnow())
        new_contacts: list[tuple[str, str]] = []
        contact_sql = "INSERT OR IGNORE INTO contacts (contact_id, updated_at) VALUES (?, ?)"

        def row_of(cells: list[Any]) -> tuple[Any, ...] | str:
            reasons = []
            kind = cells[i_type]
            if kind not in types:
                kind = event_type(kind)
                if kind is None:
                    reasons.append(_bad_type(cells[i_type]))
            cid = cells[i_cid]
            unknown = False
            if cid not in known:
                cid = cell_text(cid)
                if cid is None:
                    reasons.append("missing contact_id")
                elif cid not in known:
                    unknown = True
                    if not create_contacts:
                        reasons.append(f"contact {cid!r} is not in the store (import it first with `siyu import contacts`)")
            try:
                at = parse_at(cells[i_at])
            except ValueError as exc:
                reasons.append(f"at: {exc}")
                at = ""
            amount = None
            if i_amount is not None:
                cell = cells[i_amount]
                if cell is not None and cell != "":
                    try:
                        amount = float(cell)
                        if not isfinite(amount):
                            raise ValueError
                    except (TypeError, ValueError):
                        try:
                            amount = parse_amount(cell)
                        except ValueError as exc:
                            reasons.append(str(exc))
            if reasons:
                return "; ".join(reasons)
            if unknown:
                known.add(cid)
                new_contacts.append((cid, stamp))
            hook = cohort = group = eid = None
            # Inlined cell_text for text cells: this runs a million times on a big import.
            if i_hook is not None:
                hook = cells[i_hook]
                hook = (hook.strip() or None) if hook.__class__ is str else cell_text(hook)
            if i_cohort is not None:
                cohort = cells[i_cohort]
                cohort = (cohort.strip() or None) if cohort.__class__ is str else cell_text(cohort)
            if i_group is not None:
                group = cells[i_group]
                group = (group.strip() or None) if group.__class__ is str else cell_text(group)
            if i_eid is not None:
                eid = cells[i_eid]
                eid = (eid.strip() or None) if eid.__class__ is str else cell_text(eid)
            if eid is None:
                eid = derived_event_id(kind, cid, at, hook, cohort, group, amount)
            return (eid, kind, cid, at, hook, cohort, group, amount, _extra_json(cells, extra) if extra else "{}")

        with _rejects_file(skip_bad_to, source.header) as rejects:
            bad = _Bad(file, rejects)
            inserted = created = 0
            try:
                with _bulk(db), immediate(db):
                    batch: list[tuple[Any, ...]] = []
                    for rowno, cells in source.rows():
                        result.read += 1
                        if len(cells) != width:
                            cells, overflow = _fit(cells, width)
                            if overflow:
                                bad.add(rowno, cells, overflow)
                                continue
                        row = row_of(cells)
                        if isinstance(row, str):
                            bad.add(rowno, cells, row)
                            continue
                        if bad.blocking:
                            continue
                        batch.append(row)
                        if len(batch) >= BATCH:
                            created += _flush(conn, contact_sql, new_contacts)
                            inserted += _flush(conn, sql, batch)
                    if not bad.blocking:
                        created += _flush(conn, contact_sql, new_contacts)
                        inserted += _flush(conn, sql, batch)
                    if dry_run or bad.blocking:
                        raise _Rollback
            except _Rollback:
                pass
        bad.raise_if_blocking()
        result.skipped = bad.total
        result.rejects_file = str(skip_bad_to) if skip_bad_to is not None else None
        result.inserted = inserted
        result.contacts_created = created
        result.duplicates = result.read - bad.total - inserted
        return result


def load_mapping(path: str | os.PathLike[str]) -> dict[str, str]:
    """A mapping file: YAML or JSON, `their column: field` (a field of `-` drops the column)."""
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise SiyuError(f"{file}: cannot read mapping file: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SiyuError(f"{file}: not a YAML or JSON mapping: {exc}", hint="write one `their column: field` per line") from None
    if not isinstance(data, dict) or not all(isinstance(k, str | int) and isinstance(v, str) for k, v in data.items()):
        raise SiyuError(f"{file}: a mapping file must map column names to fields, e.g. `客户ID: contact_id`")
    return {str(key): value for key, value in data.items()}


def parse_map_options(options: Collection[str]) -> dict[str, str]:
    """`--map their_column=field` options; the last `=` splits, so a column name may contain one."""
    mapping: dict[str, str] = {}
    for option in options:
        their, sep, target = option.rpartition("=")
        if not sep or not their.strip() or not target.strip():
            raise UsageError(f"--map {option!r}: write THEIR_COLUMN=FIELD, e.g. --map 客户ID=contact_id")
        mapping[their.strip()] = target.strip()
    return mapping


def _columns(header: list[str], fields: tuple[str, ...], mapping: Mapping[str, str] | None, kind: str, file: Path) -> _Columns:
    wanted = {name.replace("\ufeff", "").strip(): target for name, target in (mapping or {}).items()}
    for name, target in wanted.items():
        if target != DROP and target not in fields:
            raise UsageError(
                f"--map {name}={target}: {target!r} is not a {kind} column",
                hint=f"map to one of: {', '.join(fields)} (or - to drop the column)",
            )
    aliases = ALIASES[kind]
    index: dict[str, int] = {}
    source_of: dict[str, str] = {}
    extra: list[tuple[str, int]] = []
    for i, name in enumerate(header):
        if name in wanted:
            target = wanted[name]
        else:
            lowered = name.lower()
            target = lowered if lowered in fields else aliases.get(lowered, "")
        if target == DROP:
            continue
        if not target:
            extra.append((name or f"column_{i + 1}", i))
            continue
        if target in index:
            raise UsageError(
                f"{file}: columns {source_of[target]!r} and {name!r} both give {target}",
                hint=f"drop one with --map '{name}=-'",
            )
        index[target] = i
        source_of[target] = name
    missing = [name for name in REQUIRED[kind] if name not in index]
    if missing:
        raise SiyuError(
            f"{file}: no {', '.join(missing)} column; the file's columns are: {', '.join(header) or '(none)'}",
            hint=f"name the column with --map 'THEIR_COLUMN={missing[0]}' or a --map-file",
        )
    return _Columns(index, extra, [name for name in wanted if name not in header])


def _contact_sql(present: list[str]) -> str:
    columns = ["contact_id", *present, "extra", "updated_at"]
    values = ["?"] * (len(columns) - 2) + ["json(?)", "?"]
    sets, differs = [], []
    for name in present:
        new = "excluded.tags" if name == "tags" else f"COALESCE(excluded.{name}, contacts.{name})"
        sets.append(f"{name} = {new}")
        differs.append(f"contacts.{name} IS NOT {new}")
    sets += ["extra = json_patch(contacts.extra, excluded.extra)", "updated_at = excluded.updated_at"]
    differs.append("contacts.extra IS NOT json_patch(contacts.extra, excluded.extra)")
    return (
        f"INSERT INTO contacts ({', '.join(columns)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT(contact_id) DO UPDATE SET {', '.join(sets)} WHERE {' OR '.join(differs)}"
    )


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


def _extra_json(cells: list[Any], extra: list[tuple[str, int]]) -> str:
    values = {}
    for name, i in extra:
        text = cell_text(cells[i])
        if text is not None:
            values[name] = text
    return dumps(values) if values else "{}"


def _bad_type(cell: Any) -> str:
    text = cell_text(cell)
    if text is None:
        return "missing type"
    return f"unknown event type {text!r} (standard types: {', '.join(EVENTS)})"


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


@contextmanager
def _rejects_file(path: str | os.PathLike[str] | None, header: list[str]) -> Iterator[_RejectsWriter | None]:
    """The --skip-bad file: CSV in UTF-8 with BOM so Excel shows the Chinese right."""
    if path is None:
        yield None
        return
    try:
        handle = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the with below; open errors get their own message)
    except OSError as exc:
        raise SiyuError(f"{path}: cannot write the rejects file: {exc.strerror}") from None
    with handle:
        yield _RejectsWriter(handle, header)
