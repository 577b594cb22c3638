"""`--by touch`: each stage reached, by the channel of the last draft that reached the contact in the 24 h before."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from siyu_cli.cli import app
from siyu_cli.playbook import read
from siyu_cli.report import funnel
from tests.playbooks_fixtures import NOON_1V1, add_contacts, create_store, run_siyu
from tests.test_funnel import T0, add_drafts, add_events, funnel_playbook, opened

STAGES = [
    {"id": "added", "label": "加微", "event": "friend_added"},
    {"id": "joined", "label": "进群", "event": "group_joined", "optional": True},
    {"id": "ordered", "label": "开单", "event": "order"},
]
ORDER = T0 + timedelta(days=2)  # every contact below orders at this moment


def stamp(hours: float = 0, seconds: int = 0) -> str:
    """A UTC stamp `hours` (and seconds) after the order; negative is before it."""
    return (ORDER + timedelta(hours=hours, seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sent(target: str, channel: str, at: str, **extra: Any) -> dict[str, Any]:
    """A draft row as the runner leaves it once sent (finished_at), with what a test adds."""
    return {"target": target, "channel": channel, "state": "sent", "due_at": at, "occurrence_at": at, "finished_at": at, **extra}


# contact → (drafts, what its order is attributed to). Group g1 posts are shared by all.
CASES: dict[str, tuple[list[dict[str, Any]], str]] = {
    "c1": ([sent("contact:c1", "private", stamp(-2))], "private"),
    "c2": ([sent("contact:c2", "private", stamp(-5)), sent("contact:c2", "journey", stamp(-1))], "journey"),  # the latest wins
    "c3": ([], "group"),  # in g1 since before the post at -3h
    "c4": ([], "group"),  # left g1 at -4h: the -3h post missed it, the -6h one reached it
    "c4b": ([], "none"),  # left g1 before either post
    "c5": ([], "live"),  # account wx_host_01: host's live session at -1h
    "c6": ([], "none"),  # account wx_adv_02: host's live is not its account's
    "c7": ([sent("contact:c7", "private", stamp(-24))], "private"),  # exactly 24 h before: counts
    "c8": ([sent("contact:c8", "private", stamp(-24, seconds=-1))], "none"),  # one second more: does not
    "c9": ([sent("contact:c9", "welcome", stamp(-0.5))], "welcome"),
    "c10": ([], "none"),  # only a Moments post by host: not a touch
    "c11": ([sent("contact:c11", "private", stamp(-30), done_at=stamp(-2), done_by="小王")], "private"),  # sent by hand at -2h
    "c12": ([sent("contact:c12", "private", stamp(-2), done_at=stamp(1), done_by="小王")], "none"),  # sent by hand after ordering
    "c13": ([sent("contact:c13", "private", stamp(-1), state="skipped", reason="holdout", finished_at=None)], "none"),
    "c14": ([sent("contact:c14", "private", stamp(1))], "none"),  # after the order
}
SHARED = [
    sent("group:g1", "group", stamp(-6)),
    sent("group:g1", "group", stamp(-3)),
    sent("persona:host", "live", stamp(-1)),
    sent("persona:host", "moments", stamp(-0.2)),
]
MEMBERSHIP = [
    ("c3", "group_joined", stamp(-5), "g1"),
    ("c4", "group_joined", stamp(-10), "g1"), ("c4", "group_left", stamp(-4), "g1"),
    ("c4b", "group_joined", stamp(-10), "g1"), ("c4b", "group_left", stamp(-9), "g1"),
]


def touch_store(db_path: Path) -> None:
    add_contacts(db_path, [{"contact_id": cid, "account": {"c5": "wx_host_01", "c6": "wx_adv_02"}.get(cid)} for cid in CASES])
    add_events(db_path, [(cid, "friend_added", T0.strftime("%Y-%m-%dT%H:%M:%SZ")) for cid in CASES] + [(cid, "order", stamp()) for cid in CASES])
    with sqlite3.connect(db_path) as conn:
        conn.executemany("INSERT INTO events (event_id, contact_id, type, at, group_id) VALUES (?, ?, ?, ?, ?)", [(f"m{i}", *row) for i, row in enumerate(MEMBERSHIP)])
    conn.close()
    drafts = [row for rows, _ in CASES.values() for row in rows] + SHARED
    add_drafts(db_path, [{**row, "draft_id": f"t{i:03d}"} for i, row in enumerate(drafts)])


def expected_ordered() -> dict[str, int]:
    found = dict.fromkeys(("live", "group", "private", "journey", "welcome", "none"), 0)
    for _, channel in CASES.values():
        found[channel] += 1
    return found


def test_each_stage_is_attributed_to_the_last_touch_in_the_24_hours_before(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    touch_store(db_path)
    pb = read(funnel_playbook(tmp_path, stages=STAGES, targets={}))
    with opened(db_path) as db:
        report = funnel(db, pb, by="touch")
    ordered = report.touches[2]
    assert ordered.id == "ordered" and ordered.count == len(CASES)
    assert ordered.channels == expected_ordered() == {"live": 1, "group": 2, "private": 3, "journey": 1, "welcome": 1, "none": 7}
    assert ordered.share["private"] == 3 / 15
    assert ordered.ratio == {"live": 1.0, "group": 2.0, "1v1": 5.0}  # 1v1 = private 3 + journey 1 + welcome 1
    assert report.touches[0].channels["none"] == len(CASES), "the adds came before any draft"
    joined = report.touches[1]
    assert joined.count == 3 and joined.ratio is None


def test_each_contact_alone_gets_the_channel_the_comments_say(tmp_path: Path) -> None:
    pb = read(funnel_playbook(tmp_path, stages=STAGES, targets={}))
    for cid, (drafts, channel) in CASES.items():
        db_path = tmp_path / f"{cid}.db"
        add_contacts(db_path, [{"contact_id": cid, "account": {"c5": "wx_host_01", "c6": "wx_adv_02"}.get(cid)}, {"contact_id": "other", "account": "wx_x"}])
        add_events(db_path, [(cid, "friend_added", T0.strftime("%Y-%m-%dT%H:%M:%SZ")), (cid, "order", stamp())])
        with sqlite3.connect(db_path) as conn:
            conn.executemany(
                "INSERT INTO events (event_id, contact_id, type, at, group_id) VALUES (?, ?, ?, ?, ?)",
                [(f"m{i}", *row) for i, row in enumerate(MEMBERSHIP) if row[0] == cid],
            )
        conn.close()
        add_drafts(db_path, [{**row, "draft_id": f"t{i:03d}"} for i, row in enumerate(drafts + SHARED)])
        with opened(db_path) as db:
            got = funnel(db, pb, by="touch").touches[2].channels
        assert got[channel] == 1, (cid, got)


def test_live_touches_everyone_when_no_contact_has_an_account(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "a"}, {"contact_id": "b"}])
    add_events(db_path, [("a", "friend_added", stamp(-30)), ("a", "order", stamp()), ("b", "friend_added", stamp(-30)), ("b", "order", stamp(30))])
    add_drafts(db_path, [sent("persona:advisor", "live", stamp(-1)), sent("persona:host", "moments", stamp(29))])
    pb = read(funnel_playbook(tmp_path, stages=STAGES, targets={}))
    with opened(db_path) as db:
        ordered = funnel(db, pb, by="touch").touches[2]
    assert ordered.channels["live"] == 1 and ordered.channels["none"] == 1


def test_other_playbooks_drafts_are_not_touches(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, [("a", "friend_added", stamp(-30)), ("a", "order", stamp())])
    add_drafts(db_path, [sent("contact:a", "private", stamp(-1), playbook_id="other")])
    with opened(db_path) as db:
        ordered = funnel(db, read(funnel_playbook(tmp_path, stages=STAGES, targets={})), by="touch").touches[2]
    assert ordered.channels["none"] == 1


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def test_by_touch_in_the_terminal_json_and_csv(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    touch_store(db_path)
    playbook = str(funnel_playbook(tmp_path, stages=STAGES, targets={}))
    result = invoke("report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "touch")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "by touch" in text and "live : group : 1v1" in text
    assert "1 : 2.0 : 5.0" in text  # ordered
    assert "3 · 20.0%" in text  # ordered, private: 3 of 15
    assert "1v1 = private + journey + welcome" in text
    data = json.loads(invoke("report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "touch", "--json").output)
    assert data["by"] == "touch" and data["groups"] == []
    ordered = data["touches"][2]
    assert ordered["id"] == "ordered" and ordered["channels"] == expected_ordered() and ordered["ratio"]["1v1"] == 5.0
    rows = list(csv.DictReader(io.StringIO(invoke("report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "touch", "--csv").output.removeprefix("\ufeff"))))
    assert list(rows[0]) == ["stage", "label", "stage_count", "channel", "count", "share"]
    assert len(rows) == 3 * 6
    cell = next(r for r in rows if r["stage"] == "ordered" and r["channel"] == "group")
    assert (cell["stage_count"], cell["count"], cell["share"]) == ("15", "2", "0.133333")


def test_by_touch_without_sent_drafts_says_so(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, [("a", "friend_added", stamp(-30)), ("a", "order", stamp())])
    result = invoke("report", "funnel", "-p", str(funnel_playbook(tmp_path, stages=STAGES, targets={})), "--db", str(db_path), "--by", "touch")
    assert result.exit_code == 0, result.output
    assert "no sent drafts of this playbook reached these contacts" in " ".join(result.output.split())


def test_drafts_the_runner_sent_are_touches(tmp_path: Path) -> None:
    """Through `siyu run --once --now`: the 12:30 1v1 beat is sent at 13:00; an order that evening is a private conversion."""
    db_path = tmp_path / "siyu.db"
    create_store(db_path)
    add_contacts(db_path, [{"contact_id": "p1", "tags": ["家长"]}, {"contact_id": "p2", "tags": ["家长"]}])
    # 2026-12-01 in Shanghai: adds at 09:00, p1 orders at 20:00 the same day, p2 three days later.
    add_events(db_path, [("p1", "friend_added", "2026-12-01T01:00:00Z"), ("p2", "friend_added", "2026-12-01T01:00:00Z"),
                         ("p1", "order", "2026-12-01T12:00:00Z"), ("p2", "order", "2026-12-04T12:00:00Z")])
    playbook = funnel_playbook(tmp_path, stages=STAGES, targets={}, beats=[NOON_1V1], days=1)
    done = run_siyu(tmp_path, "run", str(playbook), "--once", "--now", "2026-12-01 13:00", "--db", str(db_path), "--outbox", str(tmp_path / "outbox"))
    assert done.returncode == 0, done.stderr + done.stdout
    with opened(db_path) as db:
        ordered = funnel(db, read(playbook), by="touch").touches[2]
    assert (ordered.channels["private"], ordered.channels["none"]) == (1, 1)
