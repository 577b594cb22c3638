"""Templates of a playbook whose structure does not validate, so check reports them in the same round.

Without a valid model there is no occurrence to render against; what can be known is checked:
every template the file names exists and compiles, and names only variables a template sees.
A misspelt contact field (`contact.nmae`) is read from the source; other attributes need a render.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import meta, nodes

from siyu_cli.check._hints import TEMPLATE_NAMES, contact_field_message, unknown_contact_fields
from siyu_cli.errors import Problem, TemplateFailure
from siyu_cli.playbook._yaml import Located, Path_, format_path
from siyu_cli.timeline import Content


@dataclass(frozen=True)
class _Beside:
    """What Renderer reads of a playbook: the folder its templates are looked up from."""

    base_dir: Path


def raw_template_problems(located: Located, path: Path) -> list[Problem]:
    from siyu_cli.render import Renderer

    renderer = Renderer(_Beside(path.resolve().parent))  # type: ignore[arg-type]
    known = set(TEMPLATE_NAMES) | set(renderer.env.globals)
    problems: dict[tuple[str, int | None, str], Problem] = {}
    for where, content in _contents(located.data):
        try:
            template = renderer.compile(content)
        except TemplateFailure as exc:
            _add(problems, located, where, exc, renderer)
            continue
        source = Path(template.filename).read_text(encoding="utf-8") if content.template is not None and template.filename else content.text or ""
        tree = renderer.env.parse(source)
        assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}  # a {% set %} inside an {% if %} too
        for name in sorted(meta.find_undeclared_variables(tree) - known - assigned):
            line = min((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), default=None)
            _add(problems, located, where, TemplateFailure(f"undefined: '{name}' is undefined", template=content.name, line=line), renderer)
        for field, line in unknown_contact_fields(renderer.env, source):
            _add(problems, located, where, TemplateFailure(contact_field_message(field), template=content.name, line=line), renderer)
    return list(problems.values())


def _add(problems: dict[tuple[str, int | None, str], Problem], located: Located, where: Path_, exc: TemplateFailure, renderer: Any) -> None:
    key = (exc.template, exc.line, exc.detail)
    if key in problems:
        return
    file = next((root / exc.template for root in renderer.search if (root / exc.template).is_file()), None)
    if file is not None:
        problems[key] = Problem(message=exc.detail, file=_short(file), line=exc.line, path=format_path(where), code="template")
    else:
        problems[key] = located.problem(where, f"{exc.template}: {exc.detail}", code="template")


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _contents(data: Any) -> Iterator[tuple[Path_, Content]]:
    """Every template and inline text named under beats, hooks and journeys, with its path."""
    if not isinstance(data, dict):
        return
    for section in ("beats", "hooks", "journeys"):
        items = data.get(section)
        for index, item in enumerate(items if isinstance(items, list) else []):
            yield from _walk(item, (section, index))


def _walk(node: Any, here: Path_) -> Iterator[tuple[Path_, Content]]:
    if isinstance(node, dict):
        template, text = node.get("template"), node.get("text")
        if isinstance(template, str):
            yield here + ("template",), Content(template, None, template)
        elif isinstance(text, str):
            yield here + ("text",), Content(None, text, f"<inline {format_path(here)}.text>")
        for key, value in node.items():
            if key == "pools" and isinstance(value, dict):
                for category, pool in value.items():
                    for pi, entry in enumerate(pool if isinstance(pool, list) else []):
                        if isinstance(entry, str) and not any(c in entry for c in "*?["):
                            yield here + ("pools", category, pi), Content(entry, None, entry)
                        else:
                            yield from _walk(entry, here + ("pools", category, pi))
            elif isinstance(value, (dict, list)) and key not in ("template", "text"):
                yield from _walk(value, here + (key,))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, here + (index,))
