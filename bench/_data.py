"""The data the benchmarks run on: one playbook, contacts, events and an events CSV, all seeded.

Big inputs (the funnel store, the events CSV) are cached in the output folder under a name that
holds their size and seed, so a re-run measures the code instead of the generator.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 7
TZ_NAME = "Asia/Shanghai"
# The one private beat of the dispatch benchmark; the floor renders this same text.
PRIVATE_TEMPLATE = (
    "{{ contact.name }}您好，我是{{ persona.name }}（{{ persona.role }}）。\n"
    "{{ vars.camp }}第{{ day }}天的直播今晚{{ vars.live_time }}开始，"
    "{{ products.member.name }}{{ products.member.price }}元，今晚报名{{ vars.gift }}。\n"
    "{% if '已购' in contact.tags %}感谢您的信任！{% else %}有问题随时问我。{% endif %}"
)
# The dispatch-task benchmark's beat: the same invitation, not naming its contact, so one mass send carries it to all.
TASK_TEMPLATE = (
    "您好，我是{{ persona.name }}（{{ persona.role }}）。\n"
    "{{ vars.camp }}第{{ day }}天的直播今晚{{ vars.live_time }}开始，"
    "{{ products.member.name }}{{ products.member.price }}元，今晚报名{{ vars.gift }}。\n"
    "有问题随时问我。"
)
CONTACT_COLUMNS = ("contact_id", "name", "tags", "source", "tier", "account", "cohort", "added_at", "extra")
EVENT_COLUMNS = ("event_id", "type", "contact_id", "at", "hook", "cohort", "group_id", "amount")
CSV_COLUMNS = ("event_id", "type", "contact_id", "at", "hook", "cohort", "group", "amount")
FUNNEL_STAGES = (("carded", "card_sent", 1), ("added", "friend_added", 1), ("joined", "group_joined", 1), ("ordered", "order", 1), ("repurchased", "order", 2))
FUNNEL_WINDOW_DAYS = 30
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def playbook_yaml(text: str = PRIVATE_TEMPLATE) -> str:
    """A one-day campaign with one private beat to every parent (家长), and the spec's example funnel."""
    template = "\n".join("      " + line for line in text.splitlines())
    return f"""siyu: 1
id: bench-private
title: 基准测试 · 一对一邀约
timezone: {TZ_NAME}
start: 2026-12-01
days: 1
vars: {{camp: 少年阅读训练营, live_time: "20:00", gift: 加赠纸质阅读记录本}}
personas:
  - {{id: advisor, name: 周老师, role: 学习顾问, voice: 真诚、不催促, account: wx_advisor_01}}
products:
  - {{id: trial, name: 7天阅读营, price: 9.9, tier: relationship}}
  - {{id: member, name: 年度会员卡, price: 365, tier: profit}}
segments:
  parents: "家长"
beats:
  - id: invite
    title: 一对一邀约
    at: "20:00"
    days: all
    channel: private
    persona: advisor
    audience: parents
    text: |
{template}
funnel:
  stages:
    - {{id: carded, label: 包裹卡发出, event: card_sent}}
    - {{id: added, label: 加微, event: friend_added}}
    - {{id: joined, label: 进群, event: group_joined}}
    - {{id: ordered, label: 开单, event: order}}
    - {{id: repurchased, label: 复购, event: order, nth: 2}}
  targets: {{added: 0.15, ordered: 0.10}}
  window: {FUNNEL_WINDOW_DAYS}d
outputs: [outbox]
"""


def store_pragmas(conn: sqlite3.Connection) -> None:
    """What `siyu_cli.store.open_store` sets on every connection, so a floor writes under the same rules."""
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


@contextmanager
def floor_transaction(path: Path, ddl: Iterable[str]) -> Iterator[sqlite3.Connection]:
    """A fresh file under the store's pragmas holding this DDL; the body runs in one BEGIN IMMEDIATE transaction, committed at its end."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        store_pragmas(conn)
        for statement in ddl:
            conn.execute(statement)
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def insert_sql(table: str, columns: Iterable[str]) -> str:
    names = list(columns)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def write_playbook(folder: Path, text: str = PRIVATE_TEMPLATE) -> Path:
    path = folder / "bench.yaml"
    path.write_text(playbook_yaml(text), encoding="utf-8")
    return path


def contact_rows(n: int) -> Iterator[tuple[str, ...]]:
    """n parents (家长); every tenth has bought (已购), which the template branches on."""
    for i in range(n):
        tags = '["家长", "已购"]' if i % 10 == 0 else '["家长"]'
        yield (f"c{i:07d}", f"家长{i:07d}", tags, "EYE100", "precise", "wx_advisor_01", None, "2026-11-20T02:00:00Z", "{}")


def insert_contacts(db_path: Path, n: int) -> None:
    """Straight into the contacts table, as the brief asks: the import path is measured elsewhere."""
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.executemany(insert_sql("contacts", CONTACT_COLUMNS), contact_rows(n))
    finally:
        conn.close()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_rows(contacts: int, events: int, seed: int = SEED) -> Iterator[tuple[object, ...]]:
    """Exactly `events` events over `contacts` contacts, walking the funnel with falling odds.

    Each contact gets a card; some add, join, order and order again (some outside the 30-day
    window, so the window matters); the rest of its share is check-ins and replies.
    """
    rng = random.Random(seed)
    per = events // contacts
    extra = events - per * contacts
    serial = 0
    for i in range(contacts):
        cid = f"c{i:07d}"
        hook = "EYE100" if i % 2 else "EYE200"
        t = BASE + timedelta(seconds=rng.randrange(0, 20 * 86400))
        chain: list[tuple[str, datetime, float | None]] = [("card_sent", t, None)]
        budget = per + (1 if i < extra else 0)
        for kind, odds, gap in (("friend_added", 0.45, 3), ("group_joined", 0.7, 2), ("order", 0.35, 10), ("order", 0.4, 40)):
            if len(chain) >= budget or rng.random() >= odds:
                break
            t = t + timedelta(seconds=rng.randrange(60, gap * 86400))
            chain.append((kind, t, 365.0 if kind == "order" else None))
        while len(chain) < budget:
            moment = BASE + timedelta(seconds=rng.randrange(0, 60 * 86400))
            chain.append(("checkin" if rng.random() < 0.7 else "message_replied", moment, None))
        for kind, moment, amount in chain[:budget]:
            serial += 1
            yield (f"e{serial:08d}", kind, cid, _stamp(moment), hook, None, "g1" if kind == "group_joined" else None, amount)


def funnel_store(out: Path, contacts: int, events: int, seed: int = SEED) -> Path:
    """The funnel's store, generated once per (size, seed) with the real schema, then reused."""
    from siyu_cli.store import open_store

    path = out / f"funnel-{contacts}c-{events}e-s{seed}.db"
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in out.glob(partial.name + "*"):
        leftover.unlink()
    open_store(partial).conn.close()
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            conn.executemany(insert_sql("contacts", CONTACT_COLUMNS), contact_rows(contacts))
            conn.executemany(insert_sql("events", EVENT_COLUMNS), event_rows(contacts, events, seed))
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    partial.rename(path)
    return path


def events_csv(out: Path, rows: int, seed: int = SEED) -> Path:
    """An events CSV in the canonical columns (spec: "Importing contacts and events"), cached."""
    path = out / f"events-{rows}r-s{seed}.csv"
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    contacts = max(rows // 5, 1)
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in event_rows(contacts, rows, seed):
            writer.writerow(["" if value is None else value for value in row])
    partial.rename(path)
    return path
