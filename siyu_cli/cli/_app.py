"""The Typer app every command module registers on. Imports nothing heavy.

Help is click's plain formatter, not typer's rich one: typer.rich_utils pulls in rich.markdown,
markdown-it, pygments and rich.traceback, which tripled the time of `siyu --help`.
"""

from __future__ import annotations

import typer
import typer.core


class PanelGroup(typer.core.TyperGroup):
    """Lists commands under their `rich_help_panel` heading (Plan 策划, Run 执行, …) in plain help."""

    def format_commands(self, ctx: typer.Context, formatter: typer.core._click.HelpFormatter) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        visible = [(name, cmd) for name in self.list_commands(ctx) if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if not visible:
            return
        width = max(len(name) for name, _ in visible)
        limit = formatter.width - 6 - width
        for name, cmd in visible:
            panel = getattr(cmd, "rich_help_panel", None) or "Commands"
            panels.setdefault(panel, []).append((name.ljust(width), cmd.get_short_help_str(limit)))
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(rows)


def examples(*lines: str) -> str:
    """A help epilog of example command lines, printed as written (click's \\b keeps the lines unwrapped)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    cls=PanelGroup,
    name="siyu",
    help="Run 私域 (private-domain) campaigns as code: check, preview, run, measure.",
    no_args_is_help=True,
    context_settings={"max_content_width": 120, "help_option_names": ["-h", "--help"]},  # subcommands inherit both
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from siyu_cli._version import __version__

        typer.echo(f"siyu {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """siyu turns a YAML playbook into timed drafts for the front line, logs every one, and measures the funnel."""
