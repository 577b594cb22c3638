"""check for attachments (files exist, WeCom's sizes) and for beats that skip groups by health."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.playbook._yaml import Path_
from siyu_cli.render import search_path
from siyu_cli.render._media import problems as media_problems
from siyu_cli.render._media import resolve


def _lists(playbook: LoadedPlaybook) -> Iterator[tuple[Path_, Sequence[Any]]]:
    """Every `attachments:` list of the playbook with its YAML path."""
    model = playbook.model
    for bi, beat in enumerate(model.beats):
        yield ("beats", bi, "attachments"), beat.attachments
        for category, spec in (beat.pools or {}).items():
            for pi, entry in enumerate(spec if isinstance(spec, list) else []):
                if not isinstance(entry, str):
                    yield ("beats", bi, "pools", category, pi, "attachments"), entry.attachments
    for hi, hook in enumerate(model.hooks):
        for si, step in enumerate(hook.welcome):
            yield ("hooks", hi, "welcome", si, "attachments"), step.attachments
    for ji, journey in enumerate(model.journeys):
        for si, journey_step in enumerate(journey.steps):
            yield ("journeys", ji, "steps", si, "attachments"), journey_step.attachments


def attachment_problems(playbook: LoadedPlaybook) -> list[Problem]:
    """Files beside the playbook that are missing or larger than WeCom takes (an image 2 MB, a video 10 MB)."""
    found: list[Problem] = []
    search = search_path(playbook)
    for path, items in _lists(playbook):
        for index, media in enumerate(resolve(items, search)):
            for message in media_problems(media):
                hint = "files are looked up like templates: beside the playbook, then templates/; fix the name or add the file" if "no such file" in message else "shrink or re-encode it"
                found.append(playbook.located.problem(path + (index,), message, hint=hint, code="attachment"))
    return found


def health_problems(playbook: LoadedPlaybook, db: Any = None) -> list[Problem]:
    """A beat filtered by health whose days fall before its groups have a window of history: they are all new 新群."""
    from siyu_cli.health import HealthBook

    beats = [(bi, beat) for bi, beat in enumerate(playbook.model.beats) if beat.health is not None and "new" not in beat.health]
    if not beats:
        return []
    book = HealthBook(playbook, db)
    window = playbook.model.group_health.window_days
    found: list[Problem] = []
    for bi, beat in beats:
        days: set[int] = set()
        for run in playbook.cohorts:
            groups = [g for g in (beat.group_ids or run.group_ids) if g in run.group_ids]
            for day in playbook.beat_days_of(run)[beat.id]:
                when = run.start + timedelta(days=day - 1)
                if groups and all((when - (book.first_day(g) or run.start)).days < window for g in groups):
                    days.add(day)
        if days:
            shown = ", ".join(str(d) for d in sorted(days)[:8]) + (" …" if len(days) > 8 else "")
            found.append(
                playbook.located.problem(
                    ("beats", bi, "groups", "health"),
                    f"on day(s) {shown} every group of this beat is new 新群 (less than the {window}-day window of history), so the beat posts nowhere",
                    hint=f"add new to health, or start the beat after day {window}",
                    severity="warning",
                    code="group-health",
                )
            )
    return found
