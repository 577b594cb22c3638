"""`siyu report sop` counts what staff do in send tasks, and the recipients those tasks reached beside them.

A 300-customer mass send is one task for the staff member who confirms it (as in WeCom's 群发记录), so
SOP 执行率 and on time / late per staff member count tasks; the day × beat table counts recipients.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siyu_cli.playbook import read
from siyu_cli.report import sop
from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, invoke, parents, query, write_playbook
from tests.test_funnel import add_drafts, at, opened

MOMENTS = {"id": "moments", "title": "朋友圈", "at": "11:00", "days": "all", "channel": "moments", "persona": "host", "text": "今天的书单"}
MINUTE = 60


def audited(root: Path) -> tuple[str, str]:
    """Issue 12's audit (#8): day 1's group post (2 groups), Moments and mass send (300), all three confirmed late by aqi;
    of the 300, 10 left out, 5 not friends, 3 over the monthly quota."""
    playbook = write_playbook(root, beats=[MORNING, MOMENTS, NOON_1V1])
    sent = {"outcome": "sent", "done_by": "aqi"}
    rows: list[dict[str, Any]] = [
        {"target": f"group:{g}", "beat": "morning", "channel": "group", "task_id": "T-post", **sent, "done_at": at(0, seconds=30 * MINUTE)} for g in ("g1", "g2")
    ]
    rows.append({"target": "moments:host", "beat": "moments", "channel": "moments", "task_id": "T-moment", **sent, "done_at": at(0, hours=3)})
    for i in range(300):
        outcome = "not_sent" if i < 10 else "not_friend" if i < 15 else "quota" if i < 18 else "sent"
        done = {"done_by": "aqi", "done_at": at(0, seconds=20 * MINUTE + i)} if outcome == "sent" else {}
        rows.append({"target": f"contact:c{i}", "task_id": "T-mass", "outcome": outcome, **done})
    add_drafts(root / "siyu.db", rows)
    return str(playbook), str(root / "siyu.db")


def test_three_tasks_confirmed_late_are_three_late_tasks_not_285_late_recipients(tmp_path: Path) -> None:
    playbook, db = audited(tmp_path)
    data = json.loads(invoke("report", "sop", "-p", playbook, "--db", db, "--json").stdout)
    assert data["execution_rate"] == 1.0
    assert data["tasks"] == {
        "tasks": 3, "tasks_done": 3, "rate": 1.0, "on_time": 0, "late": 3, "time_unknown": 0, "on_time_rate": 0.0,
        "recipients": 303, "recipients_reached": 285,
    }  # fmt: skip
    assert data["recipients"] == {"handed_out": 303, "reached": 285, "rate": 285 / 303}
    assert data["staff"] == [
        {"staff": "aqi", "tasks": 3, "tasks_done": 3, "on_time": 0, "late": 3, "time_unknown": 0, "on_time_rate": 0.0, "recipients": 303, "recipients_reached": 285}
    ]
    noon = next(row for row in data["rows"] if row["beat"] == "noon")
    assert (noon["due"], noon["done"], noon["late"], noon["quota"], noon["not_friend"], noon["not_sent"]) == (300, 282, 282, 3, 5, 10)  # still recipients

    text = " ".join(invoke("report", "sop", "-p", playbook, "--db", db).stdout.split())
    assert "SOP 执行率 execution rate: 100.0% of send tasks 任务 · 3 of 3 handed out done: 0 on time · 3 late · 285 of 303 recipients reached (94.0%)" in text  # floored: 94.06%
    assert "by staff member 员工 · send tasks staff tasks done on time late on time % recipients reached aqi 3 3 0 3 0% 285 of 303" in text
    assert "recipients 人次" in text and "The table counts recipients" in text
    assert "time unknown" not in text


def test_a_task_is_on_time_by_its_first_send_and_done_by_any_recipient(tmp_path: Path) -> None:
    pb = read(write_playbook(tmp_path, beats=[MORNING, MOMENTS, NOON_1V1]))
    late, on_time = 11 * MINUTE, 5 * MINUTE
    add_drafts(
        tmp_path / "siyu.db",
        [
            # A: 小王 sent the first recipient 5 minutes after due, the others 40 minutes after: on time.
            {"target": "contact:a1", "task_id": "A", "done_by": "小王", "done_at": at(0, seconds=on_time)},
            *({"target": f"contact:a{i}", "task_id": "A", "done_by": "小王", "done_at": at(0, seconds=40 * MINUTE)} for i in (2, 3)),
            # B: a draft with no task_id is its own task: late.
            {"target": "contact:b1", "done_by": "小王", "done_at": at(0, seconds=late)},
            # C: handed out, nobody sent it.
            *({"target": f"contact:c{i}", "task_id": "C"} for i in (1, 2)),
            # D: read back as published with no time: done, time unknown (neither on time nor late).
            {"target": "moments:host", "beat": "moments", "channel": "moments", "task_id": "D", "outcome": "sent", "done_by": "aqi"},
            # E: two people marked it by hand; it is theirs who went first (小王, on time), once.
            {"target": "contact:e1", "task_id": "E", "done_by": "小李", "done_at": at(0, seconds=20 * MINUTE)},
            {"target": "contact:e2", "task_id": "E", "done_by": "小王", "done_at": at(0, seconds=3 * MINUTE)},
            # Not handed out: skipped and pending drafts make no task.
            {"target": "contact:f1", "task_id": "F", "state": "skipped", "reason": "holdout"},
            {"target": "contact:g1", "state": "pending"},
            # Day 2: one task, on time.
            {"target": "group:g1", "beat": "morning", "day": 2, "channel": "group", "due_at": at(1), "done_by": "小王", "done_at": at(1)},
        ],
    )
    with opened(tmp_path / "siyu.db") as db:
        report = sop(db, pb)
        second = sop(db, pb, day=2)
    tasks = report.tasks
    assert (tasks.tasks, tasks.done, tasks.on_time, tasks.late, tasks.time_unknown) == (6, 5, 3, 1, 1)
    assert (tasks.recipients, tasks.reached) == (10, 8)
    assert report.execution_rate == 5 / 6
    staff = {member.staff: member for member in report.staff}
    assert set(staff) == {"aqi", "小王"}
    wang = staff["小王"]
    assert (wang.tasks, wang.on_time, wang.late, wang.on_time_rate, wang.recipients, wang.reached) == (4, 3, 1, 0.75, 7, 7)
    aqi = staff["aqi"]
    assert (aqi.tasks, aqi.on_time, aqi.late, aqi.time_unknown, aqi.on_time_rate) == (1, 0, 0, 1, None)
    assert (second.tasks.tasks, second.tasks.on_time, [m.staff for m in second.staff]) == (1, 1, ["小王"])

    text = " ".join(invoke("report", "sop", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db")).stdout.split())
    assert "83.3% of send tasks 任务 · 5 of 6 handed out done: 3 on time · 1 late · 1 time unknown · 8 of 10 recipients reached (80.0%)" in text
    assert "staff tasks done on time late time unknown on time % recipients reached aqi 1 1 0 0 1 1 of 1 小王 4 4 3 1 0 75% 7 of 7" in text
    assert "time unknown: read back as sent with no send time" in text


def test_outbox_done_task_is_one_task_done_with_its_recipients_reached(tmp_path: Path) -> None:
    mass = {"id": "close", "title": "结营福利", "at": "12:30", "days": "all", "channel": "private", "audience": "parents", "text": "结营福利今晚24点截止～"}
    named = {**mass, "id": "named", "title": "点名", "at": "12:40", "text": "{{ contact.name }}，结营福利今晚截止～"}
    playbook, db = str(write_playbook(tmp_path, beats=[mass, named], days=1)), tmp_path / "siyu.db"
    add_contacts(db, parents(5))
    invoke("run", playbook, "--db", str(db), "--outbox", str(tmp_path / "outbox"), "--once", "--now", "2026-12-01 12:41")
    [(mass_task,)] = query(db, "SELECT DISTINCT task_id FROM drafts WHERE beat = 'close'")
    [(one,)] = query(db, "SELECT draft_id FROM drafts WHERE beat = 'named' ORDER BY target LIMIT 1")
    invoke("outbox", "done", mass_task, one, "--by", "阿栖", "--db", str(db))
    data = json.loads(invoke("report", "sop", playbook, "--db", str(db), "--json").stdout)
    tasks = data["tasks"]
    # The mass send (5 recipients) is one task; each named draft is a task of its own (5); two were marked done.
    assert (tasks["tasks"], tasks["tasks_done"], tasks["recipients"], tasks["recipients_reached"]) == (6, 2, 10, 6)
    assert tasks["on_time"] + tasks["late"] == 2 and tasks["time_unknown"] == 0  # marked now: on time or late by the wall clock
    [member] = data["staff"]
    assert (member["staff"], member["tasks"], member["recipients"], member["recipients_reached"]) == ("阿栖", 2, 6, 6)
    assert data["recipients"] == {"handed_out": 10, "reached": 6, "rate": 0.6}


def narrow(root: Path, rows: list[dict[str, Any]]) -> str:
    playbook = write_playbook(root, beats=[MORNING, MOMENTS, NOON_1V1])
    add_drafts(root / "siyu.db", rows)
    return invoke("report", "sop", "-p", str(playbook), "--db", str(root / "siyu.db"), columns=80).stdout


def fits(text: str) -> list[str]:
    from rich.cells import cell_len

    lines = text.splitlines()
    assert all(cell_len(line.rstrip()) <= 80 for line in lines), [line for line in lines if cell_len(line.rstrip()) > 80]
    assert "…" not in text
    return lines


# Journey and welcome steps of contacts added before the campaign: 40 days of missed steps before day 1.
BEFORE = [
    {"target": f"contact:p{d}", "beat": "journey:nurture:1" if d % 2 else "welcome:card-a:1", "day": d, "persona": "advisor", "state": "skipped", "reason": "missed"}
    for d in range(-39, 1)
]


def test_at_80_columns_day_and_beat_read_and_days_before_day_1_are_one_row(tmp_path: Path) -> None:
    playbook, db = audited(tmp_path)
    add_drafts(Path(db), BEFORE)
    lines = fits(invoke("report", "sop", "-p", playbook, "--db", db, columns=80).stdout)
    [header] = [line for line in lines if line.startswith("day ")]
    assert header.split() == ["day", "beat", "persona", "due", "sent", "done", "late", "skipped", "quota", "not", "friend", "left", "out"]  # no failed, unknown, pending: all 0
    table = {line.split()[1]: line.split() for line in lines if line[:3].strip() in ("<1", "1")}
    assert table["before"] == ["<1", "before", "day", "1", "advisor", "40", "0", "0", "0", "40", "0", "0", "0"]
    assert table["早分享"][:4] == ["1", "早分享", "host", "2"]
    assert table["午间私聊"] == ["1", "午间私聊", "host", "300", "300", "282", "282", "0", "3", "5", "10"]
    assert sum("before day 1" in line for line in lines) == 1 and "-39" not in " ".join(lines)
    data = json.loads(invoke("report", "sop", "-p", playbook, "--db", db, "--json").stdout)
    assert sorted({row["day"] for row in data["rows"]})[:2] == [-39, -38]  # --json keeps every day


def test_at_80_columns_the_read_back_columns_give_way_before_day_and_beat(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"target": "contact:q1", "task_id": "Q", "outcome": "quota"},
        {"target": "contact:q2", "task_id": "Q", "outcome": "not_friend"},
        {"target": "contact:q3", "task_id": "Q", "outcome": "not_sent"},
        {"target": "contact:q4", "task_id": "Q", "outcome": "sent", "done_by": "aqi", "done_at": at(0)},
        {"target": "contact:x1", "day": 2, "state": "failed", "reason": "template_error"},
        {"target": "contact:x2", "day": 2, "state": "unknown", "reason": "crash"},
        {"target": "contact:x3", "day": 2, "state": "pending"},
        {"target": "contact:x4", "day": 2, "state": "skipped", "reason": "holdout"},
        *({"target": f"contact:m{i}", "day": 3, "state": "sent", "finished_at": at(2, seconds=3600)} for i in range(12000)),
    ]
    lines = fits(narrow(tmp_path, rows))
    [header] = [line for line in lines if line.startswith("day ")]
    assert header.split()[3:] == ["due", "sent", "done", "late", "skipped", "failed", "unknown", "pending"]  # 12,000 is wide
    assert "per row in a wider terminal or with --json: quota, not friend, left out" in lines
    assert "read back from WeCom: refused by the monthly quota 1 · not a friend 1 · left out by staff 1" in " ".join(" ".join(lines).split())
    wide = invoke("report", "sop", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), columns=200).stdout
    assert "quota not friend left out skipped by reason" in " ".join(wide.split()) and "per row in a wider terminal" not in wide


def _heatmap(page: str) -> tuple[dict[tuple[str, str], dict[str, str]], str]:
    """The HTML report's SOP heatmap: (day or 'all', column) → the cell's data-* and title, and the SOP 执行率 line."""
    import html as html_lib
    import re

    table = page[page.index('<table id="sop-heatmap"') :]
    table = table[: table.index("</table>")]
    columns = re.findall(r'<th data-column="([^"]+)">', table)
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for day, body in re.findall(r'<tr (?:data-day="(\d+)"|class="all")><th class="day">\w+</th>(.*?)</tr>', table):
        for column, cell in zip(columns, re.findall(r"<td([^>]*)>", body), strict=True):
            found = {k: html_lib.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', cell)}
            if "data-tasks" in found:
                cells[(day or "all", column)] = found
    rate = page[page.index('<p class="note" id="sop-rate">') :]
    return cells, re.sub(r"<[^>]+>", "", rate[: rate.index("</p>")])


def test_the_html_heatmap_counts_send_tasks_as_report_sop_does(tmp_path: Path) -> None:
    """Day 1: the audit's three tasks (a 300-recipient mass send, 282 reached, confirmed late). Day 2: the mass send not sent,
    a one-recipient draft done, a failed group post, a skipped and a pending draft. Heatmap and `report sop --json` agree."""
    playbook, db = audited(tmp_path)
    day2 = {"day": 2, "due_at": at(1)}
    add_drafts(
        Path(db),
        [
            *({"target": f"contact:c{i}", "task_id": "T-mass-2", **day2} for i in range(50)),
            {"target": "contact:solo", "done_by": "小王", "done_at": at(1, seconds=2 * MINUTE), **day2},
            {"target": "group:g1", "beat": "morning", "channel": "group", "task_id": "T-post-2", "state": "failed", **day2},
            {"target": "contact:x", "state": "skipped", "reason": "holdout", **day2},
            {"target": "contact:y", "beat": "moments", "channel": "moments", "state": "pending", **day2},
        ],
    )
    out = tmp_path / "report.html"
    invoke("report", "html", "-p", playbook, "--db", db, "--out", str(out))
    cells, line = _heatmap(out.read_text(encoding="utf-8"))
    whole = json.loads(invoke("report", "sop", "-p", playbook, "--db", db, "--json").stdout)
    for day in ("1", "2"):
        tasks = json.loads(invoke("report", "sop", "-p", playbook, "--db", db, "--day", day, "--json").stdout)["tasks"]
        shown = [cell for (d, _), cell in cells.items() if d == day]
        assert sum(int(c["data-tasks"]) for c in shown) == tasks["tasks"] and sum(int(c["data-done"]) for c in shown) == tasks["tasks_done"], (day, tasks)
        assert sum(int(c["data-recipients"]) for c in shown) == tasks["recipients"] and sum(int(c["data-reached"]) for c in shown) == tasks["recipients_reached"]
    totals = [cell for (d, _), cell in cells.items() if d == "all"]
    assert (sum(int(c["data-tasks"]) for c in totals), sum(int(c["data-done"]) for c in totals)) == (whole["tasks"]["tasks"], whole["tasks"]["tasks_done"]) == (6, 4)
    assert f"SOP 执行率 {int(whole['execution_rate'] * 100)}%: 4 of 6 send tasks 任务 handed to the front line were sent by a staff member, reaching 286 of their 355 recipients" in line
    # The mass send is one task, done: 100%, not the 94% of its recipients; its recipients are beside it, in its title.
    mass = cells[("1", "noon")]
    assert (mass["data-rate"], mass["data-tasks"], mass["data-recipients"], mass["data-reached"]) == ("1.000", "1", "300", "282")
    assert mass["title"] == "day 1 · 午间私聊: 1 of 1 send tasks done (1 late) · 282 of 300 recipients reached"
    assert mass["style"] == "background:#4ade80", "≥95%: by tasks (by recipients, 94%, it would be the 80–95% colour)"
    noon2 = cells[("2", "noon")]
    assert (noon2["data-rate"], noon2["data-tasks"], noon2["data-done"], noon2["data-recipients"]) == ("0.500", "2", "1", "51")
    assert noon2["title"] == "day 2 · 午间私聊: 1 of 2 send tasks done · 1 of 51 recipients reached · drafts 1 skipped"
    assert cells[("2", "morning")]["title"] == "day 2 · 早分享: 0 of 1 send tasks done · 0 of 1 recipients reached · drafts 1 failed"
    assert cells[("2", "moments")]["class"] == "na" and cells[("2", "moments")]["title"] == "day 2 · 朋友圈: no send task handed out · drafts 1 pending"
    assert cells[("all", "noon")]["data-rate"] == f"{2 / 3:.3f}"
