"""The runner: one idempotent pass (for cron) and the foreground service around it.

The ledger is the truth. A pass settles what dead runs left, records every draft that has come due
with its decision, claims due drafts inside BEGIN IMMEDIATE, delivers them, and records the result.
"""

from __future__ import annotations

import os
import time as _time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from siyu_cli._bulk import bulk
from siyu_cli._time import from_db, to_db, utcnow
from siyu_cli.dispatch._capacity import CARRIED, CARRY_HORIZON, SUPERSEDED, Caps, PersonalRule, carries
from siyu_cli.dispatch._outputs import Delivered, Outgoing, Output, Recipient, build_outputs
from siyu_cli.dispatch._policy import BUDGETED, Budget, Guard, Schedule
from siyu_cli.dispatch._setup import PlanInputs, plan_inputs
from siyu_cli.dispatch._tasks import SendKeys, send_tasks, task_of
from siyu_cli.dispatch._webhook import WebhookOutput
from siyu_cli.errors import ClaimLost, DeliveryError
from siyu_cli.journeys import step_due
from siyu_cli.ledger import Ledger, PlanCursor
from siyu_cli.ledger._ledger import lease_length
from siyu_cli.playbook import LoadedPlaybook, read
from siyu_cli.render import NOT_FRIEND, Draft, Planner
from siyu_cli.render._media import from_json as media_of
from siyu_cli.render._media import to_json as media_json
from siyu_cli.rules import prune_log
from siyu_cli.store import Unfriended, default_path, immediate, open_store, unfriended
from siyu_cli.timeline import occurrences

CLAIM_BATCH = 1000
RECORD_CHUNK = 5_000  # drafts decided and inserted per write transaction when no cap needs them all at once
_TICK = timedelta(microseconds=1)  # "after the last pass": occurrences at its moment were planned by it
# Marks a summary error that is a draft in doubt (it may have arrived), not a failure.
DOUBT = "in doubt: "
# An output failing this many drafts in a row (transiently) is paused for the rest of the pass: its drafts wait.
PAUSE_AFTER = 3
RETRY_FIRST = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)


@dataclass
class _Attempt:
    """What delivering one draft reads and fills in a batch."""

    now: datetime
    done: Mapping[str, Mapping[str, str]]  # draft → output → delivery state already recorded
    resume: Mapping[tuple[str, str], int]  # (draft, output) → parts that arrived before
    retry_at: dict[str, str]
    parts: dict[tuple[str, str], int]
    streaks: Counter[str]  # output → transient failures in a row this pass
    hints: dict[str, float] = field(default_factory=dict)  # draft → seconds until a try can succeed
    tasks: dict[str, str] = field(default_factory=dict)  # draft → the send task it went out in
    outcomes: dict[str, str] = field(default_factory=dict)  # draft → what the platform said of it at once
    keys: dict[str, str] = field(default_factory=dict)  # draft → the send key it takes for a later pass (a held welcome)


@dataclass
class PassSummary:
    """What one pass did: the numbers an operator reads after each run."""

    now: datetime
    recorded: int = 0
    sent: int = 0
    deferred: int = 0  # due later: quiet hours, or recorded ahead of its time
    carried: Counter[str] = field(default_factory=Counter)  # moved to a later day with room: over capacity / a nurturing cap (capacity:carried → capacity)
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    settled: Counter[str] = field(default_factory=Counter)  # drafts of a dead run or in doubt settled this pass (not in sent/skipped): sent, or skipped by reason
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    next_due: datetime | None = None
    stopped: bool = False
    retrying: int = 0
    waits: dict[str, tuple[str, int]] = field(default_factory=dict)  # output → (why its drafts retry later, how many): said once in errors
    paused: list[str] = field(default_factory=list)
    revised: int = 0  # pending drafts re-timed or re-rendered after a playbook edit
    tasks: int = 0  # send tasks delivered: drafts sharing an account, beat, time, variant and text go as one
    sent_before: int = 0  # of `sent`, recipients in parts an earlier run or try had made (a resumed mass send)
    readback: dict[str, int] = field(default_factory=dict)  # what outputs read back (wecom): recipients by outcome, reminders
    held: list[str] = field(default_factory=list)  # outputs whose shared rate limit held drafts back for a later pass
    blocked: list[str] = field(default_factory=list)  # outputs whose setup is wrong (a secret): their drafts wait for a fix
    warnings: list[str] = field(default_factory=list)  # worth a person's look, not a failure (a renamed campaign)
    later: list[str] = field(default_factory=list)  # read-back put off because WeCom was busy or unreachable (in errors, exit 0)

    def retries_later(self, error: str) -> bool:
        """Is this error line why an output's drafts (or its read-back) are tried again later (not a failure: the pass exits 0)?"""
        return error in self.later or any(error == _wait_line(output, why, count) for output, (why, count) in self.waits.items())

    def add(self, other: PassSummary) -> None:
        self.recorded += other.recorded
        self.sent += other.sent
        self.deferred += other.deferred
        self.failed += other.failed
        self.unknown += other.unknown
        self.recovered += other.recovered
        self.settled.update(other.settled)
        self.carried.update(other.carried)
        self.retrying += other.retrying
        self.revised += other.revised
        self.tasks += other.tasks
        self.sent_before += other.sent_before
        for key, count in other.readback.items():
            self.readback[key] = self.readback.get(key, 0) + count
        self.paused.extend(name for name in other.paused if name not in self.paused)
        self.held.extend(name for name in other.held if name not in self.held)
        self.blocked.extend(name for name in other.blocked if name not in self.blocked)
        self.warnings.extend(other.warnings)
        self.later.extend(other.later)
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)
        self.next_due = other.next_due
        self.now = other.now

    def readback_text(self, *, delivering: bool = True) -> str:
        """What outputs read back, as a person reads it: a task's parts WeCom never made, made now, are no resend.
        `delivering`: this pass goes on to deliver (not `siyu sync`, which leaves them to the next pass)."""
        words = {
            "remade": "made {} missing part(s) now" if delivering else "{} missing part(s) for the next pass to make",
            "to_check": "{} task(s) in doubt for a person to check",
            "reminded": "reminded {} task(s)" + (f" ({self.readback['reminded_parts']} mass sends)" if self.readback.get("reminded_parts") else ""),
        }
        shown = sorted((key, count) for key, count in self.readback.items() if key != "reminded_parts")
        return ", ".join(words[key].format(count) if key in words else f"{key} {count}" for key, count in shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "recorded": self.recorded,
            "sent": self.sent,
            "tasks": self.tasks,
            "sent_before": self.sent_before,
            "readback": self.readback,
            "deferred": self.deferred,
            "carried": dict(self.carried),
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "unknown": self.unknown,
            "retrying": self.retrying,
            "revised": self.revised,
            "paused": self.paused,
            "held": self.held,
            "blocked": self.blocked,
            "warnings": self.warnings,
            "recovered": self.recovered,
            "settled": dict(self.settled),
            "errors": self.errors[:20],
            "next_due": self.next_due.isoformat() if self.next_due else None,
        }


class Runner:
    """Everything a pass needs, loaded once; `reload()` picks up an edited playbook."""

    def __init__(
        self,
        playbook_path: Path,
        *,
        db_path: str | None = None,
        outbox_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        console: Callable[[Outgoing], None] | None = None,
        extra_outputs: list[str] | None = None,
        sleep: Callable[[float], None] = _time.sleep,
    ) -> None:
        self.playbook_path = playbook_path
        self.playbook: LoadedPlaybook = read(playbook_path)  # before the store: a playbook that does not load creates none
        self.db_path = default_path(db_path)
        self.db = open_store(self.db_path)
        self.ledger = Ledger(self.db)
        self.outbox_dir = outbox_dir or Path("outbox")
        self.environ = dict(os.environ if environ is None else environ)
        self.console = console
        self.extra_outputs = extra_outputs or []
        self.sleep = sleep
        self.stop_requested = False
        self.outputs: list[Output] = self._outputs()
        self._beat_titles: dict[str, str] = self._titles()
        self._dues: dict[str, datetime] = {}
        self._moments: list[datetime] | None = None
        self._bare: Planner | None = None
        self._keys: SendKeys | None = None
        self._names: dict[str, str] = {}  # the claim batch's recipients' names (deliver_due)
        self._gone = Unfriended()  # the claim batch's recipients who deleted an account by the pass's moment
        self._recovered_sent = 0  # of the drafts the last recover() settled, those every output had: sent
        self._welcomes: frozenset[str] | None = None
        self._fill_slots()

    def _titles(self) -> dict[str, str]:
        return {beat.id: beat.title or beat.id for beat in self.playbook.model.beats}

    def _outputs(self) -> list[Output]:
        specs: list[Any] = [o if isinstance(o, str) else o.model_dump(exclude_none=True) for o in self.playbook.model.outputs]
        specs += [name for name in self.extra_outputs if name not in specs]
        return build_outputs(
            specs, outbox_dir=self.outbox_dir, environ=self.environ, console=self.console, sleep=self.sleep, attempts=1, playbook=self.playbook, db=self.db
        )

    def reload(self) -> bool:
        """Re-read the playbook if its content changed; a broken edit keeps the old one and raises."""
        fresh = read(self.playbook_path)
        if fresh.content_hash == self.playbook.content_hash:
            return False
        self.playbook = fresh
        self.outputs = self._outputs()
        self._beat_titles = self._titles()
        self._dues = {}
        self._moments = None
        self._bare = None
        self._keys = None
        self._welcomes = None
        self._fill_slots()
        return True

    def inputs(self, now: datetime | None = None) -> PlanInputs:
        """What dispatch needs: a planner that loads the contacts of each claim batch (focus) and no others."""
        return plan_inputs(self.playbook, None, readonly=False, db=self.db, as_of=now, contact_ids=())

    def everyone(self, now: datetime | None = None) -> PlanInputs:
        """Every contact with its journeys replayed (as of `now`, or all events): a full plan, the fast clock's calendar."""
        return plan_inputs(self.playbook, None, readonly=False, db=self.db, as_of=now)

    def run_once(self, now: datetime | None = None, *, mode: str = "once", run_id: str | None = None) -> PassSummary:
        moment = (now or utcnow()).astimezone(self.playbook.tz)
        own_run = run_id is None
        run = run_id or self.ledger.start_run(self.playbook.id, mode, utcnow())
        summary = PassSummary(now=moment)
        try:
            with bulk():
                inputs = self.inputs(moment)
                self.recover_into(moment, summary, inputs, run)
                self.plan(moment, summary)
                self.sync(moment, summary)
            self.skip_missed(moment, summary)
            self.deliver_due(run, moment, inputs, summary)
            summary.next_due = self.next_due(moment)
        finally:
            if own_run:
                self.ledger.finish_run(run, utcnow())
        return summary

    def welcome(self, contact_id: str, now: datetime | None = None, *, again: bool = False) -> PassSummary:
        """A pass for one contact just added, as `siyu serve` runs it after the friend_added callback: what came
        due is planned (the add is in the store), and only that contact's due drafts are delivered, so its
        `after: 0m` welcome goes out within WeCom's 20 seconds while cron's passes deliver the rest.

        `again`: serve's retry within those 20 seconds: the contact's welcome drafts a transient failure left
        pending are due at `now` again (the back-off a later pass keeps to is longer than the WelcomeCode lasts)."""
        moment = (now or utcnow()).astimezone(self.playbook.tz)
        run = self.ledger.start_run(self.playbook.id, "welcome", utcnow())
        summary = PassSummary(now=moment)
        try:
            with bulk():
                inputs = self.inputs(moment)
                self.plan(moment, summary)
            if again:
                with immediate(self.db):
                    self.db.execute(
                        "UPDATE drafts SET due_at = ? WHERE target = ? AND +playbook_id = ? AND state = 'pending' AND reason = 'retry' AND channel = 'welcome' AND due_at > ?",
                        [to_db(moment), f"contact:{contact_id}", self.playbook.id, to_db(moment)],
                    )
            due = [
                row[0]
                for row in self.db.execute(
                    "SELECT draft_id FROM drafts WHERE target = ? AND +playbook_id = ? AND state = 'pending' AND due_at <= ?",
                    [f"contact:{contact_id}", self.playbook.id, to_db(moment)],
                )
            ]
            if due:
                self.deliver_due(run, moment, inputs, summary, only=due)
        finally:
            self.ledger.finish_run(run, utcnow())
        return summary

    def waiting(self, contact_id: str) -> list[tuple[str, datetime]]:
        """The contact's drafts a transient failure left pending (reason retry), or an output held for quiet hours
        (a welcome whose WelcomeCode is gone), as (why, when a pass sends it: the end of quiet hours for a time
        inside them): a pass summary counts them but keeps no reason, which a welcome pass's log line must give."""
        rows = self.db.execute(
            "SELECT error, due_at FROM drafts WHERE target = ? AND +playbook_id = ? AND state = 'pending' "
            "AND (reason = 'retry' OR (reason = 'quiet_hours:deferred' AND error IS NOT NULL)) ORDER BY due_at",
            [f"contact:{contact_id}", self.playbook.id],
        )
        guard = Guard(self.playbook)
        found = []
        for error, due in rows:
            moment = from_db(str(due))
            found.append((str(error or "no reason recorded"), guard.quiet_end(moment) if guard.in_quiet(moment) else moment))
        return found

    def recover_into(self, now: datetime, summary: PassSummary, inputs: PlanInputs | None = None, run_id: str | None = None) -> None:
        """recover(), counted in `summary`: every pass, `siyu retry` and `siyu sync` do it first, so a dead run's drafts
        in flight are in doubt (and looked up in WeCom's list) before anything reads them back or sends them again."""
        summary.recovered, doubted = self.recover(now, inputs or self.inputs(now), run_id)
        if self._recovered_sent:
            # Every output had them before the run died: settled sent now, which this pass's `sent` does not count.
            summary.settled["sent"] += self._recovered_sent
        if doubted:
            summary.unknown += doubted
            summary.errors.append(f"{DOUBT}{doubted} draft(s) were being delivered when their run died or lost its lease; they may have arrived")

    def read_back(self, now: datetime, summary: PassSummary) -> None:
        """`siyu sync`: a dead run's claims recovered (under a run of their own), then every open task read back."""
        with bulk():
            self.recover_into(now, summary)
        self.sync(now, summary, every_task=True)

    def recover(self, now: datetime, inputs: PlanInputs, run_id: str | None = None) -> tuple[int, int]:
        """Take over and settle claims whose run died or whose lease expired (a hung or paused run):
        delivered, pending again, or unknown (never resent blindly).

        The pass's run takes them over and holds them like any claim (without one, recovery registers
        a short run of its own). The dead runs are then closed, so `siyu status` stops showing their stale lock.
        """
        self._recovered_sent = 0
        candidates = self.ledger.orphans(now, self.playbook.id)
        if not candidates:
            self.ledger.release_dead_runs(utcnow())
            return 0, 0
        own = run_id is None
        holder = run_id or self.ledger.start_run(self.playbook.id, "recover", utcnow())
        try:
            orphans = self.ledger.take_over(holder, candidates, now)
            results, tasks = self._evidence(orphans, inputs)
            self.ledger.settle(results, now, holder, tasks=tasks)
        finally:
            if own:
                self.ledger.finish_run(holder, utcnow())
        self.ledger.release_dead_runs(utcnow())
        self._recovered_sent = sum(1 for result in results if result[2] == "sent")
        return len(results), sum(1 for result in results if result[2] == "unknown")

    def _evidence(self, orphans: list[Mapping[str, Any]], inputs: PlanInputs) -> tuple[list[tuple[str, list[Any], str, str | None]], dict[str, str]]:
        """What each orphan task's outputs show: all arrived (sent), nothing in doubt missing (pending), or in flight (unknown).

        Orphans are grouped into send tasks as their claim grouped them (a claim took every due draft of a key),
        so an idempotent output is asked about the very file or message it was given."""
        if not orphans:
            return [], {}
        known = self.ledger.deliveries([row["draft_id"] for row in orphans])
        inputs.planner.focus(_contacts_of(orphans))
        results = []
        names: dict[str, str] = {}
        for task in send_tasks(orphans):
            name = task_of([row["draft_id"] for row in task])
            names.update((row["draft_id"], name) for row in task)
            outcome: dict[str, list[Any]] = {row["draft_id"]: [] for row in task}
            missing: set[str] = set()
            doubt = False
            doubted: set[str] = set()  # drafts handed to an output that may have made them (not those left out before it)
            for output in self.outputs:
                rows = [row for row in task if known.get(row["draft_id"], {}).get(output.name) != "delivered"]
                if not rows:
                    continue
                location = output.delivered_location(self._outgoing(rows, inputs)) if output.idempotent else None
                for row in rows:
                    state = known.get(row["draft_id"], {}).get(output.name)
                    if location:
                        outcome[row["draft_id"]].append((output.name, "delivered", location, None))
                    elif state == "inflight" and not output.idempotent:
                        outcome[row["draft_id"]].append((output.name, "unknown", None, "delivery was in flight when its run died or lost its lease"))
                        doubt = True
                        doubted.add(row["draft_id"])
                    else:
                        missing.add(row["draft_id"])
            for row in task:
                draft_id = row["draft_id"]
                if draft_id in doubted:
                    results.append((draft_id, outcome[draft_id], "unknown", "crash"))
                elif missing and (not doubt or draft_id in missing):
                    # In a task in doubt, a draft never handed to the output (the dead run left it out: exited, no longer
                    # a friend) is pending: the pass decides it again (skipped as it was, or sent if re-added).
                    results.append((draft_id, outcome[draft_id], "pending", row["reason"]))
                else:
                    results.append((draft_id, outcome[draft_id], "sent", row["reason"]))
        for output in self.outputs:
            output.flush()
        return results, names

    def sync(self, now: datetime, summary: PassSummary, *, every_task: bool = False) -> None:
        """Outputs that read back what was really sent (wecom): tasks in doubt found or made pending again,
        recipients' outcomes, reminders. Before delivery, so a task WeCom never made goes out this pass.
        `every_task`: read every open task now (`siyu sync`), not only those unread for a few minutes."""
        for output in self.outputs:
            if not output.reads_back:
                continue
            report = output.sync(now, every_task=every_task)  # type: ignore[attr-defined]
            summary.settled.update(report.settled_as)  # found in WeCom's list: sent, or skipped as WeCom refused them
            if report.blocked and output.name not in summary.blocked:
                # Its setup is wrong (a secret): read-back stopped at the first call, said once with the fix.
                summary.blocked.append(output.name)
            if report.settled:
                # Drafts this pass's recovery put in doubt that WeCom's own list has now settled.
                summary.unknown = max(summary.unknown - report.settled, 0)
                if summary.unknown == 0:
                    summary.errors = [e for e in summary.errors if not e.startswith(DOUBT)]
            parts = report.reminded_parts if report.reminded_parts != report.reminded else 0  # said only when they differ
            for key, count in [*report.outcomes.items(), ("reminded", report.reminded), ("reminded_parts", parts), ("found", report.found), ("remade", report.remade), ("unsettled", report.unsettled), ("to_check", report.to_check)]:
                if count:
                    summary.readback[key] = summary.readback.get(key, 0) + count
            if report.waiting:
                # WeCom busy or unreachable: nothing is wrong with the tasks, a later pass reads them (exit 0), said once.
                line = f"{report.waiting[0]}: read back at a later pass" + (f" ({len(report.waiting)} call(s) put off)" if len(report.waiting) > 1 else "")
                summary.later.append(line)
                summary.errors.append(line)
            summary.errors.extend(report.errors)
            if report.errors:
                # What WeCom would not answer or could not do (a Moments job no staff member can post): a person looks.
                summary.readback["errors"] = summary.readback.get("errors", 0) + len(report.errors)

    def skip_missed(self, now: datetime, summary: PassSummary) -> None:
        """Pending drafts already in the ledger are held to max_late too, counted from their due time."""
        guard = Guard(self.playbook)
        if guard.late_action != "skip":
            return
        missed, gave_up = self.ledger.skip_missed(self.playbook.id, now - guard.max_late, now)
        if missed:
            summary.skipped["missed"] += missed
        if gave_up:
            summary.failed += gave_up
            summary.errors.append(f"{gave_up} draft(s) still failing when max_late ran out")

    def plan(self, now: datetime, summary: PassSummary, *, full: bool = False) -> None:
        """Record every draft that has come due and is not in the ledger yet, with its decision.

        Incremental (siyu_cli.ledger._cursor): with a valid cursor a pass plans what came due since
        the last one, and the contacts that changed; otherwise (`full`, a first pass, an edited
        playbook, a pass at an earlier moment) everything, once.
        """
        playbook = self.playbook
        cursors = PlanCursor(self.db)
        top = cursors.log_top()
        cursor = cursors.get(playbook.id)
        journeys = self._journeys()
        if full or cursor is None or cursor.content_hash != playbook.content_hash or now < cursor.through or cursor.seq + 1 < cursors.log_low():
            if cursor is None:
                from siyu_cli.check import renamed

                summary.warnings.extend(problem.message + f" ({problem.hint})" for problem in renamed(playbook, self.db))
            inputs = self.everyone(now)
            self._revise(inputs.planner, now, summary)
            self._record(inputs, inputs.planner.drafts(until=now), now, summary)
            steps = _next_steps(inputs.planner, now) if journeys else {}
            with immediate(self.db):
                cursors.index_journeys(playbook.id, steps, everyone=True)
                cursors.set(playbook.id, playbook.content_hash, now, top, utcnow())
                prune_log(self.db)
            return
        through = cursor.through
        changed = cursors.changed(cursor.seq, top)
        sources: list[tuple[PlanInputs, Iterable[Draft]]] = []
        if any(through < moment <= now for moment in self._beat_moments()):
            beats = plan_inputs(playbook, None, readonly=False, db=self.db, as_of=now, beats_only=True)
            sources.append((beats, beats.planner.drafts(since=through + _TICK, until=now, journeys=False)))
        if changed:
            # Imported, tagged or given a late event: its past occurrences are planned again (the ledger dedups).
            some = plan_inputs(playbook, None, readonly=False, db=self.db, as_of=now, contact_ids=changed)
            sources.append((some, some.planner.drafts(until=now, journeys=False)))
        movers: set[str] = set()
        if journeys:
            movers = changed | cursors.entered(self._light().book.types, through, now, added=True) | cursors.journeys_due(playbook.id, now)
            if movers:
                moving = plan_inputs(playbook, None, readonly=False, db=self.db, as_of=now, contact_ids=movers)
                sources.append((moving, moving.planner.drafts(until=now, beats=False)))
        if carries(playbook) and sources:
            # Capacity is offered oldest first across beats, changed contacts and journey steps alike.
            self._record(sources[0][0], (), now, summary, sources=sources)
        else:
            for source, stream in sources:
                self._record(source, stream, now, summary)
        steps: dict[str, datetime | None] = {}
        if movers:
            steps = _next_steps(moving.planner, now)
            steps.update((cid, None) for cid in movers if cid not in steps)
        with immediate(self.db):
            cursors.index_journeys(playbook.id, steps, everyone=False)
            cursors.set(playbook.id, playbook.content_hash, now, top, utcnow())
            prune_log(self.db)

    def _revise(self, planner: Planner, now: datetime, summary: PassSummary) -> None:
        """After an edit: pending drafts made under the old playbook are re-timed, re-rendered or cancelled (siyu_cli.dispatch._plan)."""
        from siyu_cli.dispatch._plan import apply, review

        changes = review(self.playbook, self.db, planner, now)
        if not changes:
            return
        with immediate(self.db):
            apply(self.db, self.playbook, changes, now)
        for change in changes:
            if change.kind == "cancel":
                summary.skipped[change.reason or "removed"] += 1
            elif change.state == "failed":
                summary.failed += 1
                summary.errors.append(f"{change.draft_id}: {change.error}")
            else:
                summary.revised += 1

    def _fill_slots(self) -> None:
        from siyu_cli.dispatch._plan import fill_slots

        fill_slots(self.db, self.playbook)

    def _journeys(self) -> bool:
        model = self.playbook.model
        return bool(model.journeys or any(hook.welcome for hook in model.hooks))

    def _light(self) -> Planner:
        """A planner without contacts: the playbook's calendar and journey book."""
        if self._bare is None:
            self._bare = Planner(self.playbook)
        return self._bare

    def _beat_moments(self) -> list[datetime]:
        """When each beat occurrence of the campaign is scheduled, and when it is due (quiet hours): from the playbook alone."""
        if self._moments is None:
            guard = Guard(self.playbook)
            found: set[datetime] = set()
            for run in self.playbook.cohorts:
                for occ in occurrences(self.playbook, run, self._light().renderer.search):
                    found.add(occ.at)
                    found.add(guard.schedule(occ.at).due_at)
            self._moments = sorted(found)
        return self._moments

    def _record(
        self, inputs: PlanInputs, drafts: Iterable[Draft], now: datetime, summary: PassSummary, sources: Sequence[tuple[PlanInputs, Iterable[Draft]]] = ()
    ) -> None:
        """Record the drafts the ledger does not hold yet, rendered, each with its decision, in one write transaction.

        `sources`: several (inputs, drafts) decided together (a capacity cap offers its budget oldest first across
        them), each rendered with its own planner; `inputs` then serves the decisions."""
        cursors = PlanCursor(self.db)
        # A 1v1 cap is offered fairly across everything due at once (_fair_order), so those drafts are decided
        # together; otherwise they are recorded in chunks and a catch-up of millions holds one chunk at a time.
        whole = self.playbook.model.limits.private_per_account_per_day is not None or carries(self.playbook)
        fresh: list[Draft] = []
        # Sent, skipped or waiting already: a moved time, or an add recorded again at another time, is the same slot.
        for source, stream in sources or [(inputs, drafts)]:
            for draft in cursors.unrecorded(self.playbook.id, stream):
                source.planner.render(draft)
                draft.context = draft.content = None  # what rendering needed is let go
                fresh.append(draft)
                if not whole and len(fresh) >= RECORD_CHUNK:
                    self._insert(cursors, inputs, fresh, now, summary)
                    fresh = []
        if fresh:
            self._insert(cursors, inputs, fresh, now, summary)

    def _insert(self, cursors: PlanCursor, inputs: PlanInputs, fresh: list[Draft], now: datetime, summary: PassSummary) -> None:
        """Decide and insert drafts in one write transaction: the day's budget is read from the ledger inside it."""
        playbook = self.playbook
        guard = Guard(playbook)
        days = {moment.astimezone(playbook.tz).date() for moment in {d.occurrence_at for d in fresh}}
        with immediate(self.db):
            # Another pass may have recorded some of them since: looked up again under the write lock.
            existing = cursors.known(playbook.id, (d.slot for d in fresh))
            budget = self._budget(inputs, guard, days, sorted({d.target for d in fresh if d.contact_id is not None}))
            if budget.caps is not None:
                fresh.sort(key=lambda d: d.occurrence_at)  # capacity is offered oldest first (stable: the planner's order within a time)
            fresh = self._fair_order(fresh, budget, guard)
            carried: dict[str, tuple[str, str]] = {}
            carried_why: dict[str, str] = {}
            rows = []
            stamp = to_db(now)
            keys = self._send_keys(inputs)
            # Thousands of drafts share an occurrence time: each time is scheduled once (keyed with the zone
            # and fold that datetime equality ignores).
            timings: dict[tuple[datetime, Any, int], tuple[Schedule, str]] = {}
            ids: set[str] = set()
            for draft in fresh:
                if draft.slot in existing or draft.draft_id in ids:
                    continue
                existing.add(draft.slot)
                ids.add(draft.draft_id)
                at = draft.occurrence_at
                if draft.beat in self._instant_welcomes:
                    # WeCom's welcome answers the customer's own add, within 20 s or never: quiet hours do not hold it.
                    schedule, due_text = Schedule(at), to_db(at)
                else:
                    timing = timings.get((at, at.tzinfo, at.fold))
                    if timing is None:
                        schedule = guard.schedule(at)
                        timing = timings[(at, at.tzinfo, at.fold)] = (schedule, to_db(schedule.due_at))
                    schedule, due_text = timing
                state, reason, error = "pending", None, None
                if schedule.skip_reason:
                    state, reason = "skipped", schedule.skip_reason
                elif draft.skip is not None:
                    state, reason = "skipped", draft.skip
                elif draft.holdout:
                    state, reason = "skipped", "holdout"
                elif draft.error is not None:
                    state, reason, error = "failed", "template_error", str(draft.error)
                elif schedule.due_at <= now and guard.missed(schedule.due_at, now):
                    state, reason = "skipped", "missed"
                else:
                    refusal = budget.take(draft, schedule.due_at)
                    moved = budget.carry(draft, schedule.due_at) if refusal in CARRIED else None
                    if moved is not None:
                        # Over capacity or a nurturing cap: the same slot, due on the next day with room.
                        later = to_db(moved)
                        carried[draft.draft_id] = (due_text, later)
                        carried_why[draft.draft_id] = refusal
                        due_text, reason = later, refusal
                        summary.carried[refusal.partition(":")[0]] += 1
                    elif refusal in CARRIED:
                        state, reason = "skipped", SUPERSEDED  # a newer draft of its beat holds that day for the contact
                    elif refusal:
                        state, reason = "skipped", refusal
                    elif schedule.deferred:
                        reason = "quiet_hours:deferred"
                if state == "skipped":
                    summary.skipped[reason or "?"] += 1
                elif state == "failed":
                    summary.failed += 1
                    summary.errors.append(error or "")
                elif schedule.due_at > now and draft.draft_id not in carried:
                    summary.deferred += 1
                media = media_json(draft.attachments)
                rows.append(
                    (
                        draft.draft_id, playbook.id, draft.cohort, draft.beat, draft.key[3], draft.target,
                        draft.day, draft.channel, draft.persona, draft.category, draft.variant, due_text,
                        playbook.content_hash, draft.text, state, reason, error, stamp, stamp if state != "pending" else None, draft.entry, draft.slot,
                        media,
                        keys(playbook.id, draft.persona, draft.channel, draft.beat, draft.variant, draft.key[3], draft.text, media)
                        if state == "pending" else None,
                    )
                )
            # In claim order (due_at, draft_id): a claim batch then reads and rewrites neighbouring pages, not a page per draft.
            rows.sort(key=_claim_order)
            summary.recorded += self.ledger.insert(rows)
            self.ledger.mark_carried(carried)
            # Older drafts that gave way to a newer one of their beat (recorded before, or above in this pass).
            if budget.superseded:
                self.ledger.supersede(budget.superseded, stamp)
                summary.skipped[SUPERSEDED] += len(budget.superseded)
                for draft_id in carried.keys() & set(budget.superseded):
                    summary.carried[str(carried_why[draft_id]).partition(":")[0]] -= 1
                summary.carried = +summary.carried

    @property
    def _instant_welcomes(self) -> frozenset[str]:
        """The welcome steps sent with the add's WelcomeCode (`after: 0m`, with the wecom output): `welcome:<hook>:<n>`."""
        if self._welcomes is None:
            wecom = any(output.reads_back for output in self.outputs)
            self._welcomes = frozenset(
                f"welcome:{hook.id}:{number}"
                for hook in self.playbook.model.hooks
                for number, step in enumerate(hook.welcome, start=1)
                if wecom and _delay(step.after) == timedelta(0)
            )
        return self._welcomes

    def _send_keys(self, inputs: PlanInputs) -> SendKeys:
        if self._keys is None:
            self._keys = SendKeys(PersonalRule(self.playbook, inputs.planner.renderer))
        return self._keys

    def _fair_order(self, fresh: list[Draft], budget: Budget, guard: Guard) -> list[Draft]:
        """When an account's 1v1 cap will refuse drafts, offer the cap first to the contacts served least, then longest ago.

        The planner yields an occurrence's drafts in contact order, so without this the same tail
        of the audience would lose every day; with it, who was refused yesterday goes first today.
        """
        cap = self.playbook.model.limits.private_per_account_per_day
        if cap is None:
            return fresh
        wanted: Counter[tuple[str, Any]] = Counter()
        for draft in fresh:
            if draft.channel in BUDGETED and draft.contact_id is not None and not draft.holdout and draft.error is None and draft.skip is None:
                wanted[(draft.persona, budget.local_day(guard.schedule(draft.occurrence_at).due_at))] += 1
        if not any(budget.account_sends[key] + count > cap for key, count in wanted.items()):
            return fresh
        targets = sorted({d.target for d in fresh if d.channel in BUDGETED and d.contact_id is not None})
        served = self.ledger.private_sends(self.playbook.id, targets)
        never = (0, "")
        return sorted(fresh, key=lambda d: (d.occurrence_at, served.get(d.target, never) if d.channel in BUDGETED else never, d.beat, d.target))

    def _budget(self, inputs: PlanInputs, guard: Guard, days: set[Any], targets: Sequence[str] = ()) -> Budget:
        """The day's budget as the ledger has it now, plus every group post scheduled those days."""
        playbook = self.playbook
        start = min(datetime.combine(d, datetime.min.time(), tzinfo=playbook.tz) for d in days)
        budget = Budget(playbook, inputs.memberships, Caps.of(playbook, self.db, inputs.planner.renderer, start))
        end = max(datetime.combine(d, datetime.min.time(), tzinfo=playbook.tz) for d in days) + timedelta(days=2)
        if budget.caps is not None:
            end += timedelta(days=CARRY_HORIZON)  # a draft carried over is checked against its new day's touches
        limits = playbook.model.limits
        if budget.caps is not None or limits.private_per_account_per_day is not None:
            counted = self.ledger.private_counts(playbook.id, start, end)  # an account's budget: all its drafts those days
        elif limits.per_contact_per_day is not None:
            counted = self.ledger.private_counts(playbook.id, start, end, targets=targets)  # only these contacts' touches
        else:
            counted = []  # nothing is counted against a 1v1 budget: reading the day's drafts per chunk would be wasted (and quadratic)
        for target, persona, due in counted:
            budget.note_private(target.split(":", 1)[1], persona, from_db(due))
        for run in playbook.cohorts:
            campaign_days = {(d - run.start).days + 1 for d in days}
            if budget.caps is not None:  # a carried draft is checked against its new day's group posts too
                campaign_days = set(range(min(campaign_days), playbook.model.days + 1))
            for occ in occurrences(playbook, run, inputs.planner.renderer.search, days=campaign_days):
                if occ.target_kind == "group" and _posted(inputs.planner, occ):
                    budget.note_group_post(occ.target_id, guard.schedule(occ.at).due_at)
        return budget

    def deliver_due(self, run_id: str, now: datetime, inputs: PlanInputs, summary: PassSummary, only: list[str] | None = None) -> None:
        """Claim, deliver and settle batches of due send tasks until none is left or a stop is asked.

        A claim takes every due draft of a task (drafts sharing a `send_key`), so a task goes out whole.
        An output that fails PAUSE_AFTER tasks in a row is paused for the rest of the pass: the
        other outputs still get every task, and the paused one's part waits for a later pass.
        Leases run on the pass's clock (`now` plus the time it has run) and are renewed between
        tasks once half gone; a task any of whose claims another run took over is neither sent nor settled.
        """
        streaks: Counter[str] = Counter()
        lease = lease_length()
        started = _time.monotonic()

        def clock() -> datetime:
            return now + timedelta(seconds=_time.monotonic() - started)

        self._share_limits(lambda: clock().timestamp())

        for output in self.outputs:
            if hasattr(output, "pass_clock"):
                output.pass_clock = clock  # what an output records (a WeCom task's creation) is on the pass's clock

        while not self.stop_requested:
            leased = clock()
            batch = self.ledger.claim(run_id, now, CLAIM_BATCH, self.playbook.id, only=only, lease_from=leased)
            if not batch:
                return
            expires = leased + lease
            lost: set[str] = set()
            results: list[Any] = []
            attempt = _Attempt(now, {}, {}, {}, {}, streaks)
            ids = [row["draft_id"] for row in batch]
            # Journey and welcome steps are checked for an exit, so their contacts are loaded with their events;
            # every recipient needs only a name for its task's list.
            inputs.planner.focus(_contacts_of(row for row in batch if row["entry"] is not None))
            self._names = self._contact_names(_contacts_of(batch))
            # A 1v1 recorded before its contact deleted the account (deferred, carried, retried) is not sent after it.
            self._gone = unfriended(self.db, as_of=now, ids=sorted(_contacts_of(batch)))
            done = self.ledger.deliveries(ids)
            attempt.resume = self.ledger.partial_parts(ids)
            tasks = send_tasks(batch)
            for index, task in enumerate(tasks):
                if self.stop_requested:
                    # Not tried: back to pending as they were (due unchanged), for the next pass.
                    results.extend((r["draft_id"], [], "pending", r["reason"]) for rest in tasks[index:] for r in rest)
                    summary.stopped = True
                    break
                moment = clock()
                if expires - moment <= lease / 2:
                    held = self.ledger.renew(run_id, moment)
                    expires = moment + lease
                    lost.update(draft_id for draft_id in ids if draft_id not in held)
                if any(row["draft_id"] in lost for row in task):
                    lost.update(row["draft_id"] for row in task)
                    continue
                attempt.done = {row["draft_id"]: done.get(row["draft_id"], {}) for row in task}
                try:
                    results.extend(self._deliver(task, inputs, summary, attempt, run_id))
                except ClaimLost:
                    lost.update(row["draft_id"] for row in task)
            for name, streak in streaks.items():
                if streak >= PAUSE_AFTER and name not in summary.paused and name not in summary.held:
                    summary.paused.append(name)
            for output in self.outputs:
                output.flush()
            lost |= self.ledger.settle(
                results, now, run_id, retry_at=attempt.retry_at, parts=attempt.parts, tasks=attempt.tasks, outcomes=attempt.outcomes, keys=attempt.keys
            )
            if lost:
                _uncount(summary, [result for result in results if result[0] in lost], attempt.retry_at)
                shown = ", ".join(sorted(lost)[:5]) + (" …" if len(lost) > 5 else "")
                summary.errors.append(
                    f"claim lost on {len(lost)} draft(s) ({shown}): this pass held them past their lease (hung or paused), "
                    "so another run took them over and settled them; this pass recorded only what it saw arrive"
                )

    def _share_limits(self, wall: Callable[[], float]) -> None:
        """Robots' rate limits kept in the store for this pass, so every process and campaign shares them, on the
        pass's clock: the real one for cron and the service, the simulated one in a `--clock fast` rehearsal."""
        from siyu_cli.dispatch._limits import StoreRateLimiter

        for output in self.outputs:
            if isinstance(output, WebhookOutput) and output.platform.windows:
                output.shared = StoreRateLimiter(self.db, output.url, output.platform.windows, wall=wall)
                output.limiter.clock = wall  # the webhook's own limiter too, or it sleeps a real minute in a rehearsal

    def _deliver(
        self, task: list[dict[str, Any]], inputs: PlanInputs, summary: PassSummary, attempt: _Attempt, run_id: str
    ) -> list[tuple[str, list[Any], str, str | None]]:
        """One send task to every output: each output gets the recipients it has not had yet.

        Raises ClaimLost, before sending to a non-idempotent output, once another run holds any of its drafts.
        Returns each draft's result; a task's drafts share their fate, but for recipients an output refused at once.
        """
        now = attempt.now
        live: list[dict[str, Any]] = []
        results: list[tuple[str, list[Any], str, str | None]] = []
        for row in task:
            target_kind, _, ident = str(row["target"]).partition(":")
            if row["entry"] is not None and inputs.planner.exited(str(row["beat"]), str(row["target"]), str(row["entry"]), now):
                summary.skipped["exit"] += 1
                results.append((row["draft_id"], [], "skipped", "exit"))
            elif target_kind == "contact" and self._gone.deleted_at(ident, None, inputs.planner.staff.get(str(row["persona"] or ""), ())) is not None:
                summary.skipped[NOT_FRIEND] += 1
                results.append((row["draft_id"], [], "skipped", NOT_FRIEND))
            else:
                live.append(row)
        if not live:
            return results
        task_id = task_of([row["draft_id"] for row in live])
        outcome: dict[str, list[tuple[str, str, str | None, str | None]]] = {row["draft_id"]: [] for row in live}
        kinds: set[str] = set()
        refused: dict[str, str] = {}
        earlier = 0
        for output in self.outputs:
            rows = [row for row in live if attempt.done[row["draft_id"]].get(output.name) != "delivered"]
            if not rows:
                continue
            ids = [row["draft_id"] for row in rows]
            if attempt.streaks[output.name] >= PAUSE_AFTER:
                kinds.add("retry")
                if output.name in summary.held:
                    why = f"{output.name} held back for this pass: its rate limit is reached (a later pass sends it)"
                elif output.name in summary.blocked:
                    why = f"{output.name} stopped for this pass: its setup is wrong (see the pass's error); a pass after the fix sends it"
                else:
                    why = f"{output.name} paused for this pass after {PAUSE_AFTER} failures in a row"
                    _say_why(summary, output.name, None, len(ids))
                for draft_id in ids:
                    outcome[draft_id].append((output.name, "retry", None, why))
                continue
            message = self._outgoing(rows, inputs)
            if not output.idempotent:
                self.ledger.mark_inflight(ids, output.name, now, run_id)
            first_part = min(attempt.resume.get((draft_id, output.name), 0) for draft_id in ids) + 1

            def arrived(number: int, output_name: str = output.name, members: list[str] = ids) -> None:
                # Each part that arrived is committed at once: a crash later never sends it again.
                self.ledger.record_parts(members, output_name, number, now)

            try:
                reply = output.deliver(message, first_part=first_part, on_part=arrived)
            except DeliveryError as exc:
                if exc.defer_to is not None:
                    # Not tried and no failure: due again then, as a planned deferral (no streak, no error line).
                    kinds.add("deferred")
                    until = to_db(exc.defer_to)
                    for row in rows:
                        attempt.retry_at[row["draft_id"]] = until
                        outcome[row["draft_id"]].append((output.name, "retry", None, exc.message))
                        # The night's welcomes held until then go as one task, as a beat's recipients do.
                        key = self._send_keys(inputs).held_welcome(self.playbook.id, row, until) if row["channel"] == "welcome" else None
                        if key is not None:
                            attempt.keys[row["draft_id"]] = key
                    continue
                kind = "unknown" if exc.maybe_delivered else ("retry" if exc.transient else "failed")
                kinds.add(kind)
                for draft_id in ids:
                    if exc.retry_after is not None:
                        attempt.hints[draft_id] = max(attempt.hints.get(draft_id, 0.0), exc.retry_after)
                    outcome[draft_id].append((output.name, kind, None, exc.message))
                    if exc.parts_done:
                        attempt.parts[(draft_id, output.name)] = exc.parts_done
                if exc.held:
                    # The robot's window is full: nothing more can go to it this pass, and that is no failure.
                    attempt.streaks[output.name] = PAUSE_AFTER
                    if output.name not in summary.held:
                        summary.held.append(output.name)
                elif exc.blocked:
                    # Its setup is wrong (a secret, an IP): every task would fail alike; a pass after the fix sends them.
                    attempt.streaks[output.name] = PAUSE_AFTER
                    line = f"{output.name}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
                    if output.name not in summary.blocked:
                        summary.blocked.append(output.name)
                    if line not in summary.errors:  # read-back may have met the same answer first: said once
                        summary.errors.append(line)
                else:
                    attempt.streaks[output.name] = attempt.streaks[output.name] + 1 if kind == "retry" else 0
                if kind != "retry":
                    summary.errors.append(f"{DOUBT if kind == 'unknown' else ''}{message.draft_id} {output.name}: {exc.message}")
                elif not exc.held and not exc.blocked:
                    _say_why(summary, output.name, exc.message, len(ids))
                continue
            attempt.streaks[output.name] = 0
            location = reply.location if isinstance(reply, Delivered) else reply
            if isinstance(reply, Delivered):
                refused.update(reply.refused)
                earlier = max(earlier, reply.earlier)
            if not output.idempotent:
                self.ledger.mark_delivered(ids, output.name, location, now)
            for draft_id in ids:
                outcome[draft_id].append((output.name, "delivered", location, None))
        if any(state == "delivered" for found in outcome.values() for _, state, _, _ in found):
            summary.tasks += 1
            if not kinds:
                summary.sent_before += earlier
        for row in live:
            draft_id = row["draft_id"]
            attempt.tasks[draft_id] = task_id
            results.append(self._settled(row, outcome[draft_id], kinds, refused.get(draft_id), summary, attempt))
        return results

    def _settled(
        self, row: Mapping[str, Any], outcome: list[Any], kinds: set[str], refused: str | None, summary: PassSummary, attempt: _Attempt
    ) -> tuple[str, list[Any], str, str | None]:
        """One draft's state after its task's outputs answered."""
        draft_id = row["draft_id"]
        if "unknown" in kinds:
            summary.unknown += 1
            return (draft_id, outcome, "unknown", "in_doubt")
        if "failed" in kinds:
            summary.failed += 1
            return (draft_id, outcome, "failed", "delivery")
        if "deferred" in kinds and "retry" not in kinds:
            summary.deferred += 1
            return (draft_id, outcome, "pending", "quiet_hours:deferred")
        if "retry" in kinds:
            later = self._next_try(row, attempt.now, attempt.hints.get(draft_id))
            if later is None:
                summary.failed += 1
                summary.errors.append(f"{draft_id}: gave up, max_late ran out: " + "; ".join(e for _, _, _, e in outcome if e))
                return (draft_id, outcome, "failed", "delivery")
            attempt.retry_at[draft_id] = to_db(later)
            summary.retrying += 1
            return (draft_id, outcome, "pending", "retry")
        if refused is not None:
            # The platform took the task but will not reach this recipient (WeCom's fail_list: not a friend):
            # recorded with its reason, not a failure to retry.
            attempt.outcomes[draft_id] = refused
            summary.skipped[refused] += 1
            return (draft_id, outcome, "skipped", refused)
        summary.sent += 1
        return (draft_id, outcome, "sent", None if row["reason"] in ("retry", "in_doubt", "crash") else row["reason"])

    def _next_try(self, row: Mapping[str, Any], now: datetime, hint: float | None = None) -> datetime | None:
        """When a later pass tries a transient failure again: when the output said a try can succeed (a rate
        window's next slot), else 1, 2, 4 … minutes (at most an hour) after this attempt, the last try at the
        moment max_late runs out counted from when the draft was first due (a day when missed drafts are sent)."""
        guard = Guard(self.playbook)
        if hint is not None:
            wait = timedelta(seconds=max(1, int(hint) + 1))
        else:
            wait = timedelta(seconds=min(RETRY_FIRST.total_seconds() * 2 ** max(int(row["attempts"] or 1) - 1, 0), RETRY_CAP.total_seconds()))
        first_due = from_db(str(row.get("carried_to") or row["first_due_at"] or row["due_at"]))  # a carried draft's max_late counts from its new day
        deadline = first_due + (guard.max_late if guard.late_action == "skip" else timedelta(days=1))
        if now >= deadline:
            return None
        return min(now + wait, deadline)  # the last try is at the deadline, not a backoff step before it

    def _outgoing(self, rows: Sequence[Mapping[str, Any]], inputs: PlanInputs) -> Outgoing:
        """The send task of `rows` (drafts of one send key, or one draft) as the outputs take it."""
        playbook = self.playbook
        planner = inputs.planner
        row = rows[0]
        # Listed by target, as a person reads a list; the task keeps its first draft's name (task_of).
        recipients = tuple(sorted((Recipient(str(r["draft_id"]), str(r["target"]), self._label(str(r["target"]), planner)) for r in rows), key=_by_target))
        task_id = task_of([str(r["draft_id"]) for r in rows])
        persona = str(row["persona"] or "")
        if len(rows) == 1:
            target, label = str(row["target"]), recipients[0].label
        else:
            kind = str(row["target"]).partition(":")[0]
            target = f"{kind}s:{len(rows)}"
            label = f"{len(rows)} 个群 groups" if kind == "group" else f"{len(rows)} 位客户 contacts"
        beat_title = self._beat_titles.get(row["beat"]) or planner.step_title(str(row["beat"]))
        return Outgoing(
            draft_id=task_id,
            playbook_id=playbook.id,
            playbook_title=playbook.model.title,
            cohort=str(row["cohort"]),
            beat=str(row["beat"]),
            beat_title=beat_title,
            channel=str(row["channel"]),
            persona=planner.persona_names.get(persona, persona),
            account=planner.accounts.get(persona),
            target=label,
            target_id=target,
            due_at=self._due(str(row["due_at"])),
            day=int(row["day"] or 0),
            category=row["category"],
            variant=row["variant"],
            text=str(row["text"] or ""),
            attachments=media_of(row.get("attachments")),
            recipients=recipients,
            persona_id=persona,
        )

    def _contact_names(self, ids: Iterable[str]) -> dict[str, str]:
        """Contact id → name (the id when it has none), read in chunks: a task's recipient list needs no more."""
        found: dict[str, str] = {}
        wanted = sorted(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.db.execute(f"SELECT contact_id, name FROM contacts WHERE contact_id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update((cid, str(name or cid)) for cid, name in rows)
        return found

    def _label(self, target: str, planner: Planner) -> str:
        kind, _, ident = target.partition(":")
        if kind == "group":
            return planner.group_names.get(ident, ident)
        if kind == "contact":
            name = self._names.get(ident)
            return f"{name if name is not None else planner.contact_name(ident)} ({ident})"
        return f"朋友圈 Moments · {planner.persona_names.get(ident, ident)}"

    def _due(self, stamp: str) -> datetime:
        """A ledger time in the playbook's zone; a batch shares a few, so each is parsed once."""
        found = self._dues.get(stamp)
        if found is None:
            if len(self._dues) >= 4096:
                self._dues.clear()
            found = self._dues[stamp] = from_db(stamp).astimezone(self.playbook.tz)
        return found

    def next_due(self, now: datetime) -> datetime | None:
        """The next moment anything becomes due: a pending draft, a beat occurrence, a contact's next journey step.

        From the ledger, the playbook and the journey index alone: no contact is loaded.
        """
        tz = self.playbook.tz
        row = self.db.execute(
            "SELECT MIN(due_at) FROM drafts WHERE +playbook_id = ? AND state = 'pending' AND due_at > ?", [self.playbook.id, to_db(now)]
        ).fetchone()
        candidates = [from_db(row[0]).astimezone(tz)] if row and row[0] else []
        candidates += [moment.astimezone(tz) for moment in self._beat_moments() if moment > now][:1]
        step = PlanCursor(self.db).next_journey_step(self.playbook.id) if self._journeys() else None
        if step is not None and step > now:
            candidates.append(step.astimezone(tz))
        return min(candidates) if candidates else None

    def wake_times(self, after: datetime, inputs: PlanInputs, *, limit: int | None = None, until: datetime | None = None) -> list[datetime]:
        """Distinct moments after `after` when something falls due (occurrences, deferrals, welcome steps)."""
        guard = Guard(self.playbook)
        moments: set[datetime] = set()
        for occurrence in inputs.planner.moments(since=after - timedelta(days=1), until=until):
            due = guard.schedule(occurrence).due_at
            for moment in (occurrence, due):
                if moment > after and (until is None or moment <= until):
                    moments.add(moment.astimezone(self.playbook.tz))
        ordered = sorted(moments)
        return ordered[:limit] if limit else ordered

    def campaign_end(self) -> datetime:
        playbook = self.playbook
        last = max(run.start for run in playbook.cohorts) + timedelta(days=playbook.model.days)
        end = datetime.combine(last, datetime.min.time(), tzinfo=playbook.tz)
        steps = [step.after for hook in playbook.model.hooks for step in hook.welcome]
        steps += [step.after for journey in playbook.model.journeys for step in journey.steps]
        if steps:
            # Contacts who enter on the last day, or later (an order after the campaign), still get every step.
            kinds = sorted({"friend_added"} | {j.enter.event for j in playbook.model.journeys})
            row = self.db.execute(f"SELECT MAX(at) FROM events WHERE type IN ({', '.join('?' * len(kinds))})", kinds).fetchone()
            if row and row[0]:
                end = max(end, from_db(row[0]).astimezone(playbook.tz))
            end += max(_delay(after) for after in steps) + timedelta(days=1)
        guard = Guard(playbook)
        if guard.on_quiet == "defer" and guard.in_quiet(end):
            end = guard.quiet_end(end)  # the last night's beats are deferred to the morning after
        return end


def _posted(planner: Planner, occ: Any) -> bool:
    """A group post its beat's health filter leaves out reaches nobody: no touch to count."""
    found = planner.group_health(occ)
    return found is None or bool(found.admits(occ.beat.health))


def _contacts_of(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(row["target"]).partition(":")[2] for row in rows if str(row["target"]).startswith("contact:")}


def _next_steps(planner: Planner, now: datetime) -> dict[str, datetime | None]:
    """Each replayed contact's next journey or welcome step after `now` (None: nothing left), for the journey index."""
    tz = planner.playbook.tz
    found: dict[str, datetime | None] = {}
    for cid, runs in planner.runs.items():
        upcoming = [due for run in runs for step in run.route.steps if (due := step_due(run.entered_at, step, tz)) > now and not run.exited_by(due)]
        found[cid] = min(upcoming) if upcoming else None
    return found


def _say_why(summary: PassSummary, output: str, reason: str | None, count: int) -> None:
    """A transient failure is tried again (the pass exits 0), but cron's log must show why drafts wait: one line per
    output per pass in its errors, with the first reason and the drafts held back counted (None: paused, same reason)."""
    said = summary.waits.get(output)
    if said is None and reason is None:
        return
    first, total = said if said is not None else (reason or "", 0)
    line = _wait_line(output, first, total + count)
    old = _wait_line(output, first, total)
    if old in summary.errors:
        summary.errors[summary.errors.index(old)] = line
    else:
        summary.errors.append(line)
    summary.waits[output] = (first, total + count)


def _wait_line(output: str, why: str, count: int) -> str:
    return f"{output}: {why}: {count} draft(s) retry later"


def _uncount(summary: PassSummary, results: list[tuple[str, list[Any], str, str | None]], retry_at: Mapping[str, str]) -> None:
    """Take back what a pass counted for drafts whose finish did not count: another run settles them.
    (A pending result is counted only when it was tried and will be retried; a stop leaves others untried.)"""
    for draft_id, _, state, reason in results:
        if state == "sent":
            summary.sent -= 1
        elif state == "failed":
            summary.failed -= 1
        elif state == "unknown":
            summary.unknown -= 1
        elif state == "skipped":
            key = reason or "?"
            summary.skipped[key] -= 1
            if summary.skipped[key] <= 0:
                del summary.skipped[key]
        elif draft_id in retry_at:
            summary.retrying -= 1


def _by_target(recipient: Recipient) -> str:
    return recipient.target_id


def _claim_order(row: tuple[Any, ...]) -> tuple[str, str]:
    return (row[11], row[0])


def _delay(text: str) -> timedelta:
    from siyu_cli._time import parse_duration

    return parse_duration(text)
