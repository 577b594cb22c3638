"""Reads of events that several parts need (drafts, preview, stats)."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import sqlite_utils

from siyu_cli._time import from_db, to_db


def contacts_with_event(
    db: sqlite_utils.Database,
    event: str,
    start: datetime,
    end: datetime,
    *,
    group: str | None = None,
    cohort: str | None = None,
) -> list[dict[str, Any]]:
    """Contacts with `event` in [start, end): in the group when events name one, else in the cohort.

    Each entry's `at` (the first such event) is in `start`'s zone, so a template prints local time.
    """
    sql = [
        "SELECT e.contact_id, COALESCE(c.name, e.contact_id), MIN(e.at), c.tags FROM events e",
        "LEFT JOIN contacts c ON c.contact_id = e.contact_id",
        "WHERE e.type = ? AND e.at >= ? AND e.at < ?",
    ]
    params: list[Any] = [event, to_db(start), to_db(end)]
    if group is not None:
        sql.append("AND (e.group_id = ? OR (e.group_id IS NULL AND (? IS NULL OR e.cohort = ? OR c.cohort = ?)))")
        params += [group, cohort, cohort, cohort]
    elif cohort is not None:
        sql.append("AND (e.cohort = ? OR c.cohort = ?)")
        params += [cohort, cohort]
    sql.append("GROUP BY e.contact_id ORDER BY MIN(e.at), e.contact_id")
    return [
        {"id": cid, "name": name, "at": from_db(at).astimezone(start.tzinfo), "tags": json.loads(tags) if tags else []}
        for cid, name, at, tags in db.execute(" ".join(sql), params)
    ]


ADDED, DELETED = "friend_added", "friend_deleted"


@dataclass
class Unfriended:
    """The contacts who deleted the account at some point, each with its adds and deletes in order (by `at`, then id):
    the only contacts whose friendship a moment can change. Everyone else is a friend.

    Each add or delete keeps the staff member it was with when it says so: siyu serve's callbacks carry the userid,
    a 客户列表 import (wecom-customers) the 添加人账号 as `account`. One that names none (an imported 删微) counts for
    every staff member. A customer who added two staff members and deleted one is still the other's friend."""

    log: dict[str, list[tuple[str, int, bool, str | None]]] = field(default_factory=dict)  # contact → [(at, id, is a delete, staff)]

    def deleted_at(self, contact_id: str, stamp: str | None = None, staff: Collection[str] = ()) -> str | None:
        """When the contact deleted the account, if a delete is its latest add or delete at `stamp` (a store time;
        None: the latest known), else None. A later add (a re-add) makes it a friend again. `staff`: the names the
        sender goes by (its WeCom userid, its account): only adds and deletes with it count, and those naming no one
        (empty: every one counts)."""
        entries = self.log.get(contact_id)
        if not entries:
            return None
        if staff:
            entries = [entry for entry in entries if entry[3] is None or entry[3] in staff]
        index = len(entries) if stamp is None else bisect_right(entries, stamp, key=itemgetter(0))
        if index == 0:
            return None
        at, _, deleted, _ = entries[index - 1]
        return at if deleted else None

    def update(self, other: Unfriended) -> None:
        self.log.update(other.log)


def unfriended(db: sqlite_utils.Database, *, as_of: datetime | None = None, ids: Sequence[str] | None = None) -> Unfriended:
    """Who deleted the account (friend_deleted, from serve's del_external_contact / del_follow_user or an import's 删微)
    up to `as_of`, with their adds; `ids`: of these contacts only. A contact with no friend_added event counts its
    `added_at` as its add, as journeys do (siyu_cli.journeys.with_implied_add): a re-import with a later add time re-adds.

    Read from the (type, contact, at) index: the deletes' range, then each such contact's adds and deletes, so a
    store where nobody deleted costs one empty range, and one with 50,000 deletes a seek or two per contact who did."""
    bound = " AND +at <= :as_of" if as_of is not None else ""
    stamp: str | None = to_db(as_of) if as_of is not None else None
    chunks: list[Sequence[str] | None] = [None]
    if ids is not None:
        wanted = sorted(set(ids))
        chunks = [wanted[start : start + 500] for start in range(0, len(wanted), 500)]
    found = Unfriended()
    if db.execute(f"SELECT 1 FROM events WHERE type = '{DELETED}'{bound} LIMIT 1", {"as_of": stamp}).fetchone() is None:
        return found  # nobody deleted (most stores): one index probe, not one query per 500 contacts asked about
    for chunk in chunks:
        only, params = "", {"as_of": stamp}
        if chunk is not None:
            only = f" AND contact_id IN ({', '.join(f':c{i}' for i in range(len(chunk)))})"
            params.update((f"c{i}", cid) for i, cid in enumerate(chunk))
        rows = db.execute(
            f"WITH gone AS (SELECT DISTINCT contact_id FROM events WHERE type = '{DELETED}'{bound}{only}) "
            f"SELECT e.contact_id, e.at, e.id, e.type = '{DELETED}', COALESCE(json_extract(e.props, '$.userid'), json_extract(e.props, '$.account')) "
            "FROM gone JOIN events e "
            f"ON e.type IN ('{ADDED}', '{DELETED}') AND e.contact_id = gone.contact_id{bound.replace('+at', '+e.at')}",
            params,
        )
        for cid, at, event_id, deleted, staff in rows:
            found.log.setdefault(cid, []).append((at, event_id, bool(deleted), str(staff) if staff else None))
    # Asked of the contacts table apart: in one statement with the events SQLite scans every contact for a bloom filter.
    lacking = sorted(cid for cid, entries in found.log.items() if all(deleted for _, _, deleted, _ in entries))
    for start in range(0, len(lacking), 500):
        chunk = lacking[start : start + 500]
        rows = db.execute(
            f"SELECT contact_id, added_at FROM contacts WHERE contact_id IN ({', '.join('?' * len(chunk))}) AND added_at IS NOT NULL"
            + (" AND added_at <= ?" if stamp is not None else ""),
            [*chunk, *([stamp] if stamp is not None else [])],
        )
        for cid, added_at in rows:
            found.log[cid].append((added_at, 0, False, None))
    for entries in found.log.values():
        entries.sort(key=itemgetter(0, 1))
    return found


def groups_with_membership_events(db: sqlite_utils.Database) -> set[str]:
    """The groups whose members the store knows from group_joined / group_left events (not from the cohort rule)."""
    rows = db.execute("SELECT DISTINCT group_id FROM events WHERE type IN ('group_joined', 'group_left') AND group_id IS NOT NULL")
    return {str(group) for (group,) in rows}


def group_memberships(db: sqlite_utils.Database, ids: Sequence[str] | None = None) -> dict[str, set[str]]:
    """Groups each contact (of `ids`, or all) is in now, from group_joined / group_left events in time order."""
    members: dict[str, set[str]] = {}
    sql = "SELECT contact_id, type, group_id FROM events WHERE type IN ('group_joined', 'group_left') AND group_id IS NOT NULL"
    if ids is None:
        rows: Iterable[Any] = db.execute(sql + " ORDER BY at, id")
    else:
        wanted = sorted(set(ids))
        rows = [
            row
            for start in range(0, len(wanted), 500)
            for row in db.execute(
                sql + f" AND contact_id IN ({', '.join('?' * len(wanted[start : start + 500]))}) ORDER BY at, id", wanted[start : start + 500]
            )
        ]
    for cid, kind, group in rows:
        if kind == "group_joined":
            members.setdefault(cid, set()).add(group)
        else:
            members.get(cid, set()).discard(group)
    return members
