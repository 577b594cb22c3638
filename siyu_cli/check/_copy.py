"""Copy lint: the words and formats that get a post removed, an ad fined or an account limited.

Terms come from copy_words.yaml (广告法 absolute terms and guarantees of results, WeChat's
induced-sharing rule) plus the playbook's `lint.words`; `lint.allow` lets phrases through.
Each template is read twice: its raw text (so a warning names its line, even in a branch the
sample does not take) and its rendered sample (so a term that comes from `vars` is found, and
lengths are those of what is sent). Formats: Moments images, a WeCom robot's message size, and
one staff member reaching one customer more than once a day.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from siyu_cli.check._wecom import by_welcome_api, staff_of, strictness
from siyu_cli.errors import Problem
from siyu_cli.playbook import LoadedPlaybook, TagExpr
from siyu_cli.playbook._model import LintWord, counted
from siyu_cli.playbook._yaml import Path_, format_path
from siyu_cli.timeline import Content

MOMENTS_MAX_IMAGES = 9  # WeChat: a Moments post carries at most 9 images, or 1 video, or 1 link
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_MAX_TAG_UNIVERSE = 12


@dataclass(frozen=True)
class Word:
    category: str
    term: str
    why: str
    source: str
    exceptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """One content as check rendered it with the sample context, and where the playbook names it."""

    content: Content
    path: Path_
    channel: str
    text: str


@dataclass
class Samples:
    """What check rendered for its template errors, kept for the copy lint: each content once per channel."""

    contents: list[tuple[Content, Path_]] = field(default_factory=list)
    rendered: list[Rendered] = field(default_factory=list)
    env: Any = None  # the renderer's Jinja environment, whose loader reads the raw templates
    routes: Sequence[Any] = ()  # the journey book's routes
    longest: dict[tuple[str | None, str | None, str], Rendered] = field(default_factory=dict)  # each content's longest render (in UTF-8 bytes)
    _seen: set[tuple[str | None, str | None, str]] = field(default_factory=set)
    _done: set[tuple[str | None, str | None, str]] = field(default_factory=set)

    def add(self, content: Content, path: Path_, channel: str, text: str | None) -> None:
        key = (content.template, content.text, channel)
        if key not in self._seen:
            self._seen.add(key)
            self.contents.append((content, path))
        if text and key not in self._done:
            self._done.add(key)
            self.rendered.append(Rendered(content, path, channel, text))
        if text and (key not in self.longest or len(text.encode("utf-8")) > len(self.longest[key].text.encode("utf-8"))):
            self.longest[key] = Rendered(content, path, channel, text)


def lint(playbook: LoadedPlaybook, samples: Samples) -> list[Problem]:
    """The copy lint over what check rendered."""
    return copy_problems(playbook, samples.rendered, samples.contents, source_of=sources(playbook, samples.env), routes=samples.routes)


@dataclass(frozen=True)
class Hit:
    """A term found in a text: `start`-`end` is the span of the text it covers, `written` that span as written."""

    word: Word
    start: int
    end: int
    written: str


@functools.cache
def shipped_words() -> tuple[Word, ...]:
    """The curated list that ships with siyu (package data)."""
    text = resources.files("siyu_cli.check").joinpath("copy_words.yaml").read_text(encoding="utf-8")
    return tuple(_word(LintWord.model_validate(item)) for item in yaml.safe_load(text))


def _word(item: LintWord) -> Word:
    return Word(item.category, item.term, item.why, item.source, tuple(item.except_))


@functools.cache
def _simplified() -> dict[int, str]:
    """Traditional → simplified characters (package data derived from OpenCC's TSCharacters)."""
    text = resources.files("siyu_cli.check").joinpath("traditional.txt").read_text(encoding="utf-8")
    return {ord(line[0]): line[1:] for line in text.splitlines() if line and not line.startswith("#")}


def _in_a_number(after: str) -> bool:
    """Whether a 1 followed by `after` is part of a longer number or a span (第10名, 第1-3章, 第1、2节), not 第1 alone."""
    plain = unicodedata.normalize("NFKC", after[:2])
    return bool(plain) and (plain[0].isdigit() or (plain[0] in "-~–—至到、/" and plain[1:2].isdigit()))


def fold(text: str) -> tuple[str, list[int]]:
    """The text as the lint compares it, and for each of its characters the index of the one it came from.

    Full-width forms are read as their plain ones (NFKC: 100％ as 100%, ＮＯ．１ as NO.1), traditional
    characters as simplified (國家級 as 国家级), Latin letters in lower case, 第1 as 第一 (not 第10 or 第1-3), and
    spaces and tabs not at all (100% 有效 as 100%有效, TOP 1 as TOP1); character by character, so a hit
    maps back to the copy as written."""
    table = _simplified()
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isspace() and char != "\n":
            continue
        piece = char if char.isascii() else unicodedata.normalize("NFKC", char).translate(table)
        piece = piece.lower()
        if piece == "1" and folded and folded[-1] == "第" and not _in_a_number(text[index + 1 : index + 3]):
            piece = "一"
        folded.append(piece)
        origin.extend([index] * len(piece))
    return "".join(folded), origin


GAP = "…"  # in a term: up to _GAP_CHARS characters of the same clause (保证…提高 finds 保证孩子成绩提高)
NUMBER = "{n}"  # in a term: a number in digits or Chinese numerals, not an ordinal (7天 and 三天, not 第3天)
_GAP_CHARS = 8
_CLAUSE = r"[^\n,.!?;:。、]"  # after fold: full-width ，！？；： are ASCII
_NUMERALS = "0-9零〇一二两三四五六七八九十百千万半"


def _pattern(term: str) -> tuple[re.Pattern[str], int] | None:
    """A term as a regular expression over folded text, and the length of its own characters (None when it has none).

    A term that starts or ends with a Latin letter or a digit stops at a word's or a number's edge:
    NO.1 is not in No.12345, nor TOP1 in TOP10."""
    parts = [part for part in re.split(f"({re.escape(GAP)}|{re.escape(NUMBER)})", term) if part]
    literal = "".join(fold(part)[0] for part in parts if part not in (GAP, NUMBER))
    if not literal:
        return None
    body = "".join(
        f"{_CLAUSE}{{0,{_GAP_CHARS}}}?" if part == GAP else f"[{_NUMERALS}]+" if part == NUMBER else re.escape(fold(part)[0]) for part in parts
    )
    first, last = parts[0], parts[-1]
    before = f"(?<![第{_NUMERALS}])" if first == NUMBER else "" if first == GAP else _edge(fold(first)[0][:1], "(?<!{})")
    after = "" if last in (GAP, NUMBER) else _edge(fold(last)[0][-1:], "(?!{})")
    return re.compile(before + body + after), len(literal)


def _edge(char: str, form: str) -> str:
    if char.isascii() and char.isdigit():
        return form.format("[0-9]")
    if char.isascii() and char.isalpha():
        return form.format("[a-z]")
    return ""


class Matcher:
    """Finds the list's terms in a text (as `fold` reads both); the longest term at a place wins, and an excepted or allowed phrase that covers a hit lets it through."""

    def __init__(self, words: Sequence[Word], allow: Sequence[str]) -> None:
        compiled = [(found, w) for w in words if (found := _pattern(w.term)) is not None]
        self.words = [(pattern, w) for (pattern, _), w in sorted(compiled, key=lambda item: -item[0][1])]
        self.allow = tuple(phrase for phrase in (fold(p)[0] for p in allow) if phrase)
        self._exceptions = {w: tuple(phrase for phrase in (fold(e)[0] for e in w.exceptions) if phrase) for _, w in self.words}

    def hits(self, text: str) -> list[Hit]:
        folded, origin = fold(text)
        found: list[Hit] = []
        taken: list[tuple[int, int]] = []
        for pattern, word in self.words:
            match = pattern.search(folded)
            while match is not None:
                start, end = match.span()
                if not any(a < end and start < b for a, b in taken) and not self._covered(folded, start, end, word):
                    first, last = origin[start], origin[end - 1] + 1
                    found.append(Hit(word, first, last, text[first:last]))
                    taken.append((start, end))
                match = pattern.search(folded, start + 1)
        return sorted(found, key=lambda hit: hit.start)

    def _covered(self, text: str, start: int, end: int, word: Word) -> bool:
        """Whether an allowed phrase or one of the word's exceptions stands in the text over all of start-end."""
        return any(text.find(phrase, max(0, end - len(phrase)), start + len(phrase)) != -1 for phrase in itertools.chain(self.allow, self._exceptions[word]))


def matcher(playbook: LoadedPlaybook) -> Matcher:
    own = [_word(w) if isinstance(w, LintWord) else Word("playbook", w, "a term this playbook's lint.words lists", "lint.words") for w in playbook.model.lint.words]
    return Matcher([*shipped_words(), *own], playbook.model.lint.allow)


def copy_problems(playbook: LoadedPlaybook, rendered: Sequence[Rendered], contents: Sequence[tuple[Content, Path_]], *, source_of: Any, routes: Sequence[Any]) -> list[Problem]:
    """Every copy warning: terms in raw and rendered text, formats, and reaching a customer twice a day.

    `contents` are every template and inline text the playbook names (with where it names them);
    `source_of(content, path)` gives its Sources: its own raw text, then each template it includes
    (none when it cannot be read). A footer two beats include is reported once, at its own line."""
    finder = matcher(playbook)
    problems: dict[tuple[Any, ...], Problem] = {}
    raw_terms: dict[tuple[str | None, str | None], set[str]] = defaultdict(set)
    for content, path in contents:
        key = (content.template, content.text)
        if key in raw_terms:
            continue
        raw_terms[key] = set()
        for source in source_of(content, path):
            text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), source.text)  # comments are never sent
            for hit in finder.hits(text):
                raw_terms[key].add(hit.word.term)
                line = source.first_line + text.count("\n", 0, hit.start)
                problems.setdefault((source.file, line, hit.word.term), _term_problem(playbook, hit, text, source.name, source.file, line, path))
    for sample in rendered:
        for hit in finder.hits(sample.text):
            if hit.word.term in raw_terms[(sample.content.template, sample.content.text)]:
                continue
            origin = _origin(playbook, hit.word.term, finder)
            where = origin or sample.path
            problem = _term_problem(playbook, hit, sample.text, sample.content.name, "", None, where, shown=origin is not None)
            problems.setdefault(("rendered", format_path(where), hit.word.term), problem)
    for problem in _formats(playbook, rendered):
        problems.setdefault((problem.path, problem.code, problem.message), problem)
    return [*problems.values(), *twice_a_day(playbook, routes)]


_LABELS = {
    "absolute": "广告法 absolute term",
    "guarantee-education": "guarantee of results (education)",
    "guarantee-health": "guarantee of results (health)",
    "sharing": "induced sharing (诱导分享)",
}


def _term_problem(playbook: LoadedPlaybook, hit: Hit, text: str, name: str, file: str, line: int | None, path: Path_, *, shown: bool = False) -> Problem:
    """Names the template (`name`), the term in its words around it, and the rule (the file and line are the Problem's)."""
    word = hit.word
    what = _LABELS.get(word.category, word.category)
    around = text[max(0, hit.start - 4) : hit.end + 4].replace("\n", " ").strip()
    term = repr(hit.written) + (f" ({word.term})" if hit.written.lower() != word.term.lower() else "")
    if shown:
        message = f"{name} shows {term} (“{around}”) from this value: {what}, {word.why} [{word.source}]"
    else:
        message = f"{name}: {term} in “{around}”: {what}, {word.why} [{word.source}]"
    hint = "reword it; if it is fine here, add the phrase to lint.allow"
    if file:
        return Problem(message=message, file=file, line=line, path=format_path(path), hint=hint, severity="warning", code=f"copy-{word.category}")
    return playbook.located.problem(path, message, hint=hint, severity="warning", code=f"copy-{word.category}")


def _origin(playbook: LoadedPlaybook, term: str, finder: Matcher) -> Path_ | None:
    """The playbook value a rendered term came from (vars, products, personas…), when one holds it."""
    def walk(node: Any, path: Path_) -> Iterator[Path_]:
        if isinstance(node, str):
            if any(hit.word.term == term for hit in finder.hits(node)):
                yield path
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, path + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, path + (index,))

    data = playbook.located.data
    for section in ("vars", "products", "personas", "groups", "hooks"):
        for path in walk(data.get(section), (section,)):
            return path
    return None


def _formats(playbook: LoadedPlaybook, rendered: Sequence[Rendered]) -> Iterator[Problem]:
    """Moments images, and the WeCom robot's message size when the playbook posts through one."""
    from siyu_cli.dispatch._webhook import platform

    robot = platform("wecom").chunk_bytes or 0
    wecom = any(getattr(output, "format", None) == "wecom" for output in playbook.model.outputs)
    severity, code = strictness(playbook, "moments-images")
    for sample in rendered:
        if sample.channel == "moments":
            images = len(_IMAGE.findall(sample.text))
            attached = [a.kind for a in _attachments(playbook, sample)]
            others = [kind for kind in attached if kind != "image"]
            if images + attached.count("image") > MOMENTS_MAX_IMAGES or (others and images):
                what = counted(["image"] * images) + (f" in its text and {counted(attached)} attached" if attached else "")
                refused = ": WeCom refuses the Moments task (add_moment_task)" if severity == "error" else ""
                yield playbook.located.problem(
                    sample.path,
                    f"{sample.content.name}: a Moments post with {what} (WeChat allows {MOMENTS_MAX_IMAGES}, or 1 video, or 1 link){refused}",
                    hint="keep 9 images at most, or one video or link alone; split the rest into another post",
                    severity=severity,
                    code=code,
                )
        size = len(sample.text.encode("utf-8"))
        if wecom and size > robot:
            yield playbook.located.problem(
                sample.path,
                f"{sample.content.name}: {size:,} bytes, above the {robot:,} bytes a WeCom group robot message holds: the robot posts it in parts",
                hint="shorten it, or split it into two beats",
                severity="warning",
                code="robot-size",
            )


def _attachments(playbook: LoadedPlaybook, sample: Rendered) -> Sequence[Any]:
    """What a rendered beat content is sent with: a pool entry's own attachments, else its beat's."""
    if sample.content.attachments is not None:
        return sample.content.attachments
    if sample.path[:1] == ("beats",):
        return playbook.model.beats[int(sample.path[1])].attachments
    return ()


def twice_a_day(playbook: LoadedPlaybook, routes: Sequence[Any]) -> list[Problem]:
    """The same staff member (persona) reaching the same customer twice on one day.

    WeCom lets a staff member's mass sends reach a customer once a day. Private beats whose
    audiences can hold one contact are counted per campaign day; each journey's steps are
    placed for a contact entering at 10:00 (`routes`: the journey book's), and each step against
    the private beats for contacts added on each day (_steps_on_beat_days). Welcome messages
    (after: 0m) go through the welcome API and do not count. Under the wecom output WeCom refuses
    the second send, so each is an error (wecom-twice-a-day), and personas sharing a staff
    member's wecom_userid are one staff member."""
    from siyu_cli.journeys import step_due
    from siyu_cli.playbook._load import _compact

    model = playbook.model
    severity, code = strictness(playbook, "twice-a-day")
    refused = " and refuses the second mass send" if severity == "error" else ", the second mass send is refused"
    staff = staff_of(playbook)
    problems: list[Problem] = []
    private = [(bi, beat, playbook.audience(beat)) for bi, beat in enumerate(model.beats) if beat.channel == "private"]
    clashes: dict[tuple[int, int], set[int]] = {}
    for cohort in playbook.cohorts:
        days = playbook.beat_days_of(cohort)
        for day in range(1, model.days + 1):
            todays = [(bi, beat, expr) for bi, beat, expr in private if day in days[beat.id]]
            for (bi, beat, expr), (bj, other, other_expr) in itertools.combinations_with_replacement(todays, 2):
                if not _beats_share_sender(playbook, beat, other, staff):
                    continue
                if (bi, bj) not in clashes:
                    if bi == bj and len(beat.times) < 2:
                        continue
                    if bi != bj and not _can_hold([expr, other_expr]):
                        continue
                    clashes[(bi, bj)] = set()
                clashes[(bi, bj)].add(day)
    for (bi, bj), days_hit in clashes.items():
        beat, other = model.beats[bi], model.beats[bj]
        both = f"beat {beat.id} posts at {', '.join(beat.times)}" if bi == bj else f"beats {beat.id} and {other.id} can both reach one contact"
        who = _beats_sender(playbook, beat, other, staff)
        problems.append(
            playbook.located.problem(
                ("beats", bj, "days") if bi != bj else ("beats", bi, "at"),
                f"{both} on day(s) {_compact(sorted(days_hit))} from {who}: WeCom lets a staff member reach a customer once a day{refused}",
                hint="move one to another day, give it to another persona, or make the audiences exclusive",
                severity=severity,
                code=code,
            )
        )
    tz = playbook.tz
    entered = datetime.combine(playbook.cohorts[0].start, time(10, 0), tzinfo=tz)
    for route in routes:
        by_date: dict[date, list[str]] = defaultdict(list)
        for step in route.steps:
            if not by_welcome_api(route, step):
                by_date[step_due(entered, step, tz).date()].append(step.id if route.kind == "journey" else f"#{step.index + 1}")
        for when, ids in by_date.items():
            if len(ids) > 1:
                problems.append(
                    playbook.located.problem(
                        route.path + ("steps" if route.kind == "journey" else "welcome",),
                        f"steps {', '.join(ids)} of {route.id} reach a contact on the same day (day {(when - entered.date()).days + 1} of a run entered at 10:00): "
                        f"WeCom lets a staff member reach a customer once a day{refused}",
                        hint="space the steps a day apart",
                        severity=severity,
                        code=code,
                    )
                )
    return problems + _steps_on_beat_days(playbook, routes, staff, severity, code, refused) + _routes_on_one_day(playbook, routes, staff, severity, code, refused)


def _steps_on_beat_days(playbook: LoadedPlaybook, routes: Sequence[Any], staff: dict[str, str], severity: str, code: str, refused: str) -> list[Problem]:
    """A journey step, or a welcome message after the first, landing on a day a private beat of the same staff member reaches that contact too.

    A step runs on its contact's own clock: check adds (or enters) a contact at 10:00 on each day of
    the campaign, as the monthly quota places it on day 1, and names the first add that meets a beat.
    A beat before 10:00 on the day of the add went out before the contact was there; a beat whose
    audience cannot hold a contact of the route (the tags its entering event gives or takes, its audience) never meets it.

    The add's own welcome (after: 0m) goes with its WelcomeCode and does not count, but under the wecom output with
    quiet hours an add in them whose code cannot be used waits for their end and goes as a mass send, which does:
    check adds that contact in the last minute of each night's quiet hours, and a beat it meets is a warning
    (wecom-welcome-task), since only such adds are refused the beat."""
    from siyu_cli._time import parse_hhmm, wall_clock
    from siyu_cli.check._wecom import wecom_output
    from siyu_cli.dispatch._policy import Guard
    from siyu_cli.journeys import step_due
    from siyu_cli.playbook._load import _compact

    model = playbook.model
    tz = playbook.tz
    guard = Guard(playbook)
    quiet = guard.quiet if wecom_output(playbook) else None  # when a welcome that missed its code waits, and goes as a task
    private = [(beat, playbook.audience(beat)) for beat in model.beats if beat.channel == "private"]
    beat_staff = {beat.id: beat_senders(playbook, beat, staff) for beat, _ in private}
    met: dict[tuple[str, int, str], _Meeting] = {}
    for cohort in playbook.cohorts:
        beat_days = playbook.beat_days_of(cohort)
        sends: dict[date, list[tuple[datetime, Any]]] = defaultdict(list)
        for beat, _ in private:
            for day in beat_days[beat.id]:
                when = cohort.start + timedelta(days=day - 1)
                sends[when] += [(wall_clock(when, parse_hhmm(clock), tz), beat) for clock in beat.times]
        for route in routes:
            senders = {staff[pid]: (pid, why) for pid, why in reversed(_route_senders(playbook, route))}  # the first that fits wins
            has, lacks = _route_tags(playbook, route)
            holds = {beat.id: _can_hold([expr, *([route.audience] if route.audience else [])], has, lacks) for beat, expr in private}
            # A welcome held by quiet hours is a new customer's: when its add gives tags (the hook's, the rules'), those say who
            # holds it that morning; an add that gives none says nothing, and any contact may (the upper bound, as for steps).
            fresh = {beat.id: holds[beat.id] and (not has or all(e.matches(has) for e in (expr, route.audience) if e is not None)) for beat, expr in private}
            for step in route.steps:
                held = by_welcome_api(route, step)
                if held and quiet is None:
                    continue
                for day in range(1, model.days + 1):
                    if held and quiet is not None:
                        due = wall_clock(cohort.start + timedelta(days=day - 1), quiet[1], tz)  # the end of the night's quiet hours
                        added = due - timedelta(minutes=1)
                    else:
                        added = wall_clock(cohort.start + timedelta(days=day - 1), ADD_TIME, tz)
                        due = step_due(added, step, tz)
                    for at, beat in sends.get(due.date(), ()):
                        sender = _step_beat_sender(senders, beat_staff[beat.id])
                        if held:
                            schedule = guard.schedule(at)  # a beat inside quiet hours goes at their end too, beside the welcome
                            if schedule.skip_reason is not None:
                                continue
                            at = schedule.due_at
                        if at < added or sender is None or not (fresh if held else holds)[beat.id]:
                            continue
                        meeting = met.setdefault((route.id, step.index, beat.id), _Meeting(cohort.id, route, step, beat, sender, due, at))
                        if meeting.cohort == cohort.id and day not in meeting.days:
                            meeting.days.append(day)
    multiple = len(playbook.cohorts) > 1
    problems = []
    for meeting in met.values():
        route, step, beat, (pid, why) = meeting.route, meeting.step, meeting.beat, meeting.sender
        who = _who(staff, pid, why, beat.persona or pid)
        if by_welcome_api(route, step):
            problems.append(_held_welcome(playbook, meeting, who, _compact(meeting.days) + (f" of cohort {meeting.cohort}" if multiple else "")))
            continue
        entered = "added" if route.enter_type == "friend_added" else f"entering ({route.enter_type})"
        what = _step_name(route, step)
        cohort = f" (cohort {meeting.cohort})" if multiple else ""
        message = (
            f"{what} and beat {beat.id} reach one contact on one day, both from {who}: a contact {entered} at {ADD_TIME:%H:%M} on day {meeting.days[0]}{cohort} "
            f"gets both on {meeting.due:%m-%d} ({', '.join(f'{t:%H:%M}' for t in sorted((meeting.due, meeting.at)))})"
        )
        if len(meeting.days) > 1:
            message += f", and so does one {entered} on day(s) {_compact(meeting.days[1:])}"
        problems.append(
            playbook.located.problem(
                route.path + ("welcome" if route.kind == "welcome" else "steps", step.index),
                f"{message}: WeCom lets a staff member reach a customer once a day{refused}",
                hint="move the step off the beat's days, give one of them another persona, or keep the route's contacts out of the beat's audience",
                severity=severity,
                code=code,
            )
        )
    return problems


def _held_welcome(playbook: LoadedPlaybook, meeting: _Meeting, who: str, days: str) -> Problem:
    """The add's welcome that missed its WelcomeCode in quiet hours, gone as a task in the morning, meeting a beat that day."""
    route, beat = meeting.route, meeting.beat
    quiet = playbook.model.limits.quiet_hours
    return playbook.located.problem(
        route.path + ("welcome", meeting.step.index),
        f"{_step_name(route, meeting.step)} goes with the add's WelcomeCode (send_welcome_msg, not counted), but for an add in quiet hours "
        f"({quiet}) whose code cannot be used (none came, siyu serve was down, or WeCom answered 41050) it waits until {meeting.due:%H:%M} "
        f"and goes as a mass send (add_msg_template) from {who}. That counts against WeCom's one mass send a day per staff member and customer, so beat {beat.id} "
        f"({meeting.at:%H:%M}) the same day reaches such a customer a second time and WeCom refuses it for them "
        f"(adds in the quiet hours that end on day(s) {days})",
        hint=f"give beat {beat.id} or hook {route.hook.id} another persona, or keep the hook's customers out of the beat's audience; "
        "otherwise a customer added at night misses the beat that day",
        severity="warning",
        code="wecom-welcome-task",
    )


def _routes_on_one_day(playbook: LoadedPlaybook, routes: Sequence[Any], staff: dict[str, str], severity: str, code: str, refused: str) -> list[Problem]:
    """Steps of two routes that one add enters landing on one day for that contact, both from one staff member.

    Only routes entered by friend_added (welcome sequences, friend_added journeys) are placed against
    each other, the contact added at 10:00 as for the beats; a route entered on another event has no
    known time from the add. Two routes meet when one add can enter both (_one_add_enters), their
    audiences and the tags that add gives or takes can hold one contact, and one staff member may
    send both; exits are not modelled, so the message says so."""
    from siyu_cli._time import wall_clock
    from siyu_cli.journeys import step_due

    tz = playbook.tz
    added = wall_clock(playbook.cohorts[0].start, ADD_TIME, tz)
    placed = [route for route in routes if route.enter_type == "friend_added"]
    problems = []
    for route, other in itertools.combinations(placed, 2):
        if not _one_add_enters(route, other):
            continue
        (has, lacks), (other_has, other_lacks) = _route_tags(playbook, route), _route_tags(playbook, other)
        has, lacks = has | other_has, lacks | other_lacks
        if has & lacks or not _can_hold([expr for expr in (route.audience, other.audience) if expr is not None], has, lacks):
            continue
        theirs = {staff[pid]: (pid, why) for pid, why in reversed(_route_senders(playbook, other))}  # the first that fits wins
        sender = next(((pid, why) for pid, why in _route_senders(playbook, route) if staff[pid] in theirs), None)
        if sender is None:
            continue
        other_pid, other_why = theirs[staff[sender[0]]]
        who = _who(staff, sender[0], "; ".join(dict.fromkeys(why for why in (sender[1], other_why) if why)), other_pid)
        others: dict[date, list[tuple[Any, datetime]]] = defaultdict(list)
        for later in other.steps:
            if not by_welcome_api(other, later):
                due = step_due(added, later, tz)
                others[due.date()].append((later, due))
        for step in route.steps:
            if by_welcome_api(route, step):
                continue
            due = step_due(added, step, tz)
            for later, later_due in others.get(due.date(), ()):
                problems.append(
                    playbook.located.problem(
                        other.path + ("welcome" if other.kind == "welcome" else "steps", later.index),
                        f"{_step_name(other, later)} and {_step_name(route, step)} reach one contact on one day, both from {who}: "
                        f"a contact added at {ADD_TIME:%H:%M} gets both on day {(due.date() - added.date()).days + 1} of its runs "
                        f"({', '.join(f'{t:%H:%M}' for t in sorted((due, later_due)))}) if it has not exited either: "
                        f"WeCom lets a staff member reach a customer once a day{refused}",
                        hint="space the two routes' steps a day apart, give one route another persona, or keep one route's contacts out of the other's audience",
                        severity=severity,
                        code=code,
                    )
                )
    return problems


def _one_add_enters(route: Any, other: Any) -> bool:
    """Whether one friend_added can enter both routes (JourneyBook.replay): not two different hooks, and an add
    that is the nth of each one's count (a hook's route counts the adds through it; `repeat` enters from the nth on)."""
    if route.enter_hook is not None and other.enter_hook is not None and route.enter_hook != other.enter_hook:
        return False
    nth, other_nth = route.enter_nth or 1, other.enter_nth or 1
    if route.enter_hook == other.enter_hook:
        return nth == other_nth or (route.repeat and other_nth > nth) or (other.repeat and nth > other_nth)
    hooked, unhooked = (route, other) if route.enter_hook is not None else (other, route)
    return unhooked.repeat or (unhooked.enter_nth or 1) >= (hooked.enter_nth or 1)  # other adds may come before the hook's


def _step_name(route: Any, step: Any) -> str:
    return f"step {step.id} of journey {route.id}" if route.kind == "journey" else f"welcome message {step.index + 1} of hook {route.hook.id}"


def beat_senders(playbook: LoadedPlaybook, beat: Any, staff: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Staff member → (persona, to whom) that may send a private beat (Planner._private): its persona, else the
    persona whose account or wecom_userid the contact added, else the first."""
    if beat.persona:
        return {staff[beat.persona]: (beat.persona, "")}
    model = playbook.model
    first = model.personas[0].id
    found: dict[str, tuple[str, list[str]]] = {}
    for persona in model.personas:
        if persona.account or persona.wecom_userid:
            found.setdefault(staff[persona.id], (persona.id, []))[1].append(f"to contacts who added {persona.account or persona.wecom_userid}")
    found.setdefault(staff[first], (first, []))[1].append("to contacts whose account is no persona's")
    return {member: (pid, " and ".join(whys)) for member, (pid, whys) in found.items()}


def _step_beat_sender(route: dict[str, tuple[str, str]], beat: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The first persona of a route's senders whose staff member may also send the beat, and to whom (both, when each names none)."""
    member = next((member for member in route if member in beat), None)
    if member is None:
        return None
    pid, why = route[member]
    return pid, "; ".join(dict.fromkeys(part for part in (why, beat[member][1]) if part))


def _beats_share_sender(playbook: LoadedPlaybook, beat: Any, other: Any, staff: dict[str, str]) -> bool:
    """Whether one staff member may send both beats to one contact: two beats with no persona each go from the contact's own account."""
    if beat.persona is None and other.persona is None:
        return True
    return bool(beat_senders(playbook, beat, staff).keys() & beat_senders(playbook, other, staff).keys())


def _beats_sender(playbook: LoadedPlaybook, beat: Any, other: Any, staff: dict[str, str]) -> str:
    """Who sends two beats (or one beat twice) to one contact, and to which contacts when one names no persona."""
    if beat.persona is None and other.persona is None:
        names = f"{beat.id} names" if beat.id == other.id else f"neither {beat.id} nor {other.id} names"
        return f"the persona whose account the contact added ({names} a persona, so each contact gets both from its own account)"
    named, unnamed = (beat, other) if beat.persona else (other, beat)
    pid = named.persona
    who = f"persona {pid}" + (f" and {other.persona}" if other.persona and other.persona != pid else "")
    if staff[pid] != pid:
        who += f" (staff member {staff[pid]})"
    if unnamed.persona is None:
        own, why = beat_senders(playbook, unnamed, staff)[staff[pid]]
        also = f", here as persona {own}" if own != pid else ""
        who += f", {why} ({unnamed.id} names no persona, so it goes to each contact from the account the contact added{also})"
    return who


def _who(staff: dict[str, str], pid: str, why: str, other: str) -> str:
    """The persona that sends (its staff member, to whom), and the other persona of that staff member when it is another."""
    notes = [f"staff member {staff[pid]}"] * (staff[pid] != pid) + [why] * bool(why)
    return f"persona {pid}" + (f" ({'; '.join(notes)})" if notes else "") + (f" and persona {other}" if other != pid else "")


@dataclass
class _Meeting:
    """A route's step and a private beat meeting one contact on one day: the first add it happens for, and every add day."""

    cohort: str
    route: Any
    step: Any
    beat: Any
    sender: tuple[str, str]  # the persona, and to whom it sends the route's steps
    due: datetime
    at: datetime  # the beat's send that day
    days: list[int] = field(default_factory=list)


ADD_TIME = time(10, 0)  # when check adds a contact (or it enters a journey), as the monthly quota does


def _route_senders(playbook: LoadedPlaybook, route: Any) -> list[tuple[str, str]]:
    """Who may send a route's steps (JourneyBook.persona_of) and to whom: its persona, else its hook's, else the
    persona whose account the contact added, else the first; `why` names the contacts where the route names no persona."""
    model = playbook.model
    hook = route.hook or next((h for h in model.hooks if h.id == route.enter_hook), None)
    if route.persona or (hook is not None and hook.persona):
        return [(route.persona or hook.persona, "")]
    through = [] if hook is not None else [(h.persona, f"to contacts who came through hook {h.id}") for h in model.hooks if h.persona]
    accounts = [(p.id, f"to contacts who added {p.account or p.wecom_userid}") for p in model.personas if p.account or p.wecom_userid]  # Planner.account_personas
    return [*through, *accounts, (model.personas[0].id, "by default")]


def _route_tags(playbook: LoadedPlaybook, route: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The tags every contact of a route has, and lacks, from its entering event on: its hook's tags on an add
    through it, then the rules on that event (TagRules.apply), less what another rule or hook may change later."""
    model = playbook.model
    hook_ids = {key: hook.id for hook in model.hooks for key in (hook.id, hook.code) if key}
    hook = route.hook or next((h for h in model.hooks if h.id == route.enter_hook), None)
    entry_nth = None if route.repeat else (route.enter_nth or 1)
    state = dict.fromkeys(hook.tags if hook is not None and route.enter_type == "friend_added" else (), True)
    for rule in model.rules:
        on = rule.on
        if on.event != route.enter_type or (on.hook is not None and (hook is None or hook_ids.get(on.hook) != hook.id)):
            continue
        if on.nth is None or on.nth == entry_nth:
            state.update((change[1:], change[0] == "+") for change in rule.tag)
    changes = [change for rule in model.rules for change in rule.tag] + [f"+{tag}" for h in model.hooks for tag in h.tags]
    has = frozenset(tag for tag, held in state.items() if held and f"-{tag}" not in changes)
    lacks = frozenset(tag for tag, held in state.items() if not held and f"+{tag}" not in changes)
    return has, lacks


def _can_hold(exprs: Sequence[TagExpr], has: frozenset[str] = frozenset(), lacks: frozenset[str] = frozenset()) -> bool:
    """Whether some set of tags with `has` and without `lacks` matches every expression (the audiences can hold one contact)."""
    universe = sorted(set().union(*(expr.tags for expr in exprs)) - has - lacks)
    if len(universe) > _MAX_TAG_UNIVERSE:
        return True
    return any(all(expr.matches(has | tags) for expr in exprs) for n in range(len(universe) + 1) for tags in map(frozenset, itertools.combinations(universe, n)))


def display_file(path: Path) -> str:
    """A template's file as check shows it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Source:
    """The raw text of a content, or of a template it includes: what a warning names, its file and first line."""

    name: str
    text: str
    file: str
    first_line: int


def sources(playbook: LoadedPlaybook, env: Any) -> Any:
    """`source_of` for copy_problems: a template file's text from the renderer's loader, an inline text from the
    playbook, then the raw text of every template either includes (imports, extends), however deep."""
    located = playbook.located
    lines = playbook.path.read_text(encoding="utf-8-sig").splitlines()

    def template(name: str, shown: str) -> Source | None:
        try:
            text, filename, _ = env.loader.get_source(env, name)
        except Exception:  # not found or unreadable: the template check reports it
            return None
        return Source(shown, text, display_file(Path(filename or name)), 1)

    def included(source: Source, by: str, seen: set[str]) -> Iterator[Source]:
        from jinja2 import meta

        try:
            names = list(meta.find_referenced_templates(env.parse(source.text)))
        except Exception:  # a syntax error: the template check reports it
            return
        for name in names:
            if name is None or name in seen:  # a computed name: the render reads what it picks
                continue
            seen.add(name)
            found = template(name, f"{name} (included by {by})")
            if found is not None:
                yield found
                yield from included(found, by, seen)

    def source_of(content: Content, path: Path_) -> list[Source]:
        if content.template is not None:
            own = template(content.template, content.name)
            if own is None:
                return []
        else:
            line, column = located.where(path)
            first = line or 1
            if line is not None and column is not None and lines[line - 1][column - 1 : column] in ("|", ">"):
                first += 1  # a block scalar's text starts on the next line
            own = Source(content.name, content.text or "", str(playbook.path), first)
        seen = {content.template} if content.template else set()
        return [own, *(included(own, content.name, seen) if env is not None else ())]

    return source_of
