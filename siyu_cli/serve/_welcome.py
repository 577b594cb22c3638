"""What `siyu serve` does after a new add: the contact's own pass, so its `after: 0m` welcome meets WeCom's 20 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from siyu_cli._time import utcnow
from siyu_cli.errors import SiyuError

if TYPE_CHECKING:
    from siyu_cli.dispatch import PassSummary, Runner

RETRY_FIRST = 1.0  # seconds before serve's first retry of a welcome WeCom answered busy; each next waits twice as long
# WeCom takes a WelcomeCode for 20 s after the add: the last retry starts by 18 s, so it and the client's own second
# try (1 s later) are answered in time.
RETRY_WITHIN = timedelta(seconds=18)
# WeCom's add callback carries no name: serve asks externalcontact/get for it, waiting at most this long, so the welcome
# still has most of its 20 s. Unanswered, the contact keeps no name and `{{ contact.name }}` renders empty (never the wm… id).
NAME_WITHIN = 3.0


class WelcomeOnAdd:
    """`on_added` for the receiver: a Runner of its own (its store connection made on the worker thread that
    calls it) plans what came due and delivers the new contact's due drafts, on the real clock (`now`)."""

    def __init__(
        self,
        playbook_path: Path,
        *,
        db_path: str | None,
        outbox_dir: Path,
        log: Callable[[str], None],
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.playbook_path = playbook_path
        self.db_path = db_path
        self.outbox_dir = outbox_dir
        self.log = log
        self.now = now
        self.sleep = sleep  # WeCom's back-off between tries (the client's, then serve's): a test's clock, not a wait
        self._runner: Runner | None = None

    def warm_up(self) -> None:
        """As serve starts, on the welcome thread: the Runner made and WeCom asked for the app's token (kept in the
        store for every pass), so a wrong secret or a WeCom out of reach is in the log now, not at the first add."""
        from siyu_cli.errors import WecomError, WecomSetupError
        from siyu_cli.wecom._output import SETUP_ERRCODES, WecomOutput

        try:
            self._runner = self._runner or self._make()
        except SiyuError as exc:
            self.log(f"the playbook cannot be run, so no welcome can go until it is fixed: {exc.message}")
            return
        for output in self._runner.outputs:
            if not isinstance(output, WecomOutput):
                continue
            try:
                output.client.token()
            except SiyuError as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                if isinstance(exc, WecomError) and exc.errcode in SETUP_ERRCODES:
                    self.log(f"WeCom refused the app's token: {exc.message}{hint}. Callbacks are recorded; no welcome goes until this is fixed")
                elif isinstance(exc, WecomSetupError):  # no answer from WeCom itself: a wrong base URL (HTTP 404), a proxy
                    self.log(f"WeCom's API cannot be used from here: {exc.message}{hint}. Callbacks are recorded; no welcome goes until this is fixed")
                else:
                    self.log(f"WeCom could not be asked for a token: {exc.message}{hint}. Callbacks are recorded; each welcome is tried again within its 20 s")
            else:
                self.log(f"WeCom answered ({output.client.base_url}): the app's token is good, welcomes can go")
            finally:
                output.flush()  # the connection is let go, as after a pass's deliveries

    def _make(self) -> Runner:
        from siyu_cli.dispatch import Runner

        return Runner(self.playbook_path, db_path=self.db_path, outbox_dir=self.outbox_dir, sleep=self.sleep)

    def __call__(self, contact_id: str, at: datetime) -> None:
        try:
            if self._runner is None:
                self._runner = self._make()
            else:
                self._runner.reload()
        except SiyuError as exc:
            self.log(f"welcome for {contact_id}: the playbook cannot be run: {exc.message}")
            return
        self._name(self._runner, contact_id)
        started = self.now()
        summary = self._runner.welcome(contact_id, started)
        retries, reasons = self._retry(self._runner, contact_id, min(at, started), summary)
        tz = self._runner.playbook.tz
        waiting = [(why, due.astimezone(tz)) for why, due in self._runner.waiting(contact_id)]
        if not summary.blocked:
            reasons.update(why for why, _ in waiting)
        tasks = _tasks_made(self._runner, contact_id, started)
        skipped = _skipped(self._runner, contact_id, started)
        self.log(f"welcome pass for {contact_id} (added {at.astimezone(tz):%H:%M:%S}): {outcome(summary, waiting, retries, tasks, skipped)}")
        # A busy answer's "retry later" is said on the line above, or no longer true once a retry sent the welcome.
        errors = [error for error in dict.fromkeys(summary.errors) if not any(error.startswith(why) for why in reasons)]
        for error in errors[:3]:
            self.log(f"  {error}")

    def _name(self, runner: Runner, contact_id: str) -> None:
        """The new contact's WeCom name into the store before its welcome renders, when it has none (a callback
        created it). A refusal or no answer within NAME_WITHIN leaves it nameless, said in the log: the welcome goes."""
        from siyu_cli.store import immediate
        from siyu_cli.wecom._output import WecomOutput

        row = runner.db.execute("SELECT name FROM contacts WHERE contact_id = ?", [contact_id]).fetchone()
        output = next((o for o in runner.outputs if isinstance(o, WecomOutput)), None)
        if row is None or row[0] or output is None:
            return
        try:
            name = output.customer_name(contact_id, within=NAME_WITHIN)
        except SiyuError as exc:
            self.log(f"name of {contact_id}: WeCom did not give it ({exc.message}), so {{{{ contact.name }}}} is empty in its texts")
            return
        if name:
            with immediate(runner.db):
                runner.db.execute("UPDATE contacts SET name = ? WHERE contact_id = ? AND COALESCE(name, '') = ''", [name, contact_id])

    def _retry(self, runner: Runner, contact_id: str, added: datetime, summary: PassSummary) -> tuple[int, set[str]]:
        """Passes again, 1, 2, 4 … s apart, while WeCom answered busy (45009, 45033, -1) or was not reached and
        the WelcomeCode has time left (RETRY_WITHIN of the add); their numbers are added to `summary`. Not for a
        wrong setup: every try would meet it. Returns how many passes it ran and the reasons they retried for.
        Nothing goes twice: a retry takes the code by compare-and-set, and WeCom's 41051 (a welcome went
        already) is recorded as sent."""
        retries, delay = 0, RETRY_FIRST
        reasons: set[str] = set()
        while summary.retrying and not summary.blocked:
            left = (added + RETRY_WITHIN - self.now()).total_seconds()
            if left <= 0:
                break
            reasons.update(why for why, _ in runner.waiting(contact_id))
            self.sleep(min(delay, left))
            again = runner.welcome(contact_id, self.now(), again=True)
            summary.add(again)
            summary.retrying = again.retrying
            retries += 1
            delay *= 2
        return retries, reasons


def _tasks_made(runner: Runner, contact_id: str, since: datetime) -> list[str]:
    """The staff member of each of the contact's drafts this pass handed to WeCom as a task (add_msg_template), not
    as the welcome itself: with no WelcomeCode to send it with, it waits for the staff member to confirm it."""
    from siyu_cli._time import to_db

    rows = runner.db.execute(
        "SELECT t.sender FROM drafts d JOIN wecom_tasks t ON t.task_id = d.task_id AND t.playbook_id = d.playbook_id "
        "WHERE d.target = ? AND d.playbook_id = ? AND d.state = 'sent' AND t.kind = 'groupmsg' AND t.created_at >= ?",
        [f"contact:{contact_id}", runner.playbook.id, to_db(since)],
    )
    return [str(row[0]) for row in rows]


# Why a welcome pass recorded one of the new contact's welcomes skipped, said in serve's log beside the reason.
SKIPPED_WHY = {
    "not_friend": "WeCom handed the customer back as no friend of {sender} (fail_list), or they deleted them: a welcome goes from "
    "the persona whose staff member (wecom_userid) the customer added, the hook's persona only when the add names none; "
    "if the customer added {sender}, check that staff member in WeCom",
    "exit": "the welcome's exit held before it was due",
    "missed": "it came due later than limits.missed.max_late allows",
    "holdout": "the customer is in the step's holdout (a variant with no text)",
}


def _skipped(runner: Runner, contact_id: str, since: datetime) -> list[tuple[str, str]]:
    """(reason, sender) of each of the contact's welcome or journey drafts this pass recorded skipped."""
    from siyu_cli._time import to_db

    staff = {p.id: p.wecom_userid or p.account or p.id for p in runner.playbook.model.personas}
    rows = runner.db.execute(
        "SELECT reason, persona FROM drafts WHERE target = ? AND playbook_id = ? AND state = 'skipped' AND channel IN ('welcome', 'journey') AND finished_at >= ? ORDER BY due_at",
        [f"contact:{contact_id}", runner.playbook.id, to_db(since)],
    )
    return [(str(row[0] or "?"), f"persona {row[1]} ({staff.get(str(row[1]), row[1])})" if row[1] else "its sender") for row in rows]


def outcome(summary: PassSummary, waiting: list[tuple[str, datetime]], retries: int = 0, tasks: list[str] | None = None, skipped: list[tuple[str, str]] | None = None) -> str:
    """What the welcome pass did, and for a welcome that could not go, why and what happens to it: a bare
    "sent 0" reads as success in a log. `tasks`: the staff member of each draft that went as a task to confirm
    (_tasks_made), which "sent" would claim reached the customer. `skipped`: (reason, sender) of each of the
    contact's welcomes recorded skipped (_skipped), said with why."""
    tasks = tasks or []
    said = [f"sent {summary.sent - len(tasks)}"]
    if skipped:
        why = "; ".join(dict.fromkeys(f"{reason}: {SKIPPED_WHY[reason].format(sender=sender)}" if reason in SKIPPED_WHY else reason for reason, sender in skipped))
        said.append(f"skipped {len(skipped)} ({why})")
    if tasks:
        staff = ", ".join(dict.fromkeys(tasks))
        said.append(f"made {len(tasks)} one-customer task(s) for {staff} to confirm in their WeCom client (no WelcomeCode came to send it with; read back once sent)")
    said += [f"failed {summary.failed}"] if summary.failed else []
    said += [f"in doubt {summary.unknown}"] if summary.unknown else []
    tried = f"retried {retries}× within WeCom's 20 s window" if retries else ""
    if waiting:
        due = waiting[0][1]
        why = "; ".join(dict.fromkeys(reason for reason, _ in waiting))  # one per staff member when two welcomes wait
        if summary.blocked:
            then = "the output's setup is wrong (below): a pass after the fix sends it"
        else:
            then = f"a later pass (siyu run) sends it from {due:%H:%M:%S} as a mass send (群发) from the staff member, WeCom's 20 s being over"
        count = f" {len(waiting)}" if len(waiting) > 1 else ""
        said.append(f"waiting{count}: {why}; " + (f"{tried}; " if tried else "") + then)
    elif tried:
        said.append(tried)
    return " · ".join(said)
