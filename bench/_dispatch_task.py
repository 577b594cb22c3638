"""dispatch-task: one `siyu run --once` pass whose one private beat is a single mass send to N recipients (issue 12).

The beat's text does not name its contact, so its N drafts share a `send_key`: recorded per
contact, claimed whole, delivered as one task (the outbox writes one Markdown file and, past 20
recipients, a CSV of them beside it) and settled per draft. Ours is timed as the dispatch
benchmark's is: `Runner(...)` plus `run_once(now)` in-process on a fresh store holding N contacts.
Outside the clock each pass is checked: N drafts sent in 1 task, one .md and one CSV of N rows in
the outbox, every draft settled under that task's name.

Floor: the template rendered once by plain Jinja, plus one executemany of the same N ledger rows
(with their slot, send key and task name) into a fresh file with the store's own `drafts` DDL
under its pragmas, inside BEGIN IMMEDIATE. Both sides run the same number of times, in turns.
Peak memory: one more pass of each in a child process of its own (`siyu run --once`, as cron runs
it, and the floor, `python -m bench._dispatch_task N`), each reporting its own high-water RSS as it exits
(bench/_hwm.py, through bench._scale.child).

Beside the floor, not targets: what the ledger contract cannot do without (ContractLeast), and a whole
pass as one straight-line set-based program (StraightLine); see BENCHMARKS.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._data import TASK_TEMPLATE, contact_rows, floor_transaction, insert_contacts, insert_sql, store_pragmas
from bench._dispatch import DRAFT_COLUMNS, HOTSPOTS, NOW, Pass, Timed, compare, drafts_ddl, insert_drafts, ledger_rows, template_context
from bench._harness import ROOT, Config, Result, Timing, interleaved, venv_python
from bench._scale import child

NAME = "dispatch-task"
TARGET = 1.3
TIMEOUT_S = 900.0
# Beyond the dispatch pass's hotspots: what a task of N recipients costs once, and the record step's budget look-ups.
TASK_HOTSPOTS = {
    **HOTSPOTS,
    "record: read the day's budget (Runner._budget)": ("_runner.py", "_budget"),
    "budget: recorded 1v1 drafts read (private_counts)": ("_ledger.py", "private_counts"),
    "budget: due times parsed (from_db)": ("_time.py", "from_db"),
    "budget: note_private": ("_policy.py", "note_private"),
    "claim batch's contacts loaded (Planner.focus)": ("_drafts.py", "focus"),
    "deliver one task (Runner._deliver)": ("_runner.py", "_deliver"),
    "outbox: recipients CSV": ("_outbox.py", "recipients_csv"),
}
SEND_KEY = "0" * 20
TASK_COLUMNS = ("slot", "send_key", "task_id", "attempts", "claimed_at")


class TaskPass(Pass):
    """The dispatch pass on the one-task playbook, its outbox and ledger checked after each run."""

    def __init__(self, root: Path, n: int) -> None:
        super().__init__(root, n, TASK_TEMPLATE, tasks=1)

    def check(self) -> None:
        """1 .md and 1 CSV of N distinct drafts; every draft sent under the one task the file is named for."""
        assert self.work is not None
        files = sorted(path for path in (self.work / "outbox").rglob("*") if path.is_file())
        if [path.suffix for path in files] != [".csv", ".md"]:
            raise RuntimeError(f"dispatch-task: the outbox holds {[path.name for path in files]}, not one .md and its CSV")
        with files[0].open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        drafts = {row[2] for row in rows[1:]}
        if rows[0] != ["target_id", "target", "draft"] or len(rows) - 1 != self.n or len(drafts) != self.n:
            raise RuntimeError(f"dispatch-task: {files[0].name} lists {len(rows) - 1} rows ({len(drafts)} drafts), not {self.n}")
        conn = sqlite3.connect(self.work / "siyu.db")
        try:
            settled = conn.execute("SELECT state, task_id, COUNT(*) FROM drafts GROUP BY state, task_id").fetchall()
        finally:
            conn.close()
        if len(settled) != 1 or settled[0][0] != "sent" or settled[0][2] != self.n or not files[1].name.endswith(f"-{settled[0][1]}.md"):
            raise RuntimeError(f"dispatch-task: the ledger holds {settled}, not {self.n} drafts sent in the task of {files[1].name}")


class TaskFloor(Timed):
    """Render the text once, then one executemany of the N rows the ledger ends with: what the pass cannot do with less."""

    def __init__(self, root: Path, n: int) -> None:
        import jinja2

        super().__init__(root, "floor: Jinja render (once)", "floor: sqlite3 executemany")
        self.template = jinja2.Environment().from_string(TASK_TEMPLATE)
        self.context = template_context()
        self.contacts = [row[0] for row in contact_rows(n)]
        self.ddl = drafts_ddl()

    def __call__(self) -> None:
        started = time.perf_counter()
        text = self.template.render(self.context)
        rendered = time.perf_counter()
        rows = ledger_rows(self.contacts, [text] * len(self.contacts))
        task = f"{min(row[0] for row in rows)}-{len(rows)}"  # the task's name: its first draft and how many it carries
        claimed = rows[0][-1]  # claimed and finished in the same pass
        assert self.work is not None
        insert_drafts(
            self.work / "floor.db", self.ddl, DRAFT_COLUMNS + TASK_COLUMNS,
            ((*row, f"beat\x1fdefault\x1finvite\x1f1\x1f0\x1f{row[5]}", SEND_KEY, task, 1, claimed) for row in rows),
        )  # fmt: skip
        self.note(started, rendered, time.perf_counter())


class ContractLeast(TaskFloor):
    """What the ledger's contract cannot do without, written as plainly as SQL allows: the floor's insert of the rows
    (pending, as a record must leave them), one set-based UPDATE claiming them by send key, one settling them sent.
    `merged`: the rows inserted already claimed, as if recording and claiming were one write, then settled.

    Not a target: the least a pass that keeps a row per (draft, recipient) from its recording on and moves it
    pending → claimed → sent can cost, measured beside the floor so the floor's ratio can be read against it.
    No outbox file, no delivery rows, no contact read: every part a real pass adds is left out.
    """

    def __init__(self, root: Path, n: int, *, merged: bool = False) -> None:
        super().__init__(root, n)
        self.merged = merged
        self.parts = {"least: insert": [], "least: claim by send key": [], "least: settle by send key": []}

    def __call__(self) -> None:
        started = time.perf_counter()
        text = self.template.render(self.context)
        rows = ledger_rows(self.contacts, [text] * len(self.contacts))
        stamp = rows[0][-1]
        state, run, attempts = ("claimed", "run", 1) if self.merged else ("pending", None, 0)
        assert self.work is not None
        with floor_transaction(self.work / "least.db", self.ddl) as conn:
            conn.executemany(
                insert_sql("drafts", (*DRAFT_COLUMNS, *TASK_COLUMNS, "claimed_by")),
                ((*row[:14], state, None, None, row[17], None, f"beat\x1fdefault\x1finvite\x1f1\x1f0\x1f{row[5]}", SEND_KEY, None, attempts, stamp if run else None, run)
                 for row in rows),
            )  # fmt: skip
        inserted = time.perf_counter()
        if not self.merged:
            with floor_transaction(self.work / "least.db", ()) as conn:
                conn.execute(
                    "UPDATE drafts SET state = 'claimed', claimed_by = 'run', lease_until = ?, claimed_at = ?, attempts = attempts + 1 WHERE send_key = ? AND +state = 'pending'",
                    [stamp, stamp, SEND_KEY],
                )
        claimed = time.perf_counter()
        task = f"{min(row[0] for row in rows)}-{len(rows)}"
        with floor_transaction(self.work / "least.db", ()) as conn:
            conn.execute(
                "UPDATE drafts SET state = 'sent', finished_at = ?, task_id = ?, claimed_by = NULL, lease_until = NULL WHERE send_key = ? AND claimed_by = 'run' AND state = 'claimed'",
                [stamp, task, SEND_KEY],
            )
        self.note(started, inserted, claimed, time.perf_counter())


class StraightLine(TaskFloor):
    """The least a whole pass can cost, as one straight-line program with every step set-based: the store's contacts
    read and the audience (家长) picked in Python, each recipient's draft id hashed, the rows written by one
    INSERT … SELECT already claimed (recording and claiming as one write), the recipients' CSV written from one
    SELECT, one UPDATE settling them by send key.

    Not a target, and not a design: no run row, no delivery row, no budget, no outbox .md, no check that a row is
    new. It bounds from below what any pass keeping a row per (draft, recipient) that goes claimed → sent can cost.
    """

    def __init__(self, root: Path, n: int) -> None:
        from siyu_cli.store import open_store

        super().__init__(root, n)
        self.parts = {"line: contacts read, audience": [], "line: INSERT … SELECT claimed": [], "line: recipients CSV": [], "line: settle": []}
        self.store = root / "line-contacts.db"
        open_store(self.store).conn.close()
        insert_contacts(self.store, n)

    def fresh(self) -> None:
        super().fresh()
        assert self.work is not None
        shutil.copy(self.store, self.work / "siyu.db")

    def __call__(self) -> None:
        started = time.perf_counter()
        text = self.template.render(self.context)
        assert self.work is not None
        conn = sqlite3.connect(self.work / "siyu.db", isolation_level=None)
        try:
            store_pragmas(conn)
            wanted = [cid for cid, tags in conn.execute("SELECT contact_id, tags FROM contacts") if "家长" in json.loads(tags)]
            read = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TEMP TABLE audience (draft_id TEXT, contact_id TEXT)")
            conn.executemany("INSERT INTO audience VALUES (?, ?)", ((hashlib.sha1(cid.encode()).hexdigest()[:12], cid) for cid in wanted))
            conn.execute(
                f"INSERT INTO drafts ({', '.join((*DRAFT_COLUMNS, *TASK_COLUMNS, 'claimed_by'))}) SELECT draft_id, 'bench-private', 'default', "
                "'invite', '2026-12-01T12:00:00Z', 'contact:' || contact_id, 1, 'private', 'advisor', NULL, NULL, '2026-12-01T12:00:00Z', ?, ?, "
                "'claimed', NULL, NULL, '2026-12-01T12:05:00Z', NULL, 'beat' || char(31) || 'default' || char(31) || 'invite' || char(31) || '1' "
                "|| char(31) || '0' || char(31) || 'contact:' || contact_id, ?, NULL, 1, '2026-12-01T12:05:00Z', 'run' FROM audience",
                ["0" * 16, text, SEND_KEY],
            )
            conn.execute("COMMIT")
            inserted = time.perf_counter()
            with (self.work / "recipients.csv").open("w", encoding="utf-8-sig", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["target_id", "target", "draft"])
                out.writerows(conn.execute(
                    "SELECT d.target, c.name, d.draft_id FROM drafts d JOIN contacts c ON c.contact_id = substr(d.target, 9) "
                    "WHERE d.send_key = ? ORDER BY d.target", [SEND_KEY],
                ))  # fmt: skip
            listed = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE drafts SET state = 'sent', finished_at = ?, task_id = ?, claimed_by = NULL, lease_until = NULL "
                "WHERE send_key = ? AND claimed_by = 'run' AND state = 'claimed'",
                ["2026-12-01T12:05:00Z", "task", SEND_KEY],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.note(started, read, inserted, listed, time.perf_counter())


def floor_once(n: int) -> None:
    """One floor run in a folder of its own: what the peak-memory child runs."""
    root = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    floor = TaskFloor(root, n)
    try:
        floor.fresh()
        floor()
    finally:
        floor.cleanup()
        root.rmdir()


def peaks(n: int) -> dict[str, float]:
    """Peak RSS of one more pass (a `siyu run --once` child on a fresh store) and of one floor run (a child), in MB."""
    root = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    step = TaskPass(root, n)
    try:
        step.setup()
        assert step.work is not None
        ours = child([venv_python(), "-m", "siyu_cli", "run", "bench.yaml", "--once", "--now", NOW.isoformat(), "--json", "--db", "siyu.db", "--outbox", "outbox"], step.work, TIMEOUT_S)
        if ours.status != "ok" or ours.summary().get("sent") != n or ours.summary().get("tasks") != 1:
            raise RuntimeError(f"dispatch-task: `siyu run --once` child: {ours.brief()} {ours.summary()}")
        step.check()
    finally:
        step.cleanup()
        root.rmdir()
    floor = child([venv_python(), "-m", "bench._dispatch_task", str(n)], ROOT, TIMEOUT_S)
    if floor.status != "ok" or ours.peak_mb is None or floor.peak_mb is None:
        raise RuntimeError(f"dispatch-task: floor child: {floor.brief()}")
    return {"peak_mb": ours.peak_mb, "floor_peak_mb": floor.peak_mb, "child_wall_s": float(ours.wall_s or 0.0)}


def contract_least(cfg: Config, n: int) -> dict[str, Any]:
    """ContractLeast (both ways) and the floor, in turns, as many times as the main comparison: medians and ratios."""
    root = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    try:
        sides = {
            "least": ContractLeast(root, n), "least_merged": ContractLeast(root, n, merged=True), "line": StraightLine(root, n),
            "floor": TaskFloor(root, n),
        }  # fmt: skip
        timed = interleaved({name: (side, side.fresh) for name, side in sides.items()}, cfg.times(3))
        for side in sides.values():
            side.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    floor_s = timed["floor"].median
    found: dict[str, Any] = {"floor_s": floor_s}
    for name in ("least", "least_merged", "line"):
        found[name] = {
            "median_s": timed[name].median, "ratio": timed[name].median / floor_s,
            "parts": {part: Timing.of(times).median for part, times in sides[name].parts.items() if times},
        }  # fmt: skip
    return found


def run(cfg: Config) -> list[Result]:
    n = 1_000 if cfg.quick else 100_000
    result = compare(cfg, NAME, "plain Jinja once + executemany", TARGET, n, lambda root: (TaskPass(root, n), TaskFloor(root, n)), TASK_HOTSPOTS, top=30)
    least = contract_least(cfg, n)
    result.info["contract_least"] = least
    result.info["notes"].append(
        f"the ledger contract's least in plain SQL, nothing else (beside a floor of {least['floor_s']:.2f} s): insert pending + claim + "
        f"settle by send key {least['least']['median_s']:.2f} s ({least['least']['ratio']:.2f}x); inserted claimed + settle "
        f"{least['least_merged']['median_s']:.2f} s ({least['least_merged']['ratio']:.2f}x); a whole pass as one straight-line program "
        f"(contacts read, INSERT … SELECT claimed, CSV, settle) {least['line']['median_s']:.2f} s ({least['line']['ratio']:.2f}x)"
    )
    found = peaks(n)
    result.info.update(found, tasks=1, outbox={"md": 1, "csv_rows": n})
    result.info["notes"].append(
        f"1 task of {n:,} recipients (1 .md + 1 CSV of {n:,} rows, checked after every pass); peak RSS of a `siyu run --once` child "
        f"{found['peak_mb']:.0f} MB, of the floor in a child {found['floor_peak_mb']:.0f} MB"
    )
    return [result]


if __name__ == "__main__":
    import sys

    floor_once(int(sys.argv[1]))
