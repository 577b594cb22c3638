"""WeCom's server API (企业微信 服务端API) as the `wecom` output calls it: the token, mass-send and Moments tasks,
their read-back, welcomes, uploads and customer details.

Every call goes through `_request`, which owns the rules that decide exactly-once: a token WeCom rejects
(40014, 42001) is fetched again once and the call repeated; busy answers (45009, 45033, -1, and 41063 while a new
task is still being dispatched) back off 1, 2, 4 … seconds on the injected sleep; a creating call whose request
went out but whose answer never came raises `WecomMaybeSent` and is never repeated here.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from siyu_cli.errors import WecomError, WecomMaybeSent, WecomSetupError, WecomTransient

if TYPE_CHECKING:
    import httpx
    import sqlite_utils

    from siyu_cli.render._media import Media

DEFAULT_API = "https://qyapi.weixin.qq.com"
MAX_EXTERNAL = 10_000  # add_msg_template: 最多可传入1万个客户
MAX_CHATS = 2_000  # add_msg_template: chat_id_list 最多可一次指定2000个客户群
MAX_ATTACHMENTS = 9  # mass sends, welcomes and Moments: 最多支持9个附件
TOKEN_MARGIN = 300.0  # refresh a token this many seconds before WeCom would expire it
MEDIA_LIFETIME = 3 * 86400.0  # media/upload and media/upload_attachment ids last 3 days
MEDIA_MARGIN = 86400.0  # upload again when less than a day is left: staff confirm a task hours after it is created
LIST_SPAN = timedelta(days=30)  # get_groupmsg_list_v2: 群发任务记录的起止时间间隔不能超过1个月
LIST_LIMIT = 100  # get_groupmsg_list_v2's largest page (a larger limit falls back to 50)
PAGE_LIMIT = 1000  # get_groupmsg_task, get_groupmsg_send_result, get_moment_task: largest page
RATE_BLOCK = 60.0  # 45009: 频率拦截时长一般与调用的限制时长相同 (most limits are per minute)
UPLOAD_LIMITS = {"image": 10 * 1024 * 1024, "video": 10 * 1024 * 1024, "file": 20 * 1024 * 1024, "voice": 2 * 1024 * 1024}
UPLOADIMG_LIMIT = 2 * 1024 * 1024  # media/uploadimg: JPG/PNG up to 2 MB, a permanent URL

TOKEN_ERRCODES = frozenset({40014, 42001})  # 不合法的access_token, access_token已过期; 40001 is a wrong secret
BUSY_ERRCODES = frozenset({-1, 45009, 45033})
DISPATCHING = 41063  # 群发消息正在被派发中，请稍后再试: reading a task right after creating it
NOTHING_TO_SEND = 41048  # 无可发送的客户
WELCOME_ALREADY_SENT = 41051  # another app's welcome came first, or the chat has started
STALE_MEDIA = 40007  # 不合法的media_id (expired after 3 days)
CREATING = frozenset({"externalcontact/add_msg_template", "externalcontact/add_moment_task", "externalcontact/send_welcome_msg", "externalcontact/remind_groupmsg_send"})

_SECRET_CONSOLE = "管理后台 应用管理 → the app → Secret (or 客户与上下游 → 客户联系 → API → Secret)"
HINTS: dict[int, str] = {
    40001: f"the secret is wrong for this corp: copy it again from {_SECRET_CONSOLE} into the variable the wecom output's secret_env names (SIYU_WECOM_SECRET unless it names another)",
    40091: f"the secret belongs to another corp: copy this corp's from {_SECRET_CONSOLE} into the variable the wecom output's secret_env names (SIYU_WECOM_SECRET unless it names another)",
    40013: "the corp id is wrong: copy 企业ID from 管理后台 我的企业 → 企业信息 into the variable corp_id_env names",
    48002: "this app may not call 客户联系 APIs: add it to 可调用应用 in 管理后台 客户与上下游 → 客户联系 → API (or use the 客户联系 Secret)",
    60011: "the staff member or customer is outside the app's 可见范围: add them in 管理后台 应用管理 → the app → 可见范围",
    60020: "this machine's IP is not trusted: add it in 管理后台 应用管理 → the app → 企业可信IP",
    50003: "the app is disabled: enable it in 管理后台 应用管理",
    40003: "no such staff member: check personas[].wecom_userid against the member's 账号 in 通讯录",
    40096: "not an external_userid: a contact's id in a WeCom corp is its 外部联系人ID (import customers with the wecom-customers preset)",
    84061: "the customer is not this staff member's external contact (不存在外部联系人的关系): the member deleted them, or never added them",
    41050: "the welcome code is invalid or older than 20 seconds: a welcome goes out within 20 s of the friend_added callback, once",
    40007: "WeCom no longer knows a media id (they last 3 days): the next try uploads the file again",
    45002: "the text is over WeCom's limit (mass sends and welcomes: 4,000 bytes; Moments: 2,000 characters)",
    41047: "WeCom knows no mass send with this msgid",
    40088: "WeCom knows no Moments job with this jobid (a jobid lasts 24 hours)",
}
_REDACT = re.compile(r"(access_token|corpsecret)=[^&\s]+")


class _Busy(Exception):
    """One try that may succeed if repeated; carries what to raise when the tries run out."""

    def __init__(self, error: WecomError) -> None:
        super().__init__(error.message)
        self.error = error


def app_key(corp_id: str, secret: str) -> str:
    """Which app a cached token belongs to, without keeping the secret (WeCom: each app's token is its own)."""
    return hashlib.sha256(f"{corp_id}\0{secret}".encode()).hexdigest()[:16]


def _redacted(text: str) -> str:
    return _REDACT.sub(r"\1=…", text)


def _short(errmsg: str) -> str:
    """WeCom's errmsg without its trailing ", hint: [...], from ip: ..., more info at ..." (kept in `errmsg`)."""
    return errmsg.split(", hint:")[0].strip()


def api_base(value: str) -> str:
    """SIYU_WECOM_API as the base URL calls go to; a value that can never work (no http(s) scheme, spaces around
    it, no host) is a setup error at the first call, not a network blip retried until max_late runs out."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    wrong = (
        "has spaces around it" if value != value.strip()
        else "is not an http:// or https:// URL" if parts.scheme not in ("http", "https")
        else "names no host" if not parts.hostname
        else "has a query or fragment" if parts.query or parts.fragment
        else "ends in /cgi-bin, which siyu adds to every call itself" if parts.path.rstrip("/").lower().endswith("/cgi-bin")
        else ""
    )  # fmt: skip
    if wrong:
        raise WecomSetupError(
            f"SIYU_WECOM_API={value!r} {wrong}, so no call can reach WeCom",
            api="gettoken",
            hint=f"set SIYU_WECOM_API to WeCom's base URL, scheme and host without /cgi-bin, e.g. {DEFAULT_API}; or unset it to use that one",
        )
    return value.rstrip("/")


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no timezone; WeCom counts seconds since the epoch, so pass an aware datetime")
    return moment.timestamp()


class WecomClient:
    """One corp app's client. Not thread-safe: the runner and the server each hold their own.

    The store connection caches the token and media ids; callers serialize access to it, as to the store itself.
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        db: sqlite_utils.Database,
        base_url: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.corp_id = corp_id
        self.app = app_key(corp_id, secret)
        self._secret = secret
        self.db = db
        self.base_url = api_base(base_url or os.environ.get("SIYU_WECOM_API") or DEFAULT_API)
        self._clock = clock
        self._sleep = sleep
        self.attempts = attempts
        self._http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": "siyu"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WecomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the token --------------------------------------------------------------------------------------------

    def token(self, force: bool = False) -> str:
        """The app's access token from the store, fetched when missing or within 5 minutes of expiry.

        The fetch happens once for every process on the store: under a lock file beside it the cache is read again,
        so processes that waited for the lock take the token the first one wrote. `force`: the cached token was
        rejected; fetch another unless a process already replaced it."""
        row = self._cached_token()
        if row is not None and not force and self._fresh(row):
            return row[0]
        return self._renew(stale=row[0] if force and row is not None else None)

    def _cached_token(self) -> tuple[str, float, float] | None:
        row = self.db.execute("SELECT token, expires_at, fetched_at FROM wecom_tokens WHERE corp_id = ? AND app = ?", [self.corp_id, self.app]).fetchone()
        return (row[0], float(row[1]), float(row[2])) if row else None

    def _fresh(self, row: tuple[str, float, float]) -> bool:
        """Good for a call: over 5 minutes left, or fetched within those 5 minutes already (WeCom may hand back the
        same token until it expires; asking again on every call would only meet gettoken's frequency limit)."""
        _, expires_at, fetched_at = row
        left = expires_at - self._clock()
        return left > TOKEN_MARGIN or (left > 0 and fetched_at >= expires_at - TOKEN_MARGIN)

    def _renew(self, stale: str | None) -> str:
        """One fetch for every process on the store, serialized by a lock file beside it, not by the store's write
        lock: a gettoken that hangs must not hold up the store (siyu serve answers WeCom within 5 s from it)."""
        import contextlib
        import fcntl

        from siyu_cli.store import immediate

        path = self._lock_path()
        with contextlib.ExitStack() as stack:
            if path is not None:
                handle = stack.enter_context(open(path, "a+b"))  # noqa: SIM115 (held for the with block)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            row = self._cached_token()
            if row is not None and row[0] != stale and self._fresh(row):
                return row[0]  # another process fetched it while this one waited
            token, expires_at, now = self._fetch_token()
            if self.db.conn.in_transaction:  # the caller holds the store's write lock already
                self._store_token(token, expires_at, now)
            else:
                with immediate(self.db):
                    self._store_token(token, expires_at, now)
            return token

    def _lock_path(self) -> str | None:
        files = [row[2] for row in self.db.execute("PRAGMA database_list") if row[1] == "main" and row[2]]
        return f"{files[0]}.wecom-token.lock" if files else None

    def _fetch_token(self) -> tuple[str, float, float]:
        answer = self._request("gettoken", method="GET", params={"corpid": self.corp_id, "corpsecret": self._secret}, auth=False)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise WecomError("WeCom gettoken answered without an access_token", api="gettoken", hint="check SIYU_WECOM_API points at WeCom's API")
        now = self._clock()
        return token, now + float(answer.get("expires_in") or 7200), now

    def _store_token(self, token: str, expires_at: float, now: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO wecom_tokens (corp_id, app, token, expires_at, fetched_at) VALUES (?, ?, ?, ?, ?)",
            [self.corp_id, self.app, token, expires_at, now],
        )

    # -- one call ---------------------------------------------------------------------------------------------

    def _request(
        self,
        api: str,
        *,
        method: Literal["GET", "POST"] = "POST",
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        """WeCom's answer to one call (errcode 0), after the token refresh and the back-off the module describes."""
        attempt = 1
        refreshed = False
        while True:
            query = dict(params or {})
            if auth:
                query["access_token"] = self.token()
            try:
                answer = self._once(api, method, query, body, files)
            except _Busy as busy:
                if attempt >= self.attempts:
                    if busy.error.retry_after is None:
                        busy.error.retry_after = float(2**attempt)  # the next step of the back-off
                    raise busy.error from None
                self._sleep(float(2 ** (attempt - 1)))
                attempt += 1
                continue
            errcode = int(answer.get("errcode") or 0)
            if errcode in TOKEN_ERRCODES and auth and not refreshed:
                refreshed = True
                self._renew(stale=query["access_token"])
                continue
            if errcode != 0:
                raise self._refused(api, errcode, str(answer.get("errmsg") or ""))
            return answer

    def _once(self, api: str, method: str, query: dict[str, Any], body: dict[str, Any] | None, files: dict[str, tuple[str, bytes, str]] | None) -> dict[str, Any]:
        """One HTTP exchange, read as WeCom's JSON; raises `_Busy` for what a repeat may cure."""
        import httpx

        creating = api in CREATING
        try:
            if files is not None:
                response = self._http.request(method, f"{self.base_url}/cgi-bin/{api}", params=query, files=files)
            else:
                response = self._http.request(method, f"{self.base_url}/cgi-bin/{api}", params=query, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing left this machine
            raise _Busy(
                WecomTransient(f"WeCom {api}: cannot reach {self.base_url}: {_redacted(str(exc)) or type(exc).__name__}", api=api, retry_after=RATE_BLOCK, hint="check the network, or SIYU_WECOM_API")
            ) from None
        except httpx.TransportError as exc:  # the request went out; its answer did not come back
            what = _redacted(str(exc)) or type(exc).__name__
            if creating:
                raise WecomMaybeSent(
                    f"WeCom {api}: no answer ({what}); WeCom may have created it",
                    api=api,
                    hint="recorded unknown: the next pass looks for it (get_groupmsg_list_v2) instead of creating it again",
                ) from None
            raise _Busy(WecomTransient(f"WeCom {api}: no answer ({what})", api=api, retry_after=RATE_BLOCK)) from None
        if response.status_code != 200:
            raise self._bad_status(api, response.status_code, creating)
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if creating:
                raise WecomMaybeSent(f"WeCom {api}: the answer is not WeCom's JSON; WeCom may have created it", api=api, hint="check SIYU_WECOM_API points at WeCom's API")
            raise _Busy(WecomTransient(f"WeCom {api}: the answer is not WeCom's JSON", api=api, hint="check SIYU_WECOM_API points at WeCom's API"))
        errcode = int(answer.get("errcode") or 0)
        if errcode in BUSY_ERRCODES or (errcode == DISPATCHING and not creating):
            errmsg = str(answer.get("errmsg") or "")
            raise _Busy(
                WecomTransient(
                    f"WeCom {api}: errcode {errcode} ({_short(errmsg)})",
                    api=api,
                    errcode=errcode,
                    errmsg=errmsg,
                    retry_after=RATE_BLOCK if errcode == 45009 else None,
                    hint="WeCom is busy or rate-limits this app; the next pass tries again",
                )
            )
        return answer

    def _bad_status(self, api: str, status: int, creating: bool) -> Exception:
        """WeCom answers every call with HTTP 200; anything else came from a proxy or a wrong SIYU_WECOM_API."""
        if status >= 500 and creating:  # a gateway may have passed the request on before failing
            return WecomMaybeSent(f"WeCom {api}: HTTP {status}; WeCom may have created it", api=api, hint="recorded unknown: the next pass looks for it")
        if status >= 500 or status == 429:
            return _Busy(WecomTransient(f"WeCom {api}: HTTP {status}", api=api, retry_after=RATE_BLOCK))
        # A 404 or 403 is no answer about this task: a wrong base path (with a cached token the first call is not
        # gettoken) or a proxy, and every call would meet it alike: a setup error, the output stops, drafts wait.
        return WecomSetupError(
            f"WeCom {api}: HTTP {status} from {self.base_url}",
            api=api,
            hint=f"SIYU_WECOM_API is the base URL, the host only, without /cgi-bin: e.g. export SIYU_WECOM_API='{DEFAULT_API}'",
        )

    def _refused(self, api: str, errcode: int, errmsg: str) -> WecomError:
        return WecomError(f"WeCom {api}: errcode {errcode} ({_short(errmsg)})", api=api, errcode=errcode, errmsg=errmsg, hint=HINTS.get(errcode, ""))

    def _pages(self, api: str, body: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged list (`next_cursor` empty on the last page)."""
        cursor = ""
        while True:
            answer = self._request(api, body={**body, "cursor": cursor} if cursor else body)
            yield from answer.get(key) or []
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return

    # -- mass sends (企业群发) -----------------------------------------------------------------------------------

    def add_msg_template(
        self,
        *,
        chat_type: Literal["single", "group"],
        sender: str,
        external_userids: Sequence[str] = (),
        chat_ids: Sequence[str] = (),
        text: str,
        attachments: Sequence[Media] = (),
    ) -> tuple[str, list[str]]:
        """Create a mass-send task for `sender` to confirm (创建企业群发): (msgid, fail_list).

        fail_list holds the ids WeCom will not send to (not the sender's customer, invalid). msgid "" with every
        id failed: WeCom created nothing because no recipient could receive it (41048)."""
        if chat_type not in ("single", "group"):
            raise ValueError(f"chat_type is single or group, not {chat_type!r}")
        if (chat_type == "single" and chat_ids) or (chat_type == "group" and external_userids):
            raise ValueError("a single mass send takes external_userids, a group one chat_ids")
        recipients = list(external_userids if chat_type == "single" else chat_ids)
        limit = MAX_EXTERNAL if chat_type == "single" else MAX_CHATS
        if len(recipients) > limit:
            raise ValueError(f"{len(recipients)} recipients; WeCom takes at most {limit} per task: split it")
        if not recipients:  # WeCom would hand the sender every customer (or let them pick groups)
            raise ValueError("a mass send needs its recipients: without them WeCom sends to all of the sender's customers")
        body: dict[str, Any] = {"chat_type": chat_type, "sender": sender, "allow_select": False}
        body["external_userid" if chat_type == "single" else "chat_id_list"] = recipients
        if text:
            body["text"] = {"content": text}
        api = "externalcontact/add_msg_template"
        parts = self.attachments(attachments, api=api)
        if parts:
            body["attachments"] = parts
        try:
            answer = self._with_media(api, body, parts)
        except WecomError as exc:
            if exc.errcode == NOTHING_TO_SEND:
                return "", recipients
            raise
        msgid = answer.get("msgid")
        if not msgid:
            raise WecomMaybeSent(f"WeCom {api}: answered ok without a msgid", api=api, hint="recorded unknown: the next pass looks for it")
        return str(msgid), [str(item) for item in answer.get("fail_list") or []]

    def groupmsg_list(self, *, chat_type: Literal["single", "group"], start: datetime, end: datetime, creator: str | None = None, filter_type: int = 2) -> Iterator[dict[str, Any]]:
        """Mass sends created between `start` and `end` (get_groupmsg_list_v2), in windows of at most 30 days, each
        msgid once. WeCom does not return `creator` for tasks made through the API, so find a lost task by its
        create_time and content, not by creator."""
        first, last = math.floor(_epoch(start)), math.ceil(_epoch(end))
        span = int(LIST_SPAN.total_seconds())
        seen: set[str] = set()
        window = first
        while True:
            upto = min(window + span, last)
            body: dict[str, Any] = {"chat_type": chat_type, "start_time": window, "end_time": upto, "filter_type": filter_type, "limit": LIST_LIMIT}
            if creator:
                body["creator"] = creator
            for item in self._pages("externalcontact/get_groupmsg_list_v2", body, "group_msg_list"):
                if item.get("msgid") not in seen:
                    seen.add(str(item.get("msgid")))
                    yield item
            if upto >= last:
                return
            window = upto

    def groupmsg_task(self, msgid: str) -> Iterator[dict[str, Any]]:
        """Each staff member's part of a mass send (get_groupmsg_task): userid, status 0 未发送 / 2 已发送, send_time."""
        return self._pages("externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": PAGE_LIMIT}, "task_list")

    def groupmsg_send_result(self, msgid: str, userid: str) -> Iterator[dict[str, Any]]:
        """Per recipient (get_groupmsg_send_result): external_userid or chat_id, status 0 未发送, 1 已发送, 2 not a
        friend, 3 refused because the customer already received their quota; send_time when 1. A group task lists
        only the groups sent to."""
        return self._pages("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": userid, "limit": PAGE_LIMIT}, "send_list")

    def remind_groupmsg_send(self, msgid: str) -> None:
        """Notify the staff again (提醒成员群发); WeCom allows 3 reminders per mass send in 24 hours."""
        self._request("externalcontact/remind_groupmsg_send", body={"msgid": msgid})

    # -- Moments (客户朋友圈) ------------------------------------------------------------------------------------

    def add_moment_task(self, *, text: str, attachments: Sequence[Media] = (), visible_range: dict[str, Any]) -> str:
        """Create a Moments task (创建发表任务): the jobid; creation finishes asynchronously (moment_task_result)."""
        api = "externalcontact/add_moment_task"
        body: dict[str, Any] = {"visible_range": visible_range}
        if text:
            body["text"] = {"content": text}
        parts = self.attachments(attachments, api=api, moments=True)
        if parts:
            body["attachments"] = parts
        jobid = self._with_media(api, body, parts).get("jobid")
        if not jobid:
            raise WecomMaybeSent(f"WeCom {api}: answered ok without a jobid", api=api, hint="recorded unknown: check the Moments tasks in the admin console")
        return str(jobid)

    def moment_task_result(self, jobid: str) -> dict[str, Any]:
        """The job's state (get_moment_task_result): status 1 started, 2 creating, 3 done; when 3, `result` holds its
        own errcode, the moment_id and invalid_sender_list / invalid_external_contact_list."""
        answer = self._request("externalcontact/get_moment_task_result", method="GET", params={"jobid": jobid})
        return {key: value for key, value in answer.items() if key not in ("errcode", "errmsg")}

    def moment_task(self, moment_id: str) -> Iterator[dict[str, Any]]:
        """Each staff member's part of a company Moments post (get_moment_task): userid, publish_status 0 / 1."""
        return self._pages("externalcontact/get_moment_task", {"moment_id": moment_id, "limit": PAGE_LIMIT}, "task_list")

    # -- welcomes, customers ----------------------------------------------------------------------------------

    def send_welcome_msg(self, welcome_code: str, text: str, attachments: Sequence[Media] = ()) -> bool:
        """Welcome a new customer with the callback's WelcomeCode (20 s, once). False: 41051, a welcome already went
        (another app was first, or the chat had started): not a failure."""
        api = "externalcontact/send_welcome_msg"
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        parts = self.attachments(attachments, api=api)
        if parts:
            body["attachments"] = parts
        try:
            self._with_media(api, body, parts)
        except WecomError as exc:
            if exc.errcode == WELCOME_ALREADY_SENT:
                return False
            raise
        return True

    def external_contact(self, external_userid: str) -> dict[str, Any]:
        """A customer's details (externalcontact/get): `external_contact` (name, type …) and every `follow_user`
        (the staff who added them, with remark, createtime, state)."""
        api = "externalcontact/get"
        contact: dict[str, Any] = {}
        follow: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
            answer = self._request(api, method="GET", params=params)
            contact = answer.get("external_contact") or contact
            follow.extend(answer.get("follow_user") or [])
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return {"external_contact": contact, "follow_user": follow}

    # -- media ------------------------------------------------------------------------------------------------

    def upload_media(self, path: str | os.PathLike[str], kind: str) -> str:
        """A temporary media id (上传临时素材, 3 days) for a file, cached in the store by content hash."""
        return self.media_id("media", kind, str(path))

    def upload_attachment(self, path: str | os.PathLike[str], kind: str) -> str:
        """A Moments attachment id (上传附件资源, attachment_type 1, 3 days), cached like upload_media."""
        return self.media_id("attachment", kind, str(path))

    def media_id(self, purpose: Literal["media", "attachment", "image"], kind: str, location: str) -> str:
        """The id WeCom gave for this content (a file or an http(s) URL), uploading when none is cached with a day
        left. purpose image: media/uploadimg's permanent URL (a link card's picurl)."""
        api = {"media": "media/upload", "attachment": "media/upload_attachment", "image": "media/uploadimg"}[purpose]
        data, name = self._content(location, kind, api=api)
        digest = hashlib.sha256(data).hexdigest()
        row = self.db.execute(
            "SELECT media_id, expires_at FROM wecom_media WHERE corp_id = ? AND purpose = ? AND kind = ? AND sha256 = ?",
            [self.corp_id, purpose, kind, digest],
        ).fetchone()
        now = self._clock()
        if row is not None and (row[1] is None or float(row[1]) - now > MEDIA_MARGIN):
            return str(row[0])
        upload = (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
        if purpose == "image":
            if len(data) > UPLOADIMG_LIMIT:
                raise WecomError(f"WeCom media/uploadimg: {location} is {len(data) / 1048576:.1f} MB; a link cover takes at most 2 MB", api="media/uploadimg", hint="shrink the cover (JPG or PNG)")
            value, expires = str(self._request("media/uploadimg", files={"media": upload}).get("url") or ""), None
        elif purpose == "attachment":
            answer = self._request("media/upload_attachment", params={"media_type": kind, "attachment_type": 1}, files={"media": upload})
            value, expires = str(answer.get("media_id") or ""), now + MEDIA_LIFETIME
        else:
            value, expires = str(self._request("media/upload", params={"type": kind}, files={"media": upload}).get("media_id") or ""), now + MEDIA_LIFETIME
        if not value:
            raise WecomError(f"WeCom upload of {location}: answered ok without a media id", api="media/upload", hint="check SIYU_WECOM_API points at WeCom's API")
        self.db.execute(
            "INSERT OR REPLACE INTO wecom_media (corp_id, purpose, kind, sha256, media_id, uploaded_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [self.corp_id, purpose, kind, digest, value, now, expires],
        )
        return value

    def _content(self, location: str, kind: str, *, api: str) -> tuple[bytes, str]:
        """The bytes to upload and a file name for them: a file, or a URL fetched (WeCom takes only its own media)."""
        limit = UPLOAD_LIMITS.get(kind, UPLOAD_LIMITS["file"])
        if location.lower().startswith(("http://", "https://")):
            import httpx

            try:
                response = self._http.get(location, follow_redirects=True)
            except httpx.HTTPError as exc:
                raise WecomTransient(f"cannot fetch {location} to upload it to WeCom: {type(exc).__name__}", api=api, retry_after=RATE_BLOCK) from None
            if response.status_code != 200:
                raise WecomError(f"cannot fetch {location} to upload it to WeCom: HTTP {response.status_code}", api=api, hint="fix the URL in the playbook, or use a file")
            data, name = response.content, Path(response.url.path).name or f"{kind}.bin"
        else:
            try:
                data = Path(location).read_bytes()
            except OSError as exc:
                raise WecomError(f"cannot read {location} to upload it to WeCom: {exc.strerror or exc}", api=api, hint="put the file back, then `siyu retry` the draft") from None
            name = Path(location).name
        if len(data) > limit:
            raise WecomError(f"{location} is {len(data) / 1048576:.1f} MB; WeCom takes a {kind} of at most {limit // 1048576} MB", api=api, hint="shrink the file (`siyu check` names such files)")
        if len(data) <= 5:  # 上传的媒体文件限制: 所有文件size必须大于5个字节
            raise WecomError(f"{location} is {len(data)} bytes; WeCom takes files over 5 bytes", api=api, hint="replace the file")
        return data, name

    def _with_media(self, api: str, body: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """A creating call whose attachments name media ids: on 40007 forget those ids, so the next try uploads."""
        try:
            return self._request(api, body=body)
        except WecomError as exc:
            if exc.errcode == STALE_MEDIA and parts:
                used = [value for part in parts for value in _media_ids(part)]
                self.db.execute(f"DELETE FROM wecom_media WHERE corp_id = ? AND media_id IN ({', '.join('?' * len(used))})", [self.corp_id, *used])
            raise

    def attachments(self, media: Sequence[Media], *, api: str, moments: bool = False) -> list[dict[str, Any]]:
        """siyu's attachments as WeCom's: mass sends and welcomes take image / video (media_id), link (picurl) and
        miniprogram (pic_media_id); Moments take up to 9 images, or one video, or one link (media_id of its cover),
        uploaded as Moments attachments. Content WeCom cannot take is refused here, before anything is sent."""
        if len(media) > MAX_ATTACHMENTS:
            raise WecomError(f"WeCom {api}: {len(media)} attachments; WeCom takes at most {MAX_ATTACHMENTS}", api=api, hint="send fewer attachments in this beat")
        purpose: Literal["media", "attachment"] = "attachment" if moments else "media"
        if moments:
            kinds = {item.kind for item in media}
            if kinds - {"image", "video", "link"} or len(kinds) > 1 or (kinds & {"video", "link"} and len(media) > 1):
                raise WecomError(
                    f"WeCom {api}: Moments take up to 9 images, or one video, or one link ({', '.join(sorted(item.kind for item in media))} given)",
                    api=api,
                    hint="give the Moments beat one kind of attachment; mini-program cards cannot be posted to Moments",
                )
        parts: list[dict[str, Any]] = []
        for item in media:
            where = item.path or item.source
            if item.kind in ("image", "video"):
                parts.append({"msgtype": item.kind, item.kind: {"media_id": self.media_id(purpose, item.kind, where)}})
                continue
            cover = item.cover_path or item.cover
            if item.kind == "link":
                link: dict[str, Any] = {"title": item.title or item.source, "url": item.source}
                if moments:
                    if cover is None:
                        raise WecomError(f"WeCom {api}: the link {item.source} has no cover; a Moments link needs one", api=api, hint="give the link attachment a cover image")
                    link["media_id"] = self.media_id(purpose, "image", cover)
                else:
                    if item.description:
                        link["desc"] = item.description
                    if item.cover_path is not None:
                        link["picurl"] = self.media_id("image", "image", item.cover_path)
                    elif item.cover:
                        link["picurl"] = item.cover
                parts.append({"msgtype": "link", "link": link})
            elif item.kind == "miniprogram":
                if cover is None:
                    raise WecomError(
                        f"WeCom {api}: the mini-program card {item.title or item.source} has no cover; WeCom needs one (520×416)", api=api, hint="give the miniprogram attachment a cover image"
                    )
                card = {"title": item.title or "", "pic_media_id": self.media_id("media", "image", cover), "appid": item.source, "page": item.page or ""}
                parts.append({"msgtype": "miniprogram", "miniprogram": card})
            else:
                raise WecomError(f"WeCom {api}: cannot send a {item.kind} attachment", api=api, hint="use image, video, link or miniprogram")
        return parts


def _media_ids(part: dict[str, Any]) -> list[str]:
    inner = part.get(str(part.get("msgtype")), {})
    return [str(inner[key]) for key in ("media_id", "pic_media_id") if key in inner]
