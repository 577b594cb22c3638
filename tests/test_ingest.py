"""The import core: encodings, XLSX, mappings, all-or-nothing, idempotence, times, tags, track."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from siyu_cli.errors import ImportRejected, SiyuError, UsageError
from siyu_cli.ingest import (
    edit_tags,
    get_contact,
    import_contacts,
    import_events,
    list_contacts,
    load_contacts,
    load_mapping,
    new_event,
    parse_map_options,
    track,
)
from siyu_cli.rules import TagRules, contact_tag_state
from siyu_cli.store import open_store

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTACTS = [
    ["contact_id", "name", "tags", "source", "tier", "added_at"],
    ["c001", "王小明妈妈", "家长，已购", "EYE100", "precise", "2026-12-01 08:30"],
    ["c002", "李华", "家长;潜客|宝妈", "EYE200", "general", "2026/12/01 09:15:00"],
    ["c003", "张伟", "家长、羊毛党；宝妈", "", "", ""],
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    store = open_store(tmp_path / "siyu.db")
    yield store
    store.conn.close()


def write_csv(path: Path, rows: list[list[Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def table(db: sqlite_utils.Database, name: str) -> list[tuple[Any, ...]]:
    order = "contact_id" if name == "contacts" else "event_id"
    return list(db.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall())


def seed(db: sqlite_utils.Database, tmp_path: Path) -> None:
    import_contacts(db, write_csv(tmp_path / "seed.csv", CONTACTS), tz=SHANGHAI)


@pytest.mark.parametrize(("encoding", "label"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030"), ("gbk", "gb18030")])
def test_encodings_are_detected(db: sqlite_utils.Database, tmp_path: Path, encoding: str, label: str) -> None:
    result = import_contacts(db, write_csv(tmp_path / "c.csv", CONTACTS, encoding), tz=SHANGHAI)
    assert (result.encoding, result.inserted) == (label, 3)
    contact = get_contact(db, "c001")
    assert contact["name"] == "王小明妈妈"
    assert contact["tags"] == ["家长", "已购"]
    assert get_contact(db, "c002")["tags"] == ["家长", "潜客", "宝妈"]
    assert get_contact(db, "c003")["tags"] == ["家长", "羊毛党", "宝妈"]


def test_gb18030_after_a_long_ascii_start_is_still_read(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = [CONTACTS[0]] + [[f"a{i:05d}", "name", "", "", "", ""] for i in range(30_000)] + [["z1", "赵六", "家长", "", "", ""]]
    result = import_contacts(db, write_csv(tmp_path / "late.csv", rows, "gb18030"), tz=SHANGHAI)
    # The whole file is read before deciding: its first 256 KiB are ASCII, its last row GBK.
    assert (result.encoding, result.inserted) == ("gb18030", 30_001)
    assert get_contact(db, "z1")["name"] == "赵六"


def test_a_file_that_is_not_text_is_a_clear_error(db: sqlite_utils.Database, tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"contact_id,name\n" + bytes([0xFF, 0x80, 0xFE, 0x81]) * 50)
    with pytest.raises(SiyuError, match="neither UTF-8 nor GBK/GB18030"):
        import_contacts(db, path, tz=SHANGHAI)


def test_xlsx_with_excel_datetimes_and_numeric_ids(db: sqlite_utils.Database, tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["客户ID", "客户名称", "标签", "添加时间", "备注"])
    sheet.append([10001, "王小明妈妈", "家长,已购", datetime(2026, 12, 1, 8, 30), "老客户"])
    sheet.append([10002, "李华", None, "2026-12-01 09:00", None])
    sheet.append([None, None, None, None, None])
    path = tmp_path / "wecom.xlsx"
    book.save(path)
    mapping = {"客户ID": "contact_id", "客户名称": "name", "标签": "tags", "添加时间": "added_at"}
    result = import_contacts(db, path, tz=SHANGHAI, mapping=mapping)
    assert (result.format, result.read, result.inserted) == ("xlsx", 2, 2)
    first = get_contact(db, "10001")
    assert first["added_at"] == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert first["extra"] == {"备注": "老客户"}
    assert get_contact(db, "10002")["tags"] == []


def test_xlsx_events_with_a_bad_row_name_it(db: sqlite_utils.Database, tmp_path: Path) -> None:
    from openpyxl import Workbook

    seed(db, tmp_path)
    book = Workbook()
    sheet = book.active
    sheet.append(["type", "contact_id", "at", "amount"])
    sheet.append(["order", "c001", datetime(2026, 12, 2, 20, 0), 365])
    sheet.append(["order", "c002", datetime(2026, 12, 2, 21, 0), "很多"])
    path = tmp_path / "orders.xlsx"
    book.save(path)
    with pytest.raises(ImportRejected) as caught:
        import_events(db, path, tz=SHANGHAI)
    assert caught.value.rows == [(3, "amount '很多' is not a number; write e.g. 199, 1299.00 or ¥1,299.00")]


def test_mapping_from_a_yaml_or_json_file(tmp_path: Path) -> None:
    (tmp_path / "wecom.yaml").write_text("客户ID: contact_id\n客户名称: name\n标签: tags\n添加时间: added_at\n手机号: '-'\n", encoding="utf-8")
    (tmp_path / "wecom.json").write_text(json.dumps({"客户ID": "contact_id"}, ensure_ascii=False), encoding="utf-8")
    assert [(rule.column, rule.field) for rule in load_mapping(tmp_path / "wecom.yaml").rules][-1] == ("手机号", "-")
    assert [(rule.column, rule.field) for rule in load_mapping(tmp_path / "wecom.json").rules] == [("客户ID", "contact_id")]
    (tmp_path / "bad.yaml").write_text("- 客户ID\n", encoding="utf-8")
    with pytest.raises(SiyuError, match="must map column names"):
        load_mapping(tmp_path / "bad.yaml")
    assert [(rule.column, rule.field) for rule in parse_map_options(["a=b=contact_id"]).rules] == [("a=b", "contact_id")]
    with pytest.raises(UsageError):
        parse_map_options(["contact_id"])


def test_mapped_and_dropped_columns(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = [[" 客户ID ", "\ufeff客户名称", "标签", "手机号", "城市"], ["w1", "周杰", "家长", "13800000000", "上海"]]
    mapping = {"客户ID": "contact_id", "客户名称": "name", "标签": "tags", "手机号": "-", "不存在": "-"}
    result = import_contacts(db, write_csv(tmp_path / "w.csv", rows), tz=SHANGHAI, mapping=mapping)
    assert result.unused_mapping == ["不存在"]  # a dropped column the file lacks is only a note
    with pytest.raises(SiyuError, match="column '不存在' \\(source, named in --map\\) is not in the file"):
        import_contacts(db, tmp_path / "w.csv", tz=SHANGHAI, mapping={**mapping, "不存在": "source"})
    contact = get_contact(db, "w1")
    assert (contact["name"], contact["tags"], contact["extra"]) == ("周杰", ["家长"], {"城市": "上海"})


def test_unknown_map_target_and_missing_columns_are_refused(db: sqlite_utils.Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "w.csv", [["客户ID", "名字"], ["w1", "周杰"]])
    with pytest.raises(UsageError, match="'nickname' is not a contacts column"):
        import_contacts(db, path, tz=SHANGHAI, mapping={"名字": "nickname"})
    with pytest.raises(SiyuError, match="no contact_id column; the file's columns are: 客户ID, 名字") as caught:
        import_contacts(db, path, tz=SHANGHAI)
    assert "--map" in caught.value.hint


def test_a_file_with_bad_rows_is_rejected_whole_and_every_bad_row_is_named(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    rows = [
        ["type", "contact_id", "at", "hook", "amount"],
        ["friend_added", "c001", "2026-12-01 08:30", "EYE100", ""],
        ["加群", "c001", "2026-12-01 09:00", "", ""],
        ["order", "c404", "2026-12-01 10:00", "", "365"],
        ["order", "c002", "2026-13-01 10:00", "", "365"],
        ["order", "", "2026-12-01 10:00", "", "abc"],
        ["order", "c002", "2026-12-01 11:00", "", "¥1,299.00"],
    ]
    before = table(db, "events")
    with pytest.raises(ImportRejected) as caught:
        import_events(db, write_csv(tmp_path / "bad.csv", rows, "gb18030"), tz=SHANGHAI)
    found = dict(caught.value.rows)
    assert sorted(found) == [3, 4, 5, 6]
    assert "unknown event type '加群'" in found[3]
    assert "contact 'c404' is not in the store" in found[4]
    assert "'2026-13-01 10:00' is not a" in found[5]
    assert "missing contact_id" in found[6] and "amount 'abc' is not a number" in found[6]
    assert caught.value.total_bad == 4
    assert table(db, "events") == before == []


def test_the_listed_bad_rows_are_capped_but_counted(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = [["type", "contact_id", "at"]] + [["order", f"x{i}", "2026-12-01"] for i in range(250)]
    with pytest.raises(ImportRejected) as caught:
        import_events(db, write_csv(tmp_path / "many.csv", rows), tz=SHANGHAI)
    assert len(caught.value.rows) == 200 and caught.value.total_bad == 250
    assert caught.value.rows[0][0] == 2


def test_skip_bad_imports_the_rest_and_writes_rejects_for_excel(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    rows = [
        ["type", "contact_id", "at", "渠道"],
        ["checkin", "c001", "2026-12-01 20:00", "群内"],
        ["checkin", "c404", "2026-12-01 20:00", "群内"],
        ["下单", "c002", "2026-12-01 21:00", ""],
    ]
    rejects = tmp_path / "rejects.csv"
    result = import_events(db, write_csv(tmp_path / "e.csv", rows), tz=SHANGHAI, skip_bad_to=rejects)
    assert (result.read, result.inserted, result.skipped) == (3, 2, 1)
    raw = rejects.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert lines[0] == ["type", "contact_id", "at", "渠道", "reason"]
    assert lines[1][:4] == ["checkin", "c404", "2026-12-01 20:00", "群内"] and "c404" in lines[1][4]
    props = dict(db.execute("SELECT contact_id, props FROM events").fetchall())
    assert json.loads(props["c001"]) == {"渠道": "群内"} and json.loads(props["c002"]) == {}


def test_dry_run_counts_and_writes_nothing(db: sqlite_utils.Database, tmp_path: Path) -> None:
    result = import_contacts(db, write_csv(tmp_path / "c.csv", CONTACTS), tz=SHANGHAI, dry_run=True)
    assert (result.read, result.inserted, result.dry_run) == (3, 3, True)
    assert table(db, "contacts") == []


def test_reimporting_contacts_changes_nothing_and_tags_from_the_file_replace(db: sqlite_utils.Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", CONTACTS)
    assert import_contacts(db, path, tz=SHANGHAI).inserted == 3
    snapshot = table(db, "contacts")
    again = import_contacts(db, path, tz=SHANGHAI)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert table(db, "contacts") == snapshot
    edit_tags(db, "c001", add=["VIP"], at=datetime(2026, 12, 2, 9, 0, tzinfo=SHANGHAI))
    update = write_csv(tmp_path / "u.csv", [["contact_id", "tags", "tier"], ["c001", "已购", ""], ["c002", "家长", "semi"]])
    changed = import_contacts(db, update, tz=SHANGHAI)
    assert (changed.updated, changed.unchanged) == (2, 0)
    first = get_contact(db, "c001")
    assert first["tags"] == ["已购"]
    assert (first["name"], first["tier"], first["source"]) == ("王小明妈妈", "precise", "EYE100")
    assert get_contact(db, "c002")["tier"] == "semi"
    # The hand edit is an event: it still applies on top of the re-imported tags.
    assert contact_tag_state(db, TagRules(), first).tags == ["已购", "VIP"]


def test_events_dedup_with_and_without_event_id(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    with_ids = write_csv(
        tmp_path / "ids.csv",
        [["event_id", "type", "contact_id", "at"], ["e1", "checkin", "c001", "2026-12-01 20:00"], ["e1", "checkin", "c001", "2026-12-01 20:00"]],
    )
    first = import_events(db, with_ids, tz=SHANGHAI)
    assert (first.inserted, first.duplicates) == (1, 1)
    assert import_events(db, with_ids, tz=SHANGHAI).inserted == 0
    without = write_csv(
        tmp_path / "noid.csv",
        [["type", "contact_id", "at", "amount"], ["order", "c002", "2026-12-01 20:00", "365"], ["order", "c002", "2026-12-01 20:00", "99"]],
    )
    assert import_events(db, without, tz=SHANGHAI).inserted == 2
    again = import_events(db, without, tz=SHANGHAI)
    assert (again.inserted, again.duplicates) == (0, 2)
    # The same event written another way (zone given, amount formatted) is the same event.
    other = write_csv(tmp_path / "other.csv", [["type", "contact_id", "at", "amount"], ["order", "c002", "2026-12-01T12:00:00Z", "¥365.00"]])
    assert import_events(db, other, tz=SHANGHAI).duplicates == 1
    assert len(table(db, "events")) == 3


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-12-01 08:30", "2026-12-01T00:30:00Z"),
        ("2026/12/01 08:30:00", "2026-12-01T00:30:00Z"),
        ("2026/12/1 8:30", "2026-12-01T00:30:00Z"),
        ("2026年12月1日 08:30", "2026-12-01T00:30:00Z"),
        ("2026-12-01T08:30:00+08:00", "2026-12-01T00:30:00Z"),
        ("2026-12-01T08:30:00Z", "2026-12-01T08:30:00Z"),
        ("2026-12-01", "2026-11-30T16:00:00Z"),
    ],
)
def test_times_are_read_in_the_playbook_zone_and_stored_in_utc(db: sqlite_utils.Database, tmp_path: Path, text: str, stored: str) -> None:
    seed(db, tmp_path)
    import_events(db, write_csv(tmp_path / "t.csv", [["type", "contact_id", "at"], ["checkin", "c001", text]]), tz=SHANGHAI)
    assert db.execute("SELECT at FROM events").fetchone()[0] == stored


def test_a_naive_time_in_another_zone(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    import_events(db, write_csv(tmp_path / "t.csv", [["type", "contact_id", "at"], ["checkin", "c001", "2026-12-01 08:30"]]), tz=UTC)
    assert db.execute("SELECT at FROM events").fetchone()[0] == "2026-12-01T08:30:00Z"


def test_streaming_import_of_50000_rows(db: sqlite_utils.Database, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["contact_id", "name", "tags"])
        writer.writerows([f"c{i:06d}", f"家长{i}", "家长"] for i in range(10_000))
    events = tmp_path / "events.csv"
    with events.open("w", encoding="gb18030", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["type", "contact_id", "at", "group", "备注"])
        writer.writerows(["checkin", f"c{i % 10_000:06d}", f"2026-12-{1 + i // 10_000:02d} {i % 24:02d}:{i % 60:02d}", "g1", "打卡"] for i in range(50_000))
    ticks: list[tuple[int, int]] = []
    assert import_contacts(db, contacts, tz=SHANGHAI).inserted == 10_000
    result = import_events(db, events, tz=SHANGHAI, progress=lambda done, total: ticks.append((done, total)))
    assert (result.read, result.inserted) == (50_000, 50_000)
    assert ticks[-1][0] == ticks[-1][1] == events.stat().st_size
    assert db.execute("SELECT COUNT(*) FROM events WHERE group_id = 'g1'").fetchone()[0] == 50_000
    assert import_events(db, events, tz=SHANGHAI).duplicates == 50_000


def test_track_validates_dedups_and_can_create_the_contact(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    at = datetime(2026, 12, 2, 20, 15, tzinfo=SHANGHAI)
    first = track(db, new_event("order", "c001", at=at, amount="365", props={"渠道": "1v1"}))
    assert first.inserted and first.at == "2026-12-02T12:15:00Z"
    assert not track(db, new_event("order", "c001", at=at, amount=365)).inserted
    with pytest.raises(SiyuError, match="'c404' is not in the store") as caught:
        track(db, new_event("checkin", "c404", at=at))
    assert "--create-contact" in caught.value.hint
    with pytest.raises(UsageError, match="unknown event type"):
        track(db, new_event("purchase", "c001", at=at))
    with pytest.raises(UsageError, match="not a number"):
        track(db, new_event("order", "c001", at=at, amount="lots"))
    created = track(db, new_event("friend_added", "c404", at=at, create_contact=True, event_id="wx-1"))
    assert created.contact_created and created.event_id == "wx-1"
    assert get_contact(db, "c404")["tags"] == []
    joined = track(db, new_event("friend_added", "c405", at=at, create_contact=True, contact={"account": "wx_host_01", "added_at": "2026-12-02T12:15:00Z"}))
    assert joined.contact_created and get_contact(db, "c405")["account"] == "wx_host_01"
    with pytest.raises(UsageError, match="a new contact has no field 'phone'"):
        new_event("friend_added", "c406", at=at, create_contact=True, contact={"phone": "138"})


def test_tags_edit_list_and_load(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    edit_tags(db, "c002", add=["已购", "家长"], remove=["潜客"], at=datetime(2026, 12, 2, tzinfo=UTC))
    assert next(c for c in list_contacts(db) if c["id"] == "c002")["tags"] == ["家长", "宝妈", "已购"]
    assert get_contact(db, "c002")["tags"] == ["家长", "潜客", "宝妈"]  # the contact's own tags stay as imported
    with pytest.raises(SiyuError, match="not in the store"):
        edit_tags(db, "nobody", add=["x"], at=datetime(2026, 12, 2, tzinfo=UTC))
    assert [c["id"] for c in list_contacts(db, segment="家长 and not 已购")] == ["c003"]
    with pytest.raises(UsageError):
        list(list_contacts(db, segment="家长 and ("))
    loaded = {c["id"]: c for c in load_contacts(db)}
    assert loaded["c001"]["added_at"] == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert loaded["c003"]["added_at"] is None and loaded["c003"]["name"] == "张伟"


def test_create_contacts_adds_bare_contacts_for_unknown_ids(db: sqlite_utils.Database, tmp_path: Path) -> None:
    seed(db, tmp_path)
    rows = [["type", "contact_id", "at", "hook"], ["card_sent", "tb-1", "2026-11-20", "EYE100"], ["card_sent", "tb-2", "2026-11-20", "EYE100"], ["friend_added", "tb-1", "2026-11-22", "EYE100"], ["card_sent", "c001", "2026-11-20", "EYE100"]]
    path = write_csv(tmp_path / "cards.csv", rows)
    with pytest.raises(ImportRejected):
        import_events(db, path, tz=SHANGHAI)
    result = import_events(db, path, tz=SHANGHAI, create_contacts=True)
    assert (result.inserted, result.contacts_created) == (4, 2)
    assert get_contact(db, "tb-1")["tags"] == [] and len(table(db, "contacts")) == 5
    assert import_events(db, path, tz=SHANGHAI, create_contacts=True).contacts_created == 0
