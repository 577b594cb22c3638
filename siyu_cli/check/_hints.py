"""A hint on every problem: what to write instead, read from the message and the line it points at.

The loader and the model say what is wrong; many of their messages cannot know the fix an author
needs (a tab, a full-width colon, `&&` for `and`). This fills in a hint wherever a problem has none,
and replaces YAML's generic one when the line shows the real cause.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from siyu_cli.errors import Problem

# The names a template sees (render/_context.py: ContextBuilder.for_occurrence and for_step).
TEMPLATE_NAMES = (
    "day", "date", "time", "phase", "beat", "persona", "personas", "products", "vars", "playbook",
    "cohort", "category", "stats", "group", "contact", "journey", "entry", "hook",
)

# The fields of a contact a template sees (ingest/_contacts.py: _contact; render/_context.py: SAMPLE_CONTACT).
CONTACT_FIELDS = ("id", "name", "tags", "source", "tier", "account", "cohort", "added_at", "extra")
_NO_FIELD = re.compile(r"a contact has no field '(\w+)'")

_OPERATORS = {"&&": "and", "&": "and", "||": "or", "|": "or", "!": "not"}
_OPERATOR = re.compile(r"unexpected '(&&|\|\||&|\||!)'")


def with_hints(problems: Sequence[Problem], text: str | None) -> list[Problem]:
    lines = text.splitlines() if text else []
    names = _Names(text)
    return [_with_hint(problem, lines, names) for problem in problems]


def _with_hint(problem: Problem, lines: list[str], names: _Names | None = None) -> Problem:
    if problem.code == "yaml" and problem.line is not None:
        specific = _yaml_hint(problem, lines)
        if specific:
            return replace(problem, hint=specific)
    operator = _OPERATOR.search(problem.message)
    if operator:  # before any hint the loader gave (the segment list): this is the fix
        return replace(problem, hint=_operator_hint(operator))
    if problem.hint:
        return problem
    message, hint = _split_fix(problem.message)
    if hint:
        return replace(problem, message=message, hint=hint)
    if _NOT_TEXT.search(problem.message):
        return replace(problem, hint=_quote_hint(problem, lines))
    attribute = _NO_ATTRIBUTE.search(problem.message)
    if attribute and names is not None:
        close = names.close(attribute.group(1), _line(problem, lines))
        if close:
            return replace(problem, hint=f"did you mean {close!r}?")
    for pattern, make in _RULES:
        match = pattern.search(problem.message)
        if match:
            return replace(problem, hint=make(match))
    return replace(problem, hint="see the playbook format: `siyu schema` describes every field")


_NOT_TEXT = re.compile(r"valid string \(got ")
_NO_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2", ".txt", ".md")


def _line(problem: Problem, lines: list[str]) -> str:
    """The line a problem points at: in its template file when it names one, else in the playbook."""
    index = (problem.line or 0) - 1
    if problem.file.endswith(_TEMPLATE_SUFFIXES):
        from pathlib import Path

        try:
            lines = Path(problem.file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return ""
    return lines[index] if 0 <= index < len(lines) else ""


class _Names:
    """What a template's `products.X`, `personas.X`, `groups.X`, `hooks.X` and `vars.X` may name (the playbook's
    ids and vars keys, read from its text), and the fields of one product, persona or group: the candidates for a
    misspelt attribute's did-you-mean (render/_context.py: ContextBuilder)."""

    COLLECTIONS = ("products", "personas", "groups", "hooks")
    ONE = {"products": "product", "personas": "persona", "groups": "group", "hooks": "hook"}

    def __init__(self, text: str | None) -> None:
        self.text = text
        self._keys: dict[str, list[str]] | None = None

    def keys(self) -> dict[str, list[str]]:
        if self._keys is None:
            import yaml

            from siyu_cli.playbook._model import Group, Hook, Persona, Product

            try:
                data = yaml.safe_load(self.text or "") or {}
            except yaml.YAMLError:
                data = {}
            data = data if isinstance(data, dict) else {}
            found: dict[str, list[str]] = {}
            for name in self.COLLECTIONS:
                items = data.get(name) if isinstance(data.get(name), list) else []
                found[name] = [str(item["id"]) for item in items if isinstance(item, dict) and item.get("id") is not None]
            found["vars"] = [str(key) for key in data.get("vars")] if isinstance(data.get("vars"), dict) else []
            for one, model in (("product", Product), ("persona", Persona), ("group", Group), ("hook", Hook)):
                found[one] = list(model.model_fields)
            self._keys = found
        return self._keys

    def close(self, attr: str, line: str) -> str:
        """`products.annual` for `anual` after `products.` on the line; any id or vars key when the line does not say."""
        keys = self.keys()
        owner = re.search(rf"((?:\w+\.)*\w+)\.{re.escape(attr)}\b", line)
        path = owner.group(1).split(".") if owner else []
        if path and path[-1] in keys and path[-1] not in self.ONE.values():
            choices = {f"{'.'.join(path)}.{key}": key for key in keys[path[-1]]}
        elif len(path) >= 2 and path[-2] in self.ONE:
            choices = {f"{'.'.join(path)}.{key}": key for key in keys[self.ONE[path[-2]]]}
        elif path and path[-1] in self.ONE.values():
            choices = {f"{'.'.join(path)}.{key}": key for key in keys[path[-1]]}
        elif path:
            return ""  # an object of another kind (stats, a loop's item): its keys are not the playbook's
        else:
            choices = {f"{name}.{key}": key for name in (*self.COLLECTIONS, "vars") for key in keys[name]}
        close = difflib.get_close_matches(attr, list(dict.fromkeys(choices.values())), n=1, cutoff=0.6)
        return next((full for full, key in choices.items() if close and key == close[0]), "")


def _quote_hint(problem: Problem, lines: list[str]) -> str:
    """Quote what the line has at the value, under its own key: `wecom_userid: "12345"`, not a time of day."""
    key = re.sub(r"(\[\d+\])+$", "", problem.path.rpartition(".")[2])
    if "(got None)" in problem.message:
        return f"write a value after {key}: (it is empty)"
    if key == "at":  # a number where a time of day goes (at: 830) is fixed by writing the time, not by quoting the number
        return 'write the time of day as quoted text, HH:MM, e.g. at: "08:30"'
    index, column = (problem.line or 0) - 1, (problem.column or 0) - 1
    line = lines[index] if 0 <= index < len(lines) and column >= 0 else ""
    written = re.split(r"[,\]}#]", line[column:], maxsplit=1)[0].strip()
    if not written:
        return "quote the value to make it text"
    return f'quote the value to make it text, e.g. {key}: "{written}"'


def _split_fix(message: str) -> tuple[str, str]:
    """'X; write HH:MM, e.g. 08:30' → ('X', 'write HH:MM, e.g. 08:30'): the fix a message carries is its hint."""
    head, sep, tail = message.rpartition("; ")
    if sep and re.match(r"(write|use|give|name|add|remove|quote|put|pick|set) ", tail):
        return head, tail
    return message, ""


def _yaml_hint(problem: Problem, lines: list[str]) -> str:
    """The cause YAML's parser cannot name: a tab, a full-width colon, an unclosed quote, a missing colon."""
    index = (problem.line or 1) - 1
    line = lines[index] if 0 <= index < len(lines) else ""
    if "\t" in line or "'\\t'" in problem.message:
        return f"line {index + 1} has a tab: YAML indents with spaces only; replace the tab with spaces"
    for number in (index, index - 1):
        text = lines[number] if 0 <= number < len(lines) else ""
        if "：" in text.split("#", 1)[0]:
            return f"line {number + 1} has a full-width colon '：'; YAML needs an ASCII colon and a space ('key: value')"
    for number in range(min(index, len(lines) - 1), -1, -1):
        code = lines[number].split(" #", 1)[0]
        if code.count('"') % 2 or (code.count("'") % 2 and not re.search(r"\w'\w", code)):
            return f"the quote opened on line {number + 1} is not closed; close it on the same line"
    if "could not find expected ':'" in problem.message:
        for number in (index - 1, index):  # YAML reports it on the line after the one missing its colon
            text = lines[number].strip() if 0 <= number < len(lines) else ""
            if text and not text.startswith(("#", "-")) and ":" not in text:
                return f"line {number + 1} needs 'key: value': a colon and a space after the key"
    return ""


def unknown_contact_fields(env: Any, source: str) -> list[tuple[str, int]]:
    """Each `contact.nmae` in a template's source: the field a contact does not have, and its line."""
    from jinja2 import nodes

    found = env.parse(source).find_all(nodes.Getattr)
    return [(n.attr, n.lineno) for n in found if isinstance(n.node, nodes.Name) and n.node.name == "contact" and n.attr not in CONTACT_FIELDS]


def contact_field_message(field: str) -> str:
    """One wording for a misspelt contact field, whether a render or the raw pass found it."""
    return f"undefined: 'contact.{field}': a contact has no field {field!r}"


def _contact_hint(field: str) -> str:
    close = difflib.get_close_matches(field, CONTACT_FIELDS, n=1, cutoff=0.6)
    return f"did you mean 'contact.{close[0]}'?" if close else f"a contact has {', '.join(CONTACT_FIELDS)}"


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"templates see {', '.join(TEMPLATE_NAMES)}"


def _operator_hint(match: re.Match[str]) -> str:
    word = _OPERATORS.get(match.group(1), "and")
    return f"write {word!r} instead of {match.group(1)!r}: tag expressions use and, or, not, e.g. 家长 and not 已购; quote a tag that contains {match.group(1)!r}"


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (_NO_FIELD, lambda m: _contact_hint(m.group(1))),
    (re.compile(r"'(\w+)' is undefined"), lambda m: _did_you_mean(m.group(1), TEMPLATE_NAMES)),
    (re.compile(r"has no attribute '(\w+)'"), lambda m: f"check the spelling of {m.group(1)!r}; `siyu preview day N --json` shows the values a template gets"),
    (re.compile(r"syntax error"), lambda m: "every {{ needs its }}, every {% if %} its {% endif %} and {% for %} its {% endfor %}"),
    (re.compile(r"template not found"), lambda m: "put the file in templates/ beside the playbook, or fix its name"),
    (re.compile(r"not UTF-8"), lambda m: "save the file as UTF-8"),
    (re.compile(r"valid integer"), lambda m: "write a whole number without quotes or units, e.g. 7"),
    (re.compile(r"valid number"), lambda m: "write a plain number without units or currency: 9.9, not 9.9元"),
    (re.compile(r"greater than or equal to (\S+)"), lambda m: f"use {m.group(1)} or more"),
    (re.compile(r"less than or equal to (\S+)"), lambda m: f"use {m.group(1)} or less"),
    (re.compile(r"valid date"), lambda m: "write the date as YYYY-MM-DD, e.g. 2026-12-01"),
    (re.compile(r"Input should be ('[^']*'(?:, '[^']*')*(?: or '[^']*')?)"), lambda m: f"write one of {m.group(1)}, exactly as spelled"),
    (re.compile(r"valid boolean"), lambda m: "write true or false"),
    (re.compile(r"valid (list|array)"), lambda m: "write a list: [a, b] or one '- item' per line"),
    (re.compile(r"valid (dictionary|mapping)|valid object"), lambda m: "write a mapping: {key: value} or one 'key: value' per line"),
    (re.compile(r"valid string"), lambda m: "write one text value here, not a list or a mapping"),
    (re.compile(r"reaches day (\d+), but the campaign has (\d+)"), lambda m: f"end the range by day {m.group(2)}, or raise days: to {m.group(1)}"),
    (re.compile(r"needs an audience"), lambda m: "add audience: a segment id from segments:, or a tag expression such as '家长 and not 已购'"),
    (re.compile(r"either template or text|one of template"), lambda m: "keep one: template: names a file, text: is inline Jinja"),
    (re.compile(r"inside quiet hours"), lambda m: "move it out of quiet hours, or set on_quiet: skip to drop it"),
    (re.compile(r"missing required field '(\w+)'"), lambda m: f"add {m.group(1)}: (`siyu schema` shows its form)"),
    (re.compile(r"duplicate"), lambda m: "give each one its own id"),
    (re.compile(r"unknown (?!key ')(\w+) '"), lambda m: f"define it under {m.group(1)}s:, or fix the spelling"),
    (re.compile(r"does not parse|cannot read"), lambda m: "write tags joined by and, or, not and ( ); quote a tag with spaces: \"高 意向\""),
]
