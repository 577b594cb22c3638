"""What every command shares: consoles, options, playbook discovery, error reporting."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from siyu_cli.errors import ImportRejected, PlaybookInvalid, SiyuError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

PLAYBOOK_HELP = "Playbook file (default: $SIYU_PLAYBOOK, the only playbook in ./playbooks/, or ./playbook.yaml)."
DB_HELP = "SQLite store (default: $SIYU_DB or ./siyu.db)."
JSON_HELP = "Print JSON for scripts instead of tables."


def out() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def find_playbook(explicit: str | None) -> Path:
    """`-p`, else $SIYU_PLAYBOOK, else the only playbook in ./playbooks/, else ./playbook.yaml."""
    from siyu_cli.errors import PlaybookNotFound

    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise PlaybookNotFound(f"{path}: no such playbook file")
        return path
    env = os.environ.get("SIYU_PLAYBOOK")
    if env:
        path = Path(env)
        if not path.exists():
            raise PlaybookNotFound(f"{path}: no such playbook file (from $SIYU_PLAYBOOK)")
        return path
    candidates = sorted(p for p in Path("playbooks").glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if len(candidates) == 1:
        return candidates[0]
    if Path("playbook.yaml").exists():
        return Path("playbook.yaml")
    if candidates:
        listing = ", ".join(str(c) for c in candidates)
        raise PlaybookNotFound(
            f"several playbooks found: {listing}",
            hint="pick one with -p PLAYBOOK or set SIYU_PLAYBOOK",
        )
    raise PlaybookNotFound(
        "no playbook found (looked for $SIYU_PLAYBOOK, ./playbooks/*.yaml, ./playbook.yaml)",
        hint="pass -p PLAYBOOK, or start one with `siyu init DIR`",
    )


def report_error(exc: SiyuError) -> None:
    console = err()
    from rich.markup import escape

    if isinstance(exc, PlaybookInvalid):
        for problem in exc.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            console.print(f"[{colour}]{escape(str(problem))}[/]")
        console.print(f"[red]error:[/] {escape(exc.message)}")
        return
    console.print(f"[red]error:[/] {escape(exc.message)}")
    if isinstance(exc, ImportRejected):
        for row, reason in exc.rows:
            console.print(f"  row {row}: {escape(reason)}")
        if exc.total_bad > len(exc.rows):
            console.print(f"  … and {exc.total_bad - len(exc.rows)} more bad row(s)")
    if exc.hint:
        console.print(f"  hint: {escape(exc.hint)}")


def guarded(func: F) -> F:
    """Turn a core error into its message and exit code: never a traceback for a user's mistake."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SiyuError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err().print("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(1) from None
        except OSError as exc:
            # The core turns the failures it expects into SiyuError; this is the last net for the rest.
            where = f"{exc.filename}: " if exc.filename else ""
            report_error(SiyuError(f"{where}{exc.strerror or exc}", hint="check the path and its permissions"))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def guard_all(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "__wrapped__", None):
            info.callback = guarded(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            guard_all(group.typer_instance)
            callback = group.typer_instance.registered_callback
            if callback is not None and callback.callback is not None and not getattr(callback.callback, "__wrapped__", None):
                callback.callback = guarded(callback.callback)
