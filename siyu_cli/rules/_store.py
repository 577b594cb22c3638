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
        where.append("at <= ?")
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


def apply_effective(
    db: sqlite_utils.Database,
    rules: TagRules,
    contacts: Sequence[MutableMapping[str, Any]],
    *,
    as_of: datetime | None = None,
) -> None:
    """Replace each contact's `tags` and `source` with the effective ones as of `as_of`, in place.

    Most contacts share their story (the same own tags, source and sequence of events that can
    change tags), so each distinct story is folded once and its result list shared by all who have it.
    """
    if not contacts:
        return
    by_id: dict[str, MutableMapping[str, Any]] = {str(c["id"]): c for c in contacts}
    kinds = sorted(rules.types)
    where = f"type IN ({', '.join('?' * len(kinds))})"
    params: list[Any] = list(kinds)
    if as_of is not None:
        where += " AND at <= ?"
        params.append(to_db(as_of))
    sql = f"SELECT contact_id, type, hook, CASE WHEN type = '{TAGGED}' THEN props END FROM events WHERE {where} ORDER BY contact_id, at, id"
    folded: dict[tuple[Any, ...], tuple[list[str], str | None]] = {}
    for cid, group in groupby(db.conn.execute(sql, params), itemgetter(0)):
        contact = by_id.get(cid)
        if contact is None:
            continue
        story = (tuple(contact.get("tags") or ()), contact.get("source"), *((kind, hook, props) for _, kind, hook, props in group))
        result = folded.get(story)
        if result is None:
            events = [("", kind, "", hook, None, props, None) for kind, hook, props in story[2:]]
            state = rules.fold(story[0], story[1], events)
            result = folded[story] = (state.tags, state.source)
        contact["tags"], contact["source"] = result
def contact_tag_state(
    db: sqlite_utils.Database, rules: TagRules, contact: Mapping[str, Any], *, as_of: datetime | None = None, explain: bool = True
) -> TagState:
    """One contact's effective tags, each with where it came from."""
    events: list[EventRow] = []
    for _, rows in history(db, rules.types, as_of=as_of, contact_ids=[str(contact["id"])]):
        events = rows
    return rules.fold(contact.get("tags") or (), contact.get("source"), events, explain=explain)
