"""The front line's view of the ledger: what to send, what was sent by hand, what is in doubt."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import date as date_type
from pathlib import Path
from typing import Any

from siyu_cli._time import from_db, to_db, utcnow
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.ledger import Ledger, Run
from siyu_cli.playbook import read
from siyu_cli.playbook._model import HEALTH_CLASSES
from siyu_cli.store import default_path, open_store

DONE_FROM = ("sent", "pending", "failed", "unknown", "claimed")


def _store(db_path: str | None) -> Any:
    return open_store(default_path(db_path), create=False)


def list_drafts(
    playbook_path: Path, db_path: str | None, *, date: str | None, status: str | None, limit: int, reason: str | None = None
) -> tuple[list[dict[str, Any]], tzinfo]:
    """The ledger's drafts; `reason`: only those recorded with it (`capacity` takes capacity:carried and capacity:superseded too)."""
    playbook = read(playbook_path)
    db = _store(db_path)
    sql = "SELECT draft_id, task_id, due_at, beat, channel, persona, target, state, reason, done_by, outcome, text FROM drafts WHERE playbook_id = ?"
    params: list[Any] = [playbook.id]
    if date:
        start = _day_start(date, playbook.tz)
        sql += " AND due_at >= ? AND due_at < ?"
        params += [to_db(start), to_db(start + timedelta(days=1))]
    if status:
        if status == "todo":
            sql += " AND state = 'sent' AND done_by IS NULL"
        elif status in ("pending", "claimed", "sent", "failed", "skipped", "unknown"):
            sql += " AND state = ?"
            params.append(status)
        else:
            raise UsageError(f"--status {status!r} is not a state; use pending, claimed, sent, failed, skipped, unknown or todo")
    if reason:
        _known_reason(db, playbook.id, reason)
        sql += " AND (reason = ? OR reason LIKE ? ESCAPE '\\')"
        params += [reason, reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"]
    sql += " ORDER BY due_at, beat, target LIMIT ?"
    params.append(limit)
    cursor = db.execute(sql, params)
    columns = [c[0] for c in cursor.description]
    rows = []
    for values in cursor:
        row = dict(zip(columns, values, strict=True))
        row["due_local"] = from_db(row["due_at"]).astimezone(playbook.tz).strftime("%Y-%m-%d %H:%M")
        rows.append(row)
    return rows, playbook.tz


# The reasons siyu records drafts with (before a colon: capacity:carried, limit:per_contact_per_day, group_health:dead).
REASONS = (
    "not_friend", "missed", "holdout", "quiet_hours", "quiet_hours:deferred", "exit", "removed", "no_chat_id", "retry", "waiting",
    "in_doubt", "template_error", "delivery", "crash",
    "capacity", "capacity:carried", "capacity:superseded", "nurture", "nurture:carried",
    "limit", "limit:per_contact_per_day", "limit:private_per_account_per_day",
    "group_health", *(f"group_health:{health}" for health in HEALTH_CLASSES),
)  # fmt: skip


def _known_reason(db: Any, playbook_id: str, reason: str) -> None:
    """`--reason` names a reason the ledger holds (or the part before its colon: capacity for capacity:carried);
    else a usage error listing them, with a did-you-mean: a typo (not_freind) is not "0 drafts"."""
    import difflib

    held = sorted({str(row[0]) for row in db.execute("SELECT DISTINCT reason FROM drafts WHERE playbook_id = ? AND reason IS NOT NULL", [playbook_id])})
    heads = sorted({r.split(":", 1)[0] for r in held if ":" in r} - set(held))
    if reason in held or reason in heads or reason in REASONS:
        return  # a reason siyu records, held by no draft yet, lists none (exit 0): a script asking "any not_friend?"
    close = difflib.get_close_matches(reason, held + heads + [r for r in REASONS if r not in held], n=1, cutoff=0.6)
    mean = f"did you mean {close[0]!r}? " if close else ""
    listed = f"the ledger holds {', '.join(held)}" if held else "the ledger holds no draft with a reason yet"
    raise UsageError(f"--reason {reason!r}: no draft of {playbook_id} is recorded with this reason", hint=f"{mean}{listed} (`siyu status` counts them)")


def list_tasks(playbook_path: Path, db_path: str | None, *, date: str | None, limit: int) -> list[dict[str, Any]]:
    """Send tasks as the front line sees them: one row per task with its recipients counted by state and outcome."""
    playbook = read(playbook_path)
    db = _store(db_path)
    sql = (
        "SELECT task_id, MIN(due_at), beat, channel, persona, COUNT(*), SUM(state = 'sent'), SUM(done_by IS NOT NULL), "
        "SUM(outcome = 'not_friend'), SUM(outcome = 'quota'), SUM(outcome = 'not_sent'), SUM(state = 'unknown') "
        "FROM drafts WHERE playbook_id = ? AND task_id IS NOT NULL"
    )
    params: list[Any] = [playbook.id]
    if date:
        start = _day_start(date, playbook.tz)
        sql += " AND due_at >= ? AND due_at < ?"
        params += [to_db(start), to_db(start + timedelta(days=1))]
    sql += " GROUP BY task_id ORDER BY MIN(due_at), task_id LIMIT ?"
    params.append(limit)
    names = ("task_id", "due_at", "beat", "channel", "persona", "recipients", "sent", "done", "not_friend", "quota", "not_sent", "unknown")
    rows = []
    for values in db.execute(sql, params):
        row = dict(zip(names, values, strict=True))
        row["due_local"] = from_db(row["due_at"]).astimezone(playbook.tz).strftime("%Y-%m-%d %H:%M")
        rows.append(row)
    return rows


def _day_start(date: str, tz: tzinfo) -> datetime:
    try:
        day = datetime.now(tz).date() if date == "today" else date_type.fromisoformat(date)
    except ValueError:
        raise UsageError(f"--date {date!r} is not a date; write YYYY-MM-DD or today") from None
    return datetime.combine(day, datetime.min.time(), tzinfo=tz)


def mark_done(db_path: str | None, ids: list[str], by: str | None) -> tuple[list[str], list[str], dict[str, tuple[str, str]]]:
    """Mark drafts sent by hand; returns (marked, left as WeCom read them back, already marked: id → (by, at)).
    The first mark is the record: a second `outbox done` does not move who sent it or when (on time stays on time)."""
    db = _store(db_path)
    ledger = Ledger(db)
    resolved = ledger.find(ids)
    who = by or _user()
    full = [draft for found in resolved.values() for draft in found]
    states = dict(db.execute(f"SELECT draft_id, state FROM drafts WHERE draft_id IN ({', '.join('?' * len(full))})", full).fetchall())
    refused = [draft_id for draft_id in full if states.get(draft_id) not in DONE_FROM]
    if refused:
        raise SiyuError(
            f"cannot mark {', '.join(refused)} done: state {states.get(refused[0])}",
            hint="skipped drafts (holdout, quiet hours, limit, missed) were decided not to be sent",
        )
    # What WeCom read back (who sent it, when, or why not) is the record: a hand mark does not overwrite it.
    read_back = ledger.read_back(full)
    already = {
        str(draft_id): (str(done_by), str(done_at or ""))
        for chunk in (full[start : start + 500] for start in range(0, len(full), 500))
        for draft_id, done_by, done_at in db.execute(
            f"SELECT draft_id, done_by, done_at FROM drafts WHERE draft_id IN ({', '.join('?' * len(chunk))}) AND done_by IS NOT NULL", chunk
        )
        if draft_id not in read_back
    }
    marked = [draft_id for draft_id in full if draft_id not in read_back and draft_id not in already]
    ledger.set_state(marked, "sent", done_by=who, now=utcnow(), allowed=DONE_FROM)
    return marked, sorted(read_back), already


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "front-line"


def ledger_status(db_path: str | None, *, now: datetime | None) -> dict[str, Any]:
    db = _store(db_path)
    moment = now or utcnow()
    campaigns: dict[str, dict[str, int]] = {}
    skipped: dict[str, dict[str, int]] = {}  # why drafts were not sent (not_friend: the contact deleted the account)
    rows = db.execute(
        "SELECT playbook_id, state, CASE WHEN state = 'skipped' THEN COALESCE(reason, '?') END, COUNT(*) FROM drafts GROUP BY 1, 2, 3 ORDER BY 1, 3"
    )
    for playbook_id, state, reason, count in rows:
        counts = campaigns.setdefault(playbook_id, {})
        counts[state] = counts.get(state, 0) + count
        if reason is not None:
            skipped.setdefault(playbook_id, {})[reason] = count
    cursor = db.execute(
        "SELECT draft_id, due_at, playbook_id, beat, target FROM drafts WHERE state = 'pending' ORDER BY due_at LIMIT 10"
    )
    next_due = [dict(zip(("draft_id", "due_at", "playbook_id", "beat", "target"), row, strict=True)) for row in cursor]
    doubt = [
        dict(zip(("draft_id", "playbook_id", "beat", "target", "error"), row, strict=True))
        for row in db.execute("SELECT draft_id, playbook_id, beat, target, error FROM drafts WHERE state = 'unknown' ORDER BY due_at")
    ]
    # What each run holds, and whether its leases ran out (a hung or paused run: the next pass takes them over).
    held = {
        holder: (count, soonest)
        for holder, count, soonest in db.execute("SELECT claimed_by, COUNT(*), MIN(lease_until) FROM drafts WHERE state = 'claimed' GROUP BY claimed_by")
    }
    stamp = to_db(moment)
    locks = []
    for run in Ledger(db).runs():
        claims, lease = held.get(run.run_id, (0, None))
        expired = lease is not None and lease < stamp
        locks.append({**run.__dict__, "alive": run.alive, "claims": claims, "lease_until": lease, "lease_expired": expired})
    return {"now": moment.astimezone(UTC).isoformat(), "campaigns": campaigns, "skipped": skipped, "next_due": next_due, "in_doubt": doubt, "locks": locks}


def unlock(db_path: str | None, *, force: bool) -> tuple[list[Run], list[Run]]:
    ledger = Ledger(_store(db_path))
    released = ledger.release_dead_runs(utcnow(), force=force)
    alive = ledger.runs(live_only=True)
    return released, alive
