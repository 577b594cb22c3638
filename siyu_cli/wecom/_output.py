"""The `wecom` output: each send task becomes a WeCom task its staff member confirms in their client.

A private task is a mass send to its customers' external ids (`chat_type: single`), a group task one
to its groups' chat ids, a Moments task a company Moments job for the persona's customers, and a
welcome step with its contact's fresh WelcomeCode a `send_welcome_msg`. Tasks larger than WeCom takes
in one call (10,000 customers, 2,000 groups) go in parts, each part committed with its msgid as soon
as WeCom answers, so a crash repeats none. What WeCom created is kept in `wecom_tasks` for read-back
(siyu_cli.wecom._sync). Not idempotent: a request whose answer never came is `unknown`, and the next
pass looks for it in WeCom's own list (get_groupmsg_list_v2) instead of creating it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from siyu_cli._time import to_db, utcnow
from siyu_cli.dispatch._outputs import Delivered
from siyu_cli.errors import DeliveryError, SiyuError
from siyu_cli.store import immediate

if TYPE_CHECKING:
    import sqlite_utils

    from siyu_cli.dispatch._outputs import Outgoing
    from siyu_cli.playbook import LoadedPlaybook
    from siyu_cli.wecom._client import WecomClient
    from siyu_cli.wecom._sync import SyncReport

NOT_FRIEND = "not_friend"
NO_CHAT_ID = "no_chat_id"
WELCOME_EXPIRED = 41050  # the WelcomeCode is older than 20 s (or invalid)
# Answers about the app's setup, the same for every task: a wrong secret or corp id, an app not allowed to call
# 客户联系, an untrusted IP, a disabled app.
SETUP_ERRCODES = frozenset({40001, 40013, 40091, 48002, 60020, 50003})
# deliveries.location of a mass send's drafts from just before its creating call until WeCom answers (then the msgid):
# when it was asked on this machine's clock, so a task in doubt adopts no send WeCom made before it (siyu_cli.wecom._sync).
ASKING = "wecom: asked to create it at "


class WecomOutput:
    """Hands send tasks to WeCom (企业微信 客户联系) for staff to confirm."""

    idempotent = False
    reads_back = True  # sync: each recipient's outcome from WeCom's own lists

    def __init__(self, spec: Mapping[str, Any], *, name: str, playbook: LoadedPlaybook, db: sqlite_utils.Database, environ: Mapping[str, str], sleep: Callable[[float], None]) -> None:
        self.name = name
        self.spec = dict(spec)
        self.playbook = playbook
        self.db = db
        self.corp_id = setting(environ, self.spec.get("corp_id_env") or "SIYU_WECOM_CORP_ID", "corp id (企业ID)", "我的企业 → 企业信息 → 企业ID")
        self._secret = setting(environ, self.spec.get("secret_env") or "SIYU_WECOM_SECRET", "客户联系 Secret", "客户与上下游 → 客户联系 → API → Secret")
        self._sleep = sleep
        self._client: WecomClient | None = None
        self.pass_clock: Callable[[], datetime] = utcnow  # the pass's clock (the runner sets it each pass)
        self.userids = {p.id: p.wecom_userid for p in playbook.model.personas if p.wecom_userid}
        self.chats = {g.id: g.chat_id for g in playbook.model.groups if g.chat_id}
        self.moments_tags: dict[str, str] = dict(self.spec.get("moments_tags") or {})
        segments = playbook.model.segments
        self.audiences = {b.id: segments.get(b.audience, b.audience) if b.audience else None for b in playbook.model.beats}

    @property
    def client(self) -> WecomClient:
        """Made on first use, so a pass with nothing for WeCom imports no HTTP client."""
        if self._client is None:
            from siyu_cli._time import parse_duration
            from siyu_cli.wecom._client import WecomClient

            timeout = parse_duration(self.spec["timeout"]).total_seconds() if self.spec.get("timeout") else 10.0
            self._client = WecomClient(self.corp_id, self._secret, db=self.db, timeout=timeout, sleep=self._sleep, attempts=2)
        return self._client

    def customer_name(self, external_userid: str, *, within: float) -> str:
        """The customer's WeCom name (externalcontact/get), asked once and given up after `within` seconds: siyu serve
        asks for a contact it just created, before that contact's 20 s welcome. Raises WecomError (or a transient one)."""
        from siyu_cli.wecom._client import WecomClient

        with WecomClient(self.corp_id, self._secret, db=self.db, timeout=within, sleep=self._sleep, attempts=1) as client:
            return str(client.external_contact(external_userid).get("external_contact", {}).get("name") or "")

    def delivered_location(self, msg: Outgoing) -> str | None:
        return None

    def sync(self, now: datetime, *, every_task: bool = False) -> SyncReport:
        """Find tasks in doubt, read back what staff sent, remind who has not (siyu_cli.wecom._sync).
        A pass reads an open task every few minutes; `every_task` (siyu sync) reads them all now."""
        from datetime import timedelta

        from siyu_cli.wecom._sync import READ_EVERY, sync

        try:
            return sync(self, self.db, self.playbook.id, now, every=timedelta(0) if every_task else READ_EVERY)
        finally:
            self.flush()

    def flush(self) -> None:
        """Each part is committed as WeCom answers it; the connection is let go until the next batch."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def sender(self, msg: Outgoing) -> str:
        userid = self.userids.get(msg.persona_id)
        if userid is None:
            raise DeliveryError(
                f"persona {msg.persona_id!r} has no wecom_userid, so WeCom cannot hand it the task",
                hint=f"add wecom_userid: <the staff member's 账号 in 通讯录> to persona {msg.persona_id} (`siyu check` lists every one missing)",
            )
        return userid

    def deliver(self, msg: Outgoing, *, first_part: int = 1, on_part: Callable[[int], None] | None = None) -> Delivered:
        from siyu_cli.errors import WecomError, WecomSetupError

        sender = self.sender(msg)
        if msg.channel != "moments" and msg.channel != "group" and len(msg.recipients) == 1:
            added = self._added_staff(msg.recipients[0].ident)
            if added and sender not in added:
                # WeCom's callbacks say the customer added other staff: from this one, WeCom would refuse it.
                return Delivered(f"wecom: not sent: the customer added {', '.join(sorted(added))}, not {sender}", {msg.recipients[0].draft_id: NOT_FRIEND})
        try:
            if msg.channel == "moments":
                return self._moment(msg, sender)
            if msg.channel == "welcome" and len(msg.recipients) == 1:
                welcomed = self._welcome(msg, sender)
                if welcomed is not None:
                    return welcomed
                self._wait_out_quiet(sender)
            return self._mass(msg, sender, first_part, on_part)
        except WecomError as exc:
            if exc.errcode in SETUP_ERRCODES or isinstance(exc, WecomSetupError):
                # Every task would get the same answer: stop trying this output until the setup is fixed.
                raise DeliveryError(exc.message, transient=True, blocked=True, hint=exc.hint) from None
            raise

    def _mass(self, msg: Outgoing, sender: str, first_part: int, on_part: Callable[[int], None] | None) -> Delivered:
        from siyu_cli.wecom._client import MAX_CHATS, MAX_EXTERNAL

        group = msg.channel == "group"
        ids: dict[str, str] = {}  # WeCom's id → the draft it reaches
        refused: dict[str, str] = {}
        for recipient in msg.recipients:
            if group:
                chat = self.chats.get(recipient.ident)
                if chat is None:
                    refused[recipient.draft_id] = NO_CHAT_ID  # this group only: the others still get the post (`siyu check` names it)
                    continue
                ids[chat] = recipient.draft_id
            else:
                ids[recipient.ident] = recipient.draft_id
        order = list(ids)
        size = MAX_CHATS if group else MAX_EXTERNAL
        parts = [order[start : start + size] for start in range(0, len(order), size)]
        msgids: list[str] = []
        earlier: list[str] = []
        asked = False
        for number, chunk in enumerate(parts, start=1):
            if number < first_part:
                earlier.extend(ids[item] for item in chunk)
                continue
            if not asked:
                self._asking(list(ids.values()))
                asked = True
            try:
                if group:
                    msgid, failed = self.client.add_msg_template(chat_type="group", sender=sender, chat_ids=chunk, text=msg.text, attachments=msg.attachments)
                else:
                    msgid, failed = self.client.add_msg_template(chat_type="single", sender=sender, external_userids=chunk, text=msg.text, attachments=msg.attachments)
            except DeliveryError as exc:
                exc.parts_done = number - 1
                raise
            gone = [ids[item] for item in failed if item in ids]
            # The part, and WeCom's fail_list, committed the moment WeCom answers: a crash after it loses neither.
            self._record(msg, number, "groupmsg", msgid, sender, "group" if group else "single", len(chunk), gone)
            if msgid:
                msgids.append(msgid)
            if on_part is not None and number < len(parts):
                on_part(number)
        # Parts made on an earlier try (before a crash or a transient failure) had their fail_list committed then.
        refused.update((draft, NOT_FRIEND) for draft in self._refused(list(ids.values())))
        before = sum(1 for draft in earlier if draft not in refused)
        return Delivered(f"wecom msgid {', '.join(msgids) or '(none: no recipient could receive it)'}", refused, before)

    def _asking(self, drafts: list[str]) -> None:
        """Committed before the first creating call of this try: when (this machine's clock) WeCom was asked, which the
        drafts keep if the answer never comes (the settle of an unknown keeps a delivery's location)."""
        stamp = f"{ASKING}{to_db(utcnow())} (this machine's clock)"
        with immediate(self.db):
            for start in range(0, len(drafts), 500):
                chunk = drafts[start : start + 500]
                self.db.execute(
                    f"UPDATE deliveries SET location = ? WHERE output = ? AND draft_id IN ({', '.join('?' * len(chunk))})", [stamp, self.name, *chunk]
                )

    def _added_staff(self, contact_id: str) -> set[str]:
        """The staff members WeCom's add callbacks (siyu serve) say this customer added; empty when serve never saw
        an add (an imported contact), which leaves the task to WeCom's own fail_list."""
        rows = self.db.execute(
            "SELECT DISTINCT json_extract(props, '$.userid') FROM events WHERE contact_id = ? AND type = 'friend_added' "
            "AND json_extract(props, '$.callback') IN ('add_external_contact', 'add_half_external_contact')",
            [contact_id],
        )
        found = {str(row[0]) for row in rows if row[0]}
        if found:
            # The staff member an import names (添加人: the contact's account, a persona's account or a userid) added them too.
            account = self.db.execute("SELECT account FROM contacts WHERE contact_id = ?", [contact_id]).fetchone()
            if account and account[0]:
                found.add(str(account[0]))
                found.update(self.userids[p.id] for p in self.playbook.model.personas if p.account == account[0] and p.id in self.userids)
        return found

    def _refused(self, drafts: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(drafts), 500):
            chunk = drafts[start : start + 500]
            rows = self.db.execute(f"SELECT draft_id FROM drafts WHERE outcome = ? AND draft_id IN ({', '.join('?' * len(chunk))})", [NOT_FRIEND, *chunk])
            found.extend(row[0] for row in rows)
        return found

    def _moment(self, msg: Outgoing, sender: str) -> Delivered:
        visible: dict[str, Any] = {"sender_list": {"user_list": [sender]}}
        tags = [self.moments_tags[tag] for tag in _audience_tags(self.audiences.get(msg.beat)) if tag in self.moments_tags]
        if tags:
            visible["external_contact_list"] = {"tag_list": tags}
        jobid = self.client.add_moment_task(text=msg.text, attachments=msg.attachments, visible_range=visible)
        self._record(msg, 1, "moment", jobid, sender, None, 1)
        return Delivered(f"wecom moment job {jobid}")

    def _welcome(self, msg: Outgoing, sender: str) -> Delivered | None:
        """With the contact's WelcomeCode still fresh (20 s), the welcome itself; else None: a one-customer mass send."""
        from siyu_cli.errors import WecomError
        from siyu_cli.wecom._events import release_welcome_code, use_welcome_code, welcome_code

        contact = msg.recipients[0].ident
        now = self.pass_clock()
        code = welcome_code(self.db, contact, sender, now)
        if code is None or not use_welcome_code(self.db, code, now):
            return None
        try:
            sent = self.client.send_welcome_msg(code, msg.text, msg.attachments)
        except WecomError as exc:
            if exc.errcode == WELCOME_EXPIRED:
                return None  # WeCom says the 20 s are over: the welcome goes as a one-customer task instead
            if exc.transient:
                release_welcome_code(self.db, code)  # busy or unreachable, nothing sent: a retry within the 20 s may use it
            raise
        self._record(msg, 1, "welcome", code, sender, "single", 1)
        return Delivered("wecom welcome" if sent else "wecom welcome: another welcome came first (41051)")

    def _wait_out_quiet(self, sender: str) -> None:
        """A welcome that cannot go with the add's code is a one-customer task, a notification on the staff member's
        phone: like any later step it waits for the end of quiet hours (only the code's 20 s excused it)."""
        from siyu_cli.dispatch._policy import Guard

        guard = Guard(self.playbook)
        now = self.pass_clock()
        if guard.in_quiet(now):
            until = guard.quiet_end(now)
            raise DeliveryError(
                f"the add's WelcomeCode cannot be used (none came with the add, or its 20 s are over), so the welcome waits out quiet hours "
                f"and goes to {sender} as one task with the other welcomes of its text held until then",
                defer_to=until,
            )

    def _record(self, msg: Outgoing, part: int, kind: str, remote_id: str, sender: str, chat_type: str | None, count: int, gone: Sequence[str] = ()) -> None:
        """Committed the moment WeCom answers: a crash after it never creates this part again, nor forgets who WeCom refused."""
        stamp = to_db(self.pass_clock())
        with immediate(self.db):
            # A part WeCom made nothing of (41048: no recipient could receive it) is recorded too, closed, so a crash
            # in the next part never makes that one again as if it were this.
            self.db.execute(
                "INSERT OR REPLACE INTO wecom_tasks (task_id, output, part, kind, remote_id, playbook_id, sender, chat_type, recipients, created_at, closed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [msg.draft_id, self.name, part, kind, remote_id, msg.playbook_id, sender, chat_type, count, stamp, None if remote_id else stamp],
            )
            self.db.conn.executemany("UPDATE drafts SET outcome = ? WHERE draft_id = ?", [(NOT_FRIEND, draft) for draft in gone])


def _audience_tags(expression: str | None) -> list[str]:
    """The plain tags an audience names (`高意向 and not 已购` → 高意向), for a Moments job's WeCom tag filter."""
    if not expression:
        return []
    words = expression.replace("(", " ").replace(")", " ").split()
    found, negate = [], False
    for word in words:
        if word == "not":
            negate = True
            continue
        if word not in ("and", "or") and not negate:
            found.append(word)
        negate = False
    return found


def setting(environ: Mapping[str, str], name: str, what: str, where: str, *, who: str = "the wecom output") -> str:
    """A variable the wecom output names (siyu serve reads them too): its value, or an error saying where the admin console shows it."""
    value = environ.get(name, "").strip()
    if not value:
        raise SiyuError(
            f"environment variable {name} is not set; {who} takes the {what} from it",
            hint=f"export {name}='…' (管理后台 {where}; secrets live in the environment, never in the playbook)",
        )
    return value
