"""The starter playbooks, shipped inside the package (mapped from the repo's playbooks/ and templates/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.starters import _project

ARCHETYPES = {
    "education": ("education-camp.yaml", "reading-camp-7d"),
    "skincare": ("skincare-persona.yaml", "skincare-persona-45d"),
    "ecommerce": ("ecommerce-card.yaml", "ecom-package-card"),
}


def _root(kind: str) -> Path:
    """The source checkout's folder (editable installs), else the copy inside the installed package."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / kind).is_dir():
        return checkout / kind
    # Installed, the data folders sit beside this module (namespace packages without __init__: reading
    # resources.files() as a str gives a MultiplexedPath's repr, not a folder).
    return Path(__file__).resolve().parent / kind


def scaffold(directory: Path, archetype: str, *, force: bool = False) -> list[Path]:
    """playbooks/<starter>.yaml, templates/<playbook id>/…, schema.json, .vscode/ and README.md in a new project folder."""
    if archetype not in ARCHETYPES:
        raise UsageError(f"unknown starter {archetype!r}; choose one of: {', '.join(ARCHETYPES)}")
    playbook_file, template_dir = ARCHETYPES[archetype]
    if directory.exists() and not directory.is_dir():
        raise SiyuError(f"{directory} is a file, not a folder", hint="pick a new folder name for the project")
    created: list[Path] = []
    try:
        if directory.exists() and any(directory.iterdir()) and not force:
            raise SiyuError(f"{directory} is not empty", hint="pick a new folder, or pass --force to write into it")
        (directory / "playbooks").mkdir(parents=True, exist_ok=True)
        target = directory / "playbooks" / playbook_file
        text = (_root("playbooks") / playbook_file).read_text(encoding="utf-8")
        target.write_text(_project.with_modeline(text), encoding="utf-8")
        created.append(target)
        source = _root("templates") / template_dir
        destination = directory / "templates" / template_dir
        shutil.copytree(source, destination, dirs_exist_ok=True)
        created.extend(p for p in destination.rglob("*") if p.is_file())
        created.extend(_editor_and_readme(directory, archetype, playbook_file, template_dir, text))
    except OSError as exc:
        raise SiyuError(f"cannot create the project in {directory}: {exc.strerror or exc}") from None
    return created


def _editor_and_readme(directory: Path, archetype: str, playbook_file: str, template_dir: str, text: str) -> list[Path]:
    """schema.json for the playbooks' modeline, VS Code's mapping to it, and the team's README (kept if there is one)."""
    from siyu_cli.playbook._yaml import load_located

    schema = directory / "schema.json"
    schema.write_text(_project.schema_text(), encoding="utf-8")
    written = [schema, *_project.merge_vscode(directory)]
    readme = directory / "README.md"
    if not readme.exists():
        located = load_located(text, playbook_file)[0]
        data = located.data if located is not None and isinstance(located.data, dict) else {}
        title = data.get("title") or directory.resolve().name
        readme.write_text(_project.readme(title=str(title), archetype=archetype, playbook=playbook_file, templates=template_dir), encoding="utf-8")
        written.append(readme)
    return written
