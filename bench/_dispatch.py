"""dispatch: one `siyu run --once` pass that renders, ledgers and writes N private drafts.

Ours: `Runner(...)` plus `run_once(now)` on a fresh store holding N contacts (timed together, as
`siyu run --once` does both). Floor: the same template rendered by plain Jinja for the same N
contexts, plus one executemany of the same N ledger rows into a table defined like the store's
`drafts` (same columns, keys and indexes) in a fresh file opened with the store's pragmas, plus
the same N Markdown files written the way the outbox writes them: a temp file renamed into
place, and one `os.sync()` per batch of 1,000 (the runner's claim batch). Both sides run the
same number of times, in turns.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import pstats
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench._data import CONTACT_COLUMNS, PRIVATE_TEMPLATE, TZ_NAME, contact_rows, floor_transaction, insert_contacts, insert_sql, write_playbook
from bench._harness import Config, Result, Timing, interleaved

NAME = "dispatch"
TARGET = 2.0
SYNC_EVERY = 1_000  # the runner's claim batch: the outbox syncs once per batch
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


class Scratch:
    """A folder of its own under root for each run, made by `fresh` and removed by the next `fresh` or `cleanup`."""

    prefix = "floor-"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work: Path | None = None

    def fresh(self) -> None:
        self.cleanup()
        self.work = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.root))

    def cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


class Pass(Scratch):
    """A fresh store with N contacts and the playbook whose beat has this text, made before the clock starts; then one pass.

    `tasks`, when given, is how many send tasks the pass must report (checked with `sent`, a cheap
    look at the summary; anything costlier is checked outside the clock).
    """

    prefix = "dispatch-"

    def __init__(self, root: Path, n: int, text: str = PRIVATE_TEMPLATE, tasks: int | None = None) -> None:
        super().__init__(root)
        self.n = n
        self.text = text
        self.tasks = tasks

    def setup(self) -> None:
        from siyu_cli.store import open_store

        if self.work is not None:
            self.check()
        self.fresh()
        assert self.work is not None
        open_store(self.work / "siyu.db").conn.close()
        insert_contacts(self.work / "siyu.db", self.n)
        write_playbook(self.work, self.text)

    def __call__(self) -> None:
        from siyu_cli.dispatch import Runner

        assert self.work is not None
        runner = Runner(self.work / "bench.yaml", db_path=str(self.work / "siyu.db"), outbox_dir=self.work / "outbox", environ={})
        try:
            summary = runner.run_once(NOW)
        finally:
            runner.db.conn.close()
        if summary.sent != self.n or (self.tasks is not None and summary.tasks != self.tasks):
            raise RuntimeError(f"dispatch pass sent {summary.sent} of {self.n} in {summary.tasks} tasks (expected {self.tasks}): {summary.to_dict()}")

    def check(self) -> None:
        """What the last pass left, looked at outside the clock (before the next setup, and after the last run)."""


def template_context() -> dict[str, Any]:
    """What the bench playbook gives every template besides the contact: its persona, products, vars and day."""
    persona = {"id": "advisor", "name": "周老师", "role": "学习顾问", "voice": "真诚、不催促", "account": "wx_advisor_01"}
    products = {"trial": {"id": "trial", "name": "7天阅读营", "price": 9.9}, "member": {"id": "member", "name": "年度会员卡", "price": 365}}
    variables = {"camp": "少年阅读训练营", "live_time": "20:00", "gift": "加赠纸质阅读记录本"}
    return {"persona": persona, "products": products, "vars": variables, "day": 1}


def _contexts(n: int) -> list[dict[str, Any]]:
    """What the template sees for each contact, as plain dicts (built before the clock starts)."""
    shared = template_context()
    found = []
    for row in contact_rows(n):
        contact = dict(zip(CONTACT_COLUMNS, row, strict=True))
        contact["tags"] = ["家长", "已购"] if "已购" in row[2] else ["家长"]
        found.append({"contact": contact, **shared})
    return found


def drafts_ddl() -> list[str]:
    """The store's own `drafts` table and indexes, so the floor pays for the same keys."""
    from siyu_cli.store import open_store

    with tempfile.TemporaryDirectory() as folder:
        db = open_store(Path(folder) / "ddl.db")
        try:
            return [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'drafts' AND sql IS NOT NULL ORDER BY type DESC")]
        finally:
            db.conn.close()


DRAFT_COLUMNS = (
    "draft_id", "playbook_id", "cohort", "beat", "occurrence_at", "target", "day", "channel", "persona", "category", "variant",
    "due_at", "content_hash", "text", "state", "reason", "error", "created_at", "finished_at",
)  # fmt: skip


def ledger_rows(contact_ids: Iterable[str], texts: Iterable[str]) -> list[tuple[Any, ...]]:
    """A sent draft's row (DRAFT_COLUMNS) per contact and text, its id hashed from the contact as the ledger's is from its key."""
    found = []
    for cid, text in zip(contact_ids, texts, strict=True):
        did = hashlib.sha1(cid.encode()).hexdigest()[:12]
        found.append(
            (did, "bench-private", "default", "invite", "2026-12-01T12:00:00Z", f"contact:{cid}", 1, "private", "advisor", None, None,
             "2026-12-01T12:00:00Z", "0" * 16, text, "sent", None, None, "2026-12-01T12:05:00Z", "2026-12-01T12:05:00Z")
        )  # fmt: skip
    return found


def insert_drafts(path: Path, ddl: Sequence[str], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """A fresh file with the store's pragmas (open_store's WAL, synchronous NORMAL, foreign keys) and its drafts DDL, one executemany."""
    with floor_transaction(path, ddl) as conn:
        conn.executemany(insert_sql("drafts", columns), rows)


class Timed(Scratch):
    """A floor: called once per run in a fresh folder, keeping the seconds of each of its parts per run."""

    def __init__(self, root: Path, *parts: str) -> None:
        super().__init__(root)
        self.parts: dict[str, list[float]] = {part: [] for part in parts}

    def __call__(self) -> None:
        raise NotImplementedError

    def note(self, *marks: float) -> None:
        """perf_counter marks: the start, then the end of each part in order."""
        for part, began, ended in zip(self.parts, marks[:-1], marks[1:], strict=True):
            self.parts[part].append(ended - began)


class Floor(Timed):
    """Plain Jinja, one executemany and the outbox's own way of writing files: what the pass cannot do with less."""

    def __init__(self, root: Path, n: int) -> None:
        import jinja2

        super().__init__(root, "floor: Jinja render", "floor: sqlite3 executemany", "floor: outbox-style files")
        self.template = jinja2.Environment().from_string(PRIVATE_TEMPLATE)
        self.contexts = _contexts(n)
        self.ddl = drafts_ddl()

    def __call__(self) -> None:
        """Render, ledger, write: each part timed on its own, the whole timed by the caller."""
        started = time.perf_counter()
        texts = [self.template.render(ctx) for ctx in self.contexts]
        rendered = time.perf_counter()
        rows = ledger_rows((ctx["contact"]["contact_id"] for ctx in self.contexts), texts)
        assert self.work is not None
        insert_drafts(self.work / "floor.db", self.ddl, DRAFT_COLUMNS, rows)
        stored = time.perf_counter()
        self.files(rows)
        self.note(started, rendered, stored, time.perf_counter())

    def files(self, rows: list[tuple[Any, ...]]) -> None:
        """The outbox's write: the same Markdown (front matter, title, text), a temp file renamed into place, one sync per batch."""
        assert self.work is not None
        folder = self.work / "outbox" / "2026-12-01"
        os.makedirs(folder)
        for index, row in enumerate(rows, 1):
            target = row[5].replace(":", "-")
            name = f"2000-invite-{target}-{row[0]}.md"
            data = (
                f'---\ntime: "2026-12-01T20:00:00+08:00"\nday: 1\nbeat: "invite"\nbeat_title: "一对一邀约"\nchannel: "private"\n'
                f'persona: "周老师"\naccount: "wx_advisor_01"\ntarget: "{row[5]}"\ntarget_id: "{row[5]}"\ncohort: "default"\n'
                f'category: null\nvariant: null\nplaybook: "bench-private"\nplaybook_title: "基准测试 · 一对一邀约"\ndraft: "{row[0]}"\n---\n\n'
                f"# 12-01 20:00 一对一邀约 → {row[5]}\n\n> 私聊 1v1 · 周老师 (wx_advisor_01) · 第1天 day 1\n\n{row[13]}\n"
            ).encode()
            tmp = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, f"{folder}/{name}")
            if index % SYNC_EVERY == 0:
                os.sync()
        os.sync()


def profile(step: Pass, out: Path, name: str = NAME, hotspots: dict[str, tuple[str, str]] = HOTSPOTS, top: int = 15) -> dict[str, float]:
    """One more pass under cProfile: the top functions by cumulative and by own time go to <name>.prof.txt; the hotspots' cumulative seconds are returned."""
    step.setup()
    profiler = cProfile.Profile()
    try:
        profiler.runcall(step)
    finally:
        step.cleanup()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    (out / f"{name}.prof.txt").write_text(text.getvalue(), encoding="utf-8")
    found: dict[str, float] = {}
    total = 0.0
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total = max(total, ct)
        for label, (suffix, function) in hotspots.items():
            if func == function and filename.endswith(suffix):
                found[label] = found.get(label, 0.0) + ct
    found["total (profiled)"] = total
    return found


def compare(cfg: Config, name: str, floor_name: str, target: float, n: int, make: Callable[[Path], tuple[Pass, Timed]], hotspots: dict[str, tuple[str, str]] = HOTSPOTS, top: int = 15) -> Result:
    """The pass and its floor, each run `cfg.times(3)` times in turns in folders of their own, then one profiled pass: one row."""
    times = cfg.times(3)
    root = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    try:
        step, floor = make(root)
        timed = interleaved({"ours": (step, step.setup), "floor": (floor, floor.fresh)}, times)
        step.check()
        step.cleanup()
        floor.cleanup()
        hot = profile(step, cfg.out, name, hotspots, top)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    parts = {part: Timing.of(found).median for part, found in floor.parts.items()}
    profile_file = str(cfg.out / f"{name}.prof.txt")
    result = Result.timed(
        name, timed["ours"], floor_name, timed["floor"], target, parts=parts,
        info={"drafts": n, "runs": times, "profile": {k: round(v, 3) for k, v in hot.items()}, "profile_file": profile_file},
    )  # fmt: skip
    result.info["floor_parts_runs"] = {part: [round(t, 3) for t in found] for part, found in floor.parts.items()}
    result.info["notes"] = [f"{n:,} drafts, median of {times} each side in turns; profile (cumulative s): " + ", ".join(f"{k} {v:.2f}" for k, v in hot.items())]
    return result


def run(cfg: Config) -> list[Result]:
    n = 1_000 if cfg.quick else 100_000
    return [compare(cfg, NAME, "plain Jinja + executemany + outbox-style writes", TARGET, n, lambda root: (Pass(root, n), Floor(root, n)))]
