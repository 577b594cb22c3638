"""`siyu simulate`: a labelled, deterministic synthetic event log without look-ahead.

Contacts carry only what is known when they add; tags come from hooks and rules as events happen
(so nothing here reads tags back: it asserts on the rows simulate writes). Behaviour is checked
over a few thousand contacts against the rates the module documents.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from siyu_cli.cli import app
from siyu_cli.errors import UsageError
from siyu_cli.playbook import read
from siyu_cli.report import _simulate
from siyu_cli.report import simulate as simulate_core
from siyu_cli.store import open_store
from tests.playbooks_fixtures import add_contacts, write_playbook
from tests.test_funnel import HOOKS, STAGES, funnel_playbook

REPO = Path(__file__).resolve().parent.parent
STARTERS = sorted((REPO / "playbooks").glob("*.yaml"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
TIER_TAGS = {"精准粉", "半精准粉", "泛粉"}
PRODUCTS = [
    {"id": "gift", "name": "赠品眼霜", "price": 0, "tier": "relationship"},
    {"id": "trial", "name": "试用装", "price": 9.9, "tier": "relationship"},
    {"id": "kit", "name": "体验装", "price": 99, "tier": "experience"},
    {"id": "full", "name": "正装套组", "price": 599, "tier": "profit"},
    {"id": "stored", "name": "储值卡", "price": 500, "tier": "lock_in"},
]
RULES = [
    {"on": {"event": "order"}, "tag": ["+已购", "-潜客"]},
    {"on": {"event": "order", "nth": 2}, "tag": ["+已复购"]},
    {"on": {"event": "refund"}, "tag": ["+已退款"]},
]
SEGMENTS = {"parents": "家长", "unpaid": "not 已购 and not 已下单", "loyal": "已复购", "precise": "精准粉"}
OPTIONAL = [dict(s, optional=True) if s["id"] == "joined" else s for s in STAGES]
OF_ADDED = {"added": 0.15, "ordered": {"rate": 0.10, "of": "added"}}


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


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=ZoneInfo("UTC"))


def timelines(db_path: Path) -> dict[str, list[tuple[str, datetime, str | None, float | None, dict[str, Any]]]]:
    """Each contact's events in time order: (type, at, hook, amount, props)."""
    out: dict[str, list[tuple[str, datetime, str | None, float | None, dict[str, Any]]]] = defaultdict(list)
    for cid, kind, at, hook, amount, props in rows(db_path, "SELECT contact_id, type, at, hook, amount, props FROM events ORDER BY contact_id, at, event_id"):
        out[cid].append((kind, when(at), hook, amount, json.loads(props)))
    return out


def shop(tmp_path: Path, *, stages: list[dict[str, Any]] = OPTIONAL, targets: dict[str, Any] | None = None, **extra: Any) -> Path:
    """A 30-day package-card campaign with a product ladder, rules and outcome-tag segments."""
    extra.setdefault("products", PRODUCTS)
    extra.setdefault("rules", RULES)
    extra.setdefault("segments", SEGMENTS)
    extra.setdefault("hooks", HOOKS)
    return funnel_playbook(tmp_path, stages=stages, targets=targets or OF_ADDED, days=30, **extra)


def walk(events: list[tuple[str, datetime, Any, Any, Any]], stages: list[dict[str, Any]], window: timedelta) -> list[str]:
    """The stages a contact reaches, by playbook-spec.md: an optional stage may be skipped and does not move the clock."""
    entry = next((at for kind, at, *_ in events if kind == stages[0]["event"]), None)
    if entry is None:
        return []
    reached, clock = [stages[0]["id"]], entry
    for stage in stages[1:]:
        hits = [at for kind, at, *_ in events if kind == stage["event"] and clock <= at <= entry + window]
        if len(hits) >= stage.get("nth", 1):
            reached.append(stage["id"])
            if not stage.get("optional"):
                clock = hits[stage.get("nth", 1) - 1]
        elif not stage.get("optional"):
            break
    return reached


# -- what a contact row knows ---------------------------------------------------------------------


def test_no_contact_is_written_with_an_outcome_tag(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "3000", "--rates", "added=0.6,ordered=0.4", "--seed", "3", "--db", str(db_path))
    assert data["reached"]["ordered"] > 500 and data["reached"]["repurchased"] > 100
    people = {cid: (json.loads(tags), tier, account, added_at) for cid, tags, tier, account, added_at in rows(db_path, "SELECT contact_id, tags, tier, account, added_at FROM contacts")}
    history = timelines(db_path)
    for cid, (tags, tier, account, added_at) in people.items():
        added = any(kind == "friend_added" for kind, *_ in history[cid])
        assert set(tags) <= TIER_TAGS, (cid, tags)
        # The same for buyers and non-buyers: the tier tag a channel gives at the add, or nothing before an add.
        assert tags == ([tier] if added else []), (cid, tags, tier)
        assert (account is not None, added_at is not None) == (added, added)
    # What a contact will do does not show in its row: buyers and non-buyers carry the same tags.
    buyers = Counter(tuple(people[c][0]) for c, evs in history.items() if any(k == "order" for k, *_ in evs))
    others = Counter(tuple(people[c][0]) for c, evs in history.items() if any(k == "friend_added" for k, *_ in evs) and not any(k == "order" for k, *_ in evs))
    assert set(buyers) == set(others) == {("精准粉",), ("半精准粉",), ("泛粉",)}


def test_starters_write_no_order_or_repurchase_tags(tmp_path: Path) -> None:
    for starter in STARTERS:
        db_path = tmp_path / f"{starter.stem}.db"
        simulate_json(str(starter), "-n", "800", "--rates", "ordered=0.5", "--db", str(db_path))
        for (tags,) in rows(db_path, "SELECT tags FROM contacts"):
            assert set(json.loads(tags)) <= TIER_TAGS, (starter.name, tags)


def test_events_carry_the_code_of_the_hook_the_contact_came_through(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "600", "--rates", "added=0.5", "--db", str(db_path))
    sources = dict(rows(db_path, "SELECT contact_id, source FROM contacts"))
    seen: Counter[str] = Counter()
    for cid, events in timelines(db_path).items():
        entry = {hook for kind, _, hook, *_ in events if kind in ("card_sent", "friend_added")}
        assert len(entry) == 1 and entry <= {"EYE100", "CASH5"}, (cid, events)
        assert sources[cid] in entry
        seen.update(entry)
        assert all(hook is None for kind, _, hook, *_ in events if kind not in ("card_sent", "friend_added"))
    assert min(seen.values()) > 200, "both cards are used"

    coded = [dict(h) for h in HOOKS]
    del coded[1]["code"]
    plain = shop(tmp_path / "plain", hooks=coded)
    plain_db = tmp_path / "plain.db"
    simulate_json(str(plain), "-n", "200", "--db", str(plain_db))
    assert {hook for (hook,) in rows(plain_db, "SELECT DISTINCT hook FROM events WHERE hook IS NOT NULL")} == {"EYE100", "card-b"}


def test_a_hook_that_names_the_tier_gives_it_and_nothing_is_stored_twice(tmp_path: Path) -> None:
    hooks = [
        {"id": "xhs", "kind": "qr_code", "code": "XHS01", "tags": ["精准粉", "小红书"], "persona": "host"},
        {"id": "quiz", "kind": "form", "code": "QUIZ", "tags": ["问卷"], "persona": "advisor"},
    ]
    stages = [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}]
    playbook = funnel_playbook(tmp_path, stages=stages, targets={"ordered": 0.2}, hooks=hooks, products=PRODUCTS)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "300", "--db", str(db_path))
    got = Counter((source, tier, tags) for source, tier, tags in rows(db_path, "SELECT source, tier, tags FROM contacts"))
    assert set(got) == {("XHS01", "精准粉", "[]"), ("QUIZ", "半精准粉", '["半精准粉"]')}


# -- when ----------------------------------------------------------------------------------------


def test_a_card_is_scanned_two_to_seven_days_after_it_was_sent(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "2000", "--rates", "added=0.5", "--db", str(db_path))
    delays = []
    for events in timelines(db_path).values():
        sent = [at for kind, at, *_ in events if kind == "card_sent"]
        added = [at for kind, at, *_ in events if kind == "friend_added"]
        if added:
            delays.append((added[0] - sent[0]) / timedelta(days=1))
    assert len(delays) > 800
    assert all(2 <= d <= 7 for d in delays)
    assert min(delays) < 2.3 and max(delays) > 6.7, "spread over the delivery time, not bunched"
    assert sum(d < 4.5 for d in delays) / len(delays) == pytest.approx(0.5, abs=0.07)


def test_people_add_and_order_in_the_day(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "3000", "--rates", "added=0.6,ordered=0.4", "--db", str(db_path))
    for kind in ("friend_added", "order"):
        hours = [when(at).astimezone(SHANGHAI).hour for (at,) in rows(db_path, f"SELECT at FROM events WHERE type = '{kind}'")]
        assert len(hours) > 600
        inside = sum(8 <= h < 23 for h in hours) / len(hours)
        assert inside > 0.9, (kind, inside)
        assert 0.5 < sum(18 <= h < 23 for h in hours) / sum(8 <= h < 18 for h in hours) < 1.5, "evenings busy, not only office hours"
    sent = [when(at).astimezone(SHANGHAI).hour for (at,) in rows(db_path, "SELECT at FROM events WHERE type = 'card_sent'")]
    assert all(9 <= h < 18 for h in sent), "parcels leave in working hours"


def test_the_clock_is_the_playbook_timezone(tmp_path: Path) -> None:
    playbook = shop(tmp_path, timezone="America/New_York")
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "1500", "--rates", "added=0.6", "--db", str(db_path))
    york = ZoneInfo("America/New_York")
    hours = [when(at).astimezone(york).hour for (at,) in rows(db_path, "SELECT at FROM events WHERE type = 'friend_added'")]
    assert sum(8 <= h < 23 for h in hours) / len(hours) > 0.9


# -- what ----------------------------------------------------------------------------------------


def test_amounts_follow_the_product_ladder(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "4000", "--rates", "added=0.8,ordered=0.5,repurchased=0.8", "--db", str(db_path))
    tier_of = {p["id"]: p["tier"] for p in PRODUCTS}
    price_of = {p["id"]: p["price"] for p in PRODUCTS}
    first: Counter[str] = Counter()
    later: Counter[str] = Counter()
    for events in timelines(db_path).values():
        orders = [(amount, props) for kind, _, _, amount, props in events if kind == "order"]
        for n, (amount, props) in enumerate(orders):
            assert amount == price_of[props["product"]] and amount > 0, "a product's price; free gifts are not orders"
            (first if n == 0 else later)[tier_of[props["product"]]] += 1
    assert sum(first.values()) > 1000 and sum(later.values()) > 500
    entry = (first["relationship"] + first["experience"]) / sum(first.values())
    assert entry > 0.7 and first["relationship"] + first["experience"] > 4 * first["profit"]
    assert (later["profit"] + later["lock_in"]) / sum(later.values()) > 0.5
    assert later["profit"] / sum(later.values()) > 2 * first["profit"] / sum(first.values())


def test_precise_fans_order_more_often_and_the_rate_still_holds(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "6000", "--rates", "added=1,ordered=0.3", "--db", str(db_path))
    assert data["reached"]["ordered"] / data["reached"]["added"] == pytest.approx(0.3, abs=0.025)
    tiers = dict(rows(db_path, "SELECT contact_id, tier FROM contacts"))
    by_tier: dict[str, list[bool]] = defaultdict(list)
    for cid, events in timelines(db_path).items():
        by_tier[tiers[cid]].append(any(kind == "order" for kind, *_ in events))
    share = {tier: sum(v) / len(v) for tier, v in by_tier.items()}
    assert share["精准粉"] > share["半精准粉"] > share["泛粉"]


def test_refunds_and_deletes_happen_at_the_documented_rates(tmp_path: Path) -> None:
    assert (_simulate.REFUND_RATE, _simulate.DELETE_RATE) == (0.03, 0.05), "the README documents these figures"
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "5000", "--rates", "added=0.8,ordered=0.6", "--db", str(db_path))
    adds = refunds = deletes = paid = 0
    for events in timelines(db_path).values():
        kinds = [kind for kind, *_ in events]
        adds += "friend_added" in kinds
        paid += sum(1 for kind, _, _, amount, _ in events if kind == "order" and amount)
        for i, (kind, at, _, amount, props) in enumerate(events):
            if kind == "refund":
                refunds += 1
                order = [(o_at, o_amount, o_props) for o_kind, o_at, _, o_amount, o_props in events[:i] if o_kind == "order" and o_props["product"] == props["product"]]
                assert order and amount == order[-1][1], "the amount of an order before it"
                assert any(timedelta(days=1) <= at - o_at <= timedelta(days=5) for o_at, _, _ in order)
            if kind == "friend_deleted":
                deletes += 1
                assert i == len(events) - 1 and "friend_added" in kinds[:i], "a contact who added deletes after its last event"
    assert data["by_type"]["refund"] == refunds and data["by_type"]["friend_deleted"] == deletes
    assert paid > 2000 and adds > 3500
    assert refunds / paid == pytest.approx(0.03, abs=0.012)
    assert deletes / adds == pytest.approx(0.05, abs=0.015)


def test_a_funnel_with_refund_or_delete_stages_owns_those_events(tmp_path: Path) -> None:
    stages = [{"id": "added", "event": "friend_added"}, {"id": "ordered", "event": "order"}, {"id": "refunded", "event": "refund"}]
    playbook = funnel_playbook(tmp_path, stages=stages, targets={"ordered": 0.5, "refunded": 0.2}, products=PRODUCTS)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "1000", "--db", str(db_path))
    assert data["by_type"]["refund"] == data["reached"]["refunded"]
    assert funnel_counts(playbook, db_path) == data["reached"]
    assert rows(db_path, "SELECT COUNT(*) FROM events WHERE type = 'refund' AND (amount IS NULL OR amount <= 0)") == [(0,)]


# -- how many ------------------------------------------------------------------------------------


def test_with_joined_optional_contacts_order_without_joining(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "4000", "--rates", "added=0.5,joined=0.4,ordered=0.3", "--db", str(db_path))
    assert data["rates"]["ordered"] == 0.3 and data["asked"]["ordered"] == {"rate": 0.3, "of": "added"}
    history = timelines(db_path)
    without = before = 0
    for events in history.values():
        kinds = [kind for kind, *_ in events]
        if "order" in kinds and "group_joined" not in kinds:
            without += 1
        if "order" in kinds and "group_joined" in kinds and kinds.index("order") < kinds.index("group_joined"):
            before += 1
    buyers = data["reached"]["ordered"]
    assert without / buyers == pytest.approx(0.6, abs=0.08), "joining is skipped at 1 - 40%, and buying does not need it"
    assert before > 0, "the order's clock runs from the add, not from the join"
    assert data["reached"]["joined"] / data["reached"]["added"] == pytest.approx(0.4, abs=0.04)
    assert buyers / data["reached"]["added"] == pytest.approx(0.3, abs=0.03)
    # The counts are what the spec's funnel reads from these events.
    reached = Counter(stage for events in history.values() for stage in walk(events, OPTIONAL, timedelta(days=30)))
    assert dict(reached) == {k: v for k, v in data["reached"].items() if v}


def test_a_target_of_added_is_held_when_joining_is_required(tmp_path: Path) -> None:
    playbook = shop(tmp_path, stages=STAGES, targets={"added": 0.15, "joined": 0.5, "ordered": {"rate": 0.10, "of": "added"}})
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "6000", "--rates", "added=1", "--db", str(db_path))
    assert data["rates"]["ordered"] == pytest.approx(0.2), "10% of added is 20% of the half who join"
    assert data["asked"]["ordered"] == {"rate": 0.10, "of": "added"}
    assert data["reached"]["ordered"] / data["reached"]["added"] == pytest.approx(0.10, abs=0.015)
    reached = Counter(stage for events in timelines(db_path).values() for stage in walk(events, STAGES, timedelta(days=30)))
    assert dict(reached) == data["reached"]

    kept = simulate_json(str(playbook), "-n", "50", "--rates", "ordered=0.2", "--db", str(tmp_path / "k.db"))
    assert kept["asked"]["ordered"] == {"rate": 0.2, "of": "added"} and kept["rates"]["ordered"] == pytest.approx(0.4), "--rates keeps the base"

    impossible = invoke("simulate", str(playbook), "--rates", "joined=0.05", "--db", str(tmp_path / "x.db"))
    assert impossible.exit_code == 2
    assert "would need more than every joined contact" in " ".join(impossible.output.split())


def test_step_rates_from_targets() -> None:
    from siyu_cli.playbook import Funnel

    spec = Funnel.model_validate(
        {
            "stages": [
                {"id": "carded", "event": "card_sent"},
                {"id": "added", "event": "friend_added"},
                {"id": "joined", "event": "group_joined", "optional": True},
                {"id": "replied", "event": "message_replied"},
                {"id": "ordered", "event": "order"},
                {"id": "repurchased", "event": "order", "nth": 2},
            ],
            "targets": {
                "added": 0.2,
                "joined": 0.6,
                "replied": 0.5,
                "ordered": {"rate": 0.1, "of": "added"},
                "repurchased": {"rate": 0.03, "of": "joined"},
            },
        }
    )
    step, asked = _simulate.step_rates(spec, {})
    assert step["added"] == 0.2 and step["joined"] == 0.6 and step["replied"] == 0.5
    assert step["ordered"] == pytest.approx(0.2), "over replied, half of added"
    # repurchased / joined = (0.5 * 0.2 * s) / 0.6 = 0.03
    assert step["repurchased"] == pytest.approx(0.03 * 0.6 / (0.5 * 0.2))
    assert asked["repurchased"] == {"rate": 0.03, "of": "joined"}
    with pytest.raises(UsageError, match="would need more than every replied contact"):
        _simulate.step_rates(spec, {"replied": 0.05})


def test_the_funnel_reads_back_exactly_what_was_simulated(tmp_path: Path) -> None:
    for starter in STARTERS:
        db_path = tmp_path / f"{starter.stem}.db"
        data = simulate_json(str(starter), "-n", "400", "--seed", "11", "--db", str(db_path))
        assert data["contacts"] == 400 and data["events"] == data["new_events"] > 400
        assert funnel_counts(starter, db_path) == data["reached"], starter.name


def test_a_funnel_without_an_add_stage_still_writes_the_add_through_the_hook(tmp_path: Path) -> None:
    stages = [{"id": "joined", "event": "group_joined"}, {"id": "checked", "event": "checkin"}, {"id": "ordered", "event": "order"}]
    playbook = funnel_playbook(tmp_path, stages=stages, targets={"checked": 0.5, "ordered": 0.15}, hooks=HOOKS, days=7, window="14d")
    db_path = tmp_path / "siyu.db"
    data = simulate_json(str(playbook), "-n", "300", "--db", str(db_path))
    assert funnel_counts(playbook, db_path) == data["reached"]
    for cid, events in timelines(db_path).items():
        kinds = [kind for kind, *_ in events]
        assert kinds[0] == "friend_added" and kinds[1] == "group_joined", cid
        assert events[0][2] in ("EYE100", "CASH5")
        assert timedelta(minutes=10) <= events[1][1] - events[0][1] <= timedelta(days=1)


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


# -- what stays: labels, determinism, idempotence, refusals ---------------------------------------


def test_same_seed_same_rows_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    playbook = shop(tmp_path)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    simulate_json(str(playbook), "-n", "300", "--seed", "4", "--rates", "added=0.5,ordered=0.4", "--db", str(first))
    simulate_json(str(playbook), "-n", "300", "--seed", "4", "--rates", "added=0.5,ordered=0.4", "--db", str(second))
    dump = "SELECT event_id, type, contact_id, at, hook, cohort, group_id, amount, props FROM events ORDER BY event_id"
    assert rows(first, dump) == rows(second, dump)
    assert {kind for _, kind, *_ in rows(first, dump)} >= {"card_sent", "friend_added", "group_joined", "order", "friend_deleted"}
    people = "SELECT contact_id, name, tags, source, tier, account, cohort, added_at FROM contacts ORDER BY contact_id"
    assert rows(first, people) == rows(second, people)

    again = simulate_json(str(playbook), "-n", "300", "--seed", "4", "--rates", "added=0.5,ordered=0.4", "--db", str(first))
    assert (again["new_events"], again["removed_events"]) == (0, 0)
    assert rows(first, dump) == rows(second, dump)

    other = simulate_json(str(playbook), "-n", "300", "--seed", "5", "--db", str(first))
    assert other["removed_events"] > 0, "another seed replaces the synthetic log instead of piling on it"
    assert rows(first, "SELECT COUNT(*) FROM contacts") == [(300,)]
    assert rows(first, "SELECT COUNT(*) FROM events") == [(other["events"],)]


def test_the_core_is_deterministic_per_seed(tmp_path: Path) -> None:
    pb = read(shop(tmp_path))
    results = []
    for name in ("a", "b", "c"):
        db = open_store(tmp_path / f"{name}.db")
        try:
            seed = 9 if name != "c" else 10
            result = simulate_core(db, pb, contacts=500, seed=seed, rates={"added": 0.5})
            dump = db.conn.execute("SELECT type, contact_id, at, hook, amount, props FROM events ORDER BY event_id").fetchall()
        finally:
            db.conn.close()
        results.append((result.reached, result.by_type, dump))
    assert results[0] == results[1]
    assert results[0][2] != results[2][2]


def test_rows_are_labelled_and_reports_say_so(tmp_path: Path) -> None:
    playbook = shop(tmp_path, targets={"added": 0.15, "ordered": 0.10})
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "real-1", "name": "王女士", "tags": ["回购卡"]}])
    simulate_json(str(playbook), "-n", "200", "--rates", "added=0.6,ordered=0.5", "--db", str(db_path))
    assert rows(db_path, "SELECT COUNT(*) FROM contacts WHERE json_extract(extra, '$.synthetic') = 1") == [(200,)]
    assert rows(db_path, "SELECT COUNT(*) FROM events WHERE json_extract(props, '$.synthetic') = 1 AND event_id LIKE 'sim-%'") == rows(
        db_path, "SELECT COUNT(*) FROM events"
    )
    assert rows(db_path, "SELECT name, tags FROM contacts WHERE contact_id = 'real-1'") == [("王女士", '["回购卡"]')]
    text = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path)).output
    assert "includes 200 synthetic contacts (siyu simulate): not real customers" in " ".join(text.split())


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


def test_effective_tags_of_a_rehearsal_know_only_the_past(tmp_path: Path) -> None:
    """Through siyu's effective tags: as of any moment, 已购 only on those who have ordered by then, hook tags only after the add."""
    from siyu_cli.rules import TagRules, apply_effective

    playbook = shop(tmp_path)
    db_path = tmp_path / "siyu.db"
    simulate_json(str(playbook), "-n", "1500", "--rates", "added=0.6,ordered=0.5", "--db", str(db_path))
    rules = TagRules.of(read(playbook).model)
    history = timelines(db_path)
    db = open_store(db_path)
    try:
        for day in (3, 8, 15, 40):
            moment = datetime(2026, 12, 1, 12, tzinfo=SHANGHAI) + timedelta(days=day)
            people = [{"id": cid, "tags": json.loads(tags), "source": source} for cid, tags, source in db.conn.execute("SELECT contact_id, tags, source FROM contacts")]
            apply_effective(db, rules, people, as_of=moment)
            for person in people:
                past = [(kind, hook) for kind, at, hook, *_ in history[person["id"]] if at <= moment]
                ordered = any(kind == "order" for kind, _ in past)
                added = next((hook for kind, hook in past if kind == "friend_added"), None)
                assert ("已购" in person["tags"]) == ordered, (day, person)
                assert ("已复购" in person["tags"]) == (sum(kind == "order" for kind, _ in past) >= 2), (day, person)
                assert ("回购卡" in person["tags"]) == (added == "EYE100") and ("返现卡" in person["tags"]) == (added == "CASH5"), (day, person)
    finally:
        db.conn.close()
