"""The ASGI app (Starlette) behind `siyu serve`: WeCom's callback URL and /healthz.

GET on the callback path is the admin console's URL verification (answer: the decrypted echostr); POST is
an encrypted callback, answered "success" once its events are committed. A bad signature or a wrong corp
gets 403 and records nothing; anything not in WeCom's form gets 400; a store that cannot be written gets
503 so WeCom retries (it waits 5 s and tries 3 times; retries record nothing twice). A callback waits at most
3 s for the store (another process's write, or the callbacks before it) so that 503 comes before WeCom gives up.

One store connection serves every request, under a lock, from Starlette's thread pool: SQLite takes one
writer at a time anyway, and a callback's transaction takes about a millisecond.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siyu_cli.errors import CallbackRejected, SiyuError, StoreError, UsageError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from siyu_cli.playbook._model import WecomOutput

DEFAULT_PATH = "/wecom/callback"
MAX_BODY = 1 << 20  # WeCom's callbacks are a few KB; a full group's member list stays far below this
STORE_WAIT = 3.0  # seconds a callback may wait for the store: WeCom waits 5 s for the answer, and a 503 in time makes it retry

OnAdded = Callable[[str, datetime], None]


def wecom_output(model: Any, source: Path) -> WecomOutput:
    """The playbook's wecom output, whose variables name the corp id, Token and EncodingAESKey."""
    found = next((output for output in model.outputs if getattr(output, "type", None) == "wecom"), None)
    if found is None:
        raise UsageError(
            f"{source}: the playbook has no wecom output; siyu serve takes WeCom's callbacks for a playbook that dispatches through WeCom",
            hint="add `- {type: wecom}` under outputs: (corp_id_env, token_env and aes_key_env name the variables it reads)",
        )
    return found


def _stamp(source: Path) -> tuple[int, int]:
    """(mtime, size) of the playbook: a callback stats it, and reads it again only when it changed."""
    try:
        info = source.stat()
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


def check_path(path: str) -> str:
    if not path.startswith("/") or path == "/healthz" or any(c in path for c in "?# "):
        raise UsageError(f"--path {path!r}: the callback path is an absolute URL path other than /healthz", hint=f"e.g. --path {DEFAULT_PATH}")
    return path


class _Handoff:
    """Runs on_added for each new add on one worker thread, after its event is committed, off the request path."""

    def __init__(self, on_added: OnAdded, log: Callable[[str], None], first: Callable[[], None] | None = None) -> None:
        self._on_added = on_added
        self._log = log
        self._first = first
        self._queue: queue.Queue[tuple[str, datetime] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="siyu-serve-on-added", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, contact_id: str, at: datetime) -> None:
        self._queue.put((contact_id, at))

    def stop(self) -> None:
        """Finish the adds already handed over, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        if self._first is not None:
            try:
                self._first()
            except Exception as exc:  # as for an add: the receiver keeps receiving
                self._log(f"at start-up: {type(exc).__name__}: {exc}")
        while (item := self._queue.get()) is not None:
            try:
                self._on_added(*item)
            except Exception as exc:  # the hook is the runner's; a failure there must not stop the receiver
                self._log(f"after the add of {item[0]}: {type(exc).__name__}: {exc}")


def app(
    playbook_path: str | os.PathLike[str],
    *,
    db_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    on_added: OnAdded | None = None,
    on_start: Callable[[], None] | None = None,
    path: str = DEFAULT_PATH,
    now: Callable[[], datetime] | None = None,
    log: Callable[[str], None] | None = None,
) -> Starlette:
    """The callback receiver for one playbook's corp (its wecom output names the variables in `environ`).

    `on_added(contact_id, at)` runs once per friend_added with a persona's staff member recorded for the
    first time, after the commit, on a worker thread; `on_start()` runs on that thread before the first add. `now` is the clock callbacks are received on (no
    welcome code counts from later than it); `log` gets one line per callback. Raises SiyuError for a
    missing variable (the 客户联系 Secret too: the welcome pass sends with it), a SIYU_WECOM_API that is no
    http(s)://host URL, a bad EncodingAESKey, or a playbook without a wecom output, before anything listens.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from siyu_cli._time import utcnow
    from siyu_cli.playbook import read
    from siyu_cli.store import default_path, open_store
    from siyu_cli.wecom._client import api_base
    from siyu_cli.wecom._crypto import CallbackCrypto
    from siyu_cli.wecom._events import CallbackBook
    from siyu_cli.wecom._output import setting

    check_path(path)
    source = Path(playbook_path)
    loaded = read(source)
    output = wecom_output(loaded.model, source)
    corp_id = setting(environ, output.corp_id_env, "corp id (企业ID)", "我的企业 → 企业信息 → 企业ID", who="siyu serve")
    token = setting(environ, output.token_env, "callback Token", "客户联系 → API → 接收事件服务器 → Token", who="siyu serve")
    aes_key = setting(environ, output.aes_key_env, "callback EncodingAESKey", "客户联系 → API → 接收事件服务器 → EncodingAESKey", who="siyu serve")
    setting(environ, output.secret_env, "客户联系 Secret (each add's welcome is sent with it)", "客户联系 → API → Secret, or the Secret of a self-built app listed there under 可调用接口的应用", who="siyu serve")
    if environ.get("SIYU_WECOM_API"):
        api_base(environ["SIYU_WECOM_API"])  # the welcomes' base URL: one that can never work stops serve here, not each welcome
    crypto = CallbackCrypto(token, aes_key, corp_id)
    mapping: dict[str, Any] = {"book": CallbackBook(loaded.model, corp_id), "hash": loaded.content_hash, "stamp": _stamp(source)}
    db = open_store(default_path(db_path))
    lock = threading.Lock()
    clock = now or utcnow
    say = log or (lambda line: None)
    handoff = _Handoff(on_added, say, on_start) if on_added is not None else None

    def record(xml: str, since: float) -> Any:
        """Within STORE_WAIT of `since` (when the callback came in), else StoreError (a 503)."""
        if not lock.acquire(timeout=max(0.0, STORE_WAIT - (time.monotonic() - since))):
            raise StoreError(f"store is locked: the callbacks before this one held it for {STORE_WAIT:g} s")
        try:
            left = max(0.0, STORE_WAIT - (time.monotonic() - since))
            db.conn.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
            return current().receive(db, xml, received_at=clock())
        finally:
            lock.release()

    def current() -> CallbackBook:
        """The playbook as it is now: an edit (a hook or a persona added) maps the next callback; a broken one keeps the last."""
        stamp = _stamp(source)
        if stamp != mapping["stamp"]:
            mapping["stamp"] = stamp
            try:
                fresh = read(source)
            except SiyuError as exc:
                say(f"the playbook was edited but does not load, so callbacks keep the last one: {exc.message}")
            else:
                if fresh.content_hash != mapping["hash"]:
                    mapping["book"], mapping["hash"] = CallbackBook(fresh.model, corp_id), fresh.content_hash
                    say("the playbook was edited: callbacks are mapped by the new one")
        book: CallbackBook = mapping["book"]
        return book

    def rejected(request: Request, exc: CallbackRejected) -> Response:
        client = request.client.host if request.client else "?"
        say(f"rejected {request.method} from {client}: {exc.message}")
        return PlainTextResponse(exc.message, status_code=exc.status)

    async def callback(request: Request) -> Response:
        since = time.monotonic()
        query = request.query_params
        signature, timestamp, nonce = query.get("msg_signature", ""), query.get("timestamp", ""), query.get("nonce", "")
        if not (signature and timestamp and nonce):
            return PlainTextResponse("missing msg_signature, timestamp or nonce", status_code=400)
        if request.method == "GET":
            echostr = query.get("echostr", "").replace(" ", "+")  # Base64's + read as a space by a client that did not encode it
            if not echostr:
                return PlainTextResponse("missing echostr", status_code=400)
            try:
                plain = crypto.verify_url(signature, timestamp, nonce, echostr)
            except CallbackRejected as exc:
                return rejected(request, exc)
            say("URL verified (接收事件服务器)")
            return PlainTextResponse(plain)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("body too large for a WeCom callback", status_code=413)
        try:
            xml = crypto.open(signature, timestamp, nonce, bytes(body))
            received = await run_in_threadpool(record, xml, since)
        except CallbackRejected as exc:
            return rejected(request, exc)
        except StoreError as exc:  # locked or unwritable: WeCom retries, and a retry records nothing twice
            say(f"not recorded, WeCom will retry: {exc.message}")
            return PlainTextResponse("store busy", status_code=503)
        except Exception as exc:  # a bug: WeCom gets a plain 500 and the log one line, never a traceback
            say(f"not recorded ({type(exc).__name__}: {exc}); WeCom will retry. This is a bug in siyu: please report it")
            return PlainTextResponse("error", status_code=500)
        if handoff is not None:
            for result in received.added:
                handoff.put(result.contact_id, datetime.fromisoformat(result.at))
        say(received.line())
        return PlainTextResponse("success")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "playbook": loaded.id, "callback_path": path})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if handoff is not None:
            handoff.start()
        try:
            yield
        finally:
            if handoff is not None:
                handoff.stop()
            with lock:
                db.conn.close()

    routes = [Route(path, callback, methods=["GET", "POST"]), Route("/healthz", healthz, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)
