"""One rate limit per destination, kept in the store, so every process and campaign posting to a robot shares it.

A robot counts what it receives, whoever sends it: two campaigns, or cron passes back to back,
each keeping their own count in memory, together go past WeCom's 20 a minute and get 45009.
The store records each request (under the write lock) and a send goes only while the window
has room, with a margin under the platform's figure (WeCom: at most 18 in any 60 s). A full
window is not waited for: the draft is tried again by a later pass when a slot frees.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from siyu_cli.store import immediate

MARGIN = 0.9  # of the platform's figure: clocks and networks are not exact


def destination(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


class StoreRateLimiter:
    """Sliding windows over the store's `sends`; `try_acquire` takes a slot or says when one frees.

    Time is the pass's clock (`wall`): real time for cron and the service, where the robot counts what
    arrives in real time; a `--clock fast` rehearsal's simulated time, so its held drafts go a simulated
    minute later instead of waiting a real one.
    """

    def __init__(self, db: Any, url: str, windows: tuple[tuple[int, float], ...], wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.destination = destination(url)
        self.windows = tuple((max(1, int(count * MARGIN)), span) for count, span in windows)
        self._wall = wall

    def now(self) -> float:
        return self._wall()

    def try_acquire(self) -> float | None:
        """None: a slot was taken for a request now. Else the seconds until one frees."""
        if not self.windows:
            return None
        now = self.now()
        longest = max(span for _, span in self.windows)
        with immediate(self.db):
            self.db.execute("DELETE FROM sends WHERE destination = ? AND at < ?", [self.destination, now - longest])
            wait = 0.0
            for count, span in self.windows:
                # No upper bound: another pass's clock may run a little ahead of this one's (it started a second
                # later, or was given a later --now); its sends count all the same.
                rows = self.db.execute(
                    "SELECT at FROM sends WHERE destination = ? AND at > ? ORDER BY at LIMIT ?",
                    [self.destination, now - span, count],
                ).fetchall()
                if len(rows) >= count:
                    wait = max(wait, rows[0][0] + span - now)
            if wait > 0:
                return wait
            self.db.execute("INSERT INTO sends (destination, at) VALUES (?, ?)", [self.destination, now])
        return None
