"""Small playbooks, templates and contacts written into a test's tmp_path.

A test describes only what it is about (a beat, a limit, an output); the rest is a
plain three-day reading camp in Asia/Shanghai starting 2026-12-01.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = "2026-12-01"

MORNING = {"id": "morning", "title": "早分享", "at": "08:30", "days": "all", "channel": "group", "text": "早上好，第{{ day }}天"}
NOON_1V1 = {
    "id": "noon",
    "title": "午间私聊",
    "at": "12:30",
    "days": "all",
    "channel": "private",
    "audience": "parents",
    "text": "{{ contact.name }}，您好！今天是第{{ day }}天。",
}


def write_playbook(
    root: Path,
    *,
    beats: Sequence[Mapping[str, Any]] = (MORNING,),
    limits: Mapping[str, Any] | None = None,
    outputs: Sequence[Any] | None = None,
    hooks: Sequence[Mapping[str, Any]] = (),
    days: int = 3,
    start: str = START,
    templates: Mapping[str, str] | None = None,
    playbook_id: str = "camp",
    name: str = "playbook.yaml",
    **extra: Any,
) -> Path:
    """Write playbook.yaml (and templates beside it); return its path."""
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "siyu": 1,
        "id": playbook_id,
        "title": "少年阅读训练营 · 测试",
        "timezone": "Asia/Shanghai",
        "start": start,
        "days": days,
        "personas": [
            {"id": "host", "name": "小丸子", "role": "班主任", "account": "wx_host_01"},
            {"id": "advisor", "name": "李老师", "role": "顾问", "account": "wx_adv_02"},
        ],
        "segments": {"parents": "家长"},
        "groups": [{"id": "g1", "name": "阅读营1群", "persona": "host"}],
        "beats": [dict(b) for b in beats],
    }
    if hooks:
        data["hooks"] = [dict(h) for h in hooks]
    if limits is not None:
        data["limits"] = dict(limits)
    if outputs is not None:
        data["outputs"] = list(outputs)
    data.update(extra)
    path = root / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for template, text in (templates or {}).items():
        target = root / template
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return path


def db_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(text: str) -> datetime:
    """'2026-12-01 09:00' in Shanghai."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def create_store(db_path: Path) -> None:
    """Create and migrate the store the way siyu does."""
    from siyu_cli.store import open_store

    db = open_store(db_path)
    db.conn.close()


def add_contacts(db_path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert contacts straight into the table, as an import would leave them."""
    create_store(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO contacts (contact_id, name, tags, source, tier, account, cohort, added_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}')",
            [
                (
                    r["contact_id"],
                    r.get("name", r["contact_id"]),
                    json.dumps(r.get("tags", ["家长"]), ensure_ascii=False),
                    r.get("source"),
                    r.get("tier"),
                    r.get("account"),
                    r.get("cohort"),
                    r.get("added_at", "2026-11-30T00:00:00Z"),
                )
                for r in rows
            ],
        )
    conn.close()


def parents(n: int, prefix: str = "c") -> list[dict[str, Any]]:
    return [{"contact_id": f"{prefix}{i:04d}", "name": f"家长{i}", "tags": ["家长"]} for i in range(n)]


def add_event(db_path: Path, event_id: str, kind: str, contact: str, at: str, group: str | None = None) -> None:
    create_store(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO events (event_id, type, contact_id, at, group_id) VALUES (?, ?, ?, ?, ?)",
            (event_id, kind, contact, at, group),
        )
    conn.close()


def query(db_path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def states(db_path: Path) -> dict[str, int]:
    return dict(query(db_path, "SELECT state, COUNT(*) FROM drafts GROUP BY state"))  # type: ignore[arg-type]


def outbox_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.md")) if folder.exists() else []


def siyu_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def siyu_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "siyu_cli", *args]


def run_siyu(cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m siyu_cli ARGS` in cwd, as cron would run it."""
    return subprocess.run(
        siyu_cmd(*args), cwd=cwd, env=dict(env or siyu_env()), capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False
    )


def invoke(*args: str, code: int = 0, columns: int = 200) -> Any:
    """`siyu ARGS` through typer's CliRunner, without colour and wide (or `columns` wide); asserts the exit code and that nothing raised."""
    from typer.testing import CliRunner

    from siyu_cli.cli import app

    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": str(columns)})
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result
