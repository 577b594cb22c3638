"""Send tasks through the CLI: drafts sharing an account, beat, time, variant and text go out as one.

An operator sees one outbox file (or one robot post) per task with its recipient list, while the
ledger keeps a row per recipient: a second pass sends nothing, `outbox done TASK` marks every
recipient, and a draft whose text names its contact stays a task of its own.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import add_contacts, invoke, outbox_files, parents, query, write_playbook

MASS = {"id": "close", "title": "结营福利", "at": "12:30", "days": "all", "channel": "private", "audience": "parents", "text": "结营福利今晚24点截止～"}
NAMED = {**MASS, "id": "named", "title": "点名", "at": "13:00", "text": "{{ contact.name }}，结营福利今晚截止～"}
GROUPS = [{"id": f"g{n}", "name": f"阅读营{n}群", "persona": "host"} for n in (1, 2, 3)]
POST = {"id": "morning", "title": "早分享", "at": "08:30", "days": "all", "channel": "group", "text": "早上好，第{{ day }}天"}


@pytest.fixture
def camp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def once(now: str, *extra: str) -> dict[str, Any]:
    return json.loads(invoke("run", "--once", "--now", now, "--json", *extra).stdout)


def test_a_private_beat_that_does_not_name_the_contact_is_one_task_with_a_recipient_csv(camp: Path) -> None:
    write_playbook(camp, beats=[MASS], days=1)
    add_contacts(camp / "siyu.db", parents(30))
    summary = once("2026-12-01 12:31")
    assert (summary["sent"], summary["tasks"]) == (30, 1)
    [task] = outbox_files(camp / "outbox")
    body = task.read_text("utf-8")
    assert "target: \"30 位客户 contacts\"" in body and "recipients: 30" in body and "结营福利今晚24点截止～" in body
    listed = task.with_suffix(".csv")
    assert f"[{listed.name}]({listed.name})" in body
    raw = listed.read_bytes()
    assert raw.startswith("\ufeff".encode())  # Excel opens it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["target_id"] for r in rows] == [f"contact:c{i:04d}" for i in range(30)]
    assert rows[0]["target"] == "家长0 (c0000)"
    # The ledger knows every (draft, recipient), all of one task, and a second pass sends nothing.
    tasks = query(camp / "siyu.db", "SELECT DISTINCT task_id, state FROM drafts")
    assert len(tasks) == 1 and tasks[0][1] == "sent" and tasks[0][0] == task.stem.rsplit("-", 2)[-2] + "-30"
    assert once("2026-12-01 12:40")["sent"] == 0
    assert len(outbox_files(camp / "outbox")) == 1


def test_outbox_done_with_a_task_name_marks_every_recipient(camp: Path) -> None:
    write_playbook(camp, beats=[MASS], days=1)
    add_contacts(camp / "siyu.db", parents(5))
    once("2026-12-01 12:31")
    [(task_id,)] = query(camp / "siyu.db", "SELECT DISTINCT task_id FROM drafts")
    result = invoke("outbox", "done", task_id, "--by", "阿栖")
    assert "5" in result.stdout
    assert query(camp / "siyu.db", "SELECT DISTINCT done_by FROM drafts") == [("阿栖",)]


def test_a_text_that_names_the_contact_is_a_task_per_contact(camp: Path) -> None:
    write_playbook(camp, beats=[NAMED], days=1)
    add_contacts(camp / "siyu.db", [*parents(3), {"contact_id": "c9999", "name": "家长0", "tags": ["家长"]}])
    summary = once("2026-12-01 13:01")
    # Two contacts share a name, so two texts are equal; they still need a person each (the text reads the contact).
    assert (summary["sent"], summary["tasks"]) == (4, 4)
    assert len(outbox_files(camp / "outbox")) == 4
    assert len({row[0] for row in query(camp / "siyu.db", "SELECT task_id FROM drafts")}) == 4


def test_a_group_beat_is_one_task_to_its_groups_listed_in_the_file(camp: Path) -> None:
    write_playbook(camp, beats=[POST], days=1, groups=GROUPS)
    summary = once("2026-12-01 08:31")
    assert (summary["sent"], summary["tasks"]) == (3, 1)
    [task] = outbox_files(camp / "outbox")
    assert "morning-groups-3-" in task.name
    body = task.read_text("utf-8")
    assert "## 发给 recipients (3)" in body
    assert [line.split(" · ")[1] for line in body.split("## 发给 recipients (3)\n")[1].strip().splitlines()] == ["group:g1", "group:g2", "group:g3"]
    assert not task.with_suffix(".csv").exists()  # a short list is in the file itself


def test_a_json_webhook_gets_one_post_per_task_with_its_recipients(camp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest_http import RecordingServer

    with RecordingServer() as server:
        monkeypatch.setenv("SIYU_JSON_HOOK", server.url("/hook"))
        write_playbook(camp, beats=[POST, MASS], days=1, groups=GROUPS, limits={"missed": {"max_late": "6h"}}, outputs=[{"type": "webhook", "format": "json", "url_env": "SIYU_JSON_HOOK"}])
        add_contacts(camp / "siyu.db", parents(4))
        once("2026-12-01 12:31")
        posts = [request.json for request in server.requests]
    assert [(p["beat"], len(p["recipients"])) for p in posts] == [("morning", 3), ("close", 4)]
    assert posts[1]["target"] == "4 位客户 contacts"
    assert [r["target_id"] for r in posts[1]["recipients"]] == [f"contact:c{i:04d}" for i in range(4)]


def test_a_recipient_imported_after_its_task_went_out_gets_a_task_of_its_own(camp: Path) -> None:
    write_playbook(camp, beats=[MASS], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(camp / "siyu.db", parents(3))
    once("2026-12-01 12:31")
    add_contacts(camp / "siyu.db", parents(1, prefix="late"))
    summary = once("2026-12-01 12:45")
    assert (summary["sent"], summary["tasks"]) == (1, 1)
    assert len(outbox_files(camp / "outbox")) == 2
    assert query(camp / "siyu.db", "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM drafts") == [(4, 2)]


def test_kill_9_while_a_mass_task_is_posted_leaves_every_recipient_in_doubt_and_nothing_is_resent(tmp_path: Path) -> None:
    """One task, 3,000 recipients, its robot post in flight when the pass dies: the next pass neither loses nor
    resends any of them; the operator settles the task by its name."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest_http import RecordingServer, Reply
    from tests.playbooks_fixtures import run_siyu, siyu_cmd, siyu_env, states

    hook = {"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK", "timeout": "30s"}
    write_playbook(tmp_path, beats=[MASS], days=1, outputs=["outbox", hook])
    add_contacts(tmp_path / "siyu.db", parents(3000))
    with RecordingServer(default=Reply(hang=True)) as hanging:
        env = siyu_env(SIYU_TEST_HOOK=hanging.url("/hook"))
        proc = subprocess.Popen(siyu_cmd("run", "--once", "--now", "2026-12-01 12:31"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not hanging.requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert len(hanging.requests) == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        hanging.default = Reply()
        again = run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 12:40", "--json", env=env)
        assert again.returncode == 1 and json.loads(again.stdout)["unknown"] == 3000, again.stderr
        assert len(hanging.requests) == 1  # never resent on its own
        assert run_siyu(tmp_path, "run", "--once", "--now", "2026-12-01 12:50", env=env).returncode == 0
        assert len(hanging.requests) == 1
    assert states(tmp_path / "siyu.db") == {"unknown": 3000}
    [task] = outbox_files(tmp_path / "outbox")  # the outbox file was written before the post: recovery found it
    assert len(task.with_suffix(".csv").read_text("utf-8-sig").splitlines()) == 3001
    [(task_id,)] = query(tmp_path / "siyu.db", "SELECT DISTINCT draft_id || '-3000' FROM drafts ORDER BY due_at, draft_id LIMIT 1")
    assert task.stem.endswith(task_id)
    assert run_siyu(tmp_path, "outbox", "done", task_id, env=env).returncode == 0
    assert states(tmp_path / "siyu.db") == {"sent": 3000}


def test_outbox_tasks_lists_each_task_with_its_recipients_counted(camp: Path) -> None:
    write_playbook(camp, beats=[POST, MASS], days=1, groups=GROUPS, limits={"missed": {"max_late": "6h"}})
    add_contacts(camp / "siyu.db", parents(25))
    once("2026-12-01 12:31")
    tasks = json.loads(invoke("outbox", "--tasks", "--json").stdout)
    assert [(t["beat"], t["recipients"], t["sent"], t["done"]) for t in tasks] == [("morning", 3, 3, 0), ("close", 25, 25, 0)]
    invoke("outbox", "done", tasks[1]["task_id"])
    shown = invoke("outbox", "--tasks").stdout
    assert tasks[1]["task_id"] in shown and "send task(s) 任务" in shown
    assert json.loads(invoke("outbox", "--tasks", "--json").stdout)[1]["done"] == 25
    drafts = json.loads(invoke("outbox", "--json", "--limit", "5").stdout)
    assert {d["task_id"] for d in drafts} <= {t["task_id"] for t in tasks}
    assert "--status and --reason list drafts" in invoke("outbox", "--tasks", "--status", "sent", code=2).stderr
