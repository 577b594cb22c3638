"""Send tasks: the drafts that go out as one message.

Drafts that share an account, beat, time, variant and text form one task, the way WeCom sends
them: a private beat whose text does not name the contact is one mass send (企业群发) to all its
recipients, a group beat one task to its groups. A draft whose text names its contact, a journey
step and a welcome step are tasks of their own; the add's welcomes that missed their WelcomeCode and
wait out quiet hours together go as one per rendered text (SendKeys.held_welcome). The ledger keeps a row per (draft,
recipient), so exactly-once holds per recipient; a task is claimed whole (its drafts share a
`send_key`) and delivered once per output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from siyu_cli.dispatch._capacity import PersonalRule

if TYPE_CHECKING:
    from siyu_cli.dispatch._outputs import Outgoing

T = TypeVar("T", bound=Mapping[str, Any])
SHOWN = 10  # recipients a robot post or the console names before "and N more"

# Channels whose drafts can be one message to many; journeys and welcomes are each contact's own.
SHARED = frozenset({"group", "private", "moments", "live"})


class SendKeys:
    """The `send_key` a recorded draft gets: equal for drafts one task can carry, None for a draft alone."""

    def __init__(self, personal: PersonalRule) -> None:
        self.personal = personal
        self._keys: dict[tuple[Any, ...], str] = {}

    def __call__(self, playbook_id: str, persona: str, channel: str, beat: str, variant: str | None, occurrence: str, text: str | None, media: str | None) -> str | None:
        if channel not in SHARED or self.personal(channel, beat, variant):
            return None
        return self._key((playbook_id, persona, channel, beat, variant or "", occurrence, text or "", media or ""))

    def held_welcome(self, playbook_id: str, row: Mapping[str, Any], until: str) -> str | None:
        """The key of an add's welcome that missed its WelcomeCode and waits for the end of quiet hours (`until`): shared
        with every welcome of its persona, step and rendered text held until then, so the morning brings the staff member
        one mass send, not a notification per night's add. Its text is each draft's own render, so a welcome that reads
        `contact` shares a task only with those it renders the same for (`{% if contact.tags %}` alike; a name, alone)."""
        beat = str(row["beat"])
        return self._key((playbook_id, str(row["persona"] or ""), "welcome", beat, str(row["variant"] or ""), until, str(row["text"] or ""), str(row.get("attachments") or "")))

    def rekeyed(self, key: str | None, channel: str, beat: str, variant: str | None, text: str | None, media: str | None) -> str | None:
        """A pending draft's key once an edit re-rendered it: the drafts of its task that still share a text stay one task.
        A held welcome's key is its rendered text's (held_welcome), so it reads `contact` freely; a beat's draft shares
        none once its text names the contact (the beat's later drafts are each their own task)."""
        if key is None:
            return None
        if channel != "welcome" and self.personal(channel, beat, variant):
            return None
        return self._key((key, variant or "", text or "", media or ""))

    def _key(self, parts: tuple[str, ...]) -> str:
        found = self._keys.get(parts)
        if found is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            found = self._keys[parts] = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:20]
        return found


def send_tasks(rows: Iterable[T]) -> list[list[T]]:
    """Claimed drafts as tasks, in the order their first draft is due; each task's drafts in (due, id) order."""
    tasks: dict[str, list[T]] = {}
    for row in sorted(rows, key=lambda r: (r["due_at"], r["draft_id"])):
        key = row.get("send_key")
        tasks.setdefault(key if key is not None else "\x00" + str(row["draft_id"]), []).append(row)
    return list(tasks.values())


def task_of(draft_ids: Sequence[str]) -> str:
    """A task's name: its first draft's id alone, or with the number of drafts it carries."""
    return draft_ids[0] if len(draft_ids) == 1 else f"{draft_ids[0]}-{len(draft_ids)}"


def recipient_line(msg: Outgoing) -> str:
    """发给: the first recipients of a task of several, for a robot post or the console ("" for a task of one)."""
    if len(msg.recipients) <= 1:
        return ""
    names = "、".join(r.label for r in msg.recipients[:SHOWN])
    more = f" … 等 {len(msg.recipients)} 个 and {len(msg.recipients) - SHOWN} more (`siyu outbox` lists them)" if len(msg.recipients) > SHOWN else ""
    return f"发给 recipients ({len(msg.recipients)}): {names}{more}"
