"""The outbox: one Markdown file per send task, for a person to copy and send.

A task of several recipients (a mass send, one post to several groups) lists them in its file, or, past
LIST_INLINE of them, in a CSV beside it (UTF-8 with BOM, as Excel opens it) that the file names.

Files are written atomically (temp file, rename; synced to disk once per batch), so a
crash leaves either no file or the whole file; a final file holding exactly the
draft is what crash recovery takes as "delivered". The name is a function of the draft alone,
so delivering again rewrites the same file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring as _json_string  # what json.dumps(text, ensure_ascii=False) returns
from pathlib import Path
from typing import TYPE_CHECKING

from siyu_cli.errors import DeliveryError

if TYPE_CHECKING:
    from siyu_cli.dispatch._outputs import Outgoing

_UNSAFE = re.compile(r"[^\w.-]+")
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9_.-]+")
# Errors a later attempt may not meet again; the rest need a person to fix something.
_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EINTR, errno.EIO, errno.EBUSY}
# A pass writes thousands of drafts at a handful of times and beats: their text forms are made once.
_CACHE_LIMIT = 4096
_stamps: dict[tuple[datetime, object, int], tuple[str, str, str, str]] = {}
LIST_INLINE = 20  # recipients a task's file lists itself; more go in the CSV beside it
MEDIA = "media"  # the day folder's attachments, named by content
_digests: dict[tuple[str, int, int], str] = {}
_beats: dict[str, str] = {}


def _safe(text: str, pattern: re.Pattern[str], limit: int) -> str:
    """Filename-safe, at most `limit` UTF-8 bytes, so name and temp name stay under 255 bytes."""
    cleaned = pattern.sub("_", text).strip("._") or "_"
    return cleaned.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _stamp(due: datetime) -> tuple[str, str, str, str]:
    """(ISO 8601, HHMM, YYYY-MM-DD, "MM-DD HH:MM") of a due time; keyed with its zone and fold, which equality ignores."""
    key = (due, due.tzinfo, due.fold)
    found = _stamps.get(key)
    if found is None:
        if len(_stamps) >= _CACHE_LIMIT:
            _stamps.clear()
        found = _stamps[key] = (due.isoformat(), due.strftime("%H%M"), due.strftime("%Y-%m-%d"), due.strftime("%m-%d %H:%M"))
    return found


def _parts(msg: Outgoing) -> tuple[str, str]:
    """(day folder, file name) of a draft in the outbox."""
    _iso, hhmm, day, _title = _stamp(msg.due_at)
    beat = _beats.get(msg.beat)
    if beat is None:
        if len(_beats) >= _CACHE_LIMIT:
            _beats.clear()
        beat = _beats[msg.beat] = _safe(msg.beat, _UNSAFE, 48)
    target = _safe(msg.target_id.replace(":", "-"), _UNSAFE, 64)
    return day, f"{hhmm}-{beat}-{target}-{_safe(msg.draft_id, _UNSAFE_ASCII, 40)}.md"


def outbox_path(folder: Path, msg: Outgoing) -> Path:
    """`<folder>/<YYYY-MM-DD>/<HHMM>-<beat>-<target>-<draft>.md`, in the playbook's zone."""
    day, name = _parts(msg)
    return folder / day / name


def _yaml_text(value: object) -> str:
    """A YAML scalar that reads back as the same text (JSON strings are valid YAML)."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return _json_string(str(value))


def render_markdown(msg: Outgoing) -> str:
    """YAML front matter a person (or a script) can read, then the draft itself."""
    iso, _hhmm, _day, when = _stamp(msg.due_at)
    header = (
        ("time", iso),
        ("day", msg.day),
        ("beat", msg.beat),
        ("beat_title", msg.beat_title),
        ("channel", msg.channel),
        ("persona", msg.persona),
        ("account", msg.account),
        ("target", msg.target),
        ("target_id", msg.target_id),
        ("cohort", msg.cohort),
        ("category", msg.category),
        ("variant", msg.variant),
        ("playbook", msg.playbook_id),
        ("playbook_title", msg.playbook_title),
        ("draft", msg.draft_id),
    )
    if msg.attachments:
        header += (("attachments", len(msg.attachments)),)
    if len(msg.recipients) > 1:
        header += (("recipients", len(msg.recipients)),)
    front = "".join(f"{key}: {_yaml_text(value)}\n" for key, value in header)
    title = f"# {when} {msg.beat_title} → {msg.target}"
    who = f"> {msg.channel_label} · {msg.speaker} · 第{msg.day}天 day {msg.day}"
    text = msg.text if msg.text.endswith("\n") else msg.text + "\n"
    return f"---\n{front}---\n\n{title}\n\n{who}\n\n{text}{_attachment_lines(msg)}{_recipient_lines(msg)}"


def recipients_csv(msg: Outgoing) -> bytes | None:
    """A long recipient list as CSV (BOM, CRLF: what Excel and WPS open as UTF-8), None when the file lists them."""
    if len(msg.recipients) <= LIST_INLINE:
        return None
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("target_id", "target", "draft"))
    writer.writerows((r.target_id, r.label, r.draft_id) for r in msg.recipients)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _csv_name(msg: Outgoing) -> str:
    return _parts(msg)[1][: -len(".md")] + ".csv"


def _recipient_lines(msg: Outgoing) -> str:
    """发给: who a task of several reaches, listed here or in the CSV beside the file."""
    if len(msg.recipients) <= 1:
        return ""
    head = f"\n## 发给 recipients ({len(msg.recipients)})\n\n"
    if len(msg.recipients) > LIST_INLINE:
        return head + f"[{_csv_name(msg)}]({_csv_name(msg)}): one row per recipient (target_id, target, draft)\n"
    return head + "".join(f"- {r.label} · {r.target_id} · draft {r.draft_id}\n" for r in msg.recipients)


def media_files(msg: Outgoing) -> list[tuple[str, str]]:
    """(source file, name in the day folder) of each file attachment, covers included, in order.

    Named by content (`media/<sha256 prefix>-<name>`): a poster sent to 1,000 contacts in named 1v1 drafts is
    one file a day, not 1,000; an edited poster gets a new name, so drafts already out keep the bytes they had."""
    found = []
    for media in msg.attachments:
        for path in (media.path, media.cover_path):
            if path is not None:
                found.append((path, f"{MEDIA}/{_digest(path)[:16]}-{_safe(os.path.basename(path), _UNSAFE, 80)}"))
    return found


def _digest(path: str) -> str:
    """SHA-256 of a file, once per (path, size, mtime) in this process ("" when it cannot be read: delivering says why)."""
    try:
        info = os.stat(path)
    except OSError:
        return ""
    key = (path, info.st_size, info.st_mtime_ns)
    found = _digests.get(key)
    if found is None:
        try:
            found = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return ""
        if len(_digests) >= _CACHE_LIMIT:
            _digests.clear()
        _digests[key] = found
    return found


def _attachment_lines(msg: Outgoing) -> str:
    """附件: each attachment, a copied file by its name beside the draft, a URL as it is."""
    if not msg.attachments:
        return ""
    copied = dict(media_files(msg))
    lines = ["", "## 附件 attachments", ""]
    for media in msg.attachments:
        where = copied.get(media.path or "") or media.source
        cover = f" · cover {copied.get(media.cover_path or '') or media.cover}" if media.cover else ""
        if media.kind == "image":
            lines.append(f"- {media.label}: ![]({where})")
        elif media.kind == "video":
            lines.append(f"- {media.label}: [{os.path.basename(where)}]({where})")
        elif media.kind == "link":
            about = f" — {media.description}" if media.description else ""
            lines.append(f"- {media.label}: [{media.title}]({media.source}){about}{cover}")
        else:
            lines.append(f"- {media.label}: {media.title} · appid {media.source} · page {media.page}{cover}")
    return "\n".join(lines) + "\n"


class OutboxOutput:
    """Writes each draft to its own Markdown file under the outbox folder."""

    idempotent = True
    reads_back = False

    def __init__(self, folder: Path, *, name: str = "outbox") -> None:
        self.folder = Path(folder)
        self.name = name
        self._unsynced = False
        self._made: dict[str, str] = {}  # day → its folder, made by this output

    def deliver(self, msg: Outgoing, *, first_part: int = 1, on_part: Callable[[int], None] | None = None) -> str:
        """Atomic (temp file + rename); durable at the next `flush`, which the runner calls before the ledger records it."""
        day, name = _parts(msg)
        folder = self._made.get(day)
        if folder is None:
            folder = str(self.folder / day)
            _make_folder(folder)
            self._made[day] = folder
        path = f"{folder}/{name}"
        data = render_markdown(msg).encode("utf-8")
        self._copy_media(folder, msg)
        listed = recipients_csv(msg)
        if listed is not None:
            # Before the Markdown, as attachments are: a task file that exists has its recipient list.
            _write_atomic(folder, f"{folder}/{_csv_name(msg)}", _csv_name(msg), listed)
        for attempt in (1, 2):
            try:
                _write_atomic(folder, path, name, data)
                break
            except FileNotFoundError as exc:
                if attempt == 2:
                    raise _failure("write in the folder", folder, exc) from None
                _make_folder(folder)  # removed since this output made it
        self._unsynced = True
        return path

    def _copy_media(self, folder: str, msg: Outgoing) -> None:
        """The draft's files in the day's media folder, before its Markdown: a draft file that exists has its
        attachments. A file already there under its content's name is not copied again."""
        files = media_files(msg)
        if files:
            _make_folder(f"{folder}/{MEDIA}")
        for source, name in files:
            target = f"{folder}/{name}"
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise DeliveryError(
                    f"outbox: cannot read the attachment {source}: {exc.strerror or exc}",
                    hint="put the file back (or change the attachments), then `siyu retry` the draft",
                ) from None
            if hashlib.sha256(data).hexdigest()[:16] != os.path.basename(name)[:16]:
                _digests.clear()
                raise DeliveryError(f"outbox: the attachment {source} changed while it was being copied", transient=True, hint="the next pass sends it")
            with contextlib.suppress(OSError):
                if os.path.getsize(target) == len(data):
                    continue  # its name is its content: the same bytes are there
            _write_atomic(os.path.dirname(target), target, os.path.basename(target), data)

    def flush(self) -> None:
        """One sync per batch instead of two fsyncs per file: the ledger is settled only after it."""
        if self._unsynced:
            os.sync()
            self._unsynced = False

    def delivered_location(self, msg: Outgoing) -> str | None:
        """The file, if it holds exactly this draft (a file cut short by a power loss is written again). Asked
        only when recovering a dead run's claim, so it also clears that draft's half-written temp files.

        A file found here may still be only in the page cache of a process that died, so it is
        synced at the next `flush`, before the ledger trusts it.
        """
        path = outbox_path(self.folder, msg)
        for stray in [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{_csv_name(msg)}.*.tmp")]:
            # A write the dead process never renamed into place: nobody will, and the team should not see it.
            stray.unlink(missing_ok=True)
        try:
            if path.read_bytes() != render_markdown(msg).encode("utf-8"):
                return None
        except OSError:
            return None
        if any(not (path.parent / name).is_file() for _, name in media_files(msg)):
            return None
        listed = recipients_csv(msg)
        if listed is not None:
            try:
                if (path.parent / _csv_name(msg)).read_bytes() != listed:
                    return None
            except OSError:
                return None
        self._unsynced = True
        return str(path)


def _failure(what: str, where: str | Path, exc: OSError) -> DeliveryError:
    reason = exc.strerror or str(exc)
    transient = exc.errno in _TRANSIENT
    hint = (
        "free some disk space, then deliver again"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
        else "check that the outbox folder is a writable directory, or set another one"
    )
    return DeliveryError(f"outbox: cannot {what} {where}: {reason}", transient=transient, hint=hint)


def _make_folder(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _failure("create the folder", folder, exc) from None


def _write_atomic(folder: str, path: str, name: str, data: bytes) -> None:
    """Temp file, then rename; a missing folder is raised as FileNotFoundError for the caller to make."""
    # Not mkstemp: its 0600 mode would hide drafts from colleagues; 0666 minus the umask is what editors make.
    tmp = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _failure("write in the folder", folder, exc) from None
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _failure("write", path, exc) from None
