"""run_cmds"""

from __future__ import annotations

from siyu_cli.cli._app import app
