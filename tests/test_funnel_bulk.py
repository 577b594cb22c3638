"""The funnel's bulk paths (outcomes found per byte, ties checked per outcome, medians selected) against plain readings."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._funnel import reference
from siyu_cli.playbook import read
from siyu_cli.report import _funnel, funnel
from tests.test_funnel import EVENT_TYPES, HOOKS, OPTIONAL_STAGES, T0, add_events, at, counts, funnel_playbook, opened

STAGE_TUPLES = [(s["id"], s["event"], s.get("nth", 1), bool(s.get("optional"))) for s in OPTIONAL_STAGES]
# Each setting forces one side of a choice the pass makes for speed: every outcome found hit by hit
# or by a pass over all contacts, times picked from shifted copies or row by row, medians selected
# or sorted, and outcomes beyond the third walked contact by contact (SPECIAL).
SETTINGS: list[dict[str, int]] = [
    {},
    {"FEW": 1, "SHIFTS": 0, "SELECT_FROM": 1},
    {"FEW": 10**9, "SHIFTS": 1, "SELECT_FROM": 1, "SPECIAL": 3},
    {"CHUNK": 3, "SPECIAL": 2, "MEMO_LIMIT": 2},
]


def sorted_median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def expected(db_path: Path, window: str | None) -> tuple[list[int], list[float | None]]:
    conn = sqlite3.connect(db_path)
    try:
        return reference(conn, STAGE_TUPLES, None if window is None else int(window[:-1]) * 86400)
    finally:
        conn.close()


def report_under(db_path: Path, pb: Any, setting: dict[str, int], **options: Any) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in setting.items():
            patch.setattr(_funnel, name, value)
        with opened(db_path) as db:
            return funnel(db, pb, **options)


def test_the_selected_median_is_the_sorted_one() -> None:
    rng = random.Random(7)
    cases: list[list[int]] = [
        [rng.randrange(10**6) for _ in range(5000)],
        [rng.randrange(10**6) for _ in range(5001)],
        [int(rng.expovariate(1 / 90000)) for _ in range(20000)],
        list(range(10000)),
        list(range(10000, 0, -1)),
        [42] * 8192,
        [1, 2] * 4100,
        [rng.choice((0, 86400, 2 * 86400)) for _ in range(9999)],
        # Every 64th value an outlier: the sample brackets the wrong place and the whole list is sorted.
        [10**9 if i % 64 == 0 else i for i in range(6400)],
        [-(10**9) if i % 64 == 0 else i for i in range(6401)],
    ]
    for values in cases:
        assert _funnel._median(values) == sorted_median(values)
    assert _funnel._median([]) is None


def many_outcomes_events() -> list[tuple[str, str, str]]:
    """300 contacts, contact k with k orders before its card: 300 entry offsets, so 300 distinct outcomes."""
    events: list[tuple[str, str, str]] = []
    for k in range(300):
        cid = f"m{k:03d}"
        events += [(cid, "order", at(0, seconds=s)) for s in range(k)]
        events += [(cid, "card_sent", at(1)), (cid, "friend_added", at(1, hours=1 + k % 7))]
        if k % 3:
            events += [(cid, "order", at(2, hours=k % 5))]
        if k % 4 == 0:
            events += [(cid, "group_joined", at(1, hours=12)), (cid, "order", at(3)), (cid, "order", at(9 + k % 30))]
    return events


@pytest.mark.parametrize("setting", SETTINGS)
def test_more_outcomes_than_a_byte_holds(tmp_path: Path, setting: dict[str, int]) -> None:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, many_outcomes_events())
    pb = read(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES))
    report = report_under(db_path, pb, setting)
    found, medians = expected(db_path, "30d")
    assert [s.count for s in report.stages] == found
    assert [s.median_seconds for s in report.stages] == medians
    assert found[-1] > 0  # some repurchase inside the window, some beyond it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    logs=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(EVENT_TYPES), st.integers(0, 40 * 24)), max_size=80),
    window=st.sampled_from([None, "3d", "30d"]),
)
def test_every_bulk_path_agrees_with_the_reference(tmp_path_factory: pytest.TempPathFactory, logs: list[tuple[int, str, int]], window: str | None) -> None:
    """Hour-grained logs (many rows share a time, many hits fall outside short windows) under each setting."""
    root = tmp_path_factory.mktemp("bulk")
    db_path = root / "siyu.db"
    add_events(db_path, [(f"c{c}", kind, at(hours=hour)) for c, kind, hour in logs])
    pb = read(funnel_playbook(root, stages=OPTIONAL_STAGES, window=window))
    found, medians = expected(db_path, window)
    for setting in SETTINGS:
        report = report_under(db_path, pb, setting)
        assert [s.count for s in report.stages] == found, setting
        assert [s.median_seconds for s in report.stages] == medians, setting


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    logs=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(EVENT_TYPES), st.integers(0, 40 * 24), st.sampled_from(["card-a", "card-b", None])),
        max_size=80,
    ),
)
def test_groups_and_bounds_see_each_contacts_final_outcome(tmp_path_factory: pytest.TempPathFactory, logs: list[tuple[int, str, int, str | None]]) -> None:
    """--by hook splits exactly the contacts counted; --since counts as a store holding only the contacts entered since."""
    root = tmp_path_factory.mktemp("groups")
    db_path = root / "siyu.db"
    rows = [(f"c{c}", kind, at(hours=hour), hook) for c, kind, hour, hook in logs]
    add_events(db_path, rows)
    pb = read(funnel_playbook(root, stages=OPTIONAL_STAGES, window="3d", hooks=HOOKS))
    since = T0 + timedelta(days=20)
    entries: dict[str, str] = {}
    for cid, kind, moment, _hook in sorted(rows, key=lambda row: row[2]):
        if kind == "card_sent":
            entries.setdefault(cid, moment)
    later = {cid for cid, moment in entries.items() if moment >= since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    only = root / "only.db"
    add_events(only, [row for row in rows if row[0] in later])
    with opened(only) as db:
        plain_later = counts(funnel(db, pb))
    for setting in SETTINGS:
        plain = report_under(db_path, pb, setting)
        hooked = report_under(db_path, pb, setting, by="hook")
        assert counts(hooked) == counts(plain), setting
        for k, stage in enumerate(plain.stages):
            assert sum(group.stages[k].count for group in hooked.groups) == stage.count, setting
        assert counts(report_under(db_path, pb, setting, since=since)) == plain_later, setting


def test_sequences_split_as_slicing_does() -> None:
    """Each contact's codes out of one byte string, as the slicing kept for funnels of 255 event types."""
    rng = random.Random(3)
    for n in (1, 2, 3, 50, 1000):
        codes = bytes(rng.randrange(5) for _ in range(n))
        new = bytes(rng.random() < 0.4 for _ in range(n - 1))
        assert _funnel._sequences(codes, new, False) == _funnel._sequences(codes, new, True)
        assert b"".join(_funnel._sequences(codes, new, False)) == codes
        assert len(_funnel._sequences(codes, new, False)) == 1 + sum(new)
