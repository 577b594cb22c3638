"""The starter playbooks, shipped inside the package (mapped from the repo's playbooks/ and templates/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from siyu_cli.errors import SiyuError, UsageError

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
    """playbooks/<starter>.yaml and templates/<playbook id>/… in a new project folder."""
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
        shutil.copyfile(_root("playbooks") / playbook_file, target)
        created.append(target)
        source = _root("templates") / template_dir
        destination = directory / "templates" / template_dir
        shutil.copytree(source, destination, dirs_exist_ok=True)
        created.extend(p for p in destination.rglob("*") if p.is_file())
    except OSError as exc:
        raise SiyuError(f"cannot create the project in {directory}: {exc.strerror or exc}") from None
    return created
