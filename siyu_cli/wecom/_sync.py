"""Execution read-back for the `wecom` output: what staff really sent, per recipient, into the ledger.

Three steps, each pass and `siyu sync`:
- **find**: a task whose creating request may have reached WeCom (the pass died, or no answer came) is
  looked for in WeCom's own list (get_groupmsg_list_v2: same text, searched around the claim on the pass's clock
  and in the last week on this machine's, handed to the same staff member, created no earlier than the claim (a
  send listed before it is another one's, whatever its text), reaching exactly this part's customers but those
  WeCom refused as not friends). Found once, it is recorded and its drafts are sent; found twice, or reaching only
  some of them (another store's or campaign's send of the same text may), a person looks. Not there, WeCom never
  made it, so its drafts go back to pending and the next delivery creates it, unless the search could have missed it
  (now before the claim, or a claim too old to search): then a person looks, nothing is made again.
- **read**: for each open task, the staff member's status (get_groupmsg_task) and, once they sent
  it, each recipient's (get_groupmsg_send_result: sent at a time, not sent, not a friend, refused
  by the monthly quota); Moments jobs by get_moment_task_result then get_moment_task. Outcomes go
  in drafts.outcome with done_by (the staff userid) and done_at (when it went; unknown for Moments,
  which WeCom reports with no publish time), as `outbox done` would by hand.
- **remind**: a task not confirmed `remind_after` after it was made (or after the last reminder)
  is reminded (remind_groupmsg_send), at most 3 times in any 24 hours (the times are kept: a rolling window, as WeCom counts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from siyu_cli._time import from_db, parse_duration, to_db, utcnow
from siyu_cli.errors import DeliveryError
from siyu_cli.store import immediate

if TYPE_CHECKING:
    import sqlite_utils

    from siyu_cli.wecom._output import WecomOutput

REMINDERS = 3  # remind_groupmsg_send: 每个群发最多可被提醒三次
REMIND_WINDOW = timedelta(hours=24)
READ_EVERY = timedelta(minutes=5)  # a pass reads an open task at most this often (cron runs every minute); `siyu sync` reads all
GIVE_UP = timedelta(days=7)  # a task nobody confirmed in a week is read as not sent and closed
# A task in doubt is looked for from a day before its claim to a day after now: WeCom stamps create_time on its own
# clock, which may be minutes or hours off this machine's (a VM without NTP, a --now rehearsal). Wide, because
# "not in a narrow window" proves nothing; the same text, staff member and recipients keep it ours; well inside
# get_groupmsg_list_v2's limit of a month between start_time and end_time (the client splits longer ranges).
LOOK_AROUND = timedelta(days=1)
# WeCom stamps create_time on its own (real) clock, which a --now pass does not follow: the last week on this machine's clock
# is searched too (a rehearsal a few days ahead, then cron), whatever the pass's clock says.
LOOK_BACK = timedelta(days=7)
# get_groupmsg_send_result's status → the ledger's outcome
OUTCOMES = {0: "not_sent", 1: "sent", 2: "not_friend", 3: "quota"}
UNKNOWN_TASK = frozenset({41047, 40088})  # WeCom knows no mass send with this msgid / no Moments job with this jobid
BUSY = 45009  # 接口调用超过限制: remind_groupmsg_send's 3 in 24 hours answer as any rate limit
UNSENT = 0  # get_groupmsg_task: 0 未发送, 2 已发送 (the docs' own example shows 1: any other value is sent)
# A mass send created before its task was claimed is not that task. The claim is known on the pass's clock (drafts.claimed_at)
# and, from the wecom output, on this machine's (deliveries.location, written just before the creating call); WeCom stamps
# create_time on its own clock, the machine's give or take this much (a VM without NTP; a fake WeCom in a rehearsal follows
# --now instead): the earlier of the two, less this, is the earliest a send of this task can have been made. Generous, since
# too little would make a task WeCom holds again; a send of the same text this close before the claim must still reach
# exactly this part's customers to be taken.
SKEW = timedelta(hours=1)
NOT_CONTACT = 84061  # externalcontact/get: 不存在外部联系人的关系 (no staff member has this customer)
CHECK_MOST = 50  # customers a found part leaves out that are asked about (externalcontact/get), one call each; more: a person looks


@dataclass
class SyncReport:
    """What one read-back did, for the pass summary and `siyu sync`."""

    found: int = 0  # tasks in doubt found in WeCom's list (their drafts now sent)
    remade: int = 0  # parts of tasks in doubt WeCom does not have: never made, so made by the delivery that follows
    settled: int = 0  # drafts in doubt that finding settled (sent, or pending to send now)
    unsettled: int = 0  # tasks in doubt finding could not settle: WeCom did not answer
    to_check: int = 0  # tasks in doubt WeCom answered for but cannot tell apart: a person looks (群发记录)
    read: int = 0  # open tasks read
    outcomes: dict[str, int] = field(default_factory=dict)  # recipients by outcome, read this time
    reminded: int = 0  # siyu's tasks reminded (WeCom accepted a reminder for at least one of its parts)
    reminded_parts: int = 0  # WeCom's mass sends reminded (a task of 25,000 customers is 3)
    closed: int = 0
    settled_as: dict[str, int] = field(default_factory=dict)  # drafts in doubt finding settled now, by what they became: sent, or the reason skipped
    blocked: bool = False  # the output's setup is wrong (a secret): read-back stopped at its first call this pass
    errors: list[str] = field(default_factory=list)  # what a person looks at (the pass exits 1)
    waiting: list[str] = field(default_factory=list)  # WeCom unreachable or busy: read back at a later pass (exit 0)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sync(output: WecomOutput, db: sqlite_utils.Database, playbook_id: str, now: datetime, *, every: timedelta = READ_EVERY) -> SyncReport:
    """`every`: skip open tasks read less than this long ago (timedelta(0): read them all)."""
    report = SyncReport()
    remind_after = output.spec.get("remind_after") or "2h"
    for step in (_find, _read, _remind):
        try:
            step(output, db, playbook_id, now, report, remind_after if step is not _read else every)
        except DeliveryError as exc:
            if setup_error(exc):
                # Every call would get the same answer (a wrong secret: gettoken's 40001): one error with the fix, and no
                # more calls this pass, not a refused gettoken and an error per open task.
                report.errors.append(f"{output.name}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
                report.blocked = True
                break
            (report.waiting if exc.transient else report.errors).append(f"{output.name}: {exc.message}")
            if step is _find:
                report.unsettled += 1
    return report


def setup_error(exc: Exception) -> bool:
    """An answer about the app's setup, the same for every call until a person fixes it (the output's SETUP_ERRCODES)."""
    from siyu_cli.errors import WecomError, WecomSetupError
    from siyu_cli.wecom._output import SETUP_ERRCODES

    return isinstance(exc, WecomSetupError) or (isinstance(exc, WecomError) and exc.errcode in SETUP_ERRCODES)


def _find(output: WecomOutput, db: sqlite_utils.Database, playbook_id: str, now: datetime, report: SyncReport, remind_after: str) -> None:
    from siyu_cli.dispatch._tasks import send_tasks, task_of
    from siyu_cli.wecom._client import MAX_CHATS, MAX_EXTERNAL

    cursor = db.execute(
        "SELECT d.* FROM drafts d JOIN deliveries v ON v.draft_id = d.draft_id AND v.output = ? "
        "WHERE d.playbook_id = ? AND d.state = 'unknown' AND v.state IN ('unknown', 'inflight') AND d.channel IN ('private', 'group', 'journey', 'live', 'welcome')",
        [output.name, playbook_id],
    )
    columns = [c[0] for c in cursor.description]
    doubted = [dict(zip(columns, row, strict=True)) for row in cursor]
    tasks = send_tasks(doubted)
    # Every task in doubt with its text, staff member and when it was claimed and asked for: a send in the windows of
    # two of them (a rehearsal's asks seconds apart for two days of a daily text) cannot be told to be either's.
    rivals = [
        (
            task_of([row["draft_id"] for row in task]),
            str(task[0]["text"] or ""),
            output.userids.get(str(task[0]["persona"] or "")),
            min(from_db(str(row["claimed_at"] or row["due_at"])) for row in task),
            _asked_at(db, output.name, [row["draft_id"] for row in task]),
        )
        for task in tasks
    ]
    for task in tasks:
        name = task_of([row["draft_id"] for row in task])
        sender = output.userids.get(str(task[0]["persona"] or ""))
        if sender is None:
            continue
        if task[0]["channel"] == "welcome" and len(task) == 1 and _welcome_code_spent(db, task[0], sender):
            continue  # sent with the add's code (WeCom lists no welcomes): a person checks, nothing is created again
        recorded = {row[0] for row in db.execute("SELECT remote_id FROM wecom_tasks WHERE output = ?", [output.name])}
        made = db.execute("SELECT COUNT(*) FROM wecom_tasks WHERE task_id = ? AND output = ?", [name, output.name]).fetchone()[0]
        chat_type = "group" if task[0]["channel"] == "group" else "single"
        size = MAX_CHATS if chat_type == "group" else MAX_EXTERNAL
        total = -(-len(task) // size)  # the parts the task is sent in (the output cuts its recipients the same way)
        match = None
        refused: list[str] = []  # drafts of the found part WeCom did not take (its fail_list, which the list does not return)
        if made < total:
            # The part after the last one recorded is the one that may have been made: look for it.
            claim = min(from_db(str(row["claimed_at"] or row["due_at"])) for row in task)
            spans, doubt = search_spans(claim, now, utcnow())
            asked = _asked_at(db, output.name, [row["draft_id"] for row in task])
            # The send was made while its creating call was open, seconds after the claim: within SKEW of the claim on the
            # pass's clock (a WeCom that follows --now, as the fake does) or of the ask on this machine's (the real WeCom in
            # a rehearsal). Not before (another task's, a daily text's earlier day) nor long after (the next day's task of
            # a daily beat, itself in doubt). A store from before siyu wrote the ask: from the claim on, unbounded.
            windows = [(claim - SKEW, claim + SKEW), (asked - SKEW, asked + SKEW)] if asked is not None else [(claim - SKEW, None)]
            part = _part(task, made, size)
            ours = set(part) if chat_type == "single" else {str(row["target"]).partition(":")[2] for row in task}
            unsure: str | None = None  # a group send of this text that has reached no group yet: it may be this task
            shared: tuple[str, str] | None = None  # (msgid, task) a send another task in doubt of this text may be
            astray: str | None = None  # a send to this task's customers that is not this part as cut (one of several parts)
            everyone = {str(row["target"]).partition(":")[2] for row in task}
            listed: set[str] = set()
            found: list[tuple[str, set[str]]] = []  # sends made after the claim that reach this part's recipients
            items = (item for start, end in spans for item in output.client.groupmsg_list(chat_type=chat_type, start=start, end=end, filter_type=0))
            for item in items:
                msgid = str(item.get("msgid"))
                if msgid in listed or msgid in recorded or (item.get("text") or {}).get("content", "") != (task[0]["text"] or ""):
                    continue
                listed.add(msgid)
                created = datetime.fromtimestamp(int(item["create_time"]), UTC) if item.get("create_time") is not None else None
                if created is not None and not any(low <= created and (high is None or created <= high) for low, high in windows):
                    continue  # not made while this task's call was open: another task's (a daily text's other day, another cohort)
                rival = _rival(rivals, name, task[0]["text"] or "", sender, created) if created is not None else None
                if rival is not None:
                    shared = shared or (msgid, rival)  # another task in doubt of this text may own it: neither takes it
                    continue
                if not any(entry.get("userid") == sender for entry in output.client.groupmsg_task(msgid)):
                    continue
                ours_too, listed_ids = _recipients_match(output, msgid, sender, chat_type, ours)
                if ours_too:
                    found.append((msgid, listed_ids))
                elif ours_too is None:
                    unsure = unsure or msgid
                elif chat_type == "single" and listed_ids and listed_ids <= everyone:
                    astray = astray or msgid  # this task's customers, but not as this part was cut: never made again blindly
            if shared is not None:
                # Two tasks in doubt of one text and staff member whose calls were close (a rehearsal's --now days apart,
                # minutes on this machine): a send near both is either's. Never taken, never made again: a person looks.
                _to_check(report, output.name, name, sender, (
                    f"WeCom holds a mass send ({shared[0]}) of the same text for {sender} that task "
                    f"{shared[1]}, also in doubt, may be too (their calls to WeCom were close in time), so siyu cannot tell whose it is: "
                    f"none is taken and nothing is made again."
                ))
                continue
            if astray and not found:
                _to_check(report, output.name, name, sender, (
                    f"WeCom holds a mass send ({astray}) of the same text for {sender}, made since its claim, "
                    f"that reaches this task's customers but not as its part {made + 1} was cut, so siyu cannot tell it is that part, and nothing is "
                    f"made again."
                ))
                continue
            if len(found) > 1 or (found and unsure):
                # Which one is this task cannot be told (another store or campaign may send the same text): never adopted,
                # never made again; a person looks.
                shown = ", ".join([msgid for msgid, _ in found] + ([unsure] if unsure and found else []))
                _to_check(report, output.name, name, sender, (
                    f"WeCom holds {len(found) + int(bool(found and unsure))} mass sends of the same text for {sender}, "
                    f"made since its claim, that may be it ({shown}); siyu cannot tell which (another store or campaign may send the same text), "
                    f"so none is taken for it and nothing is made again."
                ))
                continue
            if found:
                msgid, listed_ids = found[0]
                missing = sorted(set(part) - listed_ids) if chat_type == "single" else []
                if missing and not _not_friends(output, sender, missing):
                    # It leaves out customers WeCom would have taken: not this part minus WeCom's refusals, maybe another's send.
                    _to_check(report, output.name, name, sender, (
                        f"WeCom holds a mass send ({msgid}) of the same text for {sender}, made since its claim, "
                        f"that reaches {len(listed_ids)} of this part's {len(part)} customers, and siyu cannot tell that WeCom refused the other "
                        f"{len(missing)} (they are still {sender}'s customers, or too many to ask): it may be another store's or campaign's send, so it "
                        f"is not taken for this task and nothing is made again."
                    ))
                    continue
                match = msgid
                refused = [part[ident] for ident in missing]
            if match is None and unsure:
                # Neither adopted nor made again: once the staff member sends it, its groups tell (the next read finds it).
                _to_check(report, output.name, name, sender, (
                    f"WeCom holds a group mass send ({unsure}) of the same text for {sender} that has "
                    f"reached no group yet, most likely this task, so nothing is made again."
                ))
                continue
            if match is None and doubt is not None:
                # "Not in the list" proves nothing when the list could not hold it: made again, it would go twice.
                shown = claim.astimezone(output.playbook.tz)
                report.errors.append(
                    f"{output.name}: task {name} is in doubt: {doubt} (claimed {shown:%Y-%m-%d %H:%M}), so WeCom's list of mass sends cannot "
                    f"show it was never made, and nothing is made again. If 群发记录 holds it for {sender}: {_ask(sender, name)}. "
                    f"If it does not, a pass with --now from {shown:%Y-%m-%d %H:%M} to a month after it (or none: the real clock, within a week of the claim) looks again and makes it"
                )
                report.to_check += 1
                continue
        ids = [row["draft_id"] for row in task]
        marks = ", ".join("?" * len(ids))
        report.settled += len(ids)
        with immediate(db):
            if match is not None:
                db.execute(
                    "INSERT OR REPLACE INTO wecom_tasks (task_id, output, part, kind, remote_id, playbook_id, sender, chat_type, recipients, created_at) "
                    "VALUES (?, ?, ?, 'groupmsg', ?, ?, ?, ?, ?, ?)",
                    [name, output.name, made + 1, match, playbook_id, sender, chat_type, min(size, len(task) - made * size), to_db(now)],
                )
                db.conn.executemany("UPDATE drafts SET outcome = 'not_friend' WHERE draft_id = ? AND outcome IS NULL", [(draft,) for draft in refused])
                report.found += 1
                made += 1
            if made >= total:
                # Every part is in WeCom: sent, but a recipient in an answered part's fail_list (committed then), skipped.
                for refused_one, count in db.execute(
                    f"SELECT outcome = 'not_friend', COUNT(*) FROM drafts WHERE state = 'unknown' AND draft_id IN ({marks}) GROUP BY 1", ids
                ).fetchall():
                    key = "not_friend" if refused_one else "sent"
                    report.settled_as[key] = report.settled_as.get(key, 0) + count
                db.execute(f"UPDATE deliveries SET state = 'delivered', location = ?, error = NULL WHERE output = ? AND draft_id IN ({marks})", [f"wecom task {name} (found)", output.name, *ids])
                db.execute(
                    "UPDATE drafts SET state = CASE WHEN outcome = 'not_friend' THEN 'skipped' ELSE 'sent' END, "
                    "reason = CASE WHEN outcome = 'not_friend' THEN 'not_friend' END, error = NULL, task_id = ? "
                    f"WHERE state = 'unknown' AND draft_id IN ({marks})",
                    [name, *ids],
                )
                continue
            # The parts after the last one made never were: the next delivery starts there (a part made is not made again).
            db.execute(f"UPDATE deliveries SET state = 'pending', parts = ?, error = NULL WHERE output = ? AND draft_id IN ({marks})", [made, output.name, *ids])
            db.execute(
                "UPDATE drafts SET state = 'pending', reason = 'retry', error = ?, finished_at = NULL, due_at = MIN(due_at, ?) "
                f"WHERE state = 'unknown' AND draft_id IN ({marks})",
                [f"wecom: {'part ' + str(made + 1) + ' is' if made else 'it is'} not in WeCom's list of mass sends, so it was never created; sending it now", to_db(now), *ids],
            )
            report.remade += total - made


ASK = "Look in 管理后台"  # where a to-check message's advice to a person starts: `siyu retry` cuts it off a task it makes


def _to_check(report: SyncReport, output: str, name: str, sender: str, why: str) -> None:
    """A task in doubt siyu cannot settle from WeCom's list: why, and what a person does; it waits for them."""
    report.errors.append(f"{output}: task {name} is in doubt: {why} {_ask(sender, name)}")
    report.to_check += 1


def _ask(sender: str, name: str) -> str:
    """What a person does with a task WeCom may hold unsent (the same words wherever siyu cannot tell)."""
    return (
        f"{ASK} → 客户与上下游 → 客户联系 → 群发记录: if {sender} has it waiting, ask them to send it (企业微信 → 群发助手) "
        f"and the next pass reads it back; if it went already, mark it: `siyu outbox done {name}`; if WeCom has no such send, "
        f"it was never made: `siyu retry --unknown {name}` makes it"
    )


def search_spans(claim: datetime, now: datetime, wall: datetime) -> tuple[list[tuple[datetime, datetime]], str | None]:
    """Where get_groupmsg_list_v2 may hold a task claimed at `claim` (the pass's clock): around the claim, stretched
    toward the pass's `now` up to WeCom's month, and the last week up to a day ahead on this machine's clock `wall`
    (WeCom's own), merged when they overlap, each start before its end. With why "not there" proves nothing, or None:
    now before the claim (a --now in the past), or a claim older than the month searched around it."""
    from siyu_cli.wecom._client import LIST_SPAN

    if now >= claim:
        around = (claim - LOOK_AROUND, min(now + LOOK_AROUND, claim - LOOK_AROUND + LIST_SPAN))
    else:
        around = (max(now - LOOK_AROUND, claim + LOOK_AROUND - LIST_SPAN), claim + LOOK_AROUND)
    doubt = (
        "this pass's --now is before the task's claim" if now < claim
        else "the task was claimed more than a month before this pass's --now" if around[1] < now + LOOK_AROUND
        else None
    )
    spans: list[tuple[datetime, datetime]] = []
    for start, end in sorted([around, (wall - LOOK_BACK, wall + LOOK_AROUND)]):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans, doubt


def _recipients_match(output: WecomOutput, msgid: str, sender: str, chat_type: str, ours: set[str]) -> tuple[bool | None, set[str]]:
    """Could a mass send found by text and staff member be ours? Only if it reaches none but our recipients (this
    part's customers; a group task's groups): another campaign (or another store on the same corp) may have sent the
    same text. WeCom lists a single task's customers whatever their status (not its fail_list); a group task lists
    only the groups already sent to, so an empty list cannot tell (None). With the ids WeCom lists."""
    if chat_type == "group":
        listed = {str(entry.get("chat_id")) for entry in output.client.groupmsg_send_result(msgid, sender)}
        chats = {output.chats.get(group, group) for group in ours}
        return (None if not listed else listed <= chats), listed
    listed = {str(entry.get("external_userid")) for entry in output.client.groupmsg_send_result(msgid, sender)}
    return bool(listed) and listed <= ours, listed


def _part(task: list[dict[str, Any]], made: int, size: int) -> dict[str, str]:
    """Part `made + 1` of a task as the output cuts it (recipients by target, `size` a part): WeCom's id → draft."""
    chunk = sorted(task, key=lambda row: str(row["target"]))[made * size : (made + 1) * size]
    return {str(row["target"]).partition(":")[2]: str(row["draft_id"]) for row in chunk}


def _not_friends(output: WecomOutput, sender: str, missing: list[str]) -> bool:
    """Are the customers a found part leaves out ones WeCom refused (its fail_list: not `sender`'s customers)? Asked of
    WeCom one by one (externalcontact/get), up to CHECK_MOST; any still the staff member's customer, or an answer that
    cannot tell, says no: the send may be another's."""
    from siyu_cli.errors import WecomError

    if len(missing) > CHECK_MOST:
        return False
    for ident in missing:
        try:
            follow = output.client.external_contact(ident).get("follow_user") or []
        except WecomError as exc:
            if exc.errcode == NOT_CONTACT:
                continue  # no staff member has them: WeCom refused them
            if exc.transient or setup_error(exc):
                raise
            return False
        if any(entry.get("userid") == sender for entry in follow):
            return False
    return True


def _rival(rivals: list[tuple[str, str, str | None, datetime, datetime | None]], name: str, text: str, sender: str, created: datetime) -> str | None:
    """Another task in doubt of the same text and staff member whose creating call a send made at `created` may
    have been (within SKEW of its claim or ask), or None. Which of two it is, clocks seconds off cannot tell."""
    for other, other_text, other_sender, claimed, ask in rivals:
        if other != name and other_text == text and other_sender == sender and any(abs(created - moment) <= SKEW for moment in (claimed, ask) if moment is not None):
            return other
    return None


def _asked_at(db: sqlite_utils.Database, output: str, drafts: list[str]) -> datetime | None:
    """When, on this machine's clock, the wecom output was about to ask WeCom to create this task (deliveries.location,
    written before the call, kept until WeCom answers), or None (a store from before siyu wrote it)."""
    from siyu_cli.wecom._output import ASKING

    found = None
    for start in range(0, len(drafts), 500):
        chunk = drafts[start : start + 500]
        row = db.execute(
            f"SELECT MIN(location) FROM deliveries WHERE output = ? AND location LIKE ? AND draft_id IN ({', '.join('?' * len(chunk))})",
            [output, ASKING + "%", *chunk],
        ).fetchone()
        if row and row[0]:
            try:
                stamp = from_db(str(row[0])[len(ASKING) :].split(" ", 1)[0])
            except ValueError:
                continue
            found = stamp if found is None else min(found, stamp)
    return found


def _welcome_code_spent(db: sqlite_utils.Database, row: Mapping[str, Any], sender: str) -> bool:
    """Was this welcome draft the one sent with a WelcomeCode? Only a code used for it, at its own due time or
    after, says so; a later welcome step is a mass send like any other, and is looked up."""
    contact = str(row["target"]).partition(":")[2]
    found = db.execute(
        "SELECT 1 FROM wecom_welcome_codes WHERE contact_id = ? AND userid = ? AND used_at IS NOT NULL AND used_at >= ?",
        [contact, sender, row["due_at"]],
    ).fetchone()
    return found is not None


def _open(db: sqlite_utils.Database, output: WecomOutput, playbook_id: str) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT * FROM wecom_tasks WHERE playbook_id = ? AND output = ? AND closed_at IS NULL ORDER BY created_at", [playbook_id, output.name])
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


def _interval(task: Mapping[str, Any], now: datetime, every: timedelta) -> timedelta:
    """How often a pass reads an open task: every few minutes while staff usually confirm, then less and less
    (thousands of unconfirmed one-customer tasks must not cost thousands of calls every five minutes)."""
    if every <= timedelta(0):
        return every
    age = now - from_db(task["created_at"])
    return every if age < timedelta(hours=1) else max(every, timedelta(minutes=30)) if age < timedelta(days=1) else max(every, timedelta(hours=2))


def _read(output: WecomOutput, db: sqlite_utils.Database, playbook_id: str, now: datetime, report: SyncReport, every: timedelta) -> None:
    from siyu_cli.errors import WecomError

    for task in _open(db, output, playbook_id):
        if task["read_at"] is not None and timedelta(0) <= now - from_db(task["read_at"]) < _interval(task, now, every):
            continue
        report.read += 1
        # Recipients WeCom has not answered for yet (a fail_list one is not_friend already).
        members = {str(t).partition(":")[2]: d for d, t in db.execute("SELECT draft_id, target FROM drafts WHERE task_id = ? AND outcome IS NULL", [task["task_id"]])}
        try:
            if task["kind"] == "welcome":
                _settle(db, task, [(d, "sent", task["sender"], task["created_at"]) for d in members.values()], now, report, close=True)
            elif task["kind"] == "moment":
                _read_moment(output, db, task, members, now, report)
            else:
                _read_groupmsg(output, db, task, members, now, report)
        except WecomError as exc:
            if setup_error(exc):
                raise  # the same for every task: sync() says it once and stops
            if exc.transient:
                # Busy or unreachable: nothing was read, nothing is wrong with the task; a later pass reads it.
                report.waiting.append(f"{output.name}: {exc.message}")
                if exc.errcode is None:
                    return  # WeCom cannot be reached: the other tasks would wait for the same timeout
                continue
            # One task WeCom will not answer for stops neither the others' read-back nor their reminders.
            report.errors.append(f"{output.name}: task {task['task_id']} ({task['remote_id']}): {exc.message}")
            if exc.errcode in UNKNOWN_TASK:
                _settle(db, task, [], now, report, close=True)  # WeCom no longer knows it: nothing more to read


def _read_groupmsg(output: WecomOutput, db: sqlite_utils.Database, task: Mapping[str, Any], members: Mapping[str, str], now: datetime, report: SyncReport) -> None:
    staff = {entry.get("userid"): entry for entry in output.client.groupmsg_task(task["remote_id"])}
    mine = staff.get(task["sender"]) or {}
    if int(mine.get("status", UNSENT)) == UNSENT:
        if now - from_db(task["created_at"]) >= GIVE_UP:
            _settle(db, task, [(d, "not_sent", None, None) for d in members.values()], now, report, close=True)
        else:
            _touch(db, task, now)
        return
    by_id = {ident if task["chat_type"] != "group" else output_group(output, ident): draft for ident, draft in members.items()}
    results = []
    for entry in output.client.groupmsg_send_result(task["remote_id"], task["sender"]):
        ident = entry.get("chat_id") if task["chat_type"] == "group" else entry.get("external_userid")
        draft = by_id.get(str(ident))
        if draft is None:
            continue
        outcome = OUTCOMES.get(int(entry.get("status", 0)), "not_sent")
        sent_at = to_db(datetime.fromtimestamp(int(entry["send_time"]), UTC)) if outcome == "sent" and entry.get("send_time") else None
        results.append((draft, outcome, task["sender"] if outcome == "sent" else None, sent_at))
    listed = {draft for draft, _, _, _ in results}
    if task["chat_type"] == "group" and task["recipients"] == len(by_id):
        # A group task lists only the groups it went to: the others the staff member left out.
        results.extend((draft, "not_sent", None, None) for draft in by_id.values() if draft not in listed)
    _settle(db, task, results, now, report, close=True)


def output_group(output: WecomOutput, group_id: str) -> str:
    return output.chats.get(group_id, group_id)


def _read_moment(output: WecomOutput, db: sqlite_utils.Database, task: Mapping[str, Any], members: Mapping[str, str], now: datetime, report: SyncReport) -> None:
    moment_id = task["moment_id"]
    if moment_id is None:
        job = output.client.moment_task_result(task["remote_id"])
        if int(job.get("status", 0)) != 3:
            _touch(db, task, now)
            return
        result = job.get("result") or {}
        moment_id = result.get("moment_id")
        invalid = (result.get("invalid_sender_list") or {}).get("user_list") or []
        if task["sender"] in invalid:
            why = (
                f"Moments job {task['remote_id']}: WeCom could not hand it to {task['sender']} (invalid_sender_list: "
                "not in the app's visible range, or not a staff member who may post customer Moments)"
            )
            _settle(db, task, [(d, "not_sent", None, None) for d in members.values()], now, report, close=True)
            with immediate(db):  # kept on the drafts, where `siyu status` and `outbox` show it, not only in this pass's output
                db.conn.executemany("UPDATE drafts SET error = ? WHERE draft_id = ?", [(f"{output.name}: {why}", d) for d in members.values()])
            report.errors.append(f"{output.name}: {why}")
            return
        if not moment_id:
            error = result.get("errmsg") or "WeCom made no moment"
            _settle(db, task, [(d, "not_sent", None, None) for d in members.values()], now, report, close=True)
            report.errors.append(f"{output.name}: Moments job {task['remote_id']}: {error}")
            return
        with immediate(db):
            db.execute("UPDATE wecom_tasks SET moment_id = ? WHERE task_id = ? AND output = ? AND part = ?", [moment_id, task["task_id"], task["output"], task["part"]])
    published = any(entry.get("userid") == task["sender"] and int(entry.get("publish_status", 0)) == 1 for entry in output.client.moment_task(moment_id))
    if published:
        # get_moment_task says only that the staff member posted it, not when (neither does get_moment_task_result):
        # done_at stays unknown, since the moment this read happened would count an on-time post late.
        _settle(db, task, [(d, "sent", task["sender"], None) for d in members.values()], now, report, close=True)
    elif now - from_db(task["created_at"]) >= GIVE_UP:
        _settle(db, task, [(d, "not_sent", None, None) for d in members.values()], now, report, close=True)
    else:
        _touch(db, task, now)


def _settle(db: sqlite_utils.Database, task: Mapping[str, Any], results: list[tuple[str, str, str | None, str | None]], now: datetime, report: SyncReport, *, close: bool) -> None:
    with immediate(db):
        db.conn.executemany(
            "UPDATE drafts SET outcome = ?, done_by = COALESCE(?, done_by), done_at = COALESCE(?, done_at) WHERE draft_id = ?",
            [(outcome, by, at, draft) for draft, outcome, by, at in results],
        )
        db.execute(
            "UPDATE wecom_tasks SET read_at = ?, closed_at = ? WHERE task_id = ? AND output = ? AND part = ?",
            [to_db(now), to_db(now) if close else None, task["task_id"], task["output"], task["part"]],
        )
    for _, outcome, _, _ in results:
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    report.closed += int(close)


def _touch(db: sqlite_utils.Database, task: Mapping[str, Any], now: datetime) -> None:
    with immediate(db):
        db.execute("UPDATE wecom_tasks SET read_at = ? WHERE task_id = ? AND output = ? AND part = ?", [to_db(now), task["task_id"], task["output"], task["part"]])


def _reminder_times(task: Mapping[str, Any]) -> list[datetime]:
    """When WeCom accepted a reminder of this mass send (reminder_times); for a store from before they were kept, the
    first and last reminder with any between taken as late as the last (counting them too recent holds a reminder back, never
    asks WeCom for a fourth)."""
    if task.get("reminder_times"):
        return [from_db(stamp) for stamp in json.loads(task["reminder_times"])]
    count, first, last = int(task["reminded"] or 0), task["first_reminded_at"], task["last_reminded_at"]
    if not count or first is None:
        return []
    return [from_db(first), *[from_db(last or first)] * (count - 1)]


def _remind(output: WecomOutput, db: sqlite_utils.Database, playbook_id: str, now: datetime, report: SyncReport, remind_after: str) -> None:
    from siyu_cli.dispatch._policy import Guard
    from siyu_cli.errors import WecomError

    if Guard(output.playbook).in_quiet(now):
        return  # a reminder pings the staff member's phone: not in quiet hours (and 3 a day are not spent overnight)
    wait = parse_duration(remind_after)
    reminded_tasks: set[str] = set()
    for task in _open(db, output, playbook_id):
        if task["kind"] != "groupmsg" or not task["remote_id"]:
            continue
        since = from_db(task["last_reminded_at"] or task["created_at"])
        if now - since < wait:
            continue
        # WeCom's 3 are in any 24 hours (rolling): the reminders of the last 24 hours are counted, and at 3 WeCom is not asked.
        recent = [moment for moment in _reminder_times(task) if now - moment < REMIND_WINDOW]
        if len(recent) >= REMINDERS:
            continue
        try:
            output.client.remind_groupmsg_send(task["remote_id"])
        except WecomError as exc:
            if setup_error(exc):
                raise  # the same for every task: sync() says it once and stops
            if exc.errcode == BUSY:
                # WeCom answered busy (45009: its rate limit, or the 3 a day, reminders from the admin console counted
                # too; the docs name no errcode of their own for the latter): nothing is counted, and the next try
                # waits remind_after, so a limit is not asked about every minute.
                report.waiting.append(f"{output.name}: reminding task {task['task_id']}: {exc.message}")
                with immediate(db):
                    db.execute(
                        "UPDATE wecom_tasks SET last_reminded_at = ? WHERE task_id = ? AND output = ? AND part = ?",
                        [to_db(now), task["task_id"], task["output"], task["part"]],
                    )
                continue
            if exc.transient or exc.maybe_delivered:
                # Unreachable, or no answer: no reminder WeCom accepted is counted; the next pass tries again.
                report.waiting.append(f"{output.name}: reminding task {task['task_id']}: {exc.message}")
                if exc.errcode is None:
                    return
                continue
            report.errors.append(f"{output.name}: reminding task {task['task_id']} ({task['remote_id']}): {exc.message}")
            continue
        times = sorted([*recent, now])
        with immediate(db):
            # reminded: how many of the last 24 hours; first_reminded_at: the oldest of them.
            db.execute(
                "UPDATE wecom_tasks SET reminded = ?, first_reminded_at = ?, last_reminded_at = ?, reminder_times = ? WHERE task_id = ? AND output = ? AND part = ?",
                [len(times), to_db(times[0]), to_db(now), json.dumps([to_db(moment) for moment in times]), task["task_id"], task["output"], task["part"]],
            )
        report.reminded_parts += 1
        if task["task_id"] not in reminded_tasks:
            reminded_tasks.add(task["task_id"])
            report.reminded += 1
