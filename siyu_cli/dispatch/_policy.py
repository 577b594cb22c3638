"""The guardrails of the spec, as decisions: quiet hours, touch budget, account cap, missed beats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from siyu_cli._time import parse_hhmm
from siyu_cli.dispatch._capacity import CARRY_HORIZON, SUPERSEDED, Caps
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Draft

# Journey steps obey the limits like private beats; welcome messages answer the contact's own add and count against neither.
BUDGETED = ("private", "journey")


@dataclass(frozen=True)
class Schedule:
    """When a draft is due and what quiet hours did to it."""

    due_at: datetime
    deferred: bool = False
    skip_reason: str | None = None


class Guard:
    """Quiet hours and the missed-beat rule; pure functions of a draft's time and now."""

    def __init__(self, playbook: LoadedPlaybook) -> None:
        limits = playbook.model.limits
        self.tz = playbook.tz
        self.on_quiet = limits.on_quiet
        self.max_late = limits.missed.max_late_delta
        self.late_action = limits.missed.action
        self.quiet: tuple[time, time] | None = None
        if limits.quiet_hours:
            start, end = (parse_hhmm(p) for p in limits.quiet_hours.split("-", 1))
            self.quiet = (start, end)

    def in_quiet(self, moment: datetime) -> bool:
        if self.quiet is None:
            return False
        clock = moment.astimezone(self.tz).time()
        start, end = self.quiet
        return start <= clock < end if start <= end else (clock >= start or clock < end)

    def quiet_end(self, moment: datetime) -> datetime:
        assert self.quiet is not None
        local = moment.astimezone(self.tz)
        end = datetime.combine(local.date(), self.quiet[1], tzinfo=self.tz)
        if end <= local:
            end += timedelta(days=1)
        return end

    def schedule(self, occurrence_at: datetime) -> Schedule:
        if not self.in_quiet(occurrence_at):
            return Schedule(occurrence_at)
        if self.on_quiet == "skip":
            return Schedule(occurrence_at, skip_reason="quiet_hours")
        return Schedule(self.quiet_end(occurrence_at), deferred=True)

    def missed(self, due_at: datetime, now: datetime) -> bool:
        """Too late to send: found after max_late (counted from the due time, so from the end of quiet hours)."""
        return self.late_action == "skip" and now - due_at > self.max_late


class Budget:
    """Touches per contact and 1v1 drafts per account per local day, counted in dispatch order."""

    def __init__(self, playbook: LoadedPlaybook, memberships: Mapping[str, Iterable[str]] | None = None, caps: Caps | None = None) -> None:
        limits = playbook.model.limits
        self.caps = caps  # capacity and nurturing (siyu_cli.dispatch._capacity): over them a draft carries over
        self.tz = playbook.tz
        self.per_contact = limits.per_contact_per_day
        self.per_account = limits.private_per_account_per_day
        self.memberships = {cid: set(groups) for cid, groups in (memberships or {}).items()}
        self.contact_touches: Counter[tuple[str, date]] = Counter()
        self.account_sends: Counter[tuple[str, date]] = Counter()
        self.group_posts: Counter[tuple[str, date]] = Counter()
        self.superseded: list[str] = []  # ids of recorded or earlier drafts of this pass that gave way (Caps.contest)
        # With no limit and no cap nothing is ever refused, so nothing needs counting (a 100,000-recipient mass send).
        self.open = caps is None and self.per_contact is None and self.per_account is None

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def note_group_post(self, group: str, moment: datetime) -> None:
        self.group_posts[(group, self.local_day(moment))] += 1

    def note_private(self, contact: str, persona: str, moment: datetime) -> None:
        day = self.local_day(moment)
        self.contact_touches[(contact, day)] += 1
        self.account_sends[(persona, day)] += 1

    def refusal(self, draft: Draft, due_at: datetime) -> str | None:
        """Why the budget stops this draft, or None. Only 1v1 drafts are stopped; group posts reach everyone.
        A welcome step after the add's is held by capacity and nurturing alone (Caps), not by the touch and account budgets."""
        if draft.contact_id is None:
            return None
        if draft.channel not in BUDGETED:
            return self.caps.refusal(draft, due_at) if self.caps is not None else None
        day = self.local_day(due_at)
        if self.per_account is not None and self.account_sends[(draft.persona, day)] >= self.per_account:
            return "limit:private_per_account_per_day"
        if self.per_contact is not None:
            groups = self.memberships.get(draft.contact_id, set())
            touches = self.contact_touches[(draft.contact_id, day)] + sum(self.group_posts[(g, day)] for g in groups)
            if touches >= self.per_contact:
                return "limit:per_contact_per_day"
        return self.caps.refusal(draft, due_at) if self.caps is not None else None

    def take(self, draft: Draft, due_at: datetime) -> str | None:
        """Refuse, or count the draft and let it through; an older carried draft of its beat that day gives way to it."""
        if self.open:
            return None
        gives_way = self._contest(draft, due_at, carried=False)
        if gives_way is not None:
            return SUPERSEDED if gives_way else None
        reason = self.refusal(draft, due_at)
        if reason is None and draft.contact_id is not None:
            self._count(draft, due_at, carried=False)
        return reason

    def carry(self, draft: Draft, due_at: datetime) -> datetime | None:
        """Where a draft the caps refused goes: the same time on the next day with room (the caps and the
        touch and account budgets), counted there, or on an earlier later day holding a draft of its beat
        for the contact, in that draft's place. None: it gave way to that draft (capacity:superseded)."""
        assert self.caps is not None
        local = due_at.astimezone(self.tz)
        for days in range(1, CARRY_HORIZON + 1):
            later = datetime.combine(local.date() + timedelta(days=days), local.timetz().replace(tzinfo=None), tzinfo=self.tz)
            gives_way = self._contest(draft, later, carried=True)
            if gives_way is not None:
                return None if gives_way else later
            if self.refusal(draft, later) is None:
                break
        self._count(draft, later, carried=True)
        return later

    def _contest(self, draft: Draft, moment: datetime, carried: bool) -> bool | None:
        """True: the draft gives way to a draft of its beat for the contact that day; False: that draft gives
        way and this one takes its place in the day's budgets as it stands; None: no contest (Caps.contest)."""
        if self.caps is None:
            return None
        loser = self.caps.contest(draft, moment, carried)
        if loser is None:
            return None
        if loser == draft.draft_id:
            return True
        self.superseded.append(loser)
        self.caps.place(draft, moment, carried)
        return False

    def _count(self, draft: Draft, moment: datetime, carried: bool) -> None:
        if draft.channel in BUDGETED:
            self.note_private(str(draft.contact_id), draft.persona, moment)
        if self.caps is not None:
            self.caps.note(draft.persona, str(draft.contact_id), moment, draft.channel, draft.beat, draft.variant)
            self.caps.place(draft, moment, carried)
