"""The whole campaign for people outside the terminal: audiences with their sizes, a CSV for Excel, an iCalendar feed.

Imports siyu_cli.render inside the functions: render imports siyu_cli.timeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from siyu_cli._time import format_duration
from siyu_cli.playbook import CohortRun, LoadedPlaybook
from siyu_cli.timeline._timeline import Occurrence


@dataclass(frozen=True)
class Audience:
    """Who a 1v1 beat, a journey or a welcome sequence reaches, and how many contacts of the store (None: no store)."""

    kind: str  # private | journey | welcome | group
    id: str
    title: str
    expression: str
    cohort: str
    size: int | None
    deleted: int = 0  # a 1v1 beat's: contacts its audience matches who deleted the account (not counted in size)


def relative_when(step: Any) -> str:
    """A journey or welcome step on the contact's own clock: "at entry", "entry + 2h", "entry + 3d at 20:00"."""
    when = f"entry + {format_duration(step.after)}" if step.after else "at entry"
    return when + (f" at {step.at:%H:%M}" if step.at else "")


# How a group's size was counted: its join/leave events, or (with none in the store) the cohort's contacts.
JOINED = "members (group_joined events)"
BY_COHORT = "members (no group_joined events: the cohort's contacts)"


def audiences(
    playbook: LoadedPlaybook, planner: Any, memberships: dict[str, set[str]], cohorts: Sequence[CohortRun], evented: Collection[str] = ()
) -> list[Audience]:
    """Every audience of the campaign per cohort; sizes from the store's contacts (tags as of now), None without contacts.
    A 1v1 beat's size leaves out the contacts who deleted the account (the runner records theirs not_friend).

    `memberships` gives a contact with no membership events its single-group cohort's group; a group in
    `evented` has join/leave events in the store, and only those count, as report groups counts them.
    """
    known = not planner.sample_contact
    found: list[Audience] = []
    members: dict[str, int] = {}
    joined = _event_members(planner.db) if evented and known else {}
    for cid, groups in memberships.items():
        for group in groups:
            if group not in evented or group in joined.get(cid, ()):
                members[group] = members.get(group, 0) + 1
    entered: dict[tuple[str, str], set[str]] = {}
    if known and planner.book.routes:
        planner.prepare()
        for person in planner.contacts:
            for run in planner.runs.get(str(person["id"]), ()):
                entered.setdefault((planner.cohort_of(person), run.route.id), set()).add(str(person["id"]))
    names = {g.id: g.name for g in playbook.model.groups}
    for cohort in cohorts:
        for beat in playbook.model.beats:
            if beat.channel == "private":
                size, deleted = None, 0
                if known:
                    size = len(planner.recipients(cohort, beat.id, playbook.audience(beat)))
                    deleted = len(planner.audience(cohort, beat.id, playbook.audience(beat))) - size
                found.append(Audience("private", beat.id, beat.title or beat.id, beat.audience or "", cohort.id, size, deleted))
        for group in cohort.group_ids:
            how = JOINED if group in evented else (BY_COHORT if known else "members")
            found.append(Audience("group", group, names.get(group, group), how, cohort.id, members.get(group, 0) if known else None))
        for route in planner.book.routes:
            size = len(entered.get((cohort.id, route.id), ())) if known else None
            found.append(Audience(route.kind, route.id, route.title, _entrants(route), cohort.id, size))
    return found


def _event_members(db: Any) -> dict[str, set[str]]:
    from siyu_cli.store import group_memberships

    return group_memberships(db) if db is not None else {}


def _entrants(route: Any) -> str:
    """Who enters a journey or welcome sequence: its event, hook and audience."""
    return route.enter_type + (f" via {route.enter_hook}" if route.enter_hook else "") + (f" and {route.audience.source}" if route.audience is not None else "")


CSV_COLUMNS = (
    "cohort", "day", "date", "weekday", "calendar", "holiday", "phase", "time", "when", "beat", "title", "channel",
    "persona", "target", "audience", "audience_size", "category", "content",
)
WEEKDAYS = "一二三四五六日"


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """UTF-8 CSV with a BOM: Excel reads one without it in the system code page and garbles the Chinese."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return "\ufeff" + buffer.getvalue()


def by_account(playbook: LoadedPlaybook, occ: Occurrence) -> bool:
    """A private beat that names no persona goes to each contact from the account the contact added (Planner._private):
    with several personas it has no one sender to name."""
    return occ.target_kind == "audience" and occ.beat.persona is None and len(playbook.model.personas) > 1


def occurrence_row(playbook: LoadedPlaybook, occ: Occurrence, day: Any, target: str, audience: tuple[str, int | None] | None) -> list[Any]:
    """One CSV row of a beat occurrence (`day`: its place on China's calendar, or None)."""
    phase = playbook.phase_of(occ.day)
    content = occ.content.name if occ.content else ("variants " + "/".join(occ.beat.variants) if occ.beat.variants else "")
    expression, size = audience if audience else ("", None)
    return [
        occ.cohort, occ.day, occ.date.isoformat(), "周" + WEEKDAYS[occ.date.weekday()], day.kind if day else None, (day.name or None) if day else None,
        phase.title if phase else None, f"{occ.at:%H:%M}", None, occ.beat.id, occ.beat.title or occ.beat.id, occ.channel,
        "the contact's account" if by_account(playbook, occ) else {p.id: p.name for p in playbook.model.personas}.get(occ.persona, occ.persona), target,
        expression, size, occ.category, content,
    ]


def step_rows(playbook: LoadedPlaybook, planner: Any, sizes: dict[str, int | None]) -> list[list[Any]]:
    """Journey and welcome steps as relative rows (each contact's own clock), once for every cohort."""
    rows: list[list[Any]] = []
    names = {p.id: p.name for p in playbook.model.personas}
    for route in planner.book.routes:
        persona = names.get(route.persona, route.persona) if route.persona else "the contact's account"
        for step in route.steps:
            content = step.template or ("inline text" if step.text is not None else "variants " + "/".join(step.variants or {}))
            rows.append(
                [
                    None, None, None, None, None, None, None, None, relative_when(step), route.beat_id(step), f"{route.title} · {step.id if route.kind == 'journey' else step.index + 1}",
                    route.kind, persona, "each contact who enters", _entrants(route), sizes.get(route.id), None, content,
                ]
            )
    return rows


def ics_text(playbook: LoadedPlaybook, cohorts: Sequence[CohortRun], *, now: datetime) -> str:
    """An RFC 5545 calendar: one VEVENT per beat occurrence (per group, per Moments persona, per 1v1 audience).

    DTSTART in UTC (every client shows it in its own zone); DESCRIPTION is the rendered draft, for a sample contact
    where the beat is 1v1 (every variant of an A/B beat); the UID is the occurrence's slot (cohort, beat, day, which
    of its times, target), so a re-export, even with a beat's time moved, updates events instead of adding them.
    """
    from siyu_cli.render import Planner

    planner = Planner(playbook, sample_contact=True)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//siyu//campaign timeline//ZH", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(playbook.model.title)}", f"X-WR-TIMEZONE:{playbook.model.timezone}",
    ]
    for cohort in cohorts:
        for draft in planner.drafts(cohort=cohort.id, journeys=False):
            lines += _event(playbook, planner, draft, stamp, multiple=len(playbook.cohorts) > 1)
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)


def _event(playbook: LoadedPlaybook, planner: Any, draft: Any, stamp: str, *, multiple: bool) -> list[str]:
    names = planner.variants_of(draft)
    parts: list[str] = []
    for variant in names or [None]:
        shown = planner.render(planner.as_contact(draft, "sample", variant) if variant else draft)
        text = "(holdout 对照组: no message)" if shown.holdout else (shown.text if shown.error is None else f"template error: {shown.error}")
        parts.append(f"variant {variant}:\n{text}" if variant else str(text))
    channel = {"group": "群", "private": "私聊", "moments": "朋友圈", "live": "直播"}.get(draft.channel, draft.channel)
    where = f"{draft.channel} {channel} → {draft.target_label}" + (f" · cohort {draft.cohort}" if multiple else "") + f" · day {draft.day}"
    uid = hashlib.sha1(f"{playbook.id}\x1f{draft.slot}".encode()).hexdigest()[:24]
    return [
        "BEGIN:VEVENT",
        f"UID:{uid}@siyu",
        f"DTSTAMP:{stamp}",
        f"DTSTART:{draft.occurrence_at.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        "DURATION:PT15M",
        f"SUMMARY:{_escape(f'{draft.beat_title} · {draft.persona_name}')}",
        f"DESCRIPTION:{_escape(chr(10).join(parts) + chr(10) + chr(10) + where)}",
        f"CATEGORIES:{_escape(draft.channel)}",
        "END:VEVENT",
    ]


def _escape(text: str) -> str:
    """RFC 5545 TEXT: backslash, semicolon, comma and newline escaped."""
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continued after CRLF and a space; a UTF-8 character is never split."""
    parts: list[str] = []
    current, size, limit = [], 0, 75
    for ch in line:
        width = len(ch.encode("utf-8"))
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, 74  # the leading space of a continuation line is one of its 75
        current.append(ch)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)
