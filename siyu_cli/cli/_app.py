"""The Typer app every command module registers on. Imports nothing heavy."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="siyu",
    help="Run 私域 (private-domain) campaigns as code: check, preview, run, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
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
