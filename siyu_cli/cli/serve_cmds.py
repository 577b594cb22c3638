"""`siyu serve`: WeCom's callback receiver (接收事件服务器) for a playbook with the wecom output."""

from __future__ import annotations

from pathlib import Path

import typer

from siyu_cli.cli._app import app, examples
from siyu_cli.cli._common import DB_HELP, err, find_playbook, playbook_argument, playbook_option
from siyu_cli.cli.run_cmds import PANEL


@app.command(
    rich_help_panel=PANEL,
    epilog=examples("siyu serve playbooks/camp.yaml", "siyu serve -p playbooks/camp.yaml --host 0.0.0.0 --port 8080 --path /hooks/wecom"),
)
def serve(
    playbook: str = playbook_argument(),
    playbook_opt: str = playbook_option(),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1 behind a reverse proxy with TLS; 0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port, printed)."),
    path: str = typer.Option("/wecom/callback", "--path", help="URL path of the callback, as configured in the admin console."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    outbox: Path = typer.Option(Path("outbox"), "--outbox", help="Folder for outbox drafts, when the playbook also has the outbox output."),
) -> None:
    """Take WeCom's callbacks (接收事件服务器): verify the URL, decrypt each event and record it (加微, 删好友, 进群, 退群).

    The corp id, 客户联系 Secret (for the welcomes), Token and EncodingAESKey come from the variables the
    playbook's wecom output names; a missing one stops serve before it listens, as does a SIYU_WECOM_API
    (WeCom's base URL, for a proxy or a test server) that is no http(s)://host URL.
    A new add runs that contact's pass at once, so its `after: 0m` welcome goes out with the add's
    WelcomeCode within WeCom's 20 seconds (retried 1, 2, 4 … s apart while WeCom answers busy, until 18 s
    after the add). As it starts it asks WeCom for the app's token once and logs the answer, so a wrong
    secret or a WeCom out of reach shows then, not at the first add. Runs until SIGTERM or Ctrl-C.
    """
    from rich.markup import escape

    from siyu_cli.serve import serve as run_server
    from siyu_cli.serve._welcome import WelcomeOnAdd

    console = err()
    found = find_playbook(playbook_opt, playbook)

    def listening(url: str) -> None:
        console.print(f"siyu serve: {escape(str(found))} · listening on {escape(url)} · Ctrl-C to stop")
        console.print(f"  admin console 客户联系 → API → 接收事件服务器: URL https://YOUR-DOMAIN{escape(path)} (a TLS reverse proxy in front of this address), with the same Token and EncodingAESKey")

    def log(line: str) -> None:
        console.print(line, markup=False)

    welcome = WelcomeOnAdd(found, db_path=db, outbox_dir=outbox, log=log)
    stopped = run_server(found, host=host, port=port, path=path, db_path=db, on_added=welcome, on_start=welcome.warm_up, on_listening=listening, log=log)
    console.print(f"siyu serve: stopped ({stopped})", markup=False)
