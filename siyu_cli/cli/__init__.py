"""The command line: thin commands that parse, call the core, and print."""

from __future__ import annotations

# Each module registers its commands; this order is the order of `siyu --help`.
# isort: off
from siyu_cli.cli import playbook_cmds  # noqa: F401
from siyu_cli.cli import run_cmds  # noqa: F401
from siyu_cli.cli import serve_cmds  # noqa: F401
from siyu_cli.cli import data_cmds  # noqa: F401
from siyu_cli.cli import report_cmds  # noqa: F401
# isort: on
from siyu_cli.cli._app import app
from siyu_cli.cli._common import guard_all

guard_all(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
