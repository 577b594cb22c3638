"""Running the campaign: the runner, cron, and the front line's view of the ledger."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from siyu_cli.cli._app import app, examples
from siyu_cli.cli._common import DB_HELP, JSON_HELP, PlaybookGroup, err, find_playbook, group_playbook_argument, out, playbook_argument, playbook_option, print_json
from siyu_cli.errors import UsageError

PANEL = "Run 执行"

NOW_HELP = "Pretend it is this moment (ISO; a time without zone is in the playbook's zone). For tests and rehearsals."
STATES = ("pending", "claimed", "sent", "failed", "skipped", "unknown")
# What `siyu status` says beside a skip reason a person may not read at once.
SKIP_NOTES = {
    "not_friend": "not a friend 非好友: the contact deleted the account (a re-add restores 1v1), never added the sending persona's account "
    "(a beat that names its persona; `siyu check --db` warns persona-strangers), or WeCom said so"
}


def _when(text: str | None, tz: Any) -> datetime | None:
    if text is None:
        return None
    from siyu_cli._time import parse_when

    try:
        return parse_when(text, tz)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _console_sink() -> Any:
    from rich.markup import escape
    from rich.panel import Panel

    console = out()

    def show(message: Any) -> None:
        title = f"{message.due_at:%m-%d %H:%M} · {escape(message.beat_title)} · {escape(message.persona)} → {escape(message.target)}"
        from siyu_cli.dispatch._tasks import recipient_line

        listed = recipient_line(message)
        body = escape(message.text.rstrip("\n") + (f"\n\n{listed}" if listed else ""))
        console.print(Panel(body, title=title, title_align="left", subtitle=message.draft_id, subtitle_align="right"))

    return show


def _in_tasks(summary: Any) -> str:
    """How many send tasks the drafts went out in, when fewer than the drafts (a mass send, several groups at once)."""
    tasks = f" in {summary.tasks} task(s) 任务" if 0 < summary.tasks < summary.sent else ""
    # A mass send resumed after a crash: the parts a dead run made went then, only the rest now.
    return tasks + (f" ({summary.sent_before} of them in part(s) made before)" if summary.sent_before else "")


def _carried(summary: Any) -> str:
    """Drafts moved to a later day with room (capacity, a nurturing cap): not "deferred", which is quiet hours."""
    if not summary.carried:
        return ""
    names = {"capacity": "capacity", "nurture": "nurture cap"}
    if len(summary.carried) == 1:
        [(why, count)] = summary.carried.items()
        return f"carried {count} ({names.get(why, why)}) · "
    parts = ", ".join(f"{names.get(why, why)} {count}" for why, count in sorted(summary.carried.items()))
    return f"carried {sum(summary.carried.values())} ({parts}) · "


def _recovered(summary: Any) -> str:
    """'recovered 12800 from a dead run (settled 12798 sent, 2 not_friend)': what a recovery (or finding a task in
    doubt in WeCom's list) settled, which `sent` and `skipped` (this pass's deliveries) do not count."""
    settled = ", ".join(f"{count} {why}" for why, count in sorted(summary.settled.items(), key=lambda item: (item[0] != "sent", item[0])) if count)
    if not summary.recovered:
        return f"settled {settled} in doubt before"
    return f"recovered {summary.recovered} from a dead run" + (f" (settled {settled})" if settled else "")


def _real_corp(runner: Any, moment: datetime | None, *, fast: bool = False) -> None:
    """A rehearsal clock against WeCom itself: `--clock fast` would make the whole campaign's tasks in the real corp
    in minutes (refused); a `--now` far from this machine's clock makes real tasks stamped with WeCom's own time (warned).
    A SIYU_WECOM_API of a test server or a private deployment is the user's own choice."""
    import os

    if not any(output.reads_back for output in runner.outputs):
        return
    from urllib.parse import urlsplit

    from siyu_cli.wecom._client import DEFAULT_API

    given = (os.environ.get("SIYU_WECOM_API") or "").strip()
    if given and (urlsplit(given).hostname or "").lower().rstrip(".") != urlsplit(DEFAULT_API).hostname:  # any scheme, case, port or root dot of WeCom's host
        return
    if fast:
        raise UsageError(
            "--clock fast with the wecom output would hand every task of the campaign to the real corp's staff in minutes",
            hint="rehearse against a test server (SIYU_WECOM_API=http://…), or with outputs: [outbox] in a copy of the playbook",
        )
    if moment is None:
        return
    drift = abs(moment - datetime.now(moment.tzinfo))
    if drift > timedelta(minutes=10):
        sys.stderr.write(
            f"warning: --now is {drift.total_seconds() / 3600:.1f} h from this machine's clock, but the wecom output talks to WeCom itself "
            f"({DEFAULT_API}): what this pass hands out are real tasks, made now on WeCom's clock\n"
        )


def _print_summary(summary: Any, as_json: bool) -> None:
    """The pass's summary; rich is imported only when there are errors to colour (an idle cron tick has none)."""
    for warning in summary.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if as_json:
        print_json(summary.to_dict())
        if summary.failed or summary.unknown or summary.blocked:
            # For cron's mail: what went wrong, on stderr, whatever stdout carries.
            for error in summary.errors[:5]:
                label = "retrying" if summary.retries_later(error) else "error"
                err().print(error if error.startswith("in doubt: ") else f"{label}: {error}", markup=False, soft_wrap=True)
            if summary.unknown:
                err().print(f"in doubt: {summary.unknown} draft(s) may have arrived; see `siyu status`", markup=False)
        return
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items())) or "0"
    line = (
        f"{summary.now:%Y-%m-%d %H:%M} · recorded {summary.recorded} · sent {summary.sent}{_in_tasks(summary)} · deferred {summary.deferred} · "
        f"{_carried(summary)}skipped {skipped} · failed {summary.failed} · unknown {summary.unknown}"
    )
    if summary.blocked:
        # Nothing goes to it until the setup is fixed: one clause, not "retrying later" beside "stopped".
        line += f" · stopped {', '.join(summary.blocked)}: its setup is wrong ({summary.retrying} draft(s) wait for a pass after the fix)"
    elif summary.retrying:
        line += f" · retrying {summary.retrying} later"
    if summary.revised:
        line += f" · revised {summary.revised} after the edit"
    paused = [name for name in summary.paused if name not in summary.blocked and name not in summary.held]
    if paused:
        line += f" · paused {', '.join(paused)} (failing; its drafts wait for the next pass)"
    if summary.held:
        line += f" · held back by the rate limit of {', '.join(summary.held)} (a later pass sends them)"
    if summary.recovered or summary.settled:
        line += " · " + _recovered(summary)
    if summary.readback:
        line += " · read back " + summary.readback_text()
    if summary.next_due:
        line += f" · next due {summary.next_due:%m-%d %H:%M}"
    sys.stderr.write(line + "\n")
    if not summary.errors and not summary.unknown:
        return
    from rich.markup import escape

    console = err()
    for error in summary.errors[:5]:
        if error.startswith("in doubt: "):
            console.print(f"  [yellow]in doubt:[/] {escape(error.removeprefix('in doubt: '))}", markup=True)
        elif error.startswith("claim lost"):
            console.print(f"  [yellow]note:[/] {escape(error)}", markup=True)
        elif summary.retries_later(error):
            console.print(f"  [yellow]retrying:[/] {escape(error)}", markup=True)
        else:
            console.print(f"  [red]error:[/] {escape(error)}", markup=True)
    if summary.unknown:
        # A WeCom task WeCom cannot settle is a person's to check (its own line above says how); retry refuses it.
        then = "as its line above says" if summary.readback.get("to_check") else "then `siyu outbox done ID` or `siyu retry --unknown ID`"
        console.print(f"  [yellow]in doubt:[/] {summary.unknown} draft(s) may have arrived; see `siyu status`, {then}")


@app.command(rich_help_panel=PANEL, epilog=examples("siyu run playbooks/camp.yaml --clock fast", "siyu run -p playbooks/camp.yaml --once --json"))
def run(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    once: bool = typer.Option(False, "--once", help="One idempotent pass, then exit (for cron)."),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    until: str = typer.Option(None, "--until", help="Stop the service at this moment (ISO)."),
    clock: str = typer.Option("real", "--clock", help="real, or fast: run the whole campaign in simulated time (demos, rehearsals)."),
    reload: bool = typer.Option(False, "--reload", help="Look at the playbook every 5 seconds and plan an edit at once (a broken edit is ignored and reported)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    outbox: Path = typer.Option(Path("outbox"), "--outbox", help="Folder for outbox drafts (one Markdown file per draft)."),
    console: bool = typer.Option(False, "--console", help="Also print each draft to the terminal."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the campaign (执行): dispatch every draft when it is due, record every decision in the ledger."""
    from siyu_cli.dispatch import Runner

    if clock not in ("real", "fast"):
        raise UsageError(f"--clock must be real or fast, not {clock!r}")
    runner = Runner(find_playbook(playbook_opt, playbook), db_path=db, outbox_dir=outbox, console=_console_sink() if console else None, extra_outputs=["console"] if console else None)
    moment = _when(now, runner.playbook.tz)
    stop = _when(until, runner.playbook.tz)
    _real_corp(runner, moment, fast=clock == "fast" and not once)
    if once:
        summary = runner.run_once(moment)
        _print_summary(summary, as_json)
        if summary.failed or summary.unknown or summary.blocked or summary.readback.get("errors"):
            raise typer.Exit(1)  # so cron mails it
        return
    if clock == "fast":
        from siyu_cli.dispatch import run_fast

        start = moment or datetime.combine(min(r.start for r in runner.playbook.cohorts), datetime.min.time(), tzinfo=runner.playbook.tz)
        if stop is not None and stop < start:
            raise UsageError(f"--until {until} is before the start {start:%Y-%m-%d %H:%M}", hint="give an --until after --now (or after the campaign's start)")
        total = _with_progress(runner, start, stop, as_json, run_fast)
        _print_summary(total, as_json)
        return
    from siyu_cli.dispatch import run_service

    if moment is not None:
        raise UsageError("--now goes with --once or --clock fast; the service runs on the real clock")
    err().print(f"siyu run: {runner.playbook.id} · store {runner.db_path} · Ctrl-C to stop")
    total = run_service(
        runner,
        until=stop,
        reload=reload,
        on_pass=lambda s: _print_summary(s, False),
        on_event=lambda text: err().print(text, markup=False),
    )
    _print_summary(total, as_json)


def _with_progress(runner: Any, start: datetime, stop: datetime | None, as_json: bool, run_fast: Any) -> Any:
    from rich.progress import Progress

    console = err()
    end = stop or runner.campaign_end()
    span = max((end - start).total_seconds(), 1.0)
    with Progress(console=console, disable=as_json or not console.is_terminal, transient=True) as progress:
        task = progress.add_task("simulating campaign", total=span)

        def on_pass(summary: Any) -> None:
            progress.update(task, completed=min((summary.now - start).total_seconds(), span))

        return run_fast(runner, start, stop, on_pass)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu cron playbooks/camp.yaml --every 5", "siyu cron -p playbooks/camp.yaml --every 60 --env-file /etc/siyu/camp.env"))
def cron(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    every: int = typer.Option(1, "--every", help="Minutes between passes: 1-59, or whole hours (60, 120, … 1440)."),
    env_file: Path = typer.Option(None, "--env-file", help="File of NAME=value lines the passes read their secrets from (default: siyu.env beside the playbook; created, mode 600, with the variables the outputs name)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Print a crontab line (with flock) and a systemd service + timer that run `siyu run --once` with the env file's secrets."""
    from siyu_cli.dispatch._cron import cron_text, ensure_env_file, schedule, secret_names, uneven, unquoted_values
    from siyu_cli.playbook import read
    from siyu_cli.store import default_path

    when = schedule(every)
    path = find_playbook(playbook_opt, playbook).resolve()
    names = secret_names(read(path))
    env = (env_file or path.parent / "siyu.env").resolve()
    created, missing = ensure_env_file(env, names)
    exe = shlex.quote(str(Path(sys.argv[0]).resolve())) if Path(sys.argv[0]).name == "siyu" else "siyu"
    text = cron_text(exe=exe, playbook_path=path, store=default_path(db).resolve(), workdir=Path.cwd().resolve(), env_file=env, every=when)
    sys.stdout.write(text + "\n")
    if created:
        listed = ", ".join(names) if names else "no variables: the outputs need none"
        err().print(f"created {env} (mode 600): {listed}; fill in the values (quote them: NAME=\"…\")", markup=False, soft_wrap=True)
    else:
        if missing:
            err().print(f"warning: {env} has no line for {', '.join(missing)}; add NAME=value lines", markup=False, soft_wrap=True)
        risky = unquoted_values(env)
        if risky:
            err().print(f"warning: quote the values of {', '.join(risky)} in {env} (NAME=\"…\"): sh, which reads it under cron, cuts a URL at & ; | $ or a space", markup=False, soft_wrap=True)
    if uneven(every):
        err().print(f"warning: cron's */{every if every < 60 else every // 60} restarts every {'hour' if every < 60 else 'day'}: the passes will not be evenly {every} minutes apart", markup=False, soft_wrap=True)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu retry", "siyu retry playbooks/camp.yaml 3f2a9c --unknown"))
def retry(
    ids: list[str] = typer.Argument(None, metavar="PLAYBOOK|ID", help="Draft ids (or unique prefixes); default: every failed draft. A .yaml/.yml first is the playbook, as with -p."),
    playbook: str = playbook_option(),
    unknown: bool = typer.Option(False, "--unknown", help="Also send drafts in doubt (unknown after a crash); they may arrive twice."),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    outbox: Path = typer.Option(Path("outbox"), "--outbox", help="Folder for outbox drafts."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Send failed drafts again (重试); with --unknown, the ones in doubt after a crash too."""
    from siyu_cli.dispatch import Runner
    from siyu_cli.dispatch._retry import retry as do_retry

    named = ids[0] if ids and ids[0].endswith((".yaml", ".yml")) else None
    ids = ids[1:] if named else ids
    runner = Runner(find_playbook(playbook, named), db_path=db, outbox_dir=outbox)
    moment = _when(now, runner.playbook.tz)
    _real_corp(runner, moment)
    summary = do_retry(runner, ids or None, include_unknown=unknown, now=moment)
    _print_summary(summary, as_json)
    if summary.failed or summary.unknown or summary.blocked or summary.readback.get("errors"):
        raise typer.Exit(1)  # failed again, in doubt again, or a read-back a person looks at (as run and sync)


plan_app = typer.Typer(
    cls=PlaybookGroup,
    help="What the playbook, as it is now, will do against the ledger (计划); `plan capacity`: the operators a campaign needs.",
    invoke_without_command=True,
    epilog=examples("siyu plan playbooks/camp.yaml", "siyu plan -p playbooks/camp.yaml --now '2026-12-03 09:00' --json"),
)
app.add_typer(plan_app, name="plan", rich_help_panel=PANEL)  # before outbox: `siyu --help` keeps its order


outbox_app = typer.Typer(
    cls=PlaybookGroup,
    help="The front line's drafts (待发): list them, mark them done.",
    invoke_without_command=True,
    epilog=examples("siyu outbox playbooks/camp.yaml --date today --status todo", "siyu outbox done 3f2a9c 7be104 --by 小丸子"),
)
app.add_typer(outbox_app, name="outbox", rich_help_panel=PANEL)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu sync playbooks/shop.yaml", "siyu sync -p playbooks/shop.yaml --json"))
def sync(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read back from WeCom (回执) what staff sent: tasks in doubt found, each recipient's outcome, reminders. Every pass does this too."""
    from siyu_cli.dispatch import PassSummary, Runner
    from siyu_cli.errors import StoreError
    from siyu_cli.store import default_path

    path = default_path(db)
    if not path.exists():
        # A mistyped --db must not become a new empty store that "has nothing new".
        raise StoreError(f"{path}: no such store", hint="sync reads back the tasks a pass made: pass the store `siyu run` wrote (default ./siyu.db, or $SIYU_DB)")
    runner = Runner(find_playbook(playbook_opt, playbook), db_path=db)
    if not any(output.reads_back for output in runner.outputs):
        raise UsageError(
            f"{runner.playbook.id} has no output that reads back what was sent",
            hint="sync is for the wecom output: add {type: wecom} to outputs (README, WeCom)",
        )
    given = _when(now, runner.playbook.tz)
    _real_corp(runner, given)  # reminders ring real phones
    moment = (given or datetime.now(runner.playbook.tz)).astimezone(runner.playbook.tz)
    summary = PassSummary(now=moment)
    runner.read_back(moment, summary)
    if as_json:
        print_json({"now": moment.isoformat(), "recovered": summary.recovered, "settled": dict(summary.settled), "readback": summary.readback, "errors": summary.errors})
    else:
        recovered = _recovered(summary) + " · " if summary.recovered or summary.settled else ""
        found = recovered + (summary.readback_text(delivering=False) or "nothing new")
        err().print(f"{moment:%Y-%m-%d %H:%M} · read back from WeCom 回执: {found}", markup=False)
        for error in summary.errors[:5]:
            err().print(f"{'retrying' if summary.retries_later(error) else 'failed'}: {error}", markup=False, soft_wrap=True)
    if any(not summary.retries_later(error) for error in summary.errors):
        raise typer.Exit(1)  # WeCom busy or unreachable is no failure: the next pass reads it back (exit 0)


@outbox_app.callback(invoke_without_command=True)
def outbox_list(
    ctx: typer.Context,
    date: str = typer.Option(None, "--date", help="Only drafts due on this date (YYYY-MM-DD, playbook zone); 'today' works."),
    status: str = typer.Option(None, "--status", help=f"Only drafts in this state: {', '.join(STATES)}, or 'todo' (sent, not done)."),
    reason: str = typer.Option(None, "--reason", help="Only drafts recorded with this reason: not_friend, missed, holdout, capacity (every capacity:…), …"),
    playbook_arg: str = group_playbook_argument(),
    playbook: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    limit: int = typer.Option(200, "--limit", help="Show at most this many."),
    tasks: bool = typer.Option(False, "--tasks", help="One row per send task 任务 (a mass send, a post to several groups) with its recipients counted."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List drafts from the ledger (or, with --tasks, the send tasks they went out in)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from siyu_cli.dispatch._frontline import list_drafts, list_tasks

    if tasks:
        if status or reason:
            raise UsageError("--status and --reason list drafts; --tasks counts every state of a task's drafts", hint="drop one of them")
        found = list_tasks(find_playbook(playbook, playbook_arg), db, date=date, limit=limit)
        if as_json:
            print_json(found)
            return
        listing = Table(title=f"{len(found)} send task(s) 任务", title_justify="left", box=None, padding=(0, 0, 0, 1), pad_edge=False, header_style="bold")
        # The outcome columns only when a task has one: an outbox-only campaign reads a narrow table.
        counts = [("recipients", "to"), ("sent", "sent"), ("done", "done")] + [
            (key, label) for key, label in (("not_friend", "not friend"), ("quota", "quota"), ("not_sent", "left out"), ("unknown", "in doubt")) if any(row[key] for row in found)
        ]
        listing.add_column("task", no_wrap=True)
        listing.add_column("due", no_wrap=True)
        listing.add_column("beat", overflow="fold")
        listing.add_column("channel", no_wrap=True)
        listing.add_column("persona", no_wrap=True)
        for _, label in counts:
            listing.add_column(label, justify="right", no_wrap=True)
        for row in found:
            listing.add_row(
                row["task_id"], row["due_local"][5:], row["beat"], row["channel"], row["persona"] or "", *(str(row[key] or 0) for key, _ in counts)
            )
        out().print(listing)
        return
    rows, tz = list_drafts(find_playbook(playbook, playbook_arg), db, date=date, status=status, limit=limit, reason=reason)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} draft(s)")
    for column in ("id", "task", "due", "beat", "channel", "persona", "target", "state", "reason", "done"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["draft_id"], row["task_id"] if row["task_id"] and row["task_id"] != row["draft_id"] else "", row["due_local"], row["beat"],
            row["channel"], row["persona"] or "", row["target"], row["state"], row["reason"] or "", row["done_by"] or "",
        )
    out().print(table)


@outbox_app.command("done", epilog=examples("siyu outbox done 3f2a9c", "siyu outbox done 3f2a9c 7be104 --by 小丸子"))
def outbox_done(
    ids: list[str] = typer.Argument(..., help="Draft ids (or unique prefixes) the front line has sent by hand."),
    by: str = typer.Option(None, "--by", help="Who sent them (default: $USER)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Mark drafts as sent by hand (已发送): the person copied them into WeChat."""
    from siyu_cli.dispatch._frontline import mark_done

    changed, read_back, already = mark_done(db, ids, by)
    shown = ", ".join(changed[:20]) + (f" … and {len(changed) - 20} more" if len(changed) > 20 else "")
    out().print(f"marked {len(changed)} draft(s) done" + (f": {shown}" if changed else ""))
    if already:
        (who, at), *_ = already.values()
        from siyu_cli._time import from_db

        when = f" at {from_db(at):%Y-%m-%d %H:%M} UTC" if at else ""
        others = f" (and {len(already) - 1} more)" if len(already) > 1 else ""
        out().print(f"left {len(already)} draft(s) as first marked: done by {who}{when}{others}; the first mark is the record", markup=False)
    if read_back:
        out().print(f"left {len(read_back)} draft(s) as WeCom read them back (who sent them, when, or why not): `siyu outbox --tasks` shows them", markup=False)


@app.command(rich_help_panel=PANEL, epilog=examples("siyu status", "siyu status playbooks/skincare.yaml --db /srv/siyu/siyu.db --json"))
def status(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Campaigns in the ledger, counts by state, next due drafts, drafts in doubt, and who holds the lock; with a playbook, each account's 养号 stage."""
    from siyu_cli.dispatch._frontline import ledger_status

    report = ledger_status(db, now=_when(now, __import__("datetime").timezone.utc))
    if playbook or playbook_opt:
        from siyu_cli._time import utcnow
        from siyu_cli.dispatch._capacity import accounts
        from siyu_cli.playbook import read

        loaded = read(find_playbook(playbook_opt, playbook))
        report["accounts"] = accounts(loaded, (_when(now, loaded.tz) or utcnow()).astimezone(loaded.tz).date())
    if as_json:
        print_json(report)
        return
    from rich.table import Table

    console = out()
    if report.get("accounts"):
        stages = Table(title="accounts 养号")
        for column in ("persona", "account", "since", "day", "stage", "1v1 a day", "adds a day", "invites a day", "capacity"):
            stages.add_column(column)
        for row in report["accounts"]:
            caps, capacity = row["caps"] or {}, row["capacity"]
            stages.add_row(
                row["persona"], row["account"] or "", row["account_since"] or "", str(row["age_days"] or ""),
                f"{row['stage_label']} ({row['stage']})" if row["stage"] else "",
                *(str(caps.get(k)) if caps.get(k) is not None else "" for k in ("private", "adds", "invites")),
                f"{capacity['precise']}/{capacity['semi']}/{capacity['general']} × {capacity['operators']}" if capacity else "",
            )  # fmt: skip
        console.print(stages)
    table = Table(title="campaigns")
    for column in ("playbook", *STATES):
        table.add_column(column, justify="right" if column != "playbook" else "left")
    for playbook_id, counts in report["campaigns"].items():
        table.add_row(playbook_id, *[str(counts.get(state, 0)) for state in STATES])
    console.print(table)
    for playbook_id, reasons in report["skipped"].items():
        why = " · ".join(f"{reason} {count}" + (f" ({SKIP_NOTES[reason]})" if reason in SKIP_NOTES else "") for reason, count in reasons.items())
        console.print(f"skipped by reason · {playbook_id}: {why}", markup=False)
    if report["next_due"]:
        upcoming = Table(title="next due")
        for column in ("id", "due (UTC)", "playbook", "beat", "target"):
            upcoming.add_column(column)
        for row in report["next_due"]:
            upcoming.add_row(row["draft_id"], row["due_at"], row["playbook_id"], row["beat"], row["target"])
        console.print(upcoming)
    if report["in_doubt"]:
        console.print(f"[yellow]{len(report['in_doubt'])} draft(s) in doubt (unknown): each may have arrived, so none is sent again on its own.[/]")
        for row in report["in_doubt"][:20]:
            why = f": {row['error']}" if row.get("error") else ""
            console.print(f"  {row['draft_id']} {row['beat']} → {row['target']}{why}", markup=False)
            console.print(
                f"    check the channel (for a WeCom task, 群发记录 in the admin console), then `siyu outbox done {row['draft_id']}` if it arrived, "
                f"else `siyu retry --unknown {row['draft_id']}` (which asks WeCom first, and refuses what siyu cannot tell apart there "
                "until you name the task the error names)",
                markup=False,
            )
    if report["locks"]:
        for lock in report["locks"]:
            state = "alive" if lock["alive"] else "stale (process gone: `siyu unlock`)"
            line = f"lock: {lock['mode']} run {lock['run_id']} · pid {lock['pid']} on {lock['host']} · since {lock['started_at']} · {state}"
            if lock["claims"]:
                line += f" · holds {lock['claims']} draft(s), lease until {lock['lease_until']}"
                if lock["lease_expired"]:
                    line += " · lease expired (hung or paused?): the next pass takes its drafts over"
            console.print(line, markup=False)
    else:
        console.print("lock: free (no run in progress)")


@app.command(rich_help_panel=PANEL, epilog=examples("siyu unlock", "siyu unlock --force"))
def unlock(
    db: str = typer.Option(None, "--db", help=DB_HELP),
    force: bool = typer.Option(False, "--force", help="Also release runs on other hosts whose process cannot be checked."),
) -> None:
    """Release a stale lock: runs whose process is gone; their claimed drafts are settled on the next pass."""
    from siyu_cli.dispatch._frontline import unlock as do_unlock

    released, alive = do_unlock(db, force=force)
    console = out()
    for run in released:
        console.print(f"released run {run.run_id} (pid {run.pid} on {run.host}, {run.mode})")
    for run in alive:
        console.print(f"[yellow]kept run {run.run_id}: pid {run.pid} on {run.host} is still running[/]")
    if not released and not alive:
        console.print("nothing to release")


@plan_app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    playbook: str = group_playbook_argument(),
    playbook_opt: str = playbook_option(),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What the playbook, as it is now, will do against the ledger (计划): drafts to create, re-time, re-render or cancel, and the next 24 hours' sends.

    Changes nothing. Exit 0 when a pass would change nothing, 2 when it would (like `terraform plan -detailed-exitcode`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from siyu_cli._time import utcnow
    from siyu_cli.dispatch._plan import fill_slots, plan_report
    from siyu_cli.dispatch._setup import plan_inputs
    from siyu_cli.errors import StoreError
    from siyu_cli.playbook import read
    from siyu_cli.store import default_path, open_store

    loaded = read(find_playbook(playbook_opt, playbook))
    path = default_path(db)
    if not path.exists():
        raise StoreError(f"{path}: no such store", hint="a campaign that never ran has no ledger to plan against: see `siyu preview` and `siyu timeline`")
    moment = _when(now, loaded.tz) or utcnow().astimezone(loaded.tz)
    store = open_store(path)
    fill_slots(store, loaded)
    inputs = plan_inputs(loaded, None, readonly=True, db=store, as_of=moment)
    report = plan_report(loaded, store, inputs.planner, moment)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_plan(report, loaded)
    if report.changed:
        raise typer.Exit(2)


@plan_app.command(
    "capacity",
    epilog=examples("siyu plan capacity playbooks/skincare.yaml --cards 3000", "siyu plan capacity -p playbooks/skincare.yaml --cards 3000 --rates added=0.2 --json"),
)
def plan_capacity(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    cards: int = typer.Option(..., "--cards", help="Package cards (包裹卡) the campaign sends."),
    rates: list[str] = typer.Option(None, "--rates", help="STAGE=RATE (repeatable or comma-separated); the friend_added stage's is the add rate (引流率)."),
    operators: int = typer.Option(None, "--operators", min=1, help="Operators to work the backlog with (default: the playbook's, capacity.operators per persona)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """How many operators (人效) a campaign of N package cards needs, day by day, and where the backlog peaks.

    Expected values from simulate's figures (cards over the first third of the campaign, scanned 2–7 days later)
    and each persona's capacity (20 precise / 30 semi / 40 general fans a day per operator).
    """
    from siyu_cli.playbook import read
    from siyu_cli.report._simulate import parse_rates
    from siyu_cli.report._staffing import staffing

    loaded = read(find_playbook(playbook_opt, playbook))
    result = staffing(loaded, cards, parse_rates(rates or []), operators)
    if as_json:
        print_json(result.to_dict())
        return
    _print_staffing(result)


def _print_staffing(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{result.cards} cards · add rate {result.add_rate:.1%} ({result.add_rate_source}) · {result.operators} operator(s)")
    for column in ("day", "date", "cards", "adds 加微", "精准粉", "半精准粉", "泛粉", "operator-days", "needed 人", "backlog"):
        table.add_column(column, justify="left" if column == "date" else "right")
    peak = result.peak
    for row in result.days:
        mark = " ← peak" if peak is not None and row.day == peak.day else ""
        table.add_row(
            str(row.day), row.date.isoformat(), f"{row.cards:.0f}", f"{row.adds:.1f}",
            *(f"{row.fans[t]:.1f}" for t in ("precise", "semi", "general")),
            f"{row.work:.2f}", str(row.needed), f"{row.backlog:.2f}{mark}",
        )  # fmt: skip
    console = out()
    console.print(table)
    console.print(result.verdict(), markup=False, soft_wrap=True)


def _print_plan(report: Any, loaded: Any) -> None:
    from rich.table import Table

    console = out()
    titles = {beat.id: beat.title or beat.id for beat in loaded.model.beats}
    counts = report.counts()
    console.print(
        f"plan at {report.now:%Y-%m-%d %H:%M}: create {counts['create']} · re-time {counts['retime']} · "
        f"re-render {counts['rerender']} · cancel {counts['cancel']}",
        markup=False,
    )
    if report.changed:
        rows = [(beat, day, kind, n, report.becomes(beat, day, kind)) for beat, day, kind, n in report.by_beat()]
        table = Table("beat", "day", "change", "drafts", *(["recorded as 记为"] if any(row[4] for row in rows) else []))
        for beat, day, kind, n, becomes in rows:
            cells = [titles.get(beat, beat), str(day), {"retime": "re-time", "rerender": "re-render"}.get(kind, kind), str(n)]
            table.add_row(*cells, *([becomes] if any(row[4] for row in rows) else []))
        console.print(table)
        for change in [c for c in report.changes if c.kind == "retime"][:10]:
            console.print(f"  re-time {change.draft_id} {titles.get(change.beat, change.beat)} → {change.target}: {change.was_due:%m-%d %H:%M} → {change.due_at:%m-%d %H:%M}", markup=False)
        limits = loaded.model.limits
        capped = any(p.capacity for p in loaded.model.personas) or limits.per_contact_per_day or limits.private_per_account_per_day
        if capped and any(c.kind == "create" and c.target.startswith("contact:") for c in report.changes):
            console.print(
                "1v1 drafts are recorded as above; capacity and the per-contact and per-account limits decide them when they fall due "
                "(carried to the next day 顺延, or skipped): `siyu plan capacity` models the load",
                markup=False,
                soft_wrap=True,
            )
    else:
        console.print("no changes: the ledger already holds what this playbook makes", markup=False)
    if report.upcoming:
        table = Table("due", "beat", "channel", "drafts", title="next 24 hours")
        for due, beat, channel, n in report.upcoming:
            table.add_row(f"{due:%m-%d %H:%M}", titles.get(beat, beat), channel, str(n))
        console.print(table)
    else:
        console.print("nothing due in the next 24 hours", markup=False)
