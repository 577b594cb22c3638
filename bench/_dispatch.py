"""dispatch: one `siyu run --once` pass that renders, ledgers and writes N private drafts.

Ours: `Runner(...)` plus `run_once(now)` on a fresh store holding N contacts (timed together, as
`siyu run --once` does both). Floor: the same template rendered by plain Jinja for the same N
contexts, plus one executemany of the same N ledger rows into a table defined like the store's
`drafts` (same columns, keys and indexes) in a fresh file, plus the same N files written plainly.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import pstats
import shutil
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench._data import CONTACT_COLUMNS, PRIVATE_TEMPLATE, TZ_NAME, contact_rows, insert_contacts, write_playbook
from bench._harness import Config, Result, best_of

NAME = "dispatch"
TARGET = 2.0
NOW = datetime(2026, 12, 1, 20, 5, tzinfo=ZoneInfo(TZ_NAME))
# Functions whose cumulative time explains where a pass goes (matched on "file:function").
HOTSPOTS = {
    "plan (expand, render, record)": ("_runner.py", "plan"),
    "render (Planner.render)": ("_drafts.py", "render"),
    "ledger insert": ("_ledger.py", "insert"),
    "deliver_due (claim, write, settle)": ("_runner.py", "deliver_due"),
    "ledger claim": ("_ledger.py", "claim"),
    "ledger settle": ("_ledger.py", "settle"),
    "ledger deliveries (per draft)": ("_ledger.py", "deliveries"),
    "outbox write (atomic, fsync)": ("_outbox.py", "_write_atomic"),
    "os.fsync": ("~", "<built-in method posix.fsync>"),
    "os.open": ("~", "<built-in method posix.open>"),
    "load contacts (plan_inputs)": ("_setup.py", "plan_inputs"),
}


class Pass:
    """A fresh store with N contacts, made before the clock starts; then one pass."""

    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.n = n
        self.work: Path | None = None

    def setup(self) -> None:
        from siyu_cli.store import open_store

        self.cleanup()
        self.work = Path(tempfile.mkdtemp(prefix="dispatch-", dir=self.root))
        open_store(self.work / "siyu.db").conn.close()
        insert_contacts(self.work / "siyu.db", self.n)
        write_playbook(self.work)

    def __call__(self) -> None:
        from siyu_cli.dispatch import Runner

        assert self.work is not None
        runner = Runner(self.work / "bench.yaml", db_path=str(self.work / "siyu.db"), outbox_dir=self.work / "outbox", environ={})
        try:
            summary = runner.run_once(NOW)
        finally:
            runner.db.conn.close()
        if summary.sent != self.n:
            raise RuntimeError(f"dispatch pass sent {summary.sent} of {self.n}: {summary.to_dict()}")

    def cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def _contexts(n: int) -> list[dict[str, Any]]:
    """What the template sees for each contact, as plain dicts (built before the clock starts)."""
    persona = {"id": "advisor", "name": "周老师", "role": "学习顾问", "voice": "真诚、不催促", "account": "wx_advisor_01"}
    products = {"trial": {"id": "trial", "name": "7天阅读营", "price": 9.9}, "member": {"id": "member", "name": "年度会员卡", "price": 365.0}}
    variables = {"camp": "少年阅读训练营", "live_time": "20:00", "gift": "加赠纸质阅读记录本"}
    found = []
    for row in contact_rows(n):
        contact = dict(zip(CONTACT_COLUMNS, row, strict=True))
        contact["tags"] = ["家长", "已购"] if "已购" in row[2] else ["家长"]
        found.append({"contact": contact, "persona": persona, "products": products, "vars": variables, "day": 1})
    return found


def _drafts_ddl() -> list[str]:
    """The store's own `drafts` table and indexes, so the floor pays for the same keys."""
    from siyu_cli.store import open_store

    with tempfile.TemporaryDirectory() as folder:
        db = open_store(Path(folder) / "ddl.db")
        try:
            return [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'drafts' AND sql IS NOT NULL ORDER BY type DESC")]
        finally:
            db.conn.close()


class Floor:
    """Plain Jinja, one executemany and plain file writes: what the pass cannot do with less."""

    def __init__(self, root: Path, n: int) -> None:
        import jinja2

        self.root = root
        self.template = jinja2.Environment().from_string(PRIVATE_TEMPLATE)
        self.contexts = _contexts(n)
        self.ddl = _drafts_ddl()
        self.texts: list[str] = []
        self.work: Path | None = None
        self.rows: list[tuple[Any, ...]] = []

    def render(self) -> None:
        self.texts = [self.template.render(ctx) for ctx in self.contexts]

    def prepare_rows(self) -> None:
        self.rows = []
        for ctx, text in zip(self.contexts, self.texts, strict=True):
            cid = ctx["contact"]["contact_id"]
            did = hashlib.sha1(cid.encode()).hexdigest()[:12]
            self.rows.append(
                (did, "bench-private", "default", "invite", "2026-12-01T12:00:00Z", f"contact:{cid}", 1, "private", "advisor", None, None,
                 "2026-12-01T12:00:00Z", "0" * 16, text, "sent", None, None, "2026-12-01T12:05:00Z", "2026-12-01T12:05:00Z")
            )  # fmt: skip
        self.fresh()

    def fresh(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
        self.work = Path(tempfile.mkdtemp(prefix="floor-", dir=self.root))
        (self.work / "files").mkdir()

    def sql(self) -> None:
        assert self.work is not None
        conn = sqlite3.connect(self.work / "floor.db")
        try:
            for statement in self.ddl:
                conn.execute(statement)
            with conn:
                conn.executemany(
                    "INSERT INTO drafts (draft_id, playbook_id, cohort, beat, occurrence_at, target, day, channel, persona, category, variant, "
                    "due_at, content_hash, text, state, reason, error, created_at, finished_at) VALUES (" + ", ".join("?" * 19) + ")",
                    self.rows,
                )
        finally:
            conn.close()

    def files(self) -> None:
        assert self.work is not None
        folder = self.work / "files"
        for row in self.rows:
            with open(folder / f"2000-invite-{row[5].replace(':', '-')}-{row[0]}.md", "w", encoding="utf-8") as handle:
                handle.write(row[13])

    def cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def profile(step: Pass, out: Path) -> dict[str, float]:
    """One more pass under cProfile: the top 15 by cumulative time go to dispatch.prof.txt."""
    step.setup()
    profiler = cProfile.Profile()
    try:
        profiler.runcall(step)
    finally:
        step.cleanup()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(15)
    stats.sort_stats("tottime").print_stats(15)
    (out / "dispatch.prof.txt").write_text(text.getvalue(), encoding="utf-8")
    found: dict[str, float] = {}
    total = 0.0
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total = max(total, ct)
        for label, (suffix, name) in HOTSPOTS.items():
            if func == name and filename.endswith(suffix):
                found[label] = found.get(label, 0.0) + ct
    found["total (profiled)"] = total
    return found


def run(cfg: Config) -> list[Result]:
    n = 1_000 if cfg.quick else 100_000
    root = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    try:
        step = Pass(root, n)
        ours = best_of(step, cfg.times(3 if cfg.quick else 1), setup=step.setup)
        step.cleanup()
        floor = Floor(root, n)
        render_s = best_of(floor.render, cfg.times(3))
        floor.prepare_rows()
        sql_s = best_of(floor.sql, cfg.times(3), setup=floor.fresh)
        files_s = best_of(floor.files, cfg.times(3), setup=floor.fresh)
        floor.cleanup()
        hot = profile(step, cfg.out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = Result(
        NAME,
        ours,
        "plain Jinja + executemany + plain writes",
        render_s + sql_s + files_s,
        TARGET,
        parts={"floor: Jinja render": render_s, "floor: sqlite3 executemany": sql_s, "floor: open/write files": files_s},
        info={"drafts": n, "profile": {k: round(v, 3) for k, v in hot.items()}, "profile_file": str(cfg.out / "dispatch.prof.txt")},
    )
    result.info["notes"] = [f"{n:,} drafts; profile (cumulative s): " + ", ".join(f"{k} {v:.2f}" for k, v in hot.items())]
    return [result]
