"""The draft ledger: one row per draft under a UNIQUE key, and the claim protocol that sends each once.

States: pending → claimed → sent | failed | skipped(reason) | unknown; planning may also record a
draft skipped or failed at once.

The claim protocol. Written for SQLite (every write below runs inside BEGIN IMMEDIATE), it means
the same on PostgreSQL, where each numbered statement is one statement of its own transaction at
READ COMMITTED: the WHERE clauses carry the meaning, since an UPDATE re-checks them on the row it
waited for.

- A *run* is one pass, retry or service (`runs`: host, pid, mode). Claims are made by runs.
- A *claim* is a draft in state `claimed`, with `claimed_by` (the run) and `lease_until` (UTC).
  (1) Claiming moves only pending drafts: `UPDATE drafts SET state = 'claimed', claimed_by = ?,
  lease_until = ? WHERE draft_id IN (SELECT … WHERE state = 'pending' AND due_at <= ? ORDER BY
  due_at, draft_id LIMIT ?) AND state = 'pending' RETURNING *` (PostgreSQL: the SELECT takes
  FOR UPDATE SKIP LOCKED).
- A *lease* is how long a claim stays its run's without news from it: LEASE, or
  $SIYU_LEASE_SECONDS. Times are on the pass's clock (its `--now` plus the time it has run), so
  passes sharing a ledger must share a clock: real time, or the same `--now` in tests.
- A *heartbeat* renews every lease a run holds: (2) `UPDATE drafts SET lease_until = ? WHERE
  claimed_by = ? AND state = 'claimed' RETURNING draft_id`; what it returns is what the run still
  holds. A pass renews between drafts once half its lease has gone; the service's heartbeat job
  renews too.
- A claim is *orphaned* when its lease has expired (the run hung, was paused, or runs on a host
  whose pids cannot be checked), and at once when its run has finished or its pid on this host is
  gone. (3) Recovery takes an orphan over by compare-and-set: `UPDATE drafts SET claimed_by = ?,
  lease_until = ? WHERE draft_id = ? AND claimed_by = ? AND state = 'claimed' AND (lease_until < ?
  OR <run gone>) RETURNING *`, and only then reads the evidence and settles it as its holder.
- (4) A *fence* precedes every non-idempotent send: marking the delivery in flight first checks,
  in the same transaction, that the run still holds the claim (PostgreSQL: `SELECT … FOR UPDATE`).
  A run that finds its claim gone raises ClaimLost and sends nothing for that draft.
- (5) A *finish* (settle) counts only where the run still holds the claim: `UPDATE drafts SET
  state = ?, claimed_by = NULL, lease_until = NULL … WHERE draft_id = ? AND claimed_by = ? AND
  state = 'claimed'`. A finish that lost its claim changes nothing about that draft: the run that
  took it over decided its state. Deliveries the loser saw arrive are still written (never
  downgrading one): they are facts about what was sent.

Invariants, and what they give exactly-once:
- A draft has at most one holder, and only its holder moves it out of `claimed`.
- Evidence is kept: in flight, delivered and parts that arrived are recorded whoever holds the claim.
- Recovery never sends. It makes a draft sent when every output shows it arrived, pending when
  nothing was sent, and unknown when a non-idempotent delivery was in flight.
- So a non-idempotent output gets each draft at most once: a run that passed the fence and then
  hung may still send after losing its claim, but recovery saw that delivery in flight, made the
  draft unknown, and nothing resends an unknown draft on its own (a person settles it; when the
  late delivery was recorded as delivered, `retry --unknown` marks it sent without sending).
  A run that had not passed the fence cannot send any more, so the run that took the draft over
  sends it once. An idempotent output (the outbox) may be written again by a loser, with the same
  draft in the same file: still one message.
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
from siyu_cli.errors import ClaimLost, LockHeld, SiyuError
from siyu_cli.store import immediate

HOST = socket.gethostname()
STALE_REMOTE = timedelta(minutes=15)
# How long a claim is its run's without a heartbeat; SIYU_LEASE_SECONDS overrides it (tests).
LEASE = timedelta(minutes=5)
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
    "slot",
    "attachments",
    "send_key",
)
_UPSERT_DELIVERY = (
    "INSERT INTO deliveries (draft_id, output, state, location, error, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(draft_id, output) DO UPDATE SET state = excluded.state, location = COALESCE(excluded.location, location), "
    "error = excluded.error, attempts = attempts + (excluded.state = 'inflight'), updated_at = excluded.updated_at"
)
# What dispatch reads of a claimed draft: a task of 100,000 recipients is this many columns times 100,000 in memory.
CLAIMED_COLUMNS = (
    "draft_id", "playbook_id", "cohort", "beat", "target", "day", "channel", "persona", "category", "variant", "due_at", "first_due_at",
    "carried_to", "text", "reason", "attempts", "entry", "attachments", "send_key",
)  # fmt: skip
_RETURNING = f"RETURNING {', '.join(CLAIMED_COLUMNS)}"
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


def lease_length() -> timedelta:
    raw = os.environ.get("SIYU_LEASE_SECONDS")
    if not raw:
        return LEASE
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise SiyuError(f"SIYU_LEASE_SECONDS={raw!r} is not a whole number of seconds above 0", hint="unset it for the default of 5 minutes")
    return timedelta(seconds=seconds)


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
        """The service's beat: the run is alive, and so are the leases of any claims it holds."""
        with immediate(self.db):
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [to_db(now), run_id])
            self._renew(run_id, now)

    def renew(self, run_id: str, now: datetime) -> set[str]:
        """Extend the lease of every claim this run holds to `now` + the lease; returns the drafts it still holds."""
        with immediate(self.db):
            return self._renew(run_id, now)

    def _renew(self, run_id: str, now: datetime) -> set[str]:
        cursor = self.db.execute(
            "UPDATE drafts SET lease_until = ? WHERE claimed_by = ? AND state = 'claimed' RETURNING draft_id",
            [to_db(now + lease_length()), run_id],
        )
        return {row[0] for row in cursor}

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
        Returns (skipped, failed). `+playbook_id`: the (state, due_at) index finds the few pending drafts;
        the playbook's index would read every draft of the campaign.
        """
        stamp = to_db(now)
        with immediate(self.db):
            failed = self.db.execute(
                "UPDATE drafts SET state = 'failed', reason = 'delivery', finished_at = ? "
                "WHERE +playbook_id = ? AND state = 'pending' AND reason = 'retry' AND COALESCE(carried_to, first_due_at, due_at) < ?",
                [stamp, playbook_id, to_db(cutoff)],
            ).rowcount
            skipped = self.db.execute(
                "UPDATE drafts SET state = 'skipped', reason = 'missed', finished_at = ? WHERE +playbook_id = ? AND state = 'pending' AND due_at < ?",
                [stamp, playbook_id, to_db(cutoff)],
            ).rowcount
            return skipped, failed

    def partial_parts(self, draft_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """(draft id, output) → parts of a long message that arrived before a failure."""
        found: dict[tuple[str, str], int] = {}
        for chunk in _chunks(list(draft_ids), 500):
            rows = self.db.execute(f"SELECT draft_id, output, parts FROM deliveries WHERE parts > 0 AND draft_id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update({(d, o): int(n) for d, o, n in rows})
        return found

    def insert(self, rows: Iterable[Sequence[Any]]) -> int:
        """Within the caller's IMMEDIATE transaction; duplicates of the unique key are ignored. Returns the rows inserted."""
        return int(self.db.conn.executemany(_INSERT, rows).rowcount)

    def mark_carried(self, carried: Mapping[str, tuple[str, str]]) -> None:
        """Within the caller's transaction: draft id → (first due, carried to) of drafts carried over by a cap."""
        self.db.conn.executemany("UPDATE drafts SET first_due_at = ?, carried_to = ? WHERE draft_id = ?", [(first, to, did) for did, (first, to) in carried.items()])

    def supersede(self, draft_ids: Sequence[str], stamp: str) -> None:
        """Within the caller's transaction: pending drafts that gave way to a newer draft of their beat (capacity:superseded)."""
        self.db.conn.executemany(
            "UPDATE drafts SET state = 'skipped', reason = 'capacity:superseded', finished_at = ? WHERE draft_id = ? AND state = 'pending'",
            [(stamp, did) for did in draft_ids],
        )

    def private_counts(self, playbook_id: str, since: datetime, until: datetime, *, targets: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        """(target, persona, due_at) of 1v1 drafts that count against the budget in [since, until); of `targets` only, when given."""
        sql = (
            "SELECT target, persona, due_at FROM drafts WHERE playbook_id = ? AND channel IN ('private', 'journey') "
            "AND state NOT IN ('skipped', 'failed') AND due_at >= ? AND due_at < ?"
        )
        window = [playbook_id, to_db(since), to_db(until)]
        if targets is None:
            return self.db.execute(sql, window).fetchall()
        found: list[tuple[str, str, str]] = []
        for chunk in _chunks(list(targets), 500):
            found.extend(self.db.execute(f"{sql} AND target IN ({', '.join('?' * len(chunk))})", [*window, *chunk]).fetchall())
        return found

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

    def claim(
        self,
        run_id: str,
        now: datetime,
        limit: int,
        playbook_id: str | None = None,
        only: Sequence[str] | None = None,
        *,
        lease_from: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Take up to `limit` drafts due by `now` for this run, with every due draft of the same send task,
        leased from `lease_from` (default `now`). Two processes never get the same draft.

        One transaction: the oldest due drafts in (due_at, draft_id) order are marked and returned, then the due
        drafts sharing a `send_key` with one of them (by the send-key index), so a task of 100,000 recipients is
        claimed whole or not at all. `only` claims exactly those drafts. `+state` keeps each update on its key
        instead of scanning every pending draft (one statement with an OR of both read the whole table per batch).
        """
        pick = "SELECT draft_id FROM drafts WHERE state = 'pending' AND due_at <= ?"
        stamp = to_db(now)
        lease = to_db((lease_from or now) + lease_length())
        params: list[Any] = [run_id, lease, stamp, stamp]
        if playbook_id is not None:
            pick += " AND playbook_id = ?"
            params.append(playbook_id)
        if only is not None:
            pick += f" AND draft_id IN ({', '.join('?' * len(only))})"
            params.extend(only)
        pick += " ORDER BY due_at, draft_id LIMIT ?"
        params.append(limit)
        mark = "UPDATE drafts SET state = 'claimed', claimed_by = ?, lease_until = ?, claimed_at = ?, attempts = attempts + 1 "
        with immediate(self.db):
            claimed = self._claimed(self.db.conn.execute(f"{mark}WHERE draft_id IN ({pick}) AND +state = 'pending' {_RETURNING}", params))
            keys = sorted({row["send_key"] for row in claimed if row["send_key"] is not None})
            if keys and only is None:
                mates = f"{mark}WHERE send_key IN ({', '.join('?' * len(keys))}) AND +state = 'pending' AND due_at <= ?"
                extra: list[Any] = [run_id, lease, stamp, *keys, stamp]
                if playbook_id is not None:
                    mates += " AND playbook_id = ?"
                    extra.append(playbook_id)
                claimed += self._claimed(self.db.conn.execute(f"{mates} {_RETURNING}", extra))
        claimed.sort(key=_due_then_id)
        return claimed

    @staticmethod
    def _claimed(cursor: Any) -> list[dict[str, Any]]:
        """Rows as dicts; what a task's drafts share (its text, beat, due time …) is held once, not once per recipient."""
        columns = [c[0] for c in cursor.description]
        shared: dict[str, str] = {}
        own = {"draft_id", "target"}
        rows = []
        for row in cursor:
            rows.append({name: shared.setdefault(value, value) if type(value) is str and name not in own else value for name, value in zip(columns, row, strict=True)})
        return rows

    def deliveries(self, draft_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """draft id → output → state."""
        found: dict[str, dict[str, str]] = {}
        for chunk in _chunks(list(draft_ids), 500):
            rows = self.db.execute(f"SELECT draft_id, output, state FROM deliveries WHERE draft_id IN ({', '.join('?' * len(chunk))})", chunk)
            for draft_id, output, state in rows:
                found.setdefault(draft_id, {})[output] = state
        return found

    def read_back(self, draft_ids: Sequence[str]) -> set[str]:
        """Which of these drafts hold what their platform read back (WeCom: who sent it and when, or why not)."""
        found: set[str] = set()
        for chunk in _chunks(list(draft_ids), 500):
            rows = self.db.execute(f"SELECT draft_id FROM drafts WHERE outcome IS NOT NULL AND draft_id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update(row[0] for row in rows)
        return found

    def mark_inflight(self, drafts: str | Sequence[str], output: str, now: datetime, run_id: str) -> None:
        """Committed before a non-idempotent send, so a crash mid-send leaves evidence: unknown, not resent.

        `drafts`: one draft, or every recipient of a send task, marked together. The fence: raises
        ClaimLost, recording nothing, when `run_id` no longer holds the claim on any of them.
        """
        ids = _ids(drafts)
        stamp = to_db(now)
        with immediate(self.db):
            for chunk in _chunks(ids, 500):
                held = self.db.execute(
                    f"SELECT COUNT(*) FROM drafts WHERE draft_id IN ({', '.join('?' * len(chunk))}) AND claimed_by = ? AND state = 'claimed'",
                    [*chunk, run_id],
                ).fetchone()[0]
                if held != len(chunk):
                    raise ClaimLost(ids[0])
            self.db.conn.executemany(_UPSERT_DELIVERY, [(d, output, "inflight", None, None, 1, stamp) for d in ids])

    def mark_delivered(self, drafts: str | Sequence[str], output: str, location: str | None, now: datetime) -> None:
        """Committed right after a non-idempotent send, so a crash later in the batch does not put it in doubt."""
        stamp = to_db(now)
        with immediate(self.db):
            self.db.conn.executemany(_UPSERT_DELIVERY, [(d, output, "delivered", location, None, 0, stamp) for d in _ids(drafts)])

    def record_parts(self, drafts: str | Sequence[str], output: str, parts: int, now: datetime) -> None:
        """Committed after each part of a long message arrives, so neither a retry nor a crash sends it again."""
        stamp = to_db(now)
        with immediate(self.db):
            self.db.conn.executemany(
                "UPDATE deliveries SET parts = MAX(parts, ?), updated_at = ? WHERE draft_id = ? AND output = ?",
                [(parts, stamp, d, output) for d in _ids(drafts)],
            )

    def settle(
        self,
        results: Sequence[tuple[str, list[tuple[str, str, str | None, str | None]], str, str | None]],
        now: datetime,
        run_id: str,
        *,
        retry_at: Mapping[str, str] | None = None,
        parts: Mapping[tuple[str, str], int] | None = None,
        tasks: Mapping[str, str] | None = None,
        outcomes: Mapping[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> set[str]:
        """Finish drafts `run_id` still holds: their delivery results and final state, in one transaction.

        results: (draft_id, [(output, state, location, error)], draft_state, reason)
        retry_at: draft id → when a later pass tries it again (it stays pending, due then; when it
        was first due is kept, so max_late still counts from there).
        parts: (draft id, output) → how many parts of a long message have arrived.
        tasks: draft id → the send task it went out in (its first recipient's draft id, or its own).
        outcomes: draft id → what the platform said of that recipient at once (not_friend: WeCom's fail_list).
        keys: draft id → the `send_key` a draft left pending takes, so a later claim takes its task whole (held welcomes).
        Returns the drafts whose claim was lost: another run took them over and decides their
        state, so nothing about them changes here but the evidence (deliveries seen to arrive, parts
        that arrived), which is written because it is true whoever holds the claim.
        """
        stamp = to_db(now)
        drafts = []
        deliveries = []
        task_of = tasks or {}
        outcome_of = outcomes or {}
        with immediate(self.db):
            # SQLite serializes writers, so reading the claims held and updating under the same condition is the
            # per-draft `UPDATE … WHERE draft_id = ? AND claimed_by = ? AND state = 'claimed' RETURNING` in one go.
            held = {row[0] for row in self.db.execute("SELECT draft_id FROM drafts WHERE claimed_by = ? AND state = 'claimed'", [run_id])}
            for draft_id, outputs, state, reason in results:
                mine = draft_id in held
                if mine:
                    errors = "; ".join(f"{o}: {e}" for o, _, _, e in outputs if e)
                    finished = stamp if state in ("sent", "failed", "unknown", "skipped") else None
                    drafts.append((state, reason, errors or None, finished, task_of.get(draft_id), outcome_of.get(draft_id), draft_id, run_id))
                deliveries.extend(
                    (draft_id, output, delivery_state, location, error, 0, stamp)
                    for output, delivery_state, location, error in outputs
                    if mine or delivery_state == "delivered"
                )
            self.db.conn.executemany(
                "UPDATE drafts SET state = ?, reason = ?, error = ?, finished_at = ?, task_id = COALESCE(?, task_id), outcome = COALESCE(?, outcome), "
                "claimed_by = NULL, lease_until = NULL "
                "WHERE draft_id = ? AND claimed_by = ? AND state = 'claimed'",
                drafts,
            )
            self.db.conn.executemany(_UPSERT_DELIVERY, deliveries)
            if retry_at:
                self.db.conn.executemany(
                    "UPDATE drafts SET first_due_at = COALESCE(first_due_at, due_at), due_at = ? WHERE draft_id = ?",
                    [(due, draft_id) for draft_id, due in retry_at.items() if draft_id in held],
                )
            if keys:
                self.db.conn.executemany("UPDATE drafts SET send_key = ? WHERE draft_id = ?", [(key, draft_id) for draft_id, key in keys.items() if draft_id in held])
            if parts:
                self.db.conn.executemany(
                    "UPDATE deliveries SET parts = MAX(parts, ?) WHERE draft_id = ? AND output = ?", [(n, d, o) for (d, o), n in parts.items()]
                )
        return {result[0] for result in results} - held

    def orphans(self, now: datetime, playbook_id: str) -> list[dict[str, Any]]:
        """The playbook's claims whose lease expired by `now`, or whose run finished or whose pid here is gone.

        Claims are read before runs: a run's row is committed before its first claim, so a claim
        made in between still finds its run alive. Each row gets `run_gone`, for `take_over`.
        """
        stamp = to_db(now)
        # `+playbook_id`: the (state, due_at) index finds the few claimed drafts; the playbook's would read the campaign.
        cursor = self.db.execute("SELECT * FROM drafts WHERE state = 'claimed' AND +playbook_id = ?", [playbook_id])
        columns = [c[0] for c in cursor.description]
        claimed = [dict(zip(columns, r, strict=True)) for r in cursor]
        if not claimed:
            return []
        running = {run.run_id: run for run in self.runs()}
        found = []
        for row in claimed:
            run = running.get(row["claimed_by"])
            gone = run is None or (run.host == HOST and not pid_alive(run.pid))
            if gone or row["lease_until"] is None or row["lease_until"] < stamp:
                found.append({**row, "run_gone": gone})
        return found

    def take_over(self, run_id: str, orphans: Sequence[Mapping[str, Any]], now: datetime) -> list[Mapping[str, Any]]:
        """Claim `orphans` for `run_id`, each by compare-and-set on the holder read and on why it was orphaned,
        so a claim renewed or settled meanwhile stays where it is. Returns those taken (`claimed_by`: who lost it)."""
        stamp = to_db(now)
        lease = to_db(now + lease_length())
        taken = []
        with immediate(self.db):
            for row in orphans:
                moved = self.db.execute(
                    "UPDATE drafts SET claimed_by = ?, lease_until = ? WHERE draft_id = ? AND claimed_by = ? AND state = 'claimed' "
                    "AND (? OR lease_until IS NULL OR lease_until < ?) RETURNING draft_id",
                    [run_id, lease, row["draft_id"], row["claimed_by"], row["run_gone"], stamp],
                ).fetchone()
                if moved is not None:
                    taken.append(row)
        return taken

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

    def find(self, prefixes: Sequence[str]) -> dict[str, list[str]]:
        """Resolve ids as the outbox and `siyu outbox` show them: a send task's name (`<id>-<n>`: every draft it
        carried), or a draft id in full or as a unique prefix; raise naming any that do not match."""
        resolved: dict[str, list[str]] = {}
        for prefix in prefixes:
            members = [row[0] for row in self.db.execute("SELECT draft_id FROM drafts WHERE task_id = ? ORDER BY due_at, draft_id", [prefix])]
            if len(members) > 1:
                resolved[prefix] = members
                continue
            rows = self.db.execute("SELECT draft_id FROM drafts WHERE draft_id LIKE ? LIMIT 2", [prefix + "%"]).fetchall()
            if not rows:
                raise SiyuError(f"no draft {prefix!r} in the ledger (nor a send task of that name)", hint="list drafts with `siyu outbox`")
            if len(rows) > 1:
                raise SiyuError(f"draft id {prefix!r} is ambiguous", hint="give more characters of the id")
            resolved[prefix] = [rows[0][0]]
        return resolved


def _ids(drafts: str | Sequence[str]) -> list[str]:
    return [drafts] if isinstance(drafts, str) else list(drafts)


def _due_then_id(row: Mapping[str, Any]) -> tuple[str, str]:
    return (row["due_at"], row["draft_id"])


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
