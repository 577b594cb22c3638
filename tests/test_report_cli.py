"""`siyu report funnel` and `siyu report sop` as an operator and a script see them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from siyu_cli.cli import app
from siyu_cli.playbook import read
from siyu_cli.report import sop
from tests.playbooks_fixtures import add_contacts, create_store, write_playbook
from tests.test_funnel import (
    EDGE_EVENTS,
    EDGE_EXPECTED,
    FOUR_HOOKS,
    HOOKS,
    OPTIONAL_EVENTS,
    OPTIONAL_STAGES,
    add_drafts,
    add_events,
    at,
    funnel_playbook,
    hook_store,
    opened,
)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def edge_store(tmp_path: Path) -> tuple[Path, Path]:
    db_path = tmp_path / "siyu.db"
    add_events(db_path, EDGE_EVENTS)
    return funnel_playbook(tmp_path, hooks=HOOKS), db_path


def test_funnel_table_with_labels_targets_and_chart(tmp_path: Path) -> None:
    playbook, db_path = edge_store(tmp_path)
    result = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "加微 added" in text and "复购 repurchased" in text
    assert "11 contacts entered" in text
    assert "72.7%" in text  # added: 8 of 11
    assert "15.0%" in text  # the added target
    assert "✓" in text  # added 72.7% >= 15%
    assert "█" in text  # the bar chart
    assert "added 0.15 means 15% of the contacts who reached carded reach added" in " ".join(text.split())
    assert "synthetic" not in text


def test_funnel_json_for_scripts(tmp_path: Path) -> None:
    playbook, db_path = edge_store(tmp_path)
    result = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert {s["id"]: s["count"] for s in data["stages"]} == EDGE_EXPECTED
    added = data["stages"][1]
    assert added["label"] == "加微" and added["target"] == 0.15 and added["met"] is True
    assert data["window_seconds"] == 30 * 86400
    assert data["synthetic"] == 0


def test_funnel_csv(tmp_path: Path) -> None:
    playbook, db_path = edge_store(tmp_path)
    result = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--csv")
    assert result.exit_code == 0
    assert result.output.startswith("\ufeffstage,")  # Excel needs the BOM to read the Chinese labels
    rows = list(csv.DictReader(io.StringIO(result.output.removeprefix("\ufeff"))))
    assert [r["stage"] for r in rows] == list(EDGE_EXPECTED)
    assert rows[3]["label"] == "开单" and int(rows[3]["count"]) == 6
    assert rows[1]["met"] == "true" and rows[2]["met"] == ""


def test_funnel_by_hook_side_by_side(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_contacts(db_path, [{"contact_id": "s1", "source": "CASH5"}])
    add_events(
        db_path,
        [("a1", "card_sent", at(0), "card-a"), ("a1", "friend_added", at(1)), ("a2", "card_sent", at(0), "EYE100"), ("s1", "card_sent", at(0))],
    )
    playbook = funnel_playbook(tmp_path, hooks=HOOKS)
    result = invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--by", "hook")
    assert result.exit_code == 0, result.output
    assert "回购卡 card-a" in result.output and "返现卡 card-b" in result.output
    assert "50.0% [9.5–90.5%]" in result.output  # 1 of 2, Wilson
    data = json.loads(invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--by", "hook", "--json").output)
    assert [(g["key"], g["entered"]) for g in data["groups"]] == [("card-a", 2), ("card-b", 1)]
    rows = list(csv.DictReader(io.StringIO(invoke("report", "funnel", "-p", str(playbook), "--db", str(db_path), "--by", "hook", "--csv").output.removeprefix("\ufeff"))))
    assert rows[1]["hook"] == "card-a" and rows[1]["stage"] == "added" and rows[1]["step_low"].startswith("0.094")


def test_funnel_by_variant_shows_lift_and_significance(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    stages = [{"id": "added", "label": "加微", "event": "friend_added"}, {"id": "ordered", "label": "开单", "event": "order"}]
    events, drafts = [], []
    for variant, orders in (("a", 45), ("holdout", 30)):
        for i in range(100):
            cid = f"{variant}{i}"
            events.append((cid, "friend_added", at(0)))
            if i < orders:
                events.append((cid, "order", at(1)))
            drafts.append({"target": f"contact:{cid}", "variant": variant, "state": "skipped" if variant == "holdout" else "sent", "reason": "holdout" if variant == "holdout" else None})
    add_events(db_path, events)
    add_drafts(db_path, drafts)
    playbook = funnel_playbook(tmp_path, stages=stages, targets={})
    result = CliRunner().invoke(app, ["report", "funnel", "-p", str(playbook), "--db", str(db_path), "--by", "variant"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "+15.0 pt (+50%) p 0.028" in text and "better" in text
    assert "holdout 对照组 (baseline)" in text
    assert "Lift: each variant's rate from the top minus the holdout's" in text
    narrow = CliRunner().invoke(app, ["report", "funnel", "-p", str(playbook), "--db", str(db_path), "--by", "variant"], env={"COLUMNS": "60"})
    assert "加微 added (friend_added)" in narrow.output, "too narrow for side by side: one table per stage"
    assert "0.028" in narrow.output


def optional_store(tmp_path: Path) -> tuple[str, str]:
    """The hand-computed optional case (joined optional) with ordered held against added."""
    db_path = tmp_path / "siyu.db"
    add_events(db_path, OPTIONAL_EVENTS)
    targets = {"added": 0.5, "ordered": {"rate": 0.9, "of": "added"}}
    return str(funnel_playbook(tmp_path, stages=OPTIONAL_STAGES, targets=targets)), str(db_path)


def test_optional_stage_and_a_target_of_a_base_stage_in_the_terminal(tmp_path: Path) -> None:
    playbook, db = optional_store(tmp_path)
    result = CliRunner().invoke(app, ["report", "funnel", "-p", playbook, "--db", db], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[0].strip(): line for line in result.output.splitlines() if "│" in line}
    joined, ordered = lines["进群 joined (optional)"], lines["开单 ordered"]
    assert "40.0%" in joined  # 2 of the 5 who added
    assert "80.0% of added" in ordered  # its step rate is over added, the last required stage
    assert "90.0% of added" in ordered and "✗" in ordered  # the target and the rate held against it: 4 of 5 < 90%
    assert "1d 12h" in ordered  # median 1.5 days after adding
    text = " ".join(result.output.split())
    assert "ordered {rate: 0.9, of: added} means 90% of the contacts who reached added reach ordered" in text
    assert "Optional (joined): a contact who skips it still goes on" in text


def test_optional_stage_and_a_target_of_a_base_stage_in_json_and_csv(tmp_path: Path) -> None:
    playbook, db = optional_store(tmp_path)
    data = json.loads(invoke("report", "funnel", "-p", playbook, "--db", db, "--json").output)
    stages = {s["id"]: s for s in data["stages"]}
    assert {k: s["count"] for k, s in stages.items()} == {"carded": 7, "added": 5, "joined": 2, "ordered": 4, "repurchased": 1}
    assert stages["joined"]["optional"] is True and stages["ordered"]["base"] == "added"
    ordered = stages["ordered"]
    assert (ordered["target"], ordered["target_of"], ordered["target_rate"], ordered["met"]) == (0.9, "added", 0.8, False)
    assert ordered["step_rate"] == 0.8 and ordered["median_seconds"] == 1.5 * 86400
    added = stages["added"]
    assert (added["target"], added["target_of"], added["target_rate"], added["met"]) == (0.5, None, 5 / 7, True)
    rows = list(csv.DictReader(io.StringIO(invoke("report", "funnel", "-p", playbook, "--db", db, "--csv").output.removeprefix("\ufeff"))))
    assert list(rows[0]) == [
        "stage", "label", "event", "nth", "optional", "base", "count", "step_rate", "from_top", "median_seconds", "target", "target_of", "target_rate", "met",
    ]
    by_id = {r["stage"]: r for r in rows}
    assert (by_id["joined"]["optional"], by_id["joined"]["base"]) == ("true", "added")
    assert (by_id["ordered"]["target_of"], by_id["ordered"]["target_rate"], by_id["ordered"]["met"]) == ("added", "0.8", "false")
    assert (by_id["carded"]["base"], by_id["carded"]["target"], by_id["carded"]["met"]) == ("", "", "")


def test_by_hook_lift_verdict_and_small_sample_warning_in_every_format(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    hook_store(db_path)
    stages = [{"id": "added", "label": "加微", "event": "friend_added"}, {"id": "ordered", "label": "开单", "event": "order"}]
    playbook = str(funnel_playbook(tmp_path, stages=stages, targets={}, hooks=FOUR_HOOKS))
    args = ["report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "hook"]
    wide = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert wide.exit_code == 0, wide.output
    text = " ".join(wide.output.split())
    assert "卡A card-a (baseline)" in text
    assert "lift +15.0 pt (+50%) p 0.028" in text and "better" in text and "worse" in text and "no significant difference ⚠ small" in text
    assert "each hook's rate from the top minus 卡A card-a's (the first hook in the playbook with contacts)" in text
    assert "⚠ hook card-d vs card-a: fewer than 10 successes or failures at ordered (2 of 12 vs 30 of 100)" in text
    narrow = CliRunner().invoke(app, args, env={"COLUMNS": "70"})
    assert "卡B card-b vs card-a: lift +15.0 pt (+50%) p 0.028 better" in " ".join(narrow.output.split())
    data = json.loads(invoke(*args, "--json").output)
    assert data["baseline"] == "card-a" and len(data["warnings"]) == 1
    verdicts = {g["key"]: (g["stages"][1]["verdict"], g["stages"][1]["small_sample"]) for g in data["groups"]}
    assert verdicts == {"card-a": (None, None), "card-b": ("better", False), "card-c": ("worse", False), "card-d": ("no significant difference", True)}
    rows = list(csv.DictReader(io.StringIO(invoke(*args, "--csv").output.removeprefix("\ufeff"))))
    b = next(r for r in rows if r["hook"] == "card-b" and r["stage"] == "ordered")
    assert (b["baseline"], b["lift"], b["significant"], b["verdict"], b["small_sample"]) == ("false", "0.15", "true", "better", "false")
    a = next(r for r in rows if r["hook"] == "card-a" and r["stage"] == "ordered")
    assert (a["baseline"], a["verdict"], a["small_sample"]) == ("true", "", "")


def test_no_events_is_a_clear_message_not_an_error(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    create_store(db_path)
    result = invoke("report", "funnel", "-p", str(funnel_playbook(tmp_path)), "--db", str(db_path))
    assert result.exit_code == 0
    assert "no contacts entered the funnel; import events with `siyu import events`" in result.output


def test_errors_have_hints_and_exit_codes_never_tracebacks(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    create_store(db_path)
    playbook = str(funnel_playbook(tmp_path))
    plain = str(write_playbook(tmp_path / "plain"))
    cases = [
        (["report", "funnel", "-p", plain, "--db", str(db_path)], 1, "no funnel"),
        (["report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "colour"], 2, "cannot group by"),
        (["report", "funnel", "-p", playbook, "--db", str(db_path), "--by", "touchy"], 2, "touch"),
        (["report", "funnel", "-p", playbook, "--db", str(db_path), "--json", "--csv"], 2, "cannot be combined"),
        (["report", "funnel", "-p", playbook, "--db", str(db_path), "--since", "yesterday-ish"], 2, "is not a time"),
        (["report", "funnel", "-p", playbook, "--db", str(tmp_path / "missing.db")], 1, "no such store"),
        (["report", "sop", "-p", playbook, "--db", str(tmp_path / "missing.db")], 1, "no such store"),
        (["report", "funnel", "-p", str(tmp_path / "nope.yaml")], 1, "no such playbook"),
    ]
    for args, code, message in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert "hint:" in invoke(*cases[0][0]).output
    assert not (tmp_path / "missing.db").exists()


def test_until_a_bare_date_includes_that_day(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    # 2026-12-01 01:00 UTC is 09:00 in Shanghai; the second card is 2026-12-02 09:00 Shanghai.
    add_events(db_path, [("c1", "card_sent", at(0)), ("c2", "card_sent", at(1))])
    playbook = str(funnel_playbook(tmp_path))

    def entered(*extra: str) -> int:
        return json.loads(invoke("report", "funnel", "-p", playbook, "--db", str(db_path), "--json", *extra).output)["entered"]

    assert entered("--until", "2026-12-01") == 1
    assert entered("--until", "2026-12-02") == 2
    assert entered("--since", "2026-12-02") == 1
    assert entered("--since", "2026-12-01 09:00:01") == 1


SOP_DRAFTS: list[dict[str, Any]] = [
    # day 1 noon, persona host
    {"target": "contact:c1", "state": "sent", "due_at": at(0), "finished_at": at(0, seconds=60)},
    {"target": "contact:c2", "state": "sent", "due_at": at(0), "finished_at": at(0, seconds=11 * 60), "done_by": "小王"},
    {"target": "contact:c3", "state": "sent", "due_at": at(0), "finished_at": at(0, seconds=5 * 60), "done_by": "小王"},
    {"target": "contact:c4", "state": "skipped", "reason": "quiet_hours"},
    {"target": "contact:c5", "state": "skipped", "reason": "limit:per_contact_per_day"},
    {"target": "contact:c6", "state": "skipped", "reason": "limit:private_per_account_per_day"},
    {"target": "contact:c7", "state": "skipped", "reason": "holdout", "variant": "holdout"},
    {"target": "contact:c8", "state": "failed", "reason": "template_error"},
    {"target": "contact:c9", "state": "unknown", "reason": "crash"},
    {"target": "contact:c10", "state": "pending", "reason": "quiet_hours:deferred"},
    {"target": "contact:c11", "state": "claimed"},
    # day 2 morning group post, persona host; and a welcome step
    {"target": "group:g1", "beat": "morning", "day": 2, "channel": "group", "state": "skipped", "reason": "missed"},
    {"target": "contact:c1", "beat": "welcome:card-a:1", "day": 2, "state": "sent", "due_at": at(1), "finished_at": at(1)},
    # another playbook's draft is not counted
    {"target": "contact:c1", "playbook_id": "other", "state": "sent"},
]


def test_sop_counts_per_day_beat_and_persona(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_drafts(db_path, SOP_DRAFTS)
    from tests.playbooks_fixtures import MORNING, NOON_1V1

    pb = read(write_playbook(tmp_path, beats=[MORNING, NOON_1V1], hooks=HOOKS))
    with opened(db_path) as db:
        report = sop(db, pb)
    rows = {(r.day, r.beat): r for r in report.rows}
    noon = rows[(1, "noon")]
    assert (noon.due, noon.sent, noon.done, noon.late, noon.failed, noon.unknown, noon.pending) == (11, 3, 2, 1, 1, 1, 2)
    assert noon.skipped == {"holdout": 1, "limit": 2, "quiet_hours": 1}
    assert noon.title == "午间私聊" and noon.persona == "host"
    assert rows[(2, "morning")].skipped == {"missed": 1}
    assert rows[(2, "welcome:card-a:1")].title == "欢迎语 回购卡 #1"
    assert report.total.due == 13 and report.total.sent == 4
    assert [r.day for r in report.rows] == [1, 2, 2]
    with opened(db_path) as db:
        only = sop(db, pb, day=2)
    assert {r.beat for r in only.rows} == {"morning", "welcome:card-a:1"}


def test_sop_cli_table_and_json(tmp_path: Path) -> None:
    db_path = tmp_path / "siyu.db"
    add_drafts(db_path, SOP_DRAFTS)
    from tests.playbooks_fixtures import MORNING, NOON_1V1

    playbook = str(write_playbook(tmp_path, beats=[MORNING, NOON_1V1], hooks=HOOKS))
    result = invoke("report", "sop", "-p", playbook, "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert "午间私聊" in result.output and "早分享" in result.output
    assert "limit 2" in result.output and "quiet_hours 1" in result.output
    assert "total" in result.output
    data = json.loads(invoke("report", "sop", "-p", playbook, "--db", str(db_path), "--json", "--day", "1").output)
    assert data["day"] == 1 and len(data["rows"]) == 1
    row = data["rows"][0]
    assert (row["due"], row["sent"], row["done"], row["late"], row["skipped_total"]) == (11, 3, 2, 1, 4)
    empty = invoke("report", "sop", "-p", playbook, "--db", str(db_path), "--day", "3")
    assert empty.exit_code == 0 and "no drafts recorded for camp on day 3 yet" in empty.output
    assert invoke("report", "sop", "-p", playbook, "--db", str(db_path), "--day", "0").exit_code == 2


def test_report_html_out_a_folder_is_a_clear_error_that_leaves_nothing_behind(tmp_path: Path) -> None:
    playbook, db_path = edge_store(tmp_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    result = invoke("report", "html", str(playbook), "--db", str(db_path), "--out", str(folder))
    assert result.exit_code == 1
    assert f"{folder} is a folder, not a file to write the report to" in result.output and "report.html" in result.output
    assert list(tmp_path.glob("*.partial")) == [] and list(folder.iterdir()) == []


def test_report_sop_for_a_day_past_the_campaign_is_a_usage_error(tmp_path: Path) -> None:
    playbook, db_path = edge_store(tmp_path)
    days = read(playbook).model.days
    result = invoke("report", "sop", str(playbook), "--db", str(db_path), "--day", str(days + 90))
    assert result.exit_code == 2, result.output
    assert f"has {days} days and nothing was recorded on day {days + 90}" in result.output and f"pass --day 1 to {days}" in result.output
