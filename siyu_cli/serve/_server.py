"""`siyu serve`'s glue: bind the socket, run the app under uvicorn, stop cleanly on SIGTERM or Ctrl-C.

The socket is bound here, before uvicorn starts, so a port in use is one clear error (and --port 0 gets
a free port whose number is printed).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from siyu_cli.errors import SiyuError
from siyu_cli.serve._app import DEFAULT_PATH, OnAdded, app


def listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise SiyuError(f"--host {host}: {exc}", hint="pass an address of this machine, e.g. --host 127.0.0.1 (behind a reverse proxy) or --host 0.0.0.0") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise SiyuError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="another process holds the port: stop it or pass --port N") from None
    sock.set_inheritable(True)
    return sock


def serve(
    playbook_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = DEFAULT_PATH,
    db_path: str | None = None,
    environ: Mapping[str, str] = os.environ,
    on_added: OnAdded | None = None,
    on_start: Callable[[], None] | None = None,
    on_listening: Callable[[str], None],
    log: Callable[[str], None],
) -> str:
    """Serve until SIGTERM or SIGINT; returns the name of the signal that stopped it.

    `on_start()` runs on the welcome thread before its first add (serve_cmds: WelcomeOnAdd.warm_up).
    `on_listening(url)` is told the local URL once the socket is bound (the playbook, variables and store
    were checked before: a mistake there raises SiyuError and nothing listens).
    """
    import uvicorn

    asgi = app(playbook_path, db_path=db_path, environ=environ, on_added=on_added, on_start=on_start, path=path, log=log)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    on_listening(f"http://{shown}:{bound}{path}")
    stopped: list[str] = []
    # uvicorn shuts down gracefully on these, then re-raises the signal to the handler it found: ours only notes it.
    previous = {sig: signal.signal(sig, lambda number, _frame: stopped.append(signal.Signals(number).name)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5, server_header=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return stopped[0] if stopped else "shutdown"
