"""Events naming a group or hook the playbook lacks (issue 14 audit): `import events` notes each value with its column
and rows, `track` warns with the playbook's ids; both keep the event as written (another playbook may share the store)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.playbooks_fixtures import invoke, query, write_playbook

GROUPS = [{"id": "gval", "name": "价值群", "persona": "host"}, {"id": "grib", "name": "鸡肋群", "persona": "host"}]
HOOKS = [{"id": "card-eye", "kind": "package_card", "code": "EYE100", "tags": ["眼霜"]}]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No playbook or store of the developer's leaks in: run inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    monkeypatch.delenv("SIYU_DB", raising=False)


def _playbook(tmp_path: Path) -> Path:
    return write_playbook(tmp_path, groups=GROUPS, hooks=HOOKS, days=10)


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _events(tmp_path: Path) -> Path:
    rows = [["type", "contact_id", "at", "群", "hook"]]
    rows += [["group_joined", "c1", "2026-12-01 08:00", "gval", "EYE100"]]  # known group and hook code
    rows += [["message_replied", "c1", f"2026-12-01 09:0{n}", "价值群", ""] for n in range(3)]  # a group by its name
    rows += [["message_replied", "c2", "2026-12-01 10:00", "gvall", "card-eye"]]  # a typo; a hook by its id
    rows += [["message_replied", "c2", "2026-12-01 10:05", "nosuch", "EYE1OO"]]
    rows += [["friend_added", "c3", "2026-12-01 11:00", "", "eye100"]]
    return _csv(tmp_path / "events.csv", rows)


def test_import_events_notes_each_unknown_group_and_hook_with_its_column_and_rows(tmp_path: Path) -> None:
    playbook, events = _playbook(tmp_path), _events(tmp_path)
    result = invoke("import", "events", str(events), "-p", str(playbook), "--map", "群=group", "--create-contacts", "--db", "siyu.db")
    notes = result.stderr
    assert "note: events.csv, column 群, row(s) 3, 4, 5: '价值群' is the name of group 'gval', not its id, so group health does not count it: write 'gval'; kept as written" in notes
    assert "column 群, row(s) 6: 'gvall' is no group of the playbook (did you mean 'gval'?)" in notes
    assert "column 群, row(s) 7: 'nosuch' is no group of the playbook (gval, grib), so group health does not count it" in notes
    assert "column hook, row(s) 7: 'EYE1OO' is no hook of the playbook (did you mean 'EYE100'?), so its tags and welcome do not apply" in notes
    assert "column hook, row(s) 8: 'eye100' is no hook of the playbook (codes match exactly: did you mean 'EYE100'?)" in notes
    assert "'card-eye'" not in notes and "row(s) 2" not in notes  # an id and a code are both the hook's
    assert "inserted 7" in result.stdout  # noted, not refused: the rows are in the store as written
    assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM events WHERE group_id = '价值群'") == [(3,)]
    data = json.loads(invoke("import", "events", str(events), "-p", str(playbook), "--map", "群=group", "--create-contacts", "--db", "siyu.db", "--json").stdout)
    by_value = {ref["value"]: ref for ref in data["unknown_refs"]}
    assert by_value["价值群"] == {
        "field": "group",
        "columns": ["群"],
        "value": "价值群",
        "rows": 3,
        "row_numbers": [3, 4, 5],
        "why": "'价值群' is the name of group 'gval', not its id, so group health does not count it: write 'gval'",
    }
    assert sorted(by_value) == ["EYE1OO", "eye100", "gvall", "nosuch", "价值群"]


def test_many_rows_of_one_unknown_group_are_one_note(tmp_path: Path) -> None:
    playbook = _playbook(tmp_path)
    events = _csv(tmp_path / "e.csv", [["type", "contact_id", "at", "group"]] + [["message_replied", "c1", f"2026-12-02 09:{n:02d}", "g9"] for n in range(40)])
    notes = invoke("import", "events", str(events), "-p", str(playbook), "--create-contacts", "--db", "siyu.db", "--dry-run").stderr
    assert notes.count("note:") == 1
    assert "column group, row(s) 2, 3, 4, 5, 6 … (40 rows): 'g9' is no group of the playbook" in notes


def test_without_a_playbook_nothing_is_checked(tmp_path: Path) -> None:
    result = invoke("import", "events", str(_events(tmp_path)), "--map", "群=group", "--create-contacts", "--db", "siyu.db")
    assert "note:" not in result.stderr


def test_track_warns_of_a_group_the_playbook_lacks_with_its_ids(tmp_path: Path) -> None:
    playbook = _playbook(tmp_path)
    base = ("track", "message_replied", "--contact", "c1", "--create-contact", "-p", str(playbook), "--db", "siyu.db")
    said = invoke(*base, "--group", "nosuch", "--at", "2026-12-02 09:00").stderr
    assert "warning: 'nosuch' is no group of camp (gval, grib), so group health does not count it; recorded as written" in said
    said = invoke(*base, "--group", "价值群", "--at", "2026-12-02 09:01").stderr
    assert "warning: '价值群' is the name of group 'gval', not its id" in said and "write 'gval'" in said
    said = invoke(*base, "--group", "grib", "--hook", "EYE10", "--at", "2026-12-02 09:02").stderr
    assert said.count("warning:") == 1 and "'EYE10' is no hook of camp (did you mean 'EYE100'?)" in said
    assert invoke(*base, "--group", "gval", "--hook", "card-eye", "--at", "2026-12-02 09:03").stderr == ""
    assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM events") == [(4,)]
