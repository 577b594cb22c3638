"""The front line's commands: `siyu outbox`, `outbox done`, `status`, `unlock`, `cron`, and drafts in doubt."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app
from tests.conftest_http import RecordingServer
from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, outbox_files, parents, query, write_playbook

LIMITS = {"quiet_hours": "22:30-08:00", "missed": {"max_late": "6h"}, "private_per_account_per_day": 2}
LATE = {"id": "late", "title": "夜读", "at": "23:00", "days": "all", "channel": "group", "text": "夜读时间"}


@pytest.fixture
def camp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1, LATE], limits=LIMITS)
    add_contacts(tmp_path / "siyu.db", parents(3))
    return tmp_path


def siyu(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "250", **(env or {})})
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def listing(*args: str) -> list[dict[str, Any]]:
    return json.loads(siyu("outbox", "--json", *args).stdout)


# --- outbox listing and done ------------------------------------------------------------------


def test_outbox_lists_by_date_and_status(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 12:31")
    siyu("run", "--once", "--now", "2026-12-01 23:05")
    siyu("run", "--once", "--now", "2026-12-02 08:31")
    day1 = listing("--date", "2026-12-01")
    assert [(r["beat"], r["state"], r["reason"]) for r in day1] == [
        ("morning", "sent", None),
        ("noon", "sent", None),
        ("noon", "sent", None),
        ("noon", "skipped", "limit:private_per_account_per_day"),
    ]
    assert day1[0]["due_local"] == "2026-12-01 08:30" and day1[0]["text"] == "早上好，第1天"
    day2 = listing("--date", "2026-12-02")
    assert [(r["beat"], r["due_local"], r["state"], r["reason"]) for r in day2] == [
        ("late", "2026-12-02 08:00", "sent", "quiet_hours:deferred"),
        ("morning", "2026-12-02 08:30", "sent", None),
    ]
    assert [r["beat"] for r in listing("--status", "skipped")] == ["noon"]
    assert len(listing("--status", "todo")) == 5

    table = siyu("outbox", "--date", "2026-12-02").stdout
    assert "2 draft(s)" in table and "quiet_hours:deferred" in table and "2026-12-02 08:00" in table


def test_outbox_refuses_a_bad_status_or_date(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 08:31")
    assert "not a state" in siyu("outbox", "--status", "done", code=2).stderr
    assert "not a date" in siyu("outbox", "--date", "12/01", code=2).stderr


def test_outbox_done_takes_id_prefixes_and_records_who(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 12:31")
    sent = listing("--status", "sent")
    first, second = sent[0]["draft_id"], sent[1]["draft_id"]
    result = siyu("outbox", "done", first[:6], second, "--by", "小丸子")
    assert f"marked 2 draft(s) done: {first}, {second}" in result.stdout
    done = {r["draft_id"]: r["done_by"] for r in listing()}
    assert done[first] == done[second] == "小丸子"
    assert len(listing("--status", "todo")) == len(sent) - 2
    assert query(camp / "siyu.db", "SELECT done_at IS NOT NULL FROM drafts WHERE draft_id = ?", [first]) == [(1,)]


def test_outbox_done_refuses_skipped_drafts_and_unknown_ids(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 12:31")
    [skipped] = listing("--status", "skipped")
    result = siyu("outbox", "done", skipped["draft_id"], code=1)
    assert f"cannot mark {skipped['draft_id']} done: state skipped" in result.stderr
    assert "decided not to be sent" in result.stderr and "Traceback" not in result.stderr
    assert listing("--status", "skipped")[0]["done_by"] is None
    assert "no draft 'zzzz' in the ledger" in siyu("outbox", "done", "zzzz", code=1).stderr
    assert "ambiguous" in siyu("outbox", "done", "", code=1).stderr


# --- status and in-doubt drafts -------------------------------------------------------------------


def test_status_counts_next_due_and_free_lock(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 12:31")
    siyu("run", "--once", "--now", "2026-12-01 23:05")
    report = json.loads(siyu("status", "--json").stdout)
    assert report["campaigns"] == {"camp": {"sent": 3, "skipped": 1, "pending": 1}}
    assert [(r["beat"], r["due_at"]) for r in report["next_due"]] == [("late", "2026-12-02T00:00:00Z")]
    assert report["in_doubt"] == [] and report["locks"] == []
    text = siyu("status").stdout
    assert "camp" in text and "next due" in text and "lock: free" in text


def test_status_without_a_store_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_DB", raising=False)
    result = siyu("status", code=1)
    assert "no such store" in result.stderr and not (tmp_path / "siyu.db").exists()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def add_run(db_path: Path, run_id: str, pid: int, host: str | None = None) -> None:
    from siyu_cli._time import to_db, utcnow
    from siyu_cli.ledger import HOST

    now = to_db(utcnow())
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO runs (run_id, playbook_id, host, pid, mode, started_at, heartbeat_at) VALUES (?, 'camp', ?, ?, 'once', ?, ?)",
            (run_id, host or HOST, pid, now, now),
        )
    conn.close()


def test_unlock_releases_dead_runs_and_keeps_live_ones(camp: Path, sleeper: subprocess.Popen[bytes]) -> None:
    siyu("run", "--once", "--now", "2026-12-01 08:31")
    add_run(camp / "siyu.db", "deadrun", dead_pid())
    add_run(camp / "siyu.db", "liverun", sleeper.pid)
    locks = {lock["run_id"]: lock["alive"] for lock in json.loads(siyu("status", "--json").stdout)["locks"]}
    assert locks == {"deadrun": False, "liverun": True}
    assert "stale (process gone: `siyu unlock`)" in siyu("status").stdout

    result = siyu("unlock")
    assert "released run deadrun" in result.stdout
    assert f"kept run liverun: pid {sleeper.pid}" in result.stdout
    assert [lock["run_id"] for lock in json.loads(siyu("status", "--json").stdout)["locks"]] == ["liverun"]
    assert "nothing to release" not in siyu("unlock").stdout


def test_unlock_force_releases_other_hosts_runs_but_never_a_live_one_here(camp: Path, sleeper: subprocess.Popen[bytes]) -> None:
    siyu("run", "--once", "--now", "2026-12-01 08:31")
    add_run(camp / "siyu.db", "liverun", sleeper.pid)
    add_run(camp / "siyu.db", "remote", 4242, host="another-host")
    assert "nothing to release" not in siyu("unlock").stdout
    assert {lock["run_id"] for lock in json.loads(siyu("status", "--json").stdout)["locks"]} == {"liverun", "remote"}
    result = siyu("unlock", "--force")
    assert "released run remote (pid 4242 on another-host" in result.stdout and "kept run liverun" in result.stdout
    assert [lock["run_id"] for lock in json.loads(siyu("status", "--json").stdout)["locks"]] == ["liverun"]


def test_a_pass_records_its_run_in_real_time_whatever_now_it_pretends(camp: Path) -> None:
    from siyu_cli._time import from_db, utcnow

    siyu("run", "--once", "--now", "2026-12-01 08:31")
    [(started, finished)] = query(camp / "siyu.db", "SELECT started_at, finished_at FROM runs")
    assert abs((utcnow() - from_db(started)).total_seconds()) < 120 and finished is not None


def test_drafts_claimed_by_a_dead_run_are_recovered_by_the_next_pass(camp: Path) -> None:
    """A pass killed after claiming: outbox files it wrote count as sent, the rest go out once."""
    siyu("run", "--once", "--now", "2026-12-01 08:31")
    add_run(camp / "siyu.db", "crashed", dead_pid())
    conn = sqlite3.connect(camp / "siyu.db")
    with conn:
        conn.execute("UPDATE drafts SET state = 'claimed', claimed_by = 'crashed' WHERE beat = 'morning'")
    conn.close()
    [morning] = outbox_files(camp / "outbox")
    written = morning.stat().st_mtime_ns
    summary = json.loads(siyu("run", "--once", "--now", "2026-12-01 12:31", "--json").stdout)
    assert summary["recovered"] == 1 and summary["sent"] == 2
    assert morning.stat().st_mtime_ns == written  # found delivered, not written again
    assert len(outbox_files(camp / "outbox")) == 3
    assert dict(query(camp / "siyu.db", "SELECT beat, state FROM drafts WHERE beat = 'morning'")) == {"morning": "sent"}


def test_a_webhook_in_flight_at_a_crash_is_in_doubt_until_resolved(camp: Path) -> None:
    """Known state after a crash mid-POST: unknown, listed by status, never resent on its own."""
    outputs = ["outbox", {"type": "webhook", "format": "json", "url_env": "HOOK_URL", "timeout": "2s"}]
    path = write_playbook(camp, beats=[MORNING], limits=LIMITS, outputs=outputs)
    with RecordingServer() as server:
        env = {"HOOK_URL": server.url("/hook")}
        draft = crash_mid_post(camp, path, env)

        recovered = siyu("run", "--once", "--now", "2026-12-01 08:40", "--json", env=env, code=1)  # cron mails a draft put in doubt
        summary = json.loads(recovered.stdout)
        assert summary["recovered"] == 1 and summary["unknown"] == 1 and summary["sent"] == 0 and server.requests == []
        assert "may have arrived" in recovered.stderr
        report = json.loads(siyu("status", "--json").stdout)
        assert [row["draft_id"] for row in report["in_doubt"]] == [draft]
        assert "in flight" in report["in_doubt"][0]["error"]
        assert report["locks"] == []  # the pass closed the dead run too
        text = siyu("status").stdout
        assert "1 draft(s) in doubt" in text and f"siyu outbox done {draft}" in text
        # A later pass and a plain retry leave it alone; --unknown sends it once more.
        assert json.loads(siyu("run", "--once", "--now", "2026-12-01 08:45", "--json", env=env).stdout)["sent"] == 0
        assert json.loads(siyu("retry", "--json", env=env).stdout)["sent"] == 0
        assert "add --unknown" in siyu("retry", draft, env=env, code=1).stderr
        assert json.loads(siyu("retry", "--unknown", "--json", env=env).stdout)["sent"] == 1
        assert [r.headers["idempotency-key"] for r in server.requests] == [draft]
    assert json.loads(siyu("status", "--json").stdout)["in_doubt"] == []
    assert query(camp / "siyu.db", "SELECT output, state FROM deliveries WHERE draft_id = ? ORDER BY output", [draft]) == [
        ("outbox", "delivered"),
        ("webhook:json", "delivered"),
    ]


def crash_mid_post(camp: Path, playbook: Path, env: dict[str, str]) -> str:
    """What a pass does up to a webhook POST, by a process that then dies: plan, claim, mark in flight."""
    from siyu_cli.dispatch import PassSummary, Runner
    from tests.playbooks_fixtures import local

    moment = local("2026-12-01 08:31")
    add_run(camp / "siyu.db", "crashed", dead_pid())
    runner = Runner(playbook, outbox_dir=camp / "outbox", environ=env)
    try:
        runner.plan(moment, PassSummary(now=moment))
        [claimed] = runner.ledger.claim("crashed", moment, 10, "camp")
        runner.ledger.mark_inflight(claimed["draft_id"], "webhook:json", moment, "crashed")
        return str(claimed["draft_id"])
    finally:
        runner.db.conn.close()


def test_outbox_done_settles_a_draft_in_doubt(camp: Path) -> None:
    siyu("run", "--once", "--now", "2026-12-01 08:31")
    [row] = listing()
    conn = sqlite3.connect(camp / "siyu.db")
    with conn:
        conn.execute("UPDATE drafts SET state = 'unknown' WHERE draft_id = ?", [row["draft_id"]])
    conn.close()
    siyu("outbox", "done", row["draft_id"][:8], "--by", "ops")
    assert json.loads(siyu("status", "--json").stdout)["in_doubt"] == []
    assert listing()[0]["state"] == "sent"


# --- cron ---------------------------------------------------------------------------------------


def test_cron_prints_a_flock_crontab_line_and_systemd_units(camp: Path) -> None:
    text = siyu("cron", "playbook.yaml", "--every", "5").stdout
    lines = text.splitlines()
    [cron] = [line for line in lines if line.startswith("*/5 * * * *")]
    assert f"cd {camp}" in cron and "flock -n" in cron and "run" in cron and "--once" in cron
    assert str(camp / "playbook.yaml") in cron and f"--db {camp / 'siyu.db'}" in cron
    assert "[Service]" in text and "Type=oneshot" in text and f"WorkingDirectory={camp}" in text
    assert "[Timer]" in text and "OnCalendar=*:0/5" in text and "Persistent=true" in text
    assert "systemctl daemon-reload && systemctl enable --now siyu-playbook.timer" in text


def test_cron_locks_of_two_campaigns_in_different_folders_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locks = []
    for name in ("a", "b"):
        folder = tmp_path / name
        write_playbook(folder, beats=[MORNING])
        monkeypatch.chdir(folder)
        [cron] = [line for line in siyu("cron").stdout.splitlines() if line.startswith("* * * * *")]
        locks.append(cron.split("flock -n -E 0 ", 1)[1].split()[0])
    assert locks[0] != locks[1]
