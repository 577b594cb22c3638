"""The team's own limits on 1v1 work, as decisions: capacity (人效) and account nurturing (养号).

Capacity. One operator handles about 20 precise (精准粉) or 40 general (泛粉) fans a day in 1v1 (the
seeds' figure; 半精准粉 30, between them). A persona with `capacity:` spends, per local day, 1/20 of an
operator on each precise contact it writes to in 1v1, 1/30 on a semi-precise one and 1/40 on a general
one; the day is full when the next contact would take it past `operators` (default 1). A contact
written to twice the same day is one fan handled: only its first draft costs.

Which drafts need a person: a journey step always (each contact is on its own clock, so no two
share a send), and so a welcome step after the add's (`welcome:<hook>:<n>` whose `after` is not 0:
only the `after: 0m` step goes with the add, sent by the platform, with the wecom output WeCom's
send_welcome_msg; a later one is each contact's own send, like a journey step); a private beat when
its template reads `contact` (the Jinja source, with what it includes: `{{ contact.name }}`,
`contact.tags`, `{% if contact ... %}`), since such a text differs per contact and WeCom cannot
mass-send it. A private beat whose template never reads `contact` is one mass-send task (群发)
however many receive it, and costs nothing here; nor do the add's own welcome step, group posts and
Moments. The rule reads the source, not the rendered text, so it is known before any contact is
rendered and does not flip with the audience; a private beat drawing from `pools` counts (a pool may
hold either kind).

A contact's tier: its `tier` column (precise, semi, general, or 精准粉, 半精准粉, 泛粉), else a tier
tag among its own tags, else among the tags of the hook it came through (its source, or its
friend_added event's hook), else the persona's `capacity.untiered` (default precise: the most work, so
capacity is never overstated).

Nurturing is the account's (养号 warms the WeChat/WeCom account, not a persona): personas that share an
`account` share its stage and its caps, and a persona without `account` is an account of its own. The
stage is by the account's age: day 1 is its `account_since` (the earliest its personas give); 初生号 (new)
until `growing_from` (day 8), 成长号 (growing) until `stable_from` (day 30), then 稳定号 (stable). Days 16-29,
which the seeds leave open between "15 days growing" and "30 days stable", are still 成长号: an
account is stable only once it has been used for 30 days. `limits.nurture` caps each stage's 1v1
sends a day (every private and journey draft and every welcome step after the add's, mass-sent or
not: the platform counts messages), adds accepted and group invitations a day (those two are the
contacts' own acts, so check warns about them; the runner cannot hold them back).

Over a cap a draft is not skipped: it carries over to the same time on the next day that has room
for it (`capacity:carried` / `nurture:carried`), keeping its slot (exactly once), its first due time
in first_due_at and the time it was carried to in carried_to. Drafts already recorded keep their
place, so the oldest are served first; fresh drafts are offered the room in due order.

A contact gets at most one draft of a beat a day: a carried draft that would share a day with a draft
of its beat for the same contact (or a draft landing on a day a carried one holds) gives way if it is
the older, recorded skipped `capacity:superseded`; the newer carries the current message and takes
its place in that day's budgets. When the older has gone out already, the newer gives way instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from siyu_cli._time import from_db, parse_duration, to_db
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Draft

CARRIED = ("capacity:carried", "nurture:carried")
SUPERSEDED = "capacity:superseded"
PERSONAL = ("private", "journey")  # the channels a contact may get one draft of a beat a day on (Caps.contest)
ONE_ON_ONE = ("private", "journey", "welcome")  # the ledger's channels of 1v1 drafts (a welcome step only after the add's)
TIER_WORDS = {
    "precise": "precise",
    "精准粉": "precise",
    "精准": "precise",
    "semi": "semi",
    "半精准粉": "semi",
    "半精准": "semi",
    "general": "general",
    "泛粉": "general",
}
STAGES = {"new": "初生号", "growing": "成长号", "stable": "稳定号"}
CARRY_HORIZON = 366  # days looked ahead for room; a cap of at least one always finds it long before


def tier_word(value: str | None) -> str | None:
    return TIER_WORDS.get((value or "").strip())


def account_key(playbook: LoadedPlaybook, persona_id: str) -> str:
    """The account a persona speaks from: its `account`, or the persona itself when it names none."""
    persona = next((p for p in playbook.model.personas if p.id == persona_id), None)
    return persona.account if persona is not None and persona.account else f"persona:{persona_id}"


def sharing(playbook: LoadedPlaybook) -> dict[str, list[str]]:
    """account → the ids of the personas speaking from it, in the playbook's order."""
    found: dict[str, list[str]] = {}
    for persona in playbook.model.personas:
        found.setdefault(account_key(playbook, persona.id), []).append(persona.id)
    return found


def account_since(playbook: LoadedPlaybook, persona_id: str) -> date | None:
    """The day the persona's account was registered: the earliest `account_since` its personas give."""
    key = account_key(playbook, persona_id)
    dates = [p.account_since for p in playbook.model.personas if p.account_since is not None and account_key(playbook, p.id) == key]
    return min(dates, default=None)


def stage_of(playbook: LoadedPlaybook, persona_id: str, day: date) -> str | None:
    """new | growing | stable on that local day, or None when the persona's account has no account_since."""
    since = account_since(playbook, persona_id)
    if since is None:
        return None
    nurture = playbook.model.limits.nurture
    growing, stable = (nurture.growing_from, nurture.stable_from) if nurture else (8, 30)
    age = (day - since).days + 1
    return "new" if age < growing else ("growing" if age < stable else "stable")


def stage_caps(playbook: LoadedPlaybook, persona_id: str, day: date) -> Any:
    """The StageCaps in force for the persona's account that day (None: no nurturing caps)."""
    nurture = playbook.model.limits.nurture
    stage = stage_of(playbook, persona_id, day)
    return getattr(nurture, stage) if nurture is not None and stage else None


def account_age(playbook: LoadedPlaybook, persona_id: str, day: date) -> int | None:
    since = account_since(playbook, persona_id)
    return None if since is None else (day - since).days + 1


def added_with(playbook: LoadedPlaybook) -> frozenset[str]:
    """The welcome steps that go with the add (`after: 0m`; with the wecom output, WeCom's send_welcome_msg): `welcome:<hook>:<n>`."""
    return frozenset(f"welcome:{hook.id}:{number}" for hook in playbook.model.hooks for number, step in enumerate(hook.welcome, start=1) if parse_duration(step.after) == timedelta(0))


class PersonalRule:
    """Whether a draft needs a person (see the module's docstring), read from the template sources once per content."""

    def __init__(self, playbook: LoadedPlaybook, renderer: Any) -> None:
        self.playbook = playbook
        self.renderer = renderer
        self.beats = {beat.id: beat for beat in playbook.model.beats}
        self.with_add = added_with(playbook)

    def one_on_one(self, channel: str, beat_id: str) -> bool:
        """A 1v1 send the account makes (what the nurturing `private` cap counts): every private and journey
        draft, and a welcome step after the add's; the add's own welcome is the platform's answer to the add."""
        return channel in PERSONAL or (channel == "welcome" and beat_id not in self.with_add)

    def __call__(self, channel: str, beat_id: str, variant: str | None) -> bool:
        if channel in ("journey", "welcome"):
            return self.one_on_one(channel, beat_id)
        if channel != "private":
            return False
        beat = self.beats.get(beat_id)
        if beat is None:
            return True  # a beat the playbook no longer has: counted, as the draft is still waiting
        if beat.pools:
            return True
        content = beat.variants.get(variant) if beat.variants and variant else beat
        return content is not None and self.reads_contact(content.template, content.text)

    def reads_contact(self, template: str | None, text: str | None) -> bool:
        return bool(self.renderer.reads_contact(template, text))


class Caps:
    """Capacity and nurturing per persona account and local day: what the ledger holds, then each draft taken."""

    def __init__(self, playbook: LoadedPlaybook, db: Any, renderer: Any) -> None:
        self.playbook = playbook
        self.tz = playbook.tz
        self.db = db
        self.personal = PersonalRule(playbook, renderer)
        self.capacity = {p.id: p.capacity for p in playbook.model.personas if p.capacity is not None}
        self.nurtured = playbook.model.limits.nurture is not None and any(p.account_since for p in playbook.model.personas)
        self.load: Counter[tuple[str, date]] = Counter()  # operator-days spent (Fractions)
        self.handled: set[tuple[str, date, str]] = set()  # (persona, day, contact) already paid for
        self.sends: Counter[tuple[str, date]] = Counter()  # 1v1 drafts per (account, day), for the nurturing cap
        self.accounts = {p.id: account_key(playbook, p.id) for p in playbook.model.personas}
        self.tiers: dict[str, str | None] = {}
        # (target, beat, day) → (draft id, occurrence, carried, still pending): who holds a beat's place that day
        self.placed: dict[tuple[str, str, date], tuple[str, str, bool, bool]] = {}
        self.hooks = {key: hook for hook in playbook.model.hooks for key in (hook.id, hook.code) if key}

    @classmethod
    def of(cls, playbook: LoadedPlaybook, db: Any, renderer: Any, since: datetime) -> Caps | None:
        """None when the playbook sets neither; else loaded with every 1v1 draft the ledger holds from `since` on."""
        if not carries(playbook):
            return None
        caps = cls(playbook, db, renderer)
        rows = db.execute(
            "SELECT target, persona, due_at, channel, beat, variant, draft_id, occurrence_at, state, reason, carried_to FROM drafts WHERE +playbook_id = ? AND channel IN ('private', 'journey', 'welcome') AND state NOT IN ('skipped', 'failed') AND due_at >= ?",
            [playbook.id, to_db(since)],
        ).fetchall()
        caps.prefetch(str(row[0]).partition(":")[2] for row in rows)
        for target, persona, due, channel, beat, variant, draft_id, occurrence, state, reason, carried_to in rows:
            caps.note(str(persona or ""), str(target).partition(":")[2], from_db(due), channel, beat, variant)
            carried = reason in CARRIED or carried_to is not None
            caps.placed[(target, beat, caps.local_day(from_db(due)))] = (draft_id, occurrence, carried, state == "pending")
        return caps

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def prefetch(self, contact_ids: Iterable[str]) -> None:
        """Each contact's tier (see the module's docstring) in a few queries."""
        wanted = sorted({cid for cid in contact_ids if cid and cid not in self.tiers})
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            hooks: dict[str, str] = {}
            for cid, hook in self.db.execute(f"SELECT contact_id, hook FROM events WHERE contact_id IN ({marks}) AND type = 'friend_added' AND hook IS NOT NULL ORDER BY at", chunk):
                hooks.setdefault(cid, hook)
            found = {cid: (tier, tags, source) for cid, tier, tags, source in self.db.execute(f"SELECT contact_id, tier, tags, source FROM contacts WHERE contact_id IN ({marks})", chunk)}
            for cid in chunk:
                tier, tags, source = found.get(cid, (None, "[]", None))
                self.tiers[cid] = self._tier(tier, tags, [source, hooks.get(cid)])

    def _tier(self, column: str | None, tags: str | None, via: list[str | None]) -> str | None:
        if tier_word(column):
            return tier_word(column)
        try:
            own = json.loads(tags or "[]")
        except ValueError:
            own = []
        for tag in own:
            if tier_word(str(tag)):
                return tier_word(str(tag))
        for key in via:
            hook = self.hooks.get(key or "")
            for tag in hook.tags if hook else ():
                if tier_word(tag):
                    return tier_word(tag)
        return None

    def cost(self, persona: str, contact: str) -> Fraction:
        capacity = self.capacity[persona]
        if contact not in self.tiers:
            self.prefetch([contact])
        tier = self.tiers.get(contact) or capacity.untiered
        return Fraction(1, getattr(capacity, tier))

    def account(self, persona: str) -> str:
        return self.accounts.get(persona) or f"persona:{persona}"

    def note(self, persona: str, contact: str, moment: datetime, channel: str, beat: str, variant: str | None) -> None:
        if not self.personal.one_on_one(channel, beat):
            return  # the add's own welcome: neither cap counts it
        day = self.local_day(moment)
        self.sends[(self.account(persona), day)] += 1
        if persona in self.capacity and (persona, day, contact) not in self.handled and self.personal(channel, beat, variant):
            self.handled.add((persona, day, contact))
            self.load[(persona, day)] += self.cost(persona, contact)

    def refusal(self, draft: Draft, moment: datetime) -> str | None:
        """capacity:carried or nurture:carried when the draft's day has no room for it, else None."""
        if draft.contact_id is None or not self.personal.one_on_one(draft.channel, draft.beat):
            return None
        persona, day, contact = draft.persona, self.local_day(moment), draft.contact_id
        if self.nurtured:
            caps = stage_caps(self.playbook, persona, day)
            if caps is not None and caps.private is not None and self.sends[(self.account(persona), day)] >= caps.private:
                return "nurture:carried"
        capacity = self.capacity.get(persona)
        if capacity is None or (persona, day, contact) in self.handled or not self.personal(draft.channel, draft.beat, draft.variant):
            return None
        return "capacity:carried" if self.load[(persona, day)] + self.cost(persona, contact) > capacity.operators else None

    def place(self, draft: Draft, moment: datetime, carried: bool) -> None:
        """The draft now holds its beat's place for its contact on that day."""
        self.placed[(draft.target, draft.beat, self.local_day(moment))] = (draft.draft_id, to_db(draft.occurrence_at), carried, True)

    def contest(self, draft: Draft, moment: datetime, carried: bool) -> str | None:
        """The id of the draft superseded when this one would share its day with a draft of its beat for the
        contact, either of them carried: the older if still pending, else this one. None: no contest."""
        if draft.channel not in PERSONAL or draft.contact_id is None:
            return None
        other = self.placed.get((draft.target, draft.beat, self.local_day(moment)))
        if other is None or other[0] == draft.draft_id or not (carried or other[2]):
            return None
        other_id, occurrence, _, pending = other
        return other_id if pending and (occurrence, other_id) < (to_db(draft.occurrence_at), draft.draft_id) else draft.draft_id


def carries(playbook: LoadedPlaybook) -> bool:
    """Whether a cap here may carry drafts over: then a pass decides everything due at once, oldest first."""
    model = playbook.model
    return any(p.capacity for p in model.personas) or bool(model.limits.nurture and any(p.account_since for p in model.personas))


def accounts(playbook: LoadedPlaybook, day: date) -> list[dict[str, Any]]:
    """Each persona account's 养号 stage and caps that day, and its capacity (`siyu status`)."""
    found = []
    for persona in playbook.model.personas:
        stage = stage_of(playbook, persona.id, day)
        caps = stage_caps(playbook, persona.id, day)
        found.append(
            {
                "persona": persona.id,
                "account": persona.account,
                "account_since": since.isoformat() if (since := account_since(playbook, persona.id)) else None,
                "age_days": account_age(playbook, persona.id, day),
                "stage": stage,
                "stage_label": STAGES.get(stage or ""),
                "caps": caps.model_dump() if caps is not None else None,
                "capacity": persona.capacity.model_dump() if persona.capacity else None,
            }
        )
    return found


DRAIN_DAYS = 60  # how far past the last day with work a backlog is followed before it is called growing


@dataclass
class DayLoad:
    """One persona's day of 1v1 work that needs a person, as the runner decides it (CapacityPlay)."""

    day: date
    fresh: int = 0  # contacts whose drafts fall due that day
    carried_in: int = 0  # contacts carried to it from earlier days (a carried draft meeting a fresh one of its beat gives way)
    fits: int = 0  # contacts written to that day
    carried: int = 0  # contacts carried on to the next day 顺延


class CapacityPlay:
    """The campaign's days played through the capacity rule from the store's contacts, before any pass: check
    warns with it (capacity-short) and preview shows a day's carry-over. Same drafts need a person, same cost by
    tier, a contact written to twice a day paid once, carried drafts first the next day."""

    def __init__(self, playbook: LoadedPlaybook, planner: Any) -> None:
        self.playbook = playbook
        self.capacities = {p.id: p.capacity for p in playbook.model.personas if p.capacity is not None}
        self.days: dict[str, dict[date, DayLoad]] = {}
        self.backlog: dict[str, int] = {}  # contacts still waiting DRAIN_DAYS after the last day with work
        if not self.capacities or planner.db is None or not planner.contacts:
            return
        caps = Caps(playbook, planner.db, planner.renderer)
        for persona, work in _work(playbook, planner, caps, set(self.capacities)).items():
            self.days[persona], self.backlog[persona] = _play(work, lambda cid, p=persona: caps.cost(p, cid), self.capacities[persona].operators)


def _play(work: dict[date, list[str]], cost: Any, operators: int) -> tuple[dict[date, DayLoad], int]:
    played: dict[date, DayLoad] = {}
    backlog: list[str] = []
    day, end = min(work), max(work)
    while day <= end + timedelta(days=DRAIN_DAYS) and (backlog or day <= end):
        fresh = work.get(day, [])
        load, paid, kept = Fraction(0), set(), []
        for contact in dict.fromkeys(backlog + fresh):
            if contact in paid:
                continue
            price = cost(contact)
            if load + price > operators:
                kept.append(contact)
                continue
            load += price
            paid.add(contact)
        played[day] = DayLoad(day, len(set(fresh)), len(set(backlog) - set(fresh)), len(paid), len(kept))
        backlog = kept
        day += timedelta(days=1)
    return played, len(backlog)


def _work(playbook: LoadedPlaybook, planner: Any, caps: Caps, personas: set[str]) -> dict[str, dict[date, list[str]]]:
    """persona → local day → the contacts it writes to that day in drafts that need a person, in due order."""
    from collections import defaultdict

    from siyu_cli._time import parse_hhmm, wall_clock
    from siyu_cli.render import assign_variant

    found: dict[str, dict[date, list[tuple[datetime, str]]]] = defaultdict(lambda: defaultdict(list))
    first = playbook.model.personas[0].id
    for beat in playbook.model.beats:
        if beat.channel != "private":
            continue
        weights = {name: variant.weight for name, variant in (beat.variants or {}).items()}
        for cohort in playbook.cohorts:
            for number in sorted(playbook.beat_days_of(cohort)[beat.id]):
                day = cohort.start + timedelta(days=number - 1)
                for clock in beat.times:
                    moment = wall_clock(day, parse_hhmm(clock), playbook.tz)
                    for person in planner.recipients(cohort, beat.id, playbook.audience(beat), at=moment):
                        persona = beat.persona or planner.own_persona(person, first)
                        variant = assign_variant(beat.id, str(person["id"]), weights) if weights else None
                        if persona in personas and caps.personal("private", beat.id, variant):
                            found[persona][day].append((moment, str(person["id"])))
    for cohort in playbook.cohorts:
        for draft in planner.journey_calendar(cohort):
            if draft.persona in personas and draft.skip is None and draft.contact_id and caps.personal(draft.channel, draft.beat, draft.variant):
                found[draft.persona][draft.occurrence_at.astimezone(playbook.tz).date()].append((draft.occurrence_at, draft.contact_id))
    return {persona: {day: [cid for _, cid in sorted(items)] for day, items in days.items()} for persona, days in found.items()}
