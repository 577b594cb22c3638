"""taobao: a 1,000,000-row Taobao 订单报表 (GB18030, CRLF, ="…" ids) through `--preset taobao-orders --create-contacts`,
against csv + executemany of the same rows.

Both sides write into a fresh store file with the store's tables, indexes and triggers, under the
store's pragmas and the import's page cache, in one transaction. The floor keeps the same rows
(the statuses the preset keeps, a refund row where the refund is not zero), creates the same
contacts and writes the same props text, but parses nothing: its cells go in as they were read.
Both run the same number of times, in turns.
"""

from __future__ import annotations

import csv
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench._data import SEED, TZ_NAME, store_pragmas
from bench._harness import Config, Result, Timing, interleaved
from bench._import import store_ddl

NAME = "taobao"
FLOOR = "csv module + sqlite3 executemany (same rows, cells as read)"
TARGET = 1.5
HEADER = ("订单编号", "买家会员名", "买家支付宝账号", "买家应付货款", "买家实际支付金额", "订单状态", "收货人姓名", "收货地址", "联系手机",
          "订单创建时间", "订单付款时间", "宝贝标题", "宝贝总数量", "店铺名称", "退款金额")
KEPT = {"交易成功": "order", "卖家已发货，等待买家确认": "order", "买家已付款，等待卖家发货": "order"}
# Statuses in the shares a shop's export shows: most orders done, some closed, a few never paid.
STATUSES = (("交易成功", 80), ("卖家已发货，等待买家确认", 9), ("买家已付款，等待卖家发货", 3), ("交易关闭", 5), ("等待买家付款", 3))
PROPS = ("买家应付货款", "订单创建时间", "宝贝标题", "宝贝总数量", "店铺名称")
TITLES = ("紧致眼霜 30ml", "修护面霜 50g", "玻尿酸精华 30ml 买一送一", "洁面乳 120g")


def taobao_csv(out: Path, rows: int, seed: int = SEED) -> Path:
    """The export as Taobao writes it, cached by size and seed."""
    path = out / f"taobao-{rows}r-s{seed}.csv"
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    statuses = [name for name, weight in STATUSES for _ in range(weight)]
    start = datetime(2026, 11, 1)
    buyers = max(rows // 5, 1)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="gb18030", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(rows):
            status = rng.choice(statuses)
            created = start + timedelta(seconds=rng.randrange(60 * 86400))
            paid = "" if status in ("等待买家付款",) or (status == "交易关闭" and rng.random() < 0.7) else (created + timedelta(seconds=rng.randrange(1, 900))).strftime("%Y-%m-%d %H:%M:%S")
            price = rng.choice((59, 99, 199, 299, 1299)) + rng.choice((0, 0.5, 0.9))
            refund = f"{price / 2:.2f}" if status == "交易成功" and rng.random() < 0.02 else "0.00"
            handle.write(f'="{3300000000000000000 + i}",')  # Excel's text wrapper, as the export writes it
            writer.writerow(
                [f"tb_{rng.randrange(buyers):07d}", "a***@163.com", f"{price:.2f}", f"{price:.2f}", status, "张*", "浙江省 杭州市 ***", "138****0000",
                 created.strftime("%Y-%m-%d %H:%M:%S"), paid, rng.choice(TITLES), "1", "栖山旗舰店", refund]
            )
    partial.rename(path)
    return path


def _floor_rows(path: Path, buyers: set[str]) -> Iterator[tuple[Any, ...]]:
    with path.open(encoding="gb18030", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        i_id, i_buyer, i_paid, i_status, i_at, i_refund = (header.index(name) for name in ("订单编号", "买家会员名", "买家实际支付金额", "订单状态", "订单付款时间", "退款金额"))
        i_props = [header.index(name) for name in PROPS]
        for row in reader:
            kind = KEPT.get(row[i_status]) if row else None
            if kind is None:
                continue
            buyer = row[i_buyer]
            buyers.add(buyer)
            props = "{" + ", ".join(f'"{name}": "{row[i]}"' for name, i in zip(PROPS, i_props, strict=True)) + "}"
            yield (row[i_id], kind, buyer, row[i_at], None, None, None, row[i_paid], props)
            if row[i_refund] != "0.00":
                yield (row[i_id] + "/refund", "refund", buyer, row[i_at], None, None, None, row[i_refund], props)


def floor_import(path: Path, db_path: Path, ddl: list[str]) -> tuple[int, int]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        store_pragmas(conn)
        conn.execute("PRAGMA cache_size = -65536")  # the import's own page cache while it writes
        for statement in ddl:
            conn.execute(statement)
        buyers: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR IGNORE INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _floor_rows(path, buyers)
        )
        conn.executemany("INSERT OR IGNORE INTO contacts (contact_id, updated_at) VALUES (?, '2026-12-01T00:00:00Z')", ((buyer,) for buyer in buyers))
        conn.execute("COMMIT")
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]), int(conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])
    finally:
        conn.close()


def run(cfg: Config) -> list[Result]:
    from siyu_cli._time import zone
    from siyu_cli.ingest import import_events, load_preset
    from siyu_cli.store import open_store

    rows = 10_000 if cfg.quick or cfg.tiny else 1_000_000
    export = taobao_csv(cfg.out, rows)
    ddl = store_ddl(("events", "contacts", "tag_log"))
    n = cfg.times(3)
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-taobao-"))
    state: dict[str, Any] = {}
    preset, tz = load_preset("taobao-orders"), zone(TZ_NAME)

    def empty() -> None:
        for leftover in work.iterdir():
            leftover.unlink()

    def floor() -> None:
        state["floor"] = floor_import(export, work / "floor.db", ddl)

    def fresh() -> None:
        empty()
        state["db"] = open_store(work / "ours.db")

    def ours() -> None:
        db = state.pop("db")
        try:
            result = import_events(db, export, tz=tz, mapping=preset, create_contacts=True)
            state["ours"] = (int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0]), int(db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]))
            state["left_out"] = result.left_out
        finally:
            db.conn.close()

    try:
        timed: dict[str, Timing] = interleaved({"floor": (floor, empty), "ours": (ours, fresh)}, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if state["ours"] != state["floor"]:
        raise RuntimeError(f"the import stored (events, contacts) {state['ours']}, the floor {state['floor']}")
    events, contacts = state["ours"]
    info = {"rows": rows, "median_of": n, "csv_bytes": export.stat().st_size, "events": events, "contacts": contacts, "left_out": state["left_out"]}
    result = Result.timed(NAME, timed["ours"], FLOOR, timed["floor"], TARGET, info=info)
    left = ", ".join(f"{reason} {count:,}" for reason, count in sorted(state["left_out"].items()))
    result.info["notes"] = [f"{rows:,} GB18030 rows ({export.stat().st_size / 1e6:.0f} MB) → {events:,} events, {contacts:,} contacts; left out: {left}"]
    return [result]
