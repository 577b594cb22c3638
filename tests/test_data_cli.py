"""`siyu import`, `siyu track` and `siyu contacts` as an operator uses them."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app
from tests.playbooks_fixtures import write_playbook

WECOM_HEADER = ["客户ID", "客户名称", "标签", "添加时间", "添加渠道", "手机号"]
WECOM_ROWS = [
    ["wm001", "王小明妈妈", "家长，已购", "2026/12/01 08:30", "EYE100", "13800000001"],
    ["wm002", "李华", "家长；潜客", "2026-12-01 09:00", "EYE200", "13800000002"],
]
MAPPING_YAML = """\
# 企业微信「客户列表」导出
客户ID: contact_id
客户名称: name
标签: tags
添加时间: added_at
添加渠道: source
手机号: "-"
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No playbook or store of the developer's leaks in: run inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    monkeypatch.delenv("SIYU_DB", raising=False)


def siyu(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def seed(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    contacts = write_csv(tmp_path / "contacts.csv", [["contact_id", "name", "tags", "cohort"], ["c1", "张三", "家长,已购", "b12"], ["c2", "李四", "家长", "b12"], ["c3", "王五", "宝妈", "b13"]])
    assert siyu("import", "contacts", str(contacts), "--db", str(db)).exit_code == 0
    return db


def test_wecom_export_in_gb18030_with_a_mapping_file(tmp_path: Path) -> None:
    export = write_csv(tmp_path / "客户列表.csv", [WECOM_HEADER, *WECOM_ROWS], "gb18030")
    (tmp_path / "wecom.yaml").write_text(MAPPING_YAML, encoding="utf-8")
    db = tmp_path / "s.db"
    result = siyu("import", "contacts", str(export), "--map-file", "wecom.yaml", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["encoding"], counts["read"], counts["inserted"]) == ("gb18030", 2, 2)
    assert rows(db, "SELECT contact_id, name, tags, source, added_at, extra FROM contacts ORDER BY contact_id") == [
        ("wm001", "王小明妈妈", '["家长", "已购"]', "EYE100", "2026-12-01T00:30:00Z", "{}"),
        ("wm002", "李华", '["家长", "潜客"]', "EYE200", "2026-12-01T01:00:00Z", "{}"),
    ]
    again = siyu("import", "contacts", str(export), "--map-file", "wecom.yaml", "--db", str(db))
    assert again.exit_code == 0 and "inserted 0 · updated 0 · unchanged 2" in again.stdout


def test_map_options_on_the_command_line(tmp_path: Path) -> None:
    export = write_csv(tmp_path / "e.csv", [["客户ID", "客户名称"], ["x1", "赵六"]], "utf-8-sig")
    db = tmp_path / "s.db"
    result = siyu("import", "contacts", str(export), "--map", "客户ID=contact_id", "--map", "客户名称=name", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT contact_id, name FROM contacts") == [("x1", "赵六")]
    wrong = siyu("import", "contacts", str(export), "--map", "客户ID=customer", "--db", str(db))
    assert wrong.exit_code == 2 and "'customer' is not a contacts column" in wrong.stderr
    unmapped = siyu("import", "contacts", str(export), "--db", str(db))
    assert unmapped.exit_code == 1 and "no contact_id column" in unmapped.stderr and "--map" in unmapped.stderr


def test_a_bad_gb18030_file_is_rejected_whole_with_every_bad_row(tmp_path: Path) -> None:
    db = seed(tmp_path)
    events = write_csv(
        tmp_path / "订单.csv",
        [
            ["type", "contact_id", "at", "amount"],
            ["order", "c1", "2026-12-02 20:00", "365"],
            ["下单", "c2", "昨天晚上", "365"],
            ["order", "c9", "2026-12-02 20:05", ""],
            ["order", "c2", "2026-12-02 20:10", "三百"],
            ["购买", "c1", "2026-12-02 20:20", ""],
        ],
        "gb18030",
    )
    before = rows(db, "SELECT COUNT(*) FROM events")
    result = siyu("import", "events", str(events), "--db", str(db))
    assert result.exit_code == 1
    assert "4 bad row(s); nothing was imported" in result.stderr
    assert "row 3: at: '昨天晚上' is not a time" in result.stderr
    assert "row 4: contact 'c9' is not in the store" in result.stderr
    assert "row 5: amount '三百' is not a number" in result.stderr
    assert "row 6: unknown event type '购买'" in result.stderr
    assert "row 2" not in result.stderr
    assert rows(db, "SELECT COUNT(*) FROM events") == before == [(0,)]

    rejects = tmp_path / "rejects.csv"
    skipped = siyu("import", "events", str(events), "--skip-bad", str(rejects), "--db", str(db))
    assert skipped.exit_code == 0, skipped.output
    assert "inserted 1" in skipped.stdout and "bad rows skipped 4" in skipped.stdout
    assert rejects.read_text(encoding="utf-8-sig").splitlines()[0] == "type,contact_id,at,amount,reason"
    assert rows(db, "SELECT contact_id, amount FROM events") == [("c1", 365.0)]


def test_an_event_id_two_rows_contradict_is_listed_with_the_other_bad_rows_in_one_round(tmp_path: Path) -> None:
    db = seed(tmp_path)
    events = write_csv(
        tmp_path / "订单.csv",
        [
            ["event_id", "type", "contact_id", "at", "amount"],
            ["o1", "order", "c1", "2026-12-02 20:00", "1299"],
            ["o1", "order", "c1", "2026-12-02 20:00", "1199"],  # the same order with another amount
            ["o2", "order", "c2", "昨天晚上", "365"],
        ],
    )
    result = siyu("import", "events", str(events), "--db", str(db))
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert "2 bad row(s); nothing was imported" in text, text
    assert "row 4: at: '昨天晚上' is not a time" in text
    assert "row 3: event 'o1' is also on row 2 with other facts (amount 1299.0 there, 1199.0 here)" in text
    assert rows(db, "SELECT COUNT(*) FROM events") == [(0,)]


def test_create_contacts_on_import(tmp_path: Path) -> None:
    db = seed(tmp_path)
    cards = write_csv(tmp_path / "cards.csv", [["type", "contact_id", "at"], ["card_sent", "tb-9", "2026-11-20 10:00"]])
    result = siyu("import", "events", str(cards), "--create-contacts", "--db", str(db))
    assert result.exit_code == 0 and "contacts created 1" in result.stdout
    assert rows(db, "SELECT contact_id FROM contacts WHERE contact_id = 'tb-9'") == [("tb-9",)]


def test_dry_run_and_xlsx_events(tmp_path: Path) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    db = seed(tmp_path)
    book = Workbook()
    book.active.append(["事件ID", "type", "contact_id", "at", "group"])
    book.active.append(["e1", "group_joined", "c1", datetime(2026, 12, 1, 19, 0), "g1"])
    book.active.append(["e2", "checkin", "c2", datetime(2026, 12, 1, 20, 0), "g1"])
    book.save(tmp_path / "events.xlsx")
    dry = siyu("import", "events", "events.xlsx", "--map", "事件ID=event_id", "--dry-run", "--db", str(db))
    assert dry.exit_code == 0 and "dry run, nothing written" in dry.stdout and "inserted 2" in dry.stdout
    assert rows(db, "SELECT COUNT(*) FROM events") == [(0,)]
    real = siyu("import", "events", "events.xlsx", "--map", "事件ID=event_id", "--db", str(db), "--json")
    assert json.loads(real.stdout)["inserted"] == 2
    again = siyu("import", "events", "events.xlsx", "--map", "事件ID=event_id", "--db", str(db), "--json")
    assert json.loads(again.stdout)["duplicates"] == 2
    assert rows(db, "SELECT event_id, at, group_id FROM events ORDER BY event_id") == [("e1", "2026-12-01T11:00:00Z", "g1"), ("e2", "2026-12-01T12:00:00Z", "g1")]


def test_zone_less_times_follow_the_playbook_or_tz(tmp_path: Path) -> None:
    db = seed(tmp_path)
    events = write_csv(tmp_path / "e.csv", [["type", "contact_id", "at"], ["checkin", "c1", "2026-12-01 08:30"]])
    assert siyu("import", "events", str(events), "--db", str(db)).exit_code == 0
    assert rows(db, "SELECT at FROM events") == [("2026-12-01T00:30:00Z",)]
    london = write_playbook(tmp_path / "pb", timezone="Europe/London")
    other = write_csv(tmp_path / "e2.csv", [["type", "contact_id", "at"], ["checkin", "c2", "2026-12-01 08:30"]])
    assert siyu("import", "events", str(other), "-p", str(london), "--db", str(db)).exit_code == 0
    third = write_csv(tmp_path / "e3.csv", [["type", "contact_id", "at"], ["checkin", "c3", "2026-12-01 08:30"]])
    assert siyu("import", "events", str(third), "--tz", "America/New_York", "--db", str(db)).exit_code == 0
    assert dict(rows(db, "SELECT contact_id, at FROM events")) == {
        "c1": "2026-12-01T00:30:00Z",
        "c2": "2026-12-01T08:30:00Z",
        "c3": "2026-12-01T13:30:00Z",
    }
    missing = siyu("import", "events", str(third), "-p", "nope.yaml", "--db", str(db))
    assert missing.exit_code == 1 and "no such playbook" in missing.stderr


def test_a_found_playbook_gives_the_zone(tmp_path: Path) -> None:
    db = seed(tmp_path)
    write_playbook(tmp_path, timezone="UTC")
    events = write_csv(tmp_path / "e.csv", [["type", "contact_id", "at"], ["checkin", "c1", "2026-12-01 08:30"]])
    assert siyu("import", "events", str(events), "--db", str(db)).exit_code == 0
    assert rows(db, "SELECT at FROM events") == [("2026-12-01T08:30:00Z",)]


def test_track_records_once_and_explains_unknown_contacts(tmp_path: Path) -> None:
    db = seed(tmp_path)
    args = ["track", "order", "--contact", "c1", "--amount", "365", "--now", "2026-12-02 20:15", "--prop", "渠道=1v1", "--db", str(db)]
    first = siyu(*args)
    assert first.exit_code == 0 and "recorded order for c1 at 2026-12-02 20:15:00 +0800" in first.stdout
    assert "already recorded" in siyu(*args).stdout
    assert rows(db, "SELECT type, at, amount, props FROM events") == [("order", "2026-12-02T12:15:00Z", 365.0, '{"渠道": "1v1"}')]
    unknown = siyu("track", "checkin", "--contact", "c9", "--db", str(db))
    assert unknown.exit_code == 1 and "siyu import contacts" in unknown.stderr and "--create-contact" in unknown.stderr
    created = siyu("track", "friend_added", "--contact", "c9", "--at", "2026-12-03T09:00:00+08:00", "--create-contact", "--hook", "EYE100", "--db", str(db), "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["contact_created"] is True
    bad_type = siyu("track", "purchase", "--contact", "c1", "--db", str(db))
    assert bad_type.exit_code == 2 and "unknown event type" in bad_type.stderr
    bad_time = siyu("track", "order", "--contact", "c1", "--at", "tomorrow", "--db", str(db))
    assert bad_time.exit_code == 2 and "--at" in bad_time.stderr


def test_tag_editing_both_ways(tmp_path: Path) -> None:
    db = seed(tmp_path)
    plus_minus = siyu("contacts", "tag", "c1", "+VIP", "-已购", "--db", str(db))
    assert plus_minus.exit_code == 0 and plus_minus.stdout.strip() == "c1: 家长, VIP"
    dashed = siyu("contacts", "tag", "c1", "--db", str(db), "--", "-VIP", "+高意向")
    assert dashed.stdout.strip() == "c1: 家长, 高意向"
    options = siyu("contacts", "tag", "c1", "--add", "已购", "--remove", "家长", "--db", str(db), "--json")
    assert json.loads(options.stdout) == {"contact_id": "c1", "tags": ["高意向", "已购"]}
    missing = siyu("contacts", "tag", "nobody", "+x", "--db", str(db))
    assert missing.exit_code == 1 and "not in the store" in missing.stderr
    nothing = siyu("contacts", "tag", "c1", "--db", str(db))
    assert nothing.exit_code == 2


def test_contacts_list_and_show(tmp_path: Path) -> None:
    db = seed(tmp_path)
    listing = siyu("contacts", "list", "--db", str(db))
    assert listing.exit_code == 0 and "张三" in listing.stdout and "3 contact(s)" in listing.stdout
    parents = siyu("contacts", "list", "--segment", "家长 and not 已购", "--db", str(db), "--json")
    assert [c["id"] for c in json.loads(parents.stdout)] == ["c2"]
    cohort = siyu("contacts", "list", "--cohort", "b13", "--db", str(db), "--json")
    assert [c["id"] for c in json.loads(cohort.stdout)] == ["c3"]
    write_playbook(tmp_path)
    named = siyu("contacts", "list", "--segment", "parents", "--db", str(db), "--json")
    assert [c["id"] for c in json.loads(named.stdout)] == ["c1", "c2"]
    siyu("track", "order", "--contact", "c1", "--amount", "99", "--now", "2026-12-02 20:00", "--db", str(db))
    shown = siyu("contacts", "show", "c1", "--db", str(db))
    assert shown.exit_code == 0 and "1 event(s)" in shown.stdout and "2026-12-02 20:00" in shown.stdout and "order" in shown.stdout
    as_json = json.loads(siyu("contacts", "show", "c1", "--db", str(db), "--json").stdout)
    assert as_json["events"][0]["at"] == "2026-12-02T12:00:00Z"
    gone = siyu("contacts", "show", "c404", "--db", str(db))
    assert gone.exit_code == 1 and "not in the store" in gone.stderr


def test_file_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    missing = siyu("import", "contacts", "nope.csv", "--db", str(db))
    assert missing.exit_code == 1 and "nope.csv: no such file" in missing.stderr
    (tmp_path / "empty.csv").write_bytes(b"")
    empty = siyu("import", "contacts", "empty.csv", "--db", str(db))
    assert empty.exit_code == 1 and "empty" in empty.stderr
    (tmp_path / "fake.xlsx").write_text("not a workbook", encoding="utf-8")
    fake = siyu("import", "events", "fake.xlsx", "--db", str(db))
    assert fake.exit_code == 1 and "not a readable XLSX" in fake.stderr
    (tmp_path / "bad.yaml").write_text("[1, 2", encoding="utf-8")
    bad_map = siyu("import", "contacts", "empty.csv", "--map-file", "bad.yaml", "--db", str(db))
    assert bad_map.exit_code == 1 and "bad.yaml" in bad_map.stderr


def test_a_mapping_file_reads_yes_no_on_off_as_text_like_a_playbook(tmp_path: Path) -> None:
    """YAML 1.2 core, as the playbook and editors read it: `否: no` maps to the tag "no", `一期: on` to cohort "on"."""
    export = write_csv(tmp_path / "c.csv", [["客户ID", "昵称", "期次", "是否付费"], ["u1", "张三", "一期", "否"], ["u2", "李四", "二期", "是"]])
    (tmp_path / "map.yaml").write_text(
        "for: contacts\n客户ID: contact_id\n昵称: name\n期次: {field: cohort, values: {一期: on, 二期: off}}\n是否付费: {field: tags, values: {是: 已报名, 否: no}}\n",
        encoding="utf-8",
    )
    db = tmp_path / "s.db"
    result = siyu("import", "contacts", str(export), "--map-file", "map.yaml", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT contact_id, cohort, tags FROM contacts ORDER BY contact_id") == [("u1", "on", '["no"]'), ("u2", "off", '["已报名"]')]
    (tmp_path / "tab.yaml").write_text("客户ID: contact_id\n期次:\n\tfield: cohort\n", encoding="utf-8")
    tab = siyu("import", "contacts", str(export), "--map-file", "tab.yaml", "--db", str(db))
    assert tab.exit_code == 1 and "tab.yaml:3:1:" in tab.stderr and "tab" in tab.stderr
