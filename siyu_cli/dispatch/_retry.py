"""Sending failed (and, when asked, unknown) drafts again."""

from __future__ import annotations

from datetime import datetime

from siyu_cli._time import to_db, utcnow
from siyu_cli.dispatch._runner import PassSummary, Runner
from siyu_cli.errors import SiyuError
from siyu_cli.store import immediate


def retry(runner: Runner, ids: list[str] | None, *, include_unknown: bool, now: datetime | None) -> PassSummary:
    """Failed deliveries go back to pending and are delivered now; template errors are re-planned."""
    moment = (now or utcnow()).astimezone(runner.playbook.tz)
    db = runner.db
    states = ("failed", "unknown") if include_unknown else ("failed",)
    marks = ", ".join("?" * len(states))
    summary = PassSummary(now=moment)
    runner.recover_into(moment, summary)  # a dead run's drafts in flight: in doubt (looked up below), not left held
    if include_unknown:
        # An output that can look a delivery up (WeCom's own list of mass sends) settles what is in doubt first:
        # found, it is sent; not made, it goes out in this retry; only the rest is sent again blindly, as asked.
        runner.sync(moment, summary, every_task=True)
        unanswered, to_check = summary.readback.get("unsettled", 0), summary.readback.get("to_check", 0)
        # A task siyu cannot tell apart in WeCom's list (to_check) is a person's call: named by its task name (as the
        # message gives it), after they looked in 群发记录 and found no such send, it is made, and the pass says why it
        # was in doubt. Anything else (a draft id of it, another task) waits while any task is to be checked.
        if to_check and ids and not unanswered:
            from siyu_cli.wecom._sync import ASK

            named = [e for e in summary.errors if any(f"task {ident} is in doubt" in e for ident in ids)]
            summary.errors = [e for e in summary.errors if e not in named]
            summary.warnings.extend(f"made as you named it, though siyu could not rule out that WeCom holds it: {e.split(f' {ASK}', 1)[0]}" for e in named)
            for key in ("to_check", "errors"):
                left = summary.readback.get(key, 0) - len(named)
                if left > 0:
                    summary.readback[key] = left
                else:
                    summary.readback.pop(key, None)
            to_check = summary.readback.get("to_check", 0)
        if unanswered or to_check:
            raise SiyuError(
                "could not settle the drafts in doubt against WeCom first, so none is sent again: " + "; ".join(summary.errors[:3]),
                hint="try again when WeCom answers (a draft in doubt may already be in WeCom); `siyu status` lists them"
                if unanswered
                else "a person settles it as the error says (群发记录, then `siyu outbox done TASK`); nothing here sends it twice",
            )
    if ids:
        resolved = [draft for found in runner.ledger.find(ids).values() for draft in found]
        rows = db.execute(
            f"SELECT draft_id, state, reason FROM drafts WHERE draft_id IN ({', '.join('?' * len(resolved))})", resolved
        ).fetchall()
        if include_unknown and summary.readback.get("found"):
            # Looked up first and found in WeCom's list: sent, as the pass line says; nothing to send again.
            found = [r for r in rows if r[1] == "sent"]
            if found:
                summary.warnings.append(f"{len(found)} draft(s) asked for were found in WeCom's list and settled sent: none is sent again")
                rows = [r for r in rows if r[1] != "sent"]
        wrong = [r for r in rows if r[1] not in states]
        if wrong:
            hint = "add --unknown for drafts in doubt" if wrong[0][1] == "unknown" else "only failed drafts can be retried"
            raise SiyuError(f"draft {wrong[0][0]} is {wrong[0][1]}, not failed", hint=hint)
    else:
        rows = db.execute(
            f"SELECT draft_id, state, reason FROM drafts WHERE playbook_id = ? AND state IN ({marks})", [runner.playbook.id, *states]
        ).fetchall()
    resend = [r[0] for r in rows if r[2] != "template_error"]
    replan = [r[0] for r in rows if r[2] == "template_error"]
    if include_unknown:
        resend += [row[0] for row in db.execute("SELECT draft_id FROM drafts WHERE playbook_id = ? AND state = 'pending' AND reason = 'retry' AND error LIKE 'wecom: % not in WeCom%'", [runner.playbook.id])]
    with immediate(db):
        for draft_id in resend:
            db.execute("UPDATE deliveries SET state = 'pending' WHERE draft_id = ? AND state IN ('failed', 'unknown', 'inflight')", [draft_id])
            db.execute("UPDATE drafts SET state = 'pending', due_at = MIN(due_at, ?), error = NULL WHERE draft_id = ?", [to_db(moment), draft_id])
        for draft_id in replan:
            db.execute("DELETE FROM drafts WHERE draft_id = ? AND state = 'failed'", [draft_id])
    run_id = runner.ledger.start_run(runner.playbook.id, "retry", utcnow())
    try:
        inputs = runner.inputs(moment)
        if replan:
            runner.plan(moment, summary, full=True)  # re-rendered drafts are held to max_late like any other
        runner.deliver_due(run_id, moment, inputs, summary, only=resend + replan)
    finally:
        runner.ledger.finish_run(run_id, utcnow())
    return summary

