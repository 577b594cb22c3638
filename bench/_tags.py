"""tags: what effective tags (hooks, rules, hand edits) cost a `--once` pass and a report.

Ours is the command on a playbook whose hooks give tags and whose rules tag orders and refunds;
the floor is the same command, on the same store, with the same playbook minus its hooks and
rules: the command as it was before tags followed events. Both read the funnel benchmark's store
(1,000,000 contacts, 5,000,000 events), copied so the pass's ledger writes touch no cache.
The pass's private beat is due at `now` and its audience is evaluated for every contact (it
matches none, so neither side renders or writes drafts: the difference is the derivation).
Passes read effective tags from the store's tag cache, brought up to date from its change log;
the first pass after an edit of the hooks or rules rebuilds it, reported on its own row.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench._data import funnel_store, playbook_yaml
from bench._harness import Config, Result, interleaved

TARGET = 1.2
RULES = """hooks:
  - {id: card-a, kind: package_card, code: EYE100, tags: [包裹卡, 回购卡]}
  - {id: card-b, kind: package_card, code: EYE200, tags: [包裹卡, 返现卡]}
rules:
  - {on: {event: order}, tag: [+已购]}
  - {on: {event: order, nth: 2}, tag: [+复购]}
  - {on: {event: refund}, tag: [+已退款]}
"""


def _playbooks(out: Path) -> tuple[Path, Path]:
    """(without hooks and rules, with them): one private beat due at 20:00 on 2026-12-01 to `复购 and not 家长`."""
    base = playbook_yaml().replace("parents: \"家长\"", "parents: \"家长\"\n  nobody: \"复购 and not 家长\"").replace("audience: parents", "audience: nobody")
    plain = out / "tags-plain.yaml"
    plain.write_text(base, encoding="utf-8")
    ruled = out / "tags-rules.yaml"
    ruled.write_text(base.replace("beats:\n", RULES + "beats:\n", 1), encoding="utf-8")
    return plain, ruled


def run(cfg: Config) -> list[Result]:
    contacts, events = (10_000, 50_000) if cfg.quick else (1_000_000, 5_000_000)
    source = funnel_store(cfg.out, contacts, events)
    store = cfg.out / f"tags-{source.name}"
    shutil.copyfile(source, store)
    plain, ruled = _playbooks(cfg.out)
    n = cfg.times(3)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from siyu_cli.dispatch import Runner
    from siyu_cli.playbook import read
    from siyu_cli.report import funnel
    from siyu_cli.store import open_store

    now = datetime(2026, 12, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    holder: dict[str, Any] = {}

    def once(playbook: Path) -> None:
        runner = Runner(playbook, db_path=str(store), outbox_dir=cfg.out / "tags-outbox")
        try:
            holder[playbook.name] = runner.run_once(now)
        finally:
            runner.db.conn.close()

    def report(playbook: Path) -> None:
        db = open_store(store, readonly=True)
        try:
            holder["report:" + playbook.name] = funnel(db, read(playbook), by="source")
        finally:
            db.conn.close()

    results = []
    for label, fn in (("tags: --once pass", once), ("tags: report funnel --by source", report)):
        fn(plain)  # warm-up: the copied store into the page cache, so neither side pays for the first read
        timed = interleaved({"floor": (lambda fn=fn: fn(plain), None), "ours": (lambda fn=fn: fn(ruled), None)}, n)
        result = Result.timed(label, timed["ours"], "same command, no hooks or rules", timed["floor"], TARGET, info={"contacts": contacts, "events": events, "median_of": n})
        results.append(result)
    # The first pass after an edit to the hooks or rules rebuilds the cache for the new basis.
    import sqlite3
    import time

    def forget() -> None:
        with sqlite3.connect(store) as conn:
            conn.execute("DELETE FROM tag_cache")
            conn.execute("DELETE FROM tag_bases")

    forget()
    started = time.perf_counter()
    once(ruled)
    first_s = time.perf_counter() - started
    results.append(
        Result("tags: first pass after a rule edit", first_s, "same command, no hooks or rules", results[0].floor_s, None, info={"contacts": contacts, "events": events, "runs": 1})
    )
    summary = holder.get(ruled.name)
    results[0].info["notes"] = [f"{contacts:,} contacts, {events:,} events; the pass recorded {summary.recorded if summary else '?'} drafts"]
    store.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    return results
