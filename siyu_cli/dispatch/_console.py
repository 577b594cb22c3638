"""The console output: shows each draft to whoever watches `siyu run`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from siyu_cli.dispatch._tasks import recipient_line
from siyu_cli.errors import DeliveryError

if TYPE_CHECKING:
    from siyu_cli.dispatch._outputs import Outgoing


def plain_block(msg: Outgoing) -> str:
    """The draft as plain text, for when no rich callback is given (pipes, logs)."""
    rule = "-" * 60
    head = f"{msg.due_at:%Y-%m-%d %H:%M} · {msg.beat_title} ({msg.beat}) · 第{msg.day}天 day {msg.day}"
    where = f"{msg.channel_label} → {msg.target} · {msg.speaker} · draft {msg.draft_id}"
    text = msg.text.rstrip("\n")
    listed = f"\n\n{recipient_line(msg)}" if len(msg.recipients) > 1 else ""
    return f"{rule}\n{head}\n{where}\n\n{text}{listed}\n{rule}\n"


class ConsoleOutput:
    """Hands each draft to a callback (the CLI prints a panel), or prints a plain block."""

    idempotent = False
    reads_back = False

    def __init__(self, callback: Callable[[Outgoing], None] | None = None, *, name: str = "console") -> None:
        self.callback = callback
        self.name = name

    def deliver(self, msg: Outgoing, *, first_part: int = 1, on_part: Callable[[int], None] | None = None) -> str:
        if self.callback is not None:
            self.callback(msg)
            return "console"
        try:
            sys.stdout.write(plain_block(msg))
            sys.stdout.flush()
        except OSError as exc:
            raise DeliveryError(f"console: cannot write to standard output: {exc.strerror or exc}") from None
        return "stdout"

    def delivered_location(self, msg: Outgoing) -> str | None:
        return None

    def flush(self) -> None:
        """Nothing to sync: a request that returned is done."""
