"""Mapping files: how an export's columns become siyu's fields, in the format users and presets share.

A mapping file is YAML or JSON. Each key is one of the file's columns (or, for a constant, one of
siyu's fields); a few keys are options of the whole file:

    about: 淘宝订单导出                # shown by `siyu import presets`
    for: events                       # contacts | events: which import it is for
    sheet: 订单                        # XLSX sheet, by name or number from 1
    header_row: 3                     # the header's row; detected past title rows when omitted
    key: [contact_id, at]             # an event's natural key when the file has no event_id
    needs: [event_id, amount]         # fields one of the file's columns must give (beyond the import's own)
    also: [card_sent]                 # every kept row also records these events (same contact, time)
    merge_rows: true                  # contacts: rows sharing an id are one contact (earliest add decides)
    add_events: true                  # contacts: each row's add is a friend_added event
    订单编号: event_id                  # a column into a field (`-` drops it)
    type: {const: order}              # a field from a constant
    订单状态: {field: type, values: {交易成功: order, 交易关闭: closed}, other: skip}
    添加渠道: {field: source, hooks: true, match: '-(\\w+)）$'}   # a part of the cell
    订单付款时间: {field: at, empty: skip}                       # an empty cell leaves the row out
    买家ID: {alias: true}              # another id of the row's contact (the cell is kept too)
    备注: {alias: true, match: '(tb_\\w+)'}  # the part of the cell that is the id; no match, no alias
    企业标签: tags                      # several columns into one field: tags are joined,
    个人标签: tags                      #   any other field takes the first non-empty column

A column the mapping names for a field must be in the file unless another column gives that
field (a preset's alternatives, an optional column): a typo is an error, not an empty field.
Hook codes match whole (CASH5 is not in CASH50, card-repurchase not in card-repurchase-2).
An id with a `*` in it is masked (t**g): never an identity, only kept beside the row.
A type value of `closed` is an order closed after the fact: see import_events.

Presets are such files shipped in siyu_cli/ingest/presets/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.ingest._parse import MASK

DROP = "-"
SKIP = "skip"
CLOSED = "closed"
OPTIONS = ("about", "for", "sheet", "header_row", "key", "needs", "also", "merge_rows", "add_events")
RULE_KEYS = frozenset({"field", "values", "other", "match", "hooks", "empty", "alias", "const"})
KINDS = ("contacts", "events")
PSEUDO_FIELDS = {"events": ("refund",), "contacts": ()}


class Skip(Exception):
    """The mapping leaves this row out on purpose (a value mapped to `skip`, an `empty: skip` cell); args[0] says why."""


class Closed(Exception):
    """The row's type value maps to `closed`: an order closed after the fact; args[0] says which value (for messages)."""


@dataclass(frozen=True)
class Rule:
    """One line of a mapping: a column (or a constant) into a field, and how the cell is read."""

    column: str | None
    field: str | None
    values: Mapping[str, str] | None = None
    other: str | None = None
    match: re.Pattern[str] | None = None
    hooks: bool = False
    empty: str | None = None
    alias: bool = False
    const: str | None = None
    origin: str = ""  # the file or preset the rule came from, for messages
    optional: bool = False  # a preset's column that an export may not have (not noted as unused)

    @property
    def label(self) -> str:
        """How messages name the rule: the user's column, or the constant's field."""
        return self.column if self.column is not None else f"{self.field} (constant in {self.origin})"


@dataclass(frozen=True)
class ColumnMap:
    """A whole mapping: its rules in the order written, and the options of the file."""

    rules: tuple[Rule, ...] = ()
    name: str = ""
    about: str = ""
    kind: str | None = None
    sheet: str | int | None = None
    header_row: int | None = None
    key: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    merge_rows: bool = False
    add_events: bool = False
    preset: bool = False

    def then(self, other: ColumnMap) -> ColumnMap:
        """This mapping with `other` on top: its rules replace ours for the same column (or constant), its options win."""
        taken = {(rule.column, rule.field if rule.column is None else None) for rule in other.rules}
        kept = tuple(rule for rule in self.rules if (rule.column, rule.field if rule.column is None else None) not in taken)
        options = {name: getattr(other, name) for name in ("about", "kind", "sheet", "header_row", "key", "also") if getattr(other, name)}
        options["needs"] = tuple(dict.fromkeys((*self.needs, *other.needs)))
        for flag in ("merge_rows", "add_events"):
            if getattr(other, flag):
                options[flag] = True
        return replace(self, rules=kept + other.rules, name=other.name or self.name, preset=self.preset and other.preset, **options)

    @property
    def columns(self) -> list[str]:
        return [rule.column for rule in self.rules if rule.column is not None]


def load_mapping(path: str | os.PathLike[str]) -> ColumnMap:
    """A user's mapping file (YAML or JSON)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SiyuError(f"{file}: cannot read mapping file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SiyuError(f"{file}: a mapping file must be UTF-8 text", hint="save it as UTF-8") from None
    return parse_mapping(_core_yaml(text, str(file)), str(file))


def _core_yaml(text: str, name: str) -> Any:
    """YAML 1.2 core, as playbooks and editors read it: `no`, `on` and `off` stay text, never booleans."""
    from siyu_cli.playbook._yaml import load_located

    located, problems = load_located(text, name)
    errors = [p for p in problems if p.severity == "error"]
    if located is None or errors:
        first = errors[0] if errors else problems[0]
        where = ":".join(str(part) for part in (first.file, first.line, first.column) if part is not None)
        raise SiyuError(f"{where}: not a YAML or JSON mapping: {first.message}", hint="write one `their column: field` per line")
    return located.data


def parse_map_options(options: Collection[str]) -> ColumnMap:
    """`--map their_column=field` options; the last `=` splits, so a column name may contain one."""
    rules = []
    for option in options:
        their, sep, target = option.rpartition("=")
        if not sep or not their.strip() or not target.strip():
            raise UsageError(f"--map {option!r}: write THEIR_COLUMN=FIELD, e.g. --map 客户ID=contact_id")
        rules.append(Rule(their.replace("\ufeff", "").strip(), target.strip(), origin="--map"))
    return ColumnMap(tuple(rules), name="--map")


def preset_names() -> list[str]:
    return sorted(entry.name[: -len(".yaml")] for entry in _presets().iterdir() if entry.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """A preset's file as shipped (read through the package's resources, so it works from a wheel)."""
    entry = _presets().joinpath(f"{name}.yaml")
    if not entry.is_file():
        raise UsageError(f"--preset {name}: no such preset", hint=f"the presets are: {', '.join(preset_names())} (`siyu import presets` lists them)")
    return entry.read_text(encoding="utf-8")


def load_preset(name: str) -> ColumnMap:
    mapping = parse_mapping(_core_yaml(preset_text(name), f"preset {name}"), f"preset {name}")
    return replace(mapping, rules=tuple(replace(rule, optional=True) for rule in mapping.rules), preset=True)


def parse_mapping(data: Any, name: str) -> ColumnMap:
    """A mapping from its parsed YAML; every error names the file and the key."""
    if not isinstance(data, dict) or not data:
        raise SiyuError(f"{name}: a mapping file must map column names to fields, e.g. `客户ID: contact_id`")
    rules: list[Rule] = []
    options: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("\ufeff", "").strip()
        if key in OPTIONS:
            options[key] = _option(key, value, name)
            continue
        for item in value if isinstance(value, list) else [value]:
            rules.append(_rule(key, item, name))
    kind = options.get("for")
    return ColumnMap(
        tuple(rules),
        name=name,
        about=options.get("about", ""),
        kind=kind,
        sheet=options.get("sheet"),
        header_row=options.get("header_row"),
        key=tuple(options.get("key", ())),
        needs=tuple(options.get("needs", ())),
        also=tuple(options.get("also", ())),
        merge_rows=bool(options.get("merge_rows", False)),
        add_events=bool(options.get("add_events", False)),
    )


def _option(key: str, value: Any, name: str) -> Any:
    def bad(expected: str) -> SiyuError:
        return SiyuError(f"{name}: {key}: {value!r} is not {expected}")

    if key == "about":
        return str(value or "")
    if key == "for":
        if value not in KINDS:
            raise bad("contacts or events")
        return value
    if key == "sheet":
        if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
            raise bad("a sheet name or a number from 1")
        return value
    if key == "header_row":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("a row number from 1")
        return value
    if key in ("key", "needs", "also"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(item, str) and item.strip() for item in items):
            raise bad("a name or a list of names")
        return [item.strip() for item in items]
    if not isinstance(value, bool):
        raise bad("true or false")
    return value


def _rule(key: str, value: Any, name: str) -> Rule:
    if isinstance(value, str):
        return Rule(key, value.strip(), origin=name)
    if not isinstance(value, dict):
        raise SiyuError(f"{name}: {key}: write a field name or {{field: …}}, not {value!r}", hint="e.g. `客户ID: contact_id` or `订单状态: {field: type, values: {交易成功: order}}`")
    unknown = sorted(set(map(str, value)) - RULE_KEYS)
    if unknown:
        raise SiyuError(f"{name}: {key}: unknown option {unknown[0]!r}", hint=f"a column's options are: {', '.join(sorted(RULE_KEYS))}")
    if "const" in value:
        if set(value) != {"const"} or value["const"] is None or isinstance(value["const"], dict | list):
            raise SiyuError(f"{name}: {key}: a constant is written `{key}: {{const: VALUE}}` and nothing else")
        return Rule(None, key, const=str(value["const"]), origin=name)
    target = value.get("field")
    alias = value.get("alias", False)
    if not isinstance(alias, bool):
        raise SiyuError(f"{name}: {key}: alias: write true or false")
    if target is None and not alias:
        raise SiyuError(f"{name}: {key}: say which field the column fills (field: …) or that it is an alias (alias: true)")
    if target is not None and not isinstance(target, str):
        raise SiyuError(f"{name}: {key}: field: {target!r} is not a field name")
    values = value.get("values")
    if values is not None:
        if not isinstance(values, dict) or not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values.values()):
            raise SiyuError(f"{name}: {key}: values: write `their value: field value` pairs (a field value of skip leaves the row out)")
        values = {str(k).strip(): str(v).strip() for k, v in values.items()}
    other = value.get("other")
    if other is not None and (values is None or not isinstance(other, str)):
        raise SiyuError(f"{name}: {key}: other: is what values not listed under values: become (skip, keep, or a value)")
    pattern = value.get("match")
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(str(pattern))
        except re.error as exc:
            raise SiyuError(f"{name}: {key}: match: {pattern!r} is not a regular expression: {exc}") from None
        if compiled.groups > 1:
            raise SiyuError(f"{name}: {key}: match: use at most one group (the part to keep), not {compiled.groups}")
    empty = value.get("empty")
    if empty not in (None, SKIP):
        raise SiyuError(f"{name}: {key}: empty: the only choice is skip (leave the row out when the cell is empty)")
    hooks = value.get("hooks", False)
    if not isinstance(hooks, bool):
        raise SiyuError(f"{name}: {key}: hooks: write true or false")
    return Rule(key, target.strip() if target else None, values, other, compiled, hooks, empty, alias, origin=name)


def _presets() -> Any:
    return files("siyu_cli.ingest").joinpath("presets")


# -- compiled against a header -------------------------------------------------------------------

Getter = Callable[[list[Any]], Any]
_TOKEN = "A-Za-z0-9_"


@dataclass
class Compiled:
    """A mapping bound to a file's header: a getter per field, alias getters, and the columns kept as extras."""

    getters: dict[str, Getter]
    sources: dict[str, list[str]]  # field -> the user's columns (or constants) that give it, for messages
    aliases: list[tuple[str, Getter]]
    extra: list[tuple[str, int]]
    unused: list[str]
    unmatched_hooks: dict[str, int] = field(default_factory=dict)
    unknown_codes: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> code taken that is no hook -> rows


def compile_mapping(
    mapping: ColumnMap,
    header: list[str],
    fields: tuple[str, ...],
    kind: str,
    file: Path,
    *,
    required: Iterable[str],
    implicit: Mapping[str, str],
    clean: Mapping[str, Callable[[Any], str | None]],
    text: Callable[[Any], str | None],
    hook_refs: Mapping[str, str],
) -> Compiled:
    """Bind each rule to its column. `clean` reads the cells of some fields (ids); `text` the rest."""
    allowed = (*fields, *PSEUDO_FIELDS[kind])
    for rule in mapping.rules:
        if rule.field is not None and rule.field != DROP and rule.field not in allowed:
            where = f"--map {rule.column}={rule.field}" if rule.origin == "--map" else f"{rule.origin}: {rule.label}"
            raise UsageError(f"{where}: {rule.field!r} is not a {kind} column", hint=f"map to one of: {', '.join(allowed)} (or - to drop the column)")
    for option, names in (("key", mapping.key), ("needs", mapping.needs)):
        for name in names:
            if name not in allowed:
                raise UsageError(f"{mapping.name}: {option}: {name!r} is not an {kind} field", hint=f"use fields of: {', '.join(allowed)}")
    positions = {name: i for i, name in reversed(list(enumerate(header)))}
    per_field: dict[str, list[tuple[Rule, int | None]]] = {}
    aliases: list[tuple[str, Getter]] = []
    mapped: set[int] = set()
    unused: list[str] = []
    absent: list[Rule] = []
    kept_raw: dict[int, str] = {}
    read_id = clean.get("contact_id", text)
    for rule in mapping.rules:
        if rule.column is None:
            per_field.setdefault(str(rule.field), []).append((rule, None))
            continue
        i = positions.get(rule.column)
        if i is None:
            if rule.optional:
                continue
            if rule.field in (None, DROP):
                unused.append(rule.column)  # an alias or a dropped column: nothing is missing without it
            else:
                absent.append(rule)
            continue
        mapped.add(i)
        if rule.alias:
            aliases.append((rule.column, _alias_getter(i, rule.match, read_id)))
            kept_raw[i] = rule.column  # the cell stays beside the row: a masked id or an unmatched note is not lost
        if rule.field is not None and rule.field != DROP:
            per_field.setdefault(rule.field, []).append((rule, i))
            if rule.hooks or rule.match is not None:
                kept_raw[i] = rule.column  # the whole cell stays beside the part taken
    extra: list[tuple[str, int]] = []
    implicit_source: dict[str, str] = {}
    for i, name in enumerate(header):
        if i in mapped:
            continue
        lowered = name.lower()
        target = lowered if lowered in fields else implicit.get(lowered, "")
        if not target:
            extra.append((name or f"column_{i + 1}", i))
            continue
        if target in per_field or target in implicit_source:
            first = implicit_source.get(target) or per_field[target][0][0].label
            raise UsageError(f"{file}: columns {first!r} and {name!r} both give {target}", hint=f"drop one with --map '{name}=-'")
        implicit_source[target] = name
        per_field[target] = [(Rule(name, target, origin="header"), i)]
    _check_absent(absent, per_field, header, file, unused)
    compiled = Compiled({}, {}, aliases, extra + [(name, i) for i, name in kept_raw.items()], unused)
    for target, rules in per_field.items():
        compiled.sources[target] = [rule.label for rule, _ in rules]
        singles = [_cell_getter(rule, i, clean.get(target, text), text, hook_refs, compiled) for rule, i in rules]
        compiled.getters[target] = _identity_getter(singles, compiled.sources[target]) if target == "contact_id" else _field_getter(target, singles)
    missing = [name for name in dict.fromkeys((*required, *mapping.needs)) if name not in compiled.getters]
    if missing:
        named = {name: [rule.column for rule in mapping.rules if rule.field == name and rule.column] for name in missing}
        reads = "; ".join(f"{mapping.name} reads {name} from {' or '.join(map(repr, columns))}" for name, columns in named.items() if columns)
        raise SiyuError(
            f"{file}: no {', '.join(missing)} column; the file's columns are: {', '.join(header) or '(none)'}" + (f" ({reads})" if reads else ""),
            hint=f"is it the export the mapping is for? Name the column with --map 'THEIR_COLUMN={missing[0]}', a --map-file or a --preset (`siyu import presets` lists them)",
        )
    return compiled


def _check_absent(absent: list[Rule], per_field: Mapping[str, Any], header: list[str], file: Path, unused: list[str]) -> None:
    """A column named for a field that no column of the file gives is a typo or the wrong file: an error, with the
    closest real column. One whose field another column gives (a preset's alternative) is only a note."""
    import difflib

    wrong = []
    for rule in absent:
        if rule.field in per_field:
            unused.append(str(rule.column))
            continue
        close = difflib.get_close_matches(str(rule.column), header, n=1, cutoff=0.5)
        wrong.append((rule, f"column {rule.column!r} ({rule.field}, named in {rule.origin}) is not in the file" + (f" (did you mean {close[0]!r}?)" if close else "")))
    if wrong:
        rule = wrong[0][0]
        raise SiyuError(
            f"{file}: {'; '.join(text for _, text in wrong)}. Nothing was imported. The file's columns are: {', '.join(header) or '(none)'}",
            hint=f"correct the column's name in {rule.origin}, or map one of the file's columns to {rule.field}",
        )


def _field_getter(target: str, singles: list[Getter]) -> Getter:
    """One field's getter: a plain column is an index read; several columns are tried in order (tags: all joined)."""
    if len(singles) == 1:
        return singles[0]
    if target == "tags":

        def joined(cells: list[Any]) -> str | None:
            parts = [part for getter in singles if (part := getter(cells))]
            return "，".join(parts) if parts else None

        return joined

    def first(cells: list[Any]) -> str | None:
        for getter in singles:
            found = getter(cells)
            if found is not None:
                return found
        return None

    return first


def _identity_getter(singles: list[Getter], labels: list[str]) -> Getter:
    """The contact id: the first column with an unmasked id (a Taobao export's 买家ID before its masked 买家会员名).
    A row whose only ids are masked has no identity: two buyers shown as t**g are not one person."""

    def identity(cells: list[Any]) -> str | None:
        hidden = None
        for label, getter in zip(labels, singles, strict=True):
            found = getter(cells)
            if found is None:
                continue
            if MASK not in found:
                return found
            hidden = hidden or (label, found)
        if hidden is not None:
            label, found = hidden
            raise ValueError(
                f"{label}: {found!r} is masked (the platform hid part of it with *), so it cannot tell buyers apart; "
                "export with the buyer's id column (淘宝: 买家ID), or map a column of unmasked ids to contact_id"
            )
        return None

    return identity


def _alias_getter(i: int, pattern: re.Pattern[str] | None, read: Callable[[Any], str | None]) -> Getter:
    """An alias column's id: the cell, or the part `match:` takes (no match, no alias); a masked id is never an alias."""

    def alias(cells: list[Any]) -> str | None:
        value = read(cells[i])
        if value is not None and pattern is not None:
            found = pattern.search(value)
            value = ((found.group(1) if pattern.groups else found.group(0)) or "").strip() or None if found is not None else None
        return None if value is None or MASK in value else value

    return alias


def _hook_finder(hook_refs: Mapping[str, str]) -> Callable[[str], str | None]:
    """The hook a cell names: its code or id as a whole token (not inside CASH50 or card-repurchase-2), longest first.
    A token is letters, digits and `_`, and `-` between them; cells repeat, so each distinct one is looked at once."""
    from functools import lru_cache

    patterns = [
        (re.compile(f"(?<![{_TOKEN}])(?<![{_TOKEN}]-){re.escape(ref)}(?![{_TOKEN}])(?!-[{_TOKEN}])"), code)
        for ref, code in sorted(hook_refs.items(), key=lambda item: (-len(item[0]), item[0]))
    ]

    @lru_cache(maxsize=4096)
    def find(value: str) -> str | None:
        return next((code for pattern, code in patterns if pattern.search(value)), None)

    return find


def _cell_getter(rule: Rule, i: int | None, read: Callable[[Any], str | None], text: Callable[[Any], str | None], hook_refs: Mapping[str, str], compiled: Compiled) -> Getter:
    if rule.const is not None:
        const = rule.const
        return lambda _cells: const
    assert i is not None
    column = str(rule.column)
    if rule.values is None and rule.match is None and not rule.hooks and rule.empty is None:
        return lambda cells: read(cells[i])
    values, other, pattern, empty = rule.values, rule.other, rule.match, rule.empty
    closes = rule.field == "type"
    find = _hook_finder(hook_refs) if rule.hooks and hook_refs else None
    hooks = rule.hooks
    unmatched, unknown = compiled.unmatched_hooks, compiled.unknown_codes
    codes = set(hook_refs.values()) | set(hook_refs)

    def get(cells: list[Any]) -> str | None:
        value = text(cells[i])
        if value is None:
            if empty == SKIP:
                raise Skip(f"{column} empty")
            return None
        if values is not None:
            mapped = values.get(value)
            if mapped is None:
                if other is None:
                    listed = ", ".join(values)
                    raise ValueError(f"{column}: {value!r} is not one of the values the mapping lists ({listed}); add it under values:, or say other: skip")
                mapped = value if other == "keep" else other
            if mapped == SKIP:
                raise Skip(f"{column} {value}")
            if mapped == CLOSED and closes:
                raise Closed(f"{column} {value}")
            return mapped
        if find is not None and (code := find(value)) is not None:
            return code
        if pattern is not None:
            found = pattern.search(value)
            if found is not None:
                part = ((found.group(1) if pattern.groups else found.group(0)) or "").strip()
                if part:
                    if hooks and codes and part not in codes:
                        counts = unknown.setdefault(column, {})
                        counts[part] = counts.get(part, 0) + 1
                    return part
        if hooks or pattern is not None:
            unmatched[column] = unmatched.get(column, 0) + 1
            return None
        return read(value)

    return get
