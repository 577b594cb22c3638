"""The funnel core against hand-computed cases, every edge of the spec, and an independent SQL oracle."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._data import FUNNEL_STAGES
from bench._funnel import raw_sql, reference
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import read
from siyu_cli.report import funnel, human_duration, two_proportion_z, wilson
from siyu_cli.store import open_store
from tests.playbooks_fixtures import add_contacts, create_store, write_playbook

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
STAGES = [
    {"id": "carded", "label": "包裹卡发出", "event": "card_sent"},
    {"id": "added", "label": "加微", "event": "friend_added"},
    {"id": "joined", "label": "进群", "event": "group_joined"},
    {"id": "ordered", "label": "开单", "event": "order"},
    {"id": "repurchased", "label": "复购", "event": "order", "nth": 2},
]
HOOKS = [
    {"id": "card-a", "kind": "package_card", "title": "回购卡", "code": "EYE100", "tags": ["回购卡"], "persona": "host"},
    {"id": "card-b", "kind": "package_card", "title": "返现卡", "code": "CASH5", "tags": ["返现卡"], "persona": "advisor"},
]


def at(days: float = 0, hours: float = 0, seconds: int = 0) -> str:
    return (T0 + timedelta(days=days, hours=hours, seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def funnel_playbook(
    root: Path,
    *,
    stages: Sequence[dict[str, Any]] = STAGES,
    targets: dict[str, float] | None = None,
    window: str | None = "30d",
    **extra: Any,
) -> Path:
    spec: dict[str, Any] = {"stages": list(stages), "targets": targets if targets is not None else {"added": 0.15, "ordered": 0.10}}
    spec["window"] = window
    return write_playbook(root, funnel=spec, **extra)


def add_events(db_path: Path, rows: Iterable[Sequence[Any]]) -> None:
    """Rows: (contact_id, type, at[, hook[, cohort]]). Event ids are numbered in the given order."""
    create_store(db_path)
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            start = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            conn.executemany(
                "INSERT INTO events (event_id, type, contact_id, at, hook, cohort) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (f"e{start + i:06d}", row[1], row[0], row[2], row[3] if len(row) > 3 else None, row[4] if len(row) > 4 else None)
                    for i, row in enumerate(rows)
                ],
            )
    finally:
        conn.close()


def add_drafts(db_path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Drafts straight into the ledger, with defaults for what a test does not care about."""
    create_store(db_path)
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            for i, row in enumerate(rows):
                data = {
                    "draft_id": f"d{i:05d}-{row.get('target', '')}",
                    "playbook_id": "camp",
                    "cohort": "default",
                    "beat": "noon",
                    "occurrence_at": at(0, hours=i / 60),
                    "target": "group:g1",
                    "day": 1,
                    "channel": "private",
                    "persona": "host",
                    "due_at": at(0),
                    "content_hash": "h",
                    "state": "sent",
                    "created_at": at(0),
                    **row,
                }
                conn.execute(f"INSERT INTO drafts ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})", list(data.values()))
    finally:
        conn.close()


@contextmanager
def opened(db_path: Path) -> Iterator[Any]:
    db = open_store(db_path)
    try:
        yield db
    finally:
        db.conn.close()


def counts(report: Any) -> dict[str, int]:
    return {s.id: s.count for s in report.stages}


# Each contact documents the rule it exercises; the expected stage reached is the last in the name.
EDGE_EVENTS = [
    # A: the whole funnel.
    ("A", "card_sent", at(0)), ("A", "friend_added", at(1)), ("A", "group_joined", at(2)), ("A", "order", at(3)), ("A", "order", at(10)),
    # B: an add before the card does not count; its join then has no add to follow.
    ("B", "friend_added", at(-1)), ("B", "card_sent", at(0)), ("B", "group_joined", at(1)),
    # C: the order comes 31 days after entering: outside the 30-day window.
    ("C", "card_sent", at(0)), ("C", "friend_added", at(1)), ("C", "group_joined", at(2)), ("C", "order", at(31)),
    # C2: an order exactly 30 days after entering still counts.
    ("C2", "card_sent", at(0)), ("C2", "friend_added", at(1)), ("C2", "group_joined", at(2)), ("C2", "order", at(30)),
    # D: one order: ordered, not repurchased.
    ("D", "card_sent", at(0)), ("D", "friend_added", at(1)), ("D", "group_joined", at(2)), ("D", "order", at(3)),
    # E: an order before joining does not count; the two after it are first order and repurchase.
    ("E", "card_sent", at(0)), ("E", "friend_added", at(1)), ("E", "order", at(1.5)), ("E", "group_joined", at(2)),
    ("E", "order", at(3)), ("E", "order", at(4)),
    # F: as E with one order after joining: ordered only (the early order is not a first order).
    ("F", "card_sent", at(0)), ("F", "friend_added", at(1)), ("F", "order", at(1.5)), ("F", "group_joined", at(2)), ("F", "order", at(3)),
    # G: skips the add: stops at carded even though it joined and ordered.
    ("G", "card_sent", at(0)), ("G", "group_joined", at(1)), ("G", "order", at(2)),
    # H: two cards; the window counts from the first, so an add 32 days after it is out.
    ("H", "card_sent", at(0)), ("H", "card_sent", at(5)), ("H", "friend_added", at(32)),
    # I: everything at one timestamp, two orders: every stage reached.
    ("I", "card_sent", at(0)), ("I", "friend_added", at(0)), ("I", "group_joined", at(0)), ("I", "order", at(0)), ("I", "order", at(0)),
    # K: the add shares the card's timestamp but was recorded first: still "at or after".
    ("K", "friend_added", at(0, hours=5)), ("K", "card_sent", at(0, hours=5)),
    # J: never got a card: not in the funnel at all.
    ("J", "friend_added", at(0)), ("J", "group_joined", at(1)),
]
EDGE_EXPECTED = {"carded": 11, "added": 8, "joined": 7, "ordered": 6, "repurchased": 3}


def test_every_edge_of_the_spec(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, EDGE_EVENTS)
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        report = funnel(db, pb)
    assert counts(report) == EDGE_EXPECTED
    assert report.entered == 11
    rows = {s.id: s for s in report.stages}
    assert rows["added"].step_rate == pytest.approx(8 / 11)
    assert rows["repurchased"].from_top == pytest.approx(3 / 11)
    assert rows["carded"].step_rate is None


def test_edge_cases_agree_with_the_raw_sql_query(tmp_path: Path) -> None:
    """The benchmark's hand-written query is an independent statement of the same rules."""
    db_path = tmp_path / "siyu.db"
    add_events(db_path, EDGE_EVENTS)
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute(raw_sql(FUNNEL_STAGES)).fetchone()
    finally:
        conn.close()
    assert dict(zip(EDGE_EXPECTED, row, strict=True)) == EDGE_EXPECTED


def test_each_contact_reaches_what_the_comments_say(tmp_path: Path) -> None:
    expected = {"A": 5, "B": 1, "C": 3, "C2": 4, "D": 4, "E": 5, "F": 4, "G": 1, "H": 1, "I": 5, "K": 2}
    pb = read(funnel_playbook(tmp_path))
    for contact, depth in expected.items():
        db_path = tmp_path / f"{contact}.db"
        add_events(db_path, [e for e in EDGE_EVENTS if e[0] == contact])
        with opened(db_path) as db:
            report = funnel(db, pb)
        reached = sum(1 for s in report.stages if s.count)
        assert reached == depth, contact


def test_no_window_means_no_limit(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, [e for e in EDGE_EVENTS if e[0] in ("C", "H")])
    pb = read(funnel_playbook(tmp_path, window=None))
    with opened(db_path) as db:
        report = funnel(db, pb)
    assert counts(report) == {"carded": 2, "added": 2, "joined": 1, "ordered": 1, "repurchased": 0}


def test_median_time_from_the_previous_stage(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(
        db_path,
        [
            ("a", "card_sent", at(0)), ("a", "friend_added", at(0, hours=1)),
            ("b", "card_sent", at(0)), ("b", "friend_added", at(0, hours=2)),
            ("c", "card_sent", at(0)), ("c", "friend_added", at(2, hours=3)),
            ("d", "card_sent", at(0)),
        ],
    )
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        report = funnel(db, pb)
    added = report.stages[1]
    assert added.median_seconds == 2 * 3600
    assert report.stages[0].median_seconds is None
    assert human_duration(added.median_seconds) == "2h"
    assert human_duration(2 * 86400 + 3 * 3600 + 59) == "2d 3h"
    assert human_duration(45 * 60) == "45m"
    assert human_duration(30) == "30s"


def test_targets_are_step_rate_benchmarks(tmp_path: Path) -> None:
    """added 0.15 = 15% of carded contacts add; 3 of 20 is met, 2 of 20 is not."""
    db_path = tmp_path / "siyu.db"
    rows: list[tuple[str, str, str]] = []
    for i in range(20):
        rows.append((f"c{i}", "card_sent", at(0)))
        if i < 3:
            rows += [(f"c{i}", "friend_added", at(1)), (f"c{i}", "group_joined", at(2))]
    rows += [("c0", "order", at(3))]
    add_events(db_path, rows)
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        report = funnel(db, pb)
    added, joined, ordered = report.stages[1], report.stages[2], report.stages[3]
    assert (added.target, added.step_rate, added.met) == (0.15, 0.15, True)
    assert joined.target is None and joined.met is None
    assert ordered.step_rate == pytest.approx(1 / 3) and ordered.met is True
    add_events(db_path, [("c99", "card_sent", at(0))])
    with opened(db_path) as db:
        assert funnel(db, pb).stages[1].met is False


def test_since_until_bound_the_entry_time(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(
        db_path,
        [
            ("early", "card_sent", at(0)), ("early", "friend_added", at(10)),
            ("mid", "card_sent", at(5)), ("mid", "friend_added", at(6)),
            ("late", "card_sent", at(9)),
        ],
    )
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        assert funnel(db, pb, since=T0 + timedelta(days=5)).entered == 2
        assert funnel(db, pb, until=T0 + timedelta(days=5)).entered == 1
        window = funnel(db, pb, since=T0 + timedelta(days=1), until=T0 + timedelta(days=9))
    assert counts(window) == {"carded": 1, "added": 1, "joined": 0, "ordered": 0, "repurchased": 0}


def test_cohort_filter_uses_the_contact_then_the_entry_event(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "c1", "cohort": "batch-12"}, {"contact_id": "c2", "cohort": None}, {"contact_id": "c3", "cohort": "batch-13"}])
    add_events(
        db_path,
        [
            ("c1", "card_sent", at(0), None, "batch-13"),  # the contact's own cohort wins
            ("c2", "card_sent", at(0), None, "batch-12"),  # no contact cohort: the entry event's
            ("c3", "card_sent", at(0)),
            ("c4", "card_sent", at(0), None, "batch-12"),  # no contact row at all
        ],
    )
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        assert funnel(db, pb, cohort="batch-12").entered == 3
        assert funnel(db, pb, cohort="batch-13").entered == 1
        by = funnel(db, pb, by="cohort")
    assert {g.key: g.entered for g in by.groups} == {"batch-12": 3, "batch-13": 1}


def test_by_hook_maps_codes_ids_and_sources(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(
        db_path,
        [
            {"contact_id": "s1", "source": "CASH5"},
            {"contact_id": "s2", "source": "card-a"},
            {"contact_id": "s3", "source": "小红书"},
        ],
    )
    add_events(
        db_path,
        [
            ("h1", "card_sent", at(0), "card-a"), ("h1", "friend_added", at(1)),
            ("h2", "card_sent", at(0), "EYE100"), ("h2", "friend_added", at(1)), ("h2", "group_joined", at(1)),
            ("h3", "card_sent", at(0), "EYE100"),
            ("h4", "card_sent", at(0), "CASH5"),
            ("s1", "card_sent", at(0)), ("s1", "friend_added", at(1)),
            ("s2", "card_sent", at(0)),
            ("s3", "card_sent", at(0)),
            ("x1", "card_sent", at(0), "SPRING"),
            ("s1", "card_sent", at(3), "card-a"),  # a later card does not change how s1 came in
        ],
    )
    pb = read(funnel_playbook(tmp_path, hooks=HOOKS))
    with opened(db_path) as db:
        report = funnel(db, pb, by="hook")
    groups = {g.key: g for g in report.groups}
    assert [g.key for g in report.groups] == ["card-a", "card-b", "SPRING", "(none)"]
    assert groups["card-a"].entered == 4 and groups["card-a"].stages[1].count == 2
    assert groups["card-a"].label == "回购卡 card-a"
    assert groups["card-b"].entered == 2 and groups["card-b"].stages[1].count == 1
    assert groups["(none)"].entered == 1
    assert counts(report)["carded"] == 8
    added = groups["card-a"].stages[1]
    assert added.step_rate == 0.5
    assert added.step_ci == pytest.approx(wilson(2, 4))
    assert added.top_ci == pytest.approx(wilson(2, 4))
    assert groups["card-a"].stages[2].step_ci == pytest.approx(wilson(1, 2))
    assert added.lift is None


def test_by_tier_source_and_persona(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(
        db_path,
        [
            {"contact_id": "p1", "tier": "精准粉", "source": "EYE100", "account": "wx_adv_02"},
            {"contact_id": "p2", "tier": "泛粉", "source": "EYE100"},
            {"contact_id": "p3", "tier": "泛粉", "source": "CASH5"},
        ],
    )
    add_events(db_path, [(c, "card_sent", at(0)) for c in ("p1", "p2", "p3", "p4")])
    pb = read(funnel_playbook(tmp_path, hooks=HOOKS))
    with opened(db_path) as db:
        tiers = funnel(db, pb, by="tier")
        sources = funnel(db, pb, by="source")
        personas = funnel(db, pb, by="persona")
    assert {g.key: g.entered for g in tiers.groups} == {"精准粉": 1, "泛粉": 2, "(none)": 1}
    assert {g.key: g.entered for g in sources.groups} == {"EYE100": 2, "CASH5": 1, "(none)": 1}
    # p1's account belongs to advisor; p2 came through card-a (persona host); p3 through card-b (advisor).
    assert {g.key: g.entered for g in personas.groups} == {"host": 1, "advisor": 2, "(none)": 1}
    assert [g.key for g in personas.groups] == ["host", "advisor", "(none)"]


def test_by_variant_lift_against_the_holdout(tmp_path: Path) -> None:
    """45 of 100 in variant a order against 30 of 100 held out: +15 points, z = 2.19, p = 0.028."""
    db_path = tmp_path / "siyu.db"
    stages = [{"id": "added", "label": "加微", "event": "friend_added"}, {"id": "ordered", "label": "开单", "event": "order"}]
    events: list[tuple[str, str, str]] = []
    drafts: list[dict[str, Any]] = []
    plan = {"a": 45, "holdout": 30, "b": 10}
    for variant, orders in plan.items():
        for i in range(100):
            cid = f"{variant}-{i:03d}"
            events.append((cid, "friend_added", at(0)))
            if i < orders:
                events.append((cid, "order", at(2)))
            holdout = variant == "holdout"
            drafts.append(
                {"target": f"contact:{cid}", "variant": variant, "beat": "close", "state": "skipped" if holdout else "sent", "reason": "holdout" if holdout else None}
            )
    events += [("nobody", "friend_added", at(0))]
    # A later variant beat does not move a contact out of the group it was first assigned to.
    drafts.append({"target": "contact:a-000", "variant": "b", "beat": "late-close", "occurrence_at": at(5), "state": "sent"})
    add_events(db_path, events)
    add_drafts(db_path, drafts)
    pb = read(funnel_playbook(tmp_path, stages=stages, targets={"ordered": 0.3}))
    with opened(db_path) as db:
        report = funnel(db, pb, by="variant")
    groups = {g.key: g for g in report.groups}
    assert [g.key for g in report.groups] == ["a", "b", "holdout", "(none)"]
    assert groups["holdout"].holdout and groups["holdout"].label == "holdout 对照组"
    a = groups["a"].stages[1]
    assert a.lift == pytest.approx(0.15)
    assert a.relative_lift == pytest.approx(0.5)
    assert a.z == pytest.approx(2.1909, abs=1e-4)
    assert a.p_value == pytest.approx(0.02846, abs=1e-5)
    assert a.significant is True
    b = groups["b"].stages[1]
    assert b.lift == pytest.approx(-0.2) and b.significant is True
    assert groups["holdout"].stages[1].lift is None
    assert groups["(none)"].stages[1].lift is None
    json.dumps(report.to_dict())


def test_variant_grouping_only_reads_this_playbooks_drafts(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, [("c1", "card_sent", at(0))])
    add_drafts(db_path, [{"target": "contact:c1", "variant": "a", "playbook_id": "other"}])
    pb = read(funnel_playbook(tmp_path))
    with opened(db_path) as db:
        report = funnel(db, pb, by="variant")
    assert [(g.key, g.entered) for g in report.groups] == [("(none)", 1)]


def test_no_funnel_and_bad_grouping_are_errors(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    create_store(db_path)
    plain = read(write_playbook(tmp_path / "plain"))
    with opened(db_path) as db:
        with pytest.raises(SiyuError, match="no funnel") as info:
            funnel(db, plain)
        assert "funnel:" in (info.value.hint or "")
        with pytest.raises(UsageError, match="cannot group by"):
            funnel(db, read(funnel_playbook(tmp_path)), by="colour")


def test_empty_store_reports_zero(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    create_store(db_path)
    with opened(db_path) as db:
        report = funnel(db, read(funnel_playbook(tmp_path)))
    assert report.entered == 0
    assert all(s.count == 0 and s.step_rate is None and s.met is None for s in report.stages)
    json.dumps(report.to_dict())


def test_synthetic_contacts_are_counted(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "real"}, {"contact_id": "sim-1"}])
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("""UPDATE contacts SET extra = '{"synthetic": true}' WHERE contact_id = 'sim-1'""")
            conn.execute("""UPDATE contacts SET extra = '{"note": "not synthetic"}' WHERE contact_id = 'real'""")
    finally:
        conn.close()
    add_events(db_path, [("real", "card_sent", at(0)), ("sim-1", "card_sent", at(0))])
    with opened(db_path) as db:
        assert funnel(db, read(funnel_playbook(tmp_path))).synthetic == 1


def test_wilson_interval_known_values() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, method 3 (score interval)."""
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert wilson(1, 29) == pytest.approx((0.0061, 0.1718), abs=5e-5)
    assert wilson(15, 100) == pytest.approx((0.0931, 0.2328), abs=5e-5)
    low, high = wilson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=5e-5)
    assert wilson(0, 0) == (0.0, 0.0)


def test_two_proportion_z_test() -> None:
    test = two_proportion_z(45, 100, 30, 100)
    assert test is not None
    assert test.z == pytest.approx(2.19089, abs=1e-5)
    assert test.p_value == pytest.approx(0.028460, abs=1e-6)
    assert test.significant
    same = two_proportion_z(30, 100, 30, 100)
    assert same is not None and same.z == 0 and same.p_value == pytest.approx(1.0) and not same.significant
    weak = two_proportion_z(12, 100, 10, 100)
    assert weak is not None and not weak.significant
    assert two_proportion_z(0, 10, 0, 10) is None
    assert two_proportion_z(1, 0, 1, 10) is None


EVENT_TYPES = ("card_sent", "friend_added", "group_joined", "order", "checkin")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    logs=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(EVENT_TYPES), st.integers(0, 40 * 24)),
        max_size=60,
    )
)
def test_random_logs_agree_with_the_raw_sql_query(tmp_path_factory: pytest.TempPathFactory, logs: list[tuple[int, str, int]]) -> None:
    """Any event log: the streaming pass and one SQL query with a CTE per stage count the same."""
    root = tmp_path_factory.mktemp("prop")
    db_path = root / "siyu.db"
    add_events(db_path, [(f"c{c}", kind, at(hours=hour)) for c, kind, hour in logs])
    pb = read(funnel_playbook(root))
    with opened(db_path) as db:
        report = funnel(db, pb)
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute(raw_sql(FUNNEL_STAGES)).fetchone()
    finally:
        conn.close()
    assert [s.count for s in report.stages] == list(row)


OPTIONAL_STAGES = [{**s, "optional": True} if s["id"] == "joined" else s for s in STAGES]
# joined is optional. Each contact says what it shows; times are days after T0.
OPTIONAL_EVENTS = [
    # P1 orders without ever joining: it still goes on to ordered.
    ("P1", "card_sent", at(0)), ("P1", "friend_added", at(1)), ("P1", "order", at(2)),
    # P2 walks every stage.
    ("P2", "card_sent", at(0)), ("P2", "friend_added", at(1)), ("P2", "group_joined", at(1.5)), ("P2", "order", at(3)), ("P2", "order", at(5)),
    # P3 orders first and joins later: both count, because joining does not move the clock.
    ("P3", "card_sent", at(0)), ("P3", "friend_added", at(1)), ("P3", "order", at(2)), ("P3", "group_joined", at(4)),
    # P4 adds two days after the card and stops there.
    ("P4", "card_sent", at(0)), ("P4", "friend_added", at(2)),
    # P5 only got the card.
    ("P5", "card_sent", at(0)),
    # P6 joins without adding: added is required, so P6 stops at carded.
    ("P6", "card_sent", at(0)), ("P6", "group_joined", at(1)), ("P6", "order", at(2)),
    # P7 joined before adding (does not count) and orders two days after adding.
    ("P7", "card_sent", at(0)), ("P7", "group_joined", at(0.5)), ("P7", "friend_added", at(1)), ("P7", "order", at(3)),
]


def test_an_optional_stage_is_counted_skipped_and_does_not_move_the_clock(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, OPTIONAL_EVENTS)
    pb = read(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES))
    with opened(db_path) as db:
        report = funnel(db, pb)
    assert counts(report) == {"carded": 7, "added": 5, "joined": 2, "ordered": 4, "repurchased": 1}
    rows = {s.id: s for s in report.stages}
    assert rows["joined"].optional and not rows["ordered"].optional
    # Step rates over the last required stage before each: ordered is 4 of the 5 who added, not 4 of the 2 who joined.
    assert (rows["joined"].base, rows["joined"].step_rate) == ("added", pytest.approx(2 / 5))
    assert (rows["ordered"].base, rows["ordered"].step_rate) == ("added", pytest.approx(4 / 5))
    assert (rows["repurchased"].base, rows["repurchased"].step_rate) == ("ordered", pytest.approx(1 / 4))
    # Medians from the last required stage: joined 0.5d and 3d after adding; ordered 1d, 2d, 1d, 2d after adding.
    assert rows["added"].median_seconds == 86400
    assert rows["joined"].median_seconds == 1.75 * 86400
    assert rows["ordered"].median_seconds == 1.5 * 86400
    assert rows["repurchased"].median_seconds == 2 * 86400
    with opened(db_path) as db:
        required = funnel(db, read(funnel_playbook(tmp_path / "required")))
    assert counts(required) == {"carded": 7, "added": 5, "joined": 2, "ordered": 1, "repurchased": 1}, "with joined required only P2 orders after joining"


def test_optional_stages_agree_with_the_reference_and_the_sql_query(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, OPTIONAL_EVENTS + EDGE_EVENTS)
    pb = read(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES))
    with opened(db_path) as db:
        report = funnel(db, pb)
    stages = [(s["id"], s["event"], s.get("nth", 1), bool(s.get("optional"))) for s in OPTIONAL_STAGES]
    conn = sqlite3.connect(db_path)
    try:
        expected, medians = reference(conn, stages, 30 * 86400)
        row = conn.execute(raw_sql(stages)).fetchone()
    finally:
        conn.close()
    assert [s.count for s in report.stages] == expected == list(row)
    assert [s.median_seconds for s in report.stages] == medians


def test_a_target_of_a_base_stage_is_held_against_that_stage(tmp_path: Path) -> None:
    """ordered {rate, of: added}: 4 of the 5 who added ordered, 80%; met at 0.5, not at 0.9."""
    db_path = tmp_path / "siyu.db"
    add_events(db_path, OPTIONAL_EVENTS)
    targets: dict[str, Any] = {"added": 0.5, "ordered": {"rate": 0.5, "of": "added"}, "repurchased": {"rate": 0.9, "of": "carded"}}
    pb = read(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES, targets=targets))
    with opened(db_path) as db:
        rows = {s.id: s for s in funnel(db, pb).stages}
    added, ordered, repurchased = rows["added"], rows["ordered"], rows["repurchased"]
    assert (added.target, added.target_of, added.target_rate, added.met) == (0.5, None, pytest.approx(5 / 7), True)
    assert (ordered.target, ordered.target_of, ordered.target_rate, ordered.met) == (0.5, "added", pytest.approx(4 / 5), True)
    assert (repurchased.target, repurchased.target_of, repurchased.target_rate, repurchased.met) == (0.9, "carded", pytest.approx(1 / 7), False)
    assert rows["joined"].target is None and rows["joined"].target_rate is None and rows["joined"].met is None


def test_chunk_edges_and_the_memo_do_not_change_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contacts cut across fetches, and contacts walked one by one, count as the streaming default does."""
    from siyu_cli.report import _funnel

    db_path = tmp_path / "siyu.db"
    add_events(db_path, OPTIONAL_EVENTS + EDGE_EVENTS)
    pb = read(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES, hooks=HOOKS))
    with opened(db_path) as db:
        plain = funnel(db, pb).to_dict()
        hooked = funnel(db, pb, by="hook").to_dict()
    for chunk, memo in ((2, 200_000), (3, 0), (1, 0)):
        monkeypatch.setattr(_funnel, "CHUNK", chunk)
        monkeypatch.setattr(_funnel, "MEMO_LIMIT", memo)
        with opened(db_path) as db:
            assert funnel(db, pb).to_dict() == plain, (chunk, memo)
            assert funnel(db, pb, by="hook").to_dict() == hooked, (chunk, memo)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    logs=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(EVENT_TYPES), st.integers(0, 40 * 24)), max_size=60),
    window=st.sampled_from([None, "3d", "30d"]),
)
def test_random_logs_with_an_optional_stage_agree_with_the_reference(
    tmp_path_factory: pytest.TempPathFactory, logs: list[tuple[int, str, int]], window: str | None
) -> None:
    """Any event log (hour-grained, so many events share a time): the pass and the plain reading agree on counts and medians."""
    root = tmp_path_factory.mktemp("prop")
    db_path = root / "siyu.db"
    add_events(db_path, [(f"c{c}", kind, at(hours=hour)) for c, kind, hour in logs])
    pb = read(funnel_playbook(root, stages=OPTIONAL_STAGES, window=window))
    with opened(db_path) as db:
        report = funnel(db, pb)
    stages = [(s["id"], s["event"], s.get("nth", 1), bool(s.get("optional"))) for s in OPTIONAL_STAGES]
    conn = sqlite3.connect(db_path)
    try:
        expected, medians = reference(conn, stages, None if window is None else int(window[:-1]) * 86400)
    finally:
        conn.close()
    assert [s.count for s in report.stages] == expected
    assert [s.median_seconds for s in report.stages] == medians


HOOK_PLAN = {"card-a": (100, 30), "card-b": (100, 45), "card-c": (100, 15), "card-d": (12, 2)}
FOUR_HOOKS = [
    {"id": hook, "kind": "package_card", "title": f"卡{hook[-1].upper()}", "code": hook.upper().replace("-", ""), "persona": "host"} for hook in HOOK_PLAN
]


def hook_store(db_path: Path) -> None:
    """Per hook (entered, ordered): card-a 30/100 is the baseline; b 45/100 better, c 15/100 worse, d 2/12 too small to test."""
    events: list[tuple[str, ...]] = []
    for hook, (entered, ordered) in HOOK_PLAN.items():
        for i in range(entered):
            cid = f"{hook}-{i:03d}"
            events.append((cid, "friend_added", at(0), hook))
            if i < ordered:
                events.append((cid, "order", at(1)))
    add_events(db_path, events)


def test_by_hook_lift_and_verdict_against_the_first_hook(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    hook_store(db_path)
    stages = [{"id": "added", "label": "加微", "event": "friend_added"}, {"id": "ordered", "label": "开单", "event": "order"}]
    pb = read(funnel_playbook(tmp_path, stages=stages, targets={}, hooks=FOUR_HOOKS))
    with opened(db_path) as db:
        report = funnel(db, pb, by="hook")
    groups = {g.key: g for g in report.groups}
    assert report.baseline == "card-a" and groups["card-a"].baseline and groups["card-a"].stages[1].verdict is None
    b, c, d = (groups[k].stages[1] for k in ("card-b", "card-c", "card-d"))
    assert (b.lift, b.verdict, b.small_sample) == (pytest.approx(0.15), "better", False)
    assert b.p_value == pytest.approx(0.02846, abs=1e-5)
    assert (c.lift, c.verdict, c.small_sample) == (pytest.approx(-0.15), "worse", False)
    assert (d.verdict, d.small_sample) == ("no significant difference", True)
    assert len(report.warnings) == 1 and "hook card-d vs card-a" in report.warnings[0] and "ordered (2 of 12 vs 30 of 100)" in report.warnings[0]


def test_by_hook_baseline_is_the_first_hook_with_contacts(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, [("x", "card_sent", at(0), "card-b"), ("y", "card_sent", at(0), "SPRING")])
    pb = read(funnel_playbook(tmp_path, hooks=HOOKS))
    with opened(db_path) as db:
        report = funnel(db, pb, by="hook")
        unknown_only = funnel(db, read(funnel_playbook(tmp_path / "nohooks")), by="hook")
    assert report.baseline == "card-b" and [g.key for g in report.groups if g.baseline] == ["card-b"]
    assert unknown_only.baseline is None and all(s.lift is None for g in unknown_only.groups for s in g.stages)
