"""What `siyu serve` does after a new add: the contact's own pass, so its `after: 0m` welcome meets WeCom's 20 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from siyu_cli._time import utcnow
from siyu_cli.errors import SiyuError

if TYPE_CHECKING:
    from siyu_cli.dispatch import PassSummary, Runner


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

    def __call__(self, contact_id: str, at: datetime) -> None:
        from siyu_cli.dispatch import Runner

        try:
            if self._runner is None:
                self._runner = Runner(self.playbook_path, db_path=self.db_path, outbox_dir=self.outbox_dir, sleep=self.sleep)
            else:
                self._runner.reload()
        except SiyuError as exc:
            self.log(f"welcome for {contact_id}: the playbook cannot be run: {exc.message}")
            return
        summary = self._runner.welcome(contact_id, self.now())
        tz = self._runner.playbook.tz
        waiting = [(why, due.astimezone(tz)) for why, due in self._runner.waiting(contact_id)]
        self.log(f"welcome pass for {contact_id} (added {at.astimezone(tz):%H:%M:%S}): {outcome(summary, waiting)}")
        for error in summary.errors[:3]:
            self.log(f"  {error}")


def outcome(summary: PassSummary, waiting: list[tuple[str, datetime]]) -> str:
    """What the welcome pass did, and for a welcome that could not go, why and what happens to it: a bare
    "sent 0" reads as success in a log."""
    said = [f"sent {summary.sent}"]
    said += [f"failed {summary.failed}"] if summary.failed else []
    said += [f"in doubt {summary.unknown}"] if summary.unknown else []
    said += [f"skipped {count} ({reason})" for reason, count in sorted(summary.skipped.items())]
    if waiting:
        why, due = waiting[0]
        if summary.blocked:
            then = "the output's setup is wrong (below): a pass after the fix sends it"
        else:
            then = f"a later pass (siyu run) sends it from {due:%H:%M:%S}, as a one-customer task (群发) once WeCom's 20 s are over"
        count = f" {len(waiting)}" if len(waiting) > 1 else ""
        said.append(f"waiting{count}: {why}; {then}")
    elif len(said) == 1 and not summary.sent:
        said.append("nothing was due for this contact")
    return " · ".join(said)
