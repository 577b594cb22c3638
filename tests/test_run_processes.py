"""The runner's promises, proved with real processes on one store.

Many `siyu run --once` at the same moment deliver each draft exactly once; a pass killed with
SIGKILL at any point loses nothing and sends nothing twice (a webhook POST in flight at the kill is
`unknown`, for a person to settle); failures end in a clear error and a ledger a later run can finish;
the service runs a campaign in simulated time and stops on --until or SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from siyu_cli.playbook import read
from tests.conftest_http import Recorded, RecordingServer, Reply
from tests.playbooks_fixtures import (
    MORNING,
    NOON_1V1,
    add_contacts,
    outbox_files,
    parents,
    query,
    run_siyu,
    siyu_cmd,
    siyu_env,
    states,
    write_playbook,
)

NOW = "2026-12-01 12:31"
JSON_HOOK = {"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK", "timeout": "5s"}


class Counting(RecordingServer):
    """Counts complete POSTs per Idempotency-Key (a client killed mid-request sends no complete body)."""

    def keys(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for request in list(self.requests):
            try:
                body = request.json
            except ValueError:
                continue
            found[request.headers["idempotency-key"]] += 1
            assert body["draft_id"] == request.headers["idempotency-key"]
        return found


@pytest.fixture
def server() -> Iterator[Counting]:
    with Counting() as running:
        yield running


def sent_ids(db: Path) -> list[str]:
    return [row[0] for row in query(db, "SELECT draft_id FROM drafts WHERE state = 'sent' ORDER BY draft_id")]


def file_ids(folder: Path) -> Counter[str]:
    """Draft id of every outbox file (the name ends with it), counted."""
    return Counter(path.stem.rsplit("-", 1)[1] for path in outbox_files(folder))


# --- many processes at once ------------------------------------------------------------------------


def test_eight_processes_at_the_same_moment_deliver_each_draft_once(tmp_path: Path, server: Counting) -> None:
    beats = [MORNING, NOON_1V1, {**NOON_1V1, "id": "noon2", "persona": "advisor", "text": "{{ contact.name }}：第二条"}]
    write_playbook(tmp_path, beats=beats, limits={"missed": {"max_late": "6h"}}, outputs=["outbox", JSON_HOOK])
    add_contacts(tmp_path / "siyu.db", parents(300))
    env = siyu_env(SIYU_TEST_HOOK=server.url("/hook"))
    procs = [
        subprocess.Popen(siyu_cmd("run", "--once", "--now", NOW, "--json"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = [(proc.communicate(timeout=120), proc.returncode) for proc in procs]
    for (_, stderr), code in results:
        assert code == 0, stderr
        assert "Traceback" not in stderr
    summaries = [json.loads(stdout) for (stdout, _), _ in results]

    due = 1 + 300 + 300
    db = tmp_path / "siyu.db"
    assert sum(s["sent"] for s in summaries) == due
    assert sum(s["recorded"] for s in summaries) == due
    assert states(db) == {"sent": due}
    assert query(db, "SELECT MAX(attempts), MIN(attempts) FROM drafts") == [(1, 1)]  # no draft claimed twice
    assert query(db, "SELECT output, COUNT(*), COUNT(DISTINCT draft_id) FROM deliveries WHERE state = 'delivered' GROUP BY output") == [
        ("outbox", due, due),
        ("webhook:json", due, due),
    ]
    files = file_ids(tmp_path / "outbox")
    assert len(files) == due and set(files.values()) == {1}
    assert sorted(files) == sent_ids(db)
    keys = server.keys()
    assert sorted(keys) == sent_ids(db) and set(keys.values()) == {1}
    assert query(db, "SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") == [(0,)]


# --- kill -9 ---------------------------------------------------------------------------------------


def _kill_when(proc: subprocess.Popen[Any], folder: Path, files_at_least: int | None, delay: float | None) -> None:
    """SIGKILL once the outbox holds enough files, or after a delay (whichever the test chose)."""
    deadline = time.monotonic() + 60
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        if delay is not None and time.monotonic() - started >= delay:
            break
        if files_at_least is not None:
            day = folder / "2026-12-01"
            if day.exists() and sum(1 for name in os.listdir(day) if name.endswith(".md")) >= files_at_least:
                break
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_at_three_points_loses_nothing_and_sends_nothing_twice(tmp_path: Path, server: Counting) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    write_playbook(tmp_path, beats=[NOON_1V1], days=1, outputs=["outbox", JSON_HOOK])
    total = 1200
    add_contacts(tmp_path / "siyu.db", parents(total))
    db, folder = tmp_path / "siyu.db", tmp_path / "outbox"
    env = siyu_env(SIYU_TEST_HOOK=server.url("/hook"))
    points = [
        ("early", None, rng.uniform(0.3, 1.2)),
        ("mid", rng.randint(150, 450), None),
        ("late", rng.randint(700, 1000), None),
    ]
    for label, files_at_least, delay in points:
        proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", NOW), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _kill_when(proc, folder, files_at_least, delay)
        context = f"seed {seed}, after the {label} kill"
        files, keys = file_ids(folder), server.keys()
        assert set(files.values()) <= {1}, context
        assert set(keys.values()) <= {1}, context
        # Whatever the ledger calls sent has really arrived in both outputs.
        for draft in sent_ids(db):
            assert files[draft] == 1 and keys[draft] == 1, context

    rerun = run_siyu(tmp_path, "run", "--once", "--now", NOW, "--json", env=env)
    # Exit 1 exactly when this pass put a draft in doubt (a webhook post was in flight when the process died).
    doubted = json.loads(rerun.stdout)["unknown"]
    assert rerun.returncode == (1 if doubted else 0) and "Traceback" not in rerun.stderr, rerun.stderr
    counts = states(db)
    assert counts.get("sent", 0) + counts.get("unknown", 0) == total, (seed, counts)
    assert set(counts) <= {"sent", "unknown"}
    files, keys = file_ids(folder), server.keys()
    assert len(files) == total and set(files.values()) == {1}, seed  # every due draft has its file, once
    assert set(keys.values()) <= {1}, seed

    status = json.loads(run_siyu(tmp_path, "status", "--json", env=env).stdout)
    doubt = [row["draft_id"] for row in status["in_doubt"]]
    assert len(doubt) == counts.get("unknown", 0) <= len(points), seed  # at most the one POST in flight per kill
    assert status["locks"] == []
    # What an operator does: check the channel; mark the ones that arrived, resend the others.
    arrived = [d for d in doubt if keys[d] == 1]
    missing = [d for d in doubt if keys[d] == 0]
    if arrived:
        assert run_siyu(tmp_path, "outbox", "done", *arrived, env=env).returncode == 0
    if missing:
        retried = run_siyu(tmp_path, "retry", "--unknown", *missing, "--now", NOW, "--json", env=env)
        assert retried.returncode == 0 and json.loads(retried.stdout)["sent"] == len(missing), retried.stderr
    assert states(db) == {"sent": total}
    keys = server.keys()
    assert len(keys) == total and set(keys.values()) == {1}, seed
    assert json.loads(run_siyu(tmp_path, "status", "--json", env=env).stdout)["in_doubt"] == []


# --- failure modes -------------------------------------------------------------------------------


def test_a_store_locked_by_another_writer_is_a_clear_error(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING])
    add_contacts(tmp_path / "siyu.db", parents(1))
    holder = sqlite3.connect(tmp_path / "siyu.db", timeout=0.1, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31", env=siyu_env(SIYU_BUSY_TIMEOUT_MS="300"))
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert result.returncode == 1
    assert "error: store is locked" in result.stderr and "another process holds a write lock" in result.stderr
    assert "Traceback" not in result.stderr
    assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM drafts") == [(0,)]
    assert outbox_files(tmp_path / "outbox") == []
    again = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31")
    assert again.returncode == 0 and states(tmp_path / "siyu.db") == {"sent": 1}


def test_an_outbox_that_cannot_be_written_fails_the_draft_and_retry_sends_it(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING])
    blocker = tmp_path / "shared"
    blocker.write_text("not a folder", encoding="utf-8")
    result = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31", "--outbox", "shared/outbox")
    assert result.returncode == 1, result.stderr
    assert "failed 1" in result.stderr and "outbox: cannot create the folder" in result.stderr
    assert "Traceback" not in result.stderr
    [(state, reason, error)] = query(tmp_path / "siyu.db", "SELECT state, reason, error FROM drafts")
    assert (state, reason) == ("failed", "delivery") and "Not a directory" in error
    assert query(tmp_path / "siyu.db", "SELECT output, state FROM deliveries") == [("outbox", "failed")]

    blocker.unlink()
    retried = run_siyu(tmp_path, "retry", "--outbox", "shared/outbox", "--now", "2026-12-01 09:00")
    assert retried.returncode == 0, retried.stderr
    assert "sent 1" in retried.stderr
    assert len(outbox_files(tmp_path / "shared" / "outbox")) == 1
    assert states(tmp_path / "siyu.db") == {"sent": 1}


def test_a_webhook_that_never_answers_leaves_the_draft_in_doubt_and_no_pass_resends_it(tmp_path: Path) -> None:
    """The robot may have posted it before the timeout: a person checks instead of siyu sending a second copy."""
    hook = {**JSON_HOOK, "timeout": "1s"}
    write_playbook(tmp_path, beats=[MORNING], outputs=[hook])
    with Counting(default=Reply(hang=True)) as hanging:
        env = siyu_env(SIYU_TEST_HOOK=hanging.url("/hook"))
        result = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31", env=env)
        assert result.returncode == 1
        assert "sent, but no answer within 1s (timeout)" in result.stderr and "in doubt" in result.stderr and "Traceback" not in result.stderr
        [(state, reason, error)] = query(tmp_path / "siyu.db", "SELECT state, reason, error FROM drafts")
        assert (state, reason) == ("unknown", "in_doubt") and "may have arrived" in error
        hanging.default = Reply()
        later = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:40", env=env)
        assert later.returncode == 0 and len(hanging.requests) == 1  # never resent on its own
        assert "in doubt" in run_siyu(tmp_path, "status", env=env).stdout.lower()

        retried = run_siyu(tmp_path, "retry", "--unknown", "--now", "2026-12-01 09:00", "--json", env=env)
        assert retried.returncode == 0 and json.loads(retried.stdout)["sent"] == 1
    assert states(tmp_path / "siyu.db") == {"sent": 1}


def test_a_missing_webhook_variable_stops_before_anything_is_recorded(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[JSON_HOOK])
    result = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31")
    assert result.returncode == 1 and "SIYU_TEST_HOOK is not set" in result.stderr and "Traceback" not in result.stderr


# --- the service ---------------------------------------------------------------------------------

LATE = {"id": "late", "title": "夜读", "at": "23:00", "days": "all", "channel": "group", "text": "夜读时间"}


def test_fast_clock_runs_the_whole_campaign_and_records_every_occurrence(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1, LATE], limits={"quiet_hours": "22:30-08:00"})
    add_contacts(tmp_path / "siyu.db", parents(4))
    result = run_siyu(tmp_path, "run", "playbook.yaml", "--clock", "fast", "--now", "2026-12-01 00:00", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    occurrences = 3 * (1 + 4 + 1)
    assert summary["recorded"] == occurrences and summary["sent"] == occurrences
    assert summary["deferred"] == 3 and summary["skipped"] == {}
    assert states(tmp_path / "siyu.db") == {"sent": occurrences}
    assert len(outbox_files(tmp_path / "outbox")) == occurrences
    # The last night's beat is deferred past the campaign's last day, and still sent in the morning.
    assert query(tmp_path / "siyu.db", "SELECT MAX(due_at) FROM drafts") == [("2026-12-04T00:00:00Z",)]
    assert query(tmp_path / "siyu.db", "SELECT mode, finished_at IS NOT NULL FROM runs") == [("service", 1)]


def test_fast_clock_stops_at_until(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1])
    add_contacts(tmp_path / "siyu.db", parents(2))
    result = run_siyu(tmp_path, "run", "--clock", "fast", "--now", "2026-12-01 00:00", "--until", "2026-12-02 10:00", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sent"] == (1 + 2) + 1  # day 1 all, day 2 the morning share
    assert query(tmp_path / "siyu.db", "SELECT MAX(due_at) FROM drafts") == [("2026-12-02T00:30:00Z",)]


def _utc_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


def test_service_on_the_real_clock_exits_by_itself_at_until(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], start="2030-01-01")
    started = time.monotonic()
    result = run_siyu(tmp_path, "run", "--until", _utc_in(2), timeout=20)
    assert result.returncode == 0, result.stderr
    assert "waiting for --until" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 15
    assert query(tmp_path / "siyu.db", "SELECT mode, finished_at IS NOT NULL FROM runs") == [("service", 1)]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[Any], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in path.read_text("utf-8", errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared: {path.read_text('utf-8', errors='replace')}")


@contextmanager
def _service(tmp_path: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[Any]]:
    """`siyu run ARGS` as a service writing stderr to `log`; the body must stop it (SIGTERM); killed if it did not."""
    with log.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(siyu_cmd("run", *args), cwd=tmp_path, env=siyu_env(), stdout=subprocess.DEVNULL, stderr=sink)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _terminate(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_sigterm_stops_the_service_cleanly_and_a_second_service_is_refused(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], start="2030-01-01")
    log = tmp_path / "service.log"
    with _service(tmp_path, log) as proc:
        _wait_for(log, "next due", proc)
        second = run_siyu(tmp_path, "run", "--clock", "fast", "--now", "2030-01-01 00:00")
        assert second.returncode == 1
        assert "already running" in second.stderr and f"pid {proc.pid}" in second.stderr
        status = json.loads(run_siyu(tmp_path, "status", "--json").stdout)
        assert [(lock["mode"], lock["pid"], lock["alive"]) for lock in status["locks"]] == [("service", proc.pid, True)]
        _terminate(proc)
    text = log.read_text("utf-8")
    assert "received SIGTERM" in text and "Traceback" not in text
    assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") == [(0,)]


def test_the_counting_server_counts_complete_bodies_only(server: Counting) -> None:
    """The counting server itself: keys are read from complete JSON bodies only."""
    server.requests.append(Recorded("POST", "/", {}, {"idempotency-key": "x"}, b'{"draft_id": "x"}'))
    server.requests.append(Recorded("POST", "/", {}, {"idempotency-key": "y"}, b'{"draft'))
    assert server.keys() == Counter({"x": 1})


def test_service_past_the_campaign_waits_for_a_pending_draft_then_exits(tmp_path: Path) -> None:
    """A draft still pending after the campaign's end is waited for (not polled in a busy loop)."""
    write_playbook(tmp_path, beats=[MORNING], start="2020-01-01", days=1)
    add_contacts(tmp_path / "siyu.db", [])
    due = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn = sqlite3.connect(tmp_path / "siyu.db")
    with conn:
        conn.execute(
            "INSERT INTO drafts (draft_id, playbook_id, cohort, beat, occurrence_at, target, day, channel, persona, due_at, content_hash, text, state, created_at) "
            "VALUES ('late0draft01', 'camp', 'default', 'morning', ?, 'group:g1', 1, 'group', 'host', ?, ?, '晚到的草稿', 'pending', ?)",
            (due, due, read(tmp_path / "playbook.yaml").content_hash, due),
        )
    conn.close()
    result = run_siyu(tmp_path, "run", "--until", _utc_in(12), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "campaign over" in result.stderr
    passes = [line for line in result.stderr.splitlines() if " · recorded " in line]
    assert len(passes) <= 4, result.stderr
    assert query(tmp_path / "siyu.db", "SELECT state FROM drafts WHERE draft_id = 'late0draft01'") == [("sent",)]


def test_service_with_reload_picks_up_an_edit_within_five_seconds(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(minutes=1)
    later = {**MORNING, "at": "23:59" if local.strftime("%H:%M") < "23:59" else "00:00", "days": "all"}
    write_playbook(tmp_path, beats=[later], start=local.date().isoformat(), days=2)
    log = tmp_path / "service.log"
    with _service(tmp_path, log, "--reload", "--until", _utc_in(30)) as proc:
        _wait_for(log, "next due", proc)
        now_beat = {"id": "now", "title": "临时通知", "at": local.strftime("%H:%M"), "days": "1", "channel": "group", "text": "临时通知：今晚直播改到8点半"}
        write_playbook(tmp_path, beats=[later, now_beat], start=local.date().isoformat(), days=2)
        # Nothing is due before 23:59: only the file watch (every 5 s) can have woken the service.
        _wait_for(log, "reloaded", proc, seconds=10)
        deadline = time.monotonic() + 5
        while not outbox_files(tmp_path / "outbox") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox_files(tmp_path / "outbox"), log.read_text("utf-8")
        _terminate(proc)
    [path] = outbox_files(tmp_path / "outbox")
    assert "临时通知：今晚直播改到8点半" in path.read_text("utf-8")
    assert "Traceback" not in log.read_text("utf-8")
