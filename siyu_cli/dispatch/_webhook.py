"""Webhook outputs: WeCom (企业微信), Feishu (飞书) and DingTalk (钉钉) group robots, and plain JSON.

Drafts posted to a robot land in the team's own work group, where the front line
picks them up. Standard library only (http.client): one request per message,
no redirects followed, no proxy taken from the environment.

Each platform caps how fast a robot may post; the cap is kept on the client side
with a sliding window per URL, waiting rather than failing. Answers that say the
message was not taken (HTTP 5xx and 429, the platforms' rate-limit codes) and
failures before the request was sent (connection refused, a connect timeout) are
transient: retried here a few times with a short backoff, then left to a later
pass. A request that may have arrived (no answer within the timeout after it was
sent, a connection reset after the body) is never retried: the draft is in doubt.
Anything else fails at once. Secrets (the key inside the URL, the signing secret)
never appear in a message or a location.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

from siyu_cli._time import parse_duration
from siyu_cli._version import __version__
from siyu_cli.dispatch._tasks import recipient_line
from siyu_cli.errors import DeliveryError, SiyuError

# http.client, ssl, email.utils, hmac and base64 are imported where a request is made or signed:
# every pass imports this module (the runner names WebhookOutput), most never post.
if TYPE_CHECKING:
    import http.client
    import ssl

    from siyu_cli.dispatch._outputs import Outgoing
    from siyu_cli.render._media import Media

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# A server asking for a longer pause than this is better retried by a later run than waited for.
MAX_RETRY_AFTER = 120.0
MAX_ANSWER_BYTES = 65536


@dataclass(frozen=True)
class Platform:
    """What differs between robots: limits, message size, and which error codes mean 'slow down'."""

    format: str
    label: str
    example_url: str
    windows: tuple[tuple[int, float], ...]
    chunk_bytes: int | None
    transient_codes: frozenset[int]


_PLATFORMS = {
    "wecom": Platform(
        "wecom",
        "WeCom 企业微信",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...",
        ((20, 60.0),),
        4096,
        frozenset({45009, -1}),
    ),
    "feishu": Platform(
        "feishu",
        "Feishu 飞书",
        "https://open.feishu.cn/open-apis/bot/v2/hook/...",
        ((100, 60.0), (5, 1.0)),
        18000,
        frozenset({9499, 11232}),
    ),
    "dingtalk": Platform(
        "dingtalk",
        "DingTalk 钉钉",
        "https://oapi.dingtalk.com/robot/send?access_token=...",
        ((20, 60.0),),
        18000,
        frozenset({130101, -1}),
    ),
    "json": Platform("json", "JSON", "https://example.com/siyu-hook", (), None, frozenset()),
}
FORMATS = tuple(_PLATFORMS)


def platform(fmt: str) -> Platform:
    return _PLATFORMS[fmt]


def parse_timeout(value: Any) -> float:
    """'10s', '1m', or a number of seconds (fractions allowed); default 10 s."""
    if value is None or value == "":
        return DEFAULT_TIMEOUT
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a timeout; write e.g. 10s")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = parse_duration(text).total_seconds()
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a timeout; it must be more than zero, e.g. 10s")
    return seconds


def redact(url: str) -> str:
    """Scheme and host only: robot URLs carry their key in the query or the path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


class RateLimiter:
    """Sliding windows (count per span of seconds); `acquire` waits until a slot is free."""

    def __init__(
        self, windows: tuple[tuple[int, float], ...], clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.windows = windows
        self.clock = clock
        self.sleep = sleep
        self._sent: list[deque[float]] = [deque() for _ in windows]

    def acquire(self) -> None:
        while True:
            now = self.clock()
            wait = 0.0
            for (count, span), sent in zip(self.windows, self._sent, strict=True):
                while sent and sent[0] <= now - span:
                    sent.popleft()
                if len(sent) >= count:
                    wait = max(wait, sent[0] + span - now)
            if wait <= 0:
                break
            self.sleep(wait)
        for sent in self._sent:
            sent.append(now)


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Failure:
    detail: str
    transient: bool
    retry_after: float | None = None
    maybe_sent: bool = False


def split_text(text: str, budget: int, newline_cost: int = 1) -> list[str]:
    """Pieces of at most `budget` UTF-8 bytes, cut at line ends where possible, never inside a character."""

    def cost(piece: str) -> int:
        return len(piece.encode("utf-8")) + piece.count("\n") * (newline_cost - 1)

    if cost(text) <= budget:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        pieces = _hard_split(line, budget)
        for piece in pieces[:-1]:
            if current:
                chunks.append("\n".join(current))
            chunks.append(piece)
            current, size = [], 0
        last = pieces[-1]
        extra = len(last.encode("utf-8")) + (newline_cost if current else 0)
        if current and size + extra > budget:
            chunks.append("\n".join(current))
            current, size = [], 0
            extra = len(last.encode("utf-8"))
        current.append(last)
        size += extra
    if current:
        chunks.append("\n".join(current))
    return [c.strip("\n") for c in chunks if c.strip()]


def _hard_split(line: str, budget: int) -> list[str]:
    if len(line.encode("utf-8")) <= budget:
        return [line]
    pieces: list[str] = []
    current, size = [], 0
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > budget:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


class WebhookOutput:
    """Posts each draft to one robot or endpoint. Not idempotent: a resend posts again."""

    idempotent = False
    reads_back = False

    def __init__(
        self,
        *,
        name: str,
        format: str,
        url: str,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        url_env: str = "the URL variable",
    ) -> None:
        self.name = name
        self.platform = platform(format)
        self.url = url.strip()
        self.secret = secret
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.sleep = sleep
        self.wall = wall
        self.url_env = url_env
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 — reading it checks the port is a number in range
        except ValueError:
            raise SiyuError(
                f"{url_env} does not hold a valid URL for the {self.platform.label} webhook (a bad host or port)",
                hint=f"export {url_env}='{self.platform.example_url}'",
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SiyuError(
                f"{url_env} does not hold an http(s) URL for the {self.platform.label} webhook",
                hint=f"export {url_env}='{self.platform.example_url}'",
            )
        self._parts = parts
        self.location = redact(self.url)
        self.limiter = RateLimiter(self.platform.windows, clock, sleep)
        # The limit kept in the store for every process (set by the runner); the in-memory one then only paces this process.
        self.shared: Any = None
        self._tls: ssl.SSLContext | None = None
        self._secrets = self._collect_secrets()

    def delivered_location(self, msg: Outgoing) -> str | None:
        return None

    def flush(self) -> None:
        """Nothing to sync: a request that returned is done."""

    def deliver(self, msg: Outgoing, *, first_part: int = 1, on_part: Callable[[int], None] | None = None) -> str:
        """Post the message's parts in order from `first_part` (the parts before it arrived on an earlier try);
        `on_part(n)` is told as soon as part n of several has arrived."""
        payloads = self.payloads(msg)
        total = len(payloads)
        for number, payload in enumerate(payloads, start=1):
            if number < first_part:
                continue
            key = msg.draft_id if total == 1 else f"{msg.draft_id}-{number}"
            part = f"part {number} of {total}" + (f" (parts 1-{number - 1} were sent)" if number > 1 else "")
            try:
                self._send(payload, key, part if total > 1 else "")
            except DeliveryError as exc:
                exc.parts_done = number - 1
                raise
            if on_part is not None and total > 1 and number < total:
                on_part(number)
        return self.location

    def payloads(self, msg: Outgoing) -> list[dict[str, Any]]:
        """The JSON bodies to post, in order (several when the text is longer than the platform takes)."""
        fmt = self.platform.format
        if fmt == "json":
            return [msg.to_dict()]
        newline_cost = 3 if fmt == "dingtalk" else 1
        budget = self.platform.chunk_bytes or 0
        header = self._header(msg, 99, 99)
        extra = newline_cost - 1
        room = budget - len(header.encode("utf-8")) - header.count("\n") * extra - 2 * newline_cost
        native = self._native_media(msg)
        listed = [m.describe() for m in msg.attachments if m not in native]
        # A robot's card takes its picture by URL (picurl): a file cover is named under the text, not dropped.
        listed += [f"{m.label} {m.title} 封面 cover: {m.cover} (a file: the robot's card shows a picture only from a URL)" for m in native if m.kind == "link" and m.cover_path]
        text = msg.text + ("\n\n附件 attachments:\n" + "\n".join(f"- {line}" for line in listed) if listed else "")
        if len(msg.recipients) > 1:
            text += "\n\n" + recipient_line(msg)
        chunks = split_text(text, room, newline_cost)
        total = len(chunks)  # (1/3)… marks a text split in parts; the images and cards after it are messages of their own
        bodies = []
        for number, chunk in enumerate(chunks, start=1):
            content = f"{self._header(msg, number, total)}\n\n{chunk}"
            if fmt == "wecom":
                bodies.append({"msgtype": "markdown", "markdown": {"content": content}})
            elif fmt == "feishu":
                bodies.append({"msg_type": "text", "content": {"text": content}})
            else:
                title = msg.beat_title + (f" ({number}/{total})" if total > 1 else "")
                bodies.append({"msgtype": "markdown", "markdown": {"title": title, "text": _dingtalk_breaks(content)}})
        bodies.extend(_wecom_media(media) for media in native)
        return bodies

    def _native_media(self, msg: Outgoing) -> list[Media]:
        """What the robot sends as messages of their own: a WeCom robot posts image files (`image`) and link cards
        (`news`); everything else (URL images, videos, mini-programs, other robots) is listed under the text."""
        if self.platform.format != "wecom":
            return []
        return [m for m in msg.attachments if (m.kind == "image" and m.path is not None) or m.kind == "link"]

    def _header(self, msg: Outgoing, number: int, total: int) -> str:
        part = f" ({number}/{total})" if total > 1 else ""
        facts = " · ".join(
            (msg.target, msg.channel_label, msg.speaker, f"{msg.due_at:%m-%d %H:%M}", f"第{msg.day}天 day {msg.day}")
        )
        if self.platform.format == "feishu":
            return f"【{msg.beat_title} {msg.beat}{part}】\n{facts}"
        return f"### {msg.beat_title} {msg.beat}{part}\n> {facts}"

    def _send(self, payload: dict[str, Any], key: str, part: str) -> None:
        for attempt in range(1, self.attempts + 1):
            if self.shared is not None:
                wait = self.shared.try_acquire()
                if wait is not None:
                    windows = ", ".join(f"{count} in {span:g}s" for count, span in self.shared.windows)
                    message = f"{self.platform.label} webhook {self.name} ({self.location}): held back, the robot's limit ({windows}, shared by every process) is reached; next slot in {wait:.0f}s"
                    raise DeliveryError(message, transient=True, retry_after=wait, hint="a later pass sends it", held=True)
            self.limiter.acquire()
            failure = self._attempt(payload, key)
            if failure is None:
                return
            if failure.maybe_sent or not failure.transient or attempt == self.attempts:
                raise self._error(failure, attempt, part)
            wait = failure.retry_after
            if wait is None:
                wait = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
            elif wait > MAX_RETRY_AFTER:
                failure.detail += f"; the server asked to wait {wait:.0f}s"
                raise self._error(failure, attempt, part)
            self.sleep(wait)

    def _error(self, failure: _Failure, attempts: int, part: str) -> DeliveryError:
        tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
        where = f" {part}" if part else ""
        source = f"{self.platform.label} webhook {self.name} ({self.location}){where}"
        message = f"{source}: {failure.detail}; gave up after {tries}"
        if failure.maybe_sent:
            message = f"{source}: {failure.detail}; the message may have arrived, so it is not sent again"
            hint = "look in the group: `siyu outbox done ID` if it arrived, `siyu retry --unknown ID` if not"
            return DeliveryError(self._scrub(message), maybe_delivered=True, hint=hint)
        if failure.transient:
            hint = "a temporary problem; a later pass tries again"
        else:
            hint = f"check the robot and the URL in ${self.url_env}"
            if self.secret:
                hint += " and its signing secret"
        return DeliveryError(self._scrub(message), transient=failure.transient, hint=hint)

    def _attempt(self, payload: dict[str, Any], key: str) -> _Failure | None:
        import http.client
        import ssl

        target, body = self._request(payload)
        sent = [False]
        try:
            reply = self._post(target, body, key, sent)
        except TimeoutError:
            if sent[0]:
                return _Failure(f"sent, but no answer within {self.timeout:g}s (timeout)", transient=True, maybe_sent=True)
            return _Failure(f"could not connect within {self.timeout:g}s (timeout)", transient=True)
        except ssl.SSLCertVerificationError as exc:
            return _Failure(f"TLS certificate not trusted: {exc.verify_message}", transient=False)
        except (OSError, http.client.HTTPException) as exc:
            if sent[0]:
                return _Failure(f"sent, then the connection failed before an answer: {_describe(exc)}", transient=True, maybe_sent=True)
            return _Failure(f"connection failed: {_describe(exc)}", transient=True)
        return self._judge(reply)

    def _request(self, payload: dict[str, Any]) -> tuple[str, bytes]:
        """Path with query and body for one attempt; signatures are made fresh each time."""
        parts = self._parts
        query = parts.query
        fmt = self.platform.format
        if self.secret and fmt == "feishu":
            timestamp = str(int(self.wall()))
            payload = {"timestamp": timestamp, "sign": feishu_sign(self.secret, timestamp), **payload}
        elif self.secret and fmt == "dingtalk":
            timestamp = str(int(self.wall() * 1000))
            extra = f"timestamp={timestamp}&sign={quote_plus(dingtalk_sign(self.secret, timestamp))}"
            query = f"{query}&{extra}" if query else extra
        target = (parts.path or "/") + (f"?{query}" if query else "")
        return target, json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _post(self, target: str, body: bytes, key: str, sent: list[bool]) -> _Reply:
        """One request; `sent[0]` turns true once bytes of the request may have left (from then on a failure is in doubt)."""
        import http.client
        import ssl

        parts = self._parts
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": f"siyu/{__version__}",
            "Idempotency-Key": key,
        }
        try:
            conn.connect()
            sent[0] = True
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_ANSWER_BYTES)
            return _Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    def _judge(self, reply: _Reply) -> _Failure | None:
        status = reply.status
        code, message = self._platform_code(reply.body)
        word = "code" if self.platform.format == "feishu" else "errcode"
        said = f"{word} {code} ({message})" if code is not None else ""
        if 200 <= status < 300:
            if self.platform.format == "json" or code == 0:
                return None
            if code is None:
                return _Failure(f"HTTP {status} with an unexpected answer: {_snippet(reply.body)}", transient=False)
            return _Failure(said, transient=code in self.platform.transient_codes)
        detail = f"HTTP {status}" + (f", {said}" if said else "")
        if status == 429 or status == 408 or status >= 500:
            return _Failure(detail, transient=True, retry_after=self._retry_after(reply.headers.get("retry-after")))
        if 300 <= status < 400:
            detail += " (a redirect; siyu does not follow redirects: use the final URL)"
        return _Failure(detail, transient=False)

    def _platform_code(self, body: bytes) -> tuple[int | None, str]:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, ""
        if not isinstance(data, dict):
            return None, ""
        for code_key, msg_key in (("errcode", "errmsg"), ("code", "msg"), ("StatusCode", "StatusMessage")):
            if code_key in data:
                try:
                    return int(data[code_key]), str(data.get(msg_key, ""))
                except (TypeError, ValueError):
                    return None, ""
        return None, ""

    def _retry_after(self, value: str | None) -> float | None:
        if not value:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - self.wall())

    def _collect_secrets(self) -> list[str]:
        found = {self.url}
        if self.secret:
            found.add(self.secret)
        for _, value in parse_qsl(self._parts.query):
            if len(value) >= 6:
                found.add(value)
        for segment in self._parts.path.split("/"):
            if len(segment) >= 16:
                found.add(segment)
        return sorted(found, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _wecom_media(media: Media) -> dict[str, Any]:
    """WeCom group robot bodies (群机器人配置说明): `image` is the file's base64 and the md5 of its bytes, at most
    2 MB, JPG or PNG; `news` is a card with title, description, url and a picture URL."""
    if media.kind == "link":
        article = {"title": media.title or media.source, "url": media.source}
        if media.description:
            article["description"] = media.description
        if media.cover and media.cover_path is None:
            article["picurl"] = media.cover
        return {"msgtype": "news", "news": {"articles": [article]}}
    import base64

    from siyu_cli.render._media import MAX_BYTES

    path = str(media.path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES["image"] + 1)
    except OSError as exc:
        raise DeliveryError(f"WeCom robot: cannot read the image {path}: {exc.strerror or exc}", hint="put the file back, then `siyu retry` the draft") from None
    if len(data) > MAX_BYTES["image"]:
        raise DeliveryError(f"WeCom robot: the image {path} is over 2 MB, the most a robot takes", hint="shrink it (`siyu check` names such files), then `siyu retry` the draft")
    return {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode("ascii"), "md5": hashlib.md5(data).hexdigest()}}


def feishu_sign(secret: str, timestamp: str) -> str:
    """Feishu: HMAC-SHA256 keyed with "timestamp\\nsecret" over an empty message, base64."""
    import base64
    import hmac

    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk: HMAC-SHA256 keyed with the secret over "timestamp\\nsecret", base64 (URL-encode it)."""
    import base64
    import hmac

    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _dingtalk_breaks(text: str) -> str:
    """DingTalk markdown joins single newlines; two trailing spaces keep each line on its own."""
    return re.sub(r"(?<! {2})\n", "  \n", text)


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {reason}" if reason != type(exc).__name__ else reason


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return (text[:200] + "…") if len(text) > 200 else (text or "(empty)")
