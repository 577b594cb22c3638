"""`siyu check --db`: a persona's 1v1 work against its capacity, played day by day as the runner carries it over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.playbooks_fixtures import NOON_1V1, add_contacts, invoke, query, write_playbook

PERSONAS = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 2}}]


def _short(root: Path) -> list[dict[str, Any]]:
    result = invoke("check", str(root / "playbook.yaml"), "--db", str(root / "siyu.db"), "--json")
    return [p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "capacity-short"]


def test_five_contacts_a_day_for_a_capacity_of_two_carry_over_and_check_says_when_the_last_goes(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], days=2, personas=PERSONAS, limits={"missed": {"max_late": "3d"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"c{i}"} for i in range(5)])
    (problem,) = _short(tmp_path)
    assert (problem["path"], problem["severity"]) == ("personas[0].capacity", "warning")
    message = problem["message"]
    assert message.startswith("persona host's 1v1 work that needs a person does not fit its capacity (1 operator(s), each handling 2 精准粉"), message
    # Day 1: 2 of 5, 3 carried; day 2: the same 5 (a carried draft gives way to its beat's new one), 3 carried; then 1.
    assert "on 3 day(s) from 2026-12-01 (day 1): the most carried to the next day 顺延 is 3, on 2026-12-01; the last goes out on 2026-12-04 (day 4)" in message
    # The runner does what check said: 2 sent on day 1, 3 carried.
    invoke("run", "--once", "--now", "2026-12-01 12:31", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--outbox", str(tmp_path / "out"))
    assert query(tmp_path / "siyu.db", "SELECT state, COALESCE(reason, ''), COUNT(*) FROM drafts GROUP BY 1, 2 ORDER BY 1") == [("pending", "capacity:carried", 3), ("sent", "", 2)]
    for day in ("02", "03", "04", "05"):
        invoke("run", "--once", "--now", f"2026-12-{day} 12:31", "-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"), "--outbox", str(tmp_path / "out"))
    sent = query(tmp_path / "siyu.db", "SELECT substr(due_at, 1, 10), COUNT(*) FROM drafts WHERE state = 'sent' GROUP BY 1 ORDER BY 1")
    assert sent == [("2026-12-01", 2), ("2026-12-02", 2), ("2026-12-03", 2), ("2026-12-04", 1)], sent


def test_a_mass_send_needs_no_person_and_fits_any_capacity(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[{**NOON_1V1, "text": "午安～"}], days=2, personas=PERSONAS)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"c{i}"} for i in range(5)])
    assert _short(tmp_path) == []


def test_preview_of_a_day_says_what_capacity_carries_in_and_on(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[NOON_1V1], days=2, personas=PERSONAS)
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"c{i}"} for i in range(5)])
    args = ("-p", str(tmp_path / "playbook.yaml"), "--db", str(tmp_path / "siyu.db"))
    text = " ".join(invoke("preview", "day", "1", *args).stdout.split())
    assert "capacity 人效 · 小丸子 (host): 1v1 work for 5 contact(s); 2 fit, 3 carried to the next day 顺延 (capacity:carried)" in text, text
    [load] = json.loads(invoke("preview", "day", "2", *args, "--json").stdout)["summary"]["capacity"]
    assert load == {"persona": "host", "day": "2026-12-02", "fresh": 5, "carried_in": 0, "fits": 2, "carried": 3}
