"""Effective tags read from the store: one sorted scan of the events that can change tags."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db
from siyu_cli.rules._tags import TAGGED, EventRow, TagRules, TagState

_COLUMNS = "contact_id, event_id, type, at, hook, amount, props, group_id"


def history(
    db: sqlite_utils.Database,
    types: Collection[str],
    *,
    as_of: datetime | None = None,
    contact_ids: Sequence[str] | None = None,
) -> Iterator[tuple[str, list[EventRow]]]:
    """Each contact's events of these types up to `as_of`, in time order (ties in the order recorded).

    Without `as_of` every event counts; with it, an event recorded ahead of time (a rehearsal's
    synthetic log, a backfill) is not seen before it happens.
    """
    if not types:
        return
    kinds = sorted(types)
    where = [f"type IN ({', '.join('?' * len(kinds))})"]
    params: list[Any] = list(kinds)
    if as_of is not None:
        # `+at`: the bound must not steer SQLite to the (type, at) index; (type, contact, at) reads far less.
        where.append("+at <= ?")
        params.append(to_db(as_of))
    chunks: list[Sequence[str] | None] = [None]
    if contact_ids is not None:
        ids = sorted(set(contact_ids))
        chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        sql_where = list(where)
        chunk_params = list(params)
        if chunk is not None:
            sql_where.append(f"contact_id IN ({', '.join('?' * len(chunk))})")
            chunk_params.extend(chunk)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(sql_where)} ORDER BY contact_id, at, id"
        rows = db.conn.execute(sql, chunk_params)
        for cid, group in groupby(rows, itemgetter(0)):
            yield cid, [row[1:] for row in group]


# (the time of each of the contact's events, its own tags, [(index of an event that changed the tags, tags after it)]).
# Kept as the scan left it: most timelines are never read, so none is reshaped up front.
Timeline = tuple[list[str], Sequence[str], list[tuple[int, list[str]]]]


def apply_effective(
    db: sqlite_utils.Database,
    rules: TagRules,
    contacts: Sequence[MutableMapping[str, Any]],
    *,
    as_of: datetime | None = None,
    timelines: dict[str, Timeline] | None = None,
    contact_ids: Sequence[str] | None = None,
) -> None:
    """Replace each contact's `tags` and `source` with the effective ones as of `as_of`, in place.

    `timelines`, when given, receives when each contact's tags changed, so a beat can be matched
    against the tags a contact had at its own time. Most contacts share their story (the same own
    tags, source and sequence of events that can change tags), so each distinct story is folded
    once and its results shared by all who have it: per contact the work is a key and a lookup.
    `contact_ids`: read only these contacts' events (a few among many), by id.
    """
    if not contacts:
        return
    by_id: dict[str, MutableMapping[str, Any]] = {str(c["id"]): c for c in contacts}
    kinds = sorted(rules.types)
    where = f"type IN ({', '.join('?' * len(kinds))})"
    params: list[Any] = list(kinds)
    if as_of is not None:
        where += " AND +at <= ?"
        params.append(to_db(as_of))
    # One text per event (type, hook, and the props of a hand edit): a contact's story is then a tuple
    # of plain strings, built and looked up without a Python step per event.
    code = f"type || char(31) || ifnull(hook, '') || char(31) || ifnull(CASE WHEN type = '{TAGGED}' THEN props END, '')"
    folded: dict[tuple[Any, ...], tuple[list[str], str | None, list[tuple[int, list[str]]]]] = {}
    story_of, stamp_of = itemgetter(1), itemgetter(2)
    for cid, group in groupby(_story_rows(db, code, where, params, contact_ids), itemgetter(0)):
        contact = by_id.get(cid)
        if contact is None:
            continue
        rows = list(group)
        own = contact.get("tags") or ()
        source = contact.get("source")
        key = (tuple(own), source, *map(story_of, rows))
        result = folded.get(key)
        if result is None:
            events = [_decode(text) for text in key[2:]]
            state, changes = rules.fold_changes(own, source, events)
            result = folded[key] = (state.tags, state.source, changes)
        contact["tags"], contact["source"] = result[0], result[1]
        if timelines is not None and result[2]:
            timelines[cid] = (list(map(stamp_of, rows)), own, result[2])


def _story_rows(db: sqlite_utils.Database, code: str, where: str, params: list[Any], contact_ids: Sequence[str] | None) -> Iterator[Any]:
    if contact_ids is None:
        yield from db.conn.execute(f"SELECT contact_id, {code}, at FROM events WHERE {where} ORDER BY contact_id, at, id", params)
        return
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT contact_id, {code}, at FROM events WHERE {where} AND contact_id IN ({', '.join('?' * len(chunk))}) ORDER BY contact_id, at, id"
        yield from db.conn.execute(sql, [*params, *chunk])


def _decode(text: str) -> EventRow:
    kind, hook, props = text.split("\x1f", 2)
    return ("", kind, "", hook or None, None, props or None, None)


def last_change(timeline: Timeline) -> str:
    stamps, _, changes = timeline
    return stamps[changes[-1][0]]


def tags_at(contact: Mapping[str, Any], timeline: Timeline | None, stamp: str) -> Sequence[str]:
    """The effective tags a contact had at `stamp` (store time text): its own, then the last change at or before it."""
    if timeline is None:
        return contact.get("tags") or ()
    stamps, found, changes = timeline
    if stamps[changes[-1][0]] <= stamp:
        return contact.get("tags") or ()
    for index, tags in changes:
        if stamps[index] > stamp:
            break
        found = tags
    return found


def contact_tag_state(
    db: sqlite_utils.Database, rules: TagRules, contact: Mapping[str, Any], *, as_of: datetime | None = None, explain: bool = True
) -> TagState:
    """One contact's effective tags, each with where it came from."""
    events: list[EventRow] = []
    for _, rows in history(db, rules.types, as_of=as_of, contact_ids=[str(contact["id"])]):
        events = rows
    return rules.fold(contact.get("tags") or (), contact.get("source"), events, explain=explain)
