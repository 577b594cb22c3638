"""check for attachments (files exist, their bytes are a type WeCom takes, WeCom's sizes) and for beats that skip groups by health."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.playbook._yaml import Located, Path_
from siyu_cli.render import search_path
from siyu_cli.render._media import problems as media_problems
from siyu_cli.render._media import resolve


def attachment_lists(playbook: LoadedPlaybook) -> Iterator[tuple[Path_, Sequence[Any]]]:
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
    """Files beside the playbook that are missing, not what WeCom takes or larger (an image 2 MB, a video 10 MB), and file covers a robot cannot show."""
    found: list[Problem] = []
    robot = any(getattr(output, "format", None) == "wecom" for output in playbook.model.outputs)
    search = search_path(playbook)
    for path, items in attachment_lists(playbook):
        for index, media in enumerate(resolve(items, search)):
            found.extend(_file_problems(playbook.located, path + (index,), media, playbook.base_dir))
            if robot and media.kind == "link" and media.cover_path is not None:
                found.append(
                    playbook.located.problem(
                        path + (index, "cover"),
                        f"a WeCom robot's link card (news) shows its picture from a URL only: the robot sends this card without {media.cover} and names the file under the text",
                        hint="put the picture at an https:// URL and give that as cover (the outbox copies the file either way)",
                        severity="warning",
                        code="attachment",
                    )
                )
    return found


def _file_problems(located: Located, where: Path_, media: Any, base: Path) -> Iterator[Problem]:
    """The file's problems at its place in the playbook, each naming the file relative to the playbook's folder."""
    for problem in media_problems(media, base):
        yield located.problem(where, problem.message, hint=problem.hint, severity=problem.severity, code="attachment")


def raw_attachment_problems(located: Located, path: Path) -> list[Problem]:
    """The files of a playbook that does not validate, in the same round as its structural errors: every
    attachment that is valid on its own (the others have their own errors) is looked up and measured."""
    from pydantic import ValidationError

    from siyu_cli.check._raw import _Beside
    from siyu_cli.playbook._model import Attachment

    base = path.resolve().parent
    search = search_path(_Beside(base))  # type: ignore[arg-type]
    found: list[Problem] = []
    for where, items in _raw_lists(located.data, ()):
        for index, item in enumerate(items):
            try:
                attachment = Attachment.model_validate(item)
            except ValidationError:
                continue
            found.extend(_file_problems(located, where + (index,), resolve([attachment], search)[0], base))
    return found


def _raw_lists(node: Any, here: Path_) -> Iterator[tuple[Path_, list[Any]]]:
    """Every `attachments:` list in the file's beats, hooks and journeys, however the rest of it validates."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "attachments" and isinstance(value, list) and here:
                yield here + (key,), value
            elif isinstance(value, dict | list) and (here or key in ("beats", "hooks", "journeys")):
                yield from _raw_lists(value, here + (key,))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _raw_lists(item, here + (index,))


def health_problems(playbook: LoadedPlaybook, db: Any = None) -> list[Problem]:
    """A beat filtered by health whose days fall before its groups have a window of history: they are all new 新群.
    With a store that holds no group activity at all, every filtered beat: it has nothing to decide on."""
    from siyu_cli.health import HealthBook

    filtered = [(bi, beat) for bi, beat in enumerate(playbook.model.beats) if beat.health is not None]
    if not filtered:
        return []
    book = HealthBook(playbook, db)
    found: list[Problem] = []
    if db is not None and book.measured is None:
        for bi, _beat in filtered:
            found.append(
                playbook.located.problem(
                    ("beats", bi, "groups", "health"),
                    "the store has no group activity (no message, check-in or order counted for a group): every group is unknown 未知, "
                    "so this beat posts in all of them and its health filter decides nothing",
                    hint="import the groups' messages, check-ins or orders with `siyu import events` — WeCom exports group messages only with 会话存档 — or drop health: from groups",
                    severity="warning",
                    code="group-health-no-data",
                )
            )
    beats = [(bi, beat) for bi, beat in filtered if "new" not in (beat.health or ())]
    window = playbook.model.group_health.window_days
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
