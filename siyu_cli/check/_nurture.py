"""check's 养号 warnings: a day on which a beat's or a journey's 1v1 sends, a hook's adds or the invitations into a
persona's groups pass the account's stage cap; an account that is registered after the campaign starts; personas
that share an account (and so its caps); and `limits.nurture` where no persona gives `account_since` (it caps nothing).

The caps are the account's (养号 warms the WeChat/WeCom account): what its personas do is counted together, and
the message names the account and its personas. The runner carries 1v1 drafts over such a cap to the next day
(siyu_cli.dispatch._capacity); adds and invitations are the contacts' own acts, so more of them than a young
account should take are only warned about. With the store's contacts the sends and adds are counted (as for the
account cap): the sends are private beats' audiences, journey steps and welcome steps after the add's; the adds
are the contacts' added_at and the store's friend_added events (import events, track, siyu serve), one per
contact and account; the invitations are the store's `group_joined` events into the persona's groups. Without
contacts there is nothing to count, so check estimates from the playbook's own figures and says so: an account
that accepts its stage's cap of adds every day gets, from the journeys and welcome steps those adds get, this many
1v1 sends a day; and groups of a persona whose stage invites nobody (`invites: 0`) that take their members while
it is in that stage.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from siyu_cli._time import from_db
from siyu_cli.dispatch._capacity import STAGES, account_key, sharing, stage_caps, stage_of
from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner


def nurture_caps(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], planner: Planner | None = None) -> list[Problem]:
    from siyu_cli.dispatch._capacity import PersonalRule

    model = playbook.model
    problems = _not_yet_registered(playbook) + _shared_accounts(playbook)
    if model.limits.nurture is None:
        return problems
    if not any(p.account_since for p in model.personas):
        return problems + [
            playbook.located.problem(
                ("limits", "nurture"),
                "no persona has account_since: limits.nurture caps nothing (an account's 养号 stage is counted from the day it was registered)",
                hint="give each persona's account its registration day, `account_since: 2026-11-20`, or drop limits.nurture",
                severity="warning",
                code="nurture-account",
            )
        ]
    if not contacts:
        return problems + _estimated(playbook)
    planner = planner or Planner(playbook, contacts=contacts)
    rule = PersonalRule(playbook, planner.renderer)
    sends: dict[tuple[str, date], int] = defaultdict(int)
    first = model.personas[0].id
    for beat in model.beats:
        if beat.channel != "private":
            continue
        for cohort in playbook.cohorts:
            # A beat that names no persona goes to each contact from the account the contact added (Planner._private);
            # a contact who deleted the account gets none (recorded not_friend).
            senders: Counter[str] = Counter(
                beat.persona or planner.own_persona(person, first)
                for person in planner.recipients(cohort, beat.id, playbook.audience(beat))
            )
            for day in playbook.beat_days_of(cohort)[beat.id]:
                for persona, size in senders.items():
                    sends[(account_key(playbook, persona), cohort.start + timedelta(days=day - 1))] += size * len(beat.times)
    for cohort in playbook.cohorts:
        for draft in planner.journey_calendar(cohort):
            if draft.channel != "private" and draft.skip is None and rule.one_on_one(draft.channel, draft.beat):  # journey steps, and welcome steps after the add's
                sends[(account_key(playbook, draft.persona), draft.date)] += 1
    problems += _over(playbook, sends, "private", "1v1 sends", "they carry over to the next day", ("limits", "nurture"))
    where = next((("hooks", i) for i, hook in enumerate(model.hooks) if hook.persona), ("limits", "nurture"))
    problems += _over(playbook, _adds(playbook, contacts, planner.db), "adds", "adds accepted", "an account that accepts too many adds too young risks a ban", where)
    if planner.db is not None:
        problems += _over(
            playbook, _invitations(playbook, planner.db), "invites", "group invitations", "invitations are the account's own act: the runner cannot hold them back", _groups_path(playbook)
        )
    return problems


def _adds(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], db: Any) -> dict[tuple[str, date], int]:
    """Adds per account and local day: each contact's added_at and the store's friend_added events, one per contact and account (its first)."""
    import json

    model = playbook.model
    hooks = {key: hook for hook in model.hooks for key in (hook.id, hook.code) if key}
    accounts = {account_key(playbook, p.id) for p in model.personas}
    personas = {p.id for p in model.personas}

    def account(hook: str | None, given: str | None, persona: str | None = None) -> str | None:
        """The persona account an add went to: the persona it names, else its hook's, else the account it names."""
        if persona in personas:
            return account_key(playbook, str(persona))
        found = hooks.get(hook or "")
        if found is not None and found.persona:
            return account_key(playbook, found.persona)
        return given if given in accounts else None

    first: dict[tuple[str, str], datetime] = {}

    def note(contact: str, key: str | None, moment: datetime) -> None:
        if key is not None and ((contact, key) not in first or moment < first[(contact, key)]):
            first[(contact, key)] = moment

    by_id = {str(c.get("id") or c.get("contact_id") or ""): c for c in contacts}
    for cid, contact in by_id.items():
        if contact.get("added_at"):
            note(cid, account(str(contact.get("source") or ""), str(contact.get("account") or "")), _moment(contact["added_at"]))
    if db is not None:
        for cid, at, hook, props in db.execute("SELECT contact_id, at, hook, props FROM events WHERE type = 'friend_added'"):
            try:
                extra = json.loads(props or "{}")
            except ValueError:
                extra = {}
            contact = by_id.get(cid, {})
            given = extra.get("account") or contact.get("account")
            note(cid, account(hook or contact.get("source"), str(given or ""), extra.get("persona")), from_db(at))
    counts: dict[tuple[str, date], int] = defaultdict(int)
    for (_, key), moment in first.items():
        counts[(key, moment.astimezone(playbook.tz).date())] += 1
    return counts


def _shared_accounts(playbook: LoadedPlaybook) -> list[Problem]:
    """Personas that speak from one account share its 养号 stage and caps (and its registration day: the earliest given)."""
    if playbook.model.limits.nurture is None:
        return []
    problems = []
    index = {p.id: i for i, p in enumerate(playbook.model.personas)}
    for account, ids in sharing(playbook).items():
        if len(ids) < 2 or account.startswith("persona:"):
            continue
        given = {p.id: p.account_since for p in playbook.model.personas if p.id in ids and p.account_since is not None}
        since = ""
        if len(set(given.values())) > 1:
            since = f"; they give different account_since ({', '.join(f'{pid} {day}' for pid, day in given.items())}): the account's age is counted from the earliest, {min(given.values())}"
        names = ", ".join(ids[:-1]) + f" and {ids[-1]} {'both' if len(ids) == 2 else 'all'}"
        problems.append(
            playbook.located.problem(
                ("personas", index[ids[1]], "account"),
                f"personas {names} speak from account {account}: its 养号 caps (limits.nurture) are shared, the account's 1v1 sends, adds and group invitations a day counted together{since}",
                hint="give each persona its own account if they are different WeChat/WeCom accounts; if they share one, the caps are the account's and this is as meant",
                severity="warning",
                code="nurture-account",
            )
        )
    return problems


def _not_yet_registered(playbook: LoadedPlaybook) -> list[Problem]:
    """A persona whose account_since falls after the campaign starts: on the first days its account does not exist."""
    start = min(run.start for run in playbook.cohorts)
    problems = []
    for index, persona in enumerate(playbook.model.personas):
        since = persona.account_since
        if since is None or since <= start:
            continue
        days = (since - start).days
        shown = "day 1" if days == 1 else f"days 1–{days}"
        problems.append(
            playbook.located.problem(
                ("personas", index, "account_since"),
                f"persona {persona.id}'s account{f' {persona.account}' if persona.account else ''} is registered on {since}, after the campaign starts on {start}: "
                f"on {shown} it does not exist yet, and from {since} it is a {STAGES['new']} (new) account",
                hint="give the day the account was really registered, or start the campaign (or this persona's beats) on or after it",
                severity="warning",
                code="nurture-account",
            )
        )
    return problems


def _invitations(playbook: LoadedPlaybook, db: Any) -> dict[tuple[str, date], int]:
    """The store's group_joined events into each persona's groups (a group's persona, else the first), per account and local day."""
    first = playbook.model.personas[0].id
    owner = {group.id: account_key(playbook, group.persona or first) for group in playbook.model.groups}
    counts: dict[tuple[str, date], int] = defaultdict(int)
    for group, at in db.execute("SELECT group_id, at FROM events WHERE type = 'group_joined' AND group_id IS NOT NULL"):
        if group in owner:
            counts[(owner[group], from_db(at).astimezone(playbook.tz).date())] += 1
    return counts


def _groups_path(playbook: LoadedPlaybook) -> tuple[Any, ...]:
    return ("groups",) if playbook.model.groups else ("limits", "nurture")


def _estimated(playbook: LoadedPlaybook) -> list[Problem]:
    """Without contacts: what the playbook's own figures say an account's stage caps come to (see the module's docstring).

    The adds are modelled as `plan capacity` models them (siyu_cli.report._staffing): spread over the hooks of the
    account's personas alike, each hook's tier mix, and the journey and welcome steps a contact of that hook and
    tier gets from its add (a step whose audience needs a rule's tag at the share plan capacity gives it)."""
    from siyu_cli.dispatch._capacity import PersonalRule
    from siyu_cli.render import Renderer
    from siyu_cli.report._staffing import TIER_OF, _tier_mix, default_shares, work_items

    model = playbook.model
    start = min(run.start for run in playbook.cohorts)
    end = max(run.start for run in playbook.cohorts) + timedelta(days=model.days - 1)
    rule = PersonalRule(playbook, Renderer(playbook))
    sends: dict[tuple[str, date], float] = defaultdict(float)
    named = any(hook.persona for hook in model.hooks)
    for ids in sharing(playbook).values():
        if stage_of(playbook, ids[0], start) is None:
            continue
        hooks: list[Any] = [hook for hook in model.hooks if hook.persona in ids]
        if not hooks and model.personas[0].id in ids and not named:
            hooks = list(model.hooks) or [None]
        for hook in hooks:
            for tier, mix in _tier_mix(hook):
                items, _ = work_items(playbook, hook, next(word for word, value in TIER_OF.items() if value == tier), rule)
                shares = default_shares(playbook, [t for item in items for t in item.needs])
                for n in range((end - start).days + 1):
                    added = start + timedelta(days=n)
                    caps = stage_caps(playbook, ids[0], added)
                    if caps is None or caps.adds is None:
                        continue
                    for item in items:
                        share = math.prod(shares[t] for t in item.needs)
                        for offset in item.after:
                            sends[(account_key(playbook, item.persona), added + timedelta(days=offset))] += caps.adds / len(hooks) * mix * share
    then = (
        "an estimate from the playbook's own figures, as the store has no contacts to count: an account that accepts "
        "its stage's cap of adds every day (through its hooks, by their tiers) gets that many steps of its journeys and welcome sequences, and the rest carry over day after day"
    )
    counts = {key: round(value) for key, value in sends.items()}
    return _over(playbook, counts, "private", "1v1 sends (estimated)", then, ("limits", "nurture")) + _uninvited(playbook)


def _uninvited(playbook: LoadedPlaybook) -> list[Problem]:
    """Groups of a persona whose stage on its cohort's first day invites nobody (an estimate: members join at the start)."""
    model = playbook.model
    first = model.personas[0].id
    problems = []
    for run in playbook.cohorts:
        for gi, group in enumerate(model.groups):
            persona = group.persona or first
            caps = stage_caps(playbook, persona, run.start) if group.id in run.group_ids else None
            if caps is None or caps.invites != 0:
                continue
            stage = stage_of(playbook, persona, run.start) or ""
            problems.append(
                playbook.located.problem(
                    ("groups", gi),
                    f"group {group.id} of persona {persona} takes its members when cohort {run.id} starts on {run.start}, while the account is a {STAGES[stage]} ({stage}) "
                    f"whose cap is 0 group invitations a day: an estimate from the playbook (the store has no events to count)",
                    hint=f"let another persona's account own the group, start the cohort once the account is older, or raise limits.nurture.{stage}.invites",
                    severity="warning",
                    code="nurture-cap",
                )
            )
    return problems


def _over(playbook: LoadedPlaybook, counts: Mapping[tuple[str, date], int], cap_name: str, what: str, then: str, where: tuple[Any, ...]) -> list[Problem]:
    """One warning per account over a stage's cap on some day: its worst day, and every day over with that day's own stage and cap."""
    accounts = sharing(playbook)
    over: dict[str, list[tuple[date, int, int, str]]] = defaultdict(list)
    for (account, day), count in sorted(counts.items()):
        lead = accounts.get(account, [account])[0]
        caps = stage_caps(playbook, lead, day)
        cap = getattr(caps, cap_name) if caps is not None else None
        if cap is not None and count > cap:
            over[account].append((day, count, cap, stage_of(playbook, lead, day) or ""))
    problems = []
    for account, found in over.items():
        day, count, cap, stage = max(found, key=lambda item: item[1] - item[2])
        ids = accounts.get(account, [account])
        who = f"persona {ids[0]}" if len(ids) == 1 else f"account {account} (personas {', '.join(ids)})"
        runs: list[tuple[str, int, list[str]]] = []  # (stage, cap, days) in day order
        for d, _, c, st in found:
            if runs and runs[-1][:2] == (st, c):
                runs[-1][2].append(d.isoformat())
            else:
                runs.append((st, c, [d.isoformat()]))
        days = "; ".join(f"{', '.join(shown[:5])}{f' … ({len(shown)} days)' if len(shown) > 5 else ''} as a {STAGES[st]} ({st}, cap {c})" for st, c, shown in runs)
        problems.append(
            playbook.located.problem(
                where,
                f"{who} would have {count} {what} on {day} as a {STAGES[stage]} ({stage}) account, above its cap of {cap}; over on {days}: {then}",
                hint=f"raise limits.nurture.{stage}.{cap_name}, spread them over more days, or start later (养号 first)",
                severity="warning",
                code="nurture-cap",
            )
        )
    return problems


def _moment(value: Any) -> datetime:
    """A contact's added_at as check's contacts carry it (a datetime, or the store's text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
