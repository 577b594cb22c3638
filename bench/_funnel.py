"""funnel: the `report funnel` core against one sorted scan of the very events it reads.

The floor is the funnel's own SELECT (`funnel_query`: same columns, same WHERE, same ORDER BY),
fetched into Python in the same chunks and thrown away: what any funnel over these events has to
pay before it counts anything. The funnel pauses the cyclic collector for its pass
(`siyu_cli._bulk.bulk`); the floor is timed with it running, as any plain fetch is, which costs
the floor about 40 ms (3%) of collections over the fetched rows at full size. The playbook is the
spec's example funnel with `joined` optional and `ordered` held against `added` ({rate, of}), so
the optional-stage path is the one measured.

Correctness: on the quick data the report's counts and medians are checked against `reference`,
a plain per-contact reading of the spec; on the full data the counts against `raw_sql`, the same
rules as one SQL query with a CTE per stage.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from bench._data import FUNNEL_STAGES, FUNNEL_WINDOW_DAYS, funnel_store, playbook_yaml
from bench._harness import Config, Result, interleaved, skipped

NAME = "funnel"
FLOOR = "one sorted scan of the same SELECT (sqlite3 fetchmany, no walk)"
TARGET = 1.3
OPTIONAL = frozenset({"joined"})
# (id, event, nth, optional): the bench data's stages with `joined` optional.
STAGES: tuple[tuple[str, str, int, bool], ...] = tuple((sid, event, nth, sid in OPTIONAL) for sid, event, nth in FUNNEL_STAGES)
Stages = Sequence[tuple[str, str, int]] | Sequence[tuple[str, str, int, bool]]


def _optional(stage: tuple[Any, ...]) -> bool:
    return bool(stage[3]) if len(stage) > 3 else False


def _bases(stages: Stages) -> list[int]:
    """For each stage, the index of the last required stage before it."""
    bases, last = [], 0
    for k, stage in enumerate(stages):
        bases.append(last)
        if not _optional(stage):
            last = k
    return bases


def write_playbook(folder: Path) -> Path:
    """The shared bench playbook with `joined` optional and `ordered: {rate: 0.10, of: added}`."""
    data = yaml.safe_load(playbook_yaml())
    for stage in data["funnel"]["stages"]:
        if stage["id"] in OPTIONAL:
            stage["optional"] = True
    data["funnel"]["targets"]["ordered"] = {"rate": 0.10, "of": "added"}
    path = folder / "bench-funnel.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def raw_sql(stages: Stages = STAGES, window_days: int = FUNNEL_WINDOW_DAYS) -> str:
    """The funnel as one query: each stage's time is found among events at or after its base stage's.

    A stage's base is the last required stage before it, so an optional stage is counted but never
    moves the clock. MIN(at) finds a first event, ROW_NUMBER() an nth; `lim` is the window's end.
    """
    first_event = stages[0][1]
    bases = _bases(stages)
    ctes = [
        f"s0 AS (SELECT contact_id, MIN(at) AS t, strftime('%Y-%m-%dT%H:%M:%SZ', MIN(at), '+{window_days} days') AS lim "
        f"FROM events WHERE type = '{first_event}' GROUP BY contact_id)"
    ]
    for k, stage in enumerate(stages[1:], start=1):
        event, nth = stage[1], stage[2]
        join = f"FROM s{bases[k]} p JOIN events e ON e.contact_id = p.contact_id AND e.type = '{event}' AND e.at >= p.t AND e.at <= p.lim"
        if nth == 1:
            ctes.append(f"s{k} AS (SELECT p.contact_id, p.lim, MIN(e.at) AS t {join} GROUP BY p.contact_id)")
        else:
            ctes.append(
                f"s{k} AS (SELECT contact_id, lim, t FROM (SELECT p.contact_id, p.lim, e.at AS t, "
                f"ROW_NUMBER() OVER (PARTITION BY p.contact_id ORDER BY e.at) AS k {join}) WHERE k = {nth})"
            )
    counts = ", ".join(f"(SELECT COUNT(*) FROM s{k})" for k in range(len(stages)))
    return f"WITH {', '.join(ctes)} SELECT {counts}"


def reference(conn: sqlite3.Connection, stages: Stages, window_seconds: int | None) -> tuple[list[int], list[float | None]]:
    """Counts and median seconds per stage, read off the spec contact by contact with nothing clever.

    A contact enters at its first event of the first stage; each later stage is its nth event of
    that type at or after the time of the last required stage reached and no later than the window
    after entering; a missed optional stage is skipped, a missed required stage ends the walk.
    """
    counts = [0] * len(stages)
    waits: list[list[int]] = [[] for _ in stages]
    rows = conn.execute("SELECT contact_id, type, CAST(strftime('%s', at) AS INTEGER) FROM events ORDER BY contact_id, at, id")
    for _cid, group in groupby(rows, itemgetter(0)):
        events = [(kind, t) for _, kind, t in group]
        entry = next((t for kind, t in events if kind == stages[0][1]), None)
        if entry is None:
            continue
        limit = entry + window_seconds if window_seconds is not None else None
        counts[0] += 1
        clock = entry
        for k, stage in enumerate(stages[1:], start=1):
            matches = [t for kind, t in events if kind == stage[1] and t >= clock and (limit is None or t <= limit)]
            if len(matches) < stage[2]:
                if _optional(stage):
                    continue
                break
            hit = matches[stage[2] - 1]
            counts[k] += 1
            waits[k].append(hit - clock)
            if not _optional(stage):
                clock = hit
    return counts, [_median(w) if k else None for k, w in enumerate(waits)]


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def scan(db_path: Path, spec: Any) -> int:
    """The floor: the funnel's SELECT, fetched in the funnel's chunks; returns the rows seen."""
    from siyu_cli.report._funnel import CHUNK, funnel_query

    sql, params = funnel_query(spec)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cursor = conn.execute(sql, params)
        seen = 0
        while rows := cursor.fetchmany(CHUNK):
            seen += len(rows)
        return seen
    finally:
        conn.close()


def run(cfg: Config) -> list[Result]:
    contacts, events = (10_000, 50_000) if cfg.quick else (1_000_000, 5_000_000)
    db_path = funnel_store(cfg.out, contacts, events)
    n = cfg.times(3)
    info: dict[str, Any] = {"contacts": contacts, "events": events, "median_of": n, "optional": sorted(OPTIONAL)}
    try:
        from siyu_cli.report import funnel
    except ImportError:
        result = skipped(NAME, FLOOR, TARGET, "report not available")
        return [result]
    from siyu_cli.playbook import read
    from siyu_cli.store import open_store

    playbook = read(write_playbook(cfg.out))
    spec = playbook.model.funnel
    holder: dict[str, Any] = {}

    def ours() -> None:
        db = open_store(db_path, readonly=True)
        try:
            holder["report"] = funnel(db, playbook)
        finally:
            db.conn.close()

    times = interleaved({"floor": (lambda: holder.__setitem__("rows", scan(db_path, spec)), None), "ours": (ours, None)}, n)
    report = holder["report"]
    mine = {s.id: s.count for s in report.stages}
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        if cfg.quick:
            counts, medians = reference(conn, STAGES, FUNNEL_WINDOW_DAYS * 86400)
            expected = dict(zip(mine, counts, strict=True))
            agree = expected == mine and medians == [s.median_seconds for s in report.stages]
            checked = "a Python reference (counts and medians)"
        else:
            expected = dict(zip(mine, conn.execute(raw_sql()).fetchone(), strict=True))
            agree = expected == mine
            checked = "the raw SQL query (counts)"
    finally:
        conn.close()
    info.update(rows_scanned=holder["rows"], report_counts=mine, expected_counts=expected, counts_agree=agree, checked_against=checked)
    result = Result.timed(NAME, times["ours"], FLOOR, times["floor"], TARGET, info=info)
    result.info["notes"] = [
        f"{contacts:,} contacts, {events:,} events ({holder['rows']:,} of the stage types); joined optional; "
        f"stage counts {mine}; agrees with {checked}: {agree}"
    ]
    return [result]
