"""Issue 14 gaps: `import contacts` notes a tier capacity does not know (kept, but counted as untiered), and
`preview day N` marks a holiday or make-up workday in its header as the timeline does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.playbooks_fixtures import invoke, query, write_playbook


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No playbook or store of the developer's leaks in: run inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    monkeypatch.delenv("SIYU_DB", raising=False)


def _contacts(path: Path, column: str = "tier") -> Path:
    rows = [["contact_id", "name", column], ["c1", "甲", "泛粉"], ["c2", "乙", "Precise"], ["c3", "丙", "高价值"], ["c4", "丁", "高价值"], ["c5", "戊", "vip"], ["c6", "己", ""], ["c7", "庚", "semi"]]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_import_contacts_notes_each_tier_capacity_does_not_know_and_keeps_it(tmp_path: Path) -> None:
    result = invoke("import", "contacts", str(_contacts(tmp_path / "contacts.csv", "分层")), "--map", "分层=tier", "--db", "siyu.db")
    notes = result.stderr
    untiered = "so capacity counts these contacts as untiered (the playbook's capacity.untiered); kept as written"
    assert f"note: contacts.csv, column 分层, row(s) 3: 'Precise' is no tier capacity knows (did you mean 'precise'?), {untiered}" in notes
    tiers = "the tiers are precise, semi, general, or 精准粉, 半精准粉, 泛粉"
    assert f"note: contacts.csv, column 分层, row(s) 4, 5: '高价值' is no tier capacity knows ({tiers}), {untiered}" in notes
    assert f"row(s) 6: 'vip' is no tier capacity knows ({tiers})" in notes
    assert notes.count("note:") == 3  # 泛粉, semi and the empty cell are not noted
    assert "inserted 7" in result.stdout
    assert query(tmp_path / "siyu.db", "SELECT tier FROM contacts WHERE contact_id IN ('c2', 'c3') ORDER BY contact_id") == [("Precise",), ("高价值",)]
    data = json.loads(invoke("import", "contacts", str(tmp_path / "contacts.csv"), "--map", "分层=tier", "--db", "siyu.db", "--dry-run", "--json").stdout)
    by_value = {ref["value"]: ref for ref in data["unknown_refs"]}
    assert sorted(by_value) == ["Precise", "vip", "高价值"]
    assert by_value["高价值"] == {
        "field": "tier",
        "columns": ["分层"],
        "value": "高价值",
        "rows": 2,
        "row_numbers": [4, 5],
        "why": f"'高价值' is no tier capacity knows ({tiers}), so capacity counts these contacts as untiered (the playbook's capacity.untiered)",
    }


def test_preview_day_marks_a_holiday_and_a_make_up_workday_in_its_header(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, start="2026-02-10", days=10)
    assert "· day 7 (2026-02-16 休 春节, -) ·" in invoke("preview", "day", "7", str(playbook)).stdout  # 除夕
    assert "· day 5 (2026-02-14 班 调休, -) ·" in invoke("preview", "day", "5", "-p", str(playbook)).stdout
    assert "· day 1 (2026-02-10, -) ·" in invoke("preview", "day", "1", str(playbook)).stdout
    data = json.loads(invoke("preview", "day", "7", str(playbook), "--json").stdout)
    assert (data["date"], data["calendar"], data["holiday"]) == ("2026-02-16", "holiday", "春节")
    assert json.loads(invoke("preview", "day", "1", str(playbook), "--json").stdout)["calendar"] == "workday"
