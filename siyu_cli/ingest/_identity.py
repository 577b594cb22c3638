"""Identities: one person, several ids (a WeCom external id, a Taobao buyer, a phone hash).

A contact may carry aliases. An event or a contacts row naming an alias lands on the contact.
Linking an alias that is itself a contact in the store (a bare buyer created by an order import)
merges it: its events move to the contact, its fields fill the contact's empty ones, its tags
join the contact's, and its aliases follow. Nothing is lost and the funnel sees one person.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db, utcnow
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.store import immediate

_FILLED = ("name", "source", "tier", "account", "cohort")


class AliasConflict(ValueError):
    """The alias already belongs to another contact."""


@dataclass
class LinkResult:
    contact_id: str
    linked: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    events_moved: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Identities:
    """The store's aliases held in memory for one import or command (links are few next to events)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.owner: dict[str, str] = dict(conn.execute("SELECT alias, contact_id FROM aliases"))

    def resolve(self, contact_id: str) -> str:
        return self.owner.get(contact_id, contact_id)

    def link(self, contact_id: str, alias: str, *, known: set[str] | None = None, origin: str = "") -> tuple[str, int]:
        """Make `alias` an id of `contact_id` (which must be a contact). Returns (what happened, events moved).

        "already": it was; "linked": a new alias; "merged": the alias was a contact, now folded in.
        Raises AliasConflict when the alias belongs to another contact.
        """
        if alias == contact_id:
            return "already", 0
        owner = self.owner.get(alias)
        if owner == contact_id:
            return "already", 0
        if owner is not None:
            raise AliasConflict(f"{alias!r} is already an alias of contact {owner!r}; link {owner!r} to {contact_id!r} first if they are one person")
        moved = 0
        conn = self.conn
        exists = conn.execute("SELECT 1 FROM contacts WHERE contact_id = ?", [alias]).fetchone() is not None
        stamp = to_db(utcnow())
        if exists:
            moved = self._merge(contact_id, alias, stamp)
            if known is not None:
                known.discard(alias)
        conn.execute("INSERT INTO aliases (alias, contact_id, linked_at, origin) VALUES (?, ?, ?, ?)", [alias, contact_id, stamp, origin])
        self.owner[alias] = contact_id
        for other, target in list(self.owner.items()):
            if target == alias:
                self.owner[other] = contact_id
        return ("merged" if exists else "linked"), moved

    def _merge(self, contact_id: str, alias: str, stamp: str) -> int:
        conn = self.conn
        columns = ", ".join(("tags", "extra", "added_at", *_FILLED))
        keep = conn.execute(f"SELECT {columns} FROM contacts WHERE contact_id = ?", [contact_id]).fetchone()
        gone = conn.execute(f"SELECT {columns} FROM contacts WHERE contact_id = ?", [alias]).fetchone()
        tags = list(dict.fromkeys([*json.loads(keep[0] or "[]"), *json.loads(gone[0] or "[]")]))
        extra = {**json.loads(gone[1] or "{}"), **json.loads(keep[1] or "{}")}
        added = min((value for value in (keep[2], gone[2]) if value), default=None)
        filled = [keep[3 + i] if keep[3 + i] not in (None, "") else gone[3 + i] for i in range(len(_FILLED))]
        moved = conn.execute("UPDATE events SET contact_id = ? WHERE contact_id = ?", [contact_id, alias]).rowcount
        conn.execute(
            f"UPDATE contacts SET tags = ?, extra = ?, added_at = ?, {', '.join(f'{name} = ?' for name in _FILLED)}, updated_at = ? WHERE contact_id = ?",
            [json.dumps(tags, ensure_ascii=False), json.dumps(extra, ensure_ascii=False), added, *filled, stamp, contact_id],
        )
        conn.execute("DELETE FROM contacts WHERE contact_id = ?", [alias])
        conn.execute("UPDATE aliases SET contact_id = ? WHERE contact_id = ?", [contact_id, alias])
        return int(moved)


def link_contact(db: sqlite_utils.Database, contact_id: str, aliases: Collection[str]) -> LinkResult:
    """`siyu contacts link ID ALIAS...`: all the aliases join the contact, or none does."""
    contact_id = contact_id.strip()
    names = list(dict.fromkeys(alias.strip() for alias in aliases if alias.strip()))
    if not names:
        raise UsageError("no alias to link", hint="e.g. siyu contacts link wm001 tb:小明 13800000000")
    with immediate(db):
        identities = Identities(db.conn)
        target = identities.resolve(contact_id)
        if db.execute("SELECT 1 FROM contacts WHERE contact_id = ?", [target]).fetchone() is None:
            raise SiyuError(f"contact {contact_id!r} is not in the store", hint="import it first, or name the contact the aliases should join")
        result = LinkResult(target)
        for alias in names:
            if identities.resolve(alias) == target:
                result.already.append(alias)
                continue
            try:
                outcome, moved = identities.link(target, alias, origin="contacts link")
            except AliasConflict as exc:
                raise SiyuError(f"cannot link {alias!r} to {target!r}: {exc}", hint="nothing was linked") from None
            getattr(result, outcome).append(alias)
            result.events_moved += moved
    return result


def resolve_contact(db: sqlite_utils.Database, contact_id: str) -> str:
    """The contact an id names: itself, or the contact it is an alias of."""
    row = db.execute("SELECT contact_id FROM aliases WHERE alias = ?", [contact_id.strip()]).fetchone()
    return str(row[0]) if row else contact_id.strip()


def contact_aliases(db: sqlite_utils.Database, contact_id: str) -> list[str]:
    return [alias for (alias,) in db.execute("SELECT alias FROM aliases WHERE contact_id = ? ORDER BY alias", [contact_id])]
