"""funnel: the `report funnel` core against the same aggregation as one raw SQL query.

Both read the same store file (generated once per size and seed, then cached). The raw query is
what a careful analyst would write by hand: one CTE per stage, MIN(at) for a first event,
ROW_NUMBER() for an nth, every stage bounded by the window counted from entering the funnel.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._data import FUNNEL_STAGES, FUNNEL_WINDOW_DAYS, funnel_store, write_playbook
from bench._harness import Config, Result, best_of, skipped

NAME = "funnel"
FLOOR = "one raw SQL query (sqlite3)"
TARGET = 1.5


def raw_sql(stages: tuple[tuple[str, str, int], ...] = FUNNEL_STAGES, window_days: int = FUNNEL_WINDOW_DAYS) -> str:
    """The funnel as one query: each stage's time is found among events at or after the previous stage's."""
    first_id, first_event, _ = stages[0]
    ctes = [
        f"s0 AS (SELECT contact_id, MIN(at) AS t, strftime('%Y-%m-%dT%H:%M:%SZ', MIN(at), '+{window_days} days') AS lim "
        f"FROM events WHERE type = '{first_event}' GROUP BY contact_id)"
    ]
    for k, (_sid, event, nth) in enumerate(stages[1:], start=1):
        join = f"FROM s{k - 1} p JOIN events e ON e.contact_id = p.contact_id AND e.type = '{event}' AND e.at >= p.t AND e.at <= p.lim"
        if nth == 1:
            ctes.append(f"s{k} AS (SELECT p.contact_id, p.lim, MIN(e.at) AS t {join} GROUP BY p.contact_id)")
        else:
            ctes.append(
                f"s{k} AS (SELECT contact_id, lim, t FROM (SELECT p.contact_id, p.lim, e.at AS t, "
                f"ROW_NUMBER() OVER (PARTITION BY p.contact_id ORDER BY e.at) AS k {join}) WHERE k = {nth})"
            )
    counts = ", ".join(f"(SELECT COUNT(*) FROM s{k})" for k in range(len(stages)))
    return f"WITH {', '.join(ctes)} SELECT {counts}"


def floor_counts(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = conn.execute(raw_sql()).fetchone()
    finally:
        conn.close()
    return {sid: int(count) for (sid, _, _), count in zip(FUNNEL_STAGES, row, strict=True)}


def _walk(value: Any) -> Iterator[Any]:
    """Every mapping and object inside a report, whatever shape the report module chose."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):
        value = value.model_dump()
    elif hasattr(value, "to_dict"):
        value = value.to_dict()
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)


def report_counts(report: Any) -> dict[str, int]:
    """Stage id → contacts reached, if the report says so in a recognisable way."""
    found: dict[str, int] = {}
    for node in _walk(report):
        if not isinstance(node, dict):
            continue
        sid = node.get("id") or node.get("stage")
        if sid in dict((s, 1) for s, _, _ in FUNNEL_STAGES):
            for key in ("count", "reached", "contacts", "n", "entered"):
                if isinstance(node.get(key), int):
                    found.setdefault(str(sid), node[key])
                    break
    return found


def run(cfg: Config) -> list[Result]:
    contacts, events = (10_000, 50_000) if cfg.quick else (1_000_000, 5_000_000)
    db_path = funnel_store(cfg.out, contacts, events)
    n = cfg.times(3)
    holder: dict[str, Any] = {}
    floor_s = best_of(lambda: holder.__setitem__("floor", floor_counts(db_path)), n)
    info: dict[str, Any] = {"contacts": contacts, "events": events, "best_of": n, "floor_counts": holder["floor"]}
    try:
        from siyu_cli.report import funnel
    except ImportError:
        result = skipped(NAME, FLOOR, TARGET, "report not available")
        result.floor_s, result.info = floor_s, info
        return [result]
    from siyu_cli.playbook import read
    from siyu_cli.store import open_store

    playbook = read(write_playbook(cfg.out))

    def ours() -> None:
        db = open_store(db_path, readonly=True)
        try:
            holder["report"] = funnel(db, playbook)
        finally:
            db.conn.close()

    ours_s = best_of(ours, n)
    mine = report_counts(holder["report"])
    agree = None if not mine else all(mine.get(k) == v for k, v in holder["floor"].items() if k in mine)
    info.update(report_counts=mine, counts_agree=agree)
    result = Result(NAME, ours_s, FLOOR, floor_s, TARGET, info=info)
    result.info["notes"] = [f"{contacts:,} contacts, {events:,} events; stage counts {holder['floor']}; report agrees: {agree}"]
    return [result]
