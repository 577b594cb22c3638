"""Webhook outputs against a real HTTP server on 127.0.0.1: payloads, signatures, retries, limits, secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from siyu_cli.dispatch._outputs import Output, build_outputs
from siyu_cli.dispatch._webhook import WebhookOutput
from siyu_cli.errors import DeliveryError, SiyuError
from tests.conftest_http import SAMPLE_TEXT, Recorded, RecordingServer, Reply, outgoing

WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
FEISHU_TOKEN = "5e3d587e-d78e-4a07-bd07-265f269f86fd"
DING_TOKEN = "b7e1c0ffee0123456789abcdef"
SECRET = "SECf00dbabe1234567890deadbeef"


class FakeTime:
    """Injected clock and sleep: sleeping only moves the clock, and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def one(spec: dict, environ: dict[str, str], fake: FakeTime, tmp_path: Path) -> Output:
    [output] = build_outputs([spec], outbox_dir=tmp_path, environ=environ, clock=fake.clock, sleep=fake.sleep)
    return output


def wecom(server: RecordingServer, fake: FakeTime, tmp_path: Path, **extra: object) -> Output:
    env = {"SIYU_WECOM_WEBHOOK": server.url("/cgi-bin/webhook/send", key=WECOM_KEY)}
    spec = {"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK", **extra}
    return one(spec, env, fake, tmp_path)


# --- payloads -------------------------------------------------------------------------------


def test_wecom_posts_markdown_with_chinese_intact(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    output = wecom(server, fake, tmp_path)
    location = output.deliver(outgoing())

    [req] = server.requests
    assert req.path == "/cgi-bin/webhook/send"
    assert req.query == {"key": WECOM_KEY}
    assert req.headers["content-type"] == "application/json; charset=utf-8"
    assert req.headers["idempotency-key"] == "d3f9a1c2e4b5"
    assert "早上好，各位家长！".encode() in req.body  # raw UTF-8, not \\u escapes
    body = req.json
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.endswith(SAMPLE_TEXT)
    assert content.startswith("### 早分享 morning-share\n> 阅读营12期1群 · 群 group · 小丸子 (wx_host_01) · 12-01 08:00")
    assert WECOM_KEY not in location and location == f"http://127.0.0.1:{server.port}/…"
    assert output.idempotent is False
    assert output.delivered_location(outgoing()) is None


def _feishu_sign(secret: str, timestamp: str) -> str:
    key = (timestamp + "\n" + secret).encode("utf-8")
    return base64.b64encode(hmac.new(key, msg=b"", digestmod=hashlib.sha256).digest()).decode()


def test_feishu_text_with_signature_checked_by_the_server(tmp_path: Path, fake: FakeTime) -> None:
    def verify(req: Recorded) -> Reply:
        body = req.json
        if body.get("sign") != _feishu_sign(SECRET, body.get("timestamp", "")):
            return Reply(400, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
        return Reply(200, {"code": 0, "msg": "success", "data": {}})

    with RecordingServer(responder=verify) as srv:
        env = {"FEISHU_URL": srv.url(f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}"), "FEISHU_SECRET": SECRET}
        spec = {"type": "webhook", "format": "feishu", "url_env": "FEISHU_URL", "secret_env": "FEISHU_SECRET"}
        one(spec, env, fake, tmp_path).deliver(outgoing())
        [req] = srv.requests

    body = req.json
    assert set(body) == {"timestamp", "sign", "msg_type", "content"}
    assert body["msg_type"] == "text"
    assert abs(int(body["timestamp"]) - time.time()) < 60  # seconds, as text
    assert isinstance(body["timestamp"], str)
    assert body["content"]["text"].startswith("【早分享 morning-share】\n阅读营12期1群")
    assert body["content"]["text"].endswith(SAMPLE_TEXT)
    assert req.headers["idempotency-key"] == "d3f9a1c2e4b5"


def test_feishu_without_secret_and_the_older_status_code_answer(
    server: RecordingServer, fake: FakeTime, tmp_path: Path
) -> None:
    server.default = Reply(200, {"StatusCode": 0, "StatusMessage": "success"})
    env = {"FEISHU_URL": server.url(f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}")}
    one({"type": "webhook", "format": "feishu", "url_env": "FEISHU_URL"}, env, fake, tmp_path).deliver(outgoing())
    assert set(server.requests[0].json) == {"msg_type", "content"}


def test_dingtalk_markdown_signed_in_the_query(tmp_path: Path, fake: FakeTime) -> None:
    def verify(req: Recorded) -> Reply:
        timestamp = req.query.get("timestamp", "")
        string_to_sign = f"{timestamp}\n{SECRET}".encode()
        expected = base64.b64encode(hmac.new(SECRET.encode(), string_to_sign, hashlib.sha256).digest()).decode()
        if req.query.get("sign") != expected:  # parse_qsl already URL-decoded it
            return Reply(200, {"errcode": 310000, "errmsg": "sign not match"})
        return Reply(200, {"errcode": 0, "errmsg": "ok"})

    with RecordingServer(responder=verify) as srv:
        env = {"DING_URL": srv.url("/robot/send", access_token=DING_TOKEN), "DING_SECRET": SECRET}
        spec = {"type": "webhook", "format": "dingtalk", "url_env": "DING_URL", "secret_env": "DING_SECRET"}
        one(spec, env, fake, tmp_path).deliver(outgoing())
        [req] = srv.requests

    assert req.query["access_token"] == DING_TOKEN
    assert abs(int(req.query["timestamp"]) - time.time() * 1000) < 60_000  # milliseconds
    body = req.json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "早分享"
    assert body["markdown"]["text"].endswith("今天是阅读营第1天：  \n- 读《小王子》第一章  \n- 晚上8点前打卡")


def test_json_posts_the_draft_itself(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(204, b"")
    env = {"HOOK": server.url("/siyu/drafts", token="abcdef123")}
    one({"type": "webhook", "format": "json", "url_env": "HOOK"}, env, fake, tmp_path).deliver(outgoing())
    [req] = server.requests
    assert req.json == outgoing().to_dict()
    assert req.json["due_at"] == "2026-12-01T08:00:00+08:00"
    assert req.json["text"] == SAMPLE_TEXT
    assert req.headers["idempotency-key"] == "d3f9a1c2e4b5"


def test_long_wecom_text_is_split_in_order_within_4096_bytes(
    server: RecordingServer, fake: FakeTime, tmp_path: Path
) -> None:
    lines = [f"第{i}条：今天的阅读任务是朗读课文并录音打卡，家长请在群里回复“已完成”。" for i in range(1, 121)]
    text = "\n".join(lines)
    assert len(text.encode()) > 3 * 4096
    wecom(server, fake, tmp_path).deliver(outgoing(text=text))

    contents = [r.json["markdown"]["content"] for r in server.requests]
    total = len(contents)
    assert total >= 4
    assert all(len(c.encode("utf-8")) <= 4096 for c in contents)
    assert [r.headers["idempotency-key"] for r in server.requests] == [f"d3f9a1c2e4b5-{n}" for n in range(1, total + 1)]
    assert contents[0].startswith(f"### 早分享 morning-share (1/{total})")
    assert "\n".join(c.split("\n\n", 1)[1] for c in contents) == text


def test_a_single_huge_line_is_cut_between_characters(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    text = "读" * 3000  # 9000 bytes, no line break
    wecom(server, fake, tmp_path).deliver(outgoing(text=text))
    contents = [r.json["markdown"]["content"] for r in server.requests]
    assert all(len(c.encode("utf-8")) <= 4096 for c in contents)
    assert "".join(c.split("\n\n", 1)[1] for c in contents) == text


# --- retries ----------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.queue(Reply(500, b"oops"), Reply(502, b"bad gateway"))
    wecom(server, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 3
    assert fake.sleeps == [1.0, 2.0]
    assert all(r.headers["idempotency-key"] == "d3f9a1c2e4b5" for r in server.requests)


def test_5xx_every_time_gives_up_as_transient(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(503, b"busy")
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert caught.value.transient is True
    assert "HTTP 503" in caught.value.message and "3 attempts" in caught.value.message
    assert "WeCom" in caught.value.message
    assert fake.sleeps == [1.0, 2.0]


def test_4xx_fails_at_once(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(400, b"bad request")
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 1 and fake.sleeps == []
    assert caught.value.transient is False
    assert "HTTP 400" in caught.value.message and "1 attempt" in caught.value.message


def test_platform_error_fails_at_once_with_its_errmsg(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 1
    assert caught.value.transient is False
    assert "errcode 93000 (invalid webhook url)" in caught.value.message
    assert "SIYU_WECOM_WEBHOOK" in caught.value.hint


def test_wecom_rate_limit_code_is_retried(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.queue(Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    wecom(server, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 2 and fake.sleeps == [1.0]


@pytest.mark.parametrize(
    ("fmt", "path", "limited"),
    [
        ("feishu", f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}", {"code": 9499, "msg": "Bad Request"}),
        ("feishu", f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}", {"code": 11232, "msg": "frequency limited"}),
        ("dingtalk", "/robot/send", {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}),
    ],
)
def test_other_platform_rate_limit_codes_are_retried(
    server: RecordingServer, fake: FakeTime, tmp_path: Path, fmt: str, path: str, limited: dict
) -> None:
    server.queue(Reply(200, limited))
    server.default = Reply(200, {"code": 0, "msg": "success"} if fmt == "feishu" else {"errcode": 0, "errmsg": "ok"})
    one({"type": "webhook", "format": fmt, "url_env": "U"}, {"U": server.url(path)}, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 2 and fake.sleeps == [1.0]


def test_429_honours_retry_after(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.queue(Reply(429, b"slow down", headers={"Retry-After": "7"}))
    wecom(server, fake, tmp_path).deliver(outgoing())
    assert len(server.requests) == 2 and fake.sleeps == [7.0]


def test_429_asking_for_a_long_pause_is_left_to_a_later_run(
    server: RecordingServer, fake: FakeTime, tmp_path: Path
) -> None:
    server.queue(Reply(429, b"slow down", headers={"Retry-After": "3600"}))
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert caught.value.transient is True and fake.sleeps == []
    assert "3600s" in caught.value.message


def test_a_redirect_is_not_followed(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(302, b"", headers={"Location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert caught.value.transient is False and len(server.requests) == 1
    assert "HTTP 302" in caught.value.message


def test_an_answer_that_is_not_the_platforms_fails(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    server.default = Reply(200, b"<html>captive portal</html>")
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path).deliver(outgoing())
    assert "unexpected answer" in caught.value.message and "captive portal" in caught.value.message


def test_a_hanging_server_times_out(server: RecordingServer, fake: FakeTime) -> None:
    server.default = Reply(hang=True)
    output = WebhookOutput(
        name="webhook:wecom",
        format="wecom",
        url=server.url("/cgi-bin/webhook/send", key=WECOM_KEY),
        timeout=0.2,
        attempts=1,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with pytest.raises(DeliveryError) as caught:
        output.deliver(outgoing())
    assert "sent, but no answer within 0.2s (timeout)" in caught.value.message
    assert "may have arrived" in caught.value.message
    assert (caught.value.maybe_delivered, caught.value.transient) == (True, False)


def test_a_timeout_after_sending_is_in_doubt_and_never_sent_again(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    """The robot may have posted it: a second copy is worse than a person checking."""
    server.queue(Reply(hang=True))
    with pytest.raises(DeliveryError) as caught:
        wecom(server, fake, tmp_path, timeout=0.2).deliver(outgoing())
    assert caught.value.maybe_delivered is True
    assert len(server.requests) == 1 and fake.sleeps == []


def test_a_failed_part_resumes_where_it_stopped(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    output = WebhookOutput(name="webhook:wecom", format="wecom", url=server.url("/cgi-bin/webhook/send", key=WECOM_KEY), attempts=1, clock=fake.clock, sleep=fake.sleep)
    long_text = "\n".join(f"第{i}行：" + "阅读打卡提醒，" * 20 for i in range(60))
    parts = len(output.payloads(outgoing(text=long_text)))
    assert parts >= 3
    server.queue(Reply(200, body={"errcode": 0, "errmsg": "ok"}), Reply(503))
    with pytest.raises(DeliveryError) as caught:
        output.deliver(outgoing(text=long_text))
    assert (caught.value.transient, caught.value.parts_done) == (True, 1)
    output.deliver(outgoing(text=long_text), first_part=2)
    sent = [json.loads(r.body)["markdown"]["content"].split("\n", 1)[0] for r in server.requests]
    assert len(sent) == 2 + (parts - 1) and sent[1] == sent[2]  # part 2 twice (the 503, then it), part 1 once


def test_connection_refused_is_transient(fake: FakeTime, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"SIYU_WECOM_WEBHOOK": f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={WECOM_KEY}"}
    output = one({"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}, env, fake, tmp_path)
    with pytest.raises(DeliveryError) as caught:
        output.deliver(outgoing())
    assert caught.value.transient is True
    assert "connection failed" in caught.value.message and "3 attempts" in caught.value.message
    assert fake.sleeps == [1.0, 2.0]


# --- rate limits --------------------------------------------------------------------------------


def _max_in_window(times: list[float], span: float) -> int:
    return max(sum(1 for t in times if start <= t < start + span) for start in times)


def test_wecom_never_posts_more_than_20_a_minute(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    arrivals: list[float] = []
    server.responder = lambda req: arrivals.append(fake.now)  # type: ignore[func-returns-value]
    output = wecom(server, fake, tmp_path)
    for n in range(25):
        output.deliver(outgoing(draft_id=f"draft{n:03d}"))
    assert len(arrivals) == 25
    assert _max_in_window(arrivals, 60.0) == 20
    assert fake.sleeps and sum(fake.sleeps) >= 60.0 - 1e-9
    assert arrivals[:20] == [1000.0] * 20  # no waiting while under the limit


def test_outputs_sharing_a_url_share_its_limit(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    arrivals: list[float] = []
    server.responder = lambda req: arrivals.append(fake.now)  # type: ignore[func-returns-value]
    env = {"U": server.url("/cgi-bin/webhook/send", key=WECOM_KEY)}
    specs = [{"type": "webhook", "format": "wecom", "url_env": "U", "name": name} for name in ("team", "boss")]
    first, second = build_outputs(specs, outbox_dir=tmp_path, environ=env, clock=fake.clock, sleep=fake.sleep)
    for n in range(11):
        first.deliver(outgoing(draft_id=f"a{n}"))
        second.deliver(outgoing(draft_id=f"b{n}"))
    assert _max_in_window(arrivals, 60.0) == 20


def test_feishu_keeps_five_a_second(server: RecordingServer, fake: FakeTime, tmp_path: Path) -> None:
    arrivals: list[float] = []
    server.responder = lambda req: arrivals.append(fake.now)  # type: ignore[func-returns-value]
    server.default = Reply(200, {"code": 0, "msg": "success"})
    output = one({"type": "webhook", "format": "feishu", "url_env": "U"}, {"U": server.url("/hook/x")}, fake, tmp_path)
    for n in range(12):
        output.deliver(outgoing(draft_id=f"f{n}"))
    assert _max_in_window(arrivals, 1.0) == 5


# --- configuration and secrets ----------------------------------------------------------------------


def test_missing_url_env_names_the_variable(tmp_path: Path) -> None:
    spec = {"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}
    with pytest.raises(SiyuError) as caught:
        build_outputs([spec], outbox_dir=tmp_path, environ={})
    assert "SIYU_WECOM_WEBHOOK" in caught.value.message
    assert "export SIYU_WECOM_WEBHOOK=" in caught.value.hint


def test_missing_secret_env_names_the_variable(tmp_path: Path) -> None:
    spec = {"type": "webhook", "format": "feishu", "url_env": "F", "secret_env": "SIYU_FEISHU_SECRET"}
    with pytest.raises(SiyuError) as caught:
        build_outputs([spec], outbox_dir=tmp_path, environ={"F": "https://open.feishu.cn/open-apis/bot/v2/hook/x"})
    assert "SIYU_FEISHU_SECRET" in caught.value.message
    assert "export SIYU_FEISHU_SECRET=" in caught.value.hint


def test_a_url_that_is_not_http_is_refused_without_showing_it(tmp_path: Path) -> None:
    spec = {"type": "webhook", "format": "wecom", "url_env": "W"}
    with pytest.raises(SiyuError) as caught:
        build_outputs([spec], outbox_dir=tmp_path, environ={"W": f"qyapi.weixin.qq.com/send?key={WECOM_KEY}"})
    assert "W does not hold an http(s) URL" in caught.value.message
    assert WECOM_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"type": "webhook", "format": "slack", "url_env": "U"}, "unknown webhook format 'slack'"),
        ({"type": "email"}, "unknown output type 'email'"),
        ({"type": "webhook", "format": "wecom"}, "needs url_env"),
        ({"type": "webhook", "format": "wecom", "url_env": "U", "timeout": "soon"}, "timeout"),
        ({"type": "webhook", "format": "wecom", "url_env": "U", "secret_env": "S"}, "only used by feishu and dingtalk"),
    ],
)
def test_bad_output_specs_say_what_is_wrong(tmp_path: Path, spec: dict, words: str) -> None:
    with pytest.raises(SiyuError) as caught:
        build_outputs([spec], outbox_dir=tmp_path, environ={"U": "https://example.com/hook", "S": "x"})
    assert words in caught.value.message


def test_secrets_never_appear_in_errors(tmp_path: Path, fake: FakeTime) -> None:
    echo = Reply(200, {"code": 19021, "msg": f"sign match fail for {FEISHU_TOKEN} with {SECRET}"})
    with RecordingServer(default=echo) as srv:
        url = srv.url(f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}")
        env = {"F": url, "FS": SECRET}
        output = one({"type": "webhook", "format": "feishu", "url_env": "F", "secret_env": "FS"}, env, fake, tmp_path)
        with pytest.raises(DeliveryError) as caught:
            output.deliver(outgoing())
    text = str(caught.value)
    assert "code 19021" in text
    assert SECRET not in text and FEISHU_TOKEN not in text and url not in text
    assert "***" in text


def test_output_names_stay_stable_as_outputs_are_added(tmp_path: Path) -> None:
    env = {"A": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a", "B": "https://example.com/b"}
    specs = [
        "outbox",
        {"type": "webhook", "format": "wecom", "url_env": "A"},
        {"type": "webhook", "format": "wecom", "url_env": "A"},
        {"type": "webhook", "format": "json", "url_env": "B", "name": "crm"},
        "console",
    ]
    outputs = build_outputs(specs, outbox_dir=tmp_path, environ=env)
    assert [o.name for o in outputs] == ["outbox", "webhook:wecom", "webhook:wecom:2", "crm", "console"]
    assert [o.idempotent for o in outputs] == [True, False, False, False, False]
    assert all(isinstance(o, Output) for o in outputs)
