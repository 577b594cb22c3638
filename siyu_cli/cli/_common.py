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
import typer.core

from siyu_cli.errors import ImportRejected, PlaybookInvalid, SiyuError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

PLAYBOOK_HELP = "Playbook file (default: $SIYU_PLAYBOOK, the only playbook in ./playbooks/, or ./playbook.yaml)."
DB_HELP = "SQLite store (default: $SIYU_DB or ./siyu.db)."
JSON_HELP = "Print JSON for scripts instead of tables."


def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, emoji=False)  # emoji=False: ":100:" in "file.yaml:100:14" is a line number, not 💯


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def did_you_mean(word: str, known: Any, what: str = "") -> str:
    """`did you mean 'order'? ` for a near miss among `known` (`what` before it: "the segment "), else ""."""
    import difflib

    close = difflib.get_close_matches(word, [str(k) for k in known], n=1, cutoff=0.6)
    return f"did you mean {what}{close[0]!r}? " if close else ""


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def playbook_argument() -> Any:
    """The playbook as a positional argument, beside `-p`: either form names it on every command that reads one."""
    return typer.Argument(None, metavar="PLAYBOOK", show_default=False, help="Playbook file, the same as -p (default: found as for -p).")


def playbook_option() -> Any:
    return typer.Option(None, "-p", "--playbook", help=PLAYBOOK_HELP)


class PlaybookGroup(typer.core.TyperGroup):
    """A group whose own callback reads a playbook (`siyu outbox PLAYBOOK`, `siyu outbox done ID`).

    A positional argument on a group would swallow the subcommand's name, so a .yaml/.yml argument
    before the subcommand is passed as the hidden `--playbook-arg` option instead.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        valued = {opt for param in self.params if param.param_type_name == "option" and not getattr(param, "is_flag", False) for opt in param.opts}
        rewritten: list[str] = []
        for index, arg in enumerate(args):
            if arg in self.commands or arg == "--":
                rewritten.extend(args[index:])
                break
            after_option = index > 0 and args[index - 1] in valued
            if not after_option and not arg.startswith("-") and arg.endswith((".yaml", ".yml")):
                rewritten += ["--playbook-arg", arg]
            else:
                rewritten.append(arg)
        return super().parse_args(ctx, rewritten)

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return ["[PLAYBOOK]", *super().collect_usage_pieces(ctx)]


def group_playbook_argument() -> Any:
    """The positional PLAYBOOK of a PlaybookGroup's callback, as the option it is rewritten to."""
    return typer.Option(None, "--playbook-arg", hidden=True, help="The PLAYBOOK argument (a .yaml/.yml before the subcommand).")


def find_playbook(explicit: str | None, argument: str | None = None) -> Path:
    """`-p` or the positional PLAYBOOK (both only if they name one file), else $SIYU_PLAYBOOK,
    else the only playbook in ./playbooks/, else ./playbook.yaml."""
    from siyu_cli.errors import PlaybookNotFound, UsageError

    if explicit and argument and not _same_file(explicit, argument):
        raise UsageError(f"two playbooks: {argument} (argument) and -p {explicit}", hint="name the playbook once: as an argument or with -p")
    explicit = explicit or argument
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
        raise PlaybookNotFound(f"several playbooks found: {listing}", hint=f"pick one: {_naming_hint(str(candidates[0]))}, or set SIYU_PLAYBOOK")
    raise PlaybookNotFound(
        "no playbook found (looked for $SIYU_PLAYBOOK, ./playbooks/*.yaml, ./playbook.yaml)",
        hint=f"name it: {_naming_hint('PLAYBOOK')}; or start a project with `siyu init DIR`",
    )


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _naming_hint(playbook: str) -> str:
    """How the running command accepts a playbook: as an argument too, or only with -p."""
    from typer._click.globals import get_current_context  # typer vendors click

    ctx = get_current_context(silent=True)
    if ctx is None:
        return f"-p {playbook}"
    command = ctx.command_path
    before: list[str] = []  # the arguments a positional playbook follows: `siyu preview day N PLAYBOOK`
    for param in ctx.command.params:
        if param.param_type_name != "argument":
            if "--playbook-arg" in param.opts:
                return f"`{command} {playbook}` or `{command} -p {playbook}`"
            continue
        if "PLAYBOOK" in (param.metavar or ""):
            return f"`{' '.join([command, *before, playbook])}` or `{' '.join([command, *before])} -p {playbook}`"
        numeric = getattr(getattr(param, "type_descriptor", None), "annotation", None) is int
        before.append("N" if numeric else (param.name or "").upper())
    return f"`{command} -p {playbook}`"


def report_error(exc: SiyuError) -> None:
    console = err()
    from rich.markup import escape
    from rich.text import Text

    if isinstance(exc, PlaybookInvalid):
        from siyu_cli.check._hints import with_hints

        for problem in with_hints(exc.problems, _source(exc.file)):
            console.print(Text(str(problem), style="red" if problem.severity == "error" else "yellow"))
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


def _source(file: str) -> str | None:
    try:
        return Path(file).read_bytes().decode("utf-8-sig") if file else None
    except (OSError, UnicodeDecodeError):
        return None


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
