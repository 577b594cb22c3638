"""Attachments resolved for a draft: images, a video, a link card or a mini-program card.

The playbook names files (looked up like templates: beside the playbook, then templates/ beside
it or its folder's parent, then ./templates) or URLs; a draft carries each file's absolute path, so
the outbox and the robots find it wherever siyu runs, and the ledger keeps them as JSON.
"""

from __future__ import annotations

import json
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
        """One line for people: what it is and where it is."""
        if self.kind == "link":
            return f"{self.label}: {self.title} {self.source}"
        if self.kind == "miniprogram":
            return f"{self.label}: {self.title} (appid {self.source}, page {self.page})"
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


def problems(media: Media) -> list[str]:
    """What is wrong with a file attachment where it is now: missing, not a file, over WeCom's size."""
    found = []
    for what, path in ((media.kind, media.path), ("cover", media.cover_path)):
        if path is None:
            continue
        file = Path(path)
        if not file.is_file():
            found.append(f"{what} {path}: no such file")
            continue
        limit = MAX_BYTES.get("image" if what == "cover" else media.kind)
        size = file.stat().st_size
        if limit is not None and size > limit:
            found.append(f"{what} {path} is {size / 1024 / 1024:.1f} MB; WeCom takes at most {limit // 1024 // 1024} MB")
    return found
