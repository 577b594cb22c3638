"""The claim protocol: claims carry a lease renewed by heartbeats, an expired lease is taken over even
when its process looks alive, and a finish only counts while its run still holds the claim.

Time is injected (`now` in the core, `--now` for passes); the one real-process test holds a pass in
SIGSTOP while a 127.0.0.1 server keeps its POST open, lets a later pass take its drafts over, and
then lets it run on: every message reaches the server once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest_http import RecordingServer, Reply
from tests.playbooks_fixtures import NOON_1V1, add_contacts, outbox_files, parents, query, run_siyu, siyu_cmd, siyu_env, states, write_playbook

T0 = datetime(2026, 12, 1, 4, 31, tzinfo=UTC)  # 12:31 in Shanghai, after the 12:30 beat
LEASE = timedelta(minutes=5)


def db_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A ledger holding three pending drafts due at T0."""
    from siyu_cli.ledger import DRAFT_COLUMNS, Ledger
    from siyu_cli.store import immediate, open_store

    monkeypatch.delenv("SIYU_LEASE_SECONDS", raising=False)
    ledger = Ledger(open_store(tmp_path / "siyu.db"))
    rows = []
    for n in range(3):
        values = {column: None for column in DRAFT_COLUMNS}
        values.update(
            draft_id=f"d{n}", playbook_id="camp", cohort="default", beat="noon", occurrence_at=db_time(T0), target=f"contact:c{n}",
            channel="private", due_at=db_time(T0), content_hash="h", text="hi", state="pending", created_at=db_time(T0),
        )
        rows.append(tuple(values[column] for column in DRAFT_COLUMNS))
    with immediate(ledger.db):
        ledger.insert(rows)
    yield ledger
    ledger.db.conn.close()


def holders(ledger: Any) -> dict[str, tuple[str, str | None, str | None]]:
    rows = ledger.db.execute("SELECT draft_id, state, claimed_by, lease_until FROM drafts ORDER BY draft_id")
    return {draft_id: (state, holder, lease) for draft_id, state, holder, lease in rows}


def another_run(ledger: Any) -> str:
    """A second run, registered by this (live) process: takeover must not depend on a dead pid."""
    return str(ledger.start_run("camp", "once", T0))


def test_a_claim_names_its_run_and_a_lease_and_a_heartbeat_renews_only_its_own(ledger: Any) -> None:
    a, b = another_run(ledger), another_run(ledger)
    assert [row["draft_id"] for row in ledger.claim(a, T0, 2, "camp")] == ["d0", "d1"]
    ledger.claim(b, T0, 1, "camp")
    until = db_time(T0 + LEASE)
    assert holders(ledger) == {"d0": ("claimed", a, until), "d1": ("claimed", a, until), "d2": ("claimed", b, until)}

    assert ledger.renew(a, T0 + timedelta(minutes=3)) == {"d0", "d1"}
    later = db_time(T0 + timedelta(minutes=8))
    assert holders(ledger) == {"d0": ("claimed", a, later), "d1": ("claimed", a, later), "d2": ("claimed", b, until)}
    ledger.heartbeat(b, T0 + timedelta(minutes=4))  # the service's heartbeat job renews too
    assert holders(ledger)["d2"] == ("claimed", b, db_time(T0 + timedelta(minutes=9)))


def test_an_expired_lease_is_taken_over_though_its_process_is_alive(ledger: Any) -> None:
    hung, rescuer = another_run(ledger), another_run(ledger)
    ledger.claim(hung, T0, 3, "camp")
    assert ledger.orphans(T0 + LEASE, "camp") == []  # still within its lease
    found = ledger.orphans(T0 + LEASE + timedelta(seconds=1), "camp")
    assert [row["draft_id"] for row in found] == ["d0", "d1", "d2"]
    assert [row["claimed_by"] for row in ledger.take_over(rescuer, found, T0 + timedelta(minutes=6))] == [hung] * 3
    assert {holder for _, holder, _ in holders(ledger).values()} == {rescuer}
    assert ledger.renew(hung, T0 + timedelta(minutes=6)) == set()  # the hung run learns it holds nothing


def test_a_takeover_is_compare_and_set_a_lease_renewed_meanwhile_stays(ledger: Any) -> None:
    slow, rescuer = another_run(ledger), another_run(ledger)
    ledger.claim(slow, T0, 3, "camp")
    found = ledger.orphans(T0 + timedelta(minutes=6), "camp")
    ledger.renew(slow, T0 + timedelta(minutes=6))  # its heartbeat lands between the look and the takeover
    assert ledger.take_over(rescuer, found, T0 + timedelta(minutes=6)) == []
    assert {holder for _, holder, _ in holders(ledger).values()} == {slow}


def test_a_dead_pid_here_releases_its_claims_at_once(ledger: Any) -> None:
    from siyu_cli.ledger import HOST

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    ledger.db.execute(
        "INSERT INTO runs (run_id, playbook_id, host, pid, mode, started_at, heartbeat_at) VALUES ('dead', 'camp', ?, ?, 'once', ?, ?)",
        [HOST, proc.pid, db_time(T0), db_time(T0)],
    )
    ledger.claim("dead", T0, 1, "camp")
    assert [row["draft_id"] for row in ledger.orphans(T0, "camp")] == ["d0"]  # its lease has not run out


def test_a_run_that_lost_its_claim_sends_nothing_more_and_its_finish_changes_nothing(ledger: Any) -> None:
    from siyu_cli.errors import ClaimLost

    hung, rescuer = another_run(ledger), another_run(ledger)
    ledger.claim(hung, T0, 3, "camp")
    ledger.mark_inflight("d0", "webhook:json", T0, hung)  # d0's POST left before the hang
    later = T0 + timedelta(minutes=6)
    ledger.take_over(rescuer, ledger.orphans(later, "camp"), later)
    ledger.settle([("d0", [("webhook:json", "unknown", None, "in flight")], "unknown", "crash"), ("d1", [], "pending", None)], later, rescuer)

    with pytest.raises(ClaimLost):  # the fence: d2 is not sent by the run that lost it
        ledger.mark_inflight("d2", "webhook:json", later, hung)
    ledger.mark_delivered("d0", "webhook:json", "127.0.0.1", later)  # the hung POST's answer: evidence
    lost = ledger.settle(
        [
            ("d0", [("webhook:json", "delivered", "127.0.0.1", None)], "sent", None),
            ("d1", [("webhook:json", "failed", None, "HTTP 500")], "failed", "delivery"),
            ("d2", [("outbox", "delivered", "outbox/x.md", None)], "sent", None),
        ],
        later,
        hung,
        retry_at={"d1": db_time(later)},
    )
    assert lost == {"d0", "d1", "d2"}
    assert {d: state for d, (state, _, _) in holders(ledger).items()} == {"d0": "unknown", "d1": "pending", "d2": "claimed"}
    assert holders(ledger)["d2"][1] == rescuer
    deliveries = ledger.db.execute("SELECT draft_id, output, state FROM deliveries ORDER BY draft_id, output").fetchall()
    # What arrived is kept, whoever finished; the loser's failure does not overwrite anything.
    assert deliveries == [("d0", "webhook:json", "delivered"), ("d2", "outbox", "delivered")]
    assert ledger.db.execute("SELECT due_at FROM drafts WHERE draft_id = 'd1'").fetchone()[0] == db_time(T0)


def test_a_finish_by_the_holder_counts_and_clears_the_claim(ledger: Any) -> None:
    run = another_run(ledger)
    ledger.claim(run, T0, 1, "camp")
    assert ledger.settle([("d0", [("outbox", "delivered", "outbox/x.md", None)], "sent", None)], T0, run) == set()
    assert holders(ledger)["d0"] == ("sent", None, None)


def test_the_lease_length_comes_from_the_environment_for_tests(ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu_cli.errors import SiyuError

    monkeypatch.setenv("SIYU_LEASE_SECONDS", "30")
    run = another_run(ledger)
    ledger.claim(run, T0, 1, "camp")
    assert holders(ledger)["d0"][2] == db_time(T0 + timedelta(seconds=30))
    monkeypatch.setenv("SIYU_LEASE_SECONDS", "soon")
    with pytest.raises(SiyuError, match="SIYU_LEASE_SECONDS"):
        ledger.claim(run, T0, 1, "camp")


def test_an_existing_ledger_migrates_in_place_and_its_claims_get_a_lease_from_now(tmp_path: Path) -> None:
    import sqlite_utils

    from siyu_cli._time import from_db, utcnow
    from siyu_cli.store import open_store
    from siyu_cli.store._schema import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="m040_claim_leases")
    old.execute(
        "INSERT INTO drafts (draft_id, playbook_id, cohort, beat, occurrence_at, target, channel, due_at, content_hash, state, run_id, created_at) "
        "VALUES ('d0', 'camp', 'default', 'noon', ?, 'contact:c0', 'private', ?, 'h', 'claimed', 'r1', ?)",
        [db_time(T0)] * 3,
    )
    old.conn.commit()
    old.conn.close()
    before = utcnow()
    db = open_store(path)
    try:
        [(holder, lease)] = db.execute("SELECT claimed_by, lease_until FROM drafts").fetchall()
    finally:
        db.conn.close()
    assert holder == "r1"
    assert before + LEASE <= from_db(lease) <= utcnow() + LEASE


# --- a pass that outlives its lease keeps its claims -------------------------------------------------


def test_a_pass_longer_than_its_lease_renews_it_between_drafts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each draft takes 200 s on the pass's clock; with a 300 s lease a pass that never renewed would
    lose its claims by the third draft. Another pass looking then finds nothing to take over."""
    from siyu_cli.dispatch import Runner, _runner
    from siyu_cli.ledger import Ledger
    from siyu_cli.store import open_store

    monkeypatch.delenv("SIYU_LEASE_SECONDS", raising=False)
    monkeypatch.chdir(tmp_path)
    path = write_playbook(tmp_path, beats=[NOON_1V1], days=1, limits={"missed": {"max_late": "6h"}}, outputs=["outbox"])
    add_contacts(tmp_path / "siyu.db", parents(5))
    elapsed = [0.0]
    monkeypatch.setattr(_runner._time, "monotonic", lambda: elapsed[0])
    watcher = Ledger(open_store(tmp_path / "siyu.db"))
    seen: list[tuple[str, int]] = []

    def slow_console(message: Any) -> None:
        elapsed[0] += 200
        clock = T0 + timedelta(seconds=elapsed[0])
        seen.append((message.draft_id, len(watcher.orphans(clock, "camp"))))

    runner = Runner(path, outbox_dir=tmp_path / "outbox", console=slow_console, extra_outputs=["console"])
    try:
        summary = runner.run_once(T0)
    finally:
        runner.db.conn.close()
        watcher.db.conn.close()
    assert summary.sent == 5 and summary.errors == []
    assert [orphaned for _, orphaned in seen] == [0] * 5
    assert states(tmp_path / "siyu.db") == {"sent": 5}
    assert len(outbox_files(tmp_path / "outbox")) == 5


# --- a hung pass, a pass that takes over, and the hung pass running on ----------------------------


HOOK = {"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK", "timeout": "60s"}


def test_a_stopped_pass_loses_its_claims_to_a_later_pass_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], days=1, limits={"missed": {"max_late": "6h"}}, outputs=["outbox", HOOK])
    add_contacts(tmp_path / "siyu.db", parents(4))
    db = tmp_path / "siyu.db"
    release = threading.Event()
    with RecordingServer() as server:
        server.queue(Reply(wait=release))  # the first POST is held open: its pass is mid-delivery
        env = siyu_env(SIYU_TEST_HOOK=server.url("/hook"))
        hung = subprocess.Popen(
            siyu_cmd("run", "--once", "--now", "2026-12-01 12:31", "--json"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while not server.requests and time.monotonic() < deadline and hung.poll() is None:
                time.sleep(0.01)
            assert server.requests, hung.communicate()[1]
            os.kill(hung.pid, signal.SIGSTOP)
            first = server.requests[0].headers["idempotency-key"]

            # Before its lease runs out the pass is left alone; `siyu status` shows what it holds.
            early = json.loads(run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 12:33", "--json", env=env).stdout)
            assert (early["recovered"], early["sent"]) == (0, 0)
            [lock] = json.loads(run_siyu(tmp_path, "status", "--json", "--now", "2026-12-01T04:42:00Z").stdout)["locks"]
            assert (lock["alive"], lock["claims"], lock["lease_expired"]) == (True, 4, True)
            assert "lease expired (hung or paused?)" in run_siyu(tmp_path, "status", "--now", "2026-12-01T04:42:00Z").stdout

            # Ten minutes on, its pid alive but stopped: the next pass takes its drafts over.
            later = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 12:41", "--json", env=env)
            assert later.returncode == 1, later.stderr  # a draft put in doubt: cron mails it
            summary = json.loads(later.stdout)
            assert (summary["recovered"], summary["unknown"], summary["sent"]) == (4, 1, 3)
            assert dict(query(db, "SELECT draft_id, state FROM drafts"))[first] == "unknown"
            assert states(db) == {"unknown": 1, "sent": 3}
        finally:
            release.set()
            os.kill(hung.pid, signal.SIGCONT)
        stdout, stderr = hung.communicate(timeout=60)
        assert "Traceback" not in stderr

        # The stopped pass ran on: its POST was answered, and its finish counted for nothing.
        resumed = json.loads(stdout)
        assert (resumed["sent"], resumed["failed"], resumed["unknown"]) == (0, 0, 0)
        assert any("claim lost on 4 draft(s)" in error and "another run took them over" in error for error in resumed["errors"])
        keys = Counter(request.headers["idempotency-key"] for request in server.requests)
        assert len(keys) == 4 and set(keys.values()) == {1}  # every message reached the robot exactly once
        assert states(db) == {"unknown": 1, "sent": 3}
        assert len(outbox_files(tmp_path / "outbox")) == 4
        report = json.loads(run_siyu(tmp_path, "status", "--json").stdout)
        assert [row["draft_id"] for row in report["in_doubt"]] == [first] and report["locks"] == []
        # Its answer was kept as evidence, so settling the draft in doubt does not send it again.
        assert query(db, "SELECT state FROM deliveries WHERE draft_id = ? AND output = 'webhook:json'", [first]) == [("delivered",)]
        assert json.loads(run_siyu(tmp_path, "retry", "--unknown", "--json", env=env).stdout)["sent"] == 1
        assert len(server.requests) == 4
    assert states(db) == {"sent": 4}

