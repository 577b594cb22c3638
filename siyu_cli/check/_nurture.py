"""check's 养号 warnings: a day on which a beat's or a journey's 1v1 sends, or a hook's adds, pass the account's stage cap.

The runner carries 1v1 drafts over such a cap to the next day (siyu_cli.dispatch._capacity); adds are
the contacts' own act, so a hook bringing more adds than a new account should accept is only warned about.
Sizes come from the store's contacts, as for the account cap: without contacts there is nothing to count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from siyu_cli.dispatch._capacity import STAGES, stage_caps, stage_of
from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner


def nurture_caps(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], planner: Planner | None = None) -> list[Problem]:
    model = playbook.model
    if model.limits.nurture is None or not contacts or not any(p.account_since for p in model.personas):
        return []
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
    problems = _over(playbook, sends, "private", "1v1 sends", "they carry over to the next day", ("limits", "nurture"))
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
            hint=f"raise limits.nurture.{stage}.{cap_name}, spread the sends or adds over more days, or start later (养号 first)",
            severity="warning",
            code="nurture-cap",
        )
    ]


def _moment(value: Any) -> datetime:
    """A contact's added_at as check's contacts carry it (a datetime, or the store's text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
