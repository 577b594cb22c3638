"""`siyu check`: every error class, located by file, line, column and YAML path; never a traceback."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app

BASE = """\
siyu: 1
id: camp
title: 测试营
timezone: Asia/Shanghai
start: 2026-12-01
days: 5
personas:
  - {id: host, name: 小丸子, account: wx_host_01}
products:
  - {id: member, name: 年度会员卡, price: 365, tier: profit}
phases:
  - {id: open, title: 开营, days: "1"}
  - {id: learn, title: 学习, days: "2-5"}
segments:
  unpaid: "家长 and not 已购"
groups:
  - {id: g1, name: 一群, persona: host}
limits: {quiet_hours: "22:30-08:00", per_contact_per_day: 5}
beats:
  - {id: morning, title: 早分享, at: "08:30", channel: group, text: "第{{ day }}天 {{ group.name }} 早上好"}
  - {id: close, at: "20:00", days: "4-5", channel: private, audience: unpaid, text: "{{ contact.name }}，{{ products.member.price }}元"}
"""


def run(tmp_path: Path, text: str, *args: str, name: str = "playbook.yaml") -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), *args])
    output = result.output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, output


def test_valid_playbook_passes(tmp_path: Path) -> None:
    code, output = run(tmp_path, BASE)
    assert code == 0
    assert "✓ ok" in output


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("days: 5\n", "days: 5\n  bad: [\n", "YAML syntax"),
        ("days: 5", "days: five", "days: Input should be a valid integer"),
        ("  - {id: morning, title: 早分享,", "  - {id: morning, titel: 早分享,", "unknown key 'titel' (did you mean 'title'?)"),
        ("id: camp\n", "", "missing required field 'id'"),
        ("persona: host}", "persona: hots}", "unknown persona 'hots' (did you mean 'host'?)"),
        ('days: "2-5"}', 'days: "3-5"}', "days 2 are in no phase"),
        ('days: "2-5"}', 'days: "1-5"}', "day 1 is already in phase 'open'"),
        ('days: "4-5", channel', 'days: "4-9", channel', "reaches day 9, but the campaign has 5 day(s)"),
        ('at: "08:30"', 'at: "8:75"', "is not a time of day"),
        ("audience: unpaid", 'audience: "家长 and ("', "not a segment id and not a tag expression"),
        ("per_contact_per_day: 5", "per_contact_per_day: 0", "greater than or equal to 1"),
        ('text: "第{{ day }}天', 'text: "第{{ dya }}天', "undefined: 'dya' is undefined"),
        ('text: "第{{ day }}天', 'text: "第{{ day }天', "syntax error"),
        ("audience: unpaid, text", "audience: unpaid, template: nope.md.j2, x", "unknown key 'x'"),
    ],
)
def test_each_error_class_is_located(tmp_path: Path, replace: str, by: str, expected: str) -> None:
    assert replace in BASE
    code, output = run(tmp_path, BASE.replace(replace, by, 1))
    assert code == 1
    assert expected in output
    assert "playbook.yaml:" in output


def test_located_line_column_and_path(tmp_path: Path) -> None:
    code, output = run(tmp_path, BASE.replace("persona: host}", "persona: hots}"), "--json")
    data = json.loads(output)
    problem = next(p for p in data["files"][0]["problems"] if p["code"] == "reference")
    assert problem["line"] == 17 and problem["column"] is not None
    assert problem["path"] == "groups[0].persona"
    assert code == 1 and data["ok"] is False


def test_every_problem_not_only_the_first(tmp_path: Path) -> None:
    broken = BASE.replace("days: 5", "days: five").replace("persona: host}", "persona: hots}").replace("titl", "titel", 1)
    code, output = run(tmp_path, broken)
    assert code == 1
    assert "valid integer" in output and "unknown persona" in output


def test_template_error_names_template_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "close.md.j2").write_text("你好\n{{ contact.nmae }}\n", encoding="utf-8")
    text = BASE.replace('text: "{{ contact.name }}，{{ products.member.price }}元"', "template: close.md.j2")
    code, output = run(tmp_path, text)
    assert code == 1
    assert "close.md.j2:2" in output and "nmae" in output and "close" in output


def test_missing_template_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace('text: "{{ contact.name }}，{{ products.member.price }}元"', "template: nowhere.md.j2")
    code, output = run(tmp_path, text)
    assert code == 1 and "nowhere.md.j2" in output and "not found" in output


def test_lint_warnings_and_strict(tmp_path: Path) -> None:
    text = BASE.replace('at: "08:30"', 'at: "23:00"').replace("per_contact_per_day: 5", "per_contact_per_day: 1")
    code, output = run(tmp_path, text)
    assert code == 0
    assert "inside quiet hours" in output
    assert "per_contact_per_day 1" in output
    code, _ = run(tmp_path, text, "--strict")
    assert code == 1


def test_pool_lint_and_mix_coverage(tmp_path: Path) -> None:
    moments = textwrap.indent(textwrap.dedent(
        """\
          - id: moments
            at: "20:30"
            channel: moments
            persona: host
            mix:
              - {days: "1-3", ratio: {life: 50, expertise: 50}}
            pools:
              life: [{text: "生活一"}, {text: "生活二"}]
              expertise: [{text: "干货一"}]
        """
    ), "  ")
    code, output = run(tmp_path, BASE + moments)
    assert code == 1
    assert "day(s) 4-5 of this beat are in no mix range" in output
    code, output = run(tmp_path, BASE + moments.replace('"1-3"', '"1-5"'))
    assert code == 0
    assert "pool 'expertise' has 1 template(s) but feeds 2 posts" in output


def test_duplicate_keys_and_ids(tmp_path: Path) -> None:
    text = BASE.replace("title: 测试营\n", "title: 测试营\ntitle: 又一个\n").replace("{id: learn,", "{id: open,")
    code, output = run(tmp_path, text)
    assert code == 1
    assert "duplicate key 'title'" in output and "duplicate id 'open'" in output


def test_not_a_mapping_and_not_utf8(tmp_path: Path) -> None:
    code, output = run(tmp_path, "- a\n- b\n")
    assert code == 1 and "a playbook is a YAML mapping" in output
    path = tmp_path / "gbk.yaml"
    path.write_bytes(BASE.encode("gb18030"))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1 and "not UTF-8" in result.output


def test_missing_file_and_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read playbook" in result.output
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1 and "no playbook found" in result.output
    (tmp_path / "playbooks").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / "playbooks" / name).write_text(BASE, encoding="utf-8")
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1 and "playbooks/a.yaml" in result.output and "playbooks/b.yaml" in result.output


def test_unquoted_clock_time_is_read_as_time(tmp_path: Path) -> None:
    code, _ = run(tmp_path, BASE.replace('at: "08:30"', "at: 20:00"))
    assert code == 0


def test_yaml_boolean_looking_keys_stay_text_and_prices_render_as_yuan(tmp_path: Path) -> None:
    text = BASE.replace("vars:", "x:") + "vars: {coupon: {off: 6, 'on': 36}}\n"
    text = text.replace('text: "{{ contact.name }}，{{ products.member.price }}元"', 'text: "{{ contact.name }}，满{{ vars.coupon.on }}减{{ vars.coupon.off }}，会员{{ products.member.price | yuan }}元"')
    path = tmp_path / "playbook.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["preview", "day", "4", "-p", str(path), "--json"])
    assert result.exit_code == 0, result.output
    texts = [d["text"] for d in json.loads(result.output)["drafts"] if d["channel"] == "private"]
    assert texts == ["示例联系人，满36减6，会员365元"]
