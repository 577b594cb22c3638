"""Passes that plan only what came due since the last one record exactly what a full re-plan would.

The plan cursor (siyu_cli.ledger._cursor) only saves work. Each test runs the same campaign twice
from the same store: once as cron would (every pass incremental), once with the cursor dropped
before every pass (every pass plans the whole campaign, as passes did before the cursor existed),
and compares the two ledgers draft by draft. Between passes the store changes the ways a team's
store does: contacts imported late, events recorded after the fact, hand tagging.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from siyu_cli.dispatch import Runner
from siyu_cli.store import open_store
from tests.playbooks_fixtures import invoke, query, write_playbook

TZ = ZoneInfo("Asia/Shanghai")
LEDGER = "SELECT draft_id, beat, target, state, reason, due_at, text FROM drafts ORDER BY draft_id"


def _project(tmp_path: Path, starter: str, contacts: int) -> Path:
    root = tmp_path / starter
    invoke("init", str(root), "--from", starter)
    book = next((root / "playbooks").glob("*.yaml"))
    invoke("simulate", str(book), "--contacts", str(contacts), "--seed", "11", "--db", str(root / "siyu.db"))
    return book


def _campaign(book: Path, db: Path, moments: list[datetime], *, full: bool, between: Any = None) -> list[tuple[Any, ...]]:
    runner = Runner(book, db_path=str(db), outbox_dir=db.parent / ("outbox-full" if full else "outbox-cron"), environ={})
    try:
        for index, moment in enumerate(moments):
            if between is not None:
                between(runner.db, index)
            if full:
                runner.db.execute("DELETE FROM plan_cursor")
            runner.run_once(moment)
    finally:
        runner.db.conn.close()
    return query(db, LEDGER)


def _every(start: datetime, step: timedelta, count: int) -> list[datetime]:
    return [start + step * i for i in range(count)]


@pytest.mark.parametrize("starter", ["ecommerce", "education", "skincare"])
def test_cron_passes_record_what_full_replans_record(tmp_path: Path, starter: str) -> None:
    book = _project(tmp_path, starter, 600)
    start = datetime(2026, 12, 1, 7, 0, tzinfo=TZ)
    moments = _every(start, timedelta(minutes=97), 240)  # sixteen days, at moments that fall between beats and steps
    twin = book.parent.parent / "twin.db"
    shutil.copy(book.parent.parent / "siyu.db", twin)

    def meddle(db: Any, index: int) -> None:
        """What a team does between passes: late imports (a copy of a contact with its events), an order recorded
        after the fact, a hand tag. Each lands before beats the pass has already planned."""
        at = start + timedelta(minutes=97 * index)
        stamp = (at - timedelta(minutes=90)).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
        ids = [row[0] for row in db.execute("SELECT contact_id FROM contacts WHERE contact_id LIKE 'sim-%' ORDER BY contact_id")]
        if index % 10 == 5:
            model = ids[index % len(ids)]
            clone = f"late-{index}"
            db.execute(
                "INSERT INTO contacts (contact_id, name, tags, source, tier, account, cohort, added_at, extra) "
                "SELECT ?, name, tags, source, tier, account, cohort, ?, extra FROM contacts WHERE contact_id = ?",
                [clone, stamp, model],
            )
            db.execute(
                "INSERT INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) "
                "SELECT event_id || ?, type, ?, at, hook, cohort, group_id, amount, props FROM events WHERE contact_id = ?",
                [f"-{clone}", clone, model],
            )
        if index % 10 == 7:
            db.execute(
                "INSERT INTO events (event_id, type, contact_id, at, amount, props) VALUES (?, 'order', ?, ?, 99, '{}')",
                [f"late-order-{index}", ids[(3 * index) % len(ids)], stamp],
            )
        if index % 30 == 9:
            db.execute("UPDATE contacts SET tags = '[\"已购\", \"VIP\"]' WHERE contact_id = ?", [ids[(7 * index) % len(ids)]])
        db.conn.commit()

    cron = _campaign(book, book.parent.parent / "siyu.db", moments, full=False, between=meddle)
    full = _campaign(book, twin, moments, full=True, between=meddle)
    assert cron == full
    assert len(cron) > 200


def _scale_project(tmp_path: Path) -> Path:
    beats = [
        {"id": "evening", "title": "晚间私聊", "at": "20:00", "days": "all", "channel": "private", "audience": "学员", "text": "{{ contact.name }}，今天的课听了吗？"},
        {"id": "noon", "title": "午间群表扬", "at": "12:00", "days": "all", "channel": "group", "text": "表扬今天打卡的同学！"},
    ]
    book = write_playbook(tmp_path, beats=beats, days=10)
    open_store(tmp_path / "siyu.db").conn.close()
    with sqlite3.connect(tmp_path / "siyu.db") as conn:
        conn.executemany(
            "INSERT INTO contacts (contact_id, name, tags, added_at) VALUES (?, ?, '[\"学员\"]', '2026-11-30T00:00:00Z')",
            [(f"s{i:03d}", f"学员{i}") for i in range(30)],
        )
    return book


def test_an_idle_pass_reads_no_contact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cron's pass between beats: it finds nothing due from the ledger, the playbook and the cursor alone."""
    monkeypatch.chdir(tmp_path)
    book = _scale_project(tmp_path)
    invoke("run", str(book), "--once", "--now", "2026-12-03 20:05", "--json")
    runner = Runner(book, db_path=str(tmp_path / "siyu.db"), outbox_dir=tmp_path / "outbox", environ={})
    tables: set[str] = set()

    def watch(action: int, table: str | None, *_: Any) -> int:
        if action == sqlite3.SQLITE_READ and table:
            tables.add(table)
        return sqlite3.SQLITE_OK

    runner.db.conn.set_authorizer(watch)
    summary = runner.run_once(datetime(2026, 12, 3, 20, 6, tzinfo=TZ))
    runner.db.conn.set_authorizer(None)
    assert (summary.recorded, summary.sent) == (0, 0)
    assert "contacts" not in tables and "events" not in tables
    assert summary.next_due == datetime(2026, 12, 4, 12, 0, tzinfo=TZ)


def test_a_contact_imported_after_the_beat_gets_it_within_max_late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    book = _scale_project(tmp_path)
    invoke("run", str(book), "--once", "--now", "2026-12-02 20:01", "--json")
    with sqlite3.connect(tmp_path / "siyu.db") as conn:
        # Added at 19:50 (before the 20:00 beat) and 20:02 (after it), both imported after the beat.
        conn.execute("INSERT INTO contacts (contact_id, name, tags, added_at) VALUES ('late', '晚到', '[\"学员\"]', '2026-11-30T11:50:00Z')")
        conn.execute("INSERT INTO contacts (contact_id, name, tags, added_at) VALUES ('after', '更晚', '[\"学员\"]', '2026-12-02T12:02:00Z')")
    invoke("run", str(book), "--once", "--now", "2026-12-02 20:10", "--json")
    rows = query(tmp_path / "siyu.db", "SELECT beat, state, day FROM drafts WHERE target = 'contact:late' ORDER BY day")
    # Day 1's beat was long gone (missed); today's went out ten minutes late, within max_late.
    assert rows == [("evening", "skipped", 1), ("evening", "sent", 2)]
    # A contact added after today's beat was not in it: the next day's is its first.
    assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE target = 'contact:after'") == [(0,)]


def test_a_pass_at_an_earlier_moment_plans_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    book = _scale_project(tmp_path)
    invoke("run", str(book), "--once", "--now", "2026-12-03 20:05", "--json")
    before = query(tmp_path / "siyu.db", LEDGER)
    again = invoke("run", str(book), "--once", "--now", "2026-12-02 21:00", "--json")
    assert '"recorded": 0' in again.stdout and '"sent": 0' in again.stdout
    assert query(tmp_path / "siyu.db", LEDGER) == before
