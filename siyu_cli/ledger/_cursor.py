"""How far a playbook has been planned, so a pass does the work of what came due since, not the campaign's.

A pass that planned up to T under content hash H, having read tag_log up to S, leaves
(H, T, S). The next pass at T' with the same H plans only: occurrences in (T, T'] for the
whole audience; every past occurrence for the contacts logged after S (imported, tagged, an event
recorded late); and the journey steps of contacts whose next step (journey_due) or an entering
or exiting event fell in (T, T']. Anything else about the cursor (no row, another hash, T' < T)
plans everything once, exactly as a first pass would, and rebuilds journey_due.

The cursor only saves work: drafts are still keyed and deduplicated by the ledger, so a cursor
that is lost, stale or raced by another pass can make a pass slower, never send twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

import sqlite_utils

from siyu_cli._time import from_db, to_db

_CHUNK = 500  # ids per IN (...) list
_STREAM = 1000  # drafts looked up together


class _Slotted(Protocol):
    @property
    def slot(self) -> str: ...


T = TypeVar("T", bound=_Slotted)


@dataclass(frozen=True)
class Cursor:
    content_hash: str
    through: datetime
    seq: int


class PlanCursor:
    """The plan cursor and the journey index of one store."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def get(self, playbook_id: str) -> Cursor | None:
        row = self.db.execute("SELECT content_hash, through, seq FROM plan_cursor WHERE playbook_id = ?", [playbook_id]).fetchone()
        return Cursor(row[0], from_db(row[1]), int(row[2])) if row else None

    def log_top(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM tag_log").fetchone()[0])

    def log_low(self) -> int:
        """The oldest log entry still kept: a cursor that read less than this has missed changes."""
        row = self.db.execute("SELECT MIN(seq) FROM tag_log").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def set(self, playbook_id: str, content_hash: str, through: datetime, seq: int, now: datetime) -> None:
        """Within the caller's write transaction. Never moves a cursor back: a slower concurrent pass may finish later."""
        self.db.execute(
            "INSERT INTO plan_cursor (playbook_id, content_hash, through, seq, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(playbook_id) DO UPDATE SET content_hash = excluded.content_hash, through = excluded.through, "
            "seq = excluded.seq, updated_at = excluded.updated_at "
            "WHERE plan_cursor.content_hash != excluded.content_hash OR plan_cursor.through <= excluded.through",
            [playbook_id, content_hash, to_db(through), seq, to_db(now)],
        )

    def reset(self, playbook_id: str) -> None:
        """The next pass plans everything (a deleted draft is to be planned again)."""
        self.db.execute("DELETE FROM plan_cursor WHERE playbook_id = ?", [playbook_id])

    def changed(self, seq: int, top: int) -> set[str]:
        """Contacts whose events, own tags or source were written in log positions (seq, top]."""
        return {cid for (cid,) in self.db.execute("SELECT DISTINCT contact_id FROM tag_log WHERE seq > ? AND seq <= ?", [seq, top])}

    def entered(self, types: Collection[str], since: datetime, until: datetime, *, added: bool) -> set[str]:
        """Contacts with an event of these types in (since, until], or (`added`) an add implied by `added_at` then."""
        found: set[str] = set()
        bounds = [to_db(since), to_db(until)]
        if types:
            kinds = sorted(types)
            sql = f"SELECT DISTINCT contact_id FROM events WHERE type IN ({', '.join('?' * len(kinds))}) AND at > ? AND at <= ?"
            found.update(cid for (cid,) in self.db.execute(sql, [*kinds, *bounds]))
        if added:
            found.update(cid for (cid,) in self.db.execute("SELECT contact_id FROM contacts WHERE added_at > ? AND added_at <= ?", bounds))
        return found

    def journeys_due(self, playbook_id: str, until: datetime) -> set[str]:
        rows = self.db.execute("SELECT contact_id FROM journey_due WHERE playbook_id = ? AND next_at <= ?", [playbook_id, to_db(until)])
        return {cid for (cid,) in rows}

    def next_journey_step(self, playbook_id: str) -> datetime | None:
        row = self.db.execute("SELECT MIN(next_at) FROM journey_due WHERE playbook_id = ?", [playbook_id]).fetchone()
        return from_db(row[0]) if row and row[0] else None

    def index_journeys(self, playbook_id: str, next_steps: Mapping[str, datetime | None], *, everyone: bool) -> None:
        """Within the caller's write transaction: each contact's next step (None: none left); `everyone` replaces the index."""
        if everyone:
            self.db.execute("DELETE FROM journey_due WHERE playbook_id = ?", [playbook_id])
        else:
            gone = [cid for cid, at in next_steps.items() if at is None]
            for chunk in _chunks(gone):
                self.db.execute(f"DELETE FROM journey_due WHERE playbook_id = ? AND contact_id IN ({', '.join('?' * len(chunk))})", [playbook_id, *chunk])
        rows = [(playbook_id, cid, to_db(at)) for cid, at in next_steps.items() if at is not None]
        self.db.conn.executemany("INSERT OR REPLACE INTO journey_due (playbook_id, contact_id, next_at) VALUES (?, ?, ?)", rows)

    def unrecorded(self, playbook_id: str, drafts: Iterable[T]) -> Iterator[T]:
        """The drafts (anything with a `slot`) whose slot the ledger does not hold, in their order, looked up
        a chunk at a time: a stream of millions is never held, nor the campaign's drafts loaded."""
        chunk: list[T] = []
        for draft in drafts:
            chunk.append(draft)
            if len(chunk) >= _STREAM:
                yield from self._missing(playbook_id, chunk)
                chunk = []
        yield from self._missing(playbook_id, chunk)

    def _missing(self, playbook_id: str, chunk: list[T]) -> Iterator[T]:
        if not chunk:
            return
        known = self.known(playbook_id, (draft.slot for draft in chunk))
        yield from (draft for draft in chunk if draft.slot not in known)

    def known(self, playbook_id: str, slots: Iterable[str]) -> set[str]:
        """Which of these slots the ledger holds a draft for: looked up by key, never by loading a campaign's drafts."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(slots))):
            rows = self.db.execute(f"SELECT slot FROM drafts WHERE playbook_id = ? AND slot IN ({', '.join('?' * len(chunk))})", [playbook_id, *chunk])
            found.update(row[0] for row in rows)
        return found


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
