"""YAML loading that remembers where every value came from, so errors point at file:line:col."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from siyu_cli.errors import Problem

Path_ = tuple[str | int, ...]
_PLAIN_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")


@dataclass
class Located:
    """The data of a YAML document and a map from each path to its (line, column), 1-based."""

    data: Any
    file: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

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
    """SafeLoader; plain HH:MM scalars stay strings instead of YAML 1.1 base-60 integers."""


def load_located(text: str, file: str) -> tuple[Located | None, list[Problem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return None, [
            Problem(
                message=f"YAML syntax: {message}",
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                hint="check indentation, colons and quotes on this line",
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
        if node.style is None and _PLAIN_CLOCK.match(node.value):
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problem(node, path, f"YAML value {node.value!r}: {exc.problem}", "remove the explicit !!tag or fix the value", "yaml")
        except ValueError:
            # Looks like a date or number to YAML but is not one (2026-02-30): the model judges the text.
            return node.value
        return None
