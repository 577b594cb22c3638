"""Journeys compiled once: who enters, when each step is due, and what ends a run.

Hooks' welcome sequences are journeys too (entered by the first add through the hook), so one
engine decides entries, exits and step times for both. A contact's events are replayed in time
order with its effective tags, and each run remembers the first moment an exit held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from siyu_cli._time import from_db, parse_duration, parse_hhmm, to_db, wall_clock
from siyu_cli.playbook import ExitCondition, Hook, LoadedPlaybook, TagExpr, Variant, parse_tags
from siyu_cli.rules import EventRow, TagRules, TagState, Timeline

# A contact who deleted the account cannot be reached: every run ends there (playbook-spec is silent; an operator expects it).
DELETED = "friend_deleted"
IMPLIED_ADD = "added_at"


@dataclass(frozen=True)
class Step:
    """One step of a route: its delay, its time of day, and its content (or variants)."""

    id: str
    index: int
    after: timedelta
    at: time | None
    template: str | None
    text: str | None
    variants: Mapping[str, Variant] | None
    label: str  # for inline-text error messages
    attachments: tuple[Any, ...] = ()  # the step's (playbook Attachment), sent with its text


@dataclass(frozen=True)
class Route:
    """A journey, or a hook's welcome sequence, ready to replay events against."""

    id: str  # the journey id, or "welcome:<hook id>"
    kind: str  # journey | welcome
    title: str
    enter_type: str
    enter_hook: str | None  # a hook id
    enter_nth: int | None
    repeat: bool
    audience: TagExpr | None
    exit_events: tuple[tuple[str, str | None], ...]
    exit_segments: tuple[tuple[str, TagExpr], ...]
    persona: str | None
    steps: tuple[Step, ...]
    hook: Hook | None = None  # the hook a welcome sequence belongs to
    path: tuple[str | int, ...] = ()

    def beat_id(self, step: Step) -> str:
        """The ledger's beat column: `journey:<id>:<step>`, and welcome steps as they always were."""
        if self.kind == "welcome":
            return f"welcome:{self.hook.id if self.hook else ''}:{step.index + 1}"
        return f"journey:{self.id}:{step.id}"


@dataclass
class Run:
    """One contact's pass through a route, keyed by its entering event."""

    route: Route
    contact_id: str
    entry: EventRow
    entered_at: datetime  # UTC
    hook: Hook | None
    exit_at: datetime | None = None
    exit_reason: str | None = None
    same_moment: int = 0  # earlier entering events of this contact at the very same second

    @property
    def entry_key(self) -> str:
        """What keys the run in the ledger.

        A journey a contact runs once is keyed `first@<time>`, and only `first` counts: an earlier add
        that arrives later (an export a minute off the live add) moves the run, never starts a second.
        A repeat run is keyed by its entering event's type and time, not its id (a re-import may
        change the id), with `#n` for the nth other entering event in the same second.
        """
        if not self.route.repeat:
            return f"first@{self.entry[2]}"
        suffix = f"#{self.same_moment}" if self.same_moment else ""
        return f"{self.entry[1]}@{self.entry[2]}{suffix}"

    @property
    def run_key(self) -> str:
        """The part of `entry_key` that identifies the run whatever its time: `first` for once-only journeys."""
        return "first" if not self.route.repeat else self.entry_key

    def exited_by(self, moment: datetime) -> bool:
        return self.exit_at is not None and self.exit_at <= moment


@dataclass
class ContactPath:
    """What replaying one contact's events gave: its effective tags now and its runs."""

    state: TagState
    runs: list[Run] = field(default_factory=list)
    timeline: Timeline | None = None  # when its tags changed (None: never)


def step_due(entered_at: datetime, step: Step, tz: tzinfo) -> datetime:
    """`after` from the entering event; with `at`, that local time on the day `after` lands on,
    moved to the next day when it would fall before the entering event."""
    local = entered_at.astimezone(tz)
    due = local + step.after
    if step.at is None:
        return due.replace(microsecond=0)
    moment = wall_clock(due.date(), step.at, tz)
    if moment < local:
        moment = wall_clock(due.date() + timedelta(days=1), step.at, tz)
    return moment.replace(second=0, microsecond=0)


class JourneyBook:
    """Every route of a playbook, and the replay that turns a contact's events into runs."""

    def __init__(self, playbook: LoadedPlaybook, rules: TagRules) -> None:
        model = playbook.model
        self.rules = rules
        self.tz = playbook.tz
        # The account a contact added, as an export names it: a persona's account, or its WeCom userid (添加人账号).
        self.account_personas = {**{p.wecom_userid: p.id for p in model.personas if p.wecom_userid}, **{p.account: p.id for p in model.personas if p.account}}
        # The names each persona's staff member goes by (WeCom userid, account): whose adds and deletes count for it.
        self.staff = {p.id: frozenset(name for name in (p.wecom_userid, p.account) if name) for p in model.personas}
        self.first = model.personas[0].id if model.personas else ""
        segments = model.segments
        routes: list[Route] = []
        for hi, hook in enumerate(model.hooks):
            if not hook.welcome:
                continue
            steps = tuple(
                Step(str(si + 1), si, parse_duration(s.after), parse_hhmm(s.at) if s.at else None, s.template, s.text, None, f"<inline hooks.{hook.id}.welcome[{si}].text>", tuple(s.attachments))
                for si, s in enumerate(hook.welcome)
            )
            routes.append(
                Route(
                    id=f"welcome:{hook.id}", kind="welcome", title=f"欢迎语 welcome · {hook.title or hook.id}", enter_type="friend_added",
                    enter_hook=hook.id, enter_nth=None, repeat=False, audience=None, exit_events=_exit_events(hook.exit, rules),
                    exit_segments=_exit_segments(hook.exit, segments), persona=hook.persona, steps=steps, hook=hook, path=("hooks", hi),
                )
            )
        for ji, journey in enumerate(model.journeys):
            steps = tuple(
                Step(s.id, si, parse_duration(s.after), parse_hhmm(s.at) if s.at else None, s.template, s.text, s.variants, f"<inline journeys.{journey.id}.steps.{s.id}.text>", tuple(s.attachments))
                for si, s in enumerate(journey.steps)
            )
            enter_hook = rules.hook_of(journey.enter.hook)
            audience = None
            if journey.audience:
                audience = parse_tags(segments.get(journey.audience, journey.audience))
            routes.append(
                Route(
                    id=journey.id, kind="journey", title=journey.title or journey.id, enter_type=journey.enter.event,
                    enter_hook=enter_hook.id if enter_hook else journey.enter.hook, enter_nth=journey.enter.nth, repeat=journey.repeat,
                    audience=audience, exit_events=_exit_events(journey.exit, rules), exit_segments=_exit_segments(journey.exit, segments),
                    persona=journey.persona, steps=steps, path=("journeys", ji),
                )
            )
        self.routes = routes
        self.by_id = {route.id: route for route in routes}
        self.by_beat = {route.beat_id(step): (route, step) for route in routes for step in route.steps}
        kinds = set(rules.types)
        for route in routes:
            kinds.add(route.enter_type)
            kinds.update(kind for kind, _ in route.exit_events)
        if routes:
            kinds.add(DELETED)
        self.types: frozenset[str] = frozenset(kinds)

    def replay(self, contact: Mapping[str, Any], events: Sequence[EventRow], *, as_of: datetime | None = None) -> ContactPath:
        """Effective tags and runs of one contact, from its events in time order (an add implied by `added_at` included)."""
        own_source = contact.get("source")
        rules = self.rules
        state = rules.start(contact.get("tags") or (), own_source)
        path = ContactPath(state)
        own = tuple(state.tags)
        before = list(own)
        stamps: list[str] = []
        changes: list[tuple[int, list[str]]] = []
        counts: dict[str, int] = {}
        open_runs: list[Run] = []
        cid = str(contact["id"])
        for row in with_implied_add(contact, events, as_of):
            kind, at = row[1], row[2]
            stamps.append(at)
            if kind in rules.types and not row[0].startswith(IMPLIED_ADD + ":"):
                rules.apply(state, row, own_source)
                if state.tags != before:
                    before = list(state.tags)
                    changes.append((len(stamps) - 1, before))
            hook = rules.event_hook(row[3], state.source or own_source)
            moment: datetime | None = None
            for run in open_runs:
                if run.exit_at is not None:
                    continue
                reason = _exit_reason(run.route, kind, hook, state)
                if reason == DELETED and not self._gone_for(run, contact, row[5]):
                    continue  # the customer deleted another staff member: this run's sender is still its friend
                if reason is not None:
                    moment = moment or from_db(at)
                    run.exit_at, run.exit_reason = moment, reason
            for route in self.routes:
                if kind != route.enter_type or (route.enter_hook is not None and (hook is None or hook.id != route.enter_hook)):
                    continue
                seen = counts[route.id] = counts.get(route.id, 0) + 1
                if route.enter_nth is not None and seen < route.enter_nth:
                    continue
                if route.enter_nth is not None and seen > route.enter_nth and not route.repeat:
                    continue
                if not route.repeat and any(r.route is route for r in path.runs):
                    if route.kind == "welcome":
                        _readded(path.runs, route, row, lambda run, props=row[5]: self._gone_for(run, contact, props))
                    continue
                moment = moment or from_db(at)
                run = Run(route, cid, row, moment, hook if hook is not None else rules.hook_of(state.source or own_source))
                run.same_moment = sum(1 for r in path.runs if r.route is route and r.entry[2] == at)
                segment = next((text for text, expr in route.exit_segments if expr.matches(state.tags)), None)
                if segment is not None:
                    run.exit_at, run.exit_reason = moment, f"segment {segment}"
                path.runs.append(run)
                open_runs.append(run)
        if changes:
            path.timeline = (stamps, own, changes)
        return path

    def persona_of(self, run: Run, contact: Mapping[str, Any]) -> str:
        """A journey's own persona; else the persona whose staff member the entering add names (serve's userid, an
        export's 添加人账号): a channel code (渠道活码) puts several staff behind one State, and WeCom ties the add's
        WelcomeCode to the one added, so a hook's persona is only the default for an add naming no persona's staff;
        else the hook's persona, else the persona whose account the contact added, else the first."""
        route = run.route
        if route.kind != "welcome" and route.persona:
            return route.persona
        added = self.added_persona(run.entry)
        if added is not None:
            return added
        if run.hook is not None and run.hook.persona:
            return run.hook.persona
        if route.persona:
            return route.persona
        return self.account_personas.get(str(contact.get("account") or ""), self.first)

    def added_persona(self, entry: EventRow) -> str | None:
        """The persona whose staff member (wecom_userid or account) an add names, None for another event, an add
        naming no one, or one naming a staff member who is no persona."""
        import json

        if entry[1] != "friend_added" or not entry[5]:
            return None
        try:
            props = json.loads(entry[5])
            named = props.get("userid") or props.get("account")
        except (ValueError, AttributeError):
            return None
        return self.account_personas.get(str(named)) if named else None

    def _gone_for(self, run: Run, contact: Mapping[str, Any], props: str | None) -> bool:
        """Does this delete end the run? WeCom's deletes are per staff member (serve records the userid, an import the
        account): one of another staff member leaves the run's sender a friend. One naming no one ends every run."""
        import json

        staff = self.staff.get(self.persona_of(run, contact))
        if not staff or not props:
            return True
        try:
            found = json.loads(props)
            named = found.get("userid") or found.get("account")
        except (ValueError, AttributeError):
            return True
        return not named or named in staff


def _readded(runs: Sequence[Run], route: Route, row: EventRow, theirs: Any) -> None:
    """A re-add through the hook of a welcome sequence its delete ended, to the same staff member (`theirs`): the customer
    is a friend again, so the sequence goes on where it was (a step not yet sent goes, once; one sent is not sent again),
    as a re-add restores a private beat's 1v1. Only a delete's exit is undone; another exit holds."""
    for run in runs:
        if run.route is route and run.exit_reason == DELETED and run.exit_at is not None and run.exit_at <= from_db(row[2]) and theirs(run):
            run.exit_at = run.exit_reason = None


def with_implied_add(contact: Mapping[str, Any], events: Sequence[EventRow], as_of: datetime | None) -> Iterable[EventRow]:
    """A contact imported with `added_at` but no friend_added event added then: the add its journeys start from."""
    added = contact.get("added_at")
    if added is None or any(row[1] == "friend_added" for row in events) or (as_of is not None and added > as_of):
        return events
    stamp = to_db(added)
    implied: EventRow = (f"{IMPLIED_ADD}:{contact['id']}", "friend_added", stamp, None, None, None, None)
    merged = list(events)
    position = next((i for i, row in enumerate(merged) if row[2] > stamp), len(merged))
    merged.insert(position, implied)
    return merged


def _exit_events(exits: Iterable[ExitCondition], rules: TagRules) -> tuple[tuple[str, str | None], ...]:
    found = []
    for item in exits:
        if item.event is not None:
            hook = rules.hook_of(item.hook)
            found.append((item.event, hook.id if hook else item.hook))
    return tuple(found)


def _exit_segments(exits: Iterable[ExitCondition], segments: Mapping[str, str]) -> tuple[tuple[str, TagExpr], ...]:
    return tuple((item.segment, parse_tags(segments.get(item.segment, item.segment))) for item in exits if item.segment is not None)


def _exit_reason(route: Route, kind: str, hook: Hook | None, state: TagState) -> str | None:
    if kind == DELETED:
        return DELETED
    for event, hook_id in route.exit_events:
        if event == kind and (hook_id is None or (hook is not None and hook.id == hook_id)):
            return kind if hook_id is None else f"{kind} via {hook_id}"
    for text, expr in route.exit_segments:
        if expr.matches(state.tags):
            return f"segment {text}"
    return None


def satisfying_tags(expr: TagExpr | None, start: Sequence[str] = ()) -> list[str]:
    """The fewest tags, added to `start`, that satisfy the expression: a sample contact an audience accepts."""
    import itertools

    base = list(dict.fromkeys(start))
    if expr is None or expr.matches(base):
        return base
    atoms = sorted(expr.tags - set(base))[:12]
    for size in range(1, len(atoms) + 1):
        for extra in itertools.combinations(atoms, size):
            tags = base + list(extra)
            if expr.matches(tags):
                return tags
    return base


def sample_run(playbook: LoadedPlaybook, book: JourneyBook, route: Route, step: Step, cohort: Any, day: int) -> tuple[Run, dict[str, Any]]:
    """A labelled sample contact who entered the route so that `step` falls on campaign day `day`."""
    from datetime import datetime as _dt

    target = cohort.start + timedelta(days=day - 1)
    clock = time(0, 1) if step.at is not None else time(10, 0)
    entered = (_dt.combine(target, clock, tzinfo=playbook.tz) - step.after).replace(second=0, microsecond=0)
    hook = route.hook or book.rules.hook_of(route.enter_hook)
    amount = None
    if route.enter_type in ("order", "refund") and playbook.model.products:
        priced = [p for p in playbook.model.products if p.price > 0] or list(playbook.model.products)
        amount = priced[0].price
    stamp = to_db(entered)
    entry: EventRow = (f"sample:{route.id}", route.enter_type, stamp, (hook.code or hook.id) if hook else None, amount, None, None)
    tags = satisfying_tags(route.audience, hook.tags if hook else ())
    person: dict[str, Any] = {
        "id": "sample",
        "name": "示例联系人",
        "tags": tags,
        "source": (hook.code or hook.id) if hook else None,
        "tier": None,
        "account": None,
        "cohort": cohort.id,
        "added_at": entered if route.enter_type == "friend_added" else None,
        "sample": True,
    }
    return Run(route, "sample", entry, entered.astimezone(from_db(stamp).tzinfo), hook), person
