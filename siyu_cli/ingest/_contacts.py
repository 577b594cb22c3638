"""One contact at a time: track an event, edit tags, list and show contacts, load them all for drafts."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db, utcnow
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.ingest._identity import resolve_contact
from siyu_cli.ingest._parse import check_amount, derived_event_id, event_type, parse_amount
from siyu_cli.playbook import EVENTS, TagExprError, parse_tags
from siyu_cli.rules import TAGGED, TagRules, apply_effective, as_of_timeline
from siyu_cli.store import immediate

_CONTACT_COLUMNS = "contact_id, name, tags, source, tier, account, cohort, added_at, extra"
_fromiso = datetime.fromisoformat


@dataclass(frozen=True)
class TrackResult:
    event_id: str
    type: str
    contact_id: str
    at: str
    inserted: bool
    contact_created: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NewEvent:
    """One event validated as `track` validates it, for `record_event` to record inside the caller's transaction."""

    event_id: str
    type: str
    contact_id: str
    at: str
    hook: str | None
    cohort: str | None
    group: str | None
    amount: float | None
    props: str
    create_contact: bool
    contact: tuple[tuple[str, str], ...] = ()  # (column, value) a contact created for this event starts with


NEW_CONTACT_FIELDS = ("name", "source", "tier", "account", "cohort", "added_at")


def new_event(
    kind: str,
    contact_id: str,
    *,
    at: datetime,
    hook: str | None = None,
    cohort: str | None = None,
    group: str | None = None,
    amount: float | str | None = None,
    event_id: str | None = None,
    props: Mapping[str, Any] | None = None,
    create_contact: bool = False,
    contact: Mapping[str, str | None] | None = None,
) -> NewEvent:
    """Validate one event like an imported row. A derived event id is taken from the id as written, as an
    import takes it, so re-recording the same line adds nothing. `contact`: columns (NEW_CONTACT_FIELDS) a
    contact created for it starts with, e.g. the account that added it."""
    standard = event_type(kind)
    if standard is None:
        raise UsageError(f"unknown event type {kind!r}", hint=f"use one of: {', '.join(EVENTS)}")
    contact_id = contact_id.strip()
    if not contact_id:
        raise UsageError("missing contact id", hint="pass --contact ID")
    if at.tzinfo is None:
        raise UsageError("the event time needs a zone")
    try:
        number = parse_amount(amount)
        check_amount(standard, number)
    except ValueError as exc:
        raise UsageError(str(exc), hint="write the amount as a number, e.g. --amount 365") from None
    fields = tuple((column, value) for column, value in (contact or {}).items() if value is not None)
    unknown = [column for column, _ in fields if column not in NEW_CONTACT_FIELDS]
    if unknown:
        raise UsageError(f"a new contact has no field {unknown[0]!r}", hint=f"use one of: {', '.join(NEW_CONTACT_FIELDS)}")
    stamp = to_db(at)
    eid = (event_id or "").strip() or derived_event_id(standard, contact_id, stamp, hook, cohort, group, number)
    text = json.dumps(dict(props or {}), ensure_ascii=False)
    return NewEvent(eid, standard, contact_id, stamp, hook, cohort, group, number, text, create_contact, fields)


def record_event(db: sqlite_utils.Database, event: NewEvent) -> TrackResult:
    """Record one event inside the caller's `immediate(db)`; the same event id twice adds it once.

    An id that is an alias records the event on its contact. The one way events other than imports are
    written: `track` for one, siyu serve for a callback's events with its audit row in the same transaction.
    """
    contact_id = resolve_contact(db, event.contact_id)  # an alias names its contact
    created = False
    if not db.execute("SELECT 1 FROM contacts WHERE contact_id = ?", [contact_id]).fetchone():
        if not event.create_contact:
            raise SiyuError(
                f"contact {contact_id!r} is not in the store",
                hint="import contacts first with `siyu import contacts FILE`, or pass --create-contact",
            )
        columns = ", ".join(["contact_id", "updated_at", *(column for column, _ in event.contact)])
        values = [contact_id, to_db(utcnow()), *(value for _, value in event.contact)]
        db.execute(f"INSERT INTO contacts ({columns}) VALUES ({', '.join('?' * len(values))})", values)
        created = True
    cursor = db.execute(
        "INSERT OR IGNORE INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [event.event_id, event.type, contact_id, event.at, event.hook, event.cohort, event.group, event.amount, event.props],
    )
    return TrackResult(event.event_id, event.type, contact_id, event.at, cursor.rowcount == 1, created)


def track(db: sqlite_utils.Database, event: NewEvent) -> TrackResult:
    """Record one event (from `new_event`) in its own transaction; recording the same event twice adds it once."""
    with immediate(db):
        return record_event(db, event)


def edit_tags(db: sqlite_utils.Database, contact_id: str, add: Collection[str] = (), remove: Collection[str] = (), *, at: datetime) -> str:
    """Record the edit as a `tagged` event at `at`, so it takes its place among the contact's events.

    Returns the event id. The contact's own (imported) tags stay as they were: effective tags are
    derived from them and the events, in time order.
    """
    removed = [tag.strip() for tag in remove if tag.strip()]
    added = [tag.strip() for tag in add if tag.strip()]
    props = json.dumps({"add": added, "remove": removed}, ensure_ascii=False)
    stamp = to_db(at)
    with immediate(db):
        if db.execute("SELECT 1 FROM contacts WHERE contact_id = ?", [contact_id]).fetchone() is None:
            raise SiyuError(f"contact {contact_id!r} is not in the store", hint="list contacts with `siyu contacts list`")
        taken = {row[0] for row in db.execute("SELECT event_id FROM events WHERE contact_id = ? AND type = ? AND at = ?", [contact_id, TAGGED, stamp])}
        eid = derived_event_id(TAGGED, contact_id, stamp, None, None, None, None) + (f"-{len(taken)}" if taken else "")
        db.execute(
            "INSERT INTO events (event_id, type, contact_id, at, props) VALUES (?, ?, ?, ?, ?)",
            [eid, TAGGED, contact_id, stamp, props],
        )
    return eid


def load_contacts(
    db: sqlite_utils.Database, *, tag_basis: str | None = None, as_of: datetime | None = None, ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every contact as a template sees it (extra columns merged in; a contact siyu knows no name of has name "", never its id: an id in a customer's message reads as a bug).

    With `tag_basis`, tags and source are the effective ones the tag cache holds for that basis
    (siyu_cli.rules.refresh brought it up to date) as of `as_of`: a contact whose latest event
    comes later is read from its cached timeline. Without, the contact's own.
    Contacts share a few tag sets and extra values, so each distinct JSON text is decoded once.
    `ids`: only these contacts (a pass's changed or due ones), in chunks.
    """
    if ids is not None:
        wanted = sorted(set(ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 500):
            found.extend(_load(db, tag_basis, as_of, wanted[start : start + 500]))
        return found
    return _load(db, tag_basis, as_of, None)


def _load(db: sqlite_utils.Database, tag_basis: str | None, as_of: datetime | None, ids: Sequence[str] | None) -> list[dict[str, Any]]:
    found = []
    tag_lists: dict[str, list[str]] = {}
    extras: dict[str, dict[str, Any]] = {}
    stamp = to_db(as_of) if as_of is not None else "9999"
    only = f" WHERE contact_id IN ({', '.join('?' * len(ids))})" if ids is not None else ""
    if tag_basis is None:
        rows = db.execute(f"SELECT {_CONTACT_COLUMNS}, NULL, NULL, NULL FROM contacts{only} ORDER BY contact_id", list(ids or ()))
    else:
        rows = db.execute(
            "SELECT c.contact_id, c.name, COALESCE(t.tags, c.tags), CASE WHEN t.contact_id IS NULL THEN c.source ELSE t.source END, "
            "c.tier, c.account, c.cohort, c.added_at, c.extra, "
            "CASE WHEN t.last_at > ? THEN t.timeline END, CASE WHEN t.last_at > ? THEN c.tags END, c.source FROM contacts c "
            f"LEFT JOIN tag_cache t ON t.basis = ? AND t.contact_id = c.contact_id{only.replace('contact_id', 'c.contact_id')} ORDER BY c.contact_id",
            [stamp, stamp, tag_basis, *(ids or ())],
        )
    for cid, name, tags, source, tier, account, cohort, added_at, extra, timeline, own_tags, own_source in rows:
        if extra and extra != "{}":
            base = extras.get(extra)
            if base is None:
                base = json.loads(extra)
                if len(extras) < 100_000:
                    extras[extra] = base
            contact = dict(base)
        else:
            contact = {}
        tag_list = tag_lists.get(tags)
        if tag_list is None:
            tag_list = _tags(tags)
            if len(tag_lists) < 100_000:
                tag_lists[tags] = tag_list
        contact["id"] = cid
        contact["name"] = name or ""
        contact["tags"] = list(tag_list)
        contact["source"] = source
        if timeline is not None:
            contact["tags"], contact["source"] = as_of_timeline(own_tags, own_source, timeline, stamp)
        contact["tier"] = tier
        contact["account"] = account
        contact["cohort"] = cohort
        contact["added_at"] = _fromiso(added_at) if added_at else None
        found.append(contact)
    return found


def list_contacts(
    db: sqlite_utils.Database, segment: str | None = None, cohort: str | None = None, *, rules: TagRules | None = None
) -> Iterator[dict[str, Any]]:
    """Contacts in id order with their effective tags, filtered by a tag expression (`家长 and not 已购`) and a cohort."""
    try:
        expr = parse_tags(segment) if segment else None
    except TagExprError as exc:
        raise UsageError(f"--segment: {exc}", hint="write a tag expression, e.g. '家长 and not 已购'") from None
    sql = f"SELECT {_CONTACT_COLUMNS} FROM contacts"
    params: list[Any] = []
    if cohort is not None:
        sql += " WHERE cohort = ?"
        params.append(cohort)
    contacts = [_contact(row) for row in db.execute(sql + " ORDER BY contact_id", params)]
    apply_effective(db, rules or TagRules(), contacts)
    for contact in contacts:
        if expr is None or expr.matches(contact["tags"]):
            yield contact


def get_contact(db: sqlite_utils.Database, contact_id: str) -> dict[str, Any]:
    """One contact as stored (name may be None), with `extra` as a dict."""
    row = db.execute(f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE contact_id = ?", [contact_id]).fetchone()
    if row is None:
        raise SiyuError(f"contact {contact_id!r} is not in the store", hint="list contacts with `siyu contacts list`")
    return _contact(row)


def contact_events(db: sqlite_utils.Database, contact_id: str) -> list[dict[str, Any]]:
    """A contact's events in time order."""
    rows = db.execute(
        "SELECT event_id, type, at, hook, cohort, group_id, amount, props FROM events WHERE contact_id = ? ORDER BY at, id",
        [contact_id],
    )
    return [
        {
            "event_id": eid,
            "type": kind,
            "at": _fromiso(at),
            "hook": hook,
            "cohort": cohort,
            "group": group,
            "amount": amount,
            "props": json.loads(props) if props and props != "{}" else {},
        }
        for eid, kind, at, hook, cohort, group, amount, props in rows
    ]


def _contact(row: tuple[Any, ...]) -> dict[str, Any]:
    cid, name, tags, source, tier, account, cohort, added_at, extra = row
    return {
        "id": cid,
        "name": name,
        "tags": _tags(tags),
        "source": source,
        "tier": tier,
        "account": account,
        "cohort": cohort,
        "added_at": _fromiso(added_at) if added_at else None,
        "extra": json.loads(extra) if extra and extra != "{}" else {},
    }


def _tags(text: str | None) -> list[str]:
    if not text or text == "[]":
        return []
    return list(json.loads(text))
