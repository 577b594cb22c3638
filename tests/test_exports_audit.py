"""Real exports, after a hostile audit (issue 11): each test is one way an export could be misread without a word,
imported through the CLI the way an operator would, and the number or message it must give instead."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from tests.test_data_cli import _isolated, siyu  # noqa: F401 (the autouse fixture: each test runs in its tmp_path)
from tests.test_exports import TAOBAO_ORDERS, ok, playbook, rows, taobao_csv, wecom_xlsx

OUT_OF_RANGE = "write a year from 1000 to 9998"


def csv_file(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def wecom_row(cid: str, channel: str, note: str = "", day: int = 3) -> list[object]:
    return ["名字", "微信", cid, "阿栖", "aqi", datetime(2026, 12, day, 9, 0), channel, "", "", note]


# -- 1. hook codes match whole ---------------------------------------------------------------------


def test_a_hook_code_inside_a_longer_code_is_not_that_hook(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)  # hooks: card-repurchase (EYE100), card-cashback (CASH5)
    data = [
        wecom_row("w1", "扫描渠道二维码（返现卡-CASH50）"),
        wecom_row("w2", "扫描渠道二维码（EYE1000）"),
        wecom_row("w3", "扫描渠道二维码（card-repurchase-2）"),
        wecom_row("w4", "扫描渠道二维码（包裹卡-EYE100）"),
        wecom_row("w5", "渠道 card-cashback"),
        wecom_row("w6", "搜索手机号"),
    ]
    result = ok("import", "contacts", str(wecom_xlsx(tmp_path / "c.xlsx", data)), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db))
    assert rows(db, "SELECT contact_id, source FROM contacts ORDER BY contact_id") == [
        ("w1", "CASH50"), ("w2", "EYE1000"), ("w3", "card-repurchase-2"), ("w4", "EYE100"), ("w5", "CASH5"), ("w6", None),
    ]
    assert "1 row(s): 添加渠道 named no hook of the playbook" in result.output
    assert "添加渠道 gave codes that are no hook of the playbook: CASH50 (1), EYE1000 (1), card-repurchase-2 (1)" in result.output


# -- 2. masked buyer names -------------------------------------------------------------------------


def test_a_masked_buyer_name_never_merges_buyers(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    header = "订单编号,买家会员名,买家ID,买家实际支付金额,订单状态,订单付款时间,退款金额"
    export = csv_file(tmp_path / "o.csv", [header, '="3301",t**g,2201234567,¥10.00,交易成功,2026/12/1 8:30,0', '="3302",t**g,2201239999,¥20.00,交易成功,2026/12/1 9:30,0'], "gb18030")
    ok("import", "events", str(export), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    stored = rows(db, "SELECT event_id, contact_id, props FROM events ORDER BY event_id")
    assert [row[:2] for row in stored] == [("3301", "2201234567"), ("3302", "2201239999")]
    assert json.loads(stored[0][2])["买家会员名"] == "t**g"  # kept beside the order, never an alias
    assert rows(db, "SELECT COUNT(*) FROM aliases") == [(0,)]
    # An unmasked name beside the id is an alias of the buyer.
    named = csv_file(tmp_path / "n.csv", [header, '="3303",tb_zhang,2201234567,¥30.00,交易成功,2026/12/2 8:30,0'], "gb18030")
    ok("import", "events", str(named), "--preset", "taobao-orders", "--db", str(db))
    assert rows(db, "SELECT alias, contact_id FROM aliases") == [("tb_zhang", "2201234567")]
    # Only a masked name: no identity, a bad row that says so.
    masked_only = csv_file(tmp_path / "m.csv", ["订单编号,买家会员名,买家实际支付金额,订单状态,订单付款时间", '="3304",t**g,¥10.00,交易成功,2026/12/1 8:30'], "gb18030")
    refused = siyu("import", "events", str(masked_only), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert refused.exit_code == 1 and "row 2: 买家会员名: 't**g' is masked" in refused.output and "买家ID" in refused.output
    assert rows(db, "SELECT COUNT(*) FROM events") == [(3,)]


# -- 3. an order closed after the fact -------------------------------------------------------------


def test_a_paid_order_closed_later_records_its_refund_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    paid = ("3301234567890129999", "tb_frank", "¥500.00", "买家已付款，等待卖家发货", "2026/12/2 9:00", "2026/12/2 9:01", "¥0.00")
    ok("import", "events", str(taobao_csv(tmp_path / "w1.csv", [paid])), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    closed = [(*paid[:3], "交易关闭", *paid[4:6], "¥500.00")]
    dry = ok("import", "events", str(taobao_csv(tmp_path / "w2.csv", closed)), "--preset", "taobao-orders", "--db", str(db), "--dry-run")
    assert "closed row 2: order 3301234567890129999 (订单状态 交易关闭; counted before, now closed): refund 500 would be recorded" in dry.output
    done = json.loads(ok("import", "events", str(tmp_path / "w2.csv"), "--preset", "taobao-orders", "--db", str(db), "--json").output)
    assert done["closed_orders"] == 1 and done["closed"][0]["refund"] == 500.0
    assert rows(db, "SELECT event_id, type, amount FROM events ORDER BY event_id") == [
        ("3301234567890129999", "order", 500.0), ("3301234567890129999/refund", "refund", 500.0)
    ]
    # Closed without a refund amount in the export: the whole amount comes back.
    other = ("3301234567890128888", "tb_gina", "¥80.00", "交易成功", "2026/12/3 9:00", "2026/12/3 9:01", "¥0.00")
    ok("import", "events", str(taobao_csv(tmp_path / "w3.csv", [other])), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    ok("import", "events", str(taobao_csv(tmp_path / "w4.csv", [(*other[:3], "交易关闭", *other[4:])])), "--preset", "taobao-orders", "--db", str(db))
    assert rows(db, "SELECT amount FROM events WHERE event_id = '3301234567890128888/refund'") == [(80.0,)]


def test_a_closed_order_first_seen_is_its_order_and_refund_or_left_out_if_never_paid(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    orders = [
        ("3301", "tb_a", "¥500.00", "交易关闭", "2026/12/2 9:00", "2026/12/2 9:01", "¥500.00"),  # paid, refunded, closed
        ("3302", "tb_b", "¥89.00", "交易关闭", "2026/12/3 11:00", "", "¥0.00"),  # never paid
        ("3303", "tb_c", "¥59.00", "交易关闭", "2026/12/4 11:00", "2026/12/4 11:05", "¥0.00"),  # paid, closed, nothing refunded, never counted
    ]
    result = ok("import", "events", str(taobao_csv(tmp_path / "o.csv", orders)), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert "left out by the mapping 2 (订单状态 交易关闭 2)" in result.output and "paid, then refunded" in result.output
    assert rows(db, "SELECT event_id, type, amount FROM events ORDER BY event_id") == [("3301", "order", 500.0), ("3301/refund", "refund", 500.0)]


def test_a_closed_douyin_order_refunds_the_sum_of_its_parts_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    header = "主订单编号,子订单编号,订单应付金额,订单状态,支付完成时间,用户ID,退款金额"
    parts = ["\t69001,\t690011,100.00,{s},2026-12-02 10:00:05,\tdy_u1,0.00", "\t69001,\t690012,50.00,{s},2026-12-02 10:00:05,\tdy_u1,0.00"]
    done = csv_file(tmp_path / "a.csv", [header, *(part.format(s="已完成") for part in parts)])
    ok("import", "events", str(done), "--preset", "douyin-orders", "--create-contacts", "--db", str(db))
    closed = csv_file(tmp_path / "b.csv", [header, *(part.format(s="已关闭") for part in parts)])
    result = ok("import", "events", str(closed), "--preset", "douyin-orders", "--db", str(db))
    assert "closed orders refunded 1" in result.output and "refund 150 recorded" in result.output
    assert rows(db, "SELECT event_id, type, amount FROM events ORDER BY event_id") == [("69001", "order", 150.0), ("69001/refund", "refund", 150.0)]


# -- 4. a mapping naming a column the file lacks -----------------------------------------------------


def test_a_typo_in_a_mapped_column_is_an_error_with_the_closest_column(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    export = taobao_csv(tmp_path / "o.csv")
    (tmp_path / "amount.yaml").write_text("for: events\n订单编号: event_id\n买家会员名: contact_id\n买家实付金额: amount\n订单付款时间: {field: at, empty: skip}\ntype: {const: order}\n", encoding="utf-8")
    typo = siyu("import", "events", str(export), "--map-file", str(tmp_path / "amount.yaml"), "--create-contacts", "--db", str(db))
    assert typo.exit_code == 1 and "column '买家实付金额' (amount, named in" in typo.output and "did you mean '买家实际支付金额'?" in typo.output
    assert not db.exists() or rows(db, "SELECT COUNT(*) FROM events") == [(0,)]
    (tmp_path / "type.yaml").write_text("for: events\n订单编号: event_id\n买家会员名: contact_id\n订单付款时间: at\n订单状太: {field: type, values: {交易成功: order}, other: skip}\n", encoding="utf-8")
    status = siyu("import", "events", str(export), "--map-file", str(tmp_path / "type.yaml"), "--create-contacts", "--db", str(db))
    assert status.exit_code == 1 and "column '订单状太' (type" in status.output and "did you mean '订单状态'?" in status.output
    assert "no type column" not in status.output
    # A preset's alternative columns are optional, and listed so.
    listed = ok("import", "presets").output
    assert "退款金额 → refund  (optional)" in listed and "实付款 → amount\n" in listed and "needs type, contact_id, at, event_id, amount" in listed


def test_the_wrong_preset_names_the_files_header_not_its_title(tmp_path: Path) -> None:
    wrong = siyu("import", "events", str(wecom_xlsx(tmp_path / "c.xlsx")), "--preset", "taobao-orders", "--db", str(tmp_path / "s.db"))
    assert wrong.exit_code == 1 and "the file's columns are: 客户名称, 客户类型, 外部联系人ID" in wrong.output
    assert "客户列表（导出时间" not in wrong.output


# -- 5. alias: with match: -------------------------------------------------------------------------


def test_an_alias_column_takes_only_what_its_match_finds(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    (tmp_path / "alias.yaml").write_text("备注: {alias: true, match: '(tb_\\w+)'}\n", encoding="utf-8")
    data = [wecom_row("w1", "扫描渠道二维码（包裹卡-EYE100）", "淘宝 tb_zhang"), wecom_row("w2", "搜索手机号", "第二位员工"), wecom_row("w3", "搜索手机号", "138****0001")]
    ok("import", "contacts", str(wecom_xlsx(tmp_path / "c.xlsx", data)), "--preset", "wecom-customers", "--map-file", str(tmp_path / "alias.yaml"), "-p", str(pb), "--db", str(db))
    assert rows(db, "SELECT alias, contact_id FROM aliases") == [("tb_zhang", "w1")]
    assert json.loads(rows(db, "SELECT extra FROM contacts WHERE contact_id = 'w2'")[0][0])["备注"] == "第二位员工"  # the cell is kept


# -- 6. in-file conflicts whatever the store holds -----------------------------------------------------


def test_one_id_twice_in_a_file_is_a_conflict_even_when_the_first_row_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ok("import", "events", str(taobao_csv(tmp_path / "o.csv")), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    twice = [*TAOBAO_ORDERS, (TAOBAO_ORDERS[0][0], "tb_alice", "209.00", *TAOBAO_ORDERS[0][3:])]
    result = siyu("import", "events", str(taobao_csv(tmp_path / "twice.csv", twice)), "--preset", "taobao-orders", "--db", str(db))
    assert result.exit_code == 1 and "row 9: event '3301234567890123401' is also on row 2 with other facts" in result.output
    assert rows(db, "SELECT amount FROM events WHERE event_id = '3301234567890123401'") == [(199.0,)]
    (tmp_path / "key.yaml").write_text("for: events\nkey: [contact_id, at]\n买家: contact_id\n时间: at\n金额: amount\ntype: {const: order}\n", encoding="utf-8")
    csv_file(tmp_path / "k1.csv", ["买家,时间,金额", "b1,2026/12/1 8:30,100"])
    ok("import", "events", str(tmp_path / "k1.csv"), "--map-file", str(tmp_path / "key.yaml"), "--create-contacts", "--db", str(db))
    csv_file(tmp_path / "k2.csv", ["买家,时间,金额", "b1,2026/12/1 8:30,100", "b1,2026/12/1 8:30,120"])
    keyed = siyu("import", "events", str(tmp_path / "k2.csv"), "--map-file", str(tmp_path / "key.yaml"), "--db", str(db))
    assert keyed.exit_code == 1 and "row 3: event" in keyed.output and "also on row 2" in keyed.output


# -- 7. ids whose digits are lost ------------------------------------------------------------------


def test_an_id_excel_stored_as_a_number_is_a_bad_row_not_a_new_order(tmp_path: Path) -> None:
    from openpyxl import Workbook

    db = tmp_path / "s.db"
    book = Workbook()
    book.active.append(["订单编号", "买家会员名", "买家实际支付金额", "订单状态", "订单付款时间"])
    book.active.append([3301234567890123456.0, "tb_zhang", 1299, "交易成功", datetime(2026, 12, 1, 8, 30)])
    book.active.append(["3301234567890123458", "tb_zhang", 399, "交易成功", datetime(2026, 12, 5, 14, 0)])
    book.save(tmp_path / "o.xlsx")
    result = siyu("import", "events", str(tmp_path / "o.xlsx"), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert result.exit_code == 1 and "row 2: 订单编号: 3.30123456789012E+18 is a number in the workbook" in result.output and "format the column as text" in result.output
    resaved = csv_file(tmp_path / "o.csv", ["订单编号,买家会员名,买家实际支付金额,订单状态,订单付款时间", "3.30123E+18,tb_zhang,1299,交易成功,2026/12/1 8:30"])
    csv_result = siyu("import", "events", str(resaved), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert csv_result.exit_code == 1 and "'3.30123E+18' is an id in scientific notation" in csv_result.output
    assert not db.exists() or rows(db, "SELECT COUNT(*) FROM events") == [(0,)]


# -- 8. --skip-bad onto a hard link of the input -----------------------------------------------------


def test_skip_bad_onto_a_hard_link_of_the_input_is_refused_even_with_force(tmp_path: Path) -> None:
    export = taobao_csv(tmp_path / "in.csv")
    before = export.read_bytes()
    os.link(export, tmp_path / "hard.csv")
    result = siyu("import", "events", str(export), "--preset", "taobao-orders", "--skip-bad", str(tmp_path / "hard.csv"), "--force", "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 2 and "that is the file being imported" in result.output
    assert export.read_bytes() == before


# -- 9. amounts that could be misread --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("-¥15.00", "order amount -15 is negative"),
        ("¥-15.00", "order amount -15 is negative"),
        ("1.299,00", "has a decimal comma"),
        ("¥12,34.5", "thousands separators not in groups of three"),
        ("1e3", "scientific notation"),
    ],
)
def test_an_amount_that_could_be_misread_is_a_bad_row(tmp_path: Path, cell: str, reason: str) -> None:
    export = taobao_csv(tmp_path / "o.csv", [("3301", "tb_a", cell, "交易成功", "2026/12/1 8:00", "2026/12/1 8:30", "0.00")])
    result = siyu("import", "events", str(export), "--preset", "taobao-orders", "--create-contacts", "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 1 and "row 2: 买家实际支付金额: " in result.output and reason in result.output


def test_plain_amounts_still_read_and_a_negative_refund_does_not(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    good = [(f"33{i}", "tb_a", cell, "交易成功", "2026/12/1 8:00", f"2026/12/1 8:{i:02d}", "0.00") for i, cell in enumerate(["¥1,299.00", "1299", "1,299.5", "￥88.00", "99元"])]
    ok("import", "events", str(taobao_csv(tmp_path / "o.csv", good)), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    assert [amount for (amount,) in rows(db, "SELECT amount FROM events ORDER BY event_id")] == [1299.0, 1299.0, 1299.5, 88.0, 99.0]
    refund = taobao_csv(tmp_path / "r.csv", [("3399", "tb_a", "88.00", "交易成功", "2026/12/1 8:00", "2026/12/1 9:00", "-5")])
    result = siyu("import", "events", str(refund), "--preset", "taobao-orders", "--db", str(db))
    assert result.exit_code == 1 and "退款金额: refund amount -5 is negative" in result.output
    tracked = siyu("track", "order", "--contact", "tb_a", "--amount", "-5", "--db", str(db))
    assert tracked.exit_code == 2 and "negative" in tracked.output


# -- 10. contact updates: by value, and listed -----------------------------------------------------------


def test_reimporting_an_unchanged_export_after_a_link_changes_nothing_and_changes_are_listed(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    export = wecom_xlsx(tmp_path / "c.xlsx")
    ok("import", "contacts", str(export), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db))
    ok("import", "events", str(taobao_csv(tmp_path / "o.csv")), "--preset", "taobao-orders", "--create-contacts", "--db", str(db))
    ok("contacts", "link", "wm_alice", "tb_alice", "--db", str(db))  # a merge rewrites the contact's JSON
    again = ok("import", "contacts", str(export), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db), "--json")
    assert (json.loads(again.output)["updated"], json.loads(again.output)["changes"]) == (0, [])
    from tests.test_exports import WECOM_ROWS

    changed = [list(row) for row in WECOM_ROWS]
    changed[1][7] = "包裹卡,已购"
    changed[1][9] = "tb_bob 复购"
    dry = ok("import", "contacts", str(wecom_xlsx(tmp_path / "c2.xlsx", changed)), "--preset", "wecom-customers", "-p", str(pb), "--db", str(db), "--dry-run")
    assert "updated 1" in dry.output and "… and" not in dry.output
    assert "would update row 4: contact wm_bob: tags ['包裹卡'] → ['包裹卡', '已购']; 备注 'tb_bob' → 'tb_bob 复购'" in dry.output


# -- 11. one rule for years ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--at", "0001-01-01T00:00:00Z"],
        ["--now", "0001-01-01T00:00:00Z"],
        ["--at", "0999-12-31T23:00:00Z"],
        ["--at", "0001-01-01T08:00:00+08:00"],
        ["--at", "9999-01-01T00:00:00Z"],
        ["--at", "0000-01-01"],
    ],
)
def test_track_refuses_a_year_the_store_cannot_hold_with_one_message(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "s.db"
    result = siyu("track", "order", "--contact", "u1", "--create-contact", "--amount", "5", *args, "--db", str(db), "--tz", "Asia/Shanghai")
    assert result.exit_code == 2 and OUT_OF_RANGE in result.output, result.output
    assert not db.exists() or rows(db, "SELECT COUNT(*) FROM events") == [(0,)]


def test_imports_and_report_bounds_use_the_same_year_rule(tmp_path: Path) -> None:
    db, pb = tmp_path / "s.db", playbook(tmp_path)
    export = csv_file(tmp_path / "e.csv", ["type,contact_id,at", "order,u1,0999-12-31T23:00:00Z", "order,u1,1000-01-01 00:00"])
    result = siyu("import", "events", str(export), "--create-contacts", "-p", str(pb), "--db", str(db))
    assert result.exit_code == 1 and f"row 2: at: '0999-12-31T23:00:00Z' is out of range; {OUT_OF_RANGE}" in result.output
    assert f"row 3: at: '1000-01-01 00:00' is out of range; {OUT_OF_RANGE}" in result.output  # 999-12-31 16:00 in UTC
    since = siyu("report", "funnel", "-p", str(pb), "--db", str(db), "--since", "0001-01-01")
    assert since.exit_code == 2 and OUT_OF_RANGE in since.output and "1-9999" not in since.output


def test_a_pipe_is_refused_with_what_to_do_instead_and_nothing_is_imported(tmp_path: Path) -> None:
    import subprocess

    from tests.playbooks_fixtures import siyu_cmd, siyu_env

    proc = subprocess.run(
        siyu_cmd("import", "contacts", "/dev/stdin", "--db", "s.db"), cwd=tmp_path, env=siyu_env(), input="contact_id,name\nc1,甲\n",
        capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "/dev/stdin: a pipe or stream cannot be imported, only a file" in proc.stderr and "save it to a file first" in proc.stderr
    assert not (tmp_path / "s.db").exists()
