"""Jinja in an immutable sandbox: templates are data, not code; undefined variables are errors."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from siyu_cli.errors import TemplateFailure
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.timeline import Content

BUILTIN = Path(__file__).resolve().parent.parent / "builtin_templates"


def search_path(playbook: LoadedPlaybook) -> list[Path]:
    """Beside the playbook, then the project's templates/, then siyu's built-ins."""
    base = playbook.base_dir
    candidates = [base, base / "templates", base.parent / "templates", Path.cwd() / "templates", BUILTIN]
    seen: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved not in seen and resolved.is_dir():
            seen.append(resolved)
    return seen


def _printable(value: Any) -> Any:
    """What `{{ … }}` prints: nothing for a missing value (not "None"), 398 for 398.0 (not a customer's "398.0元")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


class Renderer:
    """Compiles each template once per playbook and renders it against a context."""

    def __init__(self, playbook: LoadedPlaybook) -> None:
        self.playbook = playbook
        self.search = search_path(playbook)
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search], encoding="utf-8"),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            finalize=_printable,
        )
        self.env.filters["yuan"] = yuan
        self._compiled: dict[tuple[str | None, str | None], jinja2.Template] = {}
        self._needs_stats: dict[tuple[str | None, str | None], bool] = {}
        self._reads_contact: dict[tuple[str | None, str | None], bool] = {}

    def compile(self, content: Content, *, beat: str = "") -> jinja2.Template:
        key = (content.template, content.text)
        cached = self._compiled.get(key)
        if cached is not None:
            return cached
        try:
            if content.template is not None:
                template = self.env.get_template(content.template)
                source = Path(template.filename or "").read_text(encoding="utf-8") if template.filename else ""
            else:
                source = content.text or ""
                template = self.env.from_string(source)
        except jinja2.TemplateNotFound as exc:
            raise TemplateFailure(
                f"template not found (looked in {', '.join(_short(p) for p in self.search)})",
                template=str(exc.name or content.name),
                beat=beat,
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateFailure(f"syntax error: {exc.message}", template=content.name, line=exc.lineno, beat=beat) from None
        except UnicodeDecodeError:
            raise TemplateFailure("not UTF-8", template=content.name, beat=beat) from None
        self._compiled[key] = template
        self._needs_stats[key] = "stats" in meta.find_undeclared_variables(self.env.parse(source))
        return template

    def needs_stats(self, content: Content) -> bool:
        self.compile(content)
        return self._needs_stats[(content.template, content.text)]

    def reads_contact(self, template: str | None, text: str | None) -> bool:
        """Whether the content's text depends on its contact (it, or a template it includes, reads `contact`):
        such a draft needs a person (capacity) and cannot be one text for many (send tasks, rendering once)."""
        key = (template, text)
        if key not in self._reads_contact:
            self._reads_contact[key] = self._reads(template, text, set())
        return self._reads_contact[key]

    def _reads(self, template: str | None, text: str | None, seen: set[str]) -> bool:
        try:
            source = text if template is None else self.env.loader.get_source(self.env, template)[0]  # type: ignore[union-attr]
            tree = self.env.parse(source or "")
        except Exception:  # a missing or broken template fails its draft elsewhere; count it, to be safe
            return True
        if "contact" in meta.find_undeclared_variables(tree):
            return True
        for name in meta.find_referenced_templates(tree):
            if name is None:
                return True  # a computed include: could be anything
            if name not in seen:
                seen.add(name)
                if self._reads(name, None, seen):
                    return True
        return False

    def prints_bare_name(self, template: str | None, text: str | None) -> bool:
        """Whether the content prints `contact.name` with no fallback (`or '亲'`, `| default`, an `{% if %}` on it):
        a contact with no name gets an empty greeting, which check --db warns of (never the contact's id)."""
        return self._bare_name(template, text, set())

    def _bare_name(self, template: str | None, text: str | None, seen: set[str]) -> bool:
        try:
            source = text if template is None else self.env.loader.get_source(self.env, template)[0]  # type: ignore[union-attr]
            tree = self.env.parse(source or "")
        except Exception:  # a missing or broken template is its own error
            return False
        names = [n for n in tree.find_all(nodes.Getattr) if n.attr == "name" and isinstance(n.node, nodes.Name) and n.node.name == "contact"]
        guarded: set[int] = set()
        for node in tree.find_all((nodes.Or, nodes.Filter, nodes.If, nodes.CondExpr)):
            if isinstance(node, nodes.Or):
                inner = node.left
            elif isinstance(node, nodes.Filter):
                # `| default('亲')` only stands in for an undefined name; a nameless contact's is "", which takes
                # `| default('亲', true)` (its boolean argument), as `or` does.
                flag = node.args[1] if len(node.args) > 1 else next((kw.value for kw in node.kwargs if kw.key == "boolean"), None)
                boolean = isinstance(flag, nodes.Const) and bool(flag.value)  # `true`, not `false` or 0
                if node.name not in ("default", "d") or node.node is None or not boolean:
                    continue
                inner = node.node
            elif any(n in names for n in (node.test, *node.test.find_all(nodes.Getattr))):
                inner = node  # `{% if contact.name %}…{{ contact.name }}…{% endif %}`: the whole branch is guarded
            else:
                continue
            guarded.update(id(n) for n in inner.find_all(nodes.Getattr))
            if isinstance(inner, nodes.Getattr):
                guarded.add(id(inner))
        if any(id(n) not in guarded for n in names):
            return True
        for name in meta.find_referenced_templates(tree):
            if name is not None and name not in seen:
                seen.add(name)
                if self._bare_name(name, None, seen):
                    return True
        return False

    def render(self, content: Content, context: Mapping[str, Any], *, beat: str = "") -> str:
        template = self.compile(content, beat=beat)
        try:
            return template.render(context).strip()
        except jinja2.UndefinedError as exc:
            raise TemplateFailure(f"undefined: {exc.message}", **self._where(exc, template, content), beat=beat) from None
        except jinja2.TemplateError as exc:
            raise TemplateFailure(str(exc), **self._where(exc, template, content), beat=beat) from None
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError) as exc:
            raise TemplateFailure(f"{type(exc).__name__}: {exc}", **self._where(exc, template, content), beat=beat) from None

    def _where(self, exc: BaseException, template: jinja2.Template, content: Content) -> dict[str, Any]:
        """The template and line from Jinja's rewritten traceback: its deepest template frame, so a slip in an
        included template names that template and its own line, not the line of the include."""
        own = template.filename or "<template>"
        where: dict[str, Any] = {"template": content.name, "line": None}
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename == own:
                where = {"template": content.name, "line": tb.tb_lineno}
            elif "__jinja_exception__" in tb.tb_frame.f_globals:  # a frame Jinja made for a template's line
                where = {"template": self._name_of(Path(filename)), "line": tb.tb_lineno}
            tb = tb.tb_next
        return where

    def _name_of(self, file: Path) -> str:
        """An included template's name as the loader found it: its path under the nearest search folder."""
        names = [file.relative_to(root).as_posix() for root in self.search if file.is_relative_to(root)]
        return min(names, key=len) if names else str(file)


def yuan(value: float | int | str) -> str:
    """Prices as people write them: 365, 9.9, 49.9 (never 365.0)."""
    try:
        return f"{float(value):.2f}".rstrip("0").rstrip(".")
    except (TypeError, ValueError):
        return str(value)


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
