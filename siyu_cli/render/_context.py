"""What a template sees (playbook-spec.md, "What a template sees")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from siyu_cli.playbook import CohortRun, LoadedPlaybook
from siyu_cli.timeline import Occurrence

SAMPLE_CONTACT: dict[str, Any] = {
    "id": "sample",
    "name": "示例联系人",
    "tags": [],
    "source": None,
    "tier": None,
    "account": None,
    "cohort": None,
    "added_at": None,
    "sample": True,
}


def sample_stats(at: datetime, *, empty: bool = False) -> dict[str, list[Any]]:
    """The shape of real `stats` entries (store.contacts_with_event): two sample contacts, or none.

    check renders every data-driven template both ways, and preview shows both branches with an empty store."""
    people: list[dict[str, Any]] = []
    if not empty:
        people = [{"id": "sample-1", "name": "示例学员一", "at": at, "tags": []}, {"id": "sample-2", "name": "示例学员二", "at": at, "tags": []}]
    return {name + suffix: people for name in ("checkins", "joined", "orders") for suffix in ("", "_yesterday")}


class ContextBuilder:
    """Builds the parts shared by every draft once, then layers the per-draft ones on top."""

    def __init__(self, playbook: LoadedPlaybook) -> None:
        model = playbook.model
        self.playbook = playbook
        self.personas = {p.id: p.model_dump() for p in model.personas}
        self.products = {p.id: p.model_dump() for p in model.products}
        self.groups = {g.id: g.model_dump() for g in model.groups}
        self.hooks = {h.id: h.model_dump(exclude={"welcome"}) for h in model.hooks}
        self.base = {
            "personas": self.personas,
            "products": self.products,
            "vars": dict(model.vars),
            "playbook": {"id": model.id, "title": model.title, "days": model.days, "timezone": model.timezone},
        }
        self._phase_cache: dict[int, dict[str, Any] | None] = {}
        # The last occurrence's context without its contact: an audience of thousands shares it.
        self._last: tuple[Occurrence, CohortRun, Mapping[str, Any] | None, dict[str, Any]] | None = None

    def phase(self, day: int) -> dict[str, Any] | None:
        if day not in self._phase_cache:
            phase = self.playbook.phase_of(day) if 1 <= day <= self.playbook.model.days else None
            if phase is not None:
                self._phase_cache[day] = {"id": phase.id, "title": phase.title}
            elif self.playbook.model.phases:
                # A welcome step after the last day: `phase.id == "convert"` stays false, and nothing prints "None".
                self._phase_cache[day] = {"id": "", "title": ""}
            else:
                # No phases at all: `{{ phase.title }}` is an undefined-variable error in check, not "None" in a draft.
                self._phase_cache[day] = {}
        return self._phase_cache[day]

    def for_occurrence(
        self,
        occurrence: Occurrence,
        cohort: CohortRun,
        *,
        contact: Mapping[str, Any] | None = None,
        stats: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        last = self._last
        if last is not None and last[0] is occurrence and last[1] is cohort and last[2] is stats:
            shared = last[3]
        else:
            beat = occurrence.beat
            shared = dict(self.base)
            shared.update(
                day=occurrence.day,
                date=occurrence.date,
                time=occurrence.at.strftime("%H:%M"),
                phase=self.phase(occurrence.day),
                beat={"id": beat.id, "title": beat.title or beat.id, "channel": beat.channel, "at": occurrence.at.strftime("%H:%M")},
                persona=self.personas.get(occurrence.persona),
                cohort={"id": cohort.id, "start": cohort.start},
                category=occurrence.category,
                stats=stats if stats is not None else _empty(),
            )
            if occurrence.target_kind == "group":
                shared["group"] = self.groups.get(occurrence.target_id, {"id": occurrence.target_id, "name": occurrence.target_id})
            self._last = (occurrence, cohort, stats, shared)
        context = dict(shared)
        if contact is not None:
            context["contact"] = contact
        return context

    def for_step(self, run: Any, step: Any, persona: str, contact: Mapping[str, Any], cohort: CohortRun, day: int, due: datetime) -> dict[str, Any]:
        """A journey or welcome step: what a private beat sees, plus `journey` and `entry` (and `hook` when it came through one)."""
        route = run.route
        tz = self.playbook.tz
        entered = run.entered_at.astimezone(tz)
        local_due = due.astimezone(tz)
        entry = run.entry
        context = dict(self.base)
        context.update(
            day=day,
            date=local_due.date(),
            time=local_due.strftime("%H:%M"),
            phase=self.phase(day),
            beat={"id": route.beat_id(step), "title": route.title, "channel": "private", "at": local_due.strftime("%H:%M")},
            persona=self.personas.get(persona),
            cohort={"id": cohort.id, "start": cohort.start},
            contact=contact,
            stats=_empty(),
            journey={
                "id": route.id,
                "title": route.title,
                "step": step.id,
                "entered_at": entered,
                "day": (local_due.date() - entered.date()).days + 1,
            },
            entry={
                "type": entry[1],
                "at": entered,
                "hook": run.hook.id if run.hook is not None else entry[3],
                "amount": entry[4],
                "props": json.loads(entry[5]) if entry[5] else {},
            },
        )
        if run.hook is not None:
            context["hook"] = self.hooks[run.hook.id]
        return context


def campaign_day(cohort: CohortRun, when: date) -> int:
    return (when - cohort.start).days + 1


def _empty() -> dict[str, list[Any]]:
    return {name + suffix: [] for name in ("checkins", "joined", "orders") for suffix in ("", "_yesterday")}


def day_bounds(when: date, tz: Any) -> tuple[Any, Any]:
    from datetime import datetime, time

    start = datetime.combine(when, time(0, 0), tzinfo=tz)
    return start, start + timedelta(days=1)
