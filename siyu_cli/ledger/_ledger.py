"""The draft ledger: one row per draft under a UNIQUE key; claims taken inside BEGIN IMMEDIATE.

States: pending → claimed → sent | failed | skipped(reason) | unknown. A claim belongs to a run;
a run whose process is gone leaves claims that `recover` settles without sending anything twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from siyu_cli._time import from_db, to_db
from siyu_cli.errors import LockHeld, SiyuError
from siyu_cli.store import immediate

HOST = socket.gethostname()
STALE_REMOTE = timedelta(minutes=15)
DRAFT_COLUMNS = (
    "draft_id",
    "playbook_id",
    "cohort",
    "beat",
    "occurrence_at",
    "target",
    "day",
    "channel",
    "persona",
    "category",
    "variant",
    "due_at",
    "content_hash",
    "text",
    "state",
    "reason",
    "error",
    "created_at",
    "finished_at",
    "entry",
)
_UPSERT_DELIVERY = (
    "INSERT INTO deliveries (draft_id, output, state, location, error, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(draft_id, output) DO UPDATE SET state = excluded.state, location = COALESCE(excluded.location, location), "
    "error = excluded.error, attempts = attempts + (excluded.state = 'inflight'), updated_at = excluded.updated_at"
)
_INSERT = f"INSERT OR IGNORE INTO drafts ({', '.join(DRAFT_COLUMNS)}) VALUES ({', '.join('?' * len(DRAFT_COLUMNS))})"


@dataclass(frozen=True)
class Run:
    run_id: str
    playbook_id: str | None
    host: str
    pid: int
    mode: str
    started_at: str
    heartbeat_at: str
    finished_at: str | None

    @property
    def alive(self) -> bool:
        if self.finished_at is not None:
            return False
        if self.host == HOST:
            return pid_alive(self.pid)
        return datetime.now(from_db(self.heartbeat_at).tzinfo) - from_db(self.heartbeat_at) < STALE_REMOTE


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


class Ledger:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def start_run(self, playbook_id: str | None, mode: str, now: datetime, *, exclusive: bool = False) -> str:
        """Register this process; an exclusive (service) run refuses to start beside a live one."""
        run_id = uuid.uuid4().hex[:12]
        with immediate(self.db):
            if exclusive:
                for run in self.runs(live_only=True):
                    if run.mode == "service" and run.playbook_id == playbook_id:
                        raise LockHeld(
                            f"a siyu service for {playbook_id} is already running (pid {run.pid} on {run.host}, since {run.started_at})",
                            hint="stop it first, or if its process is gone run `siyu unlock`",
                        )
            self.db.execute(
                "INSERT INTO runs (run_id, playbook_id, host, pid, mode, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, playbook_id, HOST, os.getpid(), mode, to_db(now), to_db(now)],
            )
        return run_id

    def heartbeat(self, run_id: str, now: datetime) -> None:
        with immediate(self.db):
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [to_db(now), run_id])

    def finish_run(self, run_id: str, now: datetime) -> None:
        with immediate(self.db):
            self.db.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", [to_db(now), run_id])

    def runs(self, *, live_only: bool = False) -> list[Run]:
        rows = self.db.execute(
            "SELECT run_id, playbook_id, host, pid, mode, started_at, heartbeat_at, finished_at FROM runs WHERE finished_at IS NULL ORDER BY started_at"
        ).fetchall()
        found = [Run(*row) for row in rows]
        return [run for run in found if run.alive] if live_only else found

    def skip_missed(self, playbook_id: str, cutoff: datetime, now: datetime) -> tuple[int, int]:
        """Pending drafts due before `cutoff` are too late to send (a deferral or a dead run's claim found late).

        A draft waiting to be retried after a transient failure fails instead, with its last error.
        Returns (skipped, failed).
        """
        stamp = to_db(now)
        with immediate(self.db):
            failed = self.db.execute(
                "UPDATE drafts SET state = 'failed', reason = 'delivery', finished_at = ? "
                "WHERE playbook_id = ? AND state = 'pending' AND reason = 'retry' AND COALESCE(first_due_at, due_at) < ?",
                [stamp, playbook_id, to_db(cutoff)],
            ).rowcount
            skipped = self.db.execute(
                "UPDATE drafts SET state = 'skipped', reason = 'missed', finished_at = ? WHERE playbook_id = ? AND state = 'pending' AND due_at < ?",
                [stamp, playbook_id, to_db(cutoff)],
            ).rowcount
            return skipped, failed

    def record_parts(self, draft_id: str, output: str, parts: int, now: datetime) -> None:
        """Committed after each part of a long message arrives, so neither a retry nor a crash sends it again."""
        with immediate(self.db):
            self.db.execute("UPDATE deliveries SET parts = MAX(parts, ?), updated_at = ? WHERE draft_id = ? AND output = ?", [parts, to_db(now), draft_id, output])

    def partial_parts(self, draft_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """(draft id, output) → parts of a long message that arrived before a failure."""
        found: dict[tuple[str, str], int] = {}
        for chunk in _chunks(list(draft_ids), 500):
            rows = self.db.execute(f"SELECT draft_id, output, parts FROM deliveries WHERE parts > 0 AND draft_id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update({(d, o): int(n) for d, o, n in rows})
        return found

    def existing_ids(self, playbook_id: str) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT draft_id FROM drafts WHERE playbook_id = ?", [playbook_id])}

    def welcome_slots(self, playbook_id: str) -> set[tuple[str, str]]:
        """(beat, target) of every welcome step recorded: each goes to a contact once, whatever time its add says."""
        rows = self.db.execute("SELECT beat, target FROM drafts WHERE playbook_id = ? AND channel = 'welcome'", [playbook_id])
        return {(beat, target) for beat, target in rows}

    def insert(self, rows: Iterable[Sequence[Any]]) -> int:
        """Within the caller's IMMEDIATE transaction; duplicates of the unique key are ignored. Returns the rows inserted."""
        return int(self.db.conn.executemany(_INSERT, rows).rowcount)

    def private_counts(self, playbook_id: str, since: datetime, until: datetime) -> list[tuple[str, str, str]]:
        """(target, persona, due_at) of 1v1 drafts that count against the budget in [since, until)."""
        return self.db.execute(
            "SELECT target, persona, due_at FROM drafts WHERE playbook_id = ? AND channel IN ('private', 'journey') "
            "AND state NOT IN ('skipped', 'failed') AND due_at >= ? AND due_at < ?",
            [playbook_id, to_db(since), to_db(until)],
        ).fetchall()

    def private_sends(self, playbook_id: str, targets: Sequence[str]) -> dict[str, tuple[int, str]]:
        """target → (how many 1v1 drafts it was sent in this playbook, when the last one was due)."""
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(list(targets), 500):
            rows = self.db.execute(
                f"SELECT target, COUNT(*), MAX(due_at) FROM drafts WHERE target IN ({', '.join('?' * len(chunk))}) AND playbook_id = ? "
                "AND state = 'sent' AND channel IN ('private', 'journey') GROUP BY target",
                [*chunk, playbook_id],
            )
            found.update({target: (count, due) for target, count, due in rows})
        return found

    def claim(self, run_id: str, now: datetime, limit: int, playbook_id: str | None = None, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Take up to `limit` due pending drafts for this run. Two processes never get the same draft.

        One statement: the oldest due drafts in (due_at, draft_id) order are marked and returned.
        `+state` keeps the update on the draft_id key instead of scanning every pending draft.
        """
        pick = "SELECT draft_id FROM drafts WHERE state = 'pending' AND due_at <= ?"
        stamp = to_db(now)
        params: list[Any] = [run_id, stamp, stamp]
        if playbook_id is not None:
            pick += " AND playbook_id = ?"
            params.append(playbook_id)
        if only is not None:
            pick += f" AND draft_id IN ({', '.join('?' * len(only))})"
            params.extend(only)
        pick += " ORDER BY due_at, draft_id LIMIT ?"
        params.append(limit)
        with immediate(self.db):
            cursor = self.db.conn.execute(
                "UPDATE drafts SET state = 'claimed', run_id = ?, claimed_at = ?, attempts = attempts + 1 "
                f"WHERE draft_id IN ({pick}) AND +state = 'pending' RETURNING *",
                params,
            )
            columns = [c[0] for c in cursor.description]
            claimed = [dict(zip(columns, row, strict=True)) for row in cursor]
        claimed.sort(key=_due_then_id)
        return claimed

    def deliveries(self, draft_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """draft id → output → state."""
        found: dict[str, dict[str, str]] = {}
        for chunk in _chunks(list(draft_ids), 500):
            rows = self.db.execute(f"SELECT draft_id, output, state FROM deliveries WHERE draft_id IN ({', '.join('?' * len(chunk))})", chunk)
            for draft_id, output, state in rows:
                found.setdefault(draft_id, {})[output] = state
        return found

    def mark_inflight(self, draft_id: str, output: str, now: datetime) -> None:
        """Committed before a non-idempotent send, so a crash mid-send leaves evidence: unknown, not resent."""
        with immediate(self.db):
            self._upsert_delivery(draft_id, output, "inflight", None, None, now)

    def mark_delivered(self, draft_id: str, output: str, location: str | None, now: datetime) -> None:
        """Committed right after a non-idempotent send, so a crash later in the batch does not put it in doubt."""
        with immediate(self.db):
            self._upsert_delivery(draft_id, output, "delivered", location, None, now)

    def settle(
        self,
        results: Sequence[tuple[str, list[tuple[str, str, str | None, str | None]], str, str | None]],
        now: datetime,
        *,
        claimed_by: Mapping[str, str] | None = None,
        retry_at: Mapping[str, str] | None = None,
        parts: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Record each draft's delivery results and its final state in one transaction.

        results: (draft_id, [(output, state, location, error)], draft_state, reason)
        claimed_by: draft id → the run whose claim is being settled; a draft no longer claimed by
        that run (another process recovered it first) is left alone.
        retry_at: draft id → when a later pass tries it again (it stays pending, due then; when it
        was first due is kept, so max_late still counts from there).
        parts: (draft id, output) → how many parts of a long message have arrived.
        """
        if claimed_by is None:
            self._settle_batch(results, now, retry_at or {}, parts or {})
            return
        with immediate(self.db):
            for draft_id, outputs, state, reason in results:
                errors = "; ".join(f"{o}: {e}" for o, _, _, e in outputs if e)
                sql = (
                    "UPDATE drafts SET state = ?, reason = ?, error = ?, finished_at = ?, run_id = NULL "
                    "WHERE draft_id = ? AND state = 'claimed' AND run_id = ?"
                )
                finished = to_db(now) if state in ("sent", "failed", "unknown", "skipped") else None
                params = [state, reason, errors or None, finished, draft_id, claimed_by[draft_id]]
                if self.db.execute(sql, params).rowcount == 0:
                    continue
                for output, delivery_state, location, error in outputs:
                    self._upsert_delivery(draft_id, output, delivery_state, location, error, now)

    def _settle_batch(
        self,
        results: Sequence[tuple[str, list[tuple[str, str, str | None, str | None]], str, str | None]],
        now: datetime,
        retry_at: Mapping[str, str],
        parts: Mapping[tuple[str, str], int],
    ) -> None:
        """The runner's own claims: a few executemany statements for the whole batch."""
        stamp = to_db(now)
        drafts = []
        deliveries = []
        for draft_id, outputs, state, reason in results:
            errors = "; ".join(f"{o}: {e}" for o, _, _, e in outputs if e)
            drafts.append((state, reason, errors or None, stamp if state in ("sent", "failed", "unknown", "skipped") else None, draft_id))
            deliveries.extend((draft_id, output, delivery_state, location, error, 0, stamp) for output, delivery_state, location, error in outputs)
        with immediate(self.db):
            self.db.conn.executemany("UPDATE drafts SET state = ?, reason = ?, error = ?, finished_at = ?, run_id = NULL WHERE draft_id = ?", drafts)
            self.db.conn.executemany(_UPSERT_DELIVERY, deliveries)
            if retry_at:
                self.db.conn.executemany(
                    "UPDATE drafts SET first_due_at = COALESCE(first_due_at, due_at), due_at = ? WHERE draft_id = ?",
                    [(due, draft_id) for draft_id, due in retry_at.items()],
                )
            if parts:
                self.db.conn.executemany(
                    "UPDATE deliveries SET parts = ? WHERE draft_id = ? AND output = ?", [(n, d, o) for (d, o), n in parts.items()]
                )

    def _upsert_delivery(self, draft_id: str, output: str, state: str, location: str | None, error: str | None, now: datetime) -> None:
        self.db.execute(
            _UPSERT_DELIVERY,
            [draft_id, output, state, location, error, 1 if state == "inflight" else 0, to_db(now)],
        )

    def orphaned(self) -> list[dict[str, Any]]:
        """Claimed drafts whose run is finished or whose process is gone.

        Claims are read before runs: a run's row is committed before its first claim, so a claim
        made in between still finds its run alive. Reading runs first would take a claim made
        meanwhile by a process that just started for an orphan.
        """
        cursor = self.db.execute("SELECT * FROM drafts WHERE state = 'claimed'")
        columns = [c[0] for c in cursor.description]
        claimed = [dict(zip(columns, r, strict=True)) for r in cursor]
        if not claimed:
            return []
        live = {run.run_id for run in self.runs(live_only=True)}
        return [row for row in claimed if row["run_id"] not in live]

    def release_dead_runs(self, now: datetime, *, force: bool = False) -> list[Run]:
        """Close runs whose process is gone (or, with force, also runs on other hosts, whose process cannot be checked)."""
        gone = [run for run in self.runs() if not run.alive or (force and run.host != HOST)]
        if gone:
            with immediate(self.db):
                for run in gone:
                    self.db.execute("UPDATE runs SET finished_at = ? WHERE run_id = ? AND finished_at IS NULL", [to_db(now), run.run_id])
        return gone

    def set_state(self, draft_ids: Sequence[str], state: str, *, reason: str | None = None, done_by: str | None = None, now: datetime, allowed: Sequence[str]) -> int:
        marks = ", ".join("?" * len(allowed))
        changed = 0
        with immediate(self.db):
            for draft_id in draft_ids:
                cursor = self.db.execute(
                    f"UPDATE drafts SET state = ?, reason = COALESCE(?, reason), done_by = COALESCE(?, done_by), "
                    f"done_at = CASE WHEN ? IS NULL THEN done_at ELSE ? END, finished_at = COALESCE(finished_at, ?) "
                    f"WHERE draft_id = ? AND state IN ({marks})",
                    [state, reason, done_by, done_by, to_db(now), to_db(now), draft_id, *allowed],
                )
                changed += cursor.rowcount
        return changed

    def find(self, prefixes: Sequence[str]) -> dict[str, str]:
        """Resolve draft ids given in full or as a unique prefix; raise naming any that do not match."""
        resolved: dict[str, str] = {}
        for prefix in prefixes:
            rows = self.db.execute("SELECT draft_id FROM drafts WHERE draft_id LIKE ? LIMIT 2", [prefix + "%"]).fetchall()
            if not rows:
                raise SiyuError(f"no draft {prefix!r} in the ledger", hint="list drafts with `siyu outbox`")
            if len(rows) > 1:
                raise SiyuError(f"draft id {prefix!r} is ambiguous", hint="give more characters of the id")
            resolved[prefix] = rows[0][0]
        return resolved


def _due_then_id(row: Mapping[str, Any]) -> tuple[str, str]:
    return (row["due_at"], row["draft_id"])


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
