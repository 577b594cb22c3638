"""The files around a scaffolded playbook: the editor's schema and settings, and the team's README."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MODELINE = "# yaml-language-server: $schema=../schema.json"
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=.*$")
PLAYBOOK_GLOB = "playbooks/*.yaml"
_EXTENSION = "redhat.vscode-yaml"  # VS Code's YAML extension, which runs yaml-language-server

README = """# {title}

A 私域 campaign run with siyu, scaffolded from the {archetype} starter.

## What this folder holds

| path | what |
| --- | --- |
| `playbooks/{playbook}` | the playbook (剧本): who speaks, what is said where and when, the guardrails and the funnel |
| `templates/{templates}/` | the messages (Jinja templates) the playbook names |
| `schema.json` | the playbook's JSON Schema, for the editor: hover, completion and errors as you type |
| `.vscode/settings.json` | maps `playbooks/*.yaml` to `schema.json` for VS Code's YAML extension |
| `siyu.db` | the ledger and contacts, once you import or run (keep it; back it up) |
| `outbox/` | drafts for the front line to send, once the campaign runs |

## Commands

```sh
siyu check --strict                       # 校验: every error and warning, with file:line and a fix
siyu preview day 1                        # 预览: what day 1 sends, to whom, from which account
siyu timeline                             # 日历: the whole campaign, day by day
siyu simulate {path} --contacts 300 --seed 7   # synthetic contacts, to see the funnel before real ones
siyu run --clock fast                     # the whole campaign in simulated time, against the synthetic contacts
siyu report funnel                        # 复盘: the funnel against its targets
siyu report html --out report.html        # the report to share
```

Going live: `siyu import` your contacts and events, then `siyu cron` prints the crontab line or
systemd units that run `siyu run --once` every minute. `siyu status` shows what the ledger holds.

## Editing the playbook

Open this folder in VS Code and install the YAML extension ({extension}; it is recommended in
`.vscode/extensions.json`). Other editors: any client of yaml-language-server; each playbook's
first line, `{modeline}`, points it at the schema.

Playbooks are read as YAML 1.2, as editors read them: `no`, `off`, `yes` and `on` are text, and only
`true` and `false` are yes/no values. `siyu check` warns where an older (YAML 1.1) reader would take a
value otherwise. After upgrading siyu, refresh the schema with `siyu schema > schema.json`.
"""


def with_modeline(text: str) -> str:
    """The playbook with the schema modeline as its first line (replacing one that points elsewhere)."""
    lines = text.splitlines(keepends=True)
    if lines and _MODELINE.match(lines[0].strip()):
        lines = lines[1:]
    return MODELINE + "\n" + "".join(lines)


def schema_text() -> str:
    from siyu_cli.playbook._schema import playbook_schema

    return json.dumps(playbook_schema(), ensure_ascii=False, indent=2) + "\n"


def readme(*, title: str, archetype: str, playbook: str, templates: str) -> str:
    return README.format(
        title=title, archetype=archetype, playbook=playbook, templates=templates, path=f"playbooks/{playbook}", extension=_EXTENSION, modeline=MODELINE
    )


def merge_vscode(folder: Path) -> list[Path]:
    """.vscode/settings.json mapping the playbooks to schema.json, and the YAML extension recommended;
    existing settings are kept (a file that is not plain JSON, such as one with comments, is left alone)."""
    written = []
    for name, update in (("settings.json", _settings), ("extensions.json", _extensions)):
        path = folder / ".vscode" / name
        current: Any = {}
        if path.exists():
            try:
                current = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if not isinstance(current, dict):
                continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(update(current), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _settings(current: dict[str, Any]) -> dict[str, Any]:
    schemas = current.get("yaml.schemas") if isinstance(current.get("yaml.schemas"), dict) else {}
    return {**current, "yaml.schemas": {**schemas, "./schema.json": [PLAYBOOK_GLOB]}, "yaml.yamlVersion": "1.2"}


def _extensions(current: dict[str, Any]) -> dict[str, Any]:
    wanted = current.get("recommendations") if isinstance(current.get("recommendations"), list) else []
    return {**current, "recommendations": wanted if _EXTENSION in wanted else [*wanted, _EXTENSION]}
