"""The tag cache a beats-only playbook's passes read effective tags from: always what a fresh derivation gives.

Each test changes what effective tags depend on (a rule, an event, a contact's own tags, the
pass's moment) between passes and checks the beat's audience follows at once.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.playbooks_fixtures import invoke, query, write_playbook

HOOKS = [{"id": "card", "kind": "package_card", "code": "EYE100", "tags": ["包裹卡"]}]
RULES = [{"on": {"event": "order"}, "tag": ["+已购"]}, {"on": {"event": "refund"}, "tag": ["-已购", "+已退款"]}]
BUYERS = {"id": "buyers", "title": "买家专享", "at": "12:00", "days": "all", "channel": "private", "audience": "已购", "text": "专享券"}
CARDED = {"id": "carded", "title": "包裹卡提醒", "at": "12:05", "days": "all", "channel": "private", "audience": "包裹卡 and not 已购", "text": "别忘了用券"}


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(tmp_path, beats=[BUYERS, CARDED], hooks=HOOKS, rules=RULES, days=10, limits={"missed": {"max_late": "1h"}})
    return tmp_path


siyu = invoke


def track(kind: str, contact: str, at: str, *extra: str) -> None:
    siyu("track", kind, "--contact", contact, "--at", at, "--create-contact", *extra)


def got(root: Path, day: str) -> dict[str, list[str]]:
    """beat → contacts it was sent to on that day (local date)."""
    rows = query(root / "siyu.db", "SELECT beat, target FROM drafts WHERE state = 'sent' AND date(due_at, '+8 hours') = ? ORDER BY beat, target", (day,))
    found: dict[str, list[str]] = {}
    for beat, target in rows:
        found.setdefault(beat, []).append(target.split(":", 1)[1])
    return found


def once(now: str) -> None:
    siyu("run", "--once", "--now", now, "--json")


def test_new_events_and_edited_rules_reach_the_next_pass(shop: Path) -> None:
    track("friend_added", "a", "2026-12-01 09:00", "--hook", "EYE100")
    track("friend_added", "b", "2026-12-01 09:00", "--hook", "EYE100")
    once("2026-12-01 12:10")
    assert got(shop, "2026-12-01") == {"carded": ["a", "b"]}
    assert query(shop / "siyu.db", "SELECT count(*) FROM tag_cache")[0][0] == 2

    track("order", "a", "2026-12-01 20:00", "--amount", "99")
    once("2026-12-02 12:10")
    assert got(shop, "2026-12-02") == {"buyers": ["a"], "carded": ["b"]}

    track("refund", "a", "2026-12-02 20:00", "--amount", "99")
    once("2026-12-03 12:10")
    assert got(shop, "2026-12-03") == {"carded": ["a", "b"]}

    playbook = yaml.safe_load((shop / "playbook.yaml").read_text("utf-8"))
    playbook["rules"][1]["tag"] = ["+已退款"]  # a refund no longer takes 已购 away
    (shop / "playbook.yaml").write_text(yaml.safe_dump(playbook, allow_unicode=True), encoding="utf-8")
    once("2026-12-04 12:10")
    assert got(shop, "2026-12-04") == {"buyers": ["a"], "carded": ["b"]}


def test_a_contacts_own_tags_reimported_reach_the_next_pass(shop: Path) -> None:
    (shop / "c.csv").write_text("contact_id,tags\nz,已购\n", encoding="utf-8")
    siyu("import", "contacts", "c.csv")
    once("2026-12-01 12:10")
    assert got(shop, "2026-12-01") == {"buyers": ["z"]}
    (shop / "c.csv").write_text("contact_id,tags\nz,包裹卡\n", encoding="utf-8")
    siyu("import", "contacts", "c.csv")
    once("2026-12-02 12:10")
    assert got(shop, "2026-12-02") == {"carded": ["z"]}


def test_the_cache_never_shows_a_pass_what_had_not_happened_by_then(shop: Path) -> None:
    track("friend_added", "a", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "a", "2026-12-03 20:00", "--amount", "99")  # recorded ahead, as a rehearsal's log is
    once("2026-12-02 12:10")
    assert got(shop, "2026-12-02") == {"carded": ["a"]}
    once("2026-12-04 12:10")
    assert got(shop, "2026-12-04") == {"buyers": ["a"]}


def test_a_late_pass_matches_each_beat_with_the_tags_of_its_own_time(shop: Path) -> None:
    track("friend_added", "a", "2026-12-01 09:00", "--hook", "EYE100")
    track("order", "a", "2026-12-01 12:02", "--amount", "99")
    once("2026-12-01 12:30")  # 12:00 before the order, 12:05 after it
    assert got(shop, "2026-12-01") == {}  # at 12:00 not a buyer yet; at 12:05 no longer "not 已购"


def test_writes_by_hand_to_the_store_are_seen_too(shop: Path) -> None:
    track("friend_added", "a", "2026-12-01 09:00", "--hook", "EYE100")
    once("2026-12-01 12:10")
    with sqlite3.connect(shop / "siyu.db") as conn:
        conn.execute("INSERT INTO events (event_id, type, contact_id, at, props) VALUES ('x1', 'order', 'a', '2026-12-01T12:00:00Z', '{}')")
    once("2026-12-02 12:10")
    assert got(shop, "2026-12-02") == {"buyers": ["a"]}
    assert json.loads(query(shop / "siyu.db", "SELECT tags FROM tag_cache WHERE contact_id = 'a'")[0][0]) == ["包裹卡", "已购"]
    assert query(shop / "siyu.db", "SELECT count(*) FROM tag_log")[0][0] == 0  # every basis has read it


def test_an_event_replaced_by_hand_onto_another_contact_leaves_no_stale_tags(shop: Path) -> None:
    track("order", "m1", "2026-12-01 10:00", "--amount", "1", "--event-id", "o1")
    track("checkin", "m2", "2026-12-01 10:00")
    once("2026-12-01 12:10")
    assert got(shop, "2026-12-01") == {"buyers": ["m1"]}
    with sqlite3.connect(shop / "siyu.db") as conn:
        conn.execute("INSERT OR REPLACE INTO events (event_id, type, contact_id, at, amount, props) VALUES ('o1', 'order', 'm2', '2026-12-01T02:00:00Z', 1, '{}')")
    once("2026-12-02 12:10")
    assert got(shop, "2026-12-02") == {"buyers": ["m2"]}
