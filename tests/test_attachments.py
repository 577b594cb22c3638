"""Attachments (issue 14 item 6): images, a video, a link or mini-program card with a draft's text,
checked by `siyu check`, kept on the draft in the ledger, written beside it in the outbox, posted by a WeCom robot."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest_http import RecordingServer
from tests.playbooks_fixtures import invoke, query, run_siyu, siyu_env, write_playbook


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(padding: int = 0) -> bytes:
    """A whole 1x1 PNG; `padding` bytes of a text chunk make it as large as a test needs."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    text = _chunk(b"tEXt", b"Comment\0" + b"0" * padding) if padding else b""
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\0\xff\x00\x00")) + text + _chunk(b"IEND", b"")


# A JPEG's markers as far as a reader needs them: SOI, the JFIF APP0 segment, a baseline frame header (1x1, 3 colours), data, EOI.
JPEG = (
    b"\xff\xd8"
    + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xc0\x00\x11\x08\x00\x01\x00\x01\x03\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    + bytes(range(256)) * 8
    + b"\xff\xd9"
)
PNG = png()
LINK = {"link": "https://shop.example.com/flash?from=group", "title": "今晚8点限时秒杀", "description": "满99减30"}


def _flash(**changes: Any) -> dict[str, Any]:
    beat = {"id": "flash", "title": "秒杀预告", "at": "10:00", "days": "all", "channel": "group", "text": "今晚8点秒杀，第{{ day }}天", "attachments": ["media/flash.jpg"]}
    beat.update(changes)
    return beat


def _project(tmp_path: Path, beats: list[dict[str, Any]], **extra: Any) -> Path:
    (tmp_path / "media").mkdir(exist_ok=True)
    (tmp_path / "media" / "flash.jpg").write_bytes(JPEG)
    return write_playbook(tmp_path, beats=beats, **extra)


@pytest.mark.parametrize(
    ("attachments", "said"),
    [
        (["media/missing.png"], "beats[0].attachments[0]: image"),
        (["a.jpg"] * 10, "10 images; WeCom and Moments take at most 9"),
        (["media/flash.jpg", "clip.mp4"], "1 image, 1 video: a message takes up to 9 images, or 1 video, or 1 link"),
        ([LINK, dict(LINK, title="又一个")], "2 link cards"),
        (["poster.gif"], "'poster.gif' is neither an image (.jpg, .jpeg, .png) nor a video (.mp4)"),
        ([{"link": "shop.example.com/flash", "title": "秒杀"}], "link 'shop.example.com/flash' is not a URL"),
        ([{"link": "https://shop.example.com/x"}], "a link card needs a title"),
        ([{"miniprogram": "wx1234567890", "title": "秒杀"}], "a mini-program card needs page"),
        ([{"image": "media/flash.jpg", "title": "x"}], "title is for link or mini-program cards, not image"),
    ],
)
def test_check_refuses_attachments_wecom_would_refuse(tmp_path: Path, attachments: list[Any], said: str) -> None:
    playbook = _project(tmp_path, [_flash(attachments=attachments)])
    result = invoke("check", str(playbook), code=1)
    assert said in result.stderr
    assert "playbook.yaml:" in result.stderr  # located at file and line


def test_check_measures_files_against_wecoms_sizes(tmp_path: Path) -> None:
    playbook = _project(tmp_path, [_flash(attachments=["media/big.png", {"video": "media/clip.mp4"}][:1])])
    (tmp_path / "media" / "big.png").write_bytes(png(2 * 1024 * 1024))
    said = invoke("check", str(playbook), code=1).stderr
    assert "big.png is 2.0 MB; WeCom takes at most 2 MB" in said
    (tmp_path / "media" / "big.png").write_bytes(png(1000))
    invoke("check", str(playbook), "--strict")


def test_check_reads_a_files_bytes_not_its_name(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "notes.png").write_text("这不是图片，是备注", encoding="utf-8")
    (media / "photo.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")  # an iPhone photo renamed
    (media / "clip.mp4").write_text("<html>404</html>", encoding="utf-8")
    (media / "shot.jpg").write_bytes(PNG)
    (media / "real.jpg").write_bytes(JPEG)
    beats = [
        _flash(attachments=["media/notes.png", "media/photo.jpg", "media/shot.jpg", "media/real.jpg"]),
        _flash(id="clip", at="11:00", attachments=[{"video": "media/clip.mp4"}]),
        _flash(id="card", at="12:00", attachments=[dict(LINK, cover="media/notes.png")]),
    ]
    problems = json.loads(invoke("check", str(write_playbook(tmp_path, beats=beats)), "--json", code=1).stdout)["files"][0]["problems"]
    found = {p["path"]: (p["severity"], p["message"]) for p in problems if p["code"] == "attachment"}
    assert found["beats[0].attachments[0]"][0] == "error" and "notes.png is text by its content, not JPEG or PNG: WeCom refuses it" in found["beats[0].attachments[0]"][1]
    assert found["beats[0].attachments[1]"][0] == "error" and "is a HEIC photo" in found["beats[0].attachments[1]"][1]
    assert found["beats[0].attachments[2]"][0] == "warning" and "shot.jpg is a PNG named .jpg: WeCom reads the bytes and takes it" in found["beats[0].attachments[2]"][1]
    assert "beats[0].attachments[3]" not in found
    assert found["beats[1].attachments[0]"][0] == "error" and "clip.mp4 is text by its content, not MP4 video" in found["beats[1].attachments[0]"][1]
    assert found["beats[2].attachments[0]"][0] == "error" and found["beats[2].attachments[0]"][1].startswith("cover ")
    hints = {p["path"]: p["hint"] for p in problems if p["code"] == "attachment"}
    assert hints["beats[0].attachments[2]"] == "rename it to shot.png"


def test_check_reads_enough_of_a_file_to_tell_it_is_whole(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "cut.png").write_bytes(png(4000)[:3000])  # a download that stopped early
    (media / "bare.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # the signature and nothing a PNG needs
    (media / "cut.jpg").write_bytes(JPEG[:12])  # stops inside its first segment, before the frame header
    (media / "motion.jpg").write_bytes(JPEG + b"\0\0\0\x18ftypmp42" + b"\0" * 64)  # a phone's motion photo: a video after the JPEG's end
    (media / "voice.mp4").write_bytes(b"\0\0\0\x18ftypM4A \0\0\x02\0isomiso2" + b"\0" * 64)  # an M4A renamed .mp4
    (media / "clip.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2avc1" + b"\0" * 64)
    beats = [
        _flash(attachments=["media/cut.png", "media/bare.png", "media/cut.jpg", "media/motion.jpg"]),
        _flash(id="voice", at="11:00", attachments=["media/voice.mp4"]),
        _flash(id="clip", at="12:00", attachments=["media/clip.mp4"]),
    ]
    problems = json.loads(invoke("check", str(write_playbook(tmp_path, beats=beats)), "--json", code=1).stdout)["files"][0]["problems"]
    found = {p["path"]: p for p in problems if p["code"] == "attachment"}
    assert set(found) == {"beats[0].attachments[0]", "beats[0].attachments[1]", "beats[0].attachments[2]", "beats[1].attachments[0]"}
    assert all(p["severity"] == "error" for p in found.values())
    assert "cut.png is a PNG cut short (no IEND chunk at its end): WeCom cannot show it" in found["beats[0].attachments[0]"]["message"]
    assert "bare.png is a PNG without the IHDR chunk" in found["beats[0].attachments[1]"]["message"]
    assert "cut.jpg is a JPEG cut short or broken (no frame header, SOF" in found["beats[0].attachments[2]"]["message"]
    assert "export or download it again" in found["beats[0].attachments[0]"]["hint"]
    voice = found["beats[1].attachments[0]"]
    assert "voice.mp4 is an M4A audio file (sound, no picture) by its content, not MP4 video: WeCom refuses it" in voice["message"]
    assert voice["hint"].startswith("make it a video")


@pytest.mark.parametrize(
    ("attachments", "said", "fix"),
    [
        ([{"video": "a.mp4"}, {"video": "b.mp4"}], "2 videos: a message takes up to 9 images, or 1 video", "remove all but one, or give each a beat of its own"),
        (["a.jpg"] * 11, "11 images; WeCom and Moments take at most 9", "remove 2, or put the rest in another beat"),
        (["a.jpg", "b.jpg", "clip.mp4"], "2 images, 1 video: a message takes", "remove the video, or put it in another beat"),
        ([{"video": "a.mp4"}, LINK, dict(LINK, title="又一个")], "1 video, 2 link cards:", "remove the 2 link cards, or put them in another beat"),
    ],
)
def test_attachment_count_errors_end_with_their_fix(tmp_path: Path, attachments: list[Any], said: str, fix: str) -> None:
    playbook = _project(tmp_path, [_flash(attachments=attachments)])
    problems = json.loads(invoke("check", str(playbook), "--json", code=1).stdout)["files"][0]["problems"]
    (problem,) = [p for p in problems if p["path"] == "beats[0].attachments"]  # the files' own errors name each file
    assert said in problem["message"] and problem["hint"] == fix, problem
    assert "siyu schema" not in problem["hint"]


def test_a_moments_post_counts_its_text_images_with_its_attachments_without_the_wecom_output(tmp_path: Path) -> None:
    five = "".join(f"![图{n}](https://example.com/{n}.jpg)" for n in range(5))
    (tmp_path / "media").mkdir()
    for n in range(5):
        (tmp_path / "media" / f"{n}.png").write_bytes(PNG)
    (tmp_path / "media" / "clip.mp4").write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * 64)
    moments = {"at": "09:00", "channel": "moments", "persona": "host"}
    beats = [
        {**moments, "id": "ten", "text": five, "attachments": [f"media/{n}.png" for n in range(5)]},
        {**moments, "id": "nine", "at": "10:00", "text": five, "attachments": [f"media/{n}.png" for n in range(4)]},
        {**moments, "id": "mixed", "at": "11:00", "text": "![图](https://example.com/a.jpg) 新品", "attachments": ["media/clip.mp4"]},
    ]
    problems = json.loads(invoke("check", str(write_playbook(tmp_path, beats=beats)), "--json").stdout)["files"][0]["problems"]
    found = {p["path"]: p for p in problems if p["code"] == "moments-images"}
    assert set(found) == {"beats[0].text", "beats[2].text"}, "9 images in all are fine"
    assert all(p["severity"] == "warning" for p in found.values()), "without the wecom output nothing refuses it, so it warns"
    assert "5 images in its text and 5 images attached" in found["beats[0].text"]["message"]
    assert "1 image in its text and 1 video attached" in found["beats[2].text"]["message"]


def test_file_errors_come_in_the_same_round_as_structural_ones(tmp_path: Path) -> None:
    playbook = _project(tmp_path, [_flash(attachments=["media/missing.png", "media/big.png", "media/flash.jpg"]), {"id": "typo", "at": "11:00", "chanel": "group", "text": "x"}])
    (tmp_path / "media" / "big.png").write_bytes(png(2 * 1024 * 1024))
    problems = json.loads(invoke("check", str(playbook), "--json", code=1).stdout)["files"][0]["problems"]
    said = {p["path"]: p["message"] for p in problems}
    assert "unknown key 'chanel'" in said["beats[1].chanel"]
    assert said["beats[0].attachments[0]"].endswith("missing.png: no such file")
    assert "big.png is 2.0 MB; WeCom takes at most 2 MB" in said["beats[0].attachments[1]"]
    assert "beats[0].attachments[2]" not in said


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "structure-fails"])
def test_file_messages_name_the_file_as_the_playbook_writes_it(tmp_path: Path, valid: bool) -> None:
    """Run from another folder, check names each file relative to the playbook (where the search found it), never by its absolute path."""
    camp = tmp_path / "camp"
    (camp / "templates").mkdir(parents=True)
    (camp / "templates" / "poster.png").write_text("not a picture", encoding="utf-8")
    card = {**LINK, "cover": "media/cover.jpg"}
    beats: list[dict[str, Any]] = [_flash(attachments=["media/missing.png", "media/notes.png", "poster.png"]), _flash(id="card", at="11:00", attachments=[card])]
    if not valid:
        beats.append({"id": "typo", "at": "12:00", "chanel": "group", "text": "x"})
    playbook = _project(camp, beats)
    (camp / "media" / "notes.png").write_text("meeting notes", encoding="utf-8")
    done = run_siyu(tmp_path, "check", "camp/playbook.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert str(tmp_path) not in said and str(camp.resolve()) not in said, said
    lines = {line.split(": error: ")[1].split(": ", 1)[0]: line for line in said.splitlines() if ": error: beats[" in line}
    assert "image media/missing.png: no such file" in lines["beats[0].attachments[0]"]
    assert "image media/notes.png is text by its content" in lines["beats[0].attachments[1]"]
    assert "image templates/poster.png is text by its content" in lines["beats[0].attachments[2]"], "found in templates/: named where it is"
    assert "cover media/cover.jpg: no such file" in lines["beats[1].attachments[0]"]
    assert lines["beats[0].attachments[0]"].startswith(f"camp/playbook.yaml:{playbook.read_text(encoding='utf-8').splitlines().index('  - media/missing.png') + 1}:")


def test_moments_take_no_mini_program(tmp_path: Path) -> None:
    moments = {"id": "m", "at": "09:00", "channel": "moments", "persona": "host", "text": "好物", "attachments": [{"miniprogram": "wx1", "page": "pages/a", "title": "秒杀"}]}
    said = invoke("check", str(_project(tmp_path, [moments])), code=1).stderr
    assert "Moments take images, a video or a link, not a mini-program card" in said


def test_preview_lists_attachments(tmp_path: Path) -> None:
    playbook = _project(tmp_path, [_flash(attachments=["media/flash.jpg", "https://cdn.example.com/b.png"])])
    data = json.loads(invoke("preview", "day", "1", str(playbook), "--json").stdout)
    assert data["drafts"][0]["attachments"] == ["图片 image: media/flash.jpg", "图片 image: https://cdn.example.com/b.png"]
    assert "附件 attachments:" in invoke("preview", "day", "1", str(playbook)).stdout


def test_the_outbox_writes_files_beside_the_draft_and_the_ledger_keeps_them(tmp_path: Path) -> None:
    playbook = _project(tmp_path, [_flash(attachments=["media/flash.jpg", "https://cdn.example.com/b.png"]), _flash(id="card", at="11:00", attachments=[LINK])])
    outbox = tmp_path / "outbox"
    invoke("run", str(playbook), "--once", "--now", "2026-12-01T11:30:00+08:00", "--db", str(tmp_path / "siyu.db"), "--outbox", str(outbox))
    day = outbox / "2026-12-01"
    (flash,) = day.glob("1000-flash-*.md")
    name = f"media/{hashlib.sha256(JPEG).hexdigest()[:16]}-flash.jpg"  # the day's media folder, named by content
    assert (day / name).read_bytes() == JPEG
    text = flash.read_text(encoding="utf-8")
    assert "attachments: 2\n" in text
    assert f"- 图片 image: ![]({name})" in text and "- 图片 image: ![](https://cdn.example.com/b.png)" in text
    (card,) = day.glob("1100-card-*.md")
    assert "- 链接 link: [今晚8点限时秒杀](https://shop.example.com/flash?from=group) — 满99减30" in card.read_text(encoding="utf-8")
    stored = dict(query(tmp_path / "siyu.db", "SELECT beat, attachments FROM drafts"))
    assert json.loads(stored["flash"]) == [
        {"kind": "image", "source": "media/flash.jpg", "path": str((tmp_path / "media" / "flash.jpg").resolve())},
        {"kind": "image", "source": "https://cdn.example.com/b.png"},
    ]
    assert json.loads(stored["card"])[0]["title"] == "今晚8点限时秒杀"
    # The file went away after planning: the draft fails with the reason and a fix, the others are unaffected.
    (tmp_path / "media" / "flash.jpg").unlink()
    result = invoke("run", str(playbook), "--once", "--now", "2026-12-02T10:05:00+08:00", "--db", str(tmp_path / "siyu.db"), "--outbox", str(outbox), code=1)
    assert "cannot read the attachment" in result.stderr


def test_pool_entries_and_journey_steps_carry_their_own(tmp_path: Path) -> None:
    moments = {
        "id": "moments",
        "at": "09:00",
        "channel": "moments",
        "persona": "host",
        "mix": [{"days": "all", "ratio": {"sale": 1}}],
        "pools": {"sale": [{"text": "新品上架", "attachments": ["media/flash.jpg"]}, {"text": "看直播", "attachments": [{"video": "https://cdn.example.com/live.mp4"}]}, {"text": "晒单"}]},
        "attachments": [LINK],
    }
    journey = {
        "id": "ladder",
        "enter": {"event": "friend_added"},
        "steps": [{"id": "coupon", "after": "0m", "text": "您的券", "attachments": [{"miniprogram": "wx1234567890", "page": "pages/coupon/index", "title": "领券"}]}],
    }
    playbook = _project(tmp_path, [moments], journeys=[journey])
    invoke("check", str(playbook), "--strict")
    data = json.loads(invoke("preview", "day", "2", str(playbook), "--json").stdout)
    shown = {d["beat"]: d["attachments"] for d in data["drafts"]}
    assert shown["moments"] == ["视频 video: https://cdn.example.com/live.mp4"]  # the entry's own, not the beat's
    assert shown["journey:ladder:coupon"] == ["小程序 mini-program: 领券 (appid wx1234567890, page pages/coupon/index)"]


def test_a_wecom_robot_posts_images_and_link_cards_and_lists_the_rest(tmp_path: Path) -> None:
    beats = [_flash(attachments=["media/flash.jpg", "https://cdn.example.com/b.png"]), _flash(id="card", at="11:00", attachments=[LINK])]
    playbook = _project(tmp_path, beats, outputs=[{"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}])
    with RecordingServer() as server:
        env = siyu_env(SIYU_WECOM_WEBHOOK=server.url("/cgi-bin/webhook/send", key="robot-key-123456"))
        result = run_siyu(tmp_path, "run", str(playbook), "--once", "--now", "2026-12-01T11:30:00+08:00", env=env)
        assert result.returncode == 0, result.stderr
        bodies = [req.json for req in server.requests]
    assert [b["msgtype"] for b in bodies] == ["markdown", "image", "markdown", "news"]
    assert "附件 attachments:\n- 图片 image: https://cdn.example.com/b.png" in bodies[0]["markdown"]["content"]
    assert bodies[1]["image"] == {"base64": base64.b64encode(JPEG).decode("ascii"), "md5": hashlib.md5(JPEG).hexdigest()}
    assert bodies[3]["news"]["articles"] == [{"title": "今晚8点限时秒杀", "url": "https://shop.example.com/flash?from=group", "description": "满99减30"}]
    keys = [req.headers.get("idempotency-key") for req in server.requests]
    assert len(set(keys)) == 4  # each part is its own message


def test_a_robot_names_a_file_cover_and_marks_parts_only_of_a_split_text(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "cover.png").write_bytes(PNG)
    beats = [_flash(attachments=[dict(LINK, cover="media/cover.png")])]
    playbook = _project(tmp_path, beats, outputs=[{"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}])
    warned = [p for p in json.loads(invoke("check", str(playbook), "--json").stdout)["files"][0]["problems"] if p["code"] == "attachment"]
    assert [(p["severity"], p["path"]) for p in warned] == [("warning", "beats[0].attachments[0].cover")]
    assert "shows its picture from a URL only" in warned[0]["message"]
    with RecordingServer() as server:
        env = siyu_env(SIYU_WECOM_WEBHOOK=server.url("/cgi-bin/webhook/send", key="robot-key-123456"))
        result = run_siyu(tmp_path, "run", str(playbook), "--once", "--now", "2026-12-01T10:30:00+08:00", env=env)
        assert result.returncode == 0, result.stderr
        bodies = [req.json for req in server.requests]
    assert [b["msgtype"] for b in bodies] == ["markdown", "news"]
    text = bodies[0]["markdown"]["content"]
    assert text.splitlines()[0] == "### 秒杀预告 flash", "one text, not split: no (1/2)"
    assert "- 链接 link 今晚8点限时秒杀 封面 cover: media/cover.png (a file: the robot's card shows a picture only from a URL)" in text
    assert "picurl" not in bodies[1]["news"]["articles"][0]
    shown = json.loads(invoke("preview", "day", "1", str(playbook), "--json").stdout)["drafts"][0]["attachments"]
    assert shown == ["链接 link: 今晚8点限时秒杀 https://shop.example.com/flash?from=group · 封面 cover media/cover.png"]


def test_the_ecommerce_starter_sends_a_poster_and_a_link_card_with_its_flash_sales(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    invoke("init", str(project), "--from", "ecommerce")
    playbook = project / "playbooks" / "ecommerce-card.yaml"
    invoke("check", str(playbook), "--strict")
    data = json.loads(invoke("preview", "day", "2", str(playbook), "--json").stdout)
    shown = {d["beat"]: d["attachments"] for d in data["drafts"] if d["beat"].startswith("flash")}
    assert shown["flash-preview"] == ["图片 image: ecom-package-card/media/flash_sale.png"]
    assert shown["flash-start"][0].startswith("链接 link: 栖山福利秒杀 · 群友专区 https://")
    assert (project / "templates" / "ecom-package-card" / "media" / "flash_sale.png").read_bytes().startswith(b"\x89PNG")


def test_a_file_sent_in_many_named_drafts_is_one_copy_a_day(tmp_path: Path) -> None:
    from tests.playbooks_fixtures import add_contacts, parents

    named = _flash(id="named", channel="private", audience="parents", text="{{ contact.name }}，今晚秒杀", attachments=["media/flash.jpg"])
    playbook = _project(tmp_path, [named])
    add_contacts(tmp_path / "siyu.db", parents(25))
    outbox = tmp_path / "outbox"
    invoke("run", str(playbook), "--once", "--now", "2026-12-01T10:05:00+08:00", "--db", str(tmp_path / "siyu.db"), "--outbox", str(outbox))
    day = outbox / "2026-12-01"
    drafts = sorted(day.glob("1000-named-*.md"))
    [copy] = (day / "media").iterdir()
    assert len(drafts) == 25 and all(f"![](media/{copy.name})" in d.read_text(encoding="utf-8") for d in drafts)
    assert [p for p in day.iterdir() if p.is_dir()] == [day / "media"]  # no folder per draft
