"""Group health 群健康: each group classed each day from the events of the days before it.

The seeds (domain.md) class groups as value 价值群 (members talk to each other), chicken-rib
鸡肋群 (muted, nobody leaves), dead 死群 (no activity; even red packets fail) and spam 广告群
(only ads). A day's class reads only the events before that day's local midnight, so a beat
filtered by health decides on what was known the evening before: no look-ahead.

No data is no evidence: until the store holds an activity signal (a message, check-in or order
counted for any group), or while a group has no event of its own, the group is unknown 未知, and a
health filter never leaves an unknown group out (WeCom gives no group messages without 会话存档,
so many stores have joins at most). `DayHealth.admits` is the one decision the runner, preview
and `report groups` share.

Signals per group over the window (playbook `group_health.window`, 7 days by default):
members (from group_joined / group_left, else the contacts of a cohort with this one group),
talkers (members with a `message_replied` in the group that is not an ad), messages (every
`message_replied` in the group, ads included, so a spam group shows what it said), ads among them,
check-ins and orders in the group (an event without a group counts for the groups its contact
was in), active members (spoke, checked in or ordered), joins and leaves.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from siyu_cli._time import from_db, to_db
from siyu_cli.playbook import LoadedPlaybook

TYPES = ("group_joined", "group_left", "message_replied", "checkin", "order")
LABELS = {"value": "价值群 value", "chicken_rib": "鸡肋群 chicken-rib", "dead": "死群 dead", "spam": "广告群 spam", "new": "新群 new", "unknown": "未知 unknown"}


@dataclass(frozen=True)
class Signals:
    """What a group's class is decided on, over the window before a day."""

    members: int = 0
    talkers: int = 0
    messages: int = 0
    ads: int = 0
    checkins: int = 0
    orders: int = 0
    active: int = 0
    joined: int = 0
    left: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DayHealth:
    group: str
    date: date
    health: str  # value | chicken_rib | dead | spam | new | unknown
    signals: Signals
    why: str

    @property
    def label(self) -> str:
        return LABELS[self.health]

    def admits(self, classes: Iterable[str] | None) -> bool:
        """Whether a beat filtered to `classes` posts here: a group nothing is known about is never left out."""
        return classes is None or self.health == "unknown" or self.health in classes

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "date": self.date.isoformat(), "health": self.health, "why": self.why, **self.signals.to_dict()}


@dataclass
class _Day:
    talkers: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    messages: int = 0
    ads: int = 0
    checkins: int = 0
    orders: int = 0
    joined: int = 0
    left: int = 0


class HealthBook:
    """Every group's daily buckets from one read of the store; `on(group, day)` classes a day from them.

    `until`: events at or after it are not read (a pass at T sees what was known at T)."""

    def __init__(self, playbook: LoadedPlaybook, db: Any, *, until: datetime | None = None) -> None:
        self.playbook = playbook
        self.rules = playbook.model.group_health
        self.tz = playbook.tz
        self.groups = [g.id for g in playbook.model.groups]
        self._days: dict[str, dict[date, _Day]] = {g: defaultdict(_Day) for g in self.groups}
        self._sizes: dict[str, list[tuple[date, int]]] = {g: [] for g in self.groups}
        self._first: dict[str, date] = {}
        self._seen: dict[str, date] = {}  # each group's first day with an event of its own
        self.measured: date | None = None  # the first day any group had activity (a message, check-in or order)
        for run in playbook.cohorts:
            for group in run.group_ids:
                self._first[group] = min(self._first.get(group, run.start), run.start)
        self._fallback: dict[str, int] = {}
        self._cache: dict[tuple[str, date], DayHealth] = {}
        if db is not None:
            self._read(db, until)

    def _read(self, db: Any, until: datetime | None) -> None:
        sql = f"SELECT type, contact_id, at, group_id, props FROM events WHERE type IN ({', '.join('?' * len(TYPES))})"
        params: list[Any] = list(TYPES)
        if until is not None:
            sql += " AND at < ?"
            params.append(to_db(until))
        members: dict[str, set[str]] = {g: set() for g in self.groups}
        joined_any: set[str] = set()  # contacts with a membership event: their groups come from those
        of_contact: dict[str, set[str]] = defaultdict(set)
        loose: list[tuple[str, str, date]] = []  # (type, contact, day) of check-ins and orders naming no group
        ad_prop, ad_values = self.rules.ads.prop, set(self.rules.ads.values)
        for kind, contact, at, group, props in db.execute(sql + " ORDER BY at, id", params):
            day = from_db(at).astimezone(self.tz).date()
            if group is None:
                if kind in ("checkin", "order"):
                    if contact in joined_any:
                        for known in of_contact[contact]:
                            self._count(known, kind, contact, day)
                    else:
                        loose.append((kind, contact, day))
                continue
            if group not in self._days:
                continue  # a group the playbook does not name
            self._first[group] = min(self._first.get(group, day), day)
            if kind in ("group_joined", "group_left"):
                joined_any.add(contact)
                bucket = self._bucket(group, day, activity=False)
                if kind == "group_joined":
                    members[group].add(contact)
                    of_contact[contact].add(group)
                    bucket.joined += 1
                else:
                    members[group].discard(contact)
                    of_contact[contact].discard(group)
                    bucket.left += 1
                sizes = self._sizes[group]
                if sizes and sizes[-1][0] == day:
                    sizes[-1] = (day, len(members[group]))
                else:
                    sizes.append((day, len(members[group])))
            elif kind == "message_replied":
                bucket = self._bucket(group, day, activity=True)
                bucket.messages += 1
                if _is_ad(props, ad_prop, ad_values):
                    bucket.ads += 1
                else:
                    bucket.talkers.add(contact)
                    bucket.active.add(contact)
            else:
                self._count(group, kind, contact, day)
        self._single_groups(db, loose, joined_any)

    def _single_groups(self, db: Any, loose: list[tuple[str, str, date]], joined_any: set[str]) -> None:
        """Contacts with no membership event are in the single group of their cohort (README, touch budget)."""
        runs = self.playbook.cohorts
        single = {run.id: run.group_ids[0] for run in runs if len(run.group_ids) == 1}
        if not single:
            return
        first = runs[0].id
        cohort_of: dict[str, str] = {}
        for contact, cohort in db.execute("SELECT contact_id, cohort FROM contacts"):
            cohort_of[contact] = cohort if cohort in {r.id for r in runs} else first
            if contact not in joined_any and cohort_of[contact] in single:
                group = single[cohort_of[contact]]
                self._fallback[group] = self._fallback.get(group, 0) + 1
        for kind, contact, day in loose:
            group = single.get(cohort_of.get(contact, first))
            if group is not None:
                self._count(group, kind, contact, day)

    def _count(self, group: str, kind: str, contact: str, day: date) -> None:
        if group not in self._days:
            return
        bucket = self._bucket(group, day, activity=True)
        if kind == "checkin":
            bucket.checkins += 1
        else:
            bucket.orders += 1
        bucket.active.add(contact)

    def _bucket(self, group: str, day: date, *, activity: bool) -> _Day:
        """The group's bucket of `day`, noting that the group (and, for activity, the store) has data from then."""
        self._seen[group] = min(self._seen.get(group, day), day)
        if activity:
            self.measured = min(self.measured or day, day)
        return self._days[group][day]

    def members_before(self, group: str, day: date) -> int:
        """Members at the start of `day`: from membership events, else the cohort's contacts."""
        sizes = self._sizes.get(group) or []
        if not sizes:
            return self._fallback.get(group, 0)
        index = bisect.bisect_left(sizes, (day, -1)) - 1
        return sizes[index][1] if index >= 0 else 0

    def signals(self, group: str, day: date) -> Signals:
        window = self.rules.window_days
        talkers: set[str] = set()
        active: set[str] = set()
        counts = dict.fromkeys(("messages", "ads", "checkins", "orders", "joined", "left"), 0)
        days = self._days.get(group, {})
        for back in range(1, window + 1):
            bucket = days.get(day - timedelta(days=back))
            if bucket is None:
                continue
            talkers |= bucket.talkers
            active |= bucket.active
            for name in counts:
                counts[name] += getattr(bucket, name)
        members = max(self.members_before(group, day), len(active))
        return Signals(members=members, talkers=len(talkers), active=len(active), **counts)

    def on(self, group: str, day: date) -> DayHealth:
        """The group's class on `day`, from the events of the window before that day's local midnight."""
        key = (group, day)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._classify(group, day)
        return found

    def series(self, group: str, first: date, last: date) -> list[DayHealth]:
        return [self.on(group, first + timedelta(days=n)) for n in range((last - first).days + 1)]

    def first_day(self, group: str) -> date | None:
        """Where the group's history starts: its cohort's day 1, or its first event when earlier."""
        return self._first.get(group)

    def _classify(self, group: str, day: date) -> DayHealth:
        rules = self.rules
        window = rules.window_days
        s = self.signals(group, day)
        since = self._first.get(group, day)
        age = (day - since).days
        if age < window:
            why = f"{age} of the {window} days of history a class needs (since {since})"
            return DayHealth(group, day, "new", s, why)
        unknown = self._unknown(group, day)
        if unknown:
            return DayHealth(group, day, "unknown", s, unknown)
        if s.messages >= rules.spam.messages and s.ads >= rules.spam.share * s.messages:
            return DayHealth(group, day, "spam", s, f"{s.ads} of {s.messages} messages were ads (≥ {rules.spam.share:.0%} of ≥ {rules.spam.messages})")
        if s.active <= rules.dead.active:
            return DayHealth(group, day, "dead", s, f"{s.active} active members in {window} days (≤ {rules.dead.active})")
        share = s.talkers / s.members if s.members else 0.0
        if s.talkers >= rules.value.talkers and share >= rules.value.share:
            why = f"{s.talkers} of {s.members} members spoke ({share:.0%}; ≥ {rules.value.talkers} and ≥ {rules.value.share:.0%})"
            return DayHealth(group, day, "value", s, why)
        why = f"{s.talkers} of {s.members} members spoke ({share:.0%}; value needs ≥ {rules.value.talkers} and ≥ {rules.value.share:.0%}), {s.left} left"
        return DayHealth(group, day, "chicken_rib", s, why)

    def _unknown(self, group: str, day: date) -> str:
        """Why nothing can be said of the group on `day` (no data is no evidence of a dead group), or nothing."""
        if self.measured is None or self.measured >= day:
            return "no group activity in the store before this day (no message, check-in or order for any group): nothing to class on"
        seen = self._seen.get(group)
        if seen is None or seen >= day:
            return "no event of this group before this day (no join, message, check-in or order): nothing to class on"
        return ""


def _is_ad(props: str | None, prop: str, values: set[str]) -> bool:
    if not props or props == "{}":
        return False
    try:
        data = json.loads(props)
    except ValueError:
        return False
    return isinstance(data, dict) and str(data.get(prop)) in values


def day_start(day: date, tz: Any) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def health_beats(playbook: LoadedPlaybook) -> Iterable[Any]:
    """The beats that filter their groups by health."""
    return [beat for beat in playbook.model.beats if beat.health is not None]
