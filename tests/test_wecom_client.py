"""The WeCom server-API client against the fake WeCom server over real HTTP: the token shared by processes, refresh,
back-off, fail_list, paging, welcomes, uploads, and what a lost answer means for a creating call."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from siyu_cli.errors import DeliveryError, WecomError, WecomMaybeSent, WecomTransient
from siyu_cli.render._media import Media
from siyu_cli.store import immediate, open_store
from siyu_cli.wecom import MAX_CHATS, MAX_EXTERNAL, WecomClient
from tests.wecom_fake import START, WecomFake

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x1f\x15\xc4\x89" + b"\0" * 40
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 64
ADD = "externalcontact/add_msg_template"
TASK = "externalcontact/get_groupmsg_task"


class Sleeps:
    """The injected sleep: moves the fake's clock, and remembers each wait."""

    def __init__(self, fake: WecomFake) -> None:
        self.fake = fake
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.fake.advance(seconds)


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_store(tmp_path / "siyu.db")


@pytest.fixture
def sleeps(wecom: WecomFake) -> Sleeps:
    return Sleeps(wecom)


@pytest.fixture
def make(wecom: WecomFake, db: sqlite_utils.Database, sleeps: Sleeps) -> Iterator[Callable[..., WecomClient]]:
    """WecomClients on the fake's clock and the test's store (base URL from SIYU_WECOM_API, as in production)."""
    made: list[WecomClient] = []

    def build(**changes: object) -> WecomClient:
        options: dict = {"db": db, "clock": lambda: wecom.now, "sleep": sleeps, **changes}
        client = WecomClient(str(options.pop("corp_id", wecom.corp_id)), str(options.pop("secret", wecom.secret)), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def client(make: Callable[..., WecomClient]) -> WecomClient:
    return make()


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def image(tmp_path: Path, name: str = "poster.png", data: bytes = PNG) -> Media:
    path = tmp_path / name
    path.write_bytes(data)
    return Media(kind="image", source=name, path=str(path))


# -- the token ------------------------------------------------------------------------------------------------


def test_one_gettoken_for_eight_processes_on_one_store(wecom: WecomFake, tmp_path: Path) -> None:
    store = tmp_path / "shared.db"
    open_store(store).conn.close()
    script = textwrap.dedent(
        """
        import os, sys
        from siyu_cli.store import open_store
        from siyu_cli.wecom import WecomClient
        db = open_store(sys.argv[1])
        sys.stdin.readline()
        with WecomClient(os.environ["SIYU_WECOM_CORP_ID"], os.environ["SIYU_WECOM_SECRET"], db=db) as client:
            print(client.token())
        """
    )
    wecom.hold("gettoken")  # the first fetch waits, so the others queue on the store's lock meanwhile
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    assert wecom.wait_for("gettoken")
    wecom.release()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    tokens = {out.strip() for out, _ in outputs}
    assert len(tokens) == 1 and tokens != {""}
    assert wecom.count("gettoken") == 1
    [row] = open_store(store).execute("SELECT app, token FROM wecom_tokens").fetchall()
    assert row[1] in tokens and wecom.secret not in row[0]


def test_token_is_cached_and_fetched_again_only_near_expiry(wecom: WecomFake, client: WecomClient) -> None:
    first = client.token()
    wecom.advance(7200 - 301)
    assert client.token() == first and wecom.count("gettoken") == 1
    wecom.advance(2)  # within 5 minutes of expiry: fetch before WeCom refuses it
    assert client.token() == first  # WeCom hands back the same token while it is valid …
    assert wecom.count("gettoken") == 2
    client.token()
    assert wecom.count("gettoken") == 2  # … so it is not asked again on every call
    wecom.advance(300)
    renewed = client.token()
    assert renewed != first and wecom.count("gettoken") == 3


def test_secret_never_reaches_the_store(wecom: WecomFake, client: WecomClient, db: sqlite_utils.Database) -> None:
    client.token()
    dump = "\n".join(db.conn.iterdump())
    assert wecom.secret not in dump


@pytest.mark.parametrize("expire", ["expire_tokens", "revoke_tokens"])
def test_a_rejected_token_mid_run_is_fetched_again_once(wecom: WecomFake, client: WecomClient, expire: str) -> None:
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    getattr(wecom, expire)()  # 42001 access_token已过期, or 40014 不合法的access_token
    assert [task["status"] for task in client.groupmsg_task(msgid)] == [0]
    reads = wecom.of(TASK)
    assert [call.errcode for call in reads] == [42001 if expire == "expire_tokens" else 40014, 0]
    assert reads[0].query["access_token"] != reads[1].query["access_token"]
    assert wecom.count("gettoken") == 2


def test_a_token_rejected_twice_is_an_error_not_a_loop(wecom: WecomFake, client: WecomClient) -> None:
    client.token()
    wecom.inject(TASK, 42001, times=2)
    with pytest.raises(WecomError) as raised:
        list(client.groupmsg_task("msg1"))
    assert raised.value.errcode == 42001 and wecom.count(TASK) == 2 and wecom.count("gettoken") == 2


def test_a_process_refreshing_takes_the_token_another_already_renewed(wecom: WecomFake, make: Callable[..., WecomClient], tmp_path: Path) -> None:
    runner, server = make(), make(db=open_store(tmp_path / "siyu.db"))  # two connections, as two processes
    msgid, _ = runner.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    wecom.expire_tokens()
    wecom.hold(TASK)  # the runner's read goes out with the old token; its 42001 waits
    reading = ThreadPoolExecutor(1).submit(lambda: list(runner.groupmsg_task(msgid)))
    assert wecom.wait_for(TASK)
    renewed = server.token(force=True)  # meanwhile another process meets the expiry and renews
    wecom.release()
    assert [task["userid"] for task in reading.result(timeout=30)] == ["aqi"]
    assert wecom.count("gettoken") == 2  # the runner took the renewed token instead of fetching a third
    assert [call.errcode for call in wecom.of(TASK)] == [42001, 0] and wecom.of(TASK)[1].query["access_token"] == renewed


def test_a_caller_holding_the_write_lock_gets_a_token(wecom: WecomFake, client: WecomClient, db: sqlite_utils.Database) -> None:
    with immediate(db):
        assert client.token()
    assert db.execute("SELECT count(*) FROM wecom_tokens").fetchone()[0] == 1


def test_wrong_secret_is_a_clear_error_with_where_to_fix_it(wecom: WecomFake, make: Callable[..., WecomClient]) -> None:
    with pytest.raises(WecomError) as raised:
        make(secret="not-the-secret").add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="hi")
    error = raised.value
    assert error.errcode == 40001 and error.api == "gettoken" and not error.transient and not error.maybe_sent
    assert "secret_env" in error.hint and "应用管理" in error.hint
    assert "not-the-secret" not in str(error)
    assert wecom.count("gettoken") == 1 and wecom.count(ADD) == 0


def test_wrong_corp_id_names_the_console_field(wecom: WecomFake, make: Callable[..., WecomClient]) -> None:
    with pytest.raises(WecomError) as raised:
        make(corp_id="ww0000000000000000").token()
    assert raised.value.errcode == 40013 and "企业ID" in raised.value.hint


# -- back-off -------------------------------------------------------------------------------------------------


def test_45009_backs_off_then_succeeds(wecom: WecomFake, client: WecomClient, sleeps: Sleeps) -> None:
    wecom.inject(ADD, 45009, times=2)
    msgid, fail = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    assert msgid in wecom.templates and fail == []
    assert sleeps.waits == [1.0, 2.0]
    assert [call.errcode for call in wecom.of(ADD)] == [45009, 45009, 0]


@pytest.mark.parametrize(("errcode", "retry_after"), [(45009, 60.0), (45033, 16.0), (-1, 16.0)])
def test_back_off_exhausted_is_transient(wecom: WecomFake, client: WecomClient, sleeps: Sleeps, errcode: int, retry_after: float) -> None:
    wecom.inject(ADD, errcode, times=None)
    with pytest.raises(WecomTransient) as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    error = raised.value
    assert isinstance(error, DeliveryError) and error.transient and not error.maybe_sent
    assert error.errcode == errcode and error.retry_after == retry_after
    assert sleeps.waits == [1.0, 2.0, 4.0] and wecom.count(ADD) == 4 and wecom.templates == {}


def test_a_task_still_dispatching_is_read_again_later(wecom: WecomFake, client: WecomClient, sleeps: Sleeps) -> None:
    wecom.dispatch_delay = 2
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    assert [task["userid"] for task in client.groupmsg_task(msgid)] == ["aqi"]
    assert [call.errcode for call in wecom.of(TASK)] == [41063, 41063, 0] and sleeps.waits == [1.0, 2.0]


def test_other_errcodes_are_final_with_a_hint(wecom: WecomFake, client: WecomClient, sleeps: Sleeps) -> None:
    wecom.inject(ADD, 48002)
    with pytest.raises(WecomError) as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    assert raised.value.errcode == 48002 and "可调用应用" in raised.value.hint and not raised.value.transient
    wecom.inject(ADD, 60011)
    with pytest.raises(WecomError, match="60011") as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    assert "可见范围" in raised.value.hint
    assert sleeps.waits == [] and wecom.count(ADD) == 2


# -- mass sends -----------------------------------------------------------------------------------------------


def test_fail_list_names_who_cannot_receive(wecom: WecomFake, client: WecomClient) -> None:
    wecom.not_friends.add("wm_gone")
    msgid, fail = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1", "wm_gone", "wm2"], text="早上好")
    assert fail == ["wm_gone"]
    assert sorted(wecom.templates[msgid].recipients) == ["wm1", "wm2"]
    body = wecom.of(ADD)[0].body
    assert body == {"chat_type": "single", "sender": "aqi", "allow_select": False, "external_userid": ["wm1", "wm_gone", "wm2"], "text": {"content": "早上好"}}


def test_nobody_reachable_creates_nothing(wecom: WecomFake, client: WecomClient) -> None:
    wecom.not_friends.update({"wm1", "wm2"})
    assert client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1", "wm2"], text="早上好") == ("", ["wm1", "wm2"])
    assert wecom.templates == {}


def test_limits_per_task_are_refused_before_sending(wecom: WecomFake, client: WecomClient) -> None:
    with pytest.raises(ValueError, match="split"):
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=[f"wm{i}" for i in range(MAX_EXTERNAL + 1)], text="hi")
    with pytest.raises(ValueError, match="split"):
        client.add_msg_template(chat_type="group", sender="aqi", chat_ids=[f"wr{i}" for i in range(MAX_CHATS + 1)], text="hi")
    with pytest.raises(ValueError, match="all of the sender's customers"):
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=[], text="hi")
    assert wecom.count(ADD) == 0
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=[f"wm{i}" for i in range(MAX_EXTERNAL)], text="hi")
    assert len(wecom.templates[msgid].recipients) == MAX_EXTERNAL


def test_results_change_as_staff_confirm(wecom: WecomFake, client: WecomClient) -> None:
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1", "wm2", "wm3", "wm4"], text="早上好")
    assert list(client.groupmsg_task(msgid)) == [{"userid": "aqi", "status": 0}]
    assert {row["status"] for row in client.groupmsg_send_result(msgid, "aqi")} == {0}
    wecom.confirm(msgid, "aqi", at=START + 600, skip=["wm2"], not_friend=["wm3"], quota=["wm4"])
    assert list(client.groupmsg_task(msgid)) == [{"userid": "aqi", "status": 2, "send_time": int(START + 600)}]
    rows = {row["external_userid"]: row for row in client.groupmsg_send_result(msgid, "aqi")}
    assert {key: row["status"] for key, row in rows.items()} == {"wm1": 1, "wm2": 0, "wm3": 2, "wm4": 3}
    assert rows["wm1"]["send_time"] == int(START + 600) and "send_time" not in rows["wm4"]


def test_a_group_task_lists_only_the_groups_sent_to(wecom: WecomFake, client: WecomClient) -> None:
    msgid, _ = client.add_msg_template(chat_type="group", sender="aqi", chat_ids=["wrA", "wrB"], text="今晚8点开播")
    assert list(client.groupmsg_send_result(msgid, "aqi")) == []
    wecom.confirm(msgid, "aqi", skip=["wrB"])
    assert [(row["chat_id"], row["status"]) for row in client.groupmsg_send_result(msgid, "aqi")] == [("wrA", 1), ("wrB", 0)]
    assert wecom.of(ADD)[0].body["chat_id_list"] == ["wrA", "wrB"]


def test_paging_follows_next_cursor(wecom: WecomFake, client: WecomClient) -> None:
    wecom.page_cap = 2
    ids = [f"wm{i}" for i in range(5)]
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=ids, text="早上好")
    assert [row["external_userid"] for row in client.groupmsg_send_result(msgid, "aqi")] == ids
    pages = wecom.of("externalcontact/get_groupmsg_send_result")
    assert len(pages) == 3 and "cursor" not in pages[0].body and all(page.body["cursor"] for page in pages[1:])
    assert all(page.body["limit"] == 1000 for page in pages)


def test_the_list_walks_windows_of_at_most_30_days(wecom: WecomFake, client: WecomClient) -> None:
    made = []
    for day in (0, 20, 45, 69):
        wecom.now = START + day * 86400
        made.append(client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text=f"day {day}")[0])
    wecom.page_cap = 1
    found = list(client.groupmsg_list(chat_type="single", start=at(START - 3600), end=at(START + 70 * 86400)))
    assert [item["msgid"] for item in found] == made
    assert all("creator" not in item and item["create_type"] == 0 for item in found)
    bodies = [call.body for call in wecom.of("externalcontact/get_groupmsg_list_v2")]
    assert all(body["end_time"] - body["start_time"] <= 30 * 86400 for body in bodies)
    assert bodies[0]["start_time"] == int(START - 3600) and bodies[-1]["end_time"] == int(START + 70 * 86400)
    with pytest.raises(ValueError, match="timezone"):
        list(client.groupmsg_list(chat_type="single", start=datetime(2026, 1, 1), end=datetime(2026, 1, 2)))


def test_three_reminders_a_day(wecom: WecomFake, client: WecomClient) -> None:
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    for _ in range(3):
        client.remind_groupmsg_send(msgid)
    with pytest.raises(WecomTransient):
        client.remind_groupmsg_send(msgid)
    assert len(wecom.templates[msgid].reminders) == 3
    wecom.advance(86400)
    client.remind_groupmsg_send(msgid)
    assert len(wecom.templates[msgid].reminders) == 4


# -- a lost answer --------------------------------------------------------------------------------------------


def test_a_dropped_create_is_maybe_sent_and_not_repeated(wecom: WecomFake, client: WecomClient, sleeps: Sleeps) -> None:
    wecom.drop(ADD)  # WeCom created the task; the answer never came back
    with pytest.raises(WecomMaybeSent) as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    error = raised.value
    assert error.maybe_sent and error.maybe_delivered and not error.transient
    assert "access_token" not in str(error) and "get_groupmsg_list_v2" in error.hint
    assert wecom.count(ADD) == 1 and sleeps.waits == []
    [found] = client.groupmsg_list(chat_type="single", start=at(wecom.now - 60), end=at(wecom.now + 60))
    assert found["msgid"] in wecom.templates and found["text"] == {"content": "早上好"}


def test_a_create_unanswered_until_the_timeout_is_maybe_sent(wecom: WecomFake, make: Callable[..., WecomClient]) -> None:
    client = make(timeout=0.3)
    client.token()
    wecom.hang("externalcontact/send_welcome_msg")
    code = wecom.welcome_code("aqi", "wm1")
    with pytest.raises(WecomMaybeSent):
        client.send_welcome_msg(code, "你好，我是阿栖")
    wecom.release()
    assert len(wecom.welcomes) == 1


def test_a_dropped_read_is_simply_read_again(wecom: WecomFake, client: WecomClient, sleeps: Sleeps) -> None:
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    wecom.drop(TASK)
    assert [task["userid"] for task in client.groupmsg_task(msgid)] == ["aqi"]
    assert wecom.count(TASK) == 2 and sleeps.waits == [1.0]


def test_unreachable_before_sending_is_transient_not_maybe(db: sqlite_utils.Database, sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    client = WecomClient("ww1", "s", db=db, base_url=f"http://127.0.0.1:{port}", sleep=sleeps)
    with pytest.raises(WecomTransient) as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好")
    assert raised.value.transient and not raised.value.maybe_sent and sleeps.waits == [1.0, 2.0, 4.0]
    client.close()


# -- welcomes -------------------------------------------------------------------------------------------------


def test_welcome_once_then_41051_is_not_a_failure(wecom: WecomFake, client: WecomClient) -> None:
    code = wecom.welcome_code("aqi", "wm1")
    assert client.send_welcome_msg(code, "你好，我是阿栖") is True
    assert client.send_welcome_msg(code, "你好，我是阿栖") is False
    assert [welcome["external_userid"] for welcome in wecom.welcomes] == ["wm1"]


def test_a_welcome_code_older_than_20_seconds_is_refused(wecom: WecomFake, client: WecomClient) -> None:
    code = wecom.welcome_code("aqi", "wm1")
    wecom.advance(21)
    with pytest.raises(WecomError) as raised:
        client.send_welcome_msg(code, "你好")
    assert raised.value.errcode == 41050 and "20" in raised.value.hint and wecom.welcomes == []


# -- attachments and uploads ----------------------------------------------------------------------------------


def test_attachments_become_wecom_shapes_with_cached_media_ids(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    cover = tmp_path / "cover.png"
    cover.write_bytes(PNG + b"cover")
    video = tmp_path / "clip.mp4"
    video.write_bytes(MP4)
    media = [
        image(tmp_path),
        Media(kind="video", source="clip.mp4", path=str(video)),
        Media(kind="link", source="https://shop.example.cn/p/1", title="秒杀", description="限时", cover="cover.png", cover_path=str(cover)),
        Media(kind="miniprogram", source="wx8bd80126147dfAAA", title="领券", page="pages/coupon", cover="cover.png", cover_path=str(cover)),
    ]
    msgid, _ = client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=media)
    parts = wecom.templates[msgid].attachments
    assert [part["msgtype"] for part in parts] == ["image", "video", "link", "miniprogram"]
    assert parts[0]["image"]["media_id"] in wecom.media and parts[1]["video"]["media_id"] in wecom.media
    assert parts[2]["link"] == {"title": "秒杀", "url": "https://shop.example.cn/p/1", "desc": "限时", "picurl": next(iter(wecom.image_urls))}
    assert parts[3]["miniprogram"]["appid"] == "wx8bd80126147dfAAA" and parts[3]["miniprogram"]["pic_media_id"] in wecom.media
    uploads = wecom.of("media/upload")
    assert sorted(call.query["type"] for call in uploads) == ["image", "image", "video"]
    assert all(call.body["files"]["media"]["filename"] for call in uploads)
    client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm2"], text="早上好", attachments=media)
    assert wecom.count("media/upload") == 3 and wecom.count("media/uploadimg") == 1  # cached by content


def test_media_ids_are_uploaded_again_with_less_than_a_day_left(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    poster = [image(tmp_path)]
    client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=poster)
    wecom.advance(2 * 86400 - 60)
    client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=poster)
    assert wecom.count("media/upload") == 1
    wecom.advance(120)
    client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=poster)
    assert wecom.count("media/upload") == 2


def test_a_media_id_wecom_forgot_is_uploaded_on_the_next_try(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    poster = [image(tmp_path)]
    client.upload_media(poster[0].path or "", "image")
    wecom.media.clear()  # WeCom no longer knows it
    with pytest.raises(WecomError) as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=poster)
    assert raised.value.errcode == 40007
    client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=poster)
    assert wecom.count("media/upload") == 2


def test_a_missing_file_is_named_before_anything_is_created(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    gone = Media(kind="image", source="gone.png", path=str(tmp_path / "gone.png"))
    with pytest.raises(WecomError, match="gone.png") as raised:
        client.add_msg_template(chat_type="single", sender="aqi", external_userids=["wm1"], text="早上好", attachments=[gone])
    assert "put the file back" in raised.value.hint and wecom.count(ADD) == 0


# -- Moments --------------------------------------------------------------------------------------------------


def test_moments_job_then_publish_status(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    wecom.staff = {"aqi", "xiaowan"}
    visible = {"sender_list": {"user_list": ["aqi", "xiaowan", "left_corp"]}, "external_contact_list": {"tag_list": ["etVIP"]}}
    jobid = client.add_moment_task(text="新品上架", attachments=[image(tmp_path), image(tmp_path, "b.png", PNG + b"b")], visible_range=visible)
    [upload, _] = wecom.of("media/upload_attachment")
    assert upload.query == {"access_token": upload.query["access_token"], "media_type": "image", "attachment_type": "1"}
    assert client.moment_task_result(jobid) == {"status": 1, "type": "add_moment_task"}
    done = client.moment_task_result(jobid)
    assert done["status"] == 3 and done["result"]["errcode"] == 0
    assert done["result"]["invalid_sender_list"]["user_list"] == ["left_corp"]
    moment_id = done["result"]["moment_id"]
    assert list(client.moment_task(moment_id)) == [{"userid": "aqi", "publish_status": 0}, {"userid": "xiaowan", "publish_status": 0}]
    wecom.publish(moment_id, "aqi")
    assert [task["publish_status"] for task in client.moment_task(moment_id)] == [1, 0]


def test_moments_refuse_mixed_attachments_before_sending(wecom: WecomFake, client: WecomClient, tmp_path: Path) -> None:
    link = Media(kind="link", source="https://shop.example.cn", title="店铺")
    with pytest.raises(WecomError, match="one video, or one link"):
        client.add_moment_task(text="上新", attachments=[image(tmp_path), link], visible_range={})
    with pytest.raises(WecomError, match="needs one"):
        client.add_moment_task(text="上新", attachments=[link], visible_range={})
    assert wecom.count("externalcontact/add_moment_task") == 0 and wecom.count("media/upload_attachment") == 0


# -- customers ------------------------------------------------------------------------------------------------


def test_external_contact_with_every_follow_user(wecom: WecomFake, client: WecomClient) -> None:
    wecom.add_contact("wmZ1", "林小姐", follow=["aqi", "xiaowan", "boss"], state="hook-live")
    wecom.page_cap = 2
    found = client.external_contact("wmZ1")
    assert found["external_contact"]["name"] == "林小姐"
    assert [user["userid"] for user in found["follow_user"]] == ["aqi", "xiaowan", "boss"]
    assert wecom.count("externalcontact/get") == 2
    with pytest.raises(WecomError) as raised:
        client.external_contact("wm_unknown")
    assert raised.value.errcode == 84061 and "外部联系人" in raised.value.hint


def test_base_url_comes_from_the_environment(wecom: WecomFake, db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    assert WecomClient("ww1", "s", db=db).base_url == wecom.url
    monkeypatch.delenv("SIYU_WECOM_API")
    assert WecomClient("ww1", "s", db=db).base_url == "https://qyapi.weixin.qq.com"
    assert os.environ.get("SIYU_WECOM_API") is None
    assert WecomClient("ww1", "s", db=db, base_url="http://10.0.0.5:8080/").base_url == "http://10.0.0.5:8080"


def test_the_token_expiry_follows_expires_in(wecom: WecomFake, client: WecomClient, db: sqlite_utils.Database) -> None:
    wecom.token_ttl = 600
    client.token()
    [(expires_at, fetched_at)] = db.execute("SELECT expires_at, fetched_at FROM wecom_tokens").fetchall()
    assert expires_at - fetched_at == 600 and fetched_at == wecom.now
    assert timedelta(seconds=expires_at - fetched_at) == timedelta(minutes=10)


def test_a_hung_gettoken_does_not_hold_the_stores_write_lock(make: Callable[..., WecomClient], wecom: WecomFake, tmp_path: Path) -> None:
    """siyu serve must answer WeCom within 5 s from the same store: fetching a token takes a lock file, not the store."""
    import sqlite3
    import threading

    wecom.hang("gettoken", process=True)
    client = make(db=open_store(tmp_path / "siyu.db"), timeout=5.0)
    fetched: list[str] = []
    worker = threading.Thread(target=lambda: fetched.append(client.token()), daemon=True)
    wecom._seen["gettoken"].clear()
    worker.start()
    assert wecom.wait_for("gettoken")
    other = sqlite3.connect(tmp_path / "siyu.db", timeout=0.5, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" after 0.5 s if the fetch held the lock
        other.execute("ROLLBACK")
    finally:
        other.close()
    wecom.release()
    worker.join(30)
    assert fetched and fetched[0]  # the hung answer was closed; the client's retry fetched one
