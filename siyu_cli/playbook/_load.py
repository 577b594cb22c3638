"""Reading a playbook: YAML → located data → model, with every problem collected, not only the first."""

from __future__ import annotations

import difflib
import hashlib
import re
import typing
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from siyu_cli._time import zone
from siyu_cli.errors import PlaybookInvalid, Problem
from siyu_cli.playbook import _days, _tags
from siyu_cli.playbook._calendar import WORDS as CALENDAR_WORDS
from siyu_cli.playbook._calendar import Calendar, package_version
from siyu_cli.playbook._model import ENV_NAME, PATTERNS, SLUG, USERID, Beat, Cohort, Playbook, WecomOutput
from siyu_cli.playbook._yaml import Located, Path_, Yaml11, format_path, load_located

DEFAULT_COHORT = "default"


@dataclass(frozen=True)
class CohortRun:
    """One batch of the campaign: its own day 1 and its groups."""

    id: str
    start: date
    group_ids: tuple[str, ...]


@dataclass
class LoadedPlaybook:
    """A valid playbook and what was derived from it once: days per beat, parsed segments, the zone."""

    model: Playbook
    path: Path
    located: Located
    content_hash: str
    problems: list[Problem] = field(default_factory=list)
    _kinds: dict[str, dict[str, set[int]]] = field(default_factory=dict, repr=False)
    _beat_days: dict[str, dict[str, frozenset[int]]] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return self.model.id

    @cached_property
    def tz(self) -> tzinfo:
        return zone(self.model.timezone)

    @cached_property
    def phase_days(self) -> dict[str, Any]:
        return {phase.id: phase.days for phase in self.model.phases}

    def days_of(self, spec: Any, cohort: CohortRun | None = None) -> list[int]:
        """The campaign days a rule names; calendar rules are read on `cohort`'s dates (default: the first cohort)."""
        run = cohort or self.cohorts[0]
        calendar = self._calendar_days(run) if _days.uses_calendar(spec) else None
        return _days.resolve(spec, self.model.days, self.phase_days, calendar)

    @cached_property
    def calendar(self) -> Calendar:
        """China's calendar over every cohort's dates, with the playbook's overrides: built once per campaign."""
        first = min(run.start for run in self.cohorts)
        last = max(run.start for run in self.cohorts) + timedelta(days=self.model.days - 1)
        overrides = self.model.calendar
        return Calendar(first, last, off=overrides.off_dates, work=overrides.work_dates, complete=overrides.complete_dates)

    @cached_property
    def uses_calendar(self) -> bool:
        return any(_days.uses_calendar(beat.days) for beat in self.model.beats)

    def _calendar_days(self, cohort: CohortRun) -> _days.CalendarDays:
        if cohort.id not in self._kinds:
            kinds: dict[str, set[int]] = {word: set() for word in CALENDAR_WORDS}
            for day in range(1, self.model.days + 1):
                known = self.calendar.known(cohort.start + timedelta(days=day - 1))  # read() refused rules reaching an unknown date
                if known is not None:
                    kinds[known.kind + "s"].add(day)
            self._kinds[cohort.id] = kinds
        return self._kinds[cohort.id].__getitem__

    def beat_days_of(self, cohort: CohortRun) -> dict[str, frozenset[int]]:
        """Each beat's days in one cohort: a calendar rule (workdays, not: holidays) depends on the cohort's dates."""
        if cohort.id not in self._beat_days:
            self._beat_days[cohort.id] = {beat.id: frozenset(self.days_of(beat.days, cohort)) for beat in self.model.beats}
        return self._beat_days[cohort.id]

    @cached_property
    def beat_days(self) -> dict[str, frozenset[int]]:
        """The days each beat runs in any cohort (per cohort: beat_days_of)."""
        found: dict[str, set[int]] = {beat.id: set() for beat in self.model.beats}
        for run in self.cohorts if self.uses_calendar else self.cohorts[:1]:
            for beat_id, days in self.beat_days_of(run).items():
                found[beat_id] |= days
        return {beat_id: frozenset(days) for beat_id, days in found.items()}

    def phase_of(self, day: int) -> Any:
        for phase in self.model.phases:
            if day in self.days_of(phase.days):
                return phase
        return None

    @cached_property
    def cohorts(self) -> list[CohortRun]:
        all_groups = tuple(group.id for group in self.model.groups)
        if not self.model.cohorts:
            return [CohortRun(DEFAULT_COHORT, self.model.start, all_groups)]
        return [_cohort_run(cohort, all_groups) for cohort in self.model.cohorts]

    def cohort(self, cohort_id: str | None) -> CohortRun:
        from siyu_cli.errors import SiyuError

        if cohort_id is None:
            return self.cohorts[0]
        for cohort in self.cohorts:
            if cohort.id == cohort_id:
                return cohort
        known = ", ".join(c.id for c in self.cohorts)
        raise SiyuError(f"{self.path}: no cohort {cohort_id!r}", hint=f"cohorts: {known}")

    def audience(self, beat: Beat) -> _tags.TagExpr:
        expr = self.model.segments.get(beat.audience or "", beat.audience or "")
        return _tags.parse(expr)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


def _cohort_run(cohort: Cohort, all_groups: tuple[str, ...]) -> CohortRun:
    groups = tuple(cohort.groups) if cohort.groups is not None else all_groups
    return CohortRun(cohort.id, cohort.start, groups)


def read(path: Path) -> LoadedPlaybook:
    """Load and validate; raise PlaybookInvalid with every structural and reference problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlaybookInvalid([Problem(f"cannot read playbook: {exc.strerror or exc}", file=str(path))], str(path)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = Problem(f"not UTF-8 (byte {exc.start})", file=str(path), hint="save the playbook as UTF-8")
        raise PlaybookInvalid([problem], str(path)) from None
    located, problems = load_located(text, str(path))
    if located is None:
        raise PlaybookInvalid(problems, str(path))
    if not isinstance(located.data, dict):
        problems.append(located.problem((), "a playbook is a YAML mapping (siyu: 1, id: …, beats: …)"))
        raise PlaybookInvalid(problems, str(path))
    model: Playbook | None = None
    try:
        model = Playbook.model_validate(located.data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, located))
    problems.extend(_reference_problems(located))
    problems.extend(_one_corp_problems(located))
    problems.extend(_shared_chat_problems(located))
    problems.extend(_yaml11_problems(located))
    errors = [p for p in problems if p.severity == "error"]
    if errors or model is None:
        raise PlaybookInvalid(_dedupe(problems), str(path))
    digest = hashlib.sha256(raw).hexdigest()[:16]
    loaded = LoadedPlaybook(model=model, path=path, located=located, content_hash=digest, problems=problems)
    unknown = _calendar_problems(loaded)
    if unknown:
        raise PlaybookInvalid(_dedupe(problems + unknown), str(path))
    return loaded


def _calendar_problems(playbook: LoadedPlaybook) -> list[Problem]:
    """Each calendar rule that reaches a date with no holiday schedule: one problem per beat, at its first such date."""
    if not playbook.uses_calendar:
        return []
    problems = []
    model = playbook.model
    for index, beat in enumerate(model.beats):
        if not _days.uses_calendar(beat.days):
            continue
        reach = _days.resolve(beat.days, model.days, playbook.phase_days)  # every day the rule could name
        found = next(
            ((run, day, when, gap) for run in playbook.cohorts for day in reach if (gap := playbook.calendar.gap(when := run.start + timedelta(days=day - 1)))),
            None,
        )
        if found is None:
            continue
        run, day, when, gap = found
        cohort = f" of cohort {run.id}" if model.cohorts else ""
        beside = f", next to {gap}" if gap != when else ""
        year = gap.year
        campaign = f"{max(playbook.calendar.first, date(year, 1, 1))}..{min(playbook.calendar.last, date(year, 12, 31))}"
        problems.append(
            playbook.located.problem(
                ("beats", index, "days"),
                f"{_days.describe(beat.days)} needs China's {year} holiday schedule (day {day}{cohort} is {when}{beside}): "
                f"the holidays package ({package_version()}) has no State Council notice for {year}{_own_days(model.calendar, year)}; siyu will not guess it",
                hint=f"copy {year}'s 放假 and 调休上班 days from the State Council notice into calendar: off: [...] and work: [...], then add complete: [{year}] "
                f"(or complete: [{campaign}], only the campaign's dates, once you are sure of them); or pip install -U holidays once it carries {year}",
                code="calendar",
            )
        )
    return problems


def _own_days(overrides: Any, year: int) -> str:
    """What the playbook's calendar: says of a year it does not give whole, for the message."""
    given = sorted(d for d in overrides.complete_dates if d.year == year)
    if given:
        spans = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in _runs(given))
        return f", and calendar: complete: gives {year} only for {spans}"
    if any(d.year == year for d in overrides.off_dates | overrides.work_dates):
        return f", and calendar: lists days of {year} but does not give the year whole (complete:)"
    return ""


def _runs(dates: list[date]) -> list[tuple[date, date]]:
    """Sorted dates as consecutive spans."""
    spans: list[tuple[date, date]] = []
    for moment in dates:
        if spans and moment - spans[-1][1] == timedelta(days=1):
            spans[-1] = (spans[-1][0], moment)
        else:
            spans.append((moment, moment))
    return spans


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    unique = []
    # `chanel: group` is one mistake: the unknown key says it (did you mean 'channel'?), not also a missing 'channel'.
    misspelt = {(p.path.rpartition(".")[0], p.hint) for p in problems if p.code == "unknown-key"}
    for problem in problems:
        missing = re.fullmatch(r"missing required field '(\w+)'", problem.message)
        if missing and (problem.path.rpartition(".")[0], f"did you mean {missing.group(1)!r}?") in misspelt:
            continue
        key = (problem.line, problem.column, problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))


def _validation_problems(exc: ValidationError, located: Located) -> list[Problem]:
    problems: list[Problem] = []
    union_seen: set[Path_] = set()
    errors = [(error, *_clean_loc(error["loc"], located.data)) for error in exc.errors()]
    # A union member the data's shape fits failed further in (`groups: {health: [alive]}`): that is the
    # mistake; the other members' "should be a valid list" at the union itself only misleads.
    deeper = {base for _, path, base in errors if base is not None and len(path) > len(base)}
    for error, path, base in errors:
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(_unknown_key(path, located))
            continue
        if base is not None:
            if path == base and base in deeper:
                continue
            if path in union_seen:
                continue
            union_seen.add(path)
        message = _message(error)
        if kind == "missing":
            problems.append(located.problem(path, f"missing required field {path[-1]!r}", hint=_missing_hint(path)))
            continue
        problems.append(located.problem(path, message, hint=_pattern_hint(error, path)))
    return problems


def _pattern_hint(error: dict[str, Any], path: Path_) -> str:
    """The fix for a value that is not an environment variable's name or a WeCom userid; others get with_hints' hint."""
    pattern = error.get("ctx", {}).get("pattern") if error["type"] == "string_pattern_mismatch" else None
    if pattern == USERID:
        return "copy the staff member's 账号 exactly as the WeCom admin console shows it under 通讯录 (no spaces or Chinese characters), e.g. wecom_userid: aqi"
    if pattern != ENV_NAME:
        return ""
    field = str(path[-1])
    default = WecomOutput.model_fields[field].default if field in WecomOutput.model_fields else None
    spelt = "name a variable as `export NAME=…` spells it (letters, digits and _)"
    if default:
        return f"leave {field} out to read {default}, or {spelt}, e.g. {default}_B"
    return f"{spelt}, e.g. {field}: {'SIYU_WEBHOOK_URL' if field == 'url_env' else 'SIYU_WEBHOOK_SECRET'}"


def _yaml11_problems(located: Located) -> list[Problem]:
    """A warning at each plain value a YAML 1.1 reader takes otherwise (`refund: no` is the text "no", not false)."""
    problems = []
    for item in located.yaml11:
        if isinstance(item.yaml11, bool) and _annotation_at(item.path, located.data) is bool:
            continue  # a true/false field reads yes/no/on/off as 1.1 does
        problems.append(
            located.problem(
                item.path,
                f"{item.text} is read as {_yaml_text(item.value)} (YAML 1.2, as editors read it); a YAML 1.1 reader gives {_yaml_text(item.yaml11)}",
                hint=_yaml11_hint(item),
                severity="warning",
                code="yaml-1.1",
            )
        )
    return problems


def _yaml_text(value: Any) -> str:
    if isinstance(value, str):
        return f'the text "{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else repr(value)


def _yaml11_hint(item: Yaml11) -> str:
    quoted = f'"{item.text}"'
    if isinstance(item.yaml11, bool):
        return f"write {quoted} in quotes for the text, or {_yaml_text(item.yaml11)} for a yes/no value"
    if isinstance(item.value, str):
        return f"write {quoted} in quotes for the text, or the number as {item.yaml11!r}"
    if isinstance(item.yaml11, str):
        return f"write {item.value!r} for the number, or {quoted} in quotes for the text"
    return f"write {item.value!r} or {item.yaml11!r}, whichever you mean, or {quoted} in quotes for the text"


def _annotation_at(path: Path_, data: Any) -> Any:
    """The model's type at `path` (None where the model does not say), unwrapped to the member the data fits."""
    model: Any = Playbook
    node = data
    for part in path:
        node = node[part] if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) else None
        model = _descend(model, part, node)
        if model is None:
            return None
    return _pick(model, node)


def _clean_loc(loc: tuple[Any, ...], data: Any) -> tuple[Path_, Path_ | None]:
    """Drop pydantic's union-branch tags, which are not in the file; with the path up to the first one dropped (None: none was)."""
    path: list[str | int] = []
    base: Path_ | None = None
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and isinstance(node, dict) and isinstance(part, str) and not _is_branch_tag(part):
            path.append(part)
        elif base is None:
            base = tuple(path)
    return tuple(path), base


def _is_branch_tag(part: str) -> bool:
    return part[:1].isupper() or "[" in part or part in {"str", "int", "float", "list", "dict", "date", "bool"}


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] == "string_pattern_mismatch":
        message = PATTERNS.get(error.get("ctx", {}).get("pattern"), PATTERNS[SLUG])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    value = error.get("input")
    if error["type"] in {"string_type", "int_type", "int_parsing", "float_parsing", "literal_error", "date_from_datetime_parsing", "date_parsing", "string_pattern_mismatch", "bool_type", "list_type", "dict_type", "model_type", "float_type"} and not isinstance(value, (dict, list)):
        message += f" (got {value!r})"
    return message


def _missing_hint(path: Path_) -> str:
    hints = {
        "siyu": "start the file with `siyu: 1`",
        "id": "give it a slug id, e.g. reading-camp-7d",
        "at": 'give a time of day, e.g. at: "08:30"',
        "channel": "one of group, moments, private, live",
    }
    return hints.get(str(path[-1]), "")


def _unknown_key(path: Path_, located: Located) -> Problem:
    key = str(path[-1])
    allowed = _allowed_keys(path[:-1], located.data)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else (f"allowed keys: {', '.join(sorted(allowed))}" if allowed else "")
    return located.problem(path, f"unknown key {key!r}", hint=hint, key=True, code="unknown-key")


def _allowed_keys(parent: Path_, data: Any) -> list[str]:
    model: Any = Playbook
    node = data
    for part in parent:
        node = node[part] if isinstance(node, (dict, list)) else None
        model = _descend(model, part, node)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _descend(model: Any, part: str | int, node: Any) -> Any:
    """The annotation found one step down `part` from `model` (a model class or a container type)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        info = model.model_fields.get(str(part))
        return _pick(info.annotation, node) if info else None
    origin = typing.get_origin(model)
    if origin in (list, dict):
        args = typing.get_args(model)
        return _pick(args[-1], node) if args else None
    return None


def _pick(annotation: Any, node: Any) -> Any:
    """Unwrap Optional/Annotated/Union to the member that fits the data."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _pick(typing.get_args(annotation)[0], node)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        # A tagged union's members are Annotated[Model, Tag(...)]: the model is what the data is matched to.
        members = [typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m for m in typing.get_args(annotation) if m is not type(None)]
        for member in members:
            base = typing.get_origin(member) or member
            if isinstance(node, dict) and (base is dict or (isinstance(base, type) and issubclass(base, BaseModel))):
                if isinstance(base, type) and issubclass(base, BaseModel):
                    wanted = node.get("type")
                    literal = base.model_fields.get("type")
                    if wanted is not None and literal is not None and wanted not in typing.get_args(literal.annotation):
                        continue
                return _pick(member, node)
            if isinstance(node, list) and base is list:
                return member
        return members[0] if members else None
    return annotation


def _reference_problems(located: Located) -> list[Problem]:
    """Cross-references and day coverage, checked on the raw data so they show beside type errors."""
    data: dict[str, Any] = located.data
    problems: list[Problem] = []

    def ids(section: str, items: Any = None, key: str = "id", where: Path_ | None = None) -> dict[str, int]:
        """Each item's `key` → its index; a value used twice is a problem (the second would shadow the first)."""
        found: dict[str, int] = {}
        items = data.get(section) if items is None else items
        if not isinstance(items, list):
            return found
        where = tuple(section.split(".")) if where is None else where
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get(key), str):
                if item[key] in found:
                    first = format_path(where + (found[item[key]],))
                    problems.append(located.problem(where + (index, key), f"duplicate {key} {item[key]!r} in {section}", hint=f"first used at {first}"))
                else:
                    found[item[key]] = index
        return found

    personas = ids("personas")
    ids("products")
    phases = ids("phases")
    groups = ids("groups")
    beats_ = ids("beats")
    hooks = ids("hooks")
    hook_codes = ids("hooks", key="code")
    ids("cohorts")
    segments = data.get("segments") if isinstance(data.get("segments"), dict) else {}
    given_tags = _given_tags(data)
    # A days: below 1 is its own error: ranges measured against it would each repeat it with a nonsense fix.
    days = data.get("days") if isinstance(data.get("days"), int) and not isinstance(data.get("days"), bool) and data["days"] >= 1 else None
    phase_specs = {item["id"]: item.get("days") for item in data.get("phases") or [] if isinstance(item, dict) and isinstance(item.get("id"), str)}

    def ref(path: Path_, value: Any, known: dict[str, int], what: str) -> None:
        if isinstance(value, str) and value not in known:
            close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else (f"{what}s: {', '.join(known)}" if known else f"define it under {what}s:")
            problems.append(located.problem(path, f"unknown {what} {value!r}", hint=hint, code="reference"))

    def day_range(path: Path_, spec: Any) -> list[int] | None:
        if days is None or spec is None:
            return None
        try:
            return _days.resolve(spec, days, phase_specs)
        except _days.DaySpecError as exc:
            hint = "" if "phase" not in str(exc) else "phase ranges name a phase id from phases:"
            problems.append(located.problem(path, str(exc), hint=hint, code="days"))
            return None

    for index, group in enumerate(data.get("groups") or []):
        if isinstance(group, dict):
            ref(("groups", index, "persona"), group.get("persona"), personas, "persona")

    covered: dict[int, str] = {}
    for index, phase in enumerate(data.get("phases") or []):
        if not isinstance(phase, dict):
            continue
        spec = phase.get("days")
        if isinstance(spec, dict):
            problems.append(located.problem(("phases", index, "days"), "a phase's days are numbers, not another phase", code="days"))
            continue
        overlap = None
        for day in day_range(("phases", index, "days"), spec) or []:
            if day in covered:
                overlap = overlap or (day, covered[day])
                continue
            covered[day] = str(phase.get("id"))  # the rest still counts as covered: no false "in no phase" after an overlap
        if overlap is not None:
            problems.append(located.problem(("phases", index, "days"), f"day {overlap[0]} is already in phase {overlap[1]!r}", hint="phases must not overlap", code="phases"))
    if phases and days is not None:
        missing = [day for day in range(1, days + 1) if day not in covered]
        if missing and len(covered) > 0:
            problems.append(located.problem(("phases",), f"days {_compact(missing)} are in no phase", hint=f"phases must cover days 1-{days}", code="phases"))

    for index, beat in enumerate(data.get("beats") or []):
        if not isinstance(beat, dict):
            continue
        here = ("beats", index)
        ref(here + ("persona",), beat.get("persona"), personas, "persona")
        named, where = beat.get("groups"), here + ("groups",)
        if isinstance(named, dict):  # {in: [...], health: [...]}
            named, where = named.get("in"), where + ("in",)
        for gi, gid in enumerate(named if isinstance(named, list) else []):
            ref(where + (gi,), gid, groups, "group")
        if "days" in beat:
            day_range(here + ("days",), beat.get("days"))
        audience = beat.get("audience")
        if isinstance(audience, str) and audience not in segments:
            try:
                parsed = _tags.parse(audience)
            except _tags.TagExprError as exc:
                problems.append(located.problem(here + ("audience",), f"not a segment id and not a tag expression: {exc}", hint=f"segments: {', '.join(segments) or 'none defined'}", code="segment"))
            else:
                close = difflib.get_close_matches(audience.strip(), list(segments), n=1, cutoff=0.6)
                if parsed.tags == {audience.strip()} and close and audience.strip() not in given_tags:
                    problems.append(
                        located.problem(
                            here + ("audience",),
                            f"{audience!r} is not a segment; it targets contacts tagged {audience!r} (did you mean the segment {close[0]!r}?)",
                            hint="write the segment id; to target the tag on purpose, quote it or rename the segment it resembles",
                            code="segment",
                        )
                    )
        if beat.get("channel") in ("moments", "live") and beat.get("persona") is None and len(personas) > 1:
            problems.append(located.problem(here, f"{beat.get('channel')} beat has no persona and the playbook has several", hint="name the persona that posts it", code="reference"))
        for mi, entry in enumerate(beat.get("mix") or []):
            if isinstance(entry, dict):
                day_range(here + ("mix", mi, "days"), entry.get("days"))
                pools = beat.get("pools") if isinstance(beat.get("pools"), dict) else {}
                for category in (entry.get("ratio") or {}) if isinstance(entry.get("ratio"), dict) else {}:
                    if category not in pools:
                        problems.append(located.problem(here + ("mix", mi, "ratio", category), f"category {category!r} has no pool", hint=f"add pools.{category}: a list or glob of templates", code="reference"))
    hook_refs = dict(hooks)
    hook_refs.update(hook_codes)

    def hook_ref(path: Path_, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            return
        ref(path, value, hook_refs, "hook")

    def segment_ref(path: Path_, value: Any) -> None:
        """A segment id, or a tag expression that parses; a bare word resembling a segment is a likely typo."""
        if not isinstance(value, str) or value in segments:
            return
        try:
            parsed = _tags.parse(value)
        except _tags.TagExprError as exc:
            problems.append(located.problem(path, f"not a segment id and not a tag expression: {exc}", hint=f"segments: {', '.join(segments) or 'none defined'}", code="segment"))
            return
        close = difflib.get_close_matches(value.strip(), list(segments), n=1, cutoff=0.6)
        if parsed.tags == {value.strip()} and close and value.strip() not in given_tags:
            problems.append(
                located.problem(
                    path,
                    f"{value!r} is not a segment; it targets contacts tagged {value!r} (did you mean the segment {close[0]!r}?)",
                    hint="write the segment id; to target the tag on purpose, quote it or rename the segment it resembles",
                    code="segment",
                )
            )

    def exits(where: Path_, items: Any) -> None:
        for ei, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                hook_ref(where + (ei, "hook"), item.get("hook"))
                segment_ref(where + (ei, "segment"), item.get("segment"))

    for index, hook in enumerate(data.get("hooks") or []):
        if isinstance(hook, dict):
            ref(("hooks", index, "persona"), hook.get("persona"), personas, "persona")
            exits(("hooks", index, "exit"), hook.get("exit"))
    for index, rule in enumerate(data.get("rules") or []):
        if isinstance(rule, dict) and isinstance(rule.get("on"), dict):
            hook_ref(("rules", index, "on", "hook"), rule["on"].get("hook"))
    ids("journeys")
    for index, journey in enumerate(data.get("journeys") or []):
        if not isinstance(journey, dict):
            continue
        here = ("journeys", index)
        ref(here + ("persona",), journey.get("persona"), personas, "persona")
        if isinstance(journey.get("enter"), dict):
            hook_ref(here + ("enter", "hook"), journey["enter"].get("hook"))
        segment_ref(here + ("audience",), journey.get("audience"))
        exits(here + ("exit",), journey.get("exit"))
        ids(f"journeys[{index}].steps", journey.get("steps"), where=here + ("steps",))
    for index, cohort in enumerate(data.get("cohorts") or []):
        if isinstance(cohort, dict):
            for gi, gid in enumerate(cohort.get("groups") or []):
                ref(("cohorts", index, "groups", gi), gid, groups, "group")
    funnel = data.get("funnel")
    if isinstance(funnel, dict):
        ids("funnel.stages", funnel.get("stages"))
        stage_ids = {s.get("id"): i for i, s in enumerate(funnel.get("stages") or []) if isinstance(s, dict)}
        known_stages = {str(k): v for k, v in stage_ids.items() if k}
        targets = funnel.get("targets") if isinstance(funnel.get("targets"), dict) else {}
        for key, target in targets.items():
            ref(("funnel", "targets", key), key, known_stages, "funnel stage")
            base = target.get("of") if isinstance(target, dict) else None
            if isinstance(base, str):
                ref(("funnel", "targets", key, "of"), base, known_stages, "funnel stage")
                if base in known_stages and key in known_stages and known_stages[base] >= known_stages[key]:
                    problems.append(
                        located.problem(
                            ("funnel", "targets", key, "of"),
                            f"the base of {key!r} must be a stage before it; {base!r} is not",
                            hint="name an earlier stage, e.g. ordered: {rate: 0.10, of: added}",
                            code="reference",
                        )
                    )
    del beats_
    return problems


def _one_corp_problems(located: Located) -> list[Problem]:
    """A second wecom output reading the corp another reads: every output receives every due draft, so each task would be made twice."""
    default = WecomOutput.model_fields["corp_id_env"].default
    outputs = located.data.get("outputs")
    first: dict[str, int] = {}
    problems = []
    for index, output in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(output, dict) or output.get("type") != "wecom":
            continue
        env = output.get("corp_id_env", default)
        if not isinstance(env, str):
            continue
        if env not in first:
            first[env] = index
            continue
        path = ("outputs", index) + (("corp_id_env",) if "corp_id_env" in output else ())
        problems.append(
            located.problem(
                path,
                f"outputs[{first[env]}] and outputs[{index}] are both wecom outputs of the corp in {env}: every output receives every due draft, "
                "so each would create the same task in WeCom, every customer and group would get everything twice, and each send would use two of the month's mass sends",
                hint=f"keep one {{type: wecom}} output per corp: remove outputs[{index}], moving any setting it has (remind_after, moments_tags) to outputs[{first[env]}]",
                code="wecom-output-twice",
            )
        )
    return problems


def _shared_chat_problems(located: Located) -> list[Problem]:
    """Two groups with one chat_id: WeCom has one customer group, so the ledger and group health would count two for one chat."""
    groups = located.data.get("groups")
    first: dict[str, tuple[int, Any]] = {}
    problems = []
    for index, group in enumerate(groups if isinstance(groups, list) else []):
        chat = group.get("chat_id") if isinstance(group, dict) else None
        if not isinstance(chat, str) or not chat:
            continue
        if chat not in first:
            first[chat] = (index, group.get("id"))
            continue
        at, other = first[chat]
        problems.append(
            located.problem(
                ("groups", index, "chat_id"),
                f"groups {other} (groups[{at}]) and {group.get('id')} have the same chat_id {chat}: WeCom has one customer group (客户群) for it, "
                "so a post reaches that chat once, but the ledger would record it sent to two groups and group health would count two groups",
                hint="give each group its own chat_id (客户群ID, from groupchat/list or the admin console's 客户群 page), or make them one group",
                code="chat-id-shared",
            )
        )
    return problems


def _given_tags(data: dict[str, Any]) -> set[str]:
    """Tags the playbook itself gives (hooks' tags, rules' +tags): an audience naming one means it."""
    tags: set[str] = set()
    for hook in data.get("hooks") or []:
        if isinstance(hook, dict) and isinstance(hook.get("tags"), list):
            tags.update(t for t in hook["tags"] if isinstance(t, str))
    for rule in data.get("rules") or []:
        given = rule.get("tag") if isinstance(rule, dict) else None
        tags.update(t.lstrip("+") for t in (given if isinstance(given, list) else [given]) if isinstance(t, str) and not t.startswith("-"))
    return tags


def _compact(days: list[int]) -> str:
    runs: list[str] = []
    start = prev = days[0]
    for day in days[1:] + [None]:  # type: ignore[list-item]
        if day is not None and day == prev + 1:
            prev = day
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if day is not None:
            start = prev = day
    return ", ".join(runs)


def beat_by_id(playbook: LoadedPlaybook, beat_id: str) -> Beat:
    for beat in playbook.model.beats:
        if beat.id == beat_id:
            return beat
    raise KeyError(beat_id)
