"""YAML loading that remembers where every value came from, so errors point at file:line:col."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from siyu_cli.errors import Problem

Path_ = tuple[str | int, ...]
_PLAIN_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")
# The YAML 1.2 core schema's plain scalars (https://yaml.org/spec/1.2.2/#1032-tag-resolution), the
# dialect of yaml-language-server and every current editor: yes/no/on/off and dates stay text.
_CORE_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_CORE_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_CORE_INT = re.compile(r"^[-+]?[0-9]+$")
_CORE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_CORE_INF = re.compile(r"^([-+]?)\.(inf|Inf|INF)$")
_CORE_NAN = re.compile(r"^\.(nan|NaN|NAN)$")


def core_scalar(text: str) -> Any:
    """A plain scalar's value under YAML 1.2 core."""
    if _CORE_NULL.match(text):
        return None
    if text in _CORE_BOOL:
        return _CORE_BOOL[text]
    if _CORE_INT.match(text):
        return int(text)
    if text.startswith("0o") and re.fullmatch(r"[0-7]+", text[2:]):
        return int(text[2:], 8)
    if text.startswith("0x") and re.fullmatch(r"[0-9a-fA-F]+", text[2:]):
        return int(text[2:], 16)
    if _CORE_FLOAT.match(text):
        return float(text)
    if match := _CORE_INF.match(text):
        return float(match.group(1) + "inf")
    if _CORE_NAN.match(text):
        return float("nan")
    return text


@dataclass(frozen=True)
class Yaml11:
    """A plain scalar a YAML 1.1 reader (PyYAML, older tools) reads otherwise than siyu and editors do."""

    path: Path_
    text: str
    value: Any  # as read here, YAML 1.2 core
    yaml11: Any  # as a YAML 1.1 reader has it


@dataclass
class Located:
    """The data of a YAML document and a map from each path to its (line, column), 1-based."""

    data: Any
    file: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    yaml11: list[Yaml11] = field(default_factory=list)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        """The closest known position to `path` (walking up when a path does not exist)."""
        probe = tuple(path)
        while True:
            table = self.key_marks if key and probe in self.key_marks else self.marks
            if probe in table:
                return table[probe]
            if not probe:
                return (None, None)
            probe = probe[:-1]

    def problem(self, path: Path_, message: str, *, hint: str = "", severity: str = "error", code: str = "", key: bool = False) -> Problem:
        line, column = self.where(path, key=key)
        return Problem(
            message=message,
            file=self.file,
            line=line,
            column=column,
            path=format_path(path),
            hint=hint,
            severity=severity,
            code=code,
        )


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


class _Loader(yaml.SafeLoader):
    """SafeLoader's parser; plain scalars are then read as YAML 1.2 core (see _Builder.scalar)."""


# A key followed by a full-width colon: `key：value`, `- id：x` (only where no ASCII colon comes first).
_WIDE_COLON = re.compile(r"^(\s*)((?:-\s+)?[A-Za-z_][\w.-]*|[^\s#'\"{}\[\],:：-][^:#：]*?)\s*：")


def syntax_slips(text: str, file: str) -> tuple[list[Problem], str]:
    """The slips a YAML parser stops at one by one: each tab in an indent and each `key：value`, and the text mended.

    The mended text keeps every line where it was, so the rest of the document can be validated in the same round.
    """
    problems: list[Problem] = []
    lines = text.split("\n")
    indent = 0
    for index, line in enumerate(lines):
        lead = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in lead:
            problems.append(Problem("YAML syntax: a tab in the indentation", file=file, line=index + 1, column=lead.index("\t") + 1, code="yaml"))
            line = " " * indent + line.lstrip(" \t")
        wide = _WIDE_COLON.match(line)
        if wide:
            column = wide.end()
            problems.append(Problem(f"YAML syntax: a full-width colon '：' after {wide.group(2).lstrip('- ')!r}", file=file, line=index + 1, column=column, code="yaml"))
            line = line[: column - 1] + ": " + line[column:].lstrip(" ")
        lines[index] = line
        code = line.split(" #", 1)[0].rstrip()
        if code.strip() and not code.lstrip().startswith("#"):
            indent = len(line) - len(line.lstrip(" ")) + (2 if code.endswith(":") else 0)
    return problems, "\n".join(lines)


def load_located(text: str, file: str) -> tuple[Located | None, list[Problem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        slips, mended = syntax_slips(text, file)
        if slips and mended != text:
            # Every slip is reported, and what else the mended text shows (its next syntax error, or its structure).
            located, more = load_located(mended, file)
            return located, slips + more
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        hint = "check indentation, colons and quotes on this line"
        if str(exc.context or "").startswith("while parsing a flow") and exc.context_mark is not None and exc.problem_mark is not None:
            # The parser stops where the next entry begins; the slip is the bracket left open where it opened.
            opened, closing = ("{", "}") if "mapping" in str(exc.context) else ("[", "]")
            mark, found = exc.context_mark, exc.problem_mark.line + 1
            message = f"the {opened} opened here is not closed: YAML reached line {found} still inside it"
            hint = f"close it with {closing} on line {mark.line + 1}"
        return None, [
            Problem(
                message=f"YAML syntax: {message}",
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                hint=hint,
                code="yaml",
            )
        ]
    except yaml.YAMLError as exc:
        return None, [Problem(message=f"YAML syntax: {exc}", file=file, code="yaml")]
    finally:
        loader.dispose()
    located = Located(data=None, file=file)
    problems: list[Problem] = []
    if node is None:
        return located, problems
    try:
        located.data = _Builder(located, problems, loader).build(node, ())
    except _TooBig:
        return None, [
            Problem(
                message=f"the document expands to more than {_MAX_VALUES:,} values",
                file=file,
                line=1,
                column=1,
                hint="YAML aliases (*name) that repeat anchors inside anchors multiply; write the values out",
                code="yaml",
            )
        ]
    return located, problems


# A real playbook has a few thousand values; aliases of aliases can expand to billions.
_MAX_VALUES = 200_000


class _TooBig(Exception):
    pass


_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Tags YAML 1.1 gives plain scalars by their look; "str" is among them (1.2 may read "1e3" as a number).
_IMPLICIT_11 = {f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "null", "str")} | {_TIMESTAMP}


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Python values from YAML nodes, recording where each path came from."""

    def __init__(self, located: Located, problems: list[Problem], loader: _Loader) -> None:
        self.located = located
        self.problems = problems
        self.loader = loader
        self.count = 0

    def problem(self, node: yaml.Node, path: Path_, message: str, hint: str, code: str) -> None:
        line, column = _mark(node)
        self.problems.append(
            Problem(message=message, file=self.located.file, line=line, column=column, path=format_path(path), hint=hint, code=code)
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > _MAX_VALUES:
            raise _TooBig
        self.located.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            self.loader.flatten_mapping(node)
            for key_node, value_node in node.value:
                # Keys keep their text: YAML 1.1 would turn `off:` into False and `1:` into 1.
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(_mark(key_node))
                child = path + (key,)
                if key in result:
                    self.problem(key_node, child, f"duplicate key {key!r}", "each key may appear once; the later one would silently win", "duplicate-key")
                self.located.key_marks[child] = _mark(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        implicit = node.style is None and node.tag in _IMPLICIT_11
        value = core_scalar(node.value) if implicit else None
        try:
            yaml11 = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problem(node, path, f"YAML value {node.value!r}: {exc.problem}", "remove the explicit !!tag or fix the value", "yaml")
            return None
        except ValueError:
            # Looks like a date or number to YAML 1.1 but is not one (2026-02-30): the text, as 1.2 reads it.
            return node.value
        if not implicit:
            return yaml11
        # Dates are text in 1.2 and parsed by the model; a plain clock (8:30) is a time, never 1.1's base-60 510.
        if node.tag != _TIMESTAMP and not _PLAIN_CLOCK.match(node.value) and repr(yaml11) != repr(value):
            self.located.yaml11.append(Yaml11(path, node.value, value, yaml11))
        return value
