"""siyu serve against WeCom's own callback format, through real HTTP on 127.0.0.1.

Callbacks are encrypted by wechatpy (an implementation siyu did not write) and by WeCom's documented
sample vectors; the app runs under uvicorn in a thread, and once as the real `siyu serve` process.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import wechatpy.crypto
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from siyu_cli.errors import BadAesKey, BadSignature, MalformedCallback, SiyuError, WrongCorp
from siyu_cli.wecom import CallbackCrypto, use_welcome_code, welcome_code
from tests.playbooks_fixtures import invoke, query, siyu_cmd, siyu_env, write_playbook
from tests.wecom_fake import WecomFake

CORP = "ww1a2b3c4d5e6f7a8b"
TOKEN = "QDG6eK0siyuTest"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
# SIYU_WECOM_API: a port nothing listens on, so no test's serve asks WeCom itself (tests with the fake set its URL).
ENV = {"SIYU_WECOM_CORP_ID": CORP, "SIYU_WECOM_TOKEN": TOKEN, "SIYU_WECOM_AES_KEY": AES_KEY, "SIYU_WECOM_SECRET": "secret", "SIYU_WECOM_API": "http://127.0.0.1:9"}
CHAT = "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA"
ADDED_AT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
RECEIVED = datetime(2026, 12, 1, 1, 0, 2, tzinfo=UTC)


def wecom_playbook(root: Path, *, hooks: Any = ({"id": "card", "kind": "package_card", "code": "PKG01", "tags": ["包裹卡"]},), **extra: Any) -> Path:
    return write_playbook(
        root,
        personas=[
            {"id": "host", "name": "小丸子", "role": "班主任", "account": "wx_host_01", "wecom_userid": "aqi"},
            {"id": "advisor", "name": "李老师", "role": "顾问", "account": "wx_adv_02", "wecom_userid": "lilaoshi"},
        ],
        groups=[{"id": "g1", "name": "阅读营1群", "persona": "host", "chat_id": CHAT}],
        hooks=hooks,
        outputs=[{"type": "wecom"}],
        **extra,
    )


def contact_xml(change: str, external: str, *, userid: str = "aqi", at: datetime = ADDED_AT, **more: str) -> str:
    extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in more.items())
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>"
        f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>{extra}</xml>"
    )


def chat_xml(detail: str, members: list[str], *, at: datetime = ADDED_AT, scene: str = "JoinScene", items: bool = True) -> str:
    listed = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members) if items else f"<![CDATA[{','.join(members)}]]>"
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[{CHAT}]]></ChatId>"
        f"<ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[{detail}]]></UpdateDetail>"
        f"<{scene}>3</{scene}><MemChangeCnt>{len(members)}</MemChangeCnt><MemChangeList>{listed}</MemChangeList>"
        "<LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer><CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer></xml>"
    )


@dataclass
class WeComSide:
    """WeCom's end of the callback, encrypted with wechatpy's WeCom crypto (not siyu's)."""

    corp: str = CORP
    token: str = TOKEN
    counter: list[int] = field(default_factory=lambda: [0])

    def _stamp(self) -> tuple[str, str]:
        self.counter[0] += 1
        return str(1764550800 + self.counter[0]), f"n{self.counter[0]}"

    def verification(self, echo: str) -> dict[str, str]:
        timestamp, nonce = self._stamp()
        echostr = PrpCrypto(WeChatCrypto(self.token, AES_KEY, self.corp).key).encrypt(echo, self.corp).decode()
        return {"msg_signature": wechatpy.crypto._get_signature(self.token, timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce, "echostr": echostr}

    def callback(self, plain: str) -> tuple[dict[str, str], bytes]:
        """(query, body) of the POST WeCom makes."""
        import xmltodict

        timestamp, nonce = self._stamp()
        sealed = xmltodict.parse(WeChatCrypto(self.token, AES_KEY, self.corp).encrypt_message(plain, nonce, timestamp))["xml"]
        body = f"<xml><ToUserName><![CDATA[{self.corp}]]></ToUserName><Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        return {"msg_signature": sealed["MsgSignature"], "timestamp": timestamp, "nonce": nonce}, body.encode()


class Served:
    """The app under uvicorn in a thread on 127.0.0.1, an httpx client to it, and what on_added was told."""

    def __init__(
        self,
        playbook: Path,
        db: Path,
        *,
        environ: dict[str, str] = ENV,
        now: Callable[[], datetime] = lambda: RECEIVED,
        then: Callable[[str, datetime], None] | None = None,
    ) -> None:
        """`then(contact_id, at)`: what serve does after an add (its welcome pass), beside noting it in `added`."""
        import uvicorn

        from siyu_cli.serve import app
        from siyu_cli.serve._server import listen

        self.added: list[tuple[str, datetime]] = []
        self.log: list[str] = []

        def on_added(contact_id: str, at: datetime) -> None:
            self.added.append((contact_id, at))
            if then is not None:
                then(contact_id, at)

        asgi = app(playbook, db_path=db, environ=environ, on_added=on_added, now=now, log=self.log.append)
        sock = listen("127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        self.client = httpx.Client(base_url=self.base, timeout=10)
        while not self.server.started:  # uvicorn's own readiness flag: a wait, not an assertion
            self.thread.join(0.01)
            assert self.thread.is_alive(), "uvicorn did not start"

    def post(self, wecom: WeComSide, plain: str) -> httpx.Response:
        params, body = wecom.callback(plain)
        return self.client.post("/wecom/callback", params=params, content=body)

    def stop(self) -> None:
        """Shut down: the lifespan drains the on_added worker first, so `added` is complete afterwards."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


class RealServe:
    """`siyu serve` as its own process on a free port, killed on leaving the `with` if a test left it running."""

    def __init__(self, playbook: Path, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(siyu_cmd("serve", str(playbook), "--port", "0", *args), cwd=cwd, env=env, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        assert self.proc.stderr is not None
        self.first = self.proc.stderr.readline()  # "listening on URL", or the startup error
        self.url = self.first.split("listening on ")[1].split(" ")[0] if "listening on " in self.first else ""

    def post(self, wecom: WeComSide, plain: str) -> httpx.Response:
        params, body = wecom.callback(plain)
        return httpx.post(f"{self.url}?{urlencode(params)}", content=body)

    def rest(self) -> str:
        """The rest of its log once it has exited: read through the text stream to its end, since readline()
        may have buffered more than the first line (communicate() with a timeout reads the pipe past that buffer)."""
        assert self.proc.stderr is not None
        with self.proc.stderr:
            said = self.proc.stderr.read()
        self.proc.wait(timeout=60)
        return said

    def stop(self) -> str:
        """SIGTERM (serve finishes the welcome passes handed over first), and the rest of its log."""
        self.proc.send_signal(signal.SIGTERM)
        return self.rest()

    def __enter__(self) -> RealServe:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.proc.stderr.close()
        self.proc.wait()


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    return wecom_playbook(tmp_path)


@pytest.fixture
def served(playbook: Path, tmp_path: Path) -> Iterator[Served]:
    running = Served(playbook, tmp_path / "siyu.db")
    yield running
    running.stop()


def counts(db: Path) -> dict[str, int]:
    return {table: query(db, f"SELECT COUNT(*) FROM {table}")[0][0] for table in ("events", "contacts", "wecom_callbacks", "wecom_welcome_codes")}


# --- the crypto, on WeCom's documented sample and against wechatpy ---------------------------------


def test_wecoms_documented_sample_verifies_and_decrypts() -> None:
    """The URL check and the callback of WeCom's own sample (加解密方案, Sample.php/Sample.py)."""
    crypto = CallbackCrypto("QDG6eK", AES_KEY, "wx5823bf96d3bd56c7")
    echo = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    assert crypto.verify_url("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", echo) == "1616140317555161061"
    body = (
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zE"
        "PeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdn"
        "LxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4E"
        "hzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]>"
        "</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    )
    plain = crypto.open("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", body.encode())
    assert "<Content><![CDATA[hello]]></Content>" in plain and "<FromUserName><![CDATA[mycreate]]></FromUserName>" in plain


def test_what_siyu_encrypts_wechatpy_decrypts_and_the_reverse() -> None:
    ours = CallbackCrypto(TOKEN, AES_KEY, CORP)
    theirs = WeChatCrypto(TOKEN, AES_KEY, CORP)
    text = contact_xml("add_external_contact", "wmA", State="PKG01") + "家长" * 40  # multi-byte, several blocks
    signature, body = ours.seal(text, "1764550800", "nonce1")
    assert theirs.decrypt_message(body.decode(), signature, "1764550800", "nonce1") == text
    params, body = WeComSide().callback(text)
    assert ours.open(params["msg_signature"], params["timestamp"], params["nonce"], body) == text


def test_crypto_failures_are_typed_one_line_errors() -> None:
    ours = CallbackCrypto(TOKEN, AES_KEY, CORP)
    params, body = WeComSide().callback("<xml/>")
    with pytest.raises(BadSignature):
        ours.open("0" * 40, params["timestamp"], params["nonce"], body)
    with pytest.raises(WrongCorp, match="ww_other"):
        CallbackCrypto(TOKEN, AES_KEY, "ww_other").open(params["msg_signature"], params["timestamp"], params["nonce"], body)
    with pytest.raises(BadAesKey, match="43 characters"):
        CallbackCrypto(TOKEN, AES_KEY[:-1], CORP)
    # Right signature, another key: garbage after decryption. Its last byte is a valid PKCS#7 pad about 1 time in 100
    # (the random IV), and the length field inside then runs past the end: either way a one-line MalformedCallback.
    with pytest.raises(MalformedCallback, match="bad padding after decryption|the decrypted message is shorter than its length says"):
        other = CallbackCrypto(TOKEN, "a" * 43, CORP)
        other.open(params["msg_signature"], params["timestamp"], params["nonce"], body)
    for encrypt in ("not base64!", "QUJD"):
        signature = ours.signature("1", "2", encrypt)
        with pytest.raises(MalformedCallback):
            ours.open(signature, "1", "2", f"<xml><Encrypt>{encrypt}</Encrypt></xml>".encode())
    with pytest.raises(MalformedCallback, match="DOCTYPE"):
        ours.open("x", "1", "2", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>')


# --- the app over HTTP --------------------------------------------------------------------------------


def test_url_verification_answers_the_decrypted_echostr(served: Served) -> None:
    response = served.client.get("/wecom/callback", params=WeComSide().verification("8520741963"))
    assert response.status_code == 200 and response.text == "8520741963"
    assert served.client.get("/healthz").json() == {"status": "ok", "playbook": "camp", "callback_path": "/wecom/callback"}


def test_url_verification_with_a_bad_signature_is_403(served: Served) -> None:
    params = WeComSide(token="another-token").verification("8520741963")
    response = served.client.get("/wecom/callback", params=params)
    assert response.status_code == 403 and "8520741963" not in response.text


def test_an_add_records_friend_added_through_the_hook_for_the_personas_account(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    response = served.post(wecom, contact_xml("add_external_contact", "wmParent01", State="PKG01", WelcomeCode="WELCOME-1"))
    assert response.status_code == 200 and response.text == "success"
    db = tmp_path / "siyu.db"
    [(kind, contact, at, hook, props)] = query(db, "SELECT type, contact_id, at, hook, props FROM events")
    assert (kind, contact, at, hook) == ("friend_added", "wmParent01", "2026-12-01T01:00:00Z", "card")
    assert '"persona": "host"' in props and '"userid": "aqi"' in props
    assert query(db, "SELECT account, added_at FROM contacts WHERE contact_id = 'wmParent01'") == [("wx_host_01", "2026-12-01T01:00:00Z")]
    # the code's 20 s count from the add (CreateTime), not from when serve got the callback 2 s later
    assert query(db, "SELECT code, contact_id, userid, received_at, used_at FROM wecom_welcome_codes") == [("WELCOME-1", "wmParent01", "aqi", "2026-12-01T01:00:00Z", None)]
    served.stop()
    assert served.added == [("wmParent01", ADDED_AT)]


def test_a_state_that_names_no_hook_is_kept_in_props(served: Served, tmp_path: Path) -> None:
    assert served.post(WeComSide(), contact_xml("add_external_contact", "wmX", State="live-0312")).text == "success"
    [(hook, props)] = query(tmp_path / "siyu.db", "SELECT hook, props FROM events")
    assert hook is None and '"state": "live-0312"' in props


def test_an_add_to_staff_who_is_no_persona_is_recorded_through_the_hook_but_welcomed_by_nobody(served: Served, tmp_path: Path) -> None:
    """zhangsan is in the corp but in no persona: the add counts for its hook, and no persona (not his customer's
    friend) is handed the add to welcome; the contact's account is the staff member the customer added."""
    wecom = WeComSide()
    assert served.post(wecom, contact_xml("add_external_contact", "wmX", userid="zhangsan", State="PKG01", WelcomeCode="W-Z")).text == "success"
    db = tmp_path / "siyu.db"
    [(kind, hook, props)] = query(db, "SELECT type, hook, props FROM events")
    assert (kind, hook) == ("friend_added", "card") and '"userid": "zhangsan"' in props and '"persona"' not in props
    assert query(db, "SELECT account FROM contacts") == [("zhangsan",)]
    [(note,)] = query(db, "SELECT note FROM wecom_callbacks")
    assert "'zhangsan' is no persona's wecom_userid: no welcome" in note
    assert any("no welcome" in line and "wmX" in line for line in served.log)
    served.stop()
    assert served.added == []


def test_the_same_callback_twice_records_once_and_calls_on_added_once(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    plain = contact_xml("add_external_contact", "wmParent01", State="PKG01", WelcomeCode="WELCOME-1")
    params, body = wecom.callback(plain)
    for _ in range(2):  # WeCom's retry: the very same request
        assert served.client.post("/wecom/callback", params=params, content=body).text == "success"
    assert served.post(wecom, plain).text == "success"  # and re-encrypted
    db = tmp_path / "siyu.db"
    assert counts(db) == {"events": 1, "contacts": 1, "wecom_callbacks": 3, "wecom_welcome_codes": 1}
    assert [row[0] for row in query(db, "SELECT recorded FROM wecom_callbacks ORDER BY id")][1:] == [
        '[{"event_id": "' + query(db, "SELECT event_id FROM events")[0][0] + '", "type": "friend_added", "contact_id": "wmParent01", "inserted": false}]'
    ] * 2
    assert any("a retry: recorded before" in line for line in served.log)
    served.stop()
    assert served.added == [("wmParent01", ADDED_AT)]


def test_deletes_record_friend_deleted_for_known_contacts_only(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    served.post(wecom, contact_xml("add_external_contact", "wmParent01"))
    later = ADDED_AT + timedelta(days=2)
    assert served.post(wecom, contact_xml("del_follow_user", "wmParent01", at=later)).text == "success"
    assert served.post(wecom, contact_xml("del_external_contact", "wmParent01", at=later + timedelta(hours=1), Source="DELETE_BY_TRANSFER")).text == "success"
    assert served.post(wecom, contact_xml("del_external_contact", "wmStranger", at=later)).text == "success"
    db = tmp_path / "siyu.db"
    rows = query(db, "SELECT type, contact_id, at, props FROM events ORDER BY at")
    assert [r[:3] for r in rows] == [
        ("friend_added", "wmParent01", "2026-12-01T01:00:00Z"),
        ("friend_deleted", "wmParent01", "2026-12-03T01:00:00Z"),
        ("friend_deleted", "wmParent01", "2026-12-03T02:00:00Z"),
    ]
    assert '"delete_source": "DELETE_BY_TRANSFER"' in rows[2][3]
    assert query(db, "SELECT contact_id FROM contacts") == [("wmParent01",)]
    [(recorded, note)] = query(db, "SELECT recorded, note FROM wecom_callbacks WHERE xml LIKE '%wmStranger%'")
    assert recorded == "[]" and "wmStranger: not in the store" in note


def test_group_member_changes_record_joins_and_leaves_per_member_without_staff(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    assert served.post(wecom, chat_xml("add_member", ["wmA", "wmB", "aqi"])).text == "success"
    assert served.post(wecom, chat_xml("del_member", ["wmB", "wmNever"], at=ADDED_AT + timedelta(hours=3), scene="QuitScene", items=False)).text == "success"
    db = tmp_path / "siyu.db"
    rows = query(db, "SELECT type, contact_id, group_id, props FROM events ORDER BY at, contact_id")
    assert [r[:3] for r in rows] == [("group_joined", "wmA", "g1"), ("group_joined", "wmB", "g1"), ("group_left", "wmB", "g1")]
    assert f'"chat_id": "{CHAT}"' in rows[0][3] and '"join_scene": "3"' in rows[0][3] and '"quit_scene": "3"' in rows[2][3]
    assert sorted(r[0] for r in query(db, "SELECT contact_id FROM contacts")) == ["wmA", "wmB"]
    notes = [r[0] for r in query(db, "SELECT note FROM wecom_callbacks ORDER BY id")]
    assert "staff left out: aqi" in notes[0] and "wmNever: not in the store" in notes[1]
    served.stop()
    assert served.added == []


def test_a_half_add_then_its_confirmation_is_one_friend_added(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    served.post(wecom, contact_xml("add_half_external_contact", "wmHalf", WelcomeCode="W-HALF"))
    served.post(wecom, contact_xml("add_external_contact", "wmHalf", at=ADDED_AT + timedelta(minutes=5)))
    db = tmp_path / "siyu.db"
    assert query(db, "SELECT type, at FROM events") == [("friend_added", "2026-12-01T01:00:00Z")]
    assert "already recorded by its add_half_external_contact" in query(db, "SELECT note FROM wecom_callbacks ORDER BY id DESC LIMIT 1")[0][0]
    served.stop()
    assert served.added == [("wmHalf", ADDED_AT)]


def test_other_kinds_are_kept_and_answered_success(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    assert served.post(wecom, contact_xml("edit_external_contact", "wmA")).text == "success"
    assert served.post(wecom, "<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event></xml>").text == "success"
    db = tmp_path / "siyu.db"
    assert counts(db)["events"] == 0
    assert query(db, "SELECT kind, note FROM wecom_callbacks ORDER BY id") == [
        ("change_external_contact/edit_external_contact", "kept; siyu records no event for this kind"),
        ("change_contact", "kept; siyu records no event for this kind"),
    ]


def test_a_bad_signature_is_403_and_records_nothing(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    served.post(wecom, contact_xml("add_external_contact", "wmParent01"))
    db = tmp_path / "siyu.db"
    before = counts(db)
    params, body = wecom.callback(contact_xml("add_external_contact", "wmForged"))
    forged = served.client.post("/wecom/callback", params={**params, "msg_signature": "0" * 40}, content=body)
    assert forged.status_code == 403 and "msg_signature does not match" in forged.text
    other_token = WeComSide(token="not-our-token").callback(contact_xml("add_external_contact", "wmForged"))
    assert served.client.post("/wecom/callback", params=other_token[0], content=other_token[1]).status_code == 403
    assert counts(db) == before
    assert any(line.startswith("rejected POST from 127.0.0.1: msg_signature does not match") for line in served.log)


def test_a_callback_for_another_corp_is_rejected(served: Served, tmp_path: Path) -> None:
    before = counts(tmp_path / "siyu.db")
    response = served.post(WeComSide(corp="wwSomeoneElse"), contact_xml("add_external_contact", "wmParent01"))
    assert response.status_code == 403 and "wwSomeoneElse" in response.text
    assert counts(tmp_path / "siyu.db") == before


def test_what_is_not_wecoms_form_is_400(served: Served, tmp_path: Path) -> None:
    before = counts(tmp_path / "siyu.db")
    assert served.client.post("/wecom/callback", content=b"<xml/>").status_code == 400  # no signature at all
    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP)
    params = {"msg_signature": crypto.signature("1", "2", "QUJD"), "timestamp": "1", "nonce": "2"}
    assert served.client.post("/wecom/callback", params=params, content=b"<xml><Encrypt>QUJD</Encrypt></xml>").status_code == 400
    assert served.client.post("/wecom/callback", params=params, content=b"not xml").status_code == 400
    assert served.post(WeComSide(), "this is not xml").status_code == 400  # signed and encrypted, but no XML inside
    assert counts(tmp_path / "siyu.db") == before


def test_a_welcome_code_is_used_once_within_20_seconds(served: Served, tmp_path: Path) -> None:
    served.post(WeComSide(), contact_xml("add_external_contact", "wmParent01", WelcomeCode="WELCOME-1"))
    served.stop()
    db = tmp_path / "siyu.db"
    first, second = sqlite3.connect(db, isolation_level=None), sqlite3.connect(db, isolation_level=None)
    import sqlite_utils

    one, two = sqlite_utils.Database(first), sqlite_utils.Database(second)
    assert welcome_code(one, "wmParent01", "aqi", RECEIVED + timedelta(seconds=21)) is None
    assert welcome_code(one, "wmParent01", "lilaoshi", RECEIVED) is None
    soon = RECEIVED + timedelta(seconds=15)
    assert welcome_code(one, "wmParent01", "aqi", soon) == welcome_code(two, "wmParent01", "aqi", soon) == "WELCOME-1"
    assert [use_welcome_code(one, "WELCOME-1", soon), use_welcome_code(two, "WELCOME-1", soon)] == [True, False]
    assert welcome_code(two, "wmParent01", "aqi", soon) is None
    assert query(db, "SELECT used_at FROM wecom_welcome_codes") == [("2026-12-01T01:00:17Z",)]
    first.close()
    second.close()


def test_a_stale_welcome_code_cannot_be_used(playbook: Path, tmp_path: Path) -> None:
    running = Served(playbook, tmp_path / "siyu.db")
    running.post(WeComSide(), contact_xml("add_external_contact", "wmLate", WelcomeCode="W-LATE"))
    running.stop()
    import sqlite_utils

    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "siyu.db", isolation_level=None))
    assert use_welcome_code(db, "W-LATE", RECEIVED + timedelta(seconds=25)) is False
    db.conn.close()


# --- startup errors and the real process ---------------------------------------------------------------


@pytest.mark.parametrize("missing", ["SIYU_WECOM_TOKEN", "SIYU_WECOM_AES_KEY", "SIYU_WECOM_CORP_ID", "SIYU_WECOM_SECRET"])
def test_a_missing_variable_is_a_startup_error_naming_it(missing: str, playbook: Path, tmp_path: Path) -> None:
    from siyu_cli.serve import app

    with pytest.raises(SiyuError, match=f"environment variable {missing} is not set"):
        app(playbook, db_path=tmp_path / "siyu.db", environ={k: v for k, v in ENV.items() if k != missing})
    assert not (tmp_path / "siyu.db").exists()


@pytest.mark.parametrize(("value", "wrong"), [("qyapi.weixin.qq.com", "is not an http:// or https:// URL"), ("ftp://x", "is not an http:// or https:// URL"), (" https://qyapi.weixin.qq.com", "has spaces around it"), ("https://", "names no host"), ("https://qyapi.weixin.qq.com/cgi-bin/", "ends in /cgi-bin, which siyu adds to every call itself"), ("https://proxy.example/wecom/CGI-BIN", "ends in /cgi-bin, which siyu adds to every call itself")])
def test_a_siyu_wecom_api_that_can_never_work_is_a_startup_error(value: str, wrong: str, playbook: Path, tmp_path: Path) -> None:
    from siyu_cli.serve import app

    with pytest.raises(SiyuError) as raised:
        app(playbook, db_path=tmp_path / "siyu.db", environ={**ENV, "SIYU_WECOM_API": value})
    assert raised.value.message == f"SIYU_WECOM_API={value!r} {wrong}, so no call can reach WeCom"
    assert "https://qyapi.weixin.qq.com" in raised.value.hint and "without /cgi-bin" in raised.value.hint
    assert not (tmp_path / "siyu.db").exists()


def test_the_real_serve_with_siyu_wecom_api_not_a_url_does_not_start(playbook: Path, tmp_path: Path) -> None:
    """It used to listen, and every add's welcome then waited as if WeCom were down."""
    with RealServe(playbook, tmp_path, siyu_env(**{**ENV, "SIYU_WECOM_API": "notaurl"}), "--db", str(tmp_path / "siyu.db")) as server:
        said = server.first + ("" if server.url else server.rest())
    assert server.proc.returncode == 1, said
    assert "SIYU_WECOM_API='notaurl' is not an http:// or https:// URL" in said and "qyapi.weixin.qq.com" in said and "Traceback" not in said
    assert not (tmp_path / "siyu.db").exists()


def test_serve_without_a_wecom_output_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = write_playbook(tmp_path, name="plain.yaml")
    result = invoke("serve", str(plain), "--db", str(tmp_path / "siyu.db"), code=2)
    assert "has no wecom output" in result.stderr and "{type: wecom}" in result.stderr
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIYU_WECOM_AES_KEY", "too-short")
    result = invoke("serve", str(wecom_playbook(tmp_path)), "--db", str(tmp_path / "siyu.db"), code=1)
    assert "EncodingAESKey is not 43 characters" in result.stderr and "Traceback" not in result.stderr
    result = invoke("serve", str(wecom_playbook(tmp_path)), "--path", "healthz", code=2)
    assert "--path 'healthz'" in result.stderr


def test_the_real_siyu_serve_process_takes_callbacks_and_stops_on_sigterm(playbook: Path, tmp_path: Path) -> None:
    with RealServe(playbook, tmp_path, siyu_env(**ENV), "--db", str(tmp_path / "siyu.db")) as server:
        assert "listening on http://127.0.0.1:" in server.first, server.first
        assert server.proc.stderr is not None and "客户联系 → API → 接收事件服务器" in server.proc.stderr.readline()
        wecom = WeComSide()
        assert httpx.get(server.url, params=wecom.verification("echo-1")).text == "echo-1"
        response = server.post(wecom, contact_xml("add_external_contact", "wmReal", State="card"))
        assert response.status_code == 200 and response.text == "success"
        rest = server.stop()
    assert server.proc.returncode == 0, rest
    assert "URL verified" in rest and "friend_added wmReal" in rest and "stopped (SIGTERM)" in rest and "Traceback" not in rest
    assert query(tmp_path / "siyu.db", "SELECT type, contact_id, hook FROM events") == [("friend_added", "wmReal", "card")]


def test_serve_without_the_secret_its_welcomes_need_does_not_start(playbook: Path, tmp_path: Path) -> None:
    """Without the 客户联系 Secret every add's welcome would fail ("is not set") while serve looked healthy."""
    env = siyu_env(**{k: v for k, v in ENV.items() if k != "SIYU_WECOM_SECRET"})
    with RealServe(playbook, tmp_path, env, "--db", str(tmp_path / "siyu.db")) as server:
        said = server.first + ("" if server.url else server.rest())  # listening: it started, and is killed below
    assert server.proc.returncode == 1, said
    assert "environment variable SIYU_WECOM_SECRET is not set" in said and "客户联系" in said and "Traceback" not in said
    assert not (tmp_path / "siyu.db").exists()


def test_a_welcome_code_counts_its_20_seconds_from_the_add_not_from_when_serve_got_it(playbook: Path, tmp_path: Path) -> None:
    """serve was down: WeCom's retry of an add 3 minutes old carries a code WeCom no longer takes (41050)."""
    import sqlite_utils

    late = ADDED_AT + timedelta(minutes=3)
    running = Served(playbook, tmp_path / "siyu.db", now=lambda: late)
    wecom = WeComSide()
    running.post(wecom, contact_xml("add_external_contact", "wmOld", WelcomeCode="W-OLD"))
    running.post(wecom, contact_xml("add_external_contact", "wmAhead", at=late + timedelta(seconds=30), WelcomeCode="W-AHEAD"))  # WeCom's clock ahead of ours
    running.stop()
    assert query(tmp_path / "siyu.db", "SELECT code, received_at FROM wecom_welcome_codes ORDER BY code") == [
        ("W-AHEAD", "2026-12-01T01:03:00Z"),  # never in the future of serve's clock
        ("W-OLD", "2026-12-01T01:00:00Z"),
    ]
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "siyu.db", isolation_level=None))
    assert welcome_code(db, "wmOld", "aqi", late) is None
    assert welcome_code(db, "wmAhead", "aqi", late + timedelta(seconds=5)) == "W-AHEAD"
    db.conn.close()


def test_the_real_serve_sends_no_welcome_with_the_code_of_an_add_wecom_retried_minutes_later(tmp_path: Path) -> None:
    import time

    from tests.wecom_fake import WecomFake

    hook = {"id": "card", "kind": "package_card", "code": "PKG01", "persona": "host", "welcome": [{"after": "0m", "text": "你好呀～"}]}
    with WecomFake() as wecom:
        playbook = wecom_playbook(tmp_path, hooks=[hook], start=datetime.now(UTC).strftime("%Y-%m-%d"), limits={"missed": {"max_late": "6h"}})
        added = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        wecom.now = added.timestamp()
        code = wecom.welcome_code("aqi", "wmRetried")  # issued at the add, two minutes ago
        wecom.now = time.time()
        env = siyu_env(**{**ENV, "SIYU_WECOM_API": wecom.url, "SIYU_WECOM_CORP_ID": wecom.corp_id, "SIYU_WECOM_SECRET": wecom.secret})
        with RealServe(playbook, tmp_path, env) as server:
            plain = contact_xml("add_external_contact", "wmRetried", at=added, State="PKG01", WelcomeCode=code).replace(CORP, wecom.corp_id)
            assert server.post(WeComSide(corp=wecom.corp_id), plain).text == "success"
            log = server.stop()
        assert "welcome pass for wmRetried" in log and "Traceback" not in log, log
        assert wecom.of("externalcontact/send_welcome_msg") == []  # the code was already past WeCom's 20 s
    assert query(tmp_path / "siyu.db", "SELECT used_at FROM wecom_welcome_codes") == [(None,)]


def test_a_group_join_makes_contacts_of_external_members_only(served: Served, tmp_path: Path) -> None:
    """MemChangeList lists colleagues too: a WeCom external_userid starts with wm (a WeChat user) or wo (a WeCom user)."""
    wecom = WeComSide()
    assert served.post(wecom, chat_xml("add_member", ["wmA", "woPartner", "zhangsan", "aqi"])).text == "success"
    assert served.post(wecom, chat_xml("del_member", ["zhangsan"], at=ADDED_AT + timedelta(hours=1), scene="QuitScene")).text == "success"
    db = tmp_path / "siyu.db"
    assert query(db, "SELECT type, contact_id FROM events ORDER BY contact_id") == [("group_joined", "wmA"), ("group_joined", "woPartner")]
    assert query(db, "SELECT contact_id FROM contacts ORDER BY contact_id") == [("wmA",), ("woPartner",)]
    notes = [r[0] for r in query(db, "SELECT note FROM wecom_callbacks ORDER BY id")]
    assert "staff left out: aqi" in notes[0] and "colleagues left out (no external_userid, which starts wm or wo): zhangsan" in notes[0]
    assert "colleagues left out" in notes[1] and "zhangsan" in notes[1]


def test_a_locked_store_answers_503_before_wecom_gives_up_and_its_retry_records_once(served: Served, tmp_path: Path) -> None:
    wecom = WeComSide()
    params, body = wecom.callback(contact_xml("add_external_contact", "wmLocked"))
    holder = sqlite3.connect(tmp_path / "siyu.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
    try:
        with httpx.Client(base_url=served.base, timeout=5) as impatient:  # WeCom waits 5 s for an answer, then gives up
            response = impatient.post("/wecom/callback", params=params, content=body)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert any(line.startswith("not recorded, WeCom will retry: store is locked") for line in served.log)
    assert served.client.post("/wecom/callback", params=params, content=body).text == "success"  # WeCom's retry
    assert counts(tmp_path / "siyu.db") == {"events": 1, "contacts": 1, "wecom_callbacks": 1, "wecom_welcome_codes": 0}


def test_a_playbook_edited_while_serve_runs_maps_the_next_callback(served: Served, playbook: Path, tmp_path: Path) -> None:
    import yaml

    wecom = WeComSide()
    data = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    data["hooks"].append({"id": "live", "kind": "live", "code": "LIVE9"})
    playbook.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert served.post(wecom, contact_xml("add_external_contact", "wmLive", State="LIVE9")).text == "success"
    playbook.write_text("siyu: 1\nid: [broken\n", encoding="utf-8")  # a broken edit keeps the last good playbook
    assert served.post(wecom, contact_xml("add_external_contact", "wmCard", State="PKG01")).text == "success"
    db = tmp_path / "siyu.db"
    assert query(db, "SELECT contact_id, hook FROM events ORDER BY contact_id") == [("wmCard", "card"), ("wmLive", "live")]
    served.stop()
    assert any("callbacks are mapped by the new one" in line for line in served.log)
    assert any("does not load, so callbacks keep the last one" in line for line in served.log)


# --- the welcome pass serve runs after an add, against the fake WeCom ------------------------------------


class Clock:
    """serve's clock and sleep for its welcome passes, moving the fake WeCom's clock with it: a back-off costs no real time."""

    def __init__(self, wecom: WecomFake, start: datetime) -> None:
        self.wecom = wecom
        self.at = start
        self.slept: list[float] = []
        self.meanwhile: Callable[[], None] = lambda: None  # what happens at WeCom while serve waits

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        self.wecom.advance(seconds)
        self.meanwhile()


@dataclass
class Welcoming:
    """serve's receiver with its real welcome pass (WelcomeOnAdd) on a test clock, and the fake WeCom it sends to."""

    wecom: WecomFake
    clock: Clock
    served: Served
    lines: list[str]
    db: Path

    def add(self, contact_id: str) -> str:
        """An add with a WelcomeCode the fake issued at the add; returns the code."""
        self.wecom.now = ADDED_AT.timestamp()
        code = self.wecom.welcome_code("aqi", contact_id)
        self.wecom.now = RECEIVED.timestamp()
        plain = contact_xml("add_external_contact", contact_id, State="PKG01", WelcomeCode=code).replace(CORP, self.wecom.corp_id)
        assert self.served.post(WeComSide(corp=self.wecom.corp_id), plain).text == "success"
        return code

    def passes(self) -> list[str]:
        """Serve's log once the welcome passes handed over are done."""
        self.served.stop()
        return [line for line in self.lines if line.startswith("welcome pass for ")]


def welcoming_with(tmp_path: Path, wecom: WecomFake, text: str = "你好呀～") -> Welcoming:
    """serve with its welcome pass for a playbook whose hook PKG01 (persona host, staff aqi) welcomes with `text`."""
    from siyu_cli.serve._welcome import WelcomeOnAdd

    hook = {"id": "card", "kind": "package_card", "code": "PKG01", "persona": "host", "welcome": [{"after": "0m", "text": text}]}
    playbook = wecom_playbook(tmp_path, hooks=[hook], limits={"missed": {"max_late": "6h"}})
    clock, lines, db = Clock(wecom, RECEIVED), [], tmp_path / "siyu.db"
    welcome = WelcomeOnAdd(playbook, db_path=str(db), outbox_dir=tmp_path / "outbox", log=lines.append, now=clock.now, sleep=clock.sleep)
    served = Served(playbook, db, environ={**ENV, "SIYU_WECOM_CORP_ID": wecom.corp_id, "SIYU_WECOM_SECRET": wecom.secret}, then=welcome)
    return Welcoming(wecom, clock, served, lines, db)


@pytest.fixture
def welcoming(tmp_path: Path, wecom: WecomFake) -> Iterator[Welcoming]:
    found = welcoming_with(tmp_path, wecom)
    yield found
    found.served.stop()


def test_a_welcome_wecom_refuses_as_too_frequent_is_retried_within_20_seconds_then_says_why_and_cron_sends_it_once(
    welcoming: Welcoming, monkeypatch: pytest.MonkeyPatch
) -> None:
    wecom = welcoming.wecom
    wecom.inject("externalcontact/send_welcome_msg", 45009, times=None)
    welcoming.add("wmBusy")
    [line] = welcoming.passes()
    tries = wecom.of("externalcontact/send_welcome_msg")
    # serve's passes 1, 2, 4 and 8 s apart (each with the client's own second try a second on), the last started by 18 s
    assert [call.at - ADDED_AT.timestamp() for call in tries] == [2, 3, 4, 5, 7, 8, 12, 13, 18, 19]
    assert welcoming.clock.slept == [1, 1, 1, 2, 1, 4, 1, 5, 1]
    assert line.startswith("welcome pass for wmBusy (added 09:00:00): sent 0 · waiting: wecom: WeCom externalcontact/send_welcome_msg: errcode 45009"), line
    assert "retried 4× within WeCom's 20 s window; a later pass (siyu run) sends it from 09:01:" in line and "as a mass send (群发) from the staff member" in line, line
    assert [other for other in welcoming.lines if other.startswith("  ")] == []  # the reason is said once, on the line
    assert query(welcoming.db, "SELECT state, reason FROM drafts WHERE target = 'contact:wmBusy'") == [("pending", "retry")]
    # cron's pass after the 20 s: the welcome goes once, as a one-customer task; the code is never tried again
    wecom.clear()
    wecom.now = (ADDED_AT + timedelta(minutes=2)).timestamp()
    monkeypatch.chdir(welcoming.db.parent)
    invoke("run", "--once", "--now", "2026-12-01 09:02", "--db", str(welcoming.db))
    assert wecom.count("externalcontact/send_welcome_msg") == len(tries) and wecom.welcomes == []
    made = [call.body for call in wecom.of("externalcontact/add_msg_template") if call.errcode == 0]
    assert [task["external_userid"] for task in made if task["chat_type"] == "single"] == [["wmBusy"]], made
    assert [task["text"]["content"] for task in made if task["chat_type"] == "single"] == ["你好呀～"]
    assert query(welcoming.db, "SELECT state FROM drafts WHERE target = 'contact:wmBusy'") == [("sent",)]


def test_a_welcome_wecom_is_busy_for_goes_with_its_code_on_a_retry(welcoming: Welcoming) -> None:
    welcoming.wecom.inject("externalcontact/send_welcome_msg", -1, times=3)  # the first pass's two tries, and the retry's first
    code = welcoming.add("wmBlip")
    [line] = welcoming.passes()
    assert line == "welcome pass for wmBlip (added 09:00:00): sent 1 · retried 1× within WeCom's 20 s window", line
    assert [other for other in welcoming.lines if other.startswith("  ")] == []  # no stale "retry later" under it
    assert [(w["welcome_code"], w["at"] - ADDED_AT.timestamp()) for w in welcoming.wecom.welcomes] == [(code, 5)]
    assert welcoming.wecom.count("externalcontact/add_msg_template") == 0
    assert query(welcoming.db, "SELECT state FROM drafts WHERE target = 'contact:wmBlip'") == [("sent",)]
    assert query(welcoming.db, "SELECT used_at IS NOT NULL FROM wecom_welcome_codes") == [(1,)]


def test_a_retry_wecom_answers_41051_is_sent_and_nothing_goes_twice(welcoming: Welcoming) -> None:
    """The busy answer came after all from a welcome that went (or another app's came first): WeCom says 41051."""
    wecom = welcoming.wecom
    wecom.inject("externalcontact/send_welcome_msg", -1, times=2)

    def went_after_all() -> None:
        for code in wecom.welcome_codes.values():
            code["used"] = True

    welcoming.clock.meanwhile = went_after_all
    welcoming.add("wmTwice")
    [line] = welcoming.passes()
    assert line == "welcome pass for wmTwice (added 09:00:00): sent 1 · retried 1× within WeCom's 20 s window", line
    assert [call.errcode for call in wecom.of("externalcontact/send_welcome_msg")] == [-1, -1, 41051]
    assert wecom.welcomes == [] and wecom.count("externalcontact/add_msg_template") == 0
    assert query(welcoming.db, "SELECT state FROM drafts WHERE target = 'contact:wmTwice'") == [("sent",)]


def test_a_welcome_stopped_by_a_wrong_secret_is_not_retried(welcoming: Welcoming) -> None:
    welcoming.wecom.inject("gettoken", 40001, times=None)
    welcoming.add("wmSecret")
    [line] = welcoming.passes()
    # one gettoken for the customer's name (externalcontact/get), one for the welcome: neither is tried again
    assert welcoming.wecom.count("gettoken") == 2 and welcoming.clock.slept == []
    assert "sent 0 · waiting:" in line and "the output's setup is wrong (below): a pass after the fix sends it" in line, line
    assert any("errcode 40001" in other for other in welcoming.lines if other.startswith("  ")), welcoming.lines


def test_a_welcome_wecom_cannot_be_reached_for_says_so_on_the_pass_line(welcoming: Welcoming, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:  # bound, never listening: a connection to it is refused
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("SIYU_WECOM_API", nowhere)
        welcoming.add("wmOffline")
        [line] = welcoming.passes()
    assert f"sent 0 · waiting: wecom: WeCom gettoken: cannot reach {nowhere}" in line, line
    assert welcoming.wecom.calls == []


def test_a_welcome_without_its_code_at_night_says_it_waits_for_the_end_of_quiet_hours(tmp_path: Path, wecom: WecomFake) -> None:
    from siyu_cli.serve._welcome import WelcomeOnAdd

    night = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)  # 01:30 in Shanghai
    hook = {"id": "card", "kind": "package_card", "code": "PKG01", "persona": "host", "welcome": [{"after": "0m", "text": "你好呀～"}]}
    playbook = wecom_playbook(tmp_path, hooks=[hook], limits={"missed": {"max_late": "12h"}, "quiet_hours": "22:30-08:00"})
    clock, lines, db = Clock(wecom, night), [], tmp_path / "siyu.db"
    welcome = WelcomeOnAdd(playbook, db_path=str(db), outbox_dir=tmp_path / "outbox", log=lines.append, now=clock.now, sleep=clock.sleep)
    served = Served(playbook, db, environ={**ENV, "SIYU_WECOM_CORP_ID": wecom.corp_id, "SIYU_WECOM_SECRET": wecom.secret}, then=welcome)
    try:
        wecom.now = night.timestamp()
        plain = contact_xml("add_external_contact", "wmNight", at=night, State="PKG01").replace(CORP, wecom.corp_id)  # no WelcomeCode
        assert served.post(WeComSide(corp=wecom.corp_id), plain).text == "success"
    finally:
        served.stop()
    [line] = [text for text in lines if text.startswith("welcome pass for ")]
    assert line.startswith("welcome pass for wmNight (added 01:30:00): sent 0 · waiting: wecom: the add's WelcomeCode cannot be used (none came with the add"), line
    assert "as one task with the other welcomes of its text held until then" in line and "sends it from 08:00:00 as a mass send" in line, line
    assert line.count("08:00") == 1, line
    assert wecom.of("externalcontact/add_msg_template") == []  # nothing rang the staff member's phone at night


# --- the customer's name (audit 10a #3) and what the pass line says (#11, #12) ---------------------------


def test_a_new_customers_welcome_greets_them_by_the_name_wecom_gives(tmp_path: Path, wecom: WecomFake) -> None:
    welcoming = welcoming_with(tmp_path, wecom, "{{ contact.name }}，你好呀～")
    wecom.add_contact("wmReal0001", "王小美", follow=["aqi"], state="PKG01")
    welcoming.add("wmReal0001")
    [line] = welcoming.passes()
    assert line == "welcome pass for wmReal0001 (added 09:00:00): sent 1", line
    assert [w["text"] for w in wecom.welcomes] == ["王小美，你好呀～"]  # not "wmReal0001，你好呀～"
    assert query(welcoming.db, "SELECT name FROM contacts WHERE contact_id = 'wmReal0001'") == [("王小美",)]


@pytest.mark.parametrize("fault", ["refused", "hung"])
def test_a_name_wecom_does_not_give_in_time_leaves_it_empty_and_the_welcome_still_goes(fault: str, tmp_path: Path, wecom: WecomFake) -> None:
    welcoming = welcoming_with(tmp_path, wecom, "{{ contact.name or '朋友' }}，你好呀～")
    if fault == "hung":
        wecom.add_contact("wmSlow", "慢慢", follow=["aqi"])
        wecom.hang("externalcontact/get")  # never answered: serve gives up after NAME_WITHIN (3 s), the code keeps its 20 s
    welcoming.add("wmSlow")  # refused: the fake knows no such customer (84061)
    welcoming.passes()
    wecom.release()
    assert [w["text"] for w in wecom.welcomes] == ["朋友，你好呀～"]  # never the wm… id in the customer's message
    [said] = [line for line in welcoming.lines if line.startswith("name of wmSlow")]
    assert "WeCom did not give it" in said and "{{ contact.name }} is empty in its texts" in said, said
    assert ("84061" if fault == "refused" else "no answer") in said, said
    assert query(welcoming.db, "SELECT COALESCE(name, '') FROM contacts WHERE contact_id = 'wmSlow'") == [("",)]


def test_a_daytime_add_without_a_code_says_it_made_a_task_for_the_staff_member_to_confirm(welcoming: Welcoming) -> None:
    plain = contact_xml("add_external_contact", "wmNoCode", State="PKG01").replace(CORP, welcoming.wecom.corp_id)
    welcoming.wecom.now = RECEIVED.timestamp()
    assert welcoming.served.post(WeComSide(corp=welcoming.wecom.corp_id), plain).text == "success"
    [line] = welcoming.passes()
    assert line.startswith("welcome pass for wmNoCode (added 09:00:00): sent 0 · made 1 one-customer task(s) for aqi to confirm in their WeCom client"), line
    [task] = welcoming.wecom.templates.values()
    assert list(task.recipients) == ["wmNoCode"] and task.sender == "aqi"


def test_two_welcomes_waiting_for_two_staff_members_name_both() -> None:
    from siyu_cli.dispatch import PassSummary
    from siyu_cli.serve._welcome import outcome

    due = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)
    waiting = [(f"wecom: … and goes to {who} as one task with the other welcomes of its text held until then", due) for who in ("linjie", "chen.gu")]
    line = outcome(PassSummary(now=due), waiting)
    assert line.startswith("sent 0 · waiting 2: ") and "goes to linjie" in line and "goes to chen.gu" in line, line


# --- start-up: WeCom asked once ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "api", "said"),
    [
        ("good", "fake", "WeCom answered (http://127.0.0.1:"),
        ("wrong", "fake", "WeCom refused the app's token: "),
        ("good", "http://127.0.0.1:9", "WeCom could not be asked for a token: "),
        ("good", "fake/elsewhere", "WeCom's API cannot be used from here: WeCom gettoken: HTTP 404"),
    ],
)
def test_serve_asks_wecom_for_a_token_as_it_starts_and_says_what_it_answered(
    secret: str, api: str, said: str, tmp_path: Path, wecom: WecomFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siyu_cli.serve._welcome import WelcomeOnAdd

    monkeypatch.setenv("SIYU_WECOM_API", api.replace("fake", wecom.url))
    monkeypatch.setenv("SIYU_WECOM_SECRET", wecom.secret if secret == "good" else "not-the-secret")
    playbook = wecom_playbook(tmp_path)
    lines: list[str] = []
    WelcomeOnAdd(playbook, db_path=str(tmp_path / "siyu.db"), outbox_dir=tmp_path / "outbox", log=lines.append, sleep=lambda _: None).warm_up()
    [line] = lines
    assert line.startswith(said), line
    if secret == "wrong":
        assert "40001" in line and "no welcome goes until this is fixed" in line and "SIYU_WECOM_SECRET" in line
    if api.startswith("http"):
        assert "each welcome is tried again within its 20 s" in line
    if said.startswith("WeCom answered"):
        assert query(tmp_path / "siyu.db", "SELECT COUNT(*) FROM wecom_tokens") == [(1,)]  # kept for every pass


def test_the_real_serve_logs_wecom_s_answer_at_start_and_its_first_welcome_needs_no_second_token(tmp_path: Path, wecom: WecomFake) -> None:
    playbook = wecom_playbook(tmp_path)
    env = siyu_env(**{**ENV, "SIYU_WECOM_API": wecom.url, "SIYU_WECOM_CORP_ID": wecom.corp_id, "SIYU_WECOM_SECRET": "not-the-secret"})
    with RealServe(playbook, tmp_path, env) as server:
        assert server.url, server.first
        assert wecom.wait_for("gettoken", timeout=30)
        log = server.stop()
    assert "WeCom refused the app's token" in log and "40001" in log and "Traceback" not in log, log
