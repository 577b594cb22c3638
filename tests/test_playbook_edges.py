"""Playbooks the starters never write: odd YAML, clocks that jump, repeated ids, typos that look valid.

Each case is something an operator can type; each must end in a located message or a correct
plan, never a traceback and never a draft that preview shows but the runner silently drops.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app
from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, add_event, write_playbook


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def check_json(path: Path) -> list[dict[str, object]]:
    code, output = invoke("check", str(path), "--json")
    assert code in (0, 1), output
    return json.loads(output)["files"][0]["problems"]


def test_an_impossible_date_is_a_located_error(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, start="2026-12-01")
    path.write_text(path.read_text(encoding="utf-8").replace("start: '2026-12-01'", "start: 2026-02-30"), encoding="utf-8")
    code, output = invoke("check", str(path))
    assert code == 1
    assert "playbook.yaml:5:" in output and "start:" in output and "2026-02-30" in output


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = invoke("check", str(path))
    assert code == 1
    assert "expands to more than" in output and "aliases" in output


def test_infinite_ratio_and_price_are_errors(tmp_path: Path) -> None:
    moments = {
        "id": "moments",
        "at": "09:00",
        "channel": "moments",
        "persona": "host",
        "mix": [{"days": "1-3", "ratio": {"life": float("inf")}}],
        "pools": {"life": [{"text": "今天的早餐"}, {"text": "周末去爬山"}, {"text": "读完一本书"}]},
    }
    path = write_playbook(tmp_path, beats=[moments], products=[{"id": "p", "name": "会员", "price": float("nan"), "tier": "profit"}])
    problems = check_json(path)
    paths = {p["path"]: p["message"] for p in problems}
    assert "finite" in str(paths.get("beats[0].mix[0].ratio.life"))
    assert "finite" in str(paths.get("products[0].price"))


def test_init_into_a_file_says_so(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine", encoding="utf-8")
    code, output = invoke("init", str(target))
    assert code == 1 and "is a file, not a folder" in output
    assert target.read_text(encoding="utf-8") == "mine"


def test_a_time_listed_twice_is_an_error(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[{**MORNING, "at": ["09:00", "9:00"]}])
    problems = check_json(path)
    assert any(p["path"] == "beats[0].at" and "listed twice" in str(p["message"]) for p in problems), problems


def test_every_bad_segment_is_named_at_its_own_line(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, segments={"s1": "家长 and (已购", "s2": "and 家长"})
    problems = check_json(path)
    located = {p["path"]: p["line"] for p in problems}
    assert "segments.s1" in located and "segments.s2" in located
    assert located["segments.s1"] != located["segments.s2"]


def test_an_audience_that_resembles_a_segment_is_an_error(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[MORNING, {**NOON_1V1, "audience": "parent"}])
    code, output = invoke("check", str(path))
    assert code == 1
    assert "'parent' is not a segment" in output and "did you mean the segment 'parents'" in output


def test_duplicate_hook_codes_and_stage_ids_are_errors(tmp_path: Path) -> None:
    hooks = [
        {"id": "card-a", "kind": "package_card", "code": "EYE100", "persona": "host"},
        {"id": "card-b", "kind": "package_card", "code": "EYE100", "persona": "host"},
    ]
    funnel = {"stages": [{"id": "added", "event": "friend_added"}, {"id": "added", "event": "order"}]}
    path = write_playbook(tmp_path, hooks=hooks, funnel=funnel)
    messages = {p["path"]: p["message"] for p in check_json(path)}
    assert "duplicate code 'EYE100'" in str(messages.get("hooks[1].code"))
    assert "duplicate id 'added'" in str(messages.get("funnel.stages[1].id"))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"type": "webhook", "format": "slack", "url_env": "HOOK"}, "outputs[0].format: Input should be 'wecom', 'feishu', 'dingtalk' or 'json'"),
        ({"type": "telegram"}, "outputs[0]: an output is outbox, console, or a mapping whose type is webhook"),
        ("outbx", "outputs[0]: Input should be 'outbox' or 'console'"),
    ],
)
def test_a_bad_output_gets_one_message_about_its_own_kind(tmp_path: Path, output: object, expected: str) -> None:
    path = write_playbook(tmp_path, outputs=[output])
    code, text = invoke("check", str(path))
    assert code == 1 and expected in text
    assert "did you mean 'format'" not in text and "unknown key" not in text


def test_a_webhook_timeout_in_plain_seconds_is_accepted(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, outputs=[{"type": "webhook", "format": "wecom", "url_env": "HOOK", "timeout": 5}])
    code, output = invoke("check", str(path))
    assert code == 0, output


def test_phase_without_phases_is_caught_by_check(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[{**MORNING, "text": "今天是{{ phase.title }}阶段"}])
    code, output = invoke("check", str(path))
    assert code == 1 and "beats[0].text" in output and "undefined" in output


def test_a_template_may_print_when_a_praised_contact_checked_in(tmp_path: Path) -> None:
    praise = {**MORNING, "id": "praise", "at": "12:00", "text": "{% for c in stats.checkins %}{{ c.name }} {{ c.at.strftime('%H:%M') }}\n{% endfor %}"}
    path = write_playbook(tmp_path, beats=[praise])
    code, output = invoke("check", str(path))
    assert code == 0, output
    db = tmp_path / "siyu.db"
    add_contacts(db, [{"contact_id": "c1", "name": "小明妈妈"}])
    add_event(db, "e1", "checkin", "c1", "2026-12-01T02:05:00Z", group="g1")
    code, output = invoke("preview", "day", "1", "-p", str(path), "--db", str(db), "--json")
    assert code == 0, output
    texts = [item["text"] for item in json.loads(output)["drafts"]]
    assert "小明妈妈 10:05" in texts[0]  # 02:05 UTC is 10:05 in Shanghai


def test_clocks_going_forward_lose_no_draft(tmp_path: Path) -> None:
    beat = {"id": "night", "at": ["01:30", "02:30", "03:30"], "days": "all", "channel": "group", "text": "第{{ day }}天 {{ time }}"}
    path = write_playbook(tmp_path, beats=[beat], start="2026-03-07", days=2, timezone="America/New_York")
    code, output = invoke("check", str(path))
    assert code == 0 and "02:30 does not exist on 2026-03-08 in America/New_York" in output and "sent at 03:00" in output
    code, output = invoke("preview", "day", "2", "-p", str(path), "--json")
    previewed = [item["due"] for item in json.loads(output)["drafts"]]
    assert len(previewed) == len(set(previewed)) == 3
    code, output = invoke("run", str(path), "--once", "--now", "2026-03-09T12:00", "--db", str(tmp_path / "siyu.db"), "--outbox", str(tmp_path / "out"), "--json")
    assert json.loads(output)["recorded"] == 6  # three a day, two days: the same as preview


def test_preview_of_a_contact_uses_their_cohort_and_their_groups(tmp_path: Path) -> None:
    cohorts = [{"id": "c1", "start": "2026-12-01", "groups": ["g1"]}, {"id": "c2", "start": "2026-12-08", "groups": ["g2"]}]
    groups = [{"id": "g1", "name": "一期1群", "persona": "host"}, {"id": "g2", "name": "二期1群", "persona": "host"}]
    path = write_playbook(tmp_path, beats=[MORNING, NOON_1V1], cohorts=cohorts, groups=groups)
    db = tmp_path / "siyu.db"
    add_contacts(db, [{"contact_id": "u3", "name": "二期家长", "cohort": "c2"}])
    add_event(db, "j1", "group_joined", "u3", "2026-12-08T01:00:00Z", group="g2")
    code, output = invoke("preview", "day", "1", "-p", str(path), "--db", str(db), "--contact", "u3", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert data["cohort"] == "c2"
    targets = sorted(item["target"] for item in data["drafts"])
    assert len(targets) == 2 and any("二期1群" in t for t in targets) and any("二期家长" in t for t in targets)


def test_preview_exits_1_when_a_draft_does_not_render(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[{**MORNING, "text": "{{ 1 / 0 }}"}])
    code, output = invoke("preview", "day", "1", "-p", str(path))
    assert code == 1 and "do not render" in output
