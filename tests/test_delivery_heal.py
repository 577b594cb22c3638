"""Failures that heal by themselves: real `siyu run --once` processes against a real robot on 127.0.0.1.

A robot that answers 5xx is tried again by later passes on a backoff the ledger keeps, until
max_late runs out; a permanent error fails at once; a robot failing draft after draft is paused
for the rest of the pass instead of stalling it; a long message resumes at its first part that
did not arrive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest_http import RecordingServer, Reply
from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, outbox_files, parents, query, run_siyu, siyu_env, write_playbook

HOOK = {"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK", "timeout": "5s"}


def passes(tmp_path: Path, server: RecordingServer, now: str) -> tuple[int, dict[str, Any], str]:
    result = run_siyu(tmp_path, "run", "--once", "--now", now, "--json", env=siyu_env(SIYU_TEST_HOOK=server.url("/hook")))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def ledger(tmp_path: Path) -> list[tuple[Any, ...]]:
    return query(tmp_path / "siyu.db", "SELECT state, reason, due_at, first_due_at, attempts FROM drafts ORDER BY target")


def test_a_robot_answering_500_is_tried_again_by_later_passes_and_the_draft_goes_once(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[HOOK])
    with RecordingServer(default=Reply(500)) as server:
        code, summary, _ = passes(tmp_path, server, "2026-12-01 08:31")
        assert (code, summary["retrying"], summary["failed"], summary["sent"]) == (0, 1, 0, 0)
        assert ledger(tmp_path) == [("pending", "retry", "2026-12-01T00:32:00Z", "2026-12-01T00:30:00Z", 1)]
        passes(tmp_path, server, "2026-12-01 08:31")  # not due again yet
        assert len(server.requests) == 1
        server.default = Reply()
        code, summary, _ = passes(tmp_path, server, "2026-12-01 08:32")
        assert (code, summary["sent"]) == (0, 1)
    assert len(server.requests) == 2
    [(state, reason, *_)] = ledger(tmp_path)
    assert (state, reason) == ("sent", None)


def test_a_robot_down_until_max_late_runs_out_fails_the_draft_with_its_last_error(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[HOOK], limits={"missed": {"max_late": "10m"}})
    with RecordingServer(default=Reply(503)) as server:
        for now in ("2026-12-01 08:31", "2026-12-01 08:32", "2026-12-01 08:34", "2026-12-01 08:38"):  # after 1, 2, 4 minutes
            assert passes(tmp_path, server, now)[0] == 0
        # The next backoff step (8 minutes) would pass 08:40, when max_late runs out: the last try is at 08:40 itself.
        assert ledger(tmp_path)[0][2] == "2026-12-01T00:40:00Z"
        code, summary, stderr = passes(tmp_path, server, "2026-12-01 08:40")
        assert code == 1 and summary["failed"] == 1 and "gave up, max_late ran out" in stderr and "HTTP 503" in stderr
        assert len(server.requests) == 5
        passes(tmp_path, server, "2026-12-01 09:00")
        assert len(server.requests) == 5
    [(state, reason, *_)] = ledger(tmp_path)
    assert (state, reason) == ("failed", "delivery")
    assert "HTTP 503" in query(tmp_path / "siyu.db", "SELECT error FROM drafts")[0][0]


def test_a_permanent_error_fails_at_once_and_is_not_tried_again(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[HOOK])
    with RecordingServer(default=Reply(404)) as server:
        code, summary, stderr = passes(tmp_path, server, "2026-12-01 08:31")
        assert code == 1 and summary["failed"] == 1 and "HTTP 404" in stderr
        passes(tmp_path, server, "2026-12-01 08:45")
        assert len(server.requests) == 1
    assert [row[:2] for row in ledger(tmp_path)] == [("failed", "delivery")]


def test_a_robot_failing_three_drafts_in_a_row_is_paused_for_the_pass_and_the_outbox_still_gets_every_draft(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], outputs=["outbox", HOOK])
    add_contacts(tmp_path / "siyu.db", parents(8))
    with RecordingServer(default=Reply(502)) as server:
        code, summary, _ = passes(tmp_path, server, "2026-12-01 12:31")
        assert code == 0 and summary["paused"] == ["webhook:json"] and summary["retrying"] == 8
        assert len(server.requests) == 3  # then paused: the other five are not tried this pass
        assert len(outbox_files(tmp_path / "outbox")) == 8  # the outbox is not held back by the robot
        assert {row[:2] for row in ledger(tmp_path)} == {("pending", "retry")}
        errors = [e for (e,) in query(tmp_path / "siyu.db", "SELECT error FROM drafts")]
        assert sum("paused for this pass after 3 failures in a row" in e for e in errors) == 5
        server.default = Reply()
        code, summary, _ = passes(tmp_path, server, "2026-12-01 12:33")
        assert (code, summary["sent"]) == (0, 8)
    assert len(server.requests) == 3 + 8
    assert len(outbox_files(tmp_path / "outbox")) == 8  # written once each
    assert {row[0] for row in ledger(tmp_path)} == {"sent"}


def test_a_draft_retried_past_max_late_fails_even_when_no_pass_ran_meanwhile(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[HOOK], limits={"missed": {"max_late": "2h"}})
    with RecordingServer(default=Reply(503)) as server:
        passes(tmp_path, server, "2026-12-01 08:31")
        server.default = Reply()
        code, summary, _ = passes(tmp_path, server, "2026-12-01 12:45")  # 4 h later: max_late ran out meanwhile
        assert code == 1 and summary["failed"] == 1 and summary["sent"] == 0
        assert len(server.requests) == 1


def test_a_long_message_resumes_at_its_first_part_that_did_not_arrive(tmp_path: Path) -> None:
    long_text = "\n".join(f"第{i}条：" + "今天的阅读任务和打卡说明，" * 20 for i in range(60))
    beat = {**MORNING, "text": long_text}
    hook = {"type": "webhook", "format": "wecom", "url_env": "SIYU_TEST_HOOK", "timeout": "5s"}
    write_playbook(tmp_path, beats=[beat], outputs=[hook])
    with RecordingServer() as server:
        server.queue(Reply(), Reply(503))
        code, summary, _ = passes(tmp_path, server, "2026-12-01 08:31")
        assert (code, summary["retrying"]) == (0, 1)
        assert query(tmp_path / "siyu.db", "SELECT output, state, parts FROM deliveries") == [("webhook:wecom", "retry", 1)]
        passes(tmp_path, server, "2026-12-01 08:32")
        heads = [r.json["markdown"]["content"].split("\n", 1)[0] for r in server.requests]
    total = len(heads) - 1  # part 2 was posted twice: the 503, then the retry
    assert heads[0].endswith(f"(1/{total})") and heads[1] == heads[2] and heads[1].endswith(f"(2/{total})")
    assert [h.rsplit("(", 1)[1] for h in heads[2:]] == [f"{n}/{total})" for n in range(2, total + 1)]
    assert [row[:2] for row in ledger(tmp_path)] == [("sent", None)]


def test_two_campaigns_and_back_to_back_passes_never_go_past_a_robots_limit(tmp_path: Path) -> None:
    """The robot answers 45009 past 20 requests in any 60 s; the store's shared limit (18) keeps every process under it."""
    import time
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    due = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(minutes=2)
    beat = {**NOON_1V1, "at": due.strftime("%H:%M"), "days": "1"}
    hook = {"type": "webhook", "format": "wecom", "url_env": "SIYU_TEST_HOOK", "timeout": "5s"}
    store = tmp_path / "shared.db"
    for name in ("a", "b"):
        write_playbook(tmp_path / name, beats=[beat], outputs=[hook], playbook_id=f"camp-{name}", start=due.date().isoformat(), days=1)
    add_contacts(store, parents(15))
    arrivals: list[float] = []
    refused: list[float] = []

    def robot(request: Any) -> Reply:
        now = time.monotonic()
        recent = [t for t in arrivals if t > now - 60]
        arrivals.append(now)
        if len(recent) >= 20:
            refused.append(now)
            return Reply(200, body={"errcode": 45009, "errmsg": "api freq out of limit"})
        return Reply()

    with RecordingServer(responder=robot) as server:
        env = siyu_env(SIYU_TEST_HOOK=server.url("/cgi-bin/webhook/send", key="k"))
        summaries = []
        for name in ("a", "b", "a", "b"):
            result = run_siyu(tmp_path / name, "run", f"{tmp_path / name / 'playbook.yaml'}", "--once", "--db", str(store), "--json", env=env)
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            summaries.append(json.loads(result.stdout))
    assert refused == []
    # Held back by the shared limit is said as such, not as a robot failing.
    assert any(s["held"] == ["webhook:wecom"] for s in summaries) and all(s["paused"] == [] for s in summaries)
    reasons = {error for (error,) in query(store, "SELECT error FROM drafts WHERE reason = 'retry'")}
    assert not any("failures in a row" in reason for reason in reasons)
    assert len(arrivals) == 18  # 30 drafts: 18 sent in this minute, the rest wait for a slot
    rows = query(store, "SELECT state, reason FROM drafts")
    assert set(rows) == {("pending", "retry"), ("pending", None), ("sent", None)} or set(rows) == {("pending", "retry"), ("sent", None)}
    assert rows.count(("sent", None)) == 18
    waits = query(store, "SELECT MIN(due_at) FROM drafts WHERE reason = 'retry'")[0][0]
    assert waits > datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")  # held back: tried again when a slot frees
    assert "held back, the robot's limit (18 in 60s, shared by every process) is reached" in query(store, "SELECT error FROM drafts WHERE reason = 'retry'")[0][0]


def test_a_robot_url_with_a_bad_port_or_host_is_a_clear_error(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[HOOK])
    for url in ("http://127.0.0.1:99999/x", "http://[::1/x"):
        result = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 08:31", env=siyu_env(SIYU_TEST_HOOK=url))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "SIYU_TEST_HOOK does not hold a valid URL" in result.stderr


def test_a_fast_rehearsals_robot_limit_runs_on_the_rehearsals_clock(tmp_path: Path) -> None:
    """25 group posts at 09:00 to a WeCom robot: 18 go in the first simulated minute, the rest a minute later, none late."""
    groups = [{"id": f"g{n}", "name": f"阅读营{n}群", "persona": "host"} for n in range(1, 26)]
    beat = {**MORNING, "text": "早上好，{{ group.name }}"}
    robot = {"type": "webhook", "format": "wecom", "url_env": "SIYU_TEST_HOOK", "timeout": "5s"}
    write_playbook(tmp_path, beats=[beat], outputs=[robot], groups=groups, days=1)
    with RecordingServer() as server:
        env = siyu_env(SIYU_TEST_HOOK=server.url("/cgi-bin/webhook/send", key="k"))
        result = run_siyu(tmp_path, "run", "--clock", "fast", "--json", env=env)
        assert "Traceback" not in result.stderr, result.stderr
        sent = len(server.requests)
    summary = json.loads(result.stdout)
    assert (summary["failed"], summary["sent"], sent) == (0, 25, 25), summary
    assert query(tmp_path / "siyu.db", "SELECT state, COUNT(*) FROM drafts GROUP BY state") == [("sent", 25)]
