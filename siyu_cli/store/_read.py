"""Reads of events that several parts need (drafts, preview, stats)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
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
