"""`siyu simulate`: a labelled, deterministic synthetic event log that the funnel reads back exactly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from siyu_cli.cli import app
from tests.playbooks_fixtures import add_contacts, write_playbook
from tests.test_funnel import HOOKS, funnel_playbook

REPO = Path(__file__).resolve().parent.parent
STARTERS = sorted((REPO / "playbooks").glob("*.yaml"))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def simulate_json(*args: str) -> dict[str, Any]:
    result = invoke("simulate", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def funnel_counts(playbook: Path, db_path: Path) -> dict[str, int]:
    result = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--json")
    assert result.exit_code == 0, result.output
    return {s["id"]: s["count"] for s in json.loads(result.output)["stages"]}


def test_the_funnel_reads_back_exactly_what_was_simulated(tmp_path: Path) -> None:
    for starter in STARTERS:
        db_path = tmp_path / f"{starter.stem}.db"
        data = simulate_json(str(starter), "--contacts", "400", "--seed", "11", "--db", str(db_path))
        assert data["contacts"] == 400 and data["events"] == data["new_events"] > 400
        assert funnel_counts(starter, db_path) == data["reached"], starter.name


def test_same_seed_same_rows_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    simulate_json(str(playbook), "-n", "150", "--seed", "4", "--db", str(first))
    simulate_json(str(playbook), "-n", "150", "--seed", "4", "--db", str(second))
    dump = "SELECT event_id, type, contact_id, at, hook, cohort, group_id, amount FROM events ORDER BY event_id"
    assert rows(first, dump) == rows(second, dump)
    people = "SELECT contact_id, name, tags, source, tier, account, cohort, added_at FROM contacts ORDER BY contact_id"
    assert rows(first, people) == rows(second, people)

    again = simulate_json(str(playbook), "-n", "150", "--seed", "4", "--db", str(first))
    assert (again["new_events"], again["removed_events"]) == (0, 0)
    assert rows(first, dump) == rows(second, dump)

    other = simulate_json(str(playbook), "-n", "150", "--seed", "5", "--db", str(first))
    assert other["removed_events"] > 0, "another seed replaces the synthetic log instead of piling on it"
    assert rows(first, "SELECT COUNT(*) FROM contacts") == [(150,)]
    assert rows(first, "SELECT COUNT(*) FROM events") == [(other["events"],)]


def test_rows_are_labelled_and_reports_say_so(tmp_path: Path) -> None:
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "real-1", "name": "王女士", "tags": ["回购卡"]}])
    simulate_json(str(playbook), "-n", "60", "--db", str(db_path))
    assert rows(db_path, "SELECT COUNT(*) FROM contacts WHERE json_extract(extra, '$.synthetic') = 1") == [(60,)]
    assert rows(db_path, "SELECT COUNT(*) FROM events WHERE json_extract(props, '$.synthetic') = 1 AND event_id LIKE 'sim-%'") == rows(
        db_path, "SELECT COUNT(*) FROM events"
    )
    assert rows(db_path, "SELECT name FROM contacts WHERE contact_id = 'real-1'") == [("王女士",)]
    text = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path)).output
    assert "includes 60 synthetic contacts (siyu simulate): not real customers" in " ".join(text.split())


def test_rates_override_the_targets(tmp_path: Path) -> None:
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "80", "--rates", "added=1,joined=1", "--rates", "ordered=0", "--db", str(db_path))
    assert data["rates"] == {"added": 1.0, "joined": 1.0, "ordered": 0.0, "repurchased": 0.5}
    assert data["reached"] == {"carded": 80, "added": 80, "joined": 80, "ordered": 0, "repurchased": 0}
    assert funnel_counts(playbook, db_path) == data["reached"]
    default = simulate_json(str(playbook), "-n", "2000", "--db", str(tmp_path / "d.db"))
    assert default["rates"]["added"] == 0.15 and default["rates"]["ordered"] == 0.10
    assert 0.12 < default["reached"]["added"] / 2000 < 0.18


def test_start_places_entries_and_the_table_names_stages(tmp_path: Path) -> None:
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    db_path = tmp_path / "siyu.db"
    result = invoke("simulate", str(playbook), "-n", "30", "--start", "2027-03-01T10:00", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert "simulated 30 synthetic contacts" in result.output and "加微 added" in result.output
    (first,) = rows(db_path, "SELECT MIN(at) FROM events WHERE type = 'card_sent'")[0]
    assert first >= "2027-03-01T02:00:00Z"


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    db_path = tmp_path / "siyu.db"
    for rates, needle in (
        ("nosuch=0.2", "no such funnel stage"),
        ("carded=0.5", "every simulated contact enters at the first stage"),
        ("added=1.5", "between 0 and 1"),
        ("added", "write STAGE=RATE"),
    ):
        result = invoke("simulate", str(playbook), "--rates", rates, "--db", str(db_path))
        assert result.exit_code == 2, (rates, result.output)
        assert needle in " ".join(result.output.split())
    assert invoke("simulate", str(playbook), "--contacts", "0", "--db", str(db_path)).exit_code == 2
    assert not db_path.exists() or rows(db_path, "SELECT COUNT(*) FROM events") == [(0,)]

    add_contacts(db_path, [{"contact_id": "sim-000001", "name": "真客户"}])
    clash = invoke("simulate", str(playbook), "-n", "5", "--db", str(db_path))
    assert clash.exit_code == 1 and "is not synthetic" in clash.output and "--db sim.db" in clash.output
    assert rows(db_path, "SELECT name FROM contacts") == [("真客户",)]

    bare = write_playbook(tmp_path / "bare")
    no_funnel = invoke("simulate", str(bare), "--db", str(tmp_path / "bare.db"))
    assert no_funnel.exit_code == 1 and "has no funnel" in no_funnel.output
