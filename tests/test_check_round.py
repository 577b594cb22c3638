"""`siyu check` in one round: templates beside structure, a hint on every message, locations printed as
written, no follow-on errors, and --strict naming what failed it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu_cli.check._hints import TEMPLATE_NAMES
from siyu_cli.cli import app
from tests.test_check import BASE

FALLBACK = "see the playbook format"
# (what an author got wrong, the text in BASE, what they wrote, words the hint must carry)
MISTAKES = [
    ("a tab", "days: 5\n", "days: 5\nvars:\n\tcamp: x\n", "tab"),
    ("a full-width colon", "title: 测试营", "title：测试营", "full-width colon"),
    ("&& in a segment", 'unpaid: "家长 and not 已购"', 'unpaid: "家长 && not 已购"', "write 'and' instead of '&&'"),
    ("|| in an audience", "audience: unpaid", 'audience: "家长 || 已购"', "write 'or' instead of '||'"),
    ("&& inside a word", "audience: unpaid", 'audience: "家长&&已购"', "write 'and' instead of '&&'"),
    ("! for not", 'unpaid: "家长 and not 已购"', 'unpaid: "家长 and !已购"', "write 'not' instead of '!'"),
    ("an unclosed quote", "title: 测试营", 'title: "测试营', "quote opened on line 3"),
    ("a missing colon", "days: 5\n", "days 5\n", "line 6 needs 'key: value'"),
    ("a word for a number", "days: 5", "days: five", "whole number"),
    ("a unit on a price", "price: 365", "price: 365元", "not 9.9元"),
    ("a misspelt key", "  - {id: morning, title: 早分享,", "  - {id: morning, titel: 早分享,", "did you mean 'title'"),
    ("no id", "id: camp\n", "", "slug id"),
    ("an unknown persona", "persona: host}", "persona: hots}", "did you mean 'host'"),
    ("a gap in the phases", 'days: "2-5"}', 'days: "3-5"}', "cover days 1-5"),
    ("overlapping phases", 'days: "2-5"}', 'days: "1-5"}', "must not overlap"),
    ("days past the end", 'days: "4-5", channel', 'days: "4-9", channel', "end the range by day 5"),
    ("a bad time", 'at: "08:30"', 'at: "8:75"', "HH:MM"),
    ("an unfinished tag expression", "audience: unpaid", 'audience: "家长 and ("', "segments: unpaid"),
    ("a limit of 0", "per_contact_per_day: 5", "per_contact_per_day: 0", "1 or more"),
    ("a misspelt variable", 'text: "第{{ day }}天', 'text: "第{{ dya }}天', "did you mean 'day'"),
    ("a template syntax error", 'text: "第{{ day }}天', 'text: "第{{ day }天', "{{ needs its }}"),
    ("a missing template", 'text: "{{ contact.name }}，{{ products.member.price }}元"', "template: nope.md.j2", "templates/ beside the playbook"),
    ("an unknown channel", "channel: group", "channel: wechat", "'group', 'moments', 'private' or 'live'"),
    ("a city for a zone", "timezone: Asia/Shanghai", "timezone: Beijing", "IANA"),
    ("a bad date", "start: 2026-12-01", "start: 2026-13-01", "YYYY-MM-DD"),
    ("a segment typo", "audience: unpaid", "audience: unpayd", "write the segment id"),
    ("no audience", "audience: unpaid, ", "", "add audience:"),
    ("template and text", "channel: group, text:", "channel: group, template: x.md.j2, text:", "keep one"),
    ("a duplicate id", "{id: close,", "{id: morning,", "first used at beats[0]"),
    ("bad quiet hours", 'quiet_hours: "22:30-08:00"', 'quiet_hours: "22:30-8"', "HH:MM-HH:MM"),
    ("a beat in quiet hours", 'at: "08:30"', 'at: "23:00"', "quiet hours"),
]


def check(tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "playbook.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), *args], env={"NO_COLOR": "1", "COLUMNS": "300", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(("what", "replace", "by", "hint"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_every_message_has_a_hint_that_names_the_fix(tmp_path: Path, what: str, replace: str, by: str, hint: str) -> None:
    assert replace in BASE
    result = check(tmp_path, BASE.replace(replace, by, 1), "--json")
    problems = json.loads(result.stdout)["files"][0]["problems"]
    assert problems, what
    for problem in problems:
        assert problem["hint"] and FALLBACK not in problem["hint"], problem
    assert any(hint in p["hint"] for p in problems), [p["hint"] for p in problems]


def test_template_errors_come_in_the_same_round_as_structural_ones(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "close.md.j2").write_text("你好\n{% if contact %}{{ contact.name }}\n", encoding="utf-8")
    text = BASE.replace("persona: host}", "persona: hots}").replace('text: "第{{ day }}天', 'text: "第{{ dya }}天')
    text = text.replace('text: "{{ contact.name }}，{{ products.member.price }}元"', "template: close.md.j2")
    text += "  - {id: evening, at: \"20:00\", channel: group, template: nowhere.md.j2}\n"
    result = check(tmp_path, text)
    assert result.exit_code == 1
    assert "unknown persona 'hots'" in result.stderr
    assert "'dya' is undefined" in result.stderr and "did you mean 'day'" in result.stderr
    assert re.search(r"templates/close\.md\.j2:\d+: error: .*syntax error", result.stderr)
    assert "nowhere.md.j2: template not found" in result.stderr


def test_a_valid_structure_still_names_every_template_variable(tmp_path: Path) -> None:
    """The names the raw pass accepts are the ones a render gives: a template using each renders clean."""
    text = BASE.replace('text: "第{{ day }}天', 'text: "{{ [day, date, time, phase, beat, persona, personas, products, vars, playbook, cohort, category, stats, group] | length }}第{{ day }}天')
    assert check(tmp_path, text).exit_code == 0
    assert set(TEMPLATE_NAMES) >= {"contact", "journey", "entry", "hook"}


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1", "TERM": "xterm-256color"}], ids=["no colour", "colour"])
def test_a_location_prints_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    padding = "".join(f"# note {n}\n" for n in range(100 - BASE.count("\n") - 1))
    text = BASE + padding + "  - {id: evening, at: \"20:00\", channel: group, persona: '[bold]x', text: hi}\n"
    assert text.count("\n") == 100
    result = check(tmp_path, text, env={"NO_COLOR": "1"} if not env else {**env, "NO_COLOR": ""})
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr)
    assert "playbook.yaml:100:" in plain and "💯" not in plain
    assert "unknown persona '[bold]x'" in plain


def test_overlapping_phases_are_one_error_not_also_a_gap(tmp_path: Path) -> None:
    text = BASE.replace('  - {id: learn, title: 学习, days: "2-5"}', '  - {id: learn, title: 学习, days: "1-3"}\n  - {id: more, title: 加练, days: "4-5"}')
    text = text.replace('  - {id: open, title: 开营, days: "1"}', '  - {id: open, title: 开营, days: "1-2"}')
    result = check(tmp_path, text)
    assert result.exit_code == 1
    assert "day 1 is already in phase 'open'" in result.stderr
    assert "in no phase" not in result.stderr


def test_an_audience_typo_is_an_error_and_a_tag_the_playbook_gives_is_not(tmp_path: Path) -> None:
    result = check(tmp_path, BASE.replace("audience: unpaid", "audience: unpayd"))
    assert result.exit_code == 1 and "error: beats[1].audience: 'unpayd' is not a segment" in result.stderr
    given = BASE.replace("audience: unpaid", "audience: unpayd") + "rules:\n  - {on: {event: order}, tag: [+unpayd]}\n"
    assert check(tmp_path, given).exit_code == 0
    quoted = BASE.replace("audience: unpaid", "audience: '\"unpayd\"'")
    assert check(tmp_path, quoted).exit_code == 0


def test_strict_names_the_warnings_that_failed_it(tmp_path: Path) -> None:
    text = BASE.replace('at: "08:30"', 'at: "23:00"').replace("per_contact_per_day: 5", "per_contact_per_day: 1")
    assert check(tmp_path, text).exit_code == 0
    result = check(tmp_path, text, "--strict")
    assert result.exit_code == 1
    assert "✗ failed under --strict" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "--strict fails on" in line)
    assert "2 warning(s)" in line and "quiet-hours at " in line and "touch-budget at " in line and "playbook.yaml:" in line
    data = json.loads(check(tmp_path, text, "--strict", "--json").stdout)
    assert data["ok"] is False and {p["code"] for p in data["files"][0]["failed_on"]} == {"quiet-hours", "touch-budget"}


def test_other_commands_show_the_same_hints(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    path.write_text(BASE.replace("days: 5\n", "days: 5\nvars:\n\tcamp: x\n"), encoding="utf-8")
    result = CliRunner().invoke(app, ["preview", "day", "1", str(path)], env={"NO_COLOR": "1"})
    assert result.exit_code == 1 and "line 8 has a tab" in result.stderr


def test_every_tab_and_full_width_colon_comes_in_one_round_with_the_rest_validated(tmp_path: Path) -> None:
    text = BASE.replace("title: 测试营", "title：测试营").replace("days: 5\n", "days: 5\nvars:\n\tcamp: x\n\tprice：9\n")
    text = text.replace("persona: host}", "persona: hots}")
    lines = text.splitlines()
    result = check(tmp_path, text, "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["files"][0]["problems"]
    located = {(p["line"], p["message"]) for p in problems}
    assert (lines.index("title：测试营") + 1, "YAML syntax: a full-width colon '：' after 'title'") in located
    assert (lines.index("\tcamp: x") + 1, "YAML syntax: a tab in the indentation") in located
    assert (lines.index("\tprice：9") + 1, "YAML syntax: a tab in the indentation") in located
    assert (lines.index("\tprice：9") + 1, "YAML syntax: a full-width colon '：' after 'price'") in located
    assert any("unknown persona 'hots'" in p["message"] for p in problems), problems
    title = next(p for p in problems if "after 'title'" in p["message"])
    assert f"line {title['line']} has a full-width colon" in title["hint"]


def test_template_slips_read_the_same_with_a_valid_or_an_invalid_structure(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "close.md.j2").write_text("你好\n第{{ dya }}天\n{{ contact.nmae }}同学\n", encoding="utf-8")
    valid = BASE.replace('text: "{{ contact.name }}，{{ products.member.price }}元"', "template: close.md.j2")
    seen = []
    for text in (valid, valid.replace("persona: host}", "persona: hots}")):
        problems = json.loads(check(tmp_path, text, "--json").stdout)["files"][0]["problems"]
        seen.append({(p["file"], p["line"], p["message"], p["hint"]) for p in problems if p["code"] == "template"})
    file = next(iter(seen[0]))[0]
    assert seen[0] == seen[1] == {
        (file, 2, "undefined: 'dya' is undefined", "did you mean 'day'?"),
        (file, 3, "undefined: 'contact.nmae': a contact has no field 'nmae'", "did you mean 'contact.name'?"),
    }


def test_a_misspelt_required_key_is_one_error_not_also_a_missing_field(tmp_path: Path) -> None:
    result = check(tmp_path, BASE.replace("channel: group", "chanel: group", 1))
    assert result.exit_code == 1
    assert "unknown key 'chanel' (did you mean 'channel'?)" in result.stderr
    assert "missing required field 'channel'" not in result.stderr
    far = check(tmp_path, BASE.replace("channel: group", "medium: group", 1))
    assert "missing required field 'channel'" in far.stderr and "unknown key 'medium'" in far.stderr
