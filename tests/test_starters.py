"""The starter playbooks: strict-clean, valid against the published schema, previewable on several days."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from siyu_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
STARTERS = sorted((ROOT / "playbooks").glob("*.yaml"))


def test_three_starters_exist() -> None:
    assert len(STARTERS) == 3


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_passes_check_strict(path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--strict", str(path)])
    assert result.exit_code == 0, result.output


def _schema() -> dict:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    return json.loads(result.output)


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_validates_against_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data = json.loads(json.dumps(data, default=str))
    jsonschema.validate(data, _schema())


def test_broken_playbook_fails_schema() -> None:
    data = json.loads(json.dumps(yaml.safe_load(STARTERS[0].read_text(encoding="utf-8")), default=str))
    data["beats"][0]["channel"] = "fax"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema())
    data = json.loads(json.dumps(yaml.safe_load(STARTERS[0].read_text(encoding="utf-8")), default=str))
    data["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema())


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
@pytest.mark.parametrize("day", [1, 2, 5, 7])
def test_preview_starter_days(path: Path, day: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["preview", "day", str(day), "-p", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["day"] == day
    assert all(item["error"] is None for item in data["drafts"]), [i["error"] for i in data["drafts"] if i["error"]]
    texts = [item["text"] for item in data["drafts"] if item["text"]]
    assert texts, "a starter day with nothing to send"
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts)
    times = [item["time"] for item in data["drafts"]]
    assert times == sorted(times)
    assert not (tmp_path / "siyu.db").exists(), "preview must not write a store"


def test_preview_rich_output_marks_sample_and_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = next(p for p in STARTERS if "education" in p.name)
    result = CliRunner().invoke(app, ["preview", "day", "6", "-p", str(path)])
    assert result.exit_code == 0
    assert "sample" in result.output
    assert "早分享" in result.output


def test_preview_out_writes_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["preview", "day", "2", "-p", str(STARTERS[0]), "--out", str(tmp_path / "drafts")])
    assert result.exit_code == 0
    files = list((tmp_path / "drafts").glob("*.md"))
    assert files and all(f.read_text(encoding="utf-8").strip() for f in files)


def test_preview_day_outside_campaign(tmp_path: Path) -> None:
    path = next(p for p in STARTERS if "education" in p.name)
    result = CliRunner().invoke(app, ["preview", "day", "99", "-p", str(path)])
    assert result.exit_code == 2 and "outside the campaign" in result.output


@pytest.mark.parametrize("archetype", ["education", "skincare", "ecommerce"])
def test_init_scaffolds_a_checkable_project(archetype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "proj"
    result = CliRunner().invoke(app, ["init", str(target), "--from", archetype])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(target)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    result = CliRunner().invoke(app, ["check", "--strict"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(app, ["init", str(target), "--from", archetype])
    assert again.exit_code == 1 and "not empty" in again.output


def test_init_unknown_archetype(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "x"), "--from", "crypto"])
    assert result.exit_code == 2 and "education" in result.output


def test_timeline_calendar(tmp_path: Path) -> None:
    path = next(p for p in STARTERS if "skincare" in p.name)
    result = CliRunner().invoke(app, ["timeline", "-p", str(path), "--json"])
    assert result.exit_code == 0
    items = json.loads(result.output)
    moments = [i for i in items if i["channel"] == "moments"]
    assert {i["category"] for i in moments} >= {"life"}
    table = CliRunner().invoke(app, ["timeline", "-p", str(path)])
    assert table.exit_code == 0 and "day" in table.output
