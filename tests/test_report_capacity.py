"""`siyu report html`'s capacity section 人效: `siyu plan capacity` for the store's campaign, only where a persona sets capacity."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from tests.playbooks_fixtures import create_store, run_siyu

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"


def _report(folder: Path, playbook: Path, contacts: int) -> tuple[str, str]:
    """Simulate, write the HTML report; (its text, the store's path)."""
    db = str(folder / "siyu.db")
    for args in (
        ("simulate", str(playbook), "--contacts", str(contacts), "--seed", "5", "--db", db),
        ("report", "html", str(playbook), "--db", db, "--out", str(folder / "report.html")),
    ):
        done = run_siyu(folder, *args)
        assert done.returncode == 0, done.stderr + done.stdout
    return (folder / "report.html").read_text(encoding="utf-8"), db


def _planned(folder: Path, playbook: Path, *flags: str) -> dict[str, Any]:
    done = run_siyu(folder, "plan", "capacity", str(playbook), *flags, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _section(text: str) -> str:
    start = text.index('<h2 id="capacity">')
    return text[start : text.index("<h2 ", start + 1)]


def _matches(section: str, plan: dict[str, Any]) -> None:
    """Every day of the folded table and every bar of the chart is the plan's."""
    rows = re.findall(r'<tr data-day="(\d+)" data-needed="(\d+)" data-backlog="([\d.]+)">', section)
    assert rows == [(str(d["day"]), str(d["operators_needed"]), f"{d['backlog_operator_days']:.3f}") for d in plan["days"]]
    bars = re.findall(r'<rect class="bar" data-day="(\d+)" data-needed="(\d+)"', section)
    assert bars == [(str(d["day"]), str(d["operators_needed"])) for d in plan["days"] if d["operators_needed"]]
    assert f"needs {plan['operators_needed_max']} operator(s) to do its 1v1 work the same day" in section
    chart = section[section.index('<svg id="capacity-chart"') :]
    assert 'class="chart" viewBox="0 0 360 160"' in chart and chart.index("</svg>") < chart.index('id="capacity-table"')
    assert section.index("<details><summary>Every day") < section.index('id="capacity-table"')


def test_skincare_report_plans_from_the_contacts_who_entered_the_funnel(tmp_path: Path) -> None:
    """The skincare funnel starts at 加微 and simulate sends no cards: the added contacts are the basis, at 100%."""
    playbook = PLAYBOOKS / "skincare-persona.yaml"
    text, db = _report(tmp_path, playbook, 900)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE type = 'card_sent'").fetchone()[0] == 0
        added = conn.execute("SELECT COUNT(DISTINCT contact_id) FROM events WHERE type = 'friend_added'").fetchone()[0]
    section = _section(text)
    assert f"the {added:,} contacts who entered the funnel and reached 加微 added" in section
    assert f"--cards {added} --rates added=1</code>" in section
    plan = _planned(tmp_path, playbook, "--cards", str(added), "--rates", "added=1")
    assert plan["backlog_peak"] is not None, "900 contacts are more than one operator keeps up with"
    peak = plan["backlog_peak"]
    assert f"backlog peaks on day {peak['day']} ({peak['date']}) at {peak['backlog_operator_days']:.2f} operator-days" in section
    assert f'<circle class="peak" data-day="{peak["day"]}"' in section
    _matches(section, plan)
    assert '<a href="#capacity">Capacity 人效</a>' in text


def test_a_store_with_package_cards_plans_from_them(tmp_path: Path) -> None:
    """The e-commerce starter with a capacity on its persona: simulate sends cards, the section counts them."""
    source = (PLAYBOOKS / "ecommerce-card.yaml").read_text(encoding="utf-8")
    persona = "account: wecom_qishan_01}"
    assert source.count(persona) == 1
    playbook = tmp_path / "ecommerce-capacity.yaml"
    playbook.write_text(source.replace(persona, "account: wecom_qishan_01, capacity: {precise: 20}}"), encoding="utf-8")
    text, db = _report(tmp_path, playbook, 300)
    with sqlite3.connect(db) as conn:
        cards = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'card_sent'").fetchone()[0]
    assert cards
    section = _section(text)
    assert f"A model, not the ledger: planned from {cards:,} package cards 包裹卡 in the store (card_sent events)" in section
    _matches(section, _planned(tmp_path, playbook, "--cards", str(cards)))


def test_no_section_where_no_persona_sets_capacity(tmp_path: Path) -> None:
    playbook = PLAYBOOKS / "education-camp.yaml"
    assert not any("capacity" in p for p in yaml.safe_load(playbook.read_text(encoding="utf-8"))["personas"])
    text, _ = _report(tmp_path, playbook, 60)
    assert 'id="capacity' not in text and "人效" not in text


def test_a_store_with_nothing_to_plan_from_says_so(tmp_path: Path) -> None:
    playbook = PLAYBOOKS / "skincare-persona.yaml"
    db = tmp_path / "siyu.db"
    create_store(db)
    done = run_siyu(tmp_path, "report", "html", str(playbook), "--db", str(db), "--out", str(tmp_path / "report.html"))
    assert done.returncode == 0, done.stderr + done.stdout
    section = _section((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert "No package cards (card_sent) and no added contacts in the store yet" in section
    assert "<svg" not in section and "capacity-table" not in section


def test_the_section_shows_what_the_ledger_carried_beside_the_model(tmp_path: Path, monkeypatch: Any) -> None:
    """The audit's case: the model keeps up (it spreads the adds over days 3-7) while the ledger carried drafts over."""
    import sqlite3

    from tests.playbooks_fixtures import add_contacts, invoke, write_playbook

    monkeypatch.chdir(tmp_path)
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    hook = {"id": "h", "kind": "qr_code", "code": "H1", "tags": ["精准粉"], "persona": "host"}
    journey = {"id": "hello", "enter": {"event": "friend_added"}, "steps": [{"id": "hi", "after": "1h", "text": "{{ contact.name }}，你好"}]}
    write_playbook(
        tmp_path, beats=[], hooks=[hook], journeys=[journey], personas=[{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 2}}],
        funnel={"stages": [{"id": "added", "event": "friend_added"}]}, limits={"missed": {"max_late": "12h"}},
    )  # fmt: skip
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"c{i}", "name": f"客{i}", "tags": []} for i in range(1, 6)])
    with sqlite3.connect(tmp_path / "siyu.db") as conn:
        conn.executemany("INSERT INTO events (event_id, type, contact_id, at, hook) VALUES (?, 'friend_added', ?, '2026-12-01T01:00:00Z', 'h')", [(f"a{i}", f"c{i}") for i in range(1, 6)])
    conn.close()
    invoke("run", "--once", "--now", "2026-12-01 10:30", "--json")
    invoke("report", "html", "playbook.yaml", "--out", "report.html")
    section = _section((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert "A model, not the ledger" in section and "keep up: no backlog" in section
    assert "The ledger: 3 1v1 drafts carried over to a later day by capacity or nurturing caps (capacity:carried, nurture:carried), most from day 1 (2026-12-01, 3); 3 still waiting" in section
    rows, _ = _ledger(section)
    assert rows == [
        {"day": 1, "date": "2026-12-01", "due": 2, "carried_from": 3, "carried_to": 0, "superseded": 0, "waiting": 0},
        {"day": 2, "date": "2026-12-02", "due": 2, "carried_from": 0, "carried_to": 2, "superseded": 0, "waiting": 2},
        {"day": 3, "date": "2026-12-03", "due": 1, "carried_from": 0, "carried_to": 1, "superseded": 0, "waiting": 1},
    ]


def _ledger(section: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of "What the ledger did" by column, and its total row."""
    table = section[section.index('<table id="capacity-ledger">') :]
    table = table[: table.index("</table>")]
    rows = []
    for day, date, cells in re.findall(r'<tr data-day="(\d+)" data-carried="\d+"><td>\d+</td><td class="l">([\d-]+)</td>(.*?)</tr>', table):
        rows.append({"day": int(day), "date": date, **{c: int(n) for c, n in re.findall(r'<td data-column="(\w+)">(\d+)</td>', cells)}})
    total = {c: int(n) for c, n in re.findall(r'<th data-column="(\w+)">(\d+)</th>', table[table.index('<tr class="total">') :])}
    return rows, total


def test_drafts_that_gave_way_are_shown_so_carried_from_adds_up(tmp_path: Path, monkeypatch: Any) -> None:
    """A 3-day 1v1 beat, 5 precise contacts, 2 a day: carried drafts give way to their contact's newer draft of the beat (capacity:superseded)."""
    from tests.playbooks_fixtures import add_contacts, invoke, query, write_playbook

    monkeypatch.chdir(tmp_path)
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    care = {"id": "care", "title": "精准粉1v1", "at": "20:00", "days": "1-3", "channel": "private", "audience": "a", "text": "{{ contact.name }}，第{{ day }}天护理"}
    personas = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 2}}]
    write_playbook(tmp_path, beats=[care], segments={"a": "a"}, personas=personas, limits={"missed": {"max_late": "2h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": f"a{i}", "name": f"a{i}", "tags": ["a"], "tier": "precise"} for i in range(1, 6)])
    for day in range(1, 7):
        invoke("run", "--once", "--now", f"2026-12-0{day} 20:01", "--json")
    [(gave_way,)] = query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE reason = 'capacity:superseded' AND carried_to IS NOT NULL")
    assert gave_way >= 3
    invoke("report", "html", "playbook.yaml", "--out", "report.html")
    section = _section((tmp_path / "report.html").read_text(encoding="utf-8"))
    rows, total = _ledger(section)
    assert "gave way there 让位 (capacity:superseded)" in section and "skipped there" not in section  # no carried draft was skipped otherwise
    assert total["superseded"] == gave_way == sum(r["superseded"] for r in rows)
    assert total["carried_from"] == total["carried_to"] + total["superseded"], total
    assert total == {c: sum(r[c] for r in rows) for c in ("due", "carried_from", "carried_to", "superseded", "waiting")}
    [(sent,)] = query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM drafts WHERE state = 'sent'")
    assert total["due"] == sent == 15 - gave_way and total["waiting"] == 0
    assert f"{gave_way:,} of them gave way on their new day to a newer draft of their beat for the same contact (capacity:superseded); 0 still waiting" in section


def test_without_a_funnel_the_section_plans_from_the_stores_adds(tmp_path: Path) -> None:
    from tests.playbooks_fixtures import add_contacts, add_event, write_playbook

    personas = [{"id": "host", "name": "小丸子", "account": "wx_host_01", "capacity": {"precise": 2}}]
    journey = {"id": "care", "enter": {"event": "friend_added"}, "steps": [{"id": "s1", "after": "1d", "text": "{{ contact.name }}，用得怎么样？"}]}
    playbook = write_playbook(tmp_path, beats=[], days=5, personas=personas, journeys=[journey])
    db = tmp_path / "siyu.db"
    add_contacts(db, [{"contact_id": f"c{n}", "name": f"客{n}", "tags": []} for n in range(5)])
    for n in range(5):
        add_event(db, f"e{n}", "friend_added", f"c{n}", "2026-12-01T02:00:00Z")
    done = run_siyu(tmp_path, "report", "html", str(playbook), "--db", str(db), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    section = _section((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "the 5 contacts added (friend_added events)" in section and "nothing to plan from" not in section
