"""WeCom's 客户联系 callbacks → siyu events, recorded once however often WeCom retries a callback.

- change_external_contact add_external_contact (and add_half_external_contact, a customer's add the staff
  member has not yet confirmed) → friend_added: the contact is the ExternalUserID (created if new, with
  the account of the persona whose wecom_userid is the UserID and added_at the event time); the hook is
  the playbook hook whose code or id is the State, else the State is kept in props. An add to a staff
  member who is no persona still counts for its hook, but the contact's account is that staff member's
  UserID (as the wecom-customers import has it), props carry no persona, and the add is not handed to
  the welcome pass: no persona is that customer's friend.
- del_external_contact (staff removed the customer) and del_follow_user (the customer removed the staff
  member) → friend_deleted, for a contact the store knows.
- change_external_chat update add_member / del_member → group_joined / group_left for each external
  member in MemChangeList (an external_userid starts with wm, a WeChat user, or wo, a WeCom user of another
  corp; personas' staff and other colleagues are left out, and named in the callback's note); the group is
  the playbook group whose chat_id is ChatId.

Event ids come from the callback's identifying fields (corp, kind, staff, contact or chat and member,
CreateTime), so a retry records nothing new. Every decrypted callback is kept in wecom_callbacks with
what it recorded, in the same transaction as its events; other kinds are kept and record nothing.
A friend_added's WelcomeCode is kept for the welcome to be sent with, once, within 20 seconds of the add:
its received_at is the add's CreateTime (never later than serve's clock), so WeCom's retry of an add made
while serve was down brings no code WeCom would refuse (41050); when serve got it is in wecom_callbacks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db
from siyu_cli.errors import MalformedCallback
from siyu_cli.ingest._contacts import NewEvent, TrackResult, new_event, record_event
from siyu_cli.ingest._identity import resolve_contact
from siyu_cli.playbook._model import Playbook
from siyu_cli.store import immediate
from siyu_cli.wecom._crypto import parse_xml

WELCOME_WINDOW = timedelta(seconds=20)  # WeCom takes a WelcomeCode this long after the add
ADDS = ("add_external_contact", "add_half_external_contact")
DELETES = ("del_external_contact", "del_follow_user")
MEMBER_CHANGES = {"add_member": "group_joined", "del_member": "group_left"}
EXTERNAL_PREFIXES = ("wm", "wo")  # WeCom's external_userids: wm… a WeChat user, wo… a WeCom user; a colleague's UserID is the corp's choice


@dataclass(frozen=True)
class Received:
    """What one callback did: its audit row, the events it recorded (inserted or already there), or why none."""

    callback_id: int
    kind: str
    results: list[TrackResult] = field(default_factory=list)
    note: str = ""
    welcome: bool = True  # False: the add went to a staff member who is no persona, whom no welcome may speak for

    @property
    def added(self) -> list[TrackResult]:
        """Friend adds with a persona's staff member recorded for the first time: each is handed to the welcome pass."""
        return [r for r in self.results if r.inserted and r.type == "friend_added"] if self.welcome else []

    def line(self) -> str:
        """One line for siyu serve's log."""
        parts = [f"{r.type} {r.contact_id}" + ("" if r.inserted else " (a retry: recorded before)") for r in self.results]
        if self.note:
            parts.append(self.note)
        return f"callback {self.callback_id} {self.kind}: " + ("; ".join(parts) or "recorded nothing")


@dataclass
class _Plan:
    events: list[NewEvent] = field(default_factory=list)
    must_exist: bool = False  # deletes and leaves record only for contacts the store knows
    welcome: tuple[str, str, str, datetime] | None = None  # (contact id, staff userid, code, the add's time)
    stranger: bool = False  # the add's staff member is no persona
    half_of: tuple[str, str] | None = None  # a full add: (contact, userid) whose half add may have been recorded
    notes: list[str] = field(default_factory=list)


class CallbackBook:
    """Maps one playbook's callbacks to events: staff → persona, State → hook, ChatId → group."""

    def __init__(self, playbook: Playbook, corp_id: str) -> None:
        self.corp_id = corp_id
        self.personas = {p.wecom_userid: p for p in playbook.personas if p.wecom_userid}
        self.hooks = {h.id: h for h in playbook.hooks}
        for hook in playbook.hooks:
            if hook.code:
                self.hooks.setdefault(hook.code, hook)
        self.groups = {g.chat_id: g.id for g in playbook.groups if g.chat_id}

    def receive(self, db: sqlite_utils.Database, xml: str, *, received_at: datetime) -> Received:
        """Record a decrypted callback's events and keep it, in one transaction. MalformedCallback if it is not XML."""
        fields, members = _fields(xml)
        event = fields.get("Event") or fields.get("InfoType") or fields.get("MsgType") or "?"
        change = fields.get("ChangeType", "")
        kind = f"{event}/{change}" if change else event
        plan = self._plan(event, change, fields, members)
        stamp = to_db(received_at)
        results: list[TrackResult] = []
        with immediate(db):
            notes = list(plan.notes)
            if plan.half_of is not None and _half_recorded(db, *plan.half_of):
                notes.append("already recorded by its add_half_external_contact")
                plan.events = []
            for item in plan.events:
                if plan.must_exist and not _known(db, item.contact_id):
                    notes.append(f"{item.type} for {item.contact_id}: not in the store, nothing recorded (the callback is kept)")
                    continue
                results.append(record_event(db, item))
            if plan.welcome is not None:
                contact, userid, code, added = plan.welcome
                db.execute(
                    "INSERT OR IGNORE INTO wecom_welcome_codes (code, contact_id, userid, received_at) VALUES (?, ?, ?, ?)",
                    [code, resolve_contact(db, contact), userid, to_db(min(added, received_at))],
                )
            recorded = json.dumps([{"event_id": r.event_id, "type": r.type, "contact_id": r.contact_id, "inserted": r.inserted} for r in results], ensure_ascii=False)
            note = "; ".join(notes)
            cursor = db.execute(
                "INSERT INTO wecom_callbacks (received_at, kind, xml, recorded, note) VALUES (?, ?, ?, ?, ?)",
                [stamp, kind, xml, recorded, note or None],
            )
        return Received(int(cursor.lastrowid or 0), kind, results, note, welcome=not plan.stranger)

    def _plan(self, event: str, change: str, fields: dict[str, str], members: list[str]) -> _Plan:
        plan = _Plan()
        if event == "change_external_contact" and change in ADDS + DELETES:
            self._contact_change(plan, change, fields)
        elif event == "change_external_chat" and change == "update" and fields.get("UpdateDetail") in MEMBER_CHANGES:
            self._member_change(plan, fields, members)
        else:
            plan.notes.append("kept; siyu records no event for this kind")
        return plan

    def _contact_change(self, plan: _Plan, change: str, fields: dict[str, str]) -> None:
        contact, userid = fields.get("ExternalUserID", ""), fields.get("UserID", "")
        at = _created(fields)
        if not contact or at is None:
            plan.notes.append("no ExternalUserID or CreateTime: nothing recorded")
            return
        persona = self.personas.get(userid)
        props: dict[str, Any] = {"callback": change, "userid": userid}
        if persona is not None:
            props["persona"] = persona.id
        elif userid and change in DELETES:
            plan.notes.append(f"staff {userid!r} is no persona's wecom_userid")
        elif userid:
            plan.stranger = True
            plan.notes.append(f"staff {userid!r} is no persona's wecom_userid: no welcome (no persona is this customer's friend; give a persona wecom_userid: {userid})")
        eid = self._event_id("contact", change, userid, contact, fields.get("CreateTime") or fields.get("TimeStamp", ""))
        if change in DELETES:
            if fields.get("Source"):
                props["delete_source"] = fields["Source"]
            plan.must_exist = True
            plan.events.append(new_event("friend_deleted", contact, at=at, event_id=eid, props=props))
            return
        state = fields.get("State", "")
        hook = self.hooks.get(state) if state else None
        if state and hook is None:
            props["state"] = state
        account = persona.account if persona is not None else userid or None
        plan.events.append(
            new_event(
                "friend_added", contact, at=at, hook=hook.id if hook else None, event_id=eid, props=props,
                create_contact=True, contact={"account": account, "added_at": to_db(at)},
            )
        )  # fmt: skip
        if change == "add_external_contact":
            plan.half_of = (contact, userid)
        if fields.get("WelcomeCode"):
            plan.welcome = (contact, userid, fields["WelcomeCode"], at)

    def _member_change(self, plan: _Plan, fields: dict[str, str], members: list[str]) -> None:
        chat, detail = fields.get("ChatId", ""), fields["UpdateDetail"]
        at = _created(fields)
        if not chat or at is None or not members:
            plan.notes.append("no ChatId, CreateTime or MemChangeList (WeCom did not say who): nothing recorded")
            return
        kind = MEMBER_CHANGES[detail]
        props: dict[str, Any] = {"callback": detail, "chat_id": chat}
        scene = fields.get("JoinScene" if kind == "group_joined" else "QuitScene")
        if scene:
            props["join_scene" if kind == "group_joined" else "quit_scene"] = scene
        group = self.groups.get(chat)
        if group is None:
            plan.notes.append(f"chat {chat!r} is no playbook group's chat_id: recorded under the chat id")
        staff = [m for m in members if m in self.personas]
        if staff:
            plan.notes.append(f"staff left out: {', '.join(staff)}")
        colleagues = [m for m in members if m not in self.personas and not m.startswith(EXTERNAL_PREFIXES)]
        if colleagues:
            plan.notes.append(f"colleagues left out (no external_userid, which starts wm or wo): {', '.join(colleagues)}")
        plan.must_exist = kind == "group_left"
        for member in members:
            if not member.startswith(EXTERNAL_PREFIXES) or member in self.personas:
                continue
            eid = self._event_id("chat", detail, chat, member, fields.get("CreateTime") or fields.get("TimeStamp", ""))
            plan.events.append(new_event(kind, member, at=at, group=group or chat, event_id=eid, props=props, create_contact=kind == "group_joined"))

    def _event_id(self, *parts: str) -> str:
        return "wecom-" + hashlib.sha1("\x1f".join((self.corp_id, *parts)).encode()).hexdigest()


def _fields(xml: str) -> tuple[dict[str, str], list[str]]:
    """The callback's top-level fields, and MemChangeList's members (<Item>s, or WeCom's older comma list)."""
    root = parse_xml(xml)
    if root.tag != "xml":
        raise MalformedCallback(f"the decrypted callback's root is <{root.tag}>, not <xml>")
    fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    found = root.find("MemChangeList")
    members: list[str] = []
    if found is not None:
        items = [(item.text or "").strip() for item in found.iter("Item")]
        members = [m for m in items if m] if items else [m.strip() for m in (found.text or "").split(",") if m.strip()]
    return fields, list(dict.fromkeys(members))


def _created(fields: dict[str, str]) -> datetime | None:
    raw = fields.get("CreateTime") or fields.get("TimeStamp") or ""
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _known(db: sqlite_utils.Database, contact_id: str) -> bool:
    return db.execute("SELECT 1 FROM contacts WHERE contact_id = ?", [resolve_contact(db, contact_id)]).fetchone() is not None


def _half_recorded(db: sqlite_utils.Database, contact_id: str, userid: str) -> bool:
    """Whether the contact's latest add or delete is a half add with this staff member (the full add confirms it)."""
    row = db.execute(
        "SELECT type, props FROM events WHERE contact_id = ? AND type IN ('friend_added', 'friend_deleted') ORDER BY at DESC, id DESC LIMIT 1",
        [resolve_contact(db, contact_id)],
    ).fetchone()
    if row is None or row[0] != "friend_added":
        return False
    props = json.loads(row[1] or "{}")
    return props.get("callback") == "add_half_external_contact" and props.get("userid") == userid


def welcome_code(db: sqlite_utils.Database, contact_id: str, userid: str, now: datetime) -> str | None:
    """The contact's unused WelcomeCode with this staff member from an add within 20 seconds of `now`, else None."""
    row = db.execute(
        "SELECT code FROM wecom_welcome_codes WHERE contact_id = ? AND userid = ? AND used_at IS NULL AND received_at >= ? AND received_at <= ? ORDER BY received_at DESC LIMIT 1",
        [contact_id, userid, to_db(now - WELCOME_WINDOW), to_db(now)],
    ).fetchone()
    return None if row is None else str(row[0])


def use_welcome_code(db: sqlite_utils.Database, code: str, now: datetime) -> bool:
    """Take the code for one welcome: True for the one caller that marks it used while it is fresh (compare-and-set)."""
    with immediate(db):
        cursor = db.execute(
            "UPDATE wecom_welcome_codes SET used_at = ? WHERE code = ? AND used_at IS NULL AND received_at >= ?",
            [to_db(now), code, to_db(now - WELCOME_WINDOW)],
        )
    return cursor.rowcount == 1


def release_welcome_code(db: sqlite_utils.Database, code: str) -> None:
    """Give a taken code back after WeCom answered busy or was not reached (nothing was sent with it): a retry
    within its 20 seconds takes it again. Never after a send whose answer was lost: WeCom may have used it."""
    with immediate(db):
        db.execute("UPDATE wecom_welcome_codes SET used_at = NULL WHERE code = ?", [code])
