"""WeCom's own rules (domain.md), for a playbook whose `outputs` include `{type: wecom}`.

Through the wecom output a draft becomes a task WeCom accepts or refuses, so what WeCom refuses is
an error here, not a lint: a persona that sends without a staff member's `wecom_userid`, a group a
beat posts to without its `chat_id`, a Moments post WeCom's Moments task will not take, a card or a
text (over 4,000 bytes) `send_welcome_msg` or `add_msg_template` will not take, and mass sends beyond
a customer's (or a customer group's) monthly quota. The limits other checks already warn about (a Moments post's
length and images, one staff member reaching a customer twice a day) become errors under their
wecom- codes (`strictness`), where they are found.

The quota: every private draft the wecom output sends goes through `add_msg_template` (企业群发):
a private beat is a mass send to all its recipients, or a one-recipient task when its text names
the contact (siyu_cli.dispatch._capacity.PersonalRule decides which), and journey steps and later
welcome steps go the same way; WeCom counts every one against the customer, whoever created it.
A customer, and each customer group, receives at most as many a calendar month as the month has
days, unless the corp set another value (`limits.wecom_mass_per_month`). The first welcome message
(`after: 0m`) goes through `send_welcome_msg` and does not count; Moments do not either. Without a
store the audiences are not known: the count is for one contact in every audience that can hold
it, entering every journey and the longest welcome sequence on day 1 at 10:00 (an upper bound);
with a store it is per contact, by their tags now.
"""

from __future__ import annotations

import calendar
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.playbook._model import WecomOutput
from siyu_cli.playbook._yaml import Path_

_MAX_TAG_UNIVERSE = 12
MINIPROGRAM_TITLE_BYTES = 64  # add_msg_template / send_welcome_msg: miniprogram.title, at most 64 bytes
LINK_TITLE_BYTES = 128  # link.title, at most 128 bytes
LINK_DESC_BYTES = 512  # link.desc, at most 512 bytes
TEXT_BYTES = 4000  # add_msg_template / send_welcome_msg: text.content, at most 4,000 bytes (else 45002)
# The shortest remind_after that leaves staff the time a batch task takes (the task itself rang their phone) and does not
# spend WeCom's three reminders a day within the first hour; read-back (every 5 min at first) has a confirm well before it.
REMIND_AT_LEAST = timedelta(minutes=30)


def wecom_output(playbook: LoadedPlaybook) -> bool:
    return any(isinstance(output, WecomOutput) for output in playbook.model.outputs)


def strictness(playbook: LoadedPlaybook, code: str) -> tuple[str, str]:
    """(severity, code) of a platform limit: an error under its wecom- code where the wecom output would have WeCom refuse the task."""
    return ("error", f"wecom-{code}") if wecom_output(playbook) else ("warning", code)


def staff_of(playbook: LoadedPlaybook) -> dict[str, str]:
    """Persona id → who WeCom sees send: its staff member's userid under the wecom output, else the persona itself."""
    wecom = wecom_output(playbook)
    return {p.id: (p.wecom_userid if wecom and p.wecom_userid else p.id) for p in playbook.model.personas}


def by_welcome_api(route: Any, step: Any) -> bool:
    """The first welcome message (after: 0m) goes with the add's WelcomeCode (send_welcome_msg): not a mass send."""
    return route.kind == "welcome" and step.after == timedelta(0) and step.at is None


def wecom_problems(playbook: LoadedPlaybook, samples: Any, planner: Any = None) -> list[Problem]:
    """Every WeCom rule a playbook with the wecom output breaks (none without it).

    `samples` are what check rendered (siyu_cli.check._copy.Samples: each content's texts, the journey
    book's routes); `planner` carries the store's contacts when check has them."""
    if not wecom_output(playbook):
        return []
    from siyu_cli.render import search_path
    from siyu_cli.timeline import occurrences

    search = search_path(playbook)
    calendars = [(run, list(occurrences(playbook, run, search))) for run in playbook.cohorts]
    routes = samples.routes
    return [
        *_corps(playbook),
        *_reminders(playbook),
        *_staff(playbook, calendars),
        *_chats(playbook, calendars),
        *_cards(playbook),
        *_text_sizes(playbook, samples.longest.values()),
        *_customer_quota(playbook, calendars, routes, planner),
        *_group_quota(playbook, calendars),
    ]


def _corps(playbook: LoadedPlaybook) -> list[Problem]:
    """Wecom outputs of two corps (one corp twice is the loader's error): every draft goes to both, but a wecom_userid is one corp's staff member."""
    outputs = [(index, output) for index, output in enumerate(playbook.model.outputs) if isinstance(output, WecomOutput)]
    if len({output.corp_id_env for _, output in outputs}) < 2:
        return []
    (first, one), (index, other) = outputs[0], next(item for item in outputs if item[1].corp_id_env != outputs[0][1].corp_id_env)
    return [
        playbook.located.problem(
            ("outputs", index, "corp_id_env"),
            f"outputs[{first}] and outputs[{index}] are wecom outputs of two corps ({one.corp_id_env} and {other.corp_id_env}): every draft goes to both, "
            "but a persona's wecom_userid is one staff member in one corp and a customer's external_userid (wm…) is one corp's: "
            "the other corp refuses those tasks or hands them to whoever has that userid there",
            hint="keep one wecom output, and run the other corp from its own playbook (and store) with its own personas",
            severity="warning",
            code="wecom-two-corps",
        )
    ]


def _reminders(playbook: LoadedPlaybook) -> list[Problem]:
    """A remind_after under REMIND_AT_LEAST: the day's three reminders ring the staff member's phone within minutes of the task."""
    from siyu_cli._time import format_duration, parse_duration
    from siyu_cli.wecom._sync import READ_EVERY, REMINDERS

    problems = []
    for index, output in enumerate(playbook.model.outputs):
        if not isinstance(output, WecomOutput) or parse_duration(output.remind_after) >= REMIND_AT_LEAST:
            continue
        wait = parse_duration(output.remind_after)
        times = ", ".join(format_duration(wait * n) for n in range(1, REMINDERS + 1))
        problems.append(
            playbook.located.problem(
                ("outputs", index, "remind_after"),
                f"remind_after {output.remind_after}: each reminder (remind_groupmsg_send) rings the staff member's phone, and WeCom allows {REMINDERS} per task in 24 hours, "
                f"so siyu would spend them {times} after the task is made (which rang it already), then none until 24 hours after the first; "
                f"and a pass reads a task back every {format_duration(READ_EVERY)} at first, so a staff member who has just sent it can still be reminded",
                hint=f"give staff time to send: {format_duration(REMIND_AT_LEAST)} or more; the default is 2h",
                severity="warning",
                code="wecom-remind-soon",
            )
        )
    return problems


def _staff(playbook: LoadedPlaybook, calendars: Sequence[tuple[Any, list[Any]]]) -> list[Problem]:
    """Personas that send without a wecom_userid; two personas sharing one."""
    model = playbook.model
    uses: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
    first = model.personas[0].id
    accounts = [p for p in model.personas if p.account]

    def fallback(kind: str, name: str) -> None:
        """No persona named: the persona whose account the contact added, else the first (JourneyBook.persona_of,
        and a private beat's drafts, Planner._private)."""
        for persona in accounts:
            also = ", and by default" if persona.id == first else ""
            uses[persona.id][(kind, f"{name} (to contacts who added {persona.account}{also})")] = None
        if not any(p.id == first for p in accounts):
            uses[first][(kind, f"{name} (by default)")] = None

    for _, found in calendars:
        for occ in found:
            if occ.target_kind == "audience" and occ.beat.persona is None:
                fallback("beat", occ.beat.id)
            else:
                uses[occ.persona][("beat", occ.beat.id)] = None

    hooks = {key: hook for hook in model.hooks for key in (hook.id, hook.code) if key}
    for hook in model.hooks:
        if hook.welcome:
            if hook.persona:
                uses[hook.persona][("welcome", hook.id)] = None
            else:
                fallback("welcome", hook.id)
    for journey in model.journeys:
        entering = hooks.get(journey.enter.hook or "")
        if journey.persona:
            uses[journey.persona][("journey", journey.id)] = None
            continue
        named = [entering] if entering is not None else list(model.hooks)
        for hook in named:
            if hook.persona:
                uses[hook.persona][("journey", f"{journey.id} (to contacts who came through hook {hook.id})")] = None
        if entering is None or not entering.persona:
            fallback("journey", journey.id)
    problems = _lacking(
        playbook,
        "personas",
        "wecom_userid",
        {pid: ("sends", list(found)) for pid, found in uses.items()},
        "the wecom output hands a persona's tasks to its staff member (成员) by userid",
        "add wecom_userid: the staff member's userid 成员账号, as the WeCom admin console shows it under 通讯录",
        "wecom-userid",
    )
    holders: dict[str, str] = {}
    for pi, persona in enumerate(model.personas):
        if not persona.wecom_userid:
            continue
        other = holders.setdefault(persona.wecom_userid.lower(), persona.id)  # WeCom's uniqueness ignores case: Aqi is aqi
        if other != persona.id:
            problems.append(
                playbook.located.problem(
                    ("personas", pi, "wecom_userid"),
                    f"personas {other} and {persona.id} are both staff member {persona.wecom_userid}: WeCom sees one person, so their tasks reach one client, "
                    "their mass sends share the one-a-day limit per customer, and report sop cannot tell them apart",
                    hint="give each persona its own staff member's userid, or make them one persona",
                    severity="warning",
                    code="wecom-userid-shared",
                )
            )
    return problems


def _chats(playbook: LoadedPlaybook, calendars: Sequence[tuple[Any, list[Any]]]) -> list[Problem]:
    """Groups a beat posts to without a chat_id: a group task (chat_type: group) names its chats by chat_id."""
    posts: dict[str, dict[str, None]] = defaultdict(dict)
    for _, found in calendars:
        for occ in found:
            if occ.target_kind == "group":
                posts[occ.target_id][occ.beat.id] = None
    return _lacking(
        playbook,
        "groups",
        "chat_id",
        {gid: ("gets", [("beat", b) for b in beats]) for gid, beats in posts.items()},
        "the wecom output sends a group's posts as a task to its chat_id",
        "add chat_id: the customer group's id (客户群ID, wr…), from WeCom's groupchat/list or the 客户群 page of the admin console",
        "wecom-chat-id",
    )


def _lacking(playbook: LoadedPlaybook, section: str, field: str, doing: Mapping[str, tuple[str, list[tuple[str, str]]]], why: str, hint: str, code: str) -> list[Problem]:
    """Each persona or group in `doing` (id → verb, what) without `field`, located at that field."""
    problems = []
    for index, item in enumerate(getattr(playbook.model, section)):
        if getattr(item, field) or item.id not in doing:
            continue
        verb, what = doing[item.id]
        message = f"{section[:-1]} {item.id} ({item.name}) {verb} {_listing(what)}, but has no {field}: {why}"
        problems.append(playbook.located.problem((section, index, field), message, hint=hint, code=code))
    return problems


def _cards(playbook: LoadedPlaybook) -> list[Problem]:
    """Link and mini-program cards add_msg_template or send_welcome_msg will not take (their documented fields)."""
    from siyu_cli.check._assets import attachment_lists

    model = playbook.model
    problems = []
    for path, items in attachment_lists(playbook):
        if path[0] == "beats" and model.beats[int(path[1])].channel not in ("private", "group"):
            continue  # Moments go through add_moment_task, live beats to the persona
        api = "send_welcome_msg" if path[0] == "hooks" and _first_welcome(model.hooks[int(path[1])].welcome[int(path[3])]) else "add_msg_template"
        for index, item in enumerate(items):
            for message, hint in _card_faults(item):
                problems.append(playbook.located.problem(path + (index,), f"{message}: WeCom's {api} refuses it", hint=hint, code="wecom-attachment"))
    return problems


def _text_sizes(playbook: LoadedPlaybook, rendered: Iterable[Any]) -> list[Problem]:
    """Texts over the 4,000 bytes of text.content that a mass send or a welcome takes (WeCom answers 45002).

    `rendered` holds each content's longest render with the sample contact (siyu_cli.check._copy.Rendered)."""
    model = playbook.model
    problems = []
    for sample in rendered:
        size = len(sample.text.encode("utf-8"))
        if sample.channel not in ("private", "group", "welcome", "journey") or size <= TEXT_BYTES:
            continue
        path = sample.path
        first = path[:1] == ("hooks",) and _first_welcome(model.hooks[int(path[1])].welcome[int(path[3])])
        api = "send_welcome_msg" if first else "add_msg_template"
        problems.append(
            playbook.located.problem(
                path,
                f"{sample.content.name}: a text of {size:,} bytes (rendered with check's sample data), above the {TEXT_BYTES:,} bytes of "
                f"text.content WeCom's {api} takes: WeCom refuses it (45002)",
                hint="shorten it to 4,000 bytes (a Chinese character is 3: about 1,300 of them), or move the rest behind a link card",
                code="wecom-text-length",
            )
        )
    return problems


def _first_welcome(step: Any) -> bool:
    """A playbook welcome step that goes with the add's WelcomeCode (as by_welcome_api reads a compiled one)."""
    from siyu_cli._time import parse_duration

    return step.at is None and parse_duration(step.after) == timedelta(0)


def _card_faults(item: Any) -> Iterable[tuple[str, str]]:
    title = (item.title or "").encode("utf-8")
    if item.kind == "miniprogram":
        if not item.cover:
            yield "a mini-program card without a cover (miniprogram.pic_media_id is required)", "add cover: a .jpg/.png file or URL, 520×416 suggested"
        if len(title) > MINIPROGRAM_TITLE_BYTES:
            yield f"a mini-program title of {len(title)} bytes (at most {MINIPROGRAM_TITLE_BYTES})", "shorten the title: about 21 Chinese characters"
    if item.kind == "link":
        if len(title) > LINK_TITLE_BYTES:
            yield f"a link title of {len(title)} bytes (at most {LINK_TITLE_BYTES})", "shorten the title: about 42 Chinese characters"
        desc = (item.description or "").encode("utf-8")
        if len(desc) > LINK_DESC_BYTES:
            yield f"a link description of {len(desc)} bytes (at most {LINK_DESC_BYTES})", "shorten the description: about 170 Chinese characters"


@dataclass(frozen=True)
class _Send:
    """One mass send (企业群发) to a customer or a group: when, and what sends it."""

    at: datetime
    kind: str  # beat | journey | welcome
    name: str  # the beat's, journey's or hook's id
    path: Path_
    personal: bool = False  # a beat's one-recipient task: its text names the contact

    @property
    def month(self) -> tuple[int, int]:
        """The calendar month of the send, on the campaign's clock (`at` is in the playbook's zone)."""
        return self.at.year, self.at.month


def _month_text(month: tuple[int, int]) -> str:
    return f"{month[0]}-{month[1]:02d}"


def _quota(playbook: LoadedPlaybook, month: tuple[int, int]) -> tuple[int, str]:
    """The month's quota and where it comes from."""
    cap = playbook.model.limits.wecom_mass_per_month
    if cap is not None:
        return cap, f"limits.wecom_mass_per_month {cap}"
    days = calendar.monthrange(*month)[1]
    return days, f"WeCom's default of {days} (the days of {_month_text(month)})"


def _private_sends(playbook: LoadedPlaybook, found: Sequence[Any], rule: Any) -> dict[str, list[_Send]]:
    """Each private beat's sends in one cohort."""
    index = {beat.id: bi for bi, beat in enumerate(playbook.model.beats)}
    sends: dict[str, list[_Send]] = defaultdict(list)
    for occ in found:
        if occ.target_kind == "audience":
            beat = occ.beat
            personal = any(rule("private", beat.id, name) for name in (beat.variants or {None: None}))
            sends[beat.id].append(_Send(occ.at, "beat", beat.id, ("beats", index[beat.id], "days"), personal))
    return sends


def _step_send(route: Any, step: Any, due: datetime) -> _Send:
    where = route.path + (("welcome", step.index) if route.kind == "welcome" else ("steps", step.index))
    name = route.id if route.kind == "journey" else (route.hook.id if route.hook else route.id)
    return _Send(due, route.kind, name, where)


def _customer_quota(playbook: LoadedPlaybook, calendars: Sequence[tuple[Any, list[Any]]], routes: Sequence[Any], planner: Any) -> list[Problem]:
    """A customer over the month's company mass sends: per contact with a store, else for the contact every audience can hold."""
    from siyu_cli.dispatch._capacity import PersonalRule
    from siyu_cli.journeys import step_due
    from siyu_cli.render import Renderer

    rule = PersonalRule(playbook, planner.renderer if planner is not None else Renderer(playbook))
    problems: list[Problem] = []
    multiple = len(calendars) > 1
    for run, found in calendars:
        by_beat = _private_sends(playbook, found, rule)
        if planner is not None:
            problems += _contacts_over(playbook, run, by_beat, planner, multiple)
            continue
        entered = datetime.combine(run.start, time(10, 0), tzinfo=playbook.tz)
        steps = {route.id: [_step_send(route, step, step_due(entered, step, playbook.tz)) for step in route.steps if not by_welcome_api(route, step)] for route in routes}
        # A contact comes in through one hook: the longest welcome sequence, with every journey.
        welcome = max((steps[route.id] for route in routes if route.kind == "welcome"), key=len, default=[])
        journeys = [s for route in routes if route.kind == "journey" for s in steps[route.id]] + welcome
        problems += _profile_over(playbook, run, by_beat, journeys, multiple)
    return problems


def _profile_over(playbook: LoadedPlaybook, run: Any, by_beat: Mapping[str, list[_Send]], journeys: list[_Send], multiple: bool) -> list[Problem]:
    """Without contacts: the tags that put one contact in the most private beats, per month (an upper bound)."""
    beats = {beat.id: playbook.audience(beat) for beat in playbook.model.beats if beat.id in by_beat}
    universe = sorted(set().union(*(expr.tags for expr in beats.values()))) if beats else []
    exact = len(universe) <= _MAX_TAG_UNIVERSE
    profiles = [frozenset(c) for n in range(len(universe) + 1) for c in itertools.combinations(universe, n)] if exact else [None]
    months = sorted({s.month for sends in [*by_beat.values(), journeys] for s in sends})
    problems = []
    reaches = [(tags, [bid for bid, expr in beats.items() if tags is None or expr.matches(tags)]) for tags in profiles]
    for month in months:
        quota, source = _quota(playbook, month)
        monthly = {bid: sum(1 for s in sends if s.month == month) for bid, sends in by_beat.items()}
        tags, reached = max(reaches, key=lambda item: sum(monthly[bid] for bid in item[1]))  # the first of the most reached
        sends = [s for bid in reached for s in by_beat[bid] if s.month == month] + [s for s in journeys if s.month == month]
        if len(sends) <= quota:
            continue
        who = "a customer" + (f" tagged {'/'.join(sorted(tags))}" if tags else "")
        bound = "an upper bound: without a store check counts one contact in every audience that can hold it"
        if journeys:
            bound += ", entering every journey (and the longest welcome sequence) on day 1 at 10:00"
        problems.append(_over(playbook, f"{who}{_of(run, multiple)}", month, sends, quota, source, bound))
    return problems


def _contacts_over(playbook: LoadedPlaybook, run: Any, by_beat: Mapping[str, list[_Send]], planner: Any, multiple: bool) -> list[Problem]:
    """With the store's contacts: each contact's sends per month, by their tags now; the most reached contact is named."""
    from siyu_cli.render._drafts import assign_variant

    model = playbook.model
    counts: Counter[tuple[str, tuple[int, int]]] = Counter()
    members: dict[str, list[str]] = defaultdict(list)  # contact → the private beats that reach it
    for beat in model.beats:
        if beat.id not in by_beat:
            continue
        monthly = Counter(s.month for s in by_beat[beat.id])
        weights = {name: v.weight for name, v in (beat.variants or {}).items()}
        held = {name for name, v in (beat.variants or {}).items() if v.template is None and v.text is None}
        for person in planner.recipients(run, beat.id, playbook.audience(beat)):
            cid = str(person["id"])
            if held and assign_variant(beat.id, cid, weights) in held:
                continue  # a holdout gets nothing
            members[cid].append(beat.id)
            for month, n in monthly.items():
                counts[(cid, month)] += n
    steps: dict[str, list[_Send]] = defaultdict(list)
    for draft in planner.journey_calendar(run):
        step, route = draft.context["step"], draft.context["run"].route
        if draft.holdout or draft.skip is not None or by_welcome_api(route, step):
            continue
        send = _step_send(route, step, draft.occurrence_at.astimezone(playbook.tz))
        steps[str(draft.contact_id)].append(send)
        counts[(str(draft.contact_id), send.month)] += 1
    over: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    for (cid, month), count in counts.items():
        if count > _quota(playbook, month)[0]:
            over[month].append((count, cid))
    problems = []
    for month in sorted(over):
        quota, source = _quota(playbook, month)
        _, cid = min(over[month], key=lambda item: (-item[0], item[1]))  # the most reached, then the first id
        sends = [s for s in [*(s for bid in members.get(cid, ()) for s in by_beat[bid]), *steps.get(cid, [])] if s.month == month]
        others = len(over[month]) - 1
        who = f"contact {cid} ({_name(planner, cid)}){_of(run, multiple)}"
        note = "audiences by the contacts' tags now" + (f"; {others} more contact(s) are over too" if others else "")
        problems.append(_over(playbook, who, month, sends, quota, source, note))
    return problems


def _name(planner: Any, cid: str) -> str:
    """The contact's name as a message says it beside its id: `no name` for a nameless one (never its id twice)."""
    contact = planner.by_id.get(cid)
    return str(contact.get("name") or "no name") if contact is not None else "no name"


def _of(run: Any, multiple: bool) -> str:
    return f" of cohort {run.id}" if multiple else ""


def _over(playbook: LoadedPlaybook, who: str, month: tuple[int, int], sends: list[_Send], quota: int, source: str, note: str) -> Problem:
    """The error for a customer (or group) over its month: the count, what makes it up, located at what crosses the quota."""
    sends = sorted(sends, key=lambda s: (s.at, s.kind, s.name))
    counts = Counter((s.kind, s.name) for s in sends)
    personal = sorted({(s.kind, s.name) for s in sends if s.personal})
    made = _listing([(kind, f"{name} ×{n}") for (kind, name), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))])
    if personal:
        which = "" if len(personal) == len(counts) else f"{_listing(personal)}: "
        made += f" ({which}one-recipient tasks, as the text names the contact; WeCom counts them the same)"
    crossing = sends[quota]
    message = (
        f"in {_month_text(month)} {who} would receive {len(sends)} company mass sends (企业群发), above {source}: {made}; "
        f"from the {_ordinal(quota + 1)} on ({_listing([(crossing.kind, crossing.name)])} on {crossing.at:%m-%d %H:%M}) WeCom refuses them"
    )
    if note:
        message += f"; {note}"
    return playbook.located.problem(
        crossing.path,
        message,
        hint="send fewer that month: fewer beats, days or times, or narrower audiences; or set the corp's own value in limits.wecom_mass_per_month",
        code="wecom-mass-quota",
    )


_KINDS = {"beat": ("beat", "beats"), "journey": ("journey", "journeys"), "welcome": ("the welcome of hook", "the welcomes of hooks")}


def _listing(items: Sequence[tuple[str, str]]) -> str:
    """(kind, name) pairs as one phrase, by kind in order of appearance: "beats noon, eve and the welcome of hook card"."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, name in items:
        by_kind[kind].append(name)
    parts = [f"{_KINDS[kind][len(names) > 1]} {', '.join(names)}" for kind, names in by_kind.items()]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _group_quota(playbook: LoadedPlaybook, calendars: Sequence[tuple[Any, list[Any]]]) -> list[Problem]:
    """A customer group over the month's company mass sends: every group beat's post to it counts (a group task, chat_type: group)."""
    index = {beat.id: bi for bi, beat in enumerate(playbook.model.beats)}
    names = {group.id: group.name for group in playbook.model.groups}
    posts: dict[tuple[str, tuple[int, int]], list[_Send]] = defaultdict(list)
    filtered: dict[str, set[str]] = defaultdict(set)
    for _, found in calendars:
        for occ in found:
            if occ.target_kind == "group":
                send = _Send(occ.at, "beat", occ.beat.id, ("beats", index[occ.beat.id], "days"))
                posts[(occ.target_id, send.month)].append(send)
                if occ.beat.health is not None:
                    filtered[occ.target_id].add(occ.beat.id)
    problems = []
    for (group, month), sends in sorted(posts.items()):
        quota, source = _quota(playbook, month)
        if len(sends) <= quota:
            continue
        note = f"an upper bound: {', '.join(sorted(filtered[group]))} skip groups by health" if filtered[group] else ""
        problems.append(_over(playbook, f"group {group} ({names.get(group, group)})", month, sends, quota, source, note))
    return problems
