from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from siyu_cli._time import parse_hhmm, wall_clock
from siyu_cli.check import _copy
from siyu_cli.check._assets import attachment_problems, health_problems
from siyu_cli.check._hints import with_hints
from siyu_cli.check._journeys import journey_problems
from siyu_cli.check._load import capacity_short
from siyu_cli.check._nurture import nurture_caps
from siyu_cli.check._wecom import strictness, wecom_problems
from siyu_cli.errors import PlaybookInvalid, Problem, TemplateFailure
from siyu_cli.journeys import sample_run, step_due
from siyu_cli.playbook import LoadedPlaybook, read
from siyu_cli.playbook._model import WecomOutput
from siyu_cli.playbook._yaml import Path_
from siyu_cli.render import SAMPLE_CONTACT, Planner
from siyu_cli.render._context import ContextBuilder, sample_stats
from siyu_cli.timeline import Content, choose_categories, pool_entries

MOMENTS_MAX_CHARS = 2000
_MAX_TAG_UNIVERSE = 12


@dataclass
class CheckResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    playbook: LoadedPlaybook | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def quiet_window(spec: str | None) -> tuple[time, time] | None:
    if not spec:
        return None
    start, end = (parse_hhmm(part) for part in spec.split("-", 1))
    return start, end


def in_quiet(moment: time, window: tuple[time, time] | None) -> bool:
    if window is None:
        return False
    start, end = window
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def check_file(path: Path, *, contacts: Sequence[Mapping[str, Any]] = (), db: Any = None, now: datetime | None = None) -> CheckResult:
    """Every problem of a playbook: structure, references, templates, then the lint.

    `contacts` (and the store `db` they came from) size the lints that depend on who is there;
    their tags are the effective ones as of `now`, under this playbook's hooks and rules.
    """
    result = CheckResult(file=str(path))
    try:
        playbook = read(path)
    except PlaybookInvalid as exc:
        # One round: the templates and attachment files are checked too, as far as they can be without a valid model.
        result.problems = with_hints(exc.problems + _unvalidated(path), _source(path))
        return result
    result.playbook = playbook
    people: Sequence[Mapping[str, Any]] = contacts
    planner: Planner | None = None
    if contacts:
        planner = Planner(playbook, contacts=[dict(c) for c in contacts], db=db, as_of=now)
        planner.prepare()
        people = planner.contacts
    result.problems.extend(playbook.problems)
    samples = _copy.Samples()
    result.problems.extend(_template_problems(playbook, samples))
    result.problems.extend(_unrendered_slips(playbook, result.problems))
    result.problems.extend(_copy.lint(playbook, samples))
    result.problems.extend(_mix_problems(playbook))
    result.problems.extend(_lint(playbook, people, planner))
    result.problems.extend(journey_problems(playbook, people))
    result.problems.extend(attachment_problems(playbook) + health_problems(playbook, db))
    result.problems.extend(wecom_problems(playbook, samples, planner))
    if db is not None:
        result.problems.extend(renamed(playbook, db))
    result.problems = with_hints(result.problems, _source(path))
    return result


def _source(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def _unvalidated(path: Path) -> list[Problem]:
    """The templates of a playbook that failed validation (named, compiled and their variable names checked) and its attachment files."""
    from siyu_cli.check._assets import raw_attachment_problems
    from siyu_cli.check._raw import raw_template_problems
    from siyu_cli.playbook._yaml import load_located

    text = _source(path)
    located = load_located(text, str(path))[0] if text is not None else None
    if located is None or not isinstance(located.data, dict):
        return []
    return raw_template_problems(located, path) + raw_attachment_problems(located, path)


def _unrendered_slips(playbook: LoadedPlaybook, found: Sequence[Problem]) -> list[Problem]:
    """The slips a render stops short of (it ends at a template's first): the raw pass's, where a render did not report them."""
    from siyu_cli.check._raw import raw_template_problems

    def slip(message: str) -> str:
        """The message without an inline text's label, which the render and the raw pass write differently."""
        return message.split(": ", 1)[1] if message.startswith("<inline") and ": " in message else message

    seen = {(p.file, p.line, slip(p.message)) for p in found}
    raw = raw_template_problems(playbook.located, playbook.path)
    # An inline text's too: `default(contact.nick, true)` renders for a named sample without reading the fallback.
    return [p for p in raw if slip(p.message).startswith("undefined: ") and (p.file, p.line, slip(p.message)) not in seen]


def renamed(playbook: LoadedPlaybook, db: Any) -> list[Problem]:
    """The store has another campaign id with most of these beats and none under this id: a rename starts over."""
    import sqlite3

    model = playbook.model
    mine = {b.id for b in model.beats} | {f"journey:{j.id}:{s.id}" for j in model.journeys for s in j.steps}
    mine |= {f"welcome:{h.id}:{n + 1}" for h in model.hooks for n in range(len(h.welcome))}
    if not mine:
        return []
    try:
        if db.execute("SELECT 1 FROM drafts WHERE playbook_id = ? LIMIT 1", [playbook.id]).fetchone():
            return []
        rows = db.execute("SELECT playbook_id, beat, COUNT(*) FROM drafts WHERE playbook_id != ? GROUP BY playbook_id, beat", [playbook.id]).fetchall()
    except sqlite3.OperationalError:
        return []
    shared: dict[str, tuple[set[str], set[str], int]] = {}
    for other, beat, count in rows:
        beats, theirs, total = shared.get(other, (set(), set(), 0))
        theirs.add(beat)
        if beat in mine:
            beats.add(beat)
        shared[other] = (beats, theirs, total + count)
    problems = []
    for other, (beats, theirs, total) in sorted(shared.items()):
        if beats and len(beats) * 2 >= len(theirs):  # most of what that campaign sent, this playbook has too
            problems.append(
                playbook.located.problem(
                    ("id",),
                    f"the store holds {total} drafts of campaign {other!r}, of {len(beats)} of these beats, and none of {playbook.id!r}: "
                    "a new id starts the campaign over, and every beat due so far is sent again",
                    hint=f"keep `id: {other}` to go on with that campaign (the id keys the ledger)",
                    severity="warning",
                    code="renamed",
                )
            )
    return problems


def _content_path(playbook: LoadedPlaybook, beat_id: str, content: Content | None) -> tuple[Path_, str]:
    for index, beat in enumerate(playbook.model.beats):
        if beat.id == beat_id:
            if content is not None and content.template is None:
                return ("beats", index, "text"), "text"
            return ("beats", index, "template"), "template"
    return (), ""


def _template_problems(playbook: LoadedPlaybook, samples: _copy.Samples) -> list[Problem]:
    """Compile every template and render it against the real context of each occurrence (kept in `samples` for the copy lint)."""
    problems: dict[tuple[str, int | None, str], Problem] = {}
    located = playbook.located
    planner = Planner(playbook, sample_contact=True)
    samples.env, samples.routes = planner.renderer.env, planner.book.routes

    def add(failure: TemplateFailure, path: Path_) -> None:
        key = (failure.template, failure.line, failure.detail)
        if key in problems:
            return
        template_file = _resolve_template(planner, failure.template)
        detail = _contact_field(failure, template_file, _value_at(located.data, path), planner.renderer.env)
        if template_file is not None:
            # No hint here: with_hints gives the one the raw pass gets for the same slip (a did-you-mean).
            problems[key] = Problem(message=detail, file=str(template_file), line=failure.line, path=_path_text(path), code="template")
        else:
            problems[key] = located.problem(path, f"{failure.template}: {detail}", code="template")

    seen_contents: set[tuple[str | None, str | None]] = set()
    for draft in planner.drafts():
        if draft.holdout:
            continue
        for stats_sample in (False, True):
            draft.text, draft.error = None, None
            planner.render(draft, stats=sample_stats(draft.occurrence_at) if stats_sample else None)
            if draft.error is not None:
                add(draft.error, _draft_path(playbook, draft))
                break
            if draft.channel == "moments" and draft.text and len(draft.text) > MOMENTS_MAX_CHARS:
                path = _draft_path(playbook, draft)
                severity, code = strictness(playbook, "moments-length")
                refused = ": WeCom refuses the Moments task (add_moment_task)" if severity == "error" else ""
                problems[(draft.content.name if draft.content else "", None, "long")] = located.problem(
                    path,
                    f"a Moments post of {len(draft.text)} characters (WeChat allows {MOMENTS_MAX_CHARS}){refused}",
                    hint=f"shorten it to {MOMENTS_MAX_CHARS:,} characters, or split it into two posts",
                    severity=severity,
                    code=code,
                )
        if draft.content is not None:
            seen_contents.add((draft.content.template, draft.content.text))
            samples.add(draft.content, _draft_path(playbook, draft), draft.channel, draft.text if draft.error is None else None)
    contexts = ContextBuilder(playbook)
    first = playbook.cohorts[0]
    for bi, beat in enumerate(playbook.model.beats):
        extra: list[tuple[Content, Path_]] = []
        for category in beat.pools or {}:
            entries = pool_entries(playbook, beat, category, planner.renderer.search)
            if not entries:
                problems[(f"pool:{beat.id}:{category}", None, "")] = located.problem(
                    ("beats", bi, "pools", category), f"pool {category!r} matches no template", hint="check the glob or list", code="template"
                )
            extra += [(entry, ("beats", bi, "pools", category)) for entry in entries]
        for name, variant in (beat.variants or {}).items():
            if variant.template or variant.text is not None:
                extra.append((Content(variant.template, variant.text, f"<inline beats.{beat.id}.variants.{name}.text>"), ("beats", bi, "variants", name)))
        days = sorted(playbook.beat_days[beat.id]) or [1]
        for content, path in extra:
            if (content.template, content.text) in seen_contents:
                continue
            seen_contents.add((content.template, content.text))
            occ = _fake_occurrence(playbook, beat, days[0], first)
            context = contexts.for_occurrence(occ, first, contact=SAMPLE_CONTACT if beat.channel == "private" else None)
            try:
                samples.add(content, path, beat.channel, planner.renderer.render(content, context, beat=beat.id))
            except TemplateFailure as exc:
                samples.add(content, path, beat.channel, None)
                add(exc, path)
    book = planner.book
    for route in book.routes:
        for step in route.steps:
            run, person = sample_run(playbook, book, route, step, first, 1)
            persona = book.persona_of(run, person)
            due = step_due(run.entered_at, step, playbook.tz)
            context = contexts.for_step(run, step, persona, person, first, (due.date() - first.start).days + 1, due)
            here = route.path + (("welcome", step.index) if route.kind == "welcome" else ("steps", step.index))
            contents = [(Content(step.template, step.text, step.label), here + ("template" if step.template else "text",))]
            for name, variant in (step.variants or {}).items():
                if variant.template or variant.text is not None:
                    label = f"<inline journeys.{route.id}.steps.{step.id}.variants.{name}.text>"
                    contents.append((Content(variant.template, variant.text, label), here + ("variants", name)))
            for content, path in contents:
                if content.template is None and content.text is None:
                    continue
                text: str | None = None
                for stats_sample in (False, True):
                    context["stats"] = sample_stats(due) if stats_sample else sample_stats(due, empty=True)
                    try:
                        text = planner.renderer.render(content, context, beat=route.beat_id(step))
                    except TemplateFailure as exc:
                        add(exc, path)
                        text = None
                        break
                samples.add(content, path, route.kind, text)
    return list(problems.values())


def _contact_field(failure: TemplateFailure, template_file: Path | None, inline: Any, env: Any) -> str:
    """Jinja's "'dict object' has no attribute 'nmae'" as the field of `contact` the template's line names."""
    import jinja2

    from siyu_cli.check._hints import contact_field_message, unknown_contact_fields

    missing = re.search(r"has no attribute '(\w+)'", failure.detail)
    if missing is None:
        return failure.detail
    try:
        source = template_file.read_text(encoding="utf-8") if template_file is not None else str(inline or "")
        slips = unknown_contact_fields(env, source)
    except (OSError, UnicodeDecodeError, jinja2.TemplateError):
        return failure.detail
    if any(field == missing.group(1) and line == failure.line for field, line in slips):
        return contact_field_message(missing.group(1))
    return failure.detail


def _value_at(data: Any, path: Path_) -> Any:
    """The value at a YAML path, or None where the path does not reach (an inline text, for one)."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fake_occurrence(playbook: LoadedPlaybook, beat: Any, day: int, cohort: Any) -> Any:
    from siyu_cli.timeline import Occurrence

    when = cohort.start + timedelta(days=day - 1)
    at = wall_clock(when, parse_hhmm(beat.times[0]), playbook.tz)
    persona = beat.persona or playbook.model.personas[0].id
    group = (beat.group_ids or cohort.group_ids or ("",))[0] if beat.channel == "group" else persona
    kind = "group" if beat.channel == "group" else ("audience" if beat.channel == "private" else "persona")
    return Occurrence(cohort.id, day, when, at, beat, beat.channel, persona, kind, group, None, None)


def _draft_path(playbook: LoadedPlaybook, draft: Any) -> Path_:
    if draft.beat.startswith("welcome:"):
        _, hook_id, step = draft.beat.split(":")
        for hi, hook in enumerate(playbook.model.hooks):
            if hook.id == hook_id:
                return ("hooks", hi, "welcome", int(step) - 1)
        return ("hooks",)
    if draft.category is not None:
        for bi, beat in enumerate(playbook.model.beats):
            if beat.id == draft.beat:
                return ("beats", bi, "pools", draft.category)
    if draft.variant is not None:
        for bi, beat in enumerate(playbook.model.beats):
            if beat.id == draft.beat:
                return ("beats", bi, "variants", draft.variant)
    return _content_path(playbook, draft.beat, draft.content)[0]


def _path_text(path: Path_) -> str:
    from siyu_cli.playbook._yaml import format_path

    return format_path(path)


def _resolve_template(planner: Planner, name: str) -> Path | None:
    if name.startswith("<") or name.startswith("beats."):
        return None
    for root in planner.renderer.search:
        candidate = root / name
        if candidate.is_file():
            try:
                return candidate.relative_to(Path.cwd())
            except ValueError:
                return candidate
    return None


def _mix_problems(playbook: LoadedPlaybook) -> list[Problem]:
    problems: list[Problem] = []
    for bi, beat in enumerate(playbook.model.beats):
        if not beat.mix:
            continue
        covered: dict[int, int] = {}
        for mi, entry in enumerate(beat.mix):
            for day in playbook.days_of(entry.days):
                if day in covered:
                    problems.append(playbook.located.problem(("beats", bi, "mix", mi, "days"), f"day {day} is already in mix[{covered[day]}]", hint="mix ranges must not overlap", code="mix"))
                    break
                covered[day] = mi
        uncovered = sorted(d for d in playbook.beat_days[beat.id] if d not in covered)
        if uncovered:
            problems.append(playbook.located.problem(("beats", bi, "mix"), f"day(s) {_days_text(uncovered)} of this beat are in no mix range", hint="extend a mix range or narrow the beat's days", code="mix"))
    return problems


def _days_text(days: list[int]) -> str:
    from siyu_cli.playbook._load import _compact

    return _compact(days)


def _lint(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], planner: Planner | None = None) -> list[Problem]:
    model = playbook.model
    located = playbook.located
    problems: list[Problem] = []
    quiet = quiet_window(model.limits.quiet_hours)
    action = "deferred to the end of quiet hours" if model.limits.on_quiet == "defer" else "skipped"
    for bi, beat in enumerate(model.beats):
        for ti, clock in enumerate(beat.times):
            if in_quiet(parse_hhmm(clock), quiet):
                path: Path_ = ("beats", bi, "at") if isinstance(beat.at, str) else ("beats", bi, "at", ti)
                problems.append(located.problem(path, f"{clock} is inside quiet hours {model.limits.quiet_hours}; it will be {action}", hint="move the beat out of quiet hours", severity="warning", code="quiet-hours"))
    problems.extend(_clock_gaps(playbook))
    steps = [(("hooks", hi, "welcome", si, "at"), step.at) for hi, hook in enumerate(model.hooks) for si, step in enumerate(hook.welcome)]
    steps += [(("journeys", ji, "steps", si, "at"), step.at) for ji, journey in enumerate(model.journeys) for si, step in enumerate(journey.steps)]
    for where, clock in steps:
        if clock and in_quiet(parse_hhmm(clock), quiet):
            problems.append(located.problem(where, f"{clock} is inside quiet hours {model.limits.quiet_hours}; it will be {action}", severity="warning", code="quiet-hours"))
    problems.extend(_touch_budget(playbook))
    problems.extend(_account_cap(playbook, contacts, planner))
    problems.extend(nurture_caps(playbook, contacts, planner))
    problems.extend(_unmatched_accounts(playbook, planner))
    problems.extend(_strangers(playbook, planner))
    problems.extend(capacity_short(playbook, planner))
    problems.extend(_nameless(playbook, planner))
    problems.extend(_pool_sizes(playbook))
    return problems


def _unmatched_accounts(playbook: LoadedPlaybook, planner: Planner | None) -> list[Problem]:
    """Contacts whose account is no persona's account or wecom_userid, where something sends by the contact's account.

    A private beat, journey or welcome that names no persona goes to each contact from the persona whose
    account the contact added (Planner.account_personas), else from the first: WeCom hands such a task back
    in fail_list (not a friend), and a person working the outbox sends from an account the contact never added."""
    model = playbook.model
    if planner is None or len(model.personas) < 2:
        return []
    beats = [beat for beat in model.beats if beat.channel == "private" and beat.persona is None]
    hooks = {key: hook for hook in model.hooks for key in (hook.id, hook.code) if key}
    routes = [f"the welcome of hook {hook.id}" for hook in model.hooks if hook.welcome and not hook.persona]
    routes += [f"journey {j.id}" for j in model.journeys if not j.persona and not getattr(hooks.get(j.enter.hook or ""), "persona", None)]
    if not beats and not routes:
        return []
    if routes:
        people = list(planner.contacts)
    else:
        found = {str(p["id"]): p for beat in beats for cohort in playbook.cohorts for p in planner.recipients(cohort, beat.id, playbook.audience(beat))}
        people = list(found.values())
    accounts = Counter(str(p.get("account") or "") for p in people)
    unmatched = {account: n for account, n in accounts.items() if account and account not in planner.account_personas}
    empty = accounts.get("", 0)
    if not unmatched and not empty:
        return []
    first = model.personas[0]
    shown = sorted(unmatched.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{n} contact's account {account}" if n == 1 else f"{n} contacts' account {account}" for account, n in shown[:5]]
    if len(shown) > 5:
        parts.append(f"{sum(n for _, n in shown[5:])} of {len(shown) - 5} more accounts")
    if empty:
        parts.append(f"{empty} with no account")
    senders = [f"beat{'s' * (len(beats) > 1)} {_and(b.id for b in beats)}"] if beats else []
    message = (
        f"{', '.join(parts)}: {_and(senders + routes)} name{'s' * (len(senders + routes) == 1 and len(beats) < 2)} no persona, so each goes from the persona whose account (or wecom_userid) "
        f"the contact added, and these contacts get it from persona {first.id} ({first.name}), the first, by default"
    )
    if unmatched:
        if any(isinstance(output, WecomOutput) for output in model.outputs):
            message += f"; WeCom hands a task back for a customer who never added its staff member (fail_list: not a friend), so the contacts of {', '.join(a for a, _ in shown[:5])} are never reached"
        else:
            message += f"; a person would send them from {first.id}'s account, which the contacts of {', '.join(a for a, _ in shown[:5])} never added"
    return [
        playbook.located.problem(
            ("personas",),
            message,
            hint=f"add the staff member's account to its persona (account: {shown[0][0]}, or wecom_userid:, as the contacts' account column names it), or name the beat's persona"
            if shown
            else "give the contacts their account (添加人账号) in the import, or name the beat's persona",
            severity="warning",
            code="account-unmatched",
        )
    ]


def _strangers(playbook: LoadedPlaybook, planner: Planner | None) -> list[Problem]:
    """A private beat that names its persona, and store contacts of its audience who added another persona's account
    and never this one's (Planner.strangers): they are skipped not_friend, which check says before the send."""
    if planner is None or len(playbook.model.personas) < 2:
        return []
    problems = []
    for bi, beat in enumerate(playbook.model.beats):
        if beat.channel != "private" or beat.persona is None:
            continue
        found = {str(p["id"]): p for cohort in playbook.cohorts for p in planner.audience(cohort, beat.id, playbook.audience(beat))}
        strangers = planner.strangers(beat.persona, list(found.values()))
        if not strangers:
            continue
        accounts = Counter(str(found[cid].get("account")) for cid in strangers)
        shown = ", ".join(f"{n} added {account} (persona {planner.account_personas[account]})" for account, n in accounts.most_common(3))
        problems.append(
            playbook.located.problem(
                ("beats", bi, "persona"),
                f"{len(strangers)} of the {len(found)} contacts in this beat's audience never added persona {beat.persona}'s account ({shown}): "
                "a 1v1 from it cannot reach them, so they are recorded skipped(not_friend)",
                hint="leave out persona: so each contact gets the beat from the account they added, or narrow the audience to this persona's customers",
                severity="warning",
                code="persona-strangers",
            )
        )
    return problems


def _nameless(playbook: LoadedPlaybook, planner: Planner | None) -> list[Problem]:
    """Contacts with no name where a text prints `{{ contact.name }}` without a fallback: they get an empty
    greeting ("，你好"), since siyu never puts a contact's id in a customer's message. A warning per text, counting
    a beat's own audience; a welcome or journey step the store's contacts that entered its route."""
    if planner is None or not planner.contacts or all(contact.get("name") for contact in planner.contacts):
        return []
    renderer = planner.renderer
    texts: list[tuple[Content, Path_, int, str]] = []  # (content, path, contacts without a name it reaches, of whom)
    for bi, beat in enumerate(playbook.model.beats):
        if beat.channel != "private":
            continue
        audience = {str(p["id"]): p for cohort in playbook.cohorts for p in planner.audience(cohort, beat.id, playbook.audience(beat))}
        nameless = sum(1 for person in audience.values() if not person.get("name"))
        of = f"of the {len(audience)} contacts in this beat's audience"
        contents = [(Content(beat.template, beat.text, ""), ("beats", bi, "template" if beat.template else "text"))] if beat.template or beat.text is not None else []
        contents += [(Content(v.template, v.text, ""), ("beats", bi, "variants", name)) for name, v in (beat.variants or {}).items() if v.template or v.text is not None]
        for category in beat.pools or {}:
            contents += [(entry, ("beats", bi, "pools", category)) for entry in pool_entries(playbook, beat, category, renderer.search)]
        texts += [(content, path, nameless, of) for content, path in contents]
    # A step reaches the store's contacts that entered its route (a welcome also future adds, whose name siyu serve
    # asks WeCom for): counted from the journey calendar, as the runner would make their drafts.
    reached: dict[str, set[str]] = {}
    if planner.book.routes:
        for cohort in playbook.cohorts:
            for draft in planner.journey_calendar(cohort):
                if draft.contact_id:
                    reached.setdefault(draft.beat, set()).add(draft.contact_id)
    names = {str(c["id"]): c.get("name") for c in planner.contacts}
    for route in planner.book.routes:
        for step in route.steps:
            ids = reached.get(route.beat_id(step), set())
            nameless = sum(1 for cid in ids if not names.get(cid))
            of = f"of the {len(ids)} store contacts this step reaches"
            here = route.path + (("welcome", step.index) if route.kind == "welcome" else ("steps", step.index))
            texts.append((Content(step.template, step.text, ""), here + ("template" if step.template else "text",), nameless, of))
            texts += [(Content(v.template, v.text, ""), here + ("variants", name), nameless, of) for name, v in (step.variants or {}).items() if v.template or v.text is not None]
    problems: dict[Path_, Problem] = {}
    for content, path, nameless, of in texts:
        if not nameless or path in problems or not renderer.prints_bare_name(content.template, content.text):
            continue
        problems[path] = playbook.located.problem(
            path,
            f"{nameless} {of} {'have' if nameless > 1 else 'has'} no name, and this text prints {{{{ contact.name }}}} with no fallback: "
            "they get it with the name left empty (siyu never puts a contact's id in a customer's message)",
            hint="write {{ contact.name or '亲' }} (or wrap it in {% if contact.name %}), or import the contacts' names (the name column, 客户名称/昵称)",
            severity="warning",
            code="nameless-contacts",
        )
    return list(problems.values())


def _clock_gaps(playbook: LoadedPlaybook) -> list[Problem]:
    """Beat times the clocks skip on a campaign day (daylight saving): each is sent at the end of the gap."""
    problems: list[Problem] = []
    for bi, beat in enumerate(playbook.model.beats):
        for ti, clock in enumerate(beat.times):
            wanted = parse_hhmm(clock)
            for cohort in playbook.cohorts:
                dates = (cohort.start + timedelta(days=d - 1) for d in sorted(playbook.beat_days_of(cohort)[beat.id]))
                skipped = next((d for d in dates if wall_clock(d, wanted, playbook.tz).time() != wanted), None)
                if skipped is None:
                    continue
                sent = wall_clock(skipped, wanted, playbook.tz)
                path: Path_ = ("beats", bi, "at") if isinstance(beat.at, str) else ("beats", bi, "at", ti)
                message = f"{clock} does not exist on {skipped} in {playbook.model.timezone} (clocks go forward); it is sent at {sent:%H:%M}"
                problems.append(playbook.located.problem(path, message, hint="move the beat out of the small hours", severity="warning", code="clock-gap"))
                break
    return problems


def _touch_budget(playbook: LoadedPlaybook) -> list[Problem]:
    """Days where some contact would get more group + private touches than per_contact_per_day."""
    model = playbook.model
    limit = model.limits.per_contact_per_day
    if limit is None:
        return []
    private = [(bi, beat, playbook.audience(beat)) for bi, beat in enumerate(model.beats) if beat.channel == "private"]
    universe = sorted(set().union(*(expr.tags for _, _, expr in private))) if private else []
    if len(universe) <= _MAX_TAG_UNIVERSE:
        tag_sets = [frozenset(c) for n in range(len(universe) + 1) for c in itertools.combinations(universe, n)]
    else:
        tag_sets = [frozenset(expr.tags) for _, _, expr in private]
    worst: dict[int, tuple[int, str, frozenset[str]]] = {}
    for cohort in playbook.cohorts:
        beat_days = playbook.beat_days_of(cohort)
        for day in range(1, model.days + 1):
            per_group: Counter[str] = Counter()
            for beat in model.beats:
                if beat.channel == "group" and day in beat_days[beat.id]:
                    for group in beat.group_ids or cohort.group_ids:
                        per_group[group] += len(beat.times)
            group_touches = max(per_group.values(), default=0)
            todays = [(beat, expr) for _, beat, expr in private if day in beat_days[beat.id]]
            best = (0, frozenset[str]())
            for tags in tag_sets or [frozenset()]:
                count = sum(len(beat.times) for beat, expr in todays if expr.matches(tags))
                if count > best[0]:
                    best = (count, tags)
            total = group_touches + best[0]
            if total > limit and (day not in worst or worst[day][0] < total):
                who = "a group member" + (f" tagged {'/'.join(sorted(best[1]))}" if best[1] else "")
                worst[day] = (total, who, best[1])
    if not worst:
        return []
    days = sorted(worst)
    total, who, _ = max(worst.values(), key=lambda item: item[0])
    return [
        playbook.located.problem(
            ("limits", "per_contact_per_day"),
            f"on day(s) {_days_text(days)} {who} would get up to {total} touches, above per_contact_per_day {limit}; the extra private drafts will be skipped",
            hint="raise the limit, move beats to other days, or narrow audiences",
            severity="warning",
            code="touch-budget",
        )
    ]


def _account_cap(playbook: LoadedPlaybook, contacts: Sequence[Mapping[str, Any]], planner: Planner | None = None) -> list[Problem]:
    """1v1 volume per persona account above private_per_account_per_day: beats' audiences and the journey steps of the store's contacts."""
    model = playbook.model
    cap = model.limits.private_per_account_per_day
    if cap is None or not contacts:
        return []
    planner = planner or Planner(playbook, contacts=contacts)
    volume: dict[tuple[str, str, int], int] = defaultdict(int)
    for beat in model.beats:
        if beat.channel != "private":
            continue
        expr = playbook.audience(beat)
        for cohort in playbook.cohorts:
            # A beat that names no persona goes to each contact from the account the contact added (Planner._private);
            # a contact who had deleted the account by that day's beat gets none (recorded not_friend).
            for day in playbook.beat_days_of(cohort)[beat.id]:
                moment = datetime.combine(cohort.start + timedelta(days=day - 1), parse_hhmm(beat.times[0]), tzinfo=playbook.tz)
                senders = Counter(
                    beat.persona or planner.own_persona(person, model.personas[0].id)
                    for person in planner.recipients(cohort, beat.id, expr, at=moment)
                )
                for persona, size in senders.items():
                    volume[(cohort.id, persona, day)] += size * len(beat.times)
    for cohort in playbook.cohorts:
        for draft in planner.journey_calendar(cohort):
            if draft.channel == "journey" and draft.skip is None:  # welcome messages answer the contact's own add and count against no limit
                volume[(cohort.id, draft.persona, draft.day)] += 1
    over = {key: count for key, count in volume.items() if count > cap}
    if not over:
        return []
    (cohort, persona, day), count = max(over.items(), key=lambda item: item[1])
    days = sorted({key[2] for key in over})
    return [
        playbook.located.problem(
            ("limits", "private_per_account_per_day"),
            f"persona {persona} would send up to {count} 1v1 drafts on day {day} (cohort {cohort}), above the cap of {cap}; days {_days_text(days)} are over",
            hint="raise the cap, split the audience across personas, or spread the beat over more days",
            severity="warning",
            code="account-cap",
        )
    ]


def _and(items: Any) -> str:
    names = list(items)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _pool_sizes(playbook: LoadedPlaybook) -> list[Problem]:
    """A pool smaller than the posts it must feed repeats a post within the campaign."""
    problems: list[Problem] = []
    from siyu_cli.render import search_path

    search = search_path(playbook)
    for bi, beat in enumerate(playbook.model.beats):
        if not beat.mix:
            continue
        needed: Counter[str] = Counter()
        for cohort in playbook.cohorts:  # calendar rules give cohorts different days: the busiest one counts
            here: Counter[str] = Counter()
            for entry in beat.mix:
                slots = len([d for d in playbook.days_of(entry.days) if d in playbook.beat_days_of(cohort)[beat.id]]) * len(beat.times)
                here.update(choose_categories(entry.ratio, slots))
            needed |= here
        for category, count in needed.items():
            size = len(pool_entries(playbook, beat, category, search)) if category in (beat.pools or {}) else 0
            if 0 < size < count:
                problems.append(
                    playbook.located.problem(
                        ("beats", bi, "pools", category),
                        f"pool {category!r} has {size} template(s) but feeds {count} posts; posts repeat after {size}",
                        hint=f"add {count - size} more {category} template(s)",
                        severity="warning",
                        code="pool-size",
                    )
                )
    return problems


