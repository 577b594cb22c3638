"""`siyu check --db`: a text that prints `{{ contact.name }}` with no fallback, and contacts with no name.

Such a contact gets the text with the name left empty ("，你好"): siyu never puts a contact's id (a WeCom
external userid, wm…) in a customer's message, so check says so before the send, at the text's own path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import NOON_1V1, add_contacts, add_event, invoke, query, write_playbook


def _nameless(root: Path) -> list[dict[str, Any]]:
    result = invoke("check", str(root / "playbook.yaml"), "--db", str(root / "siyu.db"), "--json")
    return [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "nameless-contacts"]


def test_a_bare_name_and_contacts_without_one_are_warned_at_the_text_and_the_send_leaves_it_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    hook = {"id": "card", "kind": "package_card", "code": "PKG01", "welcome": [{"after": "0m", "text": "{{ contact.name or '亲' }}，欢迎～"}]}
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "{{ contact.name }}，午安～"}], hooks=[hook], days=1, limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "wmA001", "name": "王小美"}, {"contact_id": "wmA002", "name": None}, {"contact_id": "wmA003", "name": ""}])
    (problem,) = _nameless(tmp_path)  # the welcome has a fallback: only the beat
    assert (problem["severity"], problem["path"]) == ("warning", "beats[0].text"), problem
    assert problem["message"].startswith("2 of the 3 contacts in this beat's audience have no name, and this text prints {{ contact.name }} with no fallback"), problem
    assert "{{ contact.name or '亲' }}" in problem["hint"]
    shown = invoke("check", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"))
    assert "2 of the 3 contacts in this beat's audience have no name" in " ".join((shown.stdout + shown.stderr).split())

    invoke("run", "--once", "--now", "2026-12-01 12:31", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"))
    texts = sorted(row[0] for row in query(tmp_path / "siyu.db", "SELECT text FROM drafts WHERE beat = 'noon'"))
    assert texts == ["王小美，午安～", "，午安～", "，午安～"]  # never "wmA002，午安～"


@pytest.mark.parametrize("text", ["{{ contact.name | default('亲', true) }}好", "{% if contact.name %}{{ contact.name }}，{% endif %}午安", "你好～"])
def test_a_name_with_a_fallback_or_none_printed_is_not_warned(text: str, tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": text}], days=1)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "wmA002", "name": None}])
    assert _nameless(tmp_path) == []


def test_a_default_without_its_boolean_argument_is_no_fallback_for_an_empty_name(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "{{ contact.name | default('同学') }}，午安"}], days=1)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "wmA002", "name": None}])
    [problem] = _nameless(tmp_path)  # a nameless contact's name is "", which only `default('同学', true)` stands in for
    assert problem["path"] == "beats[0].text"


def test_every_contact_named_is_not_warned(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "{{ contact.name }}，午安～"}], days=1)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "wmA001", "name": "王小美"}])
    assert _nameless(tmp_path) == []


def test_a_journey_step_counts_the_contacts_it_reaches_not_the_store(tmp_path: Path) -> None:
    journey = {"id": "care", "enter": {"event": "order"}, "steps": [{"id": "thanks", "after": "1h", "text": "{{ contact.name }}，谢谢下单"}]}
    write_playbook(tmp_path, beats=[], days=3, journeys=[journey])
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "buyer", "name": None}, {"contact_id": "idle", "name": None}, {"contact_id": "named", "name": "王"}])
    add_event(tmp_path / "siyu.db", "o1", "order", "buyer", "2026-12-01T02:00:00Z")
    add_event(tmp_path / "siyu.db", "o2", "order", "named", "2026-12-01T02:00:00Z")
    [problem] = _nameless(tmp_path)
    assert problem["path"] == "journeys[0].steps[0].text"
    assert problem["message"].startswith("1 of the 2 store contacts this step reaches has no name"), problem


def test_an_unknown_field_inside_the_fallback_is_an_error_though_a_named_sample_never_reads_it(tmp_path: Path) -> None:
    """verify12 D: check renders with a sample contact that has a name; a nameless one reads the fallback at send time."""
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "{{ contact.name | default(contact.nick, true) }}，晚上好"}], days=1)
    result = invoke("check", str(tmp_path / "playbook.yaml"), "--json", code=1)
    [problem] = [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "template"]
    assert problem["path"] == "beats[0].text" and "a contact has no field 'nick'" in problem["message"], problem
