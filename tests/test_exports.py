"""Real exports in with one command (issue 11): WeCom 客户列表, Taobao/Tmall and 抖店 orders, built the way
the platforms write them, imported through the CLI; identities; nothing counted twice; files as they come."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.playbooks_fixtures import write_playbook
from tests.test_data_cli import _isolated, siyu  # noqa: F401 (the autouse fixture: each test runs in its tmp_path)
from tests.test_installed import _run, installed, wheel  # noqa: F401 (pytest fixtures)

HOOKS = [
    {"id": "card-repurchase", "kind": "package_card", "title": "回购卡", "code": "EYE100", "tags": ["包裹卡"]},
    {"id": "card-cashback", "kind": "package_card", "title": "返现卡", "code": "CASH5"},
]
FUNNEL = {
    "stages": [
        {"id": "carded", "label": "包裹卡发出", "event": "card_sent"},
        {"id": "added", "label": "加微", "event": "friend_added"},
        {"id": "ordered", "label": "开单", "event": "order"},
        {"id": "repurchased", "label": "复购", "event": "order", "nth": 2},
    ],
    "window": "60d",
}
TAOBAO_HEADER = ["订单编号", "买家会员名", "买家支付宝账号", "买家应付货款", "买家实际支付金额", "订单状态", "收货人姓名", "收货地址", "联系手机",
                 "订单创建时间", "订单付款时间", "宝贝标题", "宝贝总数量", "店铺名称", "退款金额"]
# (order number, buyer, paid, status, created, paid at, refund)
TAOBAO_ORDERS = [
    ("3301234567890123401", "tb_alice", "199.00", "交易成功", "2026/12/1 9:58", "2026/12/1 10:00", "0.00"),
    ("3301234567890123402", "tb_bob", "¥1,299.00", "交易成功", "2026/12/2 8:20", "2026/12/2 8:30", "0.00"),
    ("3301234567890123403", "tb_carol", "89.00", "交易关闭", "2026/12/3 11:00", "", "0.00"),
    ("3301234567890123404", "tb_alice", "299.00", "卖家已发货，等待买家确认", "2026/12/10 20:00", "2026/12/10 20:01", "0.00"),
    ("3301234567890123405", "tb_carol", "59.00", "交易成功", "2026/12/4 12:00", "2026/12/4 12:05", "20.00"),
    ("3301234567890123406", "tb_alice", "99.00", "交易成功", "2026/12/20 7:00", "2026/12/20 7:02", "0.00"),
    ("3301234567890123407", "tb_dan", "49.90", "等待买家付款", "2026/12/5 9:00", "", "0.00"),
]
WECOM_HEADER = ["客户名称", "客户类型", "外部联系人ID", "添加人", "添加人账号", "添加时间", "添加渠道", "企业标签", "个人标签", "备注"]
# One customer once per staff member who added them (wm_alice by two).
WECOM_ROWS = [
    ["小爱", "微信", "wm_alice", "阿栖", "aqi", datetime(2026, 12, 3, 9, 0), "扫描渠道二维码（包裹卡-EYE100）", "包裹卡,眼霜", "爱美", ""],
    ["小博", "微信", "wm_bob", "阿栖", "aqi", datetime(2026, 12, 4, 10, 0), "扫描渠道二维码（包裹卡-EYE100）", "包裹卡", "", "tb_bob"],
    ["小爱", "微信", "wm_alice", "小福", "xiaofu", datetime(2026, 12, 5, 15, 30), "搜索手机号", "高客单", "", "淘宝老客"],
    ["小易", "微信", "wm_erin", "小福", "xiaofu", datetime(2026, 12, 5, 16, 0), "扫描渠道二维码（活动-SPRING）", "", "", ""],
]


def ok(*args: str) -> Any:
    result = siyu(*args)
    assert result.exit_code == 0, result.output
    return result


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def playbook(tmp_path: Path) -> Path:
    return write_playbook(tmp_path / "pb", hooks=HOOKS, funnel=FUNNEL)


def _cell(text: str) -> str:
    return f'"{text}"' if any(ch in text for ch in ',"\n') else text


def taobao_csv(path: Path, orders: list[tuple[str, ...]] = TAOBAO_ORDERS, *, blank_tail: int = 3) -> Path:
    """The 订单报表 as Taobao writes it: GB18030, CRLF, ids as Excel's ="…", amounts with ¥ and thousands, blank trailing rows."""
    lines = [",".join(TAOBAO_HEADER)]
    for number, buyer, paid, status, created, paid_at, refund in orders:
        cells = [f'="{number}"', buyer, "a***@163.com", paid, paid, status, "张*", "浙江省 杭州市 西湖区 ***", "138****0000",
                 created, paid_at, "紧致眼霜 30ml", "1", "栖山旗舰店", refund]
        lines.append(",".join(cell if cell.startswith('="') else _cell(cell) for cell in cells))
    lines += ["," * (len(TAOBAO_HEADER) - 1)] * blank_tail
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gb18030"))
    return path


def wecom_xlsx(path: Path, data: list[list[Any]] = WECOM_ROWS) -> Path:
    """The 客户列表 as WeCom's admin console writes it: a title row, real date cells, a second sheet of notes."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "客户列表"
    sheet.append(["客户列表（导出时间：2026-12-06 10:00，共 4 条）"])
    sheet.append(WECOM_HEADER)
    for row in data:
        sheet.append(row)
    for row in sheet.iter_rows(min_row=3, min_col=6, max_col=6):
        row[0].number_format = "yyyy-mm-dd hh:mm"
    notes = book.create_sheet("导出说明")
    notes.append(["说明"])
    notes.append(["同一客户被多名员工添加时，每名员工一行"])
    book.save(path)
    return path


def funnel_counts(pb: Path, db: Path, *extra: str) -> list[int]:
    report = json.loads(ok("report", "funnel", "-p", str(pb), "--db", str(db), "--json", *extra).output)
    return [stage["count"] for stage in report["stages"]]


# -- presets ---------------------------------------------------------------------------------------


def test_presets_are_listed_with_their_columns_and_shown_as_files() -> None:
    listed = ok("import", "presets").output
    for name in ("wecom-customers", "taobao-orders", "douyin-orders"):
        assert name in listed
    assert "订单编号 → event_id" in listed and "添加渠道 → source" in listed
    data = json.loads(ok("import", "presets", "--json").output)
    assert {row["name"]: row["for"] for row in data} == {"douyin-orders": "events", "taobao-orders": "events", "wecom-customers": "contacts"}
    shown = ok("import", "presets", "--show", "taobao-orders").output
    assert "订单状态:" in shown and "交易关闭: closed" in shown and "等待买家付款: skip" in shown
    missing = siyu("import", "presets", "--show", "jd-orders")
    assert missing.exit_code == 2 and "no such preset" in missing.output


def test_a_preset_for_the_other_import_is_a_usage_error(tmp_path: Path) -> None:
    result = siyu("import", "contacts", str(taobao_csv(tmp_path / "订单.csv")), "--preset", "taobao-orders", "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 2 and "import events" in result.output


def test_taobao_export_imports_with_one_command(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    export = taobao_csv(tmp_path / "ExportOrderList202612.csv")
    result = ok("import", "events", str(export), "--preset", "taobao-orders", "--create-contacts", "-p", str(pb), "--db", str(db))
    assert "gb18030" in result.output
    assert "left out by the mapping 2 (订单状态 交易关闭 1, 订单状态 等待买家付款 1)" in result.output
    stored = rows(db, "SELECT event_id, type, contact_id, at, amount FROM events ORDER BY event_id")
    assert stored == [
        ("3301234567890123401", "order", "tb_alice", "2026-12-01T02:00:00Z", 199.0),
        ("3301234567890123402", "order", "tb_bob", "2026-12-02T00:30:00Z", 1299.0),
        ("3301234567890123404", "order", "tb_alice", "2026-12-10T12:01:00Z", 299.0),
        ("3301234567890123405", "order", "tb_carol", "2026-12-04T04:05:00Z", 59.0),
        ("3301234567890123405/refund", "refund", "tb_carol", "2026-12-04T04:05:00Z", 20.0),
        ("3301234567890123406", "order", "tb_alice", "2026-12-19T23:02:00Z", 99.0),
    ]
    props = json.loads(rows(db, "SELECT props FROM events WHERE event_id = '3301234567890123401'")[0][0])
    assert props["宝贝标题"] == "紧致眼霜 30ml"
    assert not {"收货人姓名", "收货地址", "联系手机", "买家支付宝账号"} & set(props)  # personal data stays out of the store


def test_the_same_order_from_xlsx_and_csv_is_one_order(tmp_path: Path) -> None:
    from openpyxl import Workbook

    db = tmp_path / "s.db"
    ok("import", "events", str(taobao_csv(tmp_path / "orders.csv")), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    book = Workbook()
    sheet = book.active
    sheet.append(TAOBAO_HEADER)
    number, buyer, _, status, _, _, _ = TAOBAO_ORDERS[0]
    sheet.append([number, buyer, "", 199, 199, status, "", "", "", datetime(2026, 12, 1, 9, 58), datetime(2026, 12, 1, 10, 0), "紧致眼霜 30ml", 1, "栖山旗舰店", 0])
    sheet.append([f"'{TAOBAO_ORDERS[1][0]}", "tb_bob", "", 1299, 1299, "交易成功", "", "", "", datetime(2026, 12, 2, 8, 20), datetime(2026, 12, 2, 8, 30), "紧致眼霜 30ml", 1, "栖山旗舰店", 0])
    book.save(tmp_path / "orders.xlsx")
    again = ok("import", "events", str(tmp_path / "orders.xlsx"), "--preset", "taobao-orders", "--db", str(db))
    assert "inserted 0" in again.output and "duplicates skipped 2" in again.output
    assert rows(db, "SELECT COUNT(*) FROM events WHERE type = 'order'") == [(5,)]


def test_a_corrected_amount_is_an_update_counted_listed_and_dry_run_first(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ok("import", "events", str(taobao_csv(tmp_path / "week1.csv")), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    corrected = [list(order) for order in TAOBAO_ORDERS]
    corrected[0][2] = "189.00"
    corrected[3][6] = "299.00"  # fully refunded after the first export
    export = taobao_csv(tmp_path / "week2.csv", [tuple(order) for order in corrected])
    dry = ok("import", "events", str(export), "--preset", "taobao-orders", "--dry-run", "--db", str(db))
    assert "dry run, nothing written" in dry.output and "updated 1" in dry.output and "inserted 1" in dry.output
    assert "would update row 2: event 3301234567890123401: amount 199.0 → 189.0" in dry.output
    assert rows(db, "SELECT amount FROM events WHERE event_id = '3301234567890123401'") == [(199.0,)]
    done = ok("import", "events", str(export), "--preset", "taobao-orders", "--db", str(db), "--json")
    result = json.loads(done.output)
    assert (result["inserted"], result["updated"], result["duplicates"]) == (1, 1, 5)
    assert result["changes"] == [{"row": 2, "event_id": "3301234567890123401", "changes": {"amount": [199.0, 189.0]}}]
    assert rows(db, "SELECT amount FROM events WHERE event_id IN ('3301234567890123401', '3301234567890123404/refund') ORDER BY event_id") == [(189.0,), (299.0,)]


def test_one_order_twice_in_one_file_with_other_facts_is_a_bad_row_naming_both(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    twice = [*TAOBAO_ORDERS[:2], (TAOBAO_ORDERS[0][0], "tb_alice", "209.00", "交易成功", "2026/12/1 9:58", "2026/12/1 10:00", "0.00")]
    result = siyu("import", "events", str(taobao_csv(tmp_path / "o.csv", twice)), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert result.exit_code == 1
    assert "row 4: event '3301234567890123401' is also on row 2 with other facts (amount 199.0 there, 209.0 here)" in result.output
    assert not db.exists()  # a refused import leaves no store behind


def test_without_event_id_a_natural_key_dedups_and_updates(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    mapping = tmp_path / "orders.yaml"
    mapping.write_text("for: events\nkey: [contact_id, at]\n买家: contact_id\n时间: at\ntype: {const: order}\n金额: amount\n", encoding="utf-8")
    first = tmp_path / "a.csv"
    first.write_text("买家,时间,金额\nb1,2026-12-01 10:00,100\n", encoding="utf-8")
    ok("import", "events", str(first), "--map-file", str(mapping), "--create-contacts", "--db", str(db))
    first.write_text("买家,时间,金额\nb1,2026-12-01 10:00,120\n", encoding="utf-8")
    again = ok("import", "events", str(first), "--map-file", str(mapping), "--db", str(db))
    assert "inserted 0" in again.output and "updated 1" in again.output
    assert rows(db, "SELECT type, amount FROM events") == [("order", 120.0)]


# -- WeCom ------------------------------------------------------------------------------------------


def test_wecom_export_gives_contacts_and_one_add_per_staff_member(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    result = ok("import", "contacts", str(wecom_xlsx(tmp_path / "客户列表.xlsx")), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db))
    assert "sheet 客户列表, header on row 2" in result.output
    assert "inserted 3" in result.output and "add events inserted 4" in result.output
    assert "1 row(s): 添加渠道 named no hook" in result.output  # 搜索手机号: no code in it; SPRING is read by the pattern
    contacts = rows(db, "SELECT contact_id, name, tags, source, account, added_at, extra FROM contacts ORDER BY contact_id")
    alice = contacts[0]
    assert alice[:6] == ("wm_alice", "小爱", json.dumps(["包裹卡", "眼霜", "爱美", "高客单"], ensure_ascii=False), "EYE100", "aqi", "2026-12-03T01:00:00Z")
    assert json.loads(alice[6])["备注"] == "淘宝老客" and json.loads(alice[6])["添加渠道"] == "扫描渠道二维码（包裹卡-EYE100）"
    assert contacts[2][3] == "SPRING"
    adds = rows(db, "SELECT contact_id, at, hook, props FROM events WHERE type = 'friend_added' ORDER BY contact_id, at")
    assert adds == [
        ("wm_alice", "2026-12-03T01:00:00Z", "EYE100", '{"account": "aqi"}'),
        ("wm_alice", "2026-12-05T07:30:00Z", None, '{"account": "xiaofu"}'),
        ("wm_bob", "2026-12-04T02:00:00Z", "EYE100", '{"account": "aqi"}'),
        ("wm_erin", "2026-12-05T08:00:00Z", "SPRING", '{"account": "xiaofu"}'),
    ]
    again = ok("import", "contacts", str(tmp_path / "客户列表.xlsx"), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db))
    assert "inserted 0 · updated 0 · unchanged 3" in again.output
    assert rows(db, "SELECT COUNT(*) FROM events") == [(4,)]


def test_wecom_multi_staff_rows_do_not_depend_on_their_order(tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    stores = []
    for name, data in (("sorted", WECOM_ROWS), ("resorted", WECOM_ROWS[::-1])):
        db = tmp_path / f"{name}.db"
        ok("import", "contacts", str(wecom_xlsx(tmp_path / f"{name}.xlsx", data)), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db))
        stores.append(
            (
                rows(db, "SELECT contact_id, name, tags, source, account, added_at, extra FROM contacts ORDER BY contact_id"),
                rows(db, "SELECT event_id, type, contact_id, at, hook, props FROM events ORDER BY event_id"),
            )
        )
    assert stores[0] == stores[1]


def test_a_plain_contacts_file_giving_one_id_two_ways_names_both_rows(tmp_path: Path) -> None:
    export = tmp_path / "c.csv"
    export.write_text("contact_id,name,account\nc1,张三,a1\nc2,李四,a1\nc1,张三,a2\n", encoding="utf-8")
    result = siyu("import", "contacts", str(export), "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 1
    assert "row 4: contact 'c1' is also on row 2 with other values (account 'a1' vs 'a2')" in result.output


# -- identities and the funnel ----------------------------------------------------------------------


def test_funnel_follows_one_person_from_a_taobao_order_to_a_wecom_add(tmp_path: Path) -> None:
    """Hand-computed: carded = alice, bob, carol (carol's closed order ships nothing; dan never paid);
    added = alice (12-03 after her 12-01 card) and bob (12-04 after 12-02); ordered = alice (12-10, her
    first order after adding; bob's only order came before his add); repurchased = alice (12-20)."""
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    ok("import", "events", str(taobao_csv(tmp_path / "orders.csv")), "--preset", "taobao-orders", "--create-contacts", "--also", "card_sent", "-p", str(pb), "--db", str(db))
    # Staff write the buyer's Taobao name into 备注: an alias column on top of the preset links bob.
    (tmp_path / "alias.yaml").write_text("备注: {alias: true}\n", encoding="utf-8")
    wecom = ok("import", "contacts", str(wecom_xlsx(tmp_path / "客户列表.xlsx")), "--preset", "wecom-customers", "--map-file", str(tmp_path / "alias.yaml"), "-p", str(pb), "--db", str(db))
    assert "aliases linked 2 (1 contacts merged)" in wecom.output  # tb_bob merged; 淘宝老客 is only an alias
    linked = ok("contacts", "link", "wm_alice", "tb_alice", "--db", str(db))
    assert "merged contacts tb_alice (6 events moved)" in linked.output
    assert funnel_counts(pb, db) == [3, 2, 1, 1]
    assert rows(db, "SELECT contact_id FROM contacts ORDER BY contact_id") == [("tb_carol",), ("wm_alice",), ("wm_bob",), ("wm_erin",)]
    # An event naming an alias lands on the contact, from an import and from track.
    (tmp_path / "more.csv").write_text("type,contact_id,at,amount\norder,tb_bob,2026-12-06 10:00,88\n", encoding="utf-8")
    ok("import", "events", str(tmp_path / "more.csv"), "-p", str(pb), "--db", str(db))
    ok("track", "refund", "--contact", "tb_bob", "--at", "2026-12-07 10:00", "--amount", "88", "-p", str(pb), "--db", str(db))
    assert rows(db, "SELECT type, contact_id FROM events WHERE at >= '2026-12-06' AND contact_id LIKE '%bob' ORDER BY at") == [("order", "wm_bob"), ("refund", "wm_bob")]
    assert funnel_counts(pb, db) == [3, 2, 2, 1]
    shown = json.loads(ok("contacts", "show", "tb_alice", "-p", str(pb), "--db", str(db), "--json").output)
    assert shown["id"] == "wm_alice" and shown["aliases"] == ["tb_alice", "淘宝老客"]
    # Re-importing the Taobao export changes nothing: its buyers now resolve to the WeCom contacts.
    again = ok("import", "events", str(tmp_path / "orders.csv"), "--preset", "taobao-orders", "--also", "card_sent", "-p", str(pb), "--db", str(db))
    assert "inserted 0 · updated 0" in again.output


def test_linking_an_alias_of_someone_else_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    export = tmp_path / "c.csv"
    export.write_text("contact_id,name\nwm1,甲\nwm2,乙\n", encoding="utf-8")
    ok("import", "contacts", str(export), "--db", str(db))
    ok("contacts", "link", "wm1", "tb_x", "--db", str(db))
    refused = siyu("contacts", "link", "wm2", "tb_new", "tb_x", "--db", str(db))
    assert refused.exit_code == 1 and "already an alias of contact 'wm1'" in refused.output
    assert rows(db, "SELECT alias, contact_id FROM aliases") == [("tb_x", "wm1")]
    assert siyu("contacts", "link", "nobody", "tb_y", "--db", str(db)).exit_code == 1


# -- mapping files ---------------------------------------------------------------------------------

CUSTOM = """\
# 门店小程序的订单表：第 2 张表，第 3 行是表头
for: events
sheet: 订单
header_row: 3
流水号: event_id
会员: contact_id
手机号: {alias: true}
下单时间: at
实收: amount
渠道: {field: hook, match: '码(\\w+)$'}
状态: {field: type, values: {已完成: order, 已退款: refund, 已取消: skip}}
cohort: {const: b12}
"""


def _custom_book(path: Path, statuses: tuple[str, ...] = ("已完成", "已退款", "已取消")) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "汇总"
    book.active.append(["本月合计", 3])
    sheet = book.create_sheet("订单")
    sheet.append(["门店订单"])
    sheet.append([])
    sheet.append(["流水号", "会员", "手机号", "下单时间", "实收", "渠道", "状态"])
    for i, status in enumerate(statuses):
        sheet.append([f"S{i}", "m1", "13800000001", datetime(2026, 12, 1, 10 + i), 100 + i, "门店码A1", status])
    book.save(path)
    return path


def test_a_custom_mapping_file_says_everything_a_preset_says(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    (tmp_path / "store.yaml").write_text(CUSTOM, encoding="utf-8")
    result = ok("import", "events", str(_custom_book(tmp_path / "门店.xlsx")), "--map-file", str(tmp_path / "store.yaml"), "--create-contacts", "--db", str(db))
    assert "sheet 订单, header on row 3" in result.output and "left out by the mapping 1 (状态 已取消 1)" in result.output
    assert rows(db, "SELECT event_id, type, contact_id, hook, cohort, amount FROM events ORDER BY event_id") == [
        ("S0", "order", "m1", "A1", "b12", 100.0),
        ("S1", "refund", "m1", "A1", "b12", 101.0),
    ]
    assert rows(db, "SELECT alias, contact_id FROM aliases") == [("13800000001", "m1")]


def test_mapping_errors_name_the_users_column(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    (tmp_path / "store.yaml").write_text(CUSTOM, encoding="utf-8")
    unmapped = siyu("import", "events", str(_custom_book(tmp_path / "b.xlsx", ("已完成", "待发货"))), "--map-file", str(tmp_path / "store.yaml"), "--create-contacts", "--db", str(db))
    assert unmapped.exit_code == 1 and "row 5: 状态: '待发货' is not one of the values the mapping lists" in unmapped.output
    (tmp_path / "bad.yaml").write_text("下单时间: {field: when}\n", encoding="utf-8")
    bad_field = siyu("import", "events", str(tmp_path / "b.xlsx"), "--map-file", str(tmp_path / "bad.yaml"), "--sheet", "订单", "--db", str(db))
    assert bad_field.exit_code == 2 and "下单时间: 'when' is not a events column" in bad_field.output
    (tmp_path / "typo.yaml").write_text("状态: {feild: type}\n", encoding="utf-8")
    typo = siyu("import", "events", str(tmp_path / "b.xlsx"), "--map-file", str(tmp_path / "typo.yaml"), "--db", str(db))
    assert typo.exit_code == 1 and "状态: unknown option 'feild'" in typo.output
    when = tmp_path / "t.csv"
    when.write_text("会员,付款时间,type\nm1,2026-13-01 10:00,order\n", encoding="utf-8")
    located = siyu("import", "events", str(when), "--map", "会员=contact_id", "--map", "付款时间=at", "--create-contacts", "--db", str(db))
    assert located.exit_code == 1 and "row 2: 付款时间: '2026-13-01 10:00' is not a valid time" in located.output


# -- douyin ----------------------------------------------------------------------------------------


def test_douyin_sub_orders_are_one_order_whatever_their_order(tmp_path: Path) -> None:
    header = ["主订单编号", "子订单编号", "选购商品", "商品数量", "订单应付金额", "收件人", "收件人手机号", "详细地址", "订单提交时间", "支付完成时间", "订单状态", "用户ID"]
    parts = [
        ["6920000000000000001", "6920000000000000011", "眼霜", "1", "199.00", "王*", "138****", "***", "2026-12-01 10:00:00", "2026-12-01 10:01:00", "已完成", "dy_1"],
        ["6920000000000000002", "6920000000000000021", "面霜", "1", "99.00", "李*", "139****", "***", "2026-12-02 10:00:00", "", "待支付", "dy_2"],
        ["6920000000000000001", "6920000000000000012", "面膜", "2", "60.50", "王*", "138****", "***", "2026-12-01 10:00:00", "2026-12-01 10:01:00", "已完成", "dy_1"],
    ]
    found = []
    for name, data in (("a", parts), ("b", parts[::-1])):
        export = tmp_path / f"{name}.csv"
        export.write_bytes(("\ufeff" + "\r\n".join(",".join(row) for row in [header, *data]) + "\r\n").encode("utf-8"))
        db = tmp_path / f"{name}.db"
        result = ok("import", "events", str(export), "--preset", "douyin-orders", "--create-contacts", "--db", str(db))
        assert "left out by the mapping 1 (订单状态 待支付 1)" in result.output
        found.append(rows(db, "SELECT event_id, type, contact_id, at, amount FROM events"))
    assert found[0] == found[1] == [("6920000000000000001", "order", "dy_1", "2026-12-01T02:01:00Z", 259.5)]


# -- no silent corruption: --skip-bad ---------------------------------------------------------------


def test_skip_bad_onto_the_input_or_an_existing_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    export = taobao_csv(tmp_path / "orders.csv")
    before = export.read_bytes()
    onto_input = siyu("import", "events", str(export), "--preset", "taobao-orders", "--skip-bad", str(export), "--db", str(db))
    assert onto_input.exit_code == 2 and "that is the file being imported" in onto_input.output
    same_file_other_name = siyu("import", "events", str(export), "--preset", "taobao-orders", "--skip-bad", str(tmp_path / "." / "orders.csv"), "--force", "--db", str(db))
    assert same_file_other_name.exit_code == 2
    assert export.read_bytes() == before
    existing = tmp_path / "rejects.csv"
    existing.write_text("keep me\n", encoding="utf-8")
    refused = siyu("import", "events", str(export), "--preset", "taobao-orders", "--skip-bad", str(existing), "--db", str(db))
    assert refused.exit_code == 2 and "--force" in refused.output and existing.read_text(encoding="utf-8") == "keep me\n"
    forced = ok("import", "events", str(export), "--preset", "taobao-orders", "--skip-bad", str(existing), "--force", "--db", str(db))
    assert "bad rows skipped 5" in forced.output  # no --create-contacts: every paid order's buyer is unknown
    assert not rows(db, "SELECT COUNT(*) FROM events")[0][0]


# -- files as they come -----------------------------------------------------------------------------


def test_encoding_option_and_a_wrong_one_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    export = taobao_csv(tmp_path / "orders.csv")
    forced = ok("import", "events", str(export), "--preset", "taobao-orders", "--encoding", "GB18030", "--create-contacts", "--db", str(db))
    assert "gb18030" in forced.output and "inserted 6" in forced.output
    narrower = siyu("import", "events", str(export), "--preset", "taobao-orders", "--encoding", "gbk", "--db", str(db))
    assert narrower.exit_code == 1 and "not valid gbk" in narrower.output  # ¥ is GB18030 only
    wrong = siyu("import", "events", str(export), "--preset", "taobao-orders", "--encoding", "utf-8", "--db", str(db))
    assert wrong.exit_code == 1 and "not valid utf-8" in wrong.output
    unknown = siyu("import", "events", str(export), "--encoding", "klingon", "--db", str(db))
    assert unknown.exit_code == 2 and "no such encoding" in unknown.output


def test_sheet_by_name_or_number_and_a_missing_one(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    book = _custom_book(tmp_path / "b.xlsx")
    maps = ["--map", "流水号=event_id", "--map", "会员=contact_id", "--map", "下单时间=at", "--map", "实收=amount", "--map", "状态=-", "--create-contacts", "--also", "order"]
    first = siyu("import", "events", str(book), *maps, "--db", str(db))
    assert first.exit_code == 1 and "(sheet '汇总')" in first.output and "the workbook also has: 订单; pick one with --sheet" in first.output
    by_number = siyu("import", "events", str(book), "--sheet", "2", "--map", "状态=type", *maps[:-2], "--db", str(db), "--dry-run")
    assert by_number.exit_code == 1 and "'已取消'" in by_number.output  # the sheet was read: its status is no event type
    missing = siyu("import", "events", str(book), "--sheet", "退款", *maps, "--db", str(db))
    assert missing.exit_code == 2 and "the sheets are: 汇总, 订单" in missing.output
    too_far = siyu("import", "events", str(book), "--sheet", "3", *maps, "--db", str(db))
    assert too_far.exit_code == 2 and "2 sheet(s)" in too_far.output


def test_a_csv_title_row_above_the_header_is_passed_over(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    export = tmp_path / "c.csv"
    export.write_bytes("客户导出 2026-12-06\r\n\r\ncontact_id,name\r\nc1,张三\r\n".encode("gb18030"))
    result = ok("import", "contacts", str(export), "--db", str(db))
    assert "header on row 3" in result.output and rows(db, "SELECT contact_id, name FROM contacts") == [("c1", "张三")]


def test_report_bounds_take_every_import_time_form_and_no_time_is_a_traceback(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    ok("import", "events", str(taobao_csv(tmp_path / "orders.csv")), "--preset", "taobao-orders", "--create-contacts", "--also", "card_sent", "-p", str(pb), "--db", str(db))
    assert funnel_counts(pb, db, "--since", "2026/12/2", "--until", "2026年12月4日")[0] == 2  # bob 12-02, carol 12-04 (the whole day)
    assert funnel_counts(pb, db, "--since", "2026/12/1 8:30")[0] == 3
    for args in (["report", "funnel", "-p", str(pb), "--db", str(db), "--since", "0001-01-01"], ["track", "order", "--contact", "tb_bob", "--at", "0001-01-01 00:00", "--db", str(db), "-p", str(pb)],
                 ["track", "order", "--contact", "tb_bob", "--at", "9999-12-31T23:59:59-08:00", "--db", str(db), "-p", str(pb)]):
        result = siyu(*args)
        assert result.exit_code == 2 and "out of range" in result.output, result.output
    export = tmp_path / "old.csv"
    export.write_text("type,contact_id,at\norder,tb_bob,0001-01-01 00:00\n", encoding="utf-8")
    old = siyu("import", "events", str(export), "-p", str(pb), "--db", str(db))
    assert old.exit_code == 1 and "row 2: at: '0001-01-01 00:00' is out of range" in old.output


# -- presets from a wheel ---------------------------------------------------------------------------


def test_presets_work_from_a_non_editable_install(installed: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture imported above)
    listed = _run(installed, tmp_path, "import", "presets")
    assert listed.returncode == 0 and "taobao-orders" in listed.stdout, listed.stderr
    export = taobao_csv(tmp_path / "orders.csv")
    imported = _run(installed, tmp_path, "import", "events", str(export), "--preset", "taobao-orders", "--create-contacts", "--db", str(tmp_path / "s.db"))
    assert imported.returncode == 0 and "inserted 6" in imported.stdout, imported.stdout + imported.stderr
