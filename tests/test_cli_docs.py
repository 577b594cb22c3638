"""Every command documents itself, --version works, and usage errors exit 2."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from siyu_cli import __version__
from siyu_cli.cli import app


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Typer vendors Click, so groups are recognised by their `commands`, not by class."""
    found = []
    for name, command in group.commands.items():
        found.append((prefix + (name,), command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, prefix + (name,)))
    return found


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    commands = _commands(root)
    assert len(commands) >= 10
    for path, command in commands:
        assert (command.help or command.short_help or "").strip(), f"`siyu {' '.join(path)}` has no help"
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and param.name != "help":
                assert (param.help or "").strip(), f"`siyu {' '.join(path)}` option {param.opts} has no help"


def test_help_lists_every_command_under_its_panel() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    sections: dict[str, list[str]] = {}
    for line in result.output.splitlines():
        if line and not line.startswith(" ") and line.endswith(":") and not line.startswith("Usage"):
            heading = line[:-1]
            sections[heading] = []
        elif line.startswith("  ") and sections and heading != "Options":
            sections[heading].append(line.split()[0])
    assert {k: v for k, v in sections.items() if k != "Options"} == {
        "Plan 策划": ["check", "schema", "timeline", "init", "preview"],
        "Run 执行": ["run", "cron", "retry", "sync", "status", "unlock", "serve", "plan", "outbox"],
        "Data 数据": ["track", "import", "contacts"],
        "Measure 复盘": ["simulate", "report"],
    }


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(app, ["preview", "day", "three"])
    assert result.exit_code == 2
