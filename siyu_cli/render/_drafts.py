"""Drafts: occurrences expanded to each target and rendered. Shared by preview and the runner."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from siyu_cli._bulk import bulk
from siyu_cli._time import from_db, to_db
from siyu_cli.errors import TemplateFailure
from siyu_cli.journeys import JourneyBook, Run, Step, sample_run, step_due
from siyu_cli.playbook import CohortRun, LoadedPlaybook
from siyu_cli.render._context import SAMPLE_CONTACT, ContextBuilder, campaign_day, day_bounds
from siyu_cli.render._media import Media, resolve
from siyu_cli.render._render import Renderer
from siyu_cli.rules import TagRules, Timeline, apply_effective, changed_after, history, last_change, tags_at
from siyu_cli.timeline import Content, Occurrence, occurrences

if TYPE_CHECKING:
    from siyu_cli.store import Unfriended

# A partial planner (a pass's dispatch side) keeps at most this many contacts loaded.
FOCUS_KEEP = 5000
# Who deleted the account is read for up to this many contacts by id; for more, for the whole store at once.
UNFRIENDED_BY_ID = 20_000
# The reason a 1v1 draft to a contact who deleted the account is recorded with, as WeCom's fail_list is.
NOT_FRIEND = "not_friend"
STAT_EVENTS = {"checkins": "checkin", "joined": "group_joined", "orders": "order"}
V = TypeVar("V")


class _once(Generic[V]):
    """functools.cached_property without its lock (Python 3.11 takes one per first read): a draft's key, slot and id
    are read once each for every one of 100,000 recipients, by one thread."""

    def __init__(self, compute: Callable[[Any], V]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, draft: Any, owner: type | None = None) -> V:
        if draft is None:
            return self  # type: ignore[return-value]
        value = draft.__dict__[self.name] = self.compute(draft)
        return value


@dataclass
class Draft:
    """One message for one target at one time. Its key is unique in the ledger."""

    playbook_id: str
    cohort: str
    beat: str
    beat_title: str
    occurrence_at: datetime
    day: int
    date: date
    channel: str
    persona: str
    persona_name: str
    account: str | None
    target: str
    target_label: str
    category: str | None = None
    variant: str | None = None
    holdout: bool = False
    sample: bool = False
    contact_id: str | None = None
    group_id: str | None = None
    entry: str | None = None  # journey and welcome steps: the entering event that keys the run
    position: int = 0  # a beat's: which of its `at` times
    skip: str | None = None  # decided before any guardrail: group_health:<class> for a group its beat's health filter leaves out, not_friend
    skip_why: str | None = None
    attachments: tuple[Media, ...] = ()
    text: str | None = None
    error: TemplateFailure | None = None
    content: Content | None = field(default=None, repr=False)
    context: dict[str, Any] | None = field(default=None, repr=False)

    @_once
    def key(self) -> tuple[str, str, str, str, str]:
        """(playbook, cohort, beat, occurrence time as the ledger writes it, target).

        A journey step's "occurrence" is its run's entering event: two runs of one contact
        (two orders the same day) may have a step due at the same minute, and the ledger's unique
        key must tell them apart. The step's own time is its due_at.
        """
        if self.channel == "journey" and self.entry is not None:
            return (self.playbook_id, self.cohort, self.beat, self.entry.partition("@")[2], self.target)
        return (self.playbook_id, self.cohort, self.beat, _db_time(self.occurrence_at), self.target)

    @_once
    def slot(self) -> str:
        """What the draft is, whatever its clock time: a beat's (cohort, beat, day, position in `at`, target); a journey
        step's run (journey step, entering event, contact); a welcome step's (step, contact), sent once per contact.
        The ledger holds one draft per slot, so a moved time re-times a draft instead of sending it again."""
        if self.channel == "journey" and self.entry is not None:
            run = "first" if self.entry.startswith("first@") else self.entry
            return "\x1f".join(("journey", self.beat, run, self.target))
        if self.channel == "welcome":
            return "\x1f".join(("welcome", self.beat, self.target))
        return "\x1f".join(("beat", self.cohort, self.beat, str(self.day), str(self.position), self.target))

    @_once
    def draft_id(self) -> str:
        """A journey step is keyed by its run (journey, step, entering event, contact), not by its clock time,
        so a step whose `after` is edited is not sent again. Welcome steps keep the key they always had."""
        if self.channel == "journey" and self.entry is not None:
            run = "first" if self.entry.startswith("first@") else self.entry
            return draft_id((self.playbook_id, "journey", self.beat, run, self.target))
        return draft_id(self.key)


_DB_TIMES: dict[tuple[datetime, Any, int], str] = {}


def _db_time(moment: datetime) -> str:
    """`to_db`, once per distinct time: an audience of thousands shares one (keyed with the zone and fold equality ignores)."""
    key = (moment, moment.tzinfo, moment.fold)
    found = _DB_TIMES.get(key)
    if found is None:
        if len(_DB_TIMES) >= 4096:
            _DB_TIMES.clear()
        found = _DB_TIMES[key] = to_db(moment)
    return found


def _draft_order(draft: Draft) -> tuple[datetime, str, str]:
    return (draft.occurrence_at, draft.beat, draft.target)


def _contact_id(contact: Mapping[str, Any]) -> str:
    return str(contact["id"])


def draft_id(key: Sequence[str]) -> str:
    return hashlib.sha1("\x1f".join(key).encode("utf-8")).hexdigest()[:12]


def assign_variant(beat_id: str, contact_id: str, weights: Mapping[str, float]) -> str:
    """Stable across runs and machines: a hash of (beat, contact) picks a point on the weights."""
    digest = hashlib.sha256(f"{beat_id}\x1f{contact_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights.values())
    running = 0.0
    for name, weight in weights.items():
        running += weight
        if point < running:
            return name
    return next(reversed(list(weights)))


def contact_label(person: Mapping[str, Any]) -> str:
    """How a draft names its contact for staff: `王小美 (wm123)`, or `wm123 (no name)`, never the id twice."""
    return f"{person['name']} ({person['id']})" if person.get("name") else f"{person['id']} (no name)"


class Planner:
    """Expands a playbook into drafts; renders only the drafts asked for.

    Contacts come with their own tags; the first read of an audience or a journey replays their
    events once (up to `as_of`) into effective tags and journey runs.
    """

    def __init__(
        self,
        playbook: LoadedPlaybook,
        *,
        contacts: Sequence[Mapping[str, Any]] = (),
        db: Any = None,
        as_of: datetime | None = None,
        sample_contact: bool = False,
        tags_cached: bool = False,
        partial: bool = False,
    ) -> None:
        self.playbook = playbook
        self.renderer = Renderer(playbook)
        self.contexts = ContextBuilder(playbook)
        self.contacts = list(contacts)  # prepare() writes effective tags into these dicts: callers hand over fresh ones
        self.db = db
        self.as_of = as_of
        self.sample_contact = sample_contact and not self.contacts
        self._stats_cache: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
        self._shared: dict[tuple[Any, ...], str] = {}  # texts that read no contact, by occurrence (render)
        self._audiences: dict[str, list[Mapping[str, Any]]] = {}
        model = playbook.model
        self.tag_rules = TagRules.of(model)
        self.book = JourneyBook(playbook, self.tag_rules)
        self.runs: dict[str, list[Run]] = {}
        self.timelines: dict[str, Timeline] = {}
        self._late: dict[str, set[str]] = {}  # moment → contacts whose tags changed after it
        # The contacts came with the tag cache's effective tags (siyu_cli.rules.refresh): only
        # contacts with events after `as_of`, or after an earlier moment asked about, are recomputed.
        # The caller loaded the cache's tags for beats only; journey runs are then never asked of this planner.
        self.tags_cached = tags_cached and db is not None
        # Only some contacts were loaded (what came due, what changed): their events are read by id.
        self.partial = partial
        self._past: dict[str, dict[str, tuple[list[str], str | None]]] = {}
        self._prepared = False
        self.persona_names = {p.id: p.name for p in model.personas}
        self.accounts = {p.id: p.account for p in model.personas}
        self.staff = self.book.staff  # persona → the names its staff member goes by, whose adds and deletes count for its 1v1
        self.account_personas = self.book.account_personas  # the account a contact added → its persona
        self.group_names = {g.id: g.name for g in model.groups}
        self.by_id: dict[str, Any] = {str(c["id"]): c for c in self.contacts}
        self._health: Any = None
        self._media: dict[int, tuple[Any, tuple[Media, ...]]] = {}
        self._unfriended: Unfriended | None = None  # who deleted the account, as of `as_of`
        self._unfriended_ids: set[str] | None = set()  # the contacts it was read for; None: the whole store

    def prepare(self) -> None:
        """Effective tags and journey runs for every contact: one sorted scan of the events that matter.
        """
        if self._prepared:
            return
        self._prepared = True
        with bulk():
            self._prepare()

    def _prepare(self) -> None:
        self._prepare_some(self.contacts, list(self.by_id) if self.partial else None)

    def _prepare_some(self, contacts: list[dict[str, Any]], ids: Sequence[str] | None) -> None:
        """Effective tags (and journey runs) of these contacts; `ids`: read only their events."""
        if not contacts or self.tags_cached:
            return  # with cached tags, load_contacts read them from the cache as of `as_of`
        if not self.book.routes:
            if self.db is not None:
                apply_effective(self.db, self.tag_rules, contacts, as_of=self.as_of, timelines=self.timelines, contact_ids=ids)
            return
        by_id = {str(c["id"]): c for c in contacts}
        seen: set[str] = set()
        shared: dict[tuple[str, ...], list[str]] = {}
        found = history(self.db, self.book.types, as_of=self.as_of, contact_ids=ids) if self.db is not None else iter(())
        for cid, events in found:
            contact = by_id.get(cid)
            if contact is not None:
                seen.add(cid)
                self._replay(contact, events, shared)
        for cid, contact in by_id.items():
            if cid not in seen and contact.get("added_at") is not None:
                self._replay(contact, [], shared)

    def focus(self, ids: Collection[str]) -> None:
        """Load these contacts (a claim batch's) into a partial planner, their events replayed by id.

        Past a few batches' worth the earlier ones are forgotten, so a pass of 100,000 drafts holds
        one batch of contacts at a time, not the audience.
        """
        missing = sorted({str(cid) for cid in ids} - self.by_id.keys())
        if not missing:
            return
        from siyu_cli.ingest import load_contacts

        if len(self.by_id) + len(missing) > FOCUS_KEEP:
            self.contacts, self.by_id, self.runs, self.timelines = [], {}, {}, {}
            self._unfriended, self._unfriended_ids = None, set()
        fresh = load_contacts(self.db, as_of=self.as_of, ids=missing)
        with bulk():
            self._prepare_some(fresh, missing)
        self.contacts.extend(fresh)
        self.by_id.update((str(c["id"]), c) for c in fresh)
        self._audiences.clear()
        self._late.clear()
        self._past.clear()
        self._prepared = True

    def contact_name(self, cid: str) -> str:
        contact = self.by_id.get(cid)
        return str(contact.get("name") or cid) if contact is not None else cid

    def _before(self, moment: datetime) -> dict[str, tuple[list[str], str | None]]:
        """With cached tags: the tags, at `moment`, of the contacts whose tags may have changed since."""
        stamp = _db_time(moment)
        found = self._past.get(stamp)
        if found is None:
            if len(self._past) > 64:
                self._past.clear()
            found = self._past[stamp] = changed_after(self.db, self.tag_rules, moment, until=self.as_of, as_of=moment)
        return found

    def _changed_after(self, moment: datetime) -> set[str]:
        """Contacts whose tags changed after `moment`: the only ones an earlier moment may see otherwise."""
        if self.tags_cached:
            return set(self._before(moment))
        stamp = _db_time(moment)
        found = self._late.get(stamp)
        if found is None:
            if len(self._late) > 256:
                self._late.clear()
            found = self._late[stamp] = {cid for cid, timeline in self.timelines.items() if last_change(timeline) > stamp}
        return found

    def tags_at(self, person: Mapping[str, Any], moment: datetime) -> Sequence[str]:
        """The contact's effective tags at `moment`: an audience is tested against the tags it had when the draft was due."""
        if self.as_of is not None and moment >= self.as_of:
            return person.get("tags") or ()
        if self.tags_cached:
            hit = self._before(moment).get(str(person["id"]))
            return hit[0] if hit is not None else (person.get("tags") or ())
        return tags_at(person, self.timelines.get(str(person["id"])), _db_time(moment))

    def _replay(self, contact: dict[str, Any], events: Sequence[Any], shared: dict[tuple[str, ...], list[str]]) -> None:
        path = self.book.replay(contact, events, as_of=self.as_of)
        key = tuple(path.state.tags)
        tags = shared.get(key)
        if tags is None:
            tags = shared[key] = list(key)
        contact["tags"] = tags
        contact["source"] = path.state.source
        if path.runs:
            self.runs[str(contact["id"])] = path.runs
        if path.timeline:
            self.timelines[str(contact["id"])] = path.timeline

    def unfriended(self, people: Sequence[Mapping[str, Any]]) -> Unfriended:
        """Who of these contacts deleted the account, read once: by id for a few, for the whole store when many
        are asked about (an audience of 100,000 costs one read of the store's deletes)."""
        from siyu_cli.store import Unfriended, unfriended

        found = self._unfriended
        if found is None:
            found = self._unfriended = Unfriended()
        known = self._unfriended_ids
        if self.db is None or self.sample_contact or known is None:
            return found
        if len(people) + len(known) > UNFRIENDED_BY_ID:
            self._unfriended, self._unfriended_ids = unfriended(self.db, as_of=self.as_of), None
            return self._unfriended
        missing = [cid for cid in (str(person["id"]) for person in people) if cid not in known]
        if missing:
            found.update(unfriended(self.db, as_of=self.as_of, ids=missing))
            known.update(missing)
        return found

    def not_friend(self, person: Mapping[str, Any], moment: datetime | None = None, persona: str | None = None) -> str | None:
        """When the contact deleted the account (friend_deleted), if that is its latest add or delete at `moment`
        (default: as of the planner's moment), else None: a 1v1 cannot reach a contact who is gone, until a re-add.
        `persona`: the sender, whose staff member's own adds and deletes count (WeCom's are per staff member)."""
        stamp = _db_time(moment) if moment is not None else None
        return self.unfriended([person]).deleted_at(str(person["id"]), stamp, self.staff.get(persona or "", ()))

    def recipients(self, run: CohortRun, beat_id: str, expr: Any, at: datetime | None = None) -> list[Mapping[str, Any]]:
        """The audience (tags as of `at`, default the planner's moment) without the contacts who deleted the account by
        then: who a private beat's drafts reach, as check's and the timeline's counts ask (the runner records the others
        not_friend). A moment after the planner's counts the deletes known by the planner's."""
        found = self.audience(run, beat_id, expr, at=at)
        named = next((beat.persona for beat in self.playbook.model.beats if beat.id == beat_id), None)
        if named is not None:
            strangers = self.strangers(named, found, at)
            found = [person for person in found if str(person["id"]) not in strangers] if strangers else found
        gone = self.unfriended(found)
        if not gone.log:
            return found
        stamp = _db_time(at) if at is not None and (self.as_of is None or at < self.as_of) else None

        def staff(person: Mapping[str, Any]) -> Collection[str]:
            return self.staff.get(named or self.own_persona(person, self.book.first), ())

        return [person for person in found if gone.deleted_at(str(person["id"]), stamp, staff(person)) is None]

    def strangers(self, persona: str, people: Sequence[Mapping[str, Any]], at: datetime | None = None) -> dict[str, str | None]:
        """Contacts who added another persona's account and not this persona's by `at` (default: ever): contact id →
        why, or None when they add this persona later (not in an occurrence before that add, as added_at rules). A beat
        that names its persona cannot reach them (WeCom hands them back in fail_list; a person has no chat with them).
        Known from the contact's `account` (添加人账号) being another persona's and none of this one's names (personas
        may share an account), unless an add names this persona's staff member (a 客户列表 export lists a customer once
        per staff member they added). Any other contact counts as a friend: an account no persona has says nothing."""
        if len(self.playbook.model.personas) < 2:
            return {}  # one persona: no other account to have added (most playbooks; this runs per occurrence)
        own = set(self.staff.get(persona, ()))
        others: dict[str, str] = {}
        for person in people:
            account = str(person.get("account") or "")
            theirs = self.account_personas.get(account, persona)
            # Personas may share an account or a staff member (wecom_userid): one person's customers are both's.
            if account and account not in own and theirs != persona and not own & set(self.staff.get(theirs, ())):
                others[str(person["id"])] = account
        if not others or self.sample_contact:
            return {}
        later: dict[str, None] = {}
        if self.db is not None and own:
            wanted = sorted(others)
            stamp = _db_time(at) if at is not None else None
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self.db.execute(
                    f"SELECT contact_id, MIN(at) FROM events WHERE type = 'friend_added' AND contact_id IN ({', '.join('?' * len(chunk))}) "
                    f"AND COALESCE(json_extract(props, '$.userid'), json_extract(props, '$.account')) IN ({', '.join('?' * len(own))}) GROUP BY contact_id",
                    [*chunk, *sorted(own)],
                )
                for cid, first in rows:
                    others.pop(cid, None)
                    if stamp is not None and first > stamp:
                        later[cid] = None
        found: dict[str, str | None] = {
            cid: f"added {account} (persona {self.account_personas[account]}), never persona {persona}'s account: a 1v1 from {persona} cannot reach them"
            for cid, account in others.items()
        }
        found.update(later)
        return found

    def _gone(self, draft: Draft, gone: Unfriended, cid: str, stamp: str) -> None:
        """Mark a 1v1 draft to a contact who deleted the account by `stamp` as skipped: not_friend, with when; only the
        sender's own staff member's adds and deletes count, and those that name none (an import's 删微)."""
        deleted = gone.deleted_at(cid, stamp, self.staff.get(draft.persona or "", ()))
        if deleted is not None:
            when = from_db(deleted).astimezone(self.playbook.tz)
            draft.skip, draft.skip_why = NOT_FRIEND, f"deleted the account at {when:%Y-%m-%d %H:%M} (friend_deleted)"

    def own_persona(self, contact: Mapping[str, Any], default: str) -> str:
        """The persona of the account the contact added (its account or WeCom userid), else `default`: who sends a
        private beat that names no persona (check's counts ask the same)."""
        return self.account_personas.get(str(contact.get("account") or ""), default)

    def cohort_of(self, contact: Mapping[str, Any]) -> str:
        """A contact's cohort: its own field, else the first cohort."""
        ids = [c.id for c in self.playbook.cohorts]
        own = contact.get("cohort")
        return own if own in ids else ids[0]

    def drafts(
        self,
        *,
        cohort: str | None = None,
        days: set[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        contact: str | None = None,
        beats: bool = True,
        journeys: bool = True,
    ) -> Iterator[Draft]:
        """Unrendered drafts in time order per cohort, beats and welcome sequences together (or either alone)."""
        for run in self.playbook.cohorts:
            if cohort is not None and run.id != cohort:
                continue
            # Streamed: beats come in (time, beat, target) order already (see _beat_drafts), journey steps are merged in.
            steps = sorted(self._journey_drafts(run, days, since, until, contact), key=_draft_order) if journeys else []
            found = self._beat_drafts(run, days, since, until, contact) if beats else iter(())
            yield from heapq.merge(found, steps, key=_draft_order)

    def moments(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[datetime]:
        """When drafts fall due, without expanding beats per contact (the runner only needs the times)."""
        for run in self.playbook.cohorts:
            for occ in occurrences(self.playbook, run, self.renderer.search):
                if self._window(occ.at, since, until):
                    yield occ.at
            for draft in self._journey_drafts(run, None, since, until, None):
                yield draft.occurrence_at

    def _window(self, at: datetime, since: datetime | None, until: datetime | None) -> bool:
        return (since is None or at >= since) and (until is None or at <= until)

    def _beat_drafts(
        self, run: CohortRun, days: set[int] | None, since: datetime | None, until: datetime | None, contact: str | None
    ) -> Iterator[Draft]:
        # In (time, beat, target) order without holding any draft: occurrences of one moment by beat and target,
        # and an audience in contact order ("contact:" + id sorts as the id does).
        found = occurrences(self.playbook, run, self.renderer.search, days=days)
        for occ in sorted(found, key=lambda o: (o.at, o.beat.id, o.target)):
            if not self._window(occ.at, since, until):
                continue
            if occ.target_kind == "audience":
                yield from self._private(run, occ, contact)
            elif contact is None:
                label = self.group_names.get(occ.target_id, occ.target_id) if occ.target_kind == "group" else f"朋友圈 Moments · {self.persona_names.get(occ.persona, occ.persona)}"
                if occ.channel == "live":
                    label = f"直播 live · {self.persona_names.get(occ.persona, occ.persona)}"
                draft = self._draft(run, occ, target=occ.target, label=label, content=occ.content)
                found_health = self.group_health(occ)
                if found_health is not None and not found_health.admits(occ.beat.health):
                    draft.skip, draft.skip_why = f"group_health:{found_health.health}", found_health.why
                yield draft

    def group_health(self, occ: Occurrence) -> Any:
        """The health (siyu_cli.health DayHealth) of the occurrence's group on its day, when its beat filters by health."""
        if occ.target_kind != "group" or occ.beat.health is None:
            return None
        if self._health is None:
            from siyu_cli.health import HealthBook

            self._health = HealthBook(self.playbook, self.db, until=self.as_of)
        return self._health.on(occ.target_id, occ.date)

    def media(self, attachments: Sequence[Any]) -> tuple[Media, ...]:
        """A beat's, step's or pool entry's attachments with their files found like templates (once per list)."""
        if not attachments:
            return ()
        key = id(attachments)
        found = self._media.get(key)
        if found is None:
            found = self._media[key] = (attachments, resolve(attachments, self.renderer.search))
        return found[1]

    def audience(self, run: CohortRun, beat_id: str, expr: Any, at: datetime | None = None) -> list[Mapping[str, Any]]:
        """The cohort's contacts the expression matches, with their tags as of `at` (default: now).

        The match on current tags is made once per beat; for a past moment only the contacts whose
        tags changed after it are tested again. At a moment, a contact added after it (`added_at`, the first add
        an import or a callback recorded) is not in it: a 1v1 of a day before the add was never theirs.
        """
        found = self._matched(run, beat_id, expr, at)
        if at is None or self.sample_contact:
            return found
        return [c for c in found if c.get("added_at") is None or c["added_at"] <= at]

    def _matched(self, run: CohortRun, beat_id: str, expr: Any, at: datetime | None) -> list[Mapping[str, Any]]:
        key = f"{run.id}\x1f{beat_id}"
        if key not in self._audiences:
            self.prepare()
            if self.sample_contact:
                self._audiences[key] = [SAMPLE_CONTACT]
            else:
                matched = [c for c in self.contacts if self.cohort_of(c) == run.id and expr.matches(c.get("tags") or ())]
                self._audiences[key] = sorted(matched, key=_contact_id)  # already in id order from the store: linear
        found = self._audiences[key]
        if at is None or self.sample_contact or (self.as_of is not None and at >= self.as_of) or not (self.timelines or self.tags_cached):
            return found
        changed = self._changed_after(at)
        if not changed:
            return found
        kept = [c for c in found if str(c["id"]) not in changed]
        for person in self.contacts:
            cid = str(person["id"])
            if cid in changed and self.cohort_of(person) == run.id and expr.matches(self.tags_at(person, at)):
                kept.append(person)
        kept.sort(key=_contact_id)
        return kept

    def _private(self, run: CohortRun, occ: Occurrence, only: str | None) -> Iterator[Draft]:
        """A beat that names no persona goes to each contact from the account the contact added (the persona of that
        account or WeCom userid), else from the first persona: a 1v1 can only come from an account the contact is a friend of."""
        beat = occ.beat
        expr = self.playbook.audience(beat)
        weights = {name: variant.weight for name, variant in (beat.variants or {}).items()}
        senders = {occ.persona: occ}
        people = self.audience(run, beat.id, expr, at=occ.at)
        gone = self.unfriended(people)
        stamp = _db_time(occ.at)
        strangers = self.strangers(beat.persona, [p for p in people if only is None or p["id"] == only], occ.at) if beat.persona is not None else {}
        for person in people:
            if only is not None and person["id"] != only:
                continue
            if strangers.get(str(person["id"]), "") is None:
                continue  # adds this persona's account after the occurrence: it was never theirs
            if beat.persona is None:
                own = self.own_persona(person, occ.persona)
                sender = senders.get(own) or senders.setdefault(own, replace(occ, persona=own))
            else:
                sender = occ
            content, variant, holdout = sender.content, None, False
            if weights:
                variant = assign_variant(beat.id, str(person["id"]), weights)
                chosen = (beat.variants or {})[variant]
                holdout = chosen.template is None and chosen.text is None
                content = None if holdout else Content(chosen.template, chosen.text, f"<inline beats.{beat.id}.variants.{variant}.text>")
            draft = self._draft(
                run, sender, target=f"contact:{person['id']}", label=contact_label(person), content=content
            )
            draft.variant, draft.holdout, draft.contact_id = variant, holdout, str(person["id"])
            draft.sample = bool(person.get("sample"))
            draft.context = {"occurrence": sender, "contact": person}
            if gone.log:
                self._gone(draft, gone, draft.contact_id, stamp)
            why = strangers.get(draft.contact_id or "")
            if why is not None:
                draft.skip, draft.skip_why = NOT_FRIEND, why
            yield draft

    def _draft(self, run: CohortRun, occ: Occurrence, *, target: str, label: str, content: Content | None) -> Draft:
        return Draft(
            playbook_id=self.playbook.id,
            cohort=run.id,
            beat=occ.beat.id,
            beat_title=occ.beat.title or occ.beat.id,
            occurrence_at=occ.at,
            day=occ.day,
            date=occ.date,
            channel=occ.channel,
            persona=occ.persona,
            persona_name=self.persona_names.get(occ.persona, occ.persona),
            account=self.accounts.get(occ.persona),
            target=target,
            target_label=label,
            category=occ.category,
            group_id=occ.target_id if occ.target_kind == "group" else None,
            position=occ.position,
            attachments=self.media(content.attachments if content is not None and content.attachments is not None else occ.beat.attachments),
            content=content,
            context={"occurrence": occ},
        )

    def _journey_drafts(
        self, cohort: CohortRun, days: set[int] | None, since: datetime | None, until: datetime | None, only: str | None
    ) -> Iterator[Draft]:
        """Steps of journeys and welcome sequences, per run, due in the window; none after the run's exit."""
        if not self.book.routes:
            return
        if self.sample_contact:
            if days is not None:
                yield from self._sample_journey_drafts(cohort, days)
            return
        self.prepare()
        tz = self.playbook.tz
        gone = self.unfriended([self.by_id[cid] for cid in self.runs if cid in self.by_id])
        for person in self.contacts:
            cid = str(person["id"])
            runs = self.runs.get(cid)
            if not runs or (only is not None and cid != only) or self.cohort_of(person) != cohort.id:
                continue
            for run in runs:
                route = run.route
                persona = self.book.persona_of(run, person)
                for step in route.steps:
                    due = step_due(run.entered_at, step, tz)
                    if run.exited_by(due) or not self._window(due, since, until):
                        continue
                    if route.audience is not None and not route.audience.matches(self.tags_at(person, due)):
                        continue
                    day = campaign_day(cohort, due.date())
                    if days is not None and day not in days:
                        continue
                    draft = self._step_draft(cohort, run, step, person, persona, due, day)
                    if gone.log:
                        # A run entered while the contact was gone (an order after the delete): a delete during a run ends it.
                        self._gone(draft, gone, cid, _db_time(due))
                    yield draft

    def _step_draft(self, cohort: CohortRun, run: Run, step: Step, person: Mapping[str, Any], persona: str, due: datetime, day: int) -> Draft:
        route = run.route
        cid = str(person["id"])
        content: Content | None = Content(step.template, step.text, step.label)
        variant, holdout = None, False
        if step.variants:
            weights = {name: v.weight for name, v in step.variants.items()}
            variant = assign_variant(route.beat_id(step), cid, weights)
            chosen = step.variants[variant]
            holdout = chosen.template is None and chosen.text is None
            content = None if holdout else Content(chosen.template, chosen.text, f"<inline journeys.{route.id}.steps.{step.id}.variants.{variant}.text>")
        title = route.title if route.kind == "welcome" else f"旅程 journey · {route.title}"
        return Draft(
            playbook_id=self.playbook.id,
            cohort=cohort.id,
            beat=route.beat_id(step),
            beat_title=f"{title} · {step.id if route.kind == 'journey' else step.index + 1}",
            occurrence_at=due,
            day=day,
            date=due.date(),
            channel=route.kind,
            persona=persona,
            persona_name=self.persona_names.get(persona, persona),
            account=self.accounts.get(persona),
            target=f"contact:{cid}",
            target_label=contact_label(person),
            variant=variant,
            holdout=holdout,
            sample=bool(person.get("sample")),
            contact_id=cid,
            entry=run.entry_key,
            attachments=self.media(step.attachments),
            content=content,
            context={"run": run, "step": step, "contact": person},
        )

    def journey_calendar(self, cohort: CohortRun) -> Iterator[Draft]:
        """Every journey and welcome step of the cohort's contacts; with none, a sample contact per route entering on day 1 at 10:00."""
        if not self.sample_contact:
            yield from self._journey_drafts(cohort, None, None, None, None)
            return
        tz = self.playbook.tz
        for route in self.book.routes:
            entry_step = Step("entry", 0, timedelta(0), None, None, None, None, "")
            run, person = sample_run(self.playbook, self.book, route, entry_step, cohort, 1)
            for step in route.steps:
                due = step_due(run.entered_at, step, tz)
                persona = self.book.persona_of(run, person)
                yield self._step_draft(cohort, run, step, person, persona, due, campaign_day(cohort, due.date()))

    def _sample_journey_drafts(self, cohort: CohortRun, days: set[int]) -> Iterator[Draft]:
        """With no contacts: for each step, a sample contact who entered so that the step falls on the day asked for."""
        tz = self.playbook.tz
        for route in self.book.routes:
            for step in route.steps:
                for day in sorted(days):
                    run, person = sample_run(self.playbook, self.book, route, step, cohort, day)
                    due = step_due(run.entered_at, step, tz)
                    persona = self.book.persona_of(run, person)
                    yield self._step_draft(cohort, run, step, person, persona, due, campaign_day(cohort, due.date()))

    def exited(self, beat: str, target: str, entry: str, now: datetime) -> bool:
        """At dispatch: has the run this step belongs to ended by `now` (an exit event or segment, or a delete)?"""
        found = self.book.by_beat.get(beat)
        if found is None:
            return False
        self.prepare()
        route = found[0]
        cid = target.partition(":")[2]
        wanted = "first" if entry.startswith("first@") or route.kind == "welcome" else entry
        for run in self.runs.get(cid, ()):
            if run.route is route and run.run_key == wanted:
                return run.exited_by(now)
        return False

    def step_title(self, beat: str) -> str:
        """A journey or welcome step's title for people, from its ledger beat id."""
        found = self.book.by_beat.get(beat)
        if found is None:
            return beat
        route, step = found
        if route.kind == "welcome":
            return f"{route.title} · {step.index + 1}"
        return f"旅程 journey · {route.title} · {step.id}"

    def variants_of(self, draft: Draft) -> list[str]:
        """The variant names of the draft's beat or journey step (none for plain content)."""
        found = self.book.by_beat.get(draft.beat)
        if found is not None:
            return list(found[1].variants or {})
        beat = next((b for b in self.playbook.model.beats if b.id == draft.beat), None)
        return list(beat.variants or {}) if beat is not None and draft.channel == "private" else []

    def as_contact(self, draft: Draft, contact_id: str, variant: str | None = None) -> Draft:
        """The unrendered draft for another contact id, as `variant` of its beat or step when given.

        Preview uses it to give every sample its own contact (no shared daily budget) and to show
        every variant of an A/B beat, not only the one the contact's hash picks."""
        context = dict(draft.context or {})
        person = dict(context.get("contact") or {})
        person["id"] = contact_id
        context["contact"] = person
        changes: dict[str, Any] = {"contact_id": contact_id, "target": f"contact:{contact_id}", "context": context, "text": None, "error": None}
        changes["target_label"] = contact_label(person)
        if variant is not None:
            found = self.book.by_beat.get(draft.beat)
            if found is not None:
                chosen = (found[1].variants or {})[variant]
                label = f"<inline journeys.{found[0].id}.steps.{found[1].id}.variants.{variant}.text>"
            else:
                beat = next(b for b in self.playbook.model.beats if b.id == draft.beat)
                chosen, label = (beat.variants or {})[variant], f"<inline beats.{beat.id}.variants.{variant}.text>"
            holdout = chosen.template is None and chosen.text is None
            changes.update(variant=variant, holdout=holdout, content=None if holdout else Content(chosen.template, chosen.text, label))
        return replace(draft, **changes)

    def render(self, draft: Draft, *, stats: Mapping[str, Any] | None = None) -> Draft:
        """Fill `text`, or `error` when the template fails. Holdouts get no text.

        `stats` replaces what the store would say (check renders with sample stats too).
        """
        if draft.holdout or draft.text is not None or draft.error is not None:
            return draft
        run = self.playbook.cohort(draft.cohort)
        extra = draft.context or {}
        try:
            if draft.content is None:
                raise TemplateFailure("no content for this post (its day is in no mix range, or its pool is empty)", template=f"beats.{draft.beat}", beat=draft.beat)
            if "run" in extra:
                context = self.contexts.for_step(extra["run"], extra["step"], draft.persona, extra["contact"], run, draft.day, draft.occurrence_at)
                if stats is None and self.renderer.needs_stats(draft.content):
                    stats = self._stats(draft, run)
                if stats is not None:
                    context["stats"] = stats
            else:
                occ: Occurrence = extra["occurrence"]
                shared = None
                if stats is None and extra.get("contact") is not None and not self.renderer.reads_contact(draft.content.template, draft.content.text):
                    # The same text for every contact of this occurrence (a mass send): rendered once. Only `contact`
                    # differs between their contexts (RenderContexts.for_occurrence).
                    shared = (draft.content.template, draft.content.text, draft.cohort, draft.beat, draft.occurrence_at, draft.persona, draft.group_id)
                    found = self._shared.get(shared)
                    if found is not None:
                        draft.text = found
                        return draft
                if stats is None and self.renderer.needs_stats(draft.content):
                    stats = self._stats(draft, run)
                context = self.contexts.for_occurrence(occ, run, contact=extra.get("contact"), stats=stats)
                if shared is not None:
                    if len(self._shared) >= 4096:
                        self._shared.clear()
                    draft.text = self._shared[shared] = self.renderer.render(draft.content, context, beat=draft.beat)
                    return draft
            draft.text = self.renderer.render(draft.content, context, beat=draft.beat)
        except TemplateFailure as exc:
            draft.error = exc
        return draft

    def _stats(self, draft: Draft, run: CohortRun) -> dict[str, list[Any]]:
        key = (draft.date, draft.group_id, run.id)
        if key in self._stats_cache:
            return self._stats_cache[key]
        stats: dict[str, list[Any]] = {name: [] for name in STAT_EVENTS}
        stats.update({name + "_yesterday": [] for name in STAT_EVENTS})
        if self.db is not None:
            from siyu_cli.store import contacts_with_event

            cohort = run.id if self.playbook.model.cohorts else None
            for offset, suffix in ((0, ""), (1, "_yesterday")):
                start, end = day_bounds(draft.date - timedelta(days=offset), self.playbook.tz)
                if self.as_of is not None and self.as_of < end:
                    # No look-ahead: a pass at T counts the day's events at or before T (the store keeps whole seconds).
                    end = max(self.as_of.replace(microsecond=0) + timedelta(seconds=1), start)
                for name, event in STAT_EVENTS.items():
                    stats[name + suffix] = contacts_with_event(self.db, event, start, end, group=draft.group_id, cohort=cohort)
        self._stats_cache[key] = stats
        return stats
