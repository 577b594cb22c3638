"""import: the `siyu import events` core on an N-row CSV against csv + one sqlite3 executemany.

Both write into a fresh file whose `events` table is the store's own (same columns, keys and
indexes) under the store's pragmas (WAL, synchronous NORMAL), so the floor pays for the same
unique event ids, indexes and journal that ours does. Both run the same number of times, in turns.
"""

from __future__ import annotations

import csv
import inspect
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench._data import EVENT_COLUMNS, TZ_NAME, events_csv, floor_transaction, insert_contacts, insert_sql, write_playbook
from bench._harness import Config, Result, Timing, interleaved, skipped, timings

NAME = "import"
FLOOR = "csv module + sqlite3 executemany"
TARGET = 1.5


def store_ddl(tables: tuple[str, ...] = ("events", "tag_log")) -> list[str]:
    """The store's own tables as a fresh store has them: their indexes, and the triggers that log changes for the tag cache."""
    from siyu_cli.store import open_store

    with tempfile.TemporaryDirectory() as folder:
        db = open_store(Path(folder) / "ddl.db")
        try:
            rows = db.execute(
                f"SELECT sql FROM sqlite_master WHERE tbl_name IN ({', '.join('?' * len(tables))}) AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END",
                list(tables),
            )
            return [sql for (sql,) in rows]
        finally:
            db.conn.close()


def _rows(path: Path) -> Iterator[tuple[str | None, ...]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            yield tuple(value or None for value in row)


def floor_import(csv_path: Path, db_path: Path, ddl: list[str]) -> int:
    """One transaction under the store's pragmas (WAL, synchronous NORMAL), as the import writes."""
    with floor_transaction(db_path, ddl) as conn:
        conn.executemany(insert_sql("events", EVENT_COLUMNS), _rows(csv_path))
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def _caller(import_events: Callable[..., Any], playbook: Path) -> Callable[[Any, Path], Any]:
    """Bind the core's arguments by name: the store, the file, and the zone for zone-less times."""
    params = inspect.signature(import_events).parameters
    names = list(params)

    def call(db: Any, csv_path: Path) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name in names[:2]:
            args.append(db if name in ("db", "store", "database", "conn") else csv_path)
        if "tz" in params:
            from siyu_cli._time import zone

            kwargs["tz"] = zone(TZ_NAME)
        for name in ("timezone", "tz_name"):
            if name in params:
                kwargs[name] = TZ_NAME
        if "playbook" in params:
            from siyu_cli.playbook import read

            kwargs["playbook"] = read(playbook)
        return import_events(*args, **kwargs)

    return call


def run(cfg: Config) -> list[Result]:
    rows = 10_000 if cfg.quick else 1_000_000
    csv_path = events_csv(cfg.out, rows)
    ddl = store_ddl()
    n = cfg.times(3)
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-import-"))
    state: dict[str, Any] = {}
    info: dict[str, Any] = {"rows": rows, "median_of": n, "csv_bytes": csv_path.stat().st_size}

    def empty() -> None:
        for leftover in work.iterdir():
            leftover.unlink()

    def floor() -> None:
        state["floor_rows"] = floor_import(csv_path, work / "floor.db", ddl)

    try:
        try:
            from siyu_cli.ingest import import_events
        except ImportError:
            floor_t = timings(floor, n, setup=empty)
            result = skipped(NAME, FLOOR, TARGET, "ingest not available")
            result.floor_s, result.floor_range, result.info = floor_t.median, floor_t.range, info
            return [result]
        from siyu_cli.store import open_store

        call = _caller(import_events, write_playbook(cfg.out))

        def fresh() -> None:
            empty()
            open_store(work / "ours.db").conn.close()
            insert_contacts(work / "ours.db", max(rows // 5, 1))  # events must name known contacts
            state["db"] = open_store(work / "ours.db")

        def ours() -> None:
            db = state.pop("db")
            try:
                call(db, csv_path)
                state["ours_rows"] = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            finally:
                db.conn.close()

        timed: dict[str, Timing] = interleaved({"floor": (floor, empty), "ours": (ours, fresh)}, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if state["floor_rows"] != rows:
        raise RuntimeError(f"floor stored {state['floor_rows']} rows of {rows}")
    if state["ours_rows"] != rows:
        raise RuntimeError(f"import stored {state['ours_rows']} rows of {rows}")
    result = Result.timed(NAME, timed["ours"], FLOOR, timed["floor"], TARGET, info=info)
    result.info["notes"] = [f"{rows:,} CSV rows ({csv_path.stat().st_size / 1e6:.0f} MB)"]
    return [result]
