"""What `siyu serve` does after a new add: the contact's own pass, so its `after: 0m` welcome meets WeCom's 20 s."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from siyu_cli.errors import SiyuError

if TYPE_CHECKING:
    from siyu_cli.dispatch import Runner


class WelcomeOnAdd:
    """`on_added` for the receiver: a Runner of its own (its store connection made on the worker thread that
    calls it) plans what came due and delivers the new contact's due drafts, on the real clock."""

    def __init__(self, playbook_path: Path, *, db_path: str | None, outbox_dir: Path, log: Callable[[str], None]) -> None:
        self.playbook_path = playbook_path
        self.db_path = db_path
        self.outbox_dir = outbox_dir
        self.log = log
        self._runner: Runner | None = None

    def __call__(self, contact_id: str, at: datetime) -> None:
        from siyu_cli.dispatch import Runner

        try:
            if self._runner is None:
                self._runner = Runner(self.playbook_path, db_path=self.db_path, outbox_dir=self.outbox_dir)
            else:
                self._runner.reload()
        except SiyuError as exc:
            self.log(f"welcome for {contact_id}: the playbook cannot be run: {exc.message}")
            return
        summary = self._runner.welcome(contact_id)
        sent = f"sent {summary.sent}" + (f", failed {summary.failed}" if summary.failed else "") + (f", in doubt {summary.unknown}" if summary.unknown else "")
        self.log(f"welcome pass for {contact_id} (added {at:%H:%M:%S}): {sent}")
        for error in summary.errors[:3]:
            self.log(f"  {error}")
