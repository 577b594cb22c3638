"""A real HTTP server on 127.0.0.1 for tests: records every request, answers from a script.

Use it as a context manager (or through a fixture in the test module):

    with RecordingServer() as server:
        server.queue(Reply(500), Reply(500))      # then the default answer
        post_to(server.url("/cgi-bin/webhook/send", key="k"))
        assert len(server.requests) == 3
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from siyu_cli.dispatch._outputs import Outgoing

SHANGHAI = ZoneInfo("Asia/Shanghai")
SAMPLE_TEXT = "早上好，各位家长！☀️\n今天是阅读营第1天：\n- 读《小王子》第一章\n- 晚上8点前打卡"


def outgoing(**changes: Any) -> Outgoing:
    """A realistic draft (a morning share in a reading-camp group) for output tests."""
    from siyu_cli.dispatch._outputs import Outgoing

    base = Outgoing(
        draft_id="d3f9a1c2e4b5",
        playbook_id="reading-camp-7d",
        playbook_title="少年阅读训练营 · 7天群转",
        cohort="default",
        beat="morning-share",
        beat_title="早分享",
        channel="group",
        persona="小丸子",
        account="wx_host_01",
        target="阅读营12期1群",
        target_id="group:g1",
        due_at=datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI),
        day=1,
        category=None,
        variant="a",
        text=SAMPLE_TEXT,
    )
    return replace(base, **changes)


@dataclass
class Reply:
    """One scripted answer. `hang` accepts the request and never answers (until the server stops);
    `wait` answers once that event is set (other requests are answered meanwhile)."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    wait: threading.Event | None = None

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass
class Recorded:
    """What the server received, byte for byte."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class RecordingServer:
    """ThreadingHTTPServer on an ephemeral port; `requests` in arrival order."""

    def __init__(self, default: Reply | None = None, responder: Callable[[Recorded], Reply | None] | None = None):
        self.default = default or Reply()
        self.responder = responder
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    def url(self, path: str = "/", **query: str) -> str:
        tail = f"?{urlencode(query)}" if query else ""
        return f"http://127.0.0.1:{self.port}{path}{tail}"

    def _answer(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.responder is not None:
                custom = self.responder(recorded)
                if custom is not None:
                    return custom
            return self._script.popleft() if self._script else self.default

    def start(self) -> RecordingServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                split = urlsplit(self.path)
                recorded = Recorded(
                    method="POST",
                    path=split.path,
                    query=dict(parse_qsl(split.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = owner._answer(recorded)
                if reply.hang:
                    owner._release.wait(30)
                    return
                if reply.wait is not None:
                    reply.wait.wait(60)
                data = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `requests`, not a log."""

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = False
        httpd.block_on_close = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
