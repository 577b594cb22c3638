from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from siyu_cli.errors import StoreError
from siyu_cli.store._schema import MIGRATIONS

BUSY_TIMEOUT_MS = int(os.environ.get("SIYU_BUSY_TIMEOUT_MS") or 30_000)


def default_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--db`, else `SIYU_DB`, else ./siyu.db."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("SIYU_DB") or "siyu.db")


def open_store(path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False) -> sqlite_utils.Database:
    """Open (and migrate) the store; WAL so readers never block the runner.

    The connection may be used from the scheduler's worker thread; callers serialize access.
    """
    target = Path(path)
    if not create and not target.exists():
        raise StoreError(f"{target}: no such store", hint="run `siyu import`, `siyu run` or pass --db PATH")
    if readonly:
        uri = f"file:{target.resolve()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise StoreError(f"{target}: cannot read store: {exc}") from exc
        if not {"contacts", "events", "drafts"} <= tables:
            conn.close()
            raise StoreError(f"{target}: not a siyu store (an empty file, or another program's database)", hint="pass the store siyu import/run wrote with --db, or remove the file")
        return sqlite_utils.Database(conn)
    if target.parent and not target.parent.exists():
        raise StoreError(f"{target}: folder {target.parent} does not exist")
    try:
        conn = sqlite3.connect(str(target), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{target}: not a siyu store or unreadable: {exc}") from exc
    if str(mode).lower() != "wal":
        raise StoreError(f"{target}: could not switch to WAL (journal_mode={mode})")
    db = sqlite_utils.Database(conn)
    try:
        if MIGRATIONS.pending(db):
            with immediate(db):
                MIGRATIONS.apply(db)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"{target}: cannot prepare store: {exc}", hint=_busy_hint(exc)) from exc
    return db


def _busy_hint(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "another process holds a write lock on the store; see `siyu status`"
    if "readonly" in text or "read-only" in text:
        return "the store file or its folder is read-only"
    return ""


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """BEGIN IMMEDIATE: take the write lock up front, so a claim never meets SQLITE_BUSY halfway."""
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"store is locked: {exc}", hint=_busy_hint(exc)) from exc
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"store commit failed: {exc}", hint=_busy_hint(exc)) from exc
