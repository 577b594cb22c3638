"""The editor's schema says what check says: every property described with an example, and on a corpus of
right and wrong values (times, durations, quiet hours, day ranges, channel rules, quoted numbers) the
schema accepts exactly what check accepts. Playbooks are read as YAML 1.2 core, as editors read them,
and check warns where a YAML 1.1 reader would take a value otherwise."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from siyu_cli.errors import PlaybookInvalid
from siyu_cli.playbook import read
from siyu_cli.playbook._yaml import load_located
from tests.playbooks_fixtures import invoke

BASE: dict[str, Any] = {
    "siyu": 1,
    "id": "camp",
    "title": "阅读营",
    "start": "2026-12-01",
    "days": 9,
    "personas": [{"id": "host", "name": "小丸子"}],
    "segments": {"parents": "家长"},
    "groups": [{"id": "g1", "name": "1群"}],
    "beats": [
        {"id": "morning", "at": "08:30", "channel": "group", "text": "早上好"},
        {"id": "close", "at": "20:00", "channel": "private", "audience": "parents", "text": "您好"},
    ],
    "hooks": [{"id": "card", "kind": "package_card", "welcome": [{"after": "0m", "text": "你好"}]}],
    "journeys": [{"id": "j", "enter": {"event": "order"}, "steps": [{"id": "s", "after": "1d", "at": "20:00", "text": "用得怎么样"}]}],
    "limits": {"quiet_hours": "22:30-08:00"},
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(invoke("schema").stdout)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DROP = object()
# (where, value written in YAML, what check says): the schema must say the same.
CASES: list[tuple[tuple[Any, ...], Any, bool]] = [
    (("beats", 0, "at"), "8:30", True),
    (("beats", 0, "at"), "25:00", False),
    (("beats", 0, "at"), "08:61", False),
    (("beats", 0, "at"), "0830", False),
    (("beats", 0, "at"), ["09:00", "19:30"], True),
    (("beats", 0, "at"), [], False),
    (("beats", 0, "at"), ["09:00", "09:00"], False),
    (("beats", 0, "days"), "2-5", True),
    (("beats", 0, "days"), "8-", True),
    (("beats", 0, "days"), "2..5", False),
    (("beats", 0, "days"), "0-3", False),  # day numbers start at 1, for check and the schema alike
    (("beats", 0, "days"), ["0", 2], False),
    (("beats", 0, "days"), {"phaze": "x"}, False),
    (("beats", 0, "days"), "workdays", True),
    (("beats", 0, "days"), {"in": "2-", "not": "holidays"}, True),
    (("hooks", 0, "welcome", 0, "after"), "30m", True),
    (("hooks", 0, "welcome", 0, "after"), "30 min", False),
    (("hooks", 0, "welcome", 0, "after"), "1.5h", False),
    (("journeys", 0, "steps", 0, "at"), "24:00", False),
    (("limits", "quiet_hours"), "22:00-07:30", True),
    (("limits", "quiet_hours"), "22:00~07:30", False),
    (("limits", "quiet_hours"), "off", False),
    (("limits", "on_quiet"), "later", False),
    (("limits", "per_contact_per_day"), "2", True),
    (("limits", "per_contact_per_day"), "0", False),
    (("limits", "per_contact_per_day"), "two", False),
    (("days",), "9", True),
    (("days",), "9 days", False),
    (("timezone",), "Asia/Tokyo", True),
    (("timezone",), "Beijing", False),
    (("journeys", 0, "repeat"), "yes", True),
    (("journeys", 0, "repeat"), "maybe", False),
    (("beats", 1, "audience"), _DROP, False),  # a private beat needs an audience
    (("beats", 0, "audience"), "parents", False),  # audience is for private beats
    (("beats", 1, "groups"), ["g1"], False),  # groups: is for group beats
    (("beats", 0, "template"), "a.md.j2", False),  # template and text
    (("beats", 0, "text"), _DROP, False),  # neither
    (("beats", 1, "variants"), {"a": {"weight": 1, "text": "a"}, "b": {"weight": 1}}, False),  # variants and text
    (("beats", 0, "channel"), "fax", False),
    (("beats", 0, "colour"), "red", False),
    (("hooks", 0, "welcome", 0, "template"), "w.md.j2", False),
    (("segments", "bad id"), "家长", False),
    (("segments", "both"), "家长 && 已购", False),  # and / or / not, never && || !
    (("segments", "either"), "家长 || 已购", False),
    (("segments", "neither"), "!家长", False),
    (("segments", "buyers"), "家长 and not 已购", True),
    (("calendar",), {"off": ["2027-02-05..2027-02-11"]}, True),
    (("calendar",), {"off": ["2027-02-05 to 2027-02-11"]}, False),
    (("outputs",), [{"type": "wecom", "secret_env": "SIYU_CORP_B_SECRET", "corp_id_env": "_B"}], True),
    (("outputs",), [{"type": "wecom", "secret_env": ""}], False),  # run would read SIYU_WECOM_SECRET without a word
    (("outputs",), [{"type": "wecom", "corp_id_env": "my corp"}], False),
    (("outputs",), [{"type": "wecom", "token_env": "1TOKEN"}], False),
    (("outputs",), [{"type": "webhook", "format": "json", "url_env": "HOOK-URL"}], False),
    (("outputs",), [{"type": "wecom", "remind_after": "0m"}], False),  # reminded at the first read
    (("outputs",), [{"type": "wecom", "remind_after": "10m"}], True),  # check warns: 3 reminders within 30 minutes
    (("personas", 0, "wecom_userid"), "zhou.li-2@corp", True),
    (("personas", 0, "wecom_userid"), "a qi", False),
    (("personas", 0, "wecom_userid"), "阿栖", False),
]


@pytest.mark.parametrize(("where", "value", "valid"), CASES, ids=[f"{'.'.join(map(str, c[0]))}={c[1]!r}" for c in CASES])
def test_schema_accepts_what_check_accepts(where: tuple[Any, ...], value: Any, valid: bool, schema: dict[str, Any], tmp_path: Path) -> None:
    data = _set(BASE, where, value)
    if where == ("beats", 1, "variants"):
        data["beats"][1].pop("text")
        data["beats"][1]["text"] = "您好"
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        read(path)
        checked = True
    except PlaybookInvalid:
        checked = False
    assert checked is valid, f"check said {checked}"
    located, _ = load_located(path.read_text(encoding="utf-8"), str(path))
    assert located is not None
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(located.data))
    assert (not errors) is valid, [e.message for e in errors]


def test_every_property_has_a_description_and_an_example_that_validates(schema: dict[str, Any]) -> None:
    defs = [("Playbook", schema), *schema["$defs"].items()]
    count = 0
    for name, definition in defs:
        assert definition.get("description"), f"{name} has no description"
        for key, prop in definition.get("properties", {}).items():
            count += 1
            assert prop.get("description"), f"{name}.{key} has no description"
            assert prop.get("title") == key, f"{name}.{key} is titled {prop.get('title')!r}"
            assert prop.get("examples"), f"{name}.{key} has no example"
            for example in prop["examples"]:
                jsonschema.validate(example, {**prop, "$defs": schema["$defs"]})
    assert count > 100


def test_branches_are_titled_so_hover_never_reads_at_or_at(schema: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for keyword in ("anyOf", "oneOf"):
                titles = [b.get("title") for b in node.get(keyword, []) if "$ref" not in b]
                assert all(titles) and len(set(titles)) == len(titles), titles
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    at = schema["$defs"]["Beat"]["properties"]["at"]
    assert at["title"] == "at" and "HH:MM" in at["description"]


def _check(tmp_path: Path, text: str, code: int) -> Any:
    path = tmp_path / "playbook.yaml"
    path.write_text(text, encoding="utf-8")
    return json.loads(invoke("check", str(path), "--json", code=code).stdout)["files"][0]["problems"]


PLAIN = """siyu: 1
id: camp
title: 阅读营
start: 2026-12-01
days: 3
personas: [{id: host, name: 小丸子}]
beats:
  - {id: morning, at: 8:30, channel: moments, text: "可退款：{{ vars.refund }} {{ vars.big }} {{ vars.code }}"}
journeys:
  - id: j
    enter: {event: order}
    repeat: yes
    steps: [{id: s, after: 1d, text: hi}]
vars:
  refund: no
  big: 1_000
  code: 010
  quoted: "no"
  ok: true
"""


def test_yaml_12_reads_no_as_text_and_check_warns_where_yaml_11_differs(tmp_path: Path) -> None:
    problems = _check(tmp_path, PLAIN, 0)
    warned = {p["path"]: p for p in problems if p["code"] == "yaml-1.1"}
    assert set(warned) == {"vars.refund", "vars.big", "vars.code"}, problems
    refund = warned["vars.refund"]
    assert refund["line"] == 15 and refund["severity"] == "warning"
    assert 'the text "no"' in refund["message"] and "YAML 1.1 reader gives false" in refund["message"]
    assert '"no"' in refund["hint"] and "false" in refund["hint"]
    assert "read as 10" in warned["vars.code"]["message"] and "gives 8" in warned["vars.code"]["message"]
    # what goes out is what the file says, the way an editor shows it
    preview = json.loads(invoke("preview", "day", "1", "-p", str(tmp_path / "playbook.yaml"), "--json").stdout)
    assert any("可退款：no 1_000 10" in (d["text"] or "") for d in preview["drafts"])
    # --strict fails on them, and says why
    assert "yaml-1.1" in invoke("check", "--strict", str(tmp_path / "playbook.yaml"), code=1).stdout


def test_quiet_hours_off_is_text_in_the_editor_and_in_check(tmp_path: Path) -> None:
    text = PLAIN.replace("vars:\n  refund: no\n  big: 1_000\n  code: 010\n", "limits: {quiet_hours: off}\nvars:\n")
    problems = _check(tmp_path, text, 1)
    error = next(p for p in problems if p["severity"] == "error")
    assert error["path"] == "limits.quiet_hours" and "'off' is not a quiet-hours range" in error["message"]


def test_init_writes_the_schema_its_modeline_names_a_readme_and_vscode_settings(tmp_path: Path) -> None:
    project = tmp_path / "camp"
    invoke("init", str(project), "--from", "ecommerce")
    playbook = project / "playbooks" / "ecommerce-card.yaml"
    assert playbook.read_text(encoding="utf-8").splitlines()[0] == "# yaml-language-server: $schema=../schema.json"
    assert (playbook.parent / "../schema.json").resolve() == (project / "schema.json").resolve()
    assert json.loads((project / "schema.json").read_text(encoding="utf-8")) == json.loads(invoke("schema").stdout)
    settings = json.loads((project / ".vscode" / "settings.json").read_text(encoding="utf-8"))
    assert settings["yaml.schemas"] == {"./schema.json": ["playbooks/*.yaml"]} and settings["yaml.yamlVersion"] == "1.2"
    assert json.loads((project / ".vscode" / "extensions.json").read_text(encoding="utf-8"))["recommendations"] == ["redhat.vscode-yaml"]
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# 栖山旗舰店")
    for text in ("playbooks/ecommerce-card.yaml", "templates/ecom-package-card/", "schema.json", "siyu check --strict", "siyu preview day 1", "siyu report funnel", "YAML 1.2"):
        assert text in readme, text


def test_init_force_keeps_the_teams_readme_and_settings(tmp_path: Path) -> None:
    project = tmp_path / "camp"
    (project / ".vscode").mkdir(parents=True)
    (project / "README.md").write_text("# 我们的项目\n", encoding="utf-8")
    (project / ".vscode" / "settings.json").write_text(json.dumps({"editor.tabSize": 2, "yaml.schemas": {"other.json": ["x/*.yaml"]}}), encoding="utf-8")
    invoke("init", str(project), "--from", "education", "--force")
    assert (project / "README.md").read_text(encoding="utf-8") == "# 我们的项目\n"
    settings = json.loads((project / ".vscode" / "settings.json").read_text(encoding="utf-8"))
    assert settings["editor.tabSize"] == 2
    assert settings["yaml.schemas"] == {"other.json": ["x/*.yaml"], "./schema.json": ["playbooks/*.yaml"]}
