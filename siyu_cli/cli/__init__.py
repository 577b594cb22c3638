"""The command line: thin commands that parse, call the core, and print."""

from __future__ import annotations

from siyu_cli.cli import (  # noqa: F401  (each module registers its commands)
    data_cmds,
    playbook_cmds,
    report_cmds,
    run_cmds,
)
from siyu_cli.cli._app import app
from siyu_cli.cli._common import guard_all

guard_all(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
