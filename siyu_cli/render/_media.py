"""Attachments resolved for a draft: images, a video, a link card or a mini-program card.

The playbook names files (looked up like templates: beside the playbook, then templates/ beside
it or its folder's parent, then ./templates) or URLs; a draft carries each file's absolute path, so
the outbox and the robots find it wherever siyu runs, and the ledger keeps them as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# WeCom's limits (group robot docs, 群机器人配置说明: an image at most 2 MB before base64, JPG or PNG;
# temporary media upload, 上传临时素材: a video at most 10 MB, MP4). Moments take the same files.
MAX_BYTES = {"image": 2 * 1024 * 1024, "video": 10 * 1024 * 1024}
LABELS = {"image": "图片 image", "video": "视频 video", "link": "链接 link", "miniprogram": "小程序 mini-program"}


@dataclass(frozen=True)
class Media:
    """One attachment as a draft carries it: `source` as written, `path` the file when it is one."""

    kind: str  # image | video | link | miniprogram
    source: str  # the file or URL of an image or video, a link's URL, a mini-program's appid
    path: str | None = None
    title: str | None = None
    description: str | None = None
    page: str | None = None
    cover: str | None = None
    cover_path: str | None = None

    @property
    def url(self) -> str | None:
        """The URL an image, video or link is at (None for a file and a mini-program)."""
        return self.source if self.kind != "miniprogram" and self.path is None else None

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind)

    def describe(self) -> str:
        """One line for people: what it is and where it is (a card's cover too)."""
        cover = f" · 封面 cover {self.cover}" if self.cover else ""
        if self.kind == "link":
            return f"{self.label}: {self.title} {self.source}{cover}"
        if self.kind == "miniprogram":
            return f"{self.label}: {self.title} (appid {self.source}, page {self.page}){cover}"
        return f"{self.label}: {self.source}"


def _file(value: str | None, search: Sequence[Path]) -> str | None:
    """The first folder of the search path holding the file; beside the playbook (search[0]) when none does."""
    if value is None or value.lower().startswith(("http://", "https://")):
        return None
    for root in search:
        if (root / value).is_file():
            return str((root / value).resolve())
    return str((search[0] / value).resolve())


def resolve(attachments: Iterable[Any], search: Sequence[Path]) -> tuple[Media, ...]:
    """The playbook's attachments (siyu_cli.playbook Attachment) with their files found along the template search path."""
    found = []
    for item in attachments:
        kind = item.kind
        source = item.source
        found.append(
            Media(
                kind=kind,
                source=source,
                path=_file(source, search) if kind in ("image", "video") else None,
                title=item.title,
                description=item.description,
                page=item.page,
                cover=item.cover,
                cover_path=_file(item.cover, search),
            )
        )
    return tuple(found)


def to_json(media: Sequence[Media]) -> str | None:
    """The ledger's column: None when a draft has no attachments."""
    if not media:
        return None
    return json.dumps([{k: v for k, v in asdict(m).items() if v is not None} for m in media], ensure_ascii=False)


def from_json(text: str | None) -> tuple[Media, ...]:
    if not text:
        return ()
    return tuple(Media(**item) for item in json.loads(text))


@dataclass(frozen=True)
class FileProblem:
    """What is wrong with an attachment's file: an error where WeCom would refuse it, else a warning."""

    message: str
    hint: str
    severity: str = "error"


ACCEPTED = {"image": ("jpeg", "png"), "video": ("mp4",)}  # WeCom: JPG or PNG images, MP4 videos
_NAMED = {"jpeg": (".jpg", ".jpeg"), "png": (".png",)}
_DESCRIBED = {
    "jpeg": "a JPEG",
    "png": "a PNG",
    "mp4": "an MP4 video",
    "m4a": "an M4A audio file (sound, no picture)",
    "heic": "a HEIC photo (an iPhone's own format)",
    "avif": "an AVIF image",
    "mov": "a QuickTime video",
    "gif": "a GIF",
    "webp": "a WebP image",
    "text": "text",
    "empty": "empty",
    "unknown": "of a kind siyu does not know",
}
_HEIF = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
_AUDIO = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")  # an ftyp major brand of sound alone (iTunes, Flash audio)
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: a PNG's last 8 bytes


def content_type(head: bytes) -> str:
    """What a file's first bytes say it is (its extension may say otherwise): a key of _DESCRIBED."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[4:8] == b"ftyp":  # ISO base media: MP4, and the containers that share its box
        brand = head[8:12]
        if brand in _AUDIO:
            return "m4a"
        return "heic" if brand in _HEIF else "avif" if brand == b"avif" else "mov" if brand == b"qt  " else "mp4"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if not head:
        return "empty"
    return "text" if _is_text(head) else "unknown"


def _broken(found: str, head: bytes, handle: Any) -> str:
    """What is missing from an image its first bytes call a PNG or JPEG, read only as far as it takes ("" when whole):
    a PNG's IHDR chunk first and IEND chunk last, a JPEG's frame header (SOF) before its image data.

    A JPEG is not held to its end marker: a phone's motion photo carries a video after it."""
    if found == "png":
        if head[8:16] != b"\x00\x00\x00\x0dIHDR":
            return "without the IHDR chunk it must start with"
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 1024))
        return "" if _PNG_END in handle.read() else "cut short (no IEND chunk at its end)"
    if found == "jpeg" and not _jpeg_frame(handle):
        return "cut short or broken (no frame header, SOF, before its image data)"
    return ""


def _jpeg_frame(handle: Any) -> bool:
    """Whether a JPEG's markers lead from its start to a frame header (its size and colours), each segment whole."""
    handle.seek(2)
    for _ in range(4096):
        if handle.read(1) != b"\xff":
            return False
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes
            marker = handle.read(1)
        if not marker:
            return False
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a segment
            continue
        if code in (0xD9, 0xDA):  # the end, or image data, before any frame header
            return False
        size = handle.read(2)
        length = int.from_bytes(size, "big")
        if len(size) < 2 or length < 2:
            return False
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):  # SOF0-SOF15, less DHT, JPG and DAC
            return length >= 8 and len(handle.read(length - 2)) == length - 2
        handle.seek(length - 2, 1)
    return False


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a character cut where the read stopped is still text
            return False
    return b"\x00" not in head


def shown(path: str, written: str, base: Path) -> str:
    """A file as the playbook's author knows it: relative to the playbook's folder (`media/a.png`, or
    `templates/a.png` where the search found it), as written when written absolute or found further away."""
    if Path(written).is_absolute():
        return written
    relative = Path(os.path.relpath(path, base.resolve()))
    return written if relative.parts[:2] == ("..", "..") else relative.as_posix()


def problems(media: Media, base: Path) -> list[FileProblem]:
    """What is wrong with a file attachment where it is now: missing, not a file, not what WeCom takes by its
    bytes (a text file named .png), over WeCom's size; a JPEG named .png (or the other way) is a warning.
    Messages name each file as `shown` does, relative to `base` (the playbook's folder), not by its absolute path."""
    found = []
    for what, path, written in ((media.kind, media.path, media.source), ("cover", media.cover_path, media.cover)):
        if path is None:
            continue
        file, name = Path(path), shown(path, written or path, base)
        if not file.is_file():
            found.append(FileProblem(f"{what} {name}: no such file", "files are looked up like templates: beside the playbook, then templates/; fix the name or add the file"))
            continue
        kind = "image" if what == "cover" else media.kind
        found.extend(_type_problems(what, kind, file, name))
        limit = MAX_BYTES.get(kind)
        size = file.stat().st_size
        if limit is not None and size > limit:
            found.append(FileProblem(f"{what} {name} is {size / 1024 / 1024:.1f} MB; WeCom takes at most {limit // 1024 // 1024} MB", "shrink or re-encode it"))
    return found


def _type_problems(what: str, kind: str, file: Path, name: str) -> list[FileProblem]:
    accepted = ACCEPTED.get(kind)
    if accepted is None:
        return []
    try:
        with file.open("rb") as handle:
            head = handle.read(512)
            found = content_type(head)
            broken = _broken(found, head, handle)
    except OSError as exc:
        return [FileProblem(f"{what} {name}: cannot be read ({exc.strerror or exc})", "check the file's permissions")]
    if found not in accepted:
        takes = " or ".join(_DESCRIBED[t].removeprefix("a ").removeprefix("an ") for t in accepted)
        hint = "export it as .jpg or .png; share a phone photo as JPEG (兼容性最佳)" if kind == "image" else "convert it to MP4 (H.264)"
        if found == "m4a":
            hint = "make it a video (H.264 MP4, a still picture over the sound will do), or share it as a link"
        return [FileProblem(f"{what} {name} is {_DESCRIBED[found]} by its content, not {takes}: WeCom refuses it", hint)]
    if broken:
        return [FileProblem(f"{what} {name} is {_DESCRIBED[found]} {broken}: WeCom cannot show it", "export or download it again; a copy that stopped early leaves a file like this")]
    if kind == "image" and not file.name.lower().endswith(_NAMED[found]):
        return [
            FileProblem(
                f"{what} {name} is {_DESCRIBED[found]} named {file.suffix}: WeCom reads the bytes and takes it, but people and other tools go by the name",
                f"rename it to {file.stem}{_NAMED[found][0]}",
                "warning",
            )
        ]
    return []
