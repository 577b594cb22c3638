"""Effective tags kept in the store per basis (a playbook's hooks and rules), refreshed incrementally.

Deriving tags reads every event that can change them; a pass that did so for a million contacts
would pay for the whole history each time. The store keeps each contact's tags after all its
events in `tag_cache`, and `tag_log` (filled by triggers) says whose events or own tags changed
since; a pass recomputes only those. A contact with events after the pass's moment is not read
from the cache (the cache knows the future the pass must not see).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db, utcnow
from siyu_cli.rules._store import history
from siyu_cli.rules._tags import TagRules
from siyu_cli.store import immediate

STALE = timedelta(days=30)  # a basis unused this long (an old version of the rules) is dropped with its rows


def refresh(db: sqlite_utils.Database, rules: TagRules) -> str:
    """Bring the cache for this basis up to date, in one write transaction; returns the basis."""
    basis = rules.basis
    now = to_db(utcnow())
    with immediate(db):
        top = db.execute("SELECT COALESCE(MAX(seq), 0) FROM tag_log").fetchone()[0]
        row = db.execute("SELECT seq FROM tag_bases WHERE basis = ?", [basis]).fetchone()
        if row is None:
            db.execute("DELETE FROM tag_cache WHERE basis = ?", [basis])
            _store(db, basis, rules, None)
            db.execute("INSERT INTO tag_bases (basis, seq, used_at) VALUES (?, ?, ?)", [basis, top, now])
        else:
            if top > row[0]:
                dirty = [cid for (cid,) in db.execute("SELECT DISTINCT contact_id FROM tag_log WHERE seq > ?", [row[0]])]
                _store(db, basis, rules, dirty)
            db.execute("UPDATE tag_bases SET seq = ?, used_at = ? WHERE basis = ?", [top, now, basis])
        _prune(db, now)
    return basis


def _store(db: sqlite_utils.Database, basis: str, rules: TagRules, dirty: Sequence[str] | None) -> None:
    """Recompute (all, or the dirty) contacts' tags after all their events; a contact with no such event keeps its own tags, no row."""
    if dirty is not None:
        for start in range(0, len(dirty), 500):
            chunk = dirty[start : start + 500]
            db.execute(f"DELETE FROM tag_cache WHERE basis = ? AND contact_id IN ({', '.join('?' * len(chunk))})", [basis, *chunk])
    own = _own(db, dirty)
    rows = []
    insert = "INSERT INTO tag_cache (basis, contact_id, tags, source, last_at, timeline) VALUES (?, ?, ?, ?, ?, ?)"
    for cid, events in history(db, rules.types, contact_ids=dirty):
        if cid not in own:
            continue
        tags, source = own[cid]
        state, timeline = _fold_timeline(rules, tags, source, events)
        rows.append((basis, cid, json.dumps(state.tags, ensure_ascii=False), state.source, events[-1][2], json.dumps(timeline, ensure_ascii=False)))
        if len(rows) >= 10_000:
            db.conn.executemany(insert, rows)
            rows = []
    db.conn.executemany(insert, rows)


def _fold_timeline(rules: TagRules, tags: list[str], source: str | None, events: Sequence[Any]) -> tuple[Any, list[list[Any]]]:
    """The final state and [at, tags, source] after each event that changed the tags or the source."""
    state = rules.start(tags, source)
    timeline: list[list[Any]] = []
    before = (list(state.tags), state.source)
    for row in events:
        rules.apply(state, row, source)
        if (state.tags, state.source) != before:
            before = (list(state.tags), state.source)
            timeline.append([row[2], before[0], before[1]])
    return state, timeline


def as_of_timeline(own_tags: str, own_source: str | None, timeline: str, stamp: str) -> tuple[list[str], str | None]:
    """A cached contact's tags and source at `stamp` (store time text), from its timeline and its own tags."""
    tags: list[str] = json.loads(own_tags) if own_tags and own_tags != "[]" else []
    source = own_source
    for at, changed, changed_source in json.loads(timeline):
        if at > stamp:
            break
        tags, source = changed, changed_source
    return tags, source


def _own(db: sqlite_utils.Database, ids: Sequence[str] | None) -> dict[str, tuple[list[str], str | None]]:
    """Contacts' own (imported) tags and source."""
    found: dict[str, tuple[list[str], str | None]] = {}
    chunks: list[Sequence[str] | None] = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
    texts: dict[str, list[str]] = {}
    for chunk in chunks:
        sql = "SELECT contact_id, tags, source FROM contacts"
        params: list[Any] = []
        if chunk is not None:
            sql += f" WHERE contact_id IN ({', '.join('?' * len(chunk))})"
            params = list(chunk)
        for cid, text, source in db.execute(sql, params):
            tags = texts.get(text)
            if tags is None:
                tags = texts[text] = json.loads(text) if text and text != "[]" else []
            found[cid] = (tags, source)
    return found


def _prune(db: sqlite_utils.Database, now: str) -> None:
    """Drop bases and plan cursors unused for STALE, and the log every remaining reader has read."""
    cutoff = to_db(utcnow() - STALE)
    for (basis,) in db.execute("SELECT basis FROM tag_bases WHERE used_at < ?", [cutoff]).fetchall():
        db.execute("DELETE FROM tag_cache WHERE basis = ?", [basis])
        db.execute("DELETE FROM tag_bases WHERE basis = ?", [basis])
    # A playbook's plan cursor reads the log too (siyu_cli.ledger); one unused as long is dropped, so that playbook plans in full again.
    db.execute("DELETE FROM plan_cursor WHERE updated_at < ?", [cutoff])
    prune_log(db)


def prune_log(db: sqlite_utils.Database) -> None:
    """Drop the log every reader (tag cache bases, plan cursors) has read."""
    low = db.execute("SELECT MIN(seq) FROM (SELECT seq FROM tag_bases UNION ALL SELECT seq FROM plan_cursor)").fetchone()[0]
    if low is not None:
        db.execute("DELETE FROM tag_log WHERE seq <= ?", [low])


def changed_after(db: sqlite_utils.Database, rules: TagRules, after: datetime, *, until: datetime | None = None, as_of: datetime) -> dict[str, tuple[list[str], str | None]]:
    """The contacts with an event that can change tags after `after` (up to `until`), with their tags and source as of `as_of`.

    Two statements whatever their number: the contacts are named by a subquery, not a list.
    """
    kinds = sorted(rules.types)
    marks = ", ".join("?" * len(kinds))
    who = f"SELECT DISTINCT contact_id FROM events WHERE type IN ({marks}) AND at > ?" + (" AND at <= ?" if until is not None else "")
    who_params: list[Any] = [*kinds, to_db(after)] + ([to_db(until)] if until is not None else [])
    own: dict[str, tuple[list[str], str | None]] = {}
    texts: dict[str, list[str]] = {}
    for cid, text, source in db.execute(f"SELECT contact_id, tags, source FROM contacts WHERE contact_id IN ({who})", who_params):
        tags = texts.get(text)
        if tags is None:
            tags = texts[text] = json.loads(text) if text and text != "[]" else []
        own[cid] = (tags, source)
    found = {cid: (list(tags), source) for cid, (tags, source) in own.items()}
    sql = (
        f"SELECT contact_id, event_id, type, at, hook, amount, props, group_id FROM events WHERE type IN ({marks}) AND +at <= ? "
        f"AND contact_id IN ({who}) ORDER BY contact_id, at, id"
    )
    for cid, group in groupby(db.conn.execute(sql, [*kinds, to_db(as_of), *who_params]), itemgetter(0)):
        if cid in own:
            state = rules.fold(own[cid][0], own[cid][1], [row[1:] for row in group])
            found[cid] = (state.tags, state.source)
    return found
