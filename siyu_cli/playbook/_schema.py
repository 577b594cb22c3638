"""The playbook's JSON Schema for editors (yaml-language-server), generated from the model check validates with.

The model gives the shape; this adds what an editor needs and pydantic cannot say: a description and an
example on every property (the model's Field descriptions, else playbook/_docs.py), the patterns of
check's validators (times, durations, quiet hours), the channel rules as if/then, quoted numbers and
yes/no as check accepts them, and titles an editor's hover can show ("at", never "At || At").
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from siyu_cli.playbook import _model
from siyu_cli.playbook._docs import DOCS

_CLOCK_BODY = r"([01]?[0-9]|2[0-3]):[0-5][0-9]"
CLOCK = rf"^\s*{_CLOCK_BODY}\s*$"
QUIET = rf"^\s*{_CLOCK_BODY}\s*-\s*{_CLOCK_BODY}\s*$"
DURATION = r"^\s*[0-9]+\s*[smhdw]\s*$"
POSITIVE_DURATION = r"^\s*0*[1-9][0-9]*\s*[smhdw]\s*$"
DATE_OR_SPAN = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}(\s*\.\.\s*[0-9]{4}-[0-9]{2}-[0-9]{2})?\s*$"
SIGNED_TAG = r"^\s*[+-]\s*\S"  # as check: `++学员` adds the tag "+学员" (check warns about it)
# pydantic's lax mode, which check runs in: "60" is 60, "0.1" is 0.1, yes/on/1 are true.
_INT_TEXT = r"^\s*[+-]?[0-9]+(_[0-9]+)*(\.0*)?\s*$"
_POSITIVE_INT_TEXT = r"^\s*\+?0*[1-9][0-9]*(_[0-9]+)*(\.0*)?\s*$"
_NUMBER_TEXT = r"^\s*[+-]?([0-9]+(_[0-9]+)*(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
_BOOL_TEXT = r"^([Tt]rue|TRUE|[Ff]alse|FALSE|[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF|[YyNnTtFf]|1|0)$"

_CLOCK: dict[str, Any] = {"type": "string", "pattern": CLOCK, "title": "a time of day"}
_DURATION: dict[str, Any] = {"type": "string", "pattern": DURATION, "title": "a duration"}
_NULL: dict[str, Any] = {"type": "null", "title": "empty"}


def _one_of(*fields: str) -> dict[str, Any]:
    """Exactly one of these keys is given (check: "give either template or text, not both")."""
    return {"oneOf": [{"required": [name], "title": f"with {name}"} for name in fields]}


def _if_channel(channel: str, then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"if": {"properties": {"channel": {"const": channel}}, "required": ["channel"]}, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


# Per property: the schema check's validators imply. Keys are "Model.field" (the field's name in the file).
_PROPERTIES: dict[str, dict[str, Any]] = {
    "Beat.at": {"anyOf": [_CLOCK, {"type": "array", "items": _CLOCK, "minItems": 1, "uniqueItems": True, "title": "several times"}]},
    "WelcomeStep.at": {"anyOf": [_CLOCK, _NULL]},
    "JourneyStep.at": {"anyOf": [_CLOCK, _NULL]},
    "WelcomeStep.after": _DURATION,
    "JourneyStep.after": _DURATION,
    "Missed.max_late": _DURATION,
    "Funnel.window": {"anyOf": [_DURATION, _NULL]},
    "GroupHealth.window": _DURATION,
    "WebhookOutput.timeout": {"anyOf": [_DURATION, {"type": "integer", "minimum": 1, "title": "seconds"}, _NULL]},
    "WecomOutput.timeout": {"anyOf": [_DURATION, {"type": "integer", "minimum": 1, "title": "seconds"}, _NULL]},
    "WecomOutput.remind_after": {**_DURATION, "pattern": POSITIVE_DURATION, "title": "a duration above 0"},
    "Limits.quiet_hours": {"anyOf": [{"type": "string", "pattern": QUIET, "title": "HH:MM-HH:MM"}, _NULL]},
    "Rule.tag": {
        "anyOf": [
            {"type": "string", "pattern": SIGNED_TAG, "title": "one change"},
            {"type": "array", "items": {"type": "string", "pattern": SIGNED_TAG}, "minItems": 1, "title": "changes in order"},
        ]
    },
    "CalendarOverrides.off": {"type": "array", "items": {"type": "string", "pattern": DATE_OR_SPAN}},
    "CalendarOverrides.work": {"type": "array", "items": {"type": "string", "pattern": DATE_OR_SPAN}},
    # A tag expression is written with and / or / not: `&&`, `||` and `!` are errors to check, so to the schema too.
    "Playbook.segments": {
        "type": "object",
        "propertyNames": {"pattern": _model.SLUG},
        "additionalProperties": {"type": "string", "minLength": 1, "pattern": r"^(?!.*(&&|\|\||!)).*\S.*$"},
    },
}

# Per model: rules across its keys, as the model's validators enforce them.
_RULES: dict[str, list[dict[str, Any]]] = {
    "Beat": [
        _if_channel("private", {"required": ["audience"]}, {"not": {"required": ["audience"], "title": "audience is for private beats"}}),
        _if_channel("group", {}, {"not": {"required": ["groups"], "title": "groups is for group beats"}}),
        {"if": {"required": ["variants"]}, "then": {"properties": {"channel": {"const": "private"}}}},
        {"oneOf": [*_one_of("template", "text", "variants")["oneOf"], {"required": ["mix", "pools"], "title": "with mix and pools"}]},
    ],
    "WelcomeStep": [_one_of("template", "text")],
    "JourneyStep": [_one_of("template", "text", "variants")],
    "PoolText": [_one_of("template", "text")],
    "Variant": [{"not": {"required": ["template", "text"], "title": "both template and text"}}],
    "ExitCondition": [_one_of("event", "segment"), {"if": {"required": ["hook"]}, "then": {"required": ["event"]}}],
}


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with the strings check's lax mode accepts beside numbers and booleans."""

    def int_schema(self, schema: Any) -> dict[str, Any]:
        base = super().int_schema(schema)
        positive = base.get("minimum", 0) >= 1 or base.get("exclusiveMinimum", -1) >= 0
        return {"anyOf": [{**base, "title": "a whole number"}, {"type": "string", "pattern": _POSITIVE_INT_TEXT if positive else _INT_TEXT, "title": "a whole number in quotes"}]}

    def float_schema(self, schema: Any) -> dict[str, Any]:
        base = super().float_schema(schema)
        return {"anyOf": [{**base, "title": "a number"}, {"type": "string", "pattern": _NUMBER_TEXT, "title": "a number in quotes"}]}

    def bool_schema(self, schema: Any) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean", "title": "true or false"}, {"type": "string", "pattern": _BOOL_TEXT, "title": "yes or no as text"}]}


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema `siyu schema` prints and `siyu init` writes as schema.json."""
    schema = _model.Playbook.model_json_schema(schema_generator=_Generator)
    # No $id: the file is read where it lies (schema.json beside playbooks/), and an id URL that does not
    # resolve would only send an editor looking for it.
    schema.pop("$id", None)
    models = _models()
    for name, definition in [("Playbook", schema), *schema.get("$defs", {}).items()]:
        model = models.get(name)
        if model is None or "properties" not in definition:
            continue
        definition.setdefault("description", inspect.cleandoc(model.__doc__ or "") or DOCS.get(name, ("", None))[0])
        for key, prop in definition["properties"].items():
            definition["properties"][key] = _property(model, name, key, prop)
        if name in _RULES:
            definition["allOf"] = copy.deepcopy(_RULES[name])
    schema["properties"]["timezone"] = _timezone(schema["properties"]["timezone"])
    _title_branches(schema)
    return schema


def _models() -> dict[str, type[BaseModel]]:
    return {name: cls for name, cls in vars(_model).items() if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__ == _model.__name__}


def _field_name(model: type[BaseModel], key: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return name
    return key


def _property(model: type[BaseModel], model_name: str, key: str, prop: dict[str, Any]) -> dict[str, Any]:
    """A property with its title (the key as written), description, example and check's own constraints."""
    info = model.model_fields.get(_field_name(model, key))
    wanted = f"{model_name}.{key}"
    described, example = DOCS.get(wanted, (None, None))
    if wanted in _PROPERTIES:
        kept = {k: v for k, v in prop.items() if k in ("default", "description", "examples")}
        prop = {**copy.deepcopy(_PROPERTIES[wanted]), **kept}
    prop["title"] = key
    description = (info.description if info is not None else None) or described
    if description:
        prop["description"] = description
    if example is not None and "examples" not in prop:
        prop["examples"] = [example]
    return prop


def _timezone(prop: dict[str, Any]) -> dict[str, Any]:
    """The IANA zones this machine's zoneinfo knows: the ones check accepts."""
    from zoneinfo import available_timezones

    zones = sorted(available_timezones())
    return {**prop, "enum": zones} if zones else {**prop, "pattern": r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"}


def _title_branches(node: Any) -> None:
    """A distinct title on each anyOf/oneOf branch: yaml-language-server's hover otherwise treats untitled
    branches as all matched and shows their (missing) titles joined, "At || At"."""
    if isinstance(node, dict):
        for keyword in ("anyOf", "oneOf"):
            branches = node.get(keyword)
            if isinstance(branches, list):
                seen: set[str] = set()
                for index, branch in enumerate(branches):
                    if isinstance(branch, dict) and "$ref" not in branch:
                        title = branch.get("title") or _branch_title(branch)
                        branch["title"] = title if title not in seen else f"{title} ({index + 1})"
                        seen.add(branch["title"])
        for value in node.values():
            _title_branches(value)
    elif isinstance(node, list):
        for item in node:
            _title_branches(item)


def _branch_title(branch: dict[str, Any]) -> str:
    if "enum" in branch:
        return " | ".join(map(str, branch["enum"]))
    if "const" in branch:
        return str(branch["const"])
    kind = branch.get("type")
    return {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false", "array": "a list", "object": "a mapping", "null": "empty"}.get(
        str(kind), "one form"
    )
