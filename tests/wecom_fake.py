"""A fake WeCom server API on 127.0.0.1 for the suite: the documented requests and answers, with state a test drives.

Shapes follow WeCom's documentation (developer.work.weixin.qq.com): gettoken 91039, 创建企业群发 92135, 获取企业的全部
群发记录 93338 (get_groupmsg_list_v2, get_groupmsg_task, get_groupmsg_send_result), 提醒成员群发 97610, 客户朋友圈
95094 / 93333 (add_moment_task, get_moment_task_result, get_moment_task), 发送新客户欢迎语 92137, 上传临时素材 90253,
上传附件资源 95098, 上传图片 90256, 获取客户详情 92114, 全局错误码 90313. Where the docs name no errcode (a fourth
reminder in 24 h, a list window over a month, a Moments text over 2,000 characters) the fake picks one and says so.

    with WecomFake() as wecom:              # or the `wecom` fixture, which also sets SIYU_WECOM_API
        wecom.not_friends.add("wm_gone")
        msgid = ...                         # the code under test creates a mass send
        wecom.confirm(msgid, "aqi", quota=["wm_full"])
        wecom.advance(3600)                 # the fake's clock: tokens, 20-second welcome codes, 3-day media ids
        assert wecom.count("externalcontact/add_msg_template") == 1
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

START = 1_790_000_000.0  # 2026-09-21, a fixed fake clock: nothing in the fake depends on the wall clock
DAY = 86400.0
MEDIA_LIFETIME = 3 * DAY
WELCOME_WINDOW = 20.0
REMINDERS_PER_DAY = 3
MOMENTS_PER_MINUTE = 10  # 企业每分钟创建朋友圈的频率：10条/分钟
GET_APIS = frozenset({"gettoken", "externalcontact/get_moment_task_result", "externalcontact/get"})
UPLOAD_LIMITS = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024, "video": 10 * 1024 * 1024, "file": 20 * 1024 * 1024}
SIZE_ERRCODES = {"image": 40009, "video": 40011, "voice": 40006, "file": 40006}


class Refusal(Exception):
    """An errcode answer; state is left as it was."""

    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.extra = extra


@dataclass
class Call:
    """One request as the fake received it. `api` is the path after /cgi-bin/; `body` the JSON, or for an upload
    {"fields": {...}, "files": {name: {"filename", "size", "sha256"}}}; `errcode` what the fake answered (None:
    dropped or hung)."""

    api: str
    method: str
    query: dict[str, str]
    body: Any
    at: float
    errcode: int | None = None


@dataclass
class Template:
    """A mass send (企业群发) as WeCom keeps it."""

    msgid: str
    chat_type: str
    sender: str | None
    create_time: int
    text: str | None
    attachments: list[dict[str, Any]]
    recipients: dict[str, str]  # external_userid or chat_id -> the staff member who sends to it
    fail_list: list[str]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # userid -> {"status", "send_time"}
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # recipient -> {"status", "send_time"}
    reminders: list[float] = field(default_factory=list)


@dataclass
class Job:
    """An add_moment_task job: `polls` answers of "still creating" before it is done."""

    jobid: str
    moment_id: str
    polls: int
    invalid_senders: list[str]
    invalid_tags: list[str]
    answered: int = 0


@dataclass
class Moment:
    moment_id: str
    create_time: int
    text: str | None
    attachments: list[dict[str, Any]]
    publish: dict[str, int]  # userid -> publish_status (0 未发表, 1 已发表)


@dataclass
class Fault:
    kind: str  # errcode | drop | hang | hold
    errcode: int = 0
    errmsg: str = ""
    process: bool = True  # drop / hang: act on the request first (WeCom got it; only the answer is lost)
    times: int | None = 1  # None: every call until cleared


class WecomFake:
    """The server and its state; every mutation happens under one lock, so tests may drive it mid-run."""

    def __init__(self, corp_id: str = "ww5f3b2c1a0e9d8c7b", secret: str = "fake-secret-Zq1xW2ec3Rv4tB5yn6Um7", *, token_ttl: int = 7200) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.token_ttl = token_ttl
        self.now = START
        self.calls: list[Call] = []
        self.not_friends: set[str] = set()  # ids that land in add_msg_template's fail_list
        self.staff: set[str] | None = None  # when set, Moments senders outside it are invalid_sender_list
        self.invalid_tags: set[str] = set()
        self.moment_polls = 1  # "still creating" answers before a Moments job is done
        self.dispatch_delay = 0.0  # seconds after creation during which reads of a mass send answer 41063
        self.page_cap: int | None = None  # force small pages to exercise cursors
        self.templates: dict[str, Template] = {}
        self.jobs: dict[str, Job] = {}
        self.moments: dict[str, Moment] = {}
        self.welcome_codes: dict[str, dict[str, Any]] = {}
        self.welcomes: list[dict[str, Any]] = []
        self.media: dict[str, dict[str, Any]] = {}  # media_id -> {"purpose", "type", "sha256", "created_at"}
        self.image_urls: dict[str, str] = {}  # uploadimg URL -> sha256
        self.contacts: dict[str, dict[str, Any]] = {}
        self.moment_times: list[float] = []
        self._tokens: dict[str, float] = {}  # token -> expires_at
        self._current: str | None = None
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._seq = 0
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._stopping = False
        self._seen: dict[str, threading.Event] = defaultdict(threading.Event)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- driving ----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the fake first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def expire_tokens(self) -> None:
        """Every token issued so far has expired: the next call with one gets 42001, the next gettoken a new one."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = self.now - 1
            self._current = None

    def revoke_tokens(self) -> None:
        """WeCom invalidated the tokens early (运营需要): the next call with one gets 40014."""
        with self._lock:
            self._tokens.clear()
            self._current = None

    def inject(self, api: str, errcode: int, times: int | None = 1, errmsg: str | None = None) -> None:
        """The next `times` calls of `api` (path after /cgi-bin/, e.g. "externalcontact/add_msg_template" or
        "gettoken"; None: all until `clear`) answer this errcode and change nothing."""
        with self._lock:
            self._faults[_api(api)].append(Fault("errcode", errcode, errmsg or _ERRMSGS.get(errcode, f"fake errcode {errcode}"), times=times))

    def drop(self, api: str, *, process: bool = True, times: int = 1) -> None:
        """The next call of `api` is received (and, with `process`, acted on) and its connection closed unanswered."""
        with self._lock:
            self._faults[_api(api)].append(Fault("drop", process=process, times=times))

    def hang(self, api: str, *, process: bool = True, times: int = 1) -> None:
        """The next call of `api` is received (and acted on) and never answered until `release()` or `stop()`."""
        with self._lock:
            self._faults[_api(api)].append(Fault("hang", process=process, times=times))

    def hold(self, api: str, *, times: int = 1) -> None:
        """The next call of `api` is acted on, then answered only once `release()` is called."""
        with self._lock:
            self._faults[_api(api)].append(Fault("hold", times=times))

    def release(self) -> None:
        """Let every hung or held call go on (a hung one is closed unanswered, a held one answered)."""
        with self._lock:
            event, self._release = self._release, threading.Event()
        event.set()

    def clear(self, api: str | None = None) -> None:
        with self._lock:
            if api is None:
                self._faults.clear()
            else:
                self._faults.pop(_api(api), None)

    def wait_for(self, api: str, timeout: float = 30.0) -> bool:
        """Block until the fake has received a call of `api` (synchronisation for process tests, not a sleep)."""
        return self._seen[_api(api)].wait(timeout)

    def count(self, api: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.api == _api(api))

    def of(self, api: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.api == _api(api)]

    def confirm(
        self,
        msgid: str,
        userid: str | None = None,
        at: float | None = None,
        *,
        skip: Iterable[str] = (),
        not_friend: Iterable[str] = (),
        quota: Iterable[str] = (),
    ) -> None:
        """Staff member `userid` (default: the task's only sender) confirms the mass send at `at` (default now):
        their task turns 2 已发送; each of their recipients 1 已发送, except `skip` (deselected: stays 0),
        `not_friend` (2) and `quota` (3, already received the month's quota)."""
        with self._lock:
            template = self.templates[msgid]
            users = sorted(template.tasks) if userid is None else [userid]
            when = int(self.now if at is None else at)
            skipped, gone, full = set(skip), set(not_friend), set(quota)
            for user in users:
                template.tasks[user] = {"status": 2, "send_time": when}
                for recipient, owner in template.recipients.items():
                    if owner != user:
                        continue
                    status = 0 if recipient in skipped else 2 if recipient in gone else 3 if recipient in full else 1
                    template.results[recipient] = {"status": status, "send_time": when if status == 1 else None}

    def publish(self, moment_id: str, userid: str) -> None:
        """The staff member posts the company Moments task: publish_status 1."""
        with self._lock:
            self.moments[moment_id].publish[userid] = 1

    def welcome_code(self, userid: str, external_userid: str) -> str:
        """A WelcomeCode as an add_external_contact callback carries it: usable once, within 20 s of now."""
        with self._lock:
            code = f"WELCOME_{self._next()}_{base64.urlsafe_b64encode(external_userid.encode()).decode().rstrip('=')}"
            self.welcome_codes[code] = {"userid": userid, "external_userid": external_userid, "issued": self.now, "used": False}
            return code

    def add_contact(self, external_userid: str, name: str, *, follow: Iterable[str] = ("staff",), state: str = "") -> None:
        with self._lock:
            follow_user = [{"userid": user, "remark": "", "description": "", "createtime": int(self.now), "tags": [], "add_way": 1, "state": state} for user in follow]
            self.contacts[external_userid] = {"external_contact": {"external_userid": external_userid, "name": name, "type": 1, "gender": 0}, "follow_user": follow_user}

    # -- the server -------------------------------------------------------------------------------------------

    def start(self) -> WecomFake:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                owner._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `calls`."""

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> WecomFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(request.path)
        api = split.path.removeprefix("/cgi-bin/")
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        status, answer = 200, {}
        with self._lock:
            call = Call(api=api, method=method, query=query, body=_body(raw, request.headers.get("Content-Type", "")), at=self.now)
            self.calls.append(call)
            fault = self._fault(api)
            if fault is None or fault.kind == "errcode" or fault.process:
                status, answer = self._answer(api, method, query, call.body, fault)
                call.errcode = answer.get("errcode") if fault is None or fault.kind in ("errcode", "hold") else None
            self._seen[api].set()
            release = self._release
        if fault is not None and fault.kind in ("hang", "hold") and not self._stopping:
            release.wait(60)
        if fault is not None and fault.kind == "hang":
            request.close_connection = True
            return
        if fault is not None and fault.kind == "drop":
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=UTF-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _fault(self, api: str) -> Fault | None:
        queue = self._faults.get(api)
        if not queue:
            return None
        fault = queue[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
        return fault

    def _answer(self, api: str, method: str, query: dict[str, str], body: Any, fault: Fault | None) -> tuple[int, dict[str, Any]]:
        if fault is not None and fault.kind == "errcode":
            return 200, {"errcode": fault.errcode, "errmsg": fault.errmsg}
        handler = _ROUTES.get(api)
        if handler is None or (method == "GET") != (api in GET_APIS):
            return 404, {"errcode": 404, "errmsg": f"no such api: {method} /cgi-bin/{api}"}
        try:
            if api != "gettoken":
                self._check_token(query)
            if method == "POST" and body is None:
                raise Refusal(40063, "param is empty (参数为空)")
            if method == "POST" and not isinstance(body, dict):
                raise Refusal(47001, "data format error (数据格式错误)")
            answer = getattr(self, handler.__name__)(query, body)  # through the instance, so a test can wrap one api
        except Refusal as refusal:
            return 200, {"errcode": refusal.errcode, "errmsg": refusal.errmsg, **refusal.extra}
        return 200, {"errcode": 0, "errmsg": "ok", **answer}

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _check_token(self, query: dict[str, str]) -> None:
        token = query.get("access_token")
        if not token:
            raise Refusal(41001, "access_token missing")
        if token not in self._tokens:
            raise Refusal(40014, "invalid access_token")
        if self._tokens[token] <= self.now:
            raise Refusal(42001, "access_token expired")

    def _page(self, items: list[dict[str, Any]], body: dict[str, Any], *, default: int, most: int, key: str) -> dict[str, Any]:
        """A cursor page as WeCom pages: limit over the most falls back to the default; next_cursor "" at the end."""
        limit = int(body.get("limit") or default)
        limit = default if limit > most or limit <= 0 else limit
        if self.page_cap is not None:
            limit = min(limit, self.page_cap)
        cursor = str(body.get("cursor") or "")
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            raise Refusal(50100, "invalid cursor (分页查询的游标无效)") from None
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return {key: page, "next_cursor": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else ""}

    def _media_ok(self, media_id: Any, purpose: str) -> None:
        item = self.media.get(str(media_id))
        if item is None or item["purpose"] != purpose or self.now - item["created_at"] >= MEDIA_LIFETIME:
            raise Refusal(40007, f"invalid media_id: {media_id}")

    def _check_attachments(self, attachments: Any, purpose: str) -> list[dict[str, Any]]:
        if not isinstance(attachments, list):
            raise Refusal(40058, "attachments must be a list")
        if len(attachments) > 9:
            raise Refusal(40058, "invalid attachments size")
        for part in attachments:
            msgtype = part.get("msgtype")
            inner = part.get(msgtype)
            if msgtype not in ("image", "link", "miniprogram", "video", "file") or not isinstance(inner, dict):
                raise Refusal(40008, f"invalid msgtype {msgtype!r} (attachments中每个附件信息必须与msgtype一致)")
            if msgtype == "image" and purpose == "media":
                if "media_id" in inner:
                    self._media_ok(inner["media_id"], purpose)
                elif inner.get("pic_url") not in self.image_urls:
                    raise Refusal(40007, "image needs media_id or a pic_url from media/uploadimg")
            elif msgtype in ("image", "video", "file"):
                self._media_ok(inner.get("media_id"), purpose)
            elif msgtype == "link":
                if not inner.get("url") or (purpose == "media" and not inner.get("title")):
                    raise Refusal(41016, "link needs title and url")
                if purpose == "attachment":
                    self._media_ok(inner.get("media_id"), purpose)
            elif msgtype == "miniprogram":
                if not all(inner.get(key) for key in ("title", "appid", "page")):
                    raise Refusal(40058, "miniprogram needs title, appid, page and pic_media_id")
                self._media_ok(inner.get("pic_media_id"), "media")
        return attachments

    # -- the APIs ---------------------------------------------------------------------------------------------

    def _gettoken(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        if query.get("corpid") != self.corp_id:
            raise Refusal(40013, "invalid corpid")
        if query.get("corpsecret") != self.secret:
            raise Refusal(40001, "invalid credential (不合法的secret参数)")
        if self._current is None or self._tokens[self._current] <= self.now:  # 有效期内重复获取返回相同结果
            self._current = f"FAKE_TOKEN_{self._next()}_{hashlib.sha256(str(self.now).encode()).hexdigest()[:24]}"
            self._tokens[self._current] = self.now + self.token_ttl
        return {"access_token": self._current, "expires_in": int(self._tokens[self._current] - self.now)}

    def _add_msg_template(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        chat_type = body.get("chat_type") or "single"
        sender = body.get("sender")
        if chat_type not in ("single", "group"):
            raise Refusal(40058, f"invalid chat_type {chat_type!r}")
        text = (body.get("text") or {}).get("content")
        attachments = self._check_attachments(body.get("attachments") or [], "media")
        if not text and not attachments:
            raise Refusal(44004, "text and attachments are both empty (text和attachments不能同时为空)")
        if text and len(text.encode("utf-8")) > 4000:
            raise Refusal(45002, "content size out of limit (消息文本内容，最多4000个字节)")
        if chat_type == "single":
            ids = list(body.get("external_userid") or [])
            if not ids and not sender:
                raise Refusal(40058, "external_userid and sender are both empty (不可与sender同时为空)")
            if len(ids) > 10_000:
                raise Refusal(40058, "external_userid over 10000 (最多可传入1万个客户)")
        else:
            if not sender:
                raise Refusal(41009, "missing sender (当类型为发送给客户群时必填)")
            ids = list(body.get("chat_id_list") or [])
            if len(ids) > 2000:
                raise Refusal(40058, "chat_id_list over 2000 (最多可一次指定2000个客户群)")
        fail = [item for item in ids if item in self.not_friends]
        reach = {item: sender or "staff" for item in ids if item not in self.not_friends}
        if not reach:
            raise Refusal(41048, "no valid external userid (无可发送的客户)", fail_list=fail)
        msgid = f"msg{self._next():06d}FAKEmsgGCAAA"
        template = Template(msgid, chat_type, sender, int(self.now), text, attachments, reach, fail)
        for user in sorted(set(reach.values())):
            template.tasks[user] = {"status": 0, "send_time": None}
        if chat_type == "single":
            template.results = {item: {"status": 0, "send_time": None} for item in reach}
        self.templates[msgid] = template
        return {"fail_list": fail, "msgid": msgid}

    def _template(self, body: dict[str, Any]) -> Template:
        template = self.templates.get(str(body.get("msgid")))
        if template is None:
            raise Refusal(41047, "invalid msgid (无效的企业群发消息id)")
        if self.now - template.create_time < self.dispatch_delay:
            raise Refusal(41063, "msg is dispatching, retry later (群发消息正在被派发中，请稍后再试)")
        return template

    def _get_groupmsg_list_v2(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        chat_type = body.get("chat_type") or "single"
        start, end = body.get("start_time"), body.get("end_time")
        if not isinstance(start, int) or not isinstance(end, int):
            raise Refusal(40058, "start_time and end_time are required")
        if end - start > 31 * DAY:  # the docs name no errcode for this
            raise Refusal(40058, "invalid time range (群发任务记录的起止时间间隔不能超过1个月)")
        filter_type = int(body.get("filter_type", 2))
        creator = body.get("creator")
        found = []
        for item in self.templates.values():
            if item.chat_type != chat_type or not start <= item.create_time <= end:
                continue
            if filter_type == 1 or creator:  # API tasks are 企业发表 (create_type 0) and carry no creator
                continue
            entry: dict[str, Any] = {"msgid": item.msgid, "create_time": item.create_time, "create_type": 0}
            if item.text is not None:
                entry["text"] = {"content": item.text}
            if item.attachments:
                entry["attachments"] = item.attachments
            found.append(entry)
        return self._page(found, body, default=50, most=100, key="group_msg_list")

    def _get_groupmsg_task(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        template = self._template(body)
        tasks = [{"userid": user, "status": task["status"], **({"send_time": task["send_time"]} if task["status"] == 2 else {})} for user, task in sorted(template.tasks.items())]
        return self._page(tasks, body, default=500, most=1000, key="task_list")

    def _get_groupmsg_send_result(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        template = self._template(body)
        userid = body.get("userid")
        if not userid:
            raise Refusal(41009, "missing userid")
        rows = []
        id_key = "external_userid" if template.chat_type == "single" else "chat_id"
        for recipient, owner in template.recipients.items():
            result = template.results.get(recipient)
            if owner != userid or result is None:  # a group task lists only the groups sent to
                continue
            row = {id_key: recipient, "userid": owner, "status": result["status"]}
            if result["status"] == 1:
                row["send_time"] = result["send_time"]
            rows.append(row)
        return self._page(rows, body, default=500, most=1000, key="send_list")

    def _remind_groupmsg_send(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        template = self._template(body)
        recent = [at for at in template.reminders if self.now - at < DAY]
        if len(recent) >= REMINDERS_PER_DAY:  # 24小时内每个群发最多触发三次提醒; the docs name no errcode
            raise Refusal(45009, "api freq out of limit (24小时内每个群发最多触发三次提醒)")
        template.reminders.append(self.now)
        return {}

    def _add_moment_task(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        text = (body.get("text") or {}).get("content")
        attachments = self._check_attachments(body.get("attachments") or [], "attachment")
        if not text and not attachments:
            raise Refusal(40058, "invalid msg: text and attachments are both empty")
        if text and len(text) > 2000:  # the docs give the errmsg, not the errcode
            raise Refusal(40058, "invalid text size")
        kinds = {part["msgtype"] for part in attachments}
        if len(kinds) > 1 or kinds - {"image", "video", "link"}:
            raise Refusal(40058, "invalid attachments msgtype")
        if kinds & {"video", "link"} and len(attachments) > 1:
            raise Refusal(40058, "invalid attachments size")
        recent = [at for at in self.moment_times if self.now - at < 60]
        if len(recent) >= MOMENTS_PER_MINUTE:
            raise Refusal(45009, "api freq out of limit (企业每分钟创建朋友圈的频率：10条/分钟)")
        self.moment_times.append(self.now)
        visible = body.get("visible_range") or {}
        users = list((visible.get("sender_list") or {}).get("user_list") or sorted(self.staff or ()))
        tags = list((visible.get("external_contact_list") or {}).get("tag_list") or [])
        invalid = [user for user in users if self.staff is not None and user not in self.staff]
        number = self._next()
        job = Job(f"job{number:06d}FAKE", f"mom{number:06d}FAKE", self.moment_polls, invalid, [tag for tag in tags if tag in self.invalid_tags])
        self.jobs[job.jobid] = job
        self.moments[job.moment_id] = Moment(job.moment_id, int(self.now), text, attachments, {user: 0 for user in users if user not in invalid})
        return {"jobid": job.jobid}

    def _get_moment_task_result(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        job = self.jobs.get(query.get("jobid", ""))
        if job is None:
            raise Refusal(40088, "jobid not found (jobid不存在)")
        job.answered += 1
        if job.answered <= job.polls:  # 1 开始创建任务, then 2 正在创建任务中
            return {"status": 1 if job.answered == 1 else 2, "type": "add_moment_task"}
        result = {
            "errcode": 0,
            "errmsg": "ok",
            "moment_id": job.moment_id,
            "invalid_sender_list": {"user_list": job.invalid_senders, "department_list": []},
            "invalid_external_contact_list": {"tag_list": job.invalid_tags},
        }
        return {"status": 3, "type": "add_moment_task", "result": result}

    def _get_moment_task(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        moment = self.moments.get(str(body.get("moment_id")))
        if moment is None:
            raise Refusal(41060, "invalid moment_id (不合法的moment_id参数)")
        tasks = [{"userid": user, "publish_status": status} for user, status in sorted(moment.publish.items())]
        return self._page(tasks, body, default=500, most=1000, key="task_list")

    def _send_welcome_msg(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        code = self.welcome_codes.get(str(body.get("welcome_code")))
        if code is None:
            raise Refusal(41050, "invalid welcome_code (无效的欢迎语code)")
        if code["used"]:
            raise Refusal(41051, "externaluser has started chatting")
        if self.now - code["issued"] > WELCOME_WINDOW:
            raise Refusal(41050, "welcome_code expired (须在添加好友后20秒内使用)")
        text = (body.get("text") or {}).get("content")
        attachments = self._check_attachments(body.get("attachments") or [], "media")
        if not text and not attachments:
            raise Refusal(44004, "text and attachments are both empty")
        code["used"] = True
        self.welcomes.append({"welcome_code": body["welcome_code"], "userid": code["userid"], "external_userid": code["external_userid"], "text": text, "attachments": attachments, "at": self.now})
        return {}

    def _uploaded(self, body: Any) -> tuple[str, dict[str, Any]]:
        files = body.get("files", {}) if isinstance(body, dict) else {}
        upload = files.get("media")
        if upload is None or not upload.get("filename"):
            raise Refusal(44001, "empty media data (多媒体文件为空): send the file as form field 'media' with a filename")
        return upload["sha256"], upload

    def _store_media(self, purpose: str, kind: str, body: Any) -> str:
        digest, upload = self._uploaded(body)
        if upload["size"] <= 5:
            raise Refusal(40006, "invalid file size (所有文件size必须大于5个字节)")
        if upload["size"] > UPLOAD_LIMITS[kind]:
            raise Refusal(SIZE_ERRCODES[kind], f"invalid {kind} size (上传的媒体文件限制)")
        media_id = f"3{self._next():05d}FAKE{digest[:20]}"
        self.media[media_id] = {"purpose": purpose, "type": kind, "sha256": digest, "created_at": self.now}
        return media_id

    def _media_upload(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        kind = query.get("type", "")
        if kind not in UPLOAD_LIMITS:
            raise Refusal(40005, f"invalid type {kind!r} (不合法的type参数)")
        return {"type": kind, "media_id": self._store_media("media", kind, body), "created_at": str(int(self.now))}

    def _upload_attachment(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        kind = query.get("media_type", "")
        if kind not in ("image", "video", "file") or query.get("attachment_type") not in ("1", "2"):
            raise Refusal(40005, "invalid media_type or attachment_type")
        return {"type": kind, "media_id": self._store_media("attachment", kind, body), "created_at": int(self.now)}

    def _uploadimg(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        digest, upload = self._uploaded(body)
        if upload["size"] > 2 * 1024 * 1024:
            raise Refusal(40009, "invalid image size (图片文件大小应在 5B ~ 2MB 之间)")
        url = f"https://wework.qpic.cn/wwpic/fake/{self._next()}{digest[:16]}/0"
        self.image_urls[url] = digest
        return {"url": url}

    def _externalcontact_get(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        contact = self.contacts.get(query.get("external_userid", ""))
        if contact is None:
            raise Refusal(84061, "not external contact (不存在外部联系人的关系)")
        page = self._page(contact["follow_user"], query, default=500, most=500, key="follow_user")
        return {"external_contact": contact["external_contact"], **page}


class _Unreadable:
    """A POST body that is not JSON."""


def _api(path: str) -> str:
    return path.strip("/").removeprefix("cgi-bin/")


def _body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields: dict[str, str] = {}
        files: dict[str, dict[str, Any]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[str(name)] = {"filename": filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content_type": part.get_content_type()}
            else:
                fields[str(name)] = data.decode("utf-8", "replace")
        return {"fields": fields, "files": files}
    try:
        return json.loads(raw)
    except ValueError:
        return _Unreadable()


_ERRMSGS = {
    -1: "system busy",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    40014: "invalid access_token",
    42001: "access_token expired",
    48002: "api forbidden",
    60011: "no privilege to access/modify contact/party/agent",
    60020: "not allow to access from your ip",
}

_ROUTES = {
    "gettoken": WecomFake._gettoken,
    "externalcontact/add_msg_template": WecomFake._add_msg_template,
    "externalcontact/get_groupmsg_list_v2": WecomFake._get_groupmsg_list_v2,
    "externalcontact/get_groupmsg_task": WecomFake._get_groupmsg_task,
    "externalcontact/get_groupmsg_send_result": WecomFake._get_groupmsg_send_result,
    "externalcontact/remind_groupmsg_send": WecomFake._remind_groupmsg_send,
    "externalcontact/add_moment_task": WecomFake._add_moment_task,
    "externalcontact/get_moment_task_result": WecomFake._get_moment_task_result,
    "externalcontact/get_moment_task": WecomFake._get_moment_task,
    "externalcontact/send_welcome_msg": WecomFake._send_welcome_msg,
    "externalcontact/get": WecomFake._externalcontact_get,
    "media/upload": WecomFake._media_upload,
    "media/upload_attachment": WecomFake._upload_attachment,
    "media/uploadimg": WecomFake._uploadimg,
}
