"""The foreground service: APScheduler wakes the process, the ledger decides what is sent."""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from siyu_cli._time import from_db, utcnow
from siyu_cli.dispatch._runner import PassSummary, Runner
from siyu_cli.errors import PlaybookInvalid

HEARTBEAT_SECONDS = 30
# With --reload, how often the service looks at the playbook file: an edit is picked up within this.
RELOAD_SECONDS = 5


def run_fast(runner: Runner, start: datetime, end: datetime | None, on_pass: Callable[[PassSummary], None]) -> PassSummary:
    """The whole campaign in simulated time: jump from one wake-up to the next, no sleeping.

    The wake-ups are the playbook's (occurrences, deferrals, steps) and, as the service does, what the
    ledger says comes due next: a retry, a draft held back by a robot's limit, a carried draft."""
    stop = end or runner.campaign_end()
    run_id = runner.ledger.start_run(runner.playbook.id, "service", utcnow(), exclusive=True)
    total = PassSummary(now=start)
    try:
        planned = runner.wake_times(start, runner.everyone(), until=stop)
        moment: datetime | None = start
        while moment is not None and not runner.stop_requested:
            summary = runner.run_once(moment, run_id=run_id)
            total.add(summary)
            on_pass(summary)
            planned = [m for m in planned if m > moment]
            due = summary.next_due
            if due is not None and moment < due <= stop and (not planned or due < planned[0]):
                planned.insert(0, due.astimezone(runner.playbook.tz))
            moment = planned[0] if planned else None
    finally:
        runner.ledger.finish_run(run_id, utcnow())
    return total


def run_service(
    runner: Runner,
    *,
    until: datetime | None,
    reload: bool,
    on_pass: Callable[[PassSummary], None],
    on_event: Callable[[str], None],
    clock: Callable[[], datetime] = utcnow,
) -> PassSummary:
    """Catch up, then sleep until the next due moment; SIGINT/SIGTERM finish the draft in hand."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    tz = runner.playbook.tz
    now = clock()
    run_id = runner.ledger.start_run(runner.playbook.id, "service", now, exclusive=True)
    scheduler = BlockingScheduler(
        timezone=tz,
        executors={"default": {"type": "threadpool", "max_workers": 1}},
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    busy = threading.Lock()
    total = PassSummary(now=now)
    seen: dict[str, Any] = {"store": None}
    campaign_end = runner.campaign_end()

    def store_mark() -> tuple[Any, ...]:
        row = runner.db.execute("SELECT (SELECT COUNT(*) FROM contacts), (SELECT MAX(id) FROM events)").fetchone()
        return tuple(row)

    def digest() -> str | None:
        try:
            return hashlib.sha256(runner.playbook_path.read_bytes()).hexdigest()[:16]
        except OSError:
            return None

    def wake() -> None:
        with busy:
            if runner.stop_requested:
                return
            if reload:
                try:
                    if runner.reload():
                        on_event(f"reloaded {runner.playbook_path} ({runner.playbook.content_hash})")
                except PlaybookInvalid as exc:
                    seen["ignored"] = digest()
                    found = [str(problem) for problem in exc.problems if problem.severity == "error"][:5]
                    on_event("playbook edit ignored, it does not validate (the last good version keeps running):\n  " + "\n  ".join(found or [exc.message]))
            moment = clock()
            summary = runner.run_once(moment, run_id=run_id)
            seen["store"] = store_mark()
            total.add(summary)
            on_pass(summary)
            upcoming = summary.next_due
            if upcoming is None or upcoming > campaign_end:
                first = runner.db.execute("SELECT MIN(due_at) FROM drafts WHERE playbook_id = ? AND state = 'pending'", [runner.playbook.id]).fetchone()[0]
                if first is None:
                    on_event("campaign over: nothing more is due")
                    scheduler.shutdown(wait=False)
                    return
                upcoming = max(from_db(first).astimezone(tz), moment + timedelta(seconds=1))
            if until is not None and upcoming > until:
                on_event(f"next due {upcoming:%Y-%m-%d %H:%M} is after --until; waiting for --until")
                return
            scheduler.add_job(wake, "date", run_date=upcoming, id="wake", replace_existing=True)

    def heartbeat() -> None:
        with busy:
            runner.ledger.heartbeat(run_id, clock())
        if store_mark() != seen["store"]:
            wake()

    def watch() -> None:
        """An edited playbook is planned at once, not at the next due moment."""
        current = digest()
        if current is not None and current != runner.playbook.content_hash and current != seen.get("ignored"):
            wake()

    def stop(signum: int, _frame: Any) -> None:
        on_event(f"received {signal.Signals(signum).name}: finishing the draft in hand")
        runner.stop_requested = True
        scheduler.shutdown(wait=False)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        scheduler.add_job(wake, "date", run_date=now, id="wake")
        scheduler.add_job(heartbeat, "interval", seconds=HEARTBEAT_SECONDS, id="heartbeat", next_run_time=now + timedelta(seconds=HEARTBEAT_SECONDS))
        if reload:
            scheduler.add_job(watch, "interval", seconds=RELOAD_SECONDS, id="watch", next_run_time=now + timedelta(seconds=RELOAD_SECONDS))
        if until is not None:
            scheduler.add_job(scheduler.shutdown, "date", run_date=until, kwargs={"wait": False}, id="until")
        scheduler.start()
        with busy:
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runner.ledger.finish_run(run_id, utcnow())
    return total
