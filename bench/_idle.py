"""idle tick: `siyu run PLAYBOOK --once --now T` when the ledger already holds everything up to T.

This is what cron pays every minute between beats: start Python, load the playbook, open the store,
find nothing to do. Floor: `python -c pass`. Reported as a ratio and in absolute milliseconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench._data import insert_contacts, write_playbook
from bench._dispatch import NOW
from bench._harness import Config, Result, run_quiet, time_commands, venv_python

NAME = "idle tick"


def run(cfg: Config) -> list[Result]:
    from siyu_cli.dispatch import Runner
    from siyu_cli.store import open_store

    contacts = 100 if cfg.quick else 1_000
    n = cfg.times(3 if cfg.quick else 7)
    py = venv_python()
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-idle-"))
    try:
        db_path = work / "siyu.db"
        open_store(db_path).conn.close()
        insert_contacts(db_path, contacts)
        playbook = write_playbook(work)
        runner = Runner(playbook, db_path=str(db_path), outbox_dir=work / "outbox", environ={})
        try:
            filled = runner.run_once(NOW)
        finally:
            runner.db.conn.close()
        later = (NOW.replace(minute=30)).isoformat()
        cmd = [py, "-m", "siyu_cli", "run", str(playbook), "--once", "--now", later, "--db", str(db_path), "--outbox", str(work / "outbox"), "--json"]
        env = {**os.environ, "NO_COLOR": "1"}
        check = run_quiet(cmd, cwd=work, env=env)
        if b'"recorded": 0' not in check.stdout or b'"sent": 0' not in check.stdout:
            raise RuntimeError(f"idle tick was not idle: {check.stdout.decode(errors='replace')}")
        timed = time_commands({"ours": cmd, "bare": [py, "-c", "pass"]}, n, cwd=work, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours, bare = timed["ours"].median, timed["bare"].median
    result = Result.timed(NAME, timed["ours"], "python -c pass", timed["bare"], None, info={"median_of": n, "contacts": contacts, "ledger_drafts": filled.recorded})
    result.info["notes"] = [f"an idle `siyu run --once` costs {ours * 1000:.0f} ms wall ({(ours - bare) * 1000:.0f} ms above bare Python) with {filled.recorded:,} drafts in the ledger"]
    return [result]
