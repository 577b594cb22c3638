"""check's 养号 warnings: a day on which a beat's or a journey's 1v1 sends, a hook's adds or the invitations into a
persona's groups pass the account's stage cap; and an account that is registered after the campaign starts.

The runner carries 1v1 drafts over such a cap to the next day (siyu_cli.dispatch._capacity); adds and
invitations are the contacts' own acts, so more of them than a young account should take are only warned about.
With the store's contacts the sends and adds are counted (as for the account cap), and the invitations are the
store's `group_joined` events into the persona's groups. Without contacts there is nothing to count, so check
estimates from the playbook's own figures and says so: an account that accepts its stage's cap of adds every day
gets, from the journeys those adds enter, this many 1v1 sends a day; and groups of a persona whose stage invites
nobody (`invites: 0`) that take their members while it is in that stage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from siyu_cli._time import from_db
from siyu_cli.dispatch._capacity import STAGES, stage_caps, stage_of
from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner


def nurture_caps(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], planner: Planner | None = None) -> list[Problem]:
    model = playbook.model
    problems = _not_yet_registered(playbook)
    if model.limits.nurture is None or not any(p.account_since for p in model.personas):
        return problems
    if not contacts:
        return problems + _estimated(playbook)
    planner = planner or Planner(playbook, contacts=contacts)
    sends: dict[tuple[str, date], int] = defaultdict(int)
    first = model.personas[0].id
    for beat in model.beats:
        if beat.channel != "private":
            continue
        size = 0
        for cohort in playbook.cohorts:
            size = len(planner.audience(cohort, beat.id, playbook.audience(beat)))
            for day in playbook.beat_days_of(cohort)[beat.id]:
                sends[(beat.persona or first, cohort.start + timedelta(days=day - 1))] += size * len(beat.times)
    for cohort in playbook.cohorts:
        for draft in planner.journey_calendar(cohort):
            if draft.channel == "journey":
                sends[(draft.persona, draft.date)] += 1
    problems += _over(playbook, sends, "private", "1v1 sends", "they carry over to the next day", ("limits", "nurture"))
    adds: dict[tuple[str, date], int] = defaultdict(int)
    hooks = {key: hook for hook in model.hooks for key in (hook.id, hook.code) if key}
    owners = {p.account: p.id for p in model.personas if p.account}
    for contact in contacts:
        hook = hooks.get(str(contact.get("source") or ""))
        persona = (hook.persona if hook else None) or owners.get(str(contact.get("account") or ""))
        if persona and contact.get("added_at"):
            adds[(persona, _moment(contact["added_at"]).astimezone(playbook.tz).date())] += 1
    where = next((("hooks", i) for i, hook in enumerate(model.hooks) if hook.persona), ("limits", "nurture"))
    problems += _over(playbook, adds, "adds", "adds accepted", "an account that accepts too many adds too young risks a ban", where)
    if planner.db is not None:
        problems += _over(playbook, _invitations(playbook, planner.db), "invites", "group invitations", "invitations are the account's own act: the runner cannot hold them back", _groups_path(playbook))
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
    """The store's group_joined events into each persona's groups (a group's persona, else the first), per local day."""
    first = playbook.model.personas[0].id
    owner = {group.id: group.persona or first for group in playbook.model.groups}
    counts: dict[tuple[str, date], int] = defaultdict(int)
    for group, at in db.execute("SELECT group_id, at FROM events WHERE type = 'group_joined' AND group_id IS NOT NULL"):
        if group in owner:
            counts[(owner[group], from_db(at).astimezone(playbook.tz).date())] += 1
    return counts


def _groups_path(playbook: LoadedPlaybook) -> tuple[Any, ...]:
    return ("groups",) if playbook.model.groups else ("limits", "nurture")


def _estimated(playbook: LoadedPlaybook) -> list[Problem]:
    """Without contacts: what the playbook's own figures say an account's stage caps come to (see the module's docstring).

    The adds are modelled as `plan capacity` models them (siyu_cli.report._staffing): spread over the persona's
    hooks alike, each hook's tier mix, and the journeys a contact of that hook and tier enters on its add."""
    from siyu_cli.dispatch._capacity import PersonalRule
    from siyu_cli.render import Renderer
    from siyu_cli.report._staffing import TIER_OF, _tier_mix, _work_days

    model = playbook.model
    start = min(run.start for run in playbook.cohorts)
    end = max(run.start for run in playbook.cohorts) + timedelta(days=model.days - 1)
    rule = PersonalRule(playbook, Renderer(playbook))
    sends: dict[tuple[str, date], float] = defaultdict(float)
    for persona in model.personas:
        if persona.account_since is None:
            continue
        hooks: list[Any] = [hook for hook in model.hooks if hook.persona == persona.id]
        if not hooks and persona.id == model.personas[0].id and not any(hook.persona for hook in model.hooks):
            hooks = list(model.hooks) or [None]
        for hook in hooks:
            for tier, share in _tier_mix(hook):
                tag = next(word for word, value in TIER_OF.items() if value == tier)
                after, _ = _work_days(playbook, hook, tag, rule, persona=persona.id)
                for n in range((end - start).days + 1):
                    added = start + timedelta(days=n)
                    caps = stage_caps(playbook, persona.id, added)
                    if caps is None or caps.adds is None:
                        continue
                    for offset in after:
                        sends[(persona.id, added + timedelta(days=offset))] += caps.adds / len(hooks) * share
    then = (
        "an estimate from the playbook's own figures, as the store has no contacts to count: an account that accepts "
        "its stage's cap of adds every day (through its hooks, by their tiers) gets that many steps of its journeys, and the rest carry over day after day"
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
    over = []
    for (persona, day), count in sorted(counts.items()):
        caps = stage_caps(playbook, persona, day)
        cap = getattr(caps, cap_name) if caps is not None else None
        if cap is not None and count > cap:
            over.append((persona, day, count, cap))
    if not over:
        return []
    persona, day, count, cap = max(over, key=lambda item: item[2] - item[3])
    stage = stage_of(playbook, persona, day) or ""
    days = ", ".join(sorted({d.isoformat() for _, d, _, _ in over})[:5]) + (" …" if len(over) > 5 else "")
    return [
        playbook.located.problem(
            where,
            f"persona {persona} would have {count} {what} on {day} as a {STAGES[stage]} ({stage}) account, above its cap of {cap}; over on {days}: {then}",
            hint=f"raise limits.nurture.{stage}.{cap_name}, spread them over more days, or start later (养号 first)",
            severity="warning",
            code="nurture-cap",
        )
    ]


def _moment(value: Any) -> datetime:
    """A contact's added_at as check's contacts carry it (a datetime, or the store's text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
