"""preview day N for a reviewer (issue 13 item 3): a summary first, identical group posts once, every variant and
both stats branches with an empty store, --all-variants with a real one, --out under DATE/, exit 2 outside the campaign."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, add_event, invoke, parents, write_playbook

GROUPS = [{"id": "g1", "name": "阅读营1群", "persona": "host"}, {"id": "g2", "name": "阅读营2群", "persona": "host"}]
AB = {
    **NOON_1V1,
    "text": None,
    "variants": {
        "a": {"weight": 45, "text": "A版：{{ contact.name }}，今天第{{ day }}天"},
        "b": {"weight": 45, "text": "B版：{{ contact.name }}，今天第{{ day }}天"},
        "holdout": {"weight": 10},
    },
}
PRAISE = {
    "id": "praise",
    "title": "作业表扬榜",
    "at": "12:00",
    "channel": "group",
    "groups": ["g1"],
    "text": "{% if stats.checkins %}表扬{{ stats.checkins | length }}位同学{% else %}还没有人打卡{% endif %}",
}


@pytest.fixture(autouse=True)
def _no_store_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./siyu.db unless a test writes one


def _camp(root: Path, **extra: Any) -> Path:
    beats = [MORNING, {k: v for k, v in AB.items() if v is not None}, PRAISE]
    return write_playbook(root, beats=beats, groups=GROUPS, **extra)


def _preview(path: Path, *args: str, code: int = 0) -> Any:
    return invoke("preview", "day", "2", "-p", str(path), *args, code=code)


def test_an_empty_store_shows_every_variant_for_its_own_sample_and_both_stats_branches(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    data = json.loads(_preview(path, "--json").stdout)
    noon = [d for d in data["drafts"] if d["beat"] == "noon"]
    assert sorted(d["variant"] for d in noon) == ["a", "b", "holdout"]
    assert len({d["contact"] for d in noon}) == 3 and all(d["sample"] for d in noon)
    assert {d["decision"] for d in noon} == {"send", "skip:holdout"}
    assert next(d for d in noon if d["variant"] == "b")["text"].startswith("B版：示例联系人")
    (praise,) = [d for d in data["drafts"] if d["beat"] == "praise"]
    assert (praise["stats"], praise["text"], praise["text_without_stats"]) == ("sample", "表扬2位同学", "还没有人打卡")
    rows = {(r["beat"], r["variant"]): r for r in data["summary"]["beats"]}
    assert (rows[("morning", None)]["drafts"], rows[("morning", None)]["pending"]) == (2, 2)
    assert (rows[("noon", "holdout")]["holdout"], rows[("noon", "b")]["pending"]) == (1, 1)

    text = _preview(path).stdout
    assert text.index("summary 概览") < text.index("早上好，第2天")
    assert "groups: 阅读营1群, 阅读营2群" in text and text.count("早上好，第2天") == 1, "one identical post in two groups is shown once"
    assert "with sample stats 示例数据" in text and "表扬2位同学" in text and "还没有人打卡" in text


def test_with_contacts_the_summary_counts_touches_and_each_accounts_load_against_its_cap(tmp_path: Path) -> None:
    path = _camp(tmp_path, limits={"private_per_account_per_day": 20, "per_contact_per_day": 3})
    db = tmp_path / "siyu.db"
    add_contacts(db, parents(40))
    for n in range(5):
        add_event(db, f"j{n}", "group_joined", f"c{n:04d}", "2026-11-30T00:00:00Z", group="g1")
    data = json.loads(_preview(path, "--db", str(db), "--json").stdout)
    summary = data["summary"]
    (load,) = summary["private_per_account"]
    holdouts = sum(r["holdout"] for r in summary["beats"] if r["beat"] == "noon")
    assert (load["persona"], load["account"], load["cap"]) == ("host", "wx_host_01", 20)
    assert load["pending"] == 20 and load["refused"] == 40 - holdouts - 20
    touches = summary["touches_per_contact"]
    # c0000-c0004 are in g1: the morning post and the praise board reach them besides their own 1v1 draft
    members_1v1 = sum(1 for d in data["drafts"] if d["beat"] == "noon" and d["contact"] in {f"c{n:04d}" for n in range(5)} and d["decision"] == "send")
    assert touches["max"] == (3 if members_1v1 else 2) and touches["cap"] == 3
    assert touches["contacts"] == 20 + 5 - members_1v1
    assert touches["p95"] in (1, 2, 3)
    text = _preview(path, "--db", str(db)).stdout
    assert "1v1 load 私聊量 · 小丸子 (wx_host_01): 20 / 20 cap" in text and "refused at the cap" in text
    assert "touches per contact 每人触达" in text and "p95" in text


def test_all_variants_shows_the_variants_a_contact_does_not_get_without_counting_them(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    db = tmp_path / "siyu.db"
    add_contacts(db, parents(4))
    plain = json.loads(_preview(path, "--db", str(db), "--json").stdout)
    every = json.loads(_preview(path, "--db", str(db), "--json", "--all-variants").stdout)
    extra = [d for d in every["drafts"] if d["extra"]]
    first = next(d for d in plain["drafts"] if d["beat"] == "noon")
    assert len(extra) == 2 and {d["contact"] for d in extra} == {first["contact"]}
    assert {d["variant"] for d in extra} | {first["variant"]} == {"a", "b", "holdout"}
    assert all(d["decision"] == "preview" for d in extra)
    assert every["summary"]["beats"] == plain["summary"]["beats"] and every["summary"]["all_variants_extra"] == 2
    assert "--all-variants: 2 extra draft(s)" in _preview(path, "--db", str(db), "--all-variants").stdout


def test_out_writes_under_the_date_and_a_shared_group_post_once(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    result = _preview(path, "--out", str(tmp_path / "out"))
    folder = tmp_path / "out" / "2026-12-02"
    assert f"to {folder}" in result.stderr.replace("\n", "")
    names = sorted(p.name for p in folder.iterdir())
    morning = [n for n in names if "-morning-" in n]
    assert len(morning) == 1 and "2-groups" in morning[0]
    assert "阅读营1群, 阅读营2群" in (folder / morning[0]).read_text("utf-8")
    praise = (folder / next(n for n in names if "-praise-" in n)).read_text("utf-8")
    assert "表扬2位同学" in praise and "还没有人打卡" in praise


def test_a_day_outside_the_campaign_exits_2(tmp_path: Path) -> None:
    path = _camp(tmp_path)
    for day in ("0", "4", "99"):
        result = invoke("preview", "day", day, "-p", str(path), "--json", code=2)
        assert "outside the campaign (days 1-3)" in result.stderr and not result.stdout


def test_the_summary_reads_at_80_columns_with_short_headers_and_the_beat_id_for_a_long_title(tmp_path: Path) -> None:
    from rich.cells import cell_len
    from typer.testing import CliRunner

    from siyu_cli.cli import app

    long = {**MORNING, "id": "morning", "title": "早间分享：今日主题、共读书目与小方法（家长版）"}
    ab = {**{k: v for k, v in AB.items() if v is not None}, "title": "午间私聊：A/B两版开场白，看哪版回复多"}
    late = {**NOON_1V1, "id": "late", "title": "晚安私聊", "at": "21:30"}
    path = write_playbook(tmp_path, beats=[long, ab, late], groups=GROUPS, limits={"private_per_account_per_day": 20})
    db = tmp_path / "siyu.db"
    add_contacts(db, parents(12))
    result = CliRunner().invoke(app, ["preview", "day", "2", "-p", str(path), "--db", str(db)], env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    table = result.stdout[result.stdout.index("summary 概览") : result.stdout.index("╭")]
    assert "…" not in table and max(cell_len(line) for line in table.splitlines()) <= 80
    words = table.split()
    for header in ("beat", "channel", "variant", "drafts", "send", "of", "which", "deferred", "holdout", "quiet", "limit", "error"):
        assert header in words, header
    assert "pending" not in words, "deferred drafts are a part of send, not beside pending"
    for beat in ("morning", "noon"):
        assert beat in words, beat
    assert "晚安私聊" in words and "早间分享" not in table, "a title that fits is kept; the id stands in only where it does not"
