"""siyu as users install it: a wheel, installed non-editable into a fresh venv, run outside the checkout.

The suite itself runs an editable install, which reads templates and starters from the checkout;
this is the test that notices when a packaged file is missing or read through a path only a
checkout has (as `siyu init` once did in every real install).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTERS = {"education": "education-camp.yaml", "skincare": "skincare-persona.yaml", "ecommerce": "ecommerce-card.yaml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel offline with the build backend of this environment (no isolation: no index needed)."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet", "-w", str(out), str(ROOT)]
    built = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    if built.returncode != 0 and ("invalid command 'bdist_wheel'" in built.stderr or "Cannot import 'setuptools" in built.stderr):
        pytest.skip("this environment's setuptools cannot build a wheel offline; `make test` installs setuptools>=70.1 with .[test]")
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("siyu-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed by pip, non-editable. Its dependencies are read from this
    environment's site-packages, listed after its own, so no index is needed and siyu_cli comes from the wheel.
    (`.ci/run` installs the wheel with its dependencies from the index.)"""
    prefix = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(prefix)
    python = prefix / "bin" / "python"
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(command, check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: the editable install's own .pth finder in there is not run, so the checkout stays out of reach.
    (Path(site) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return prefix


def _run(prefix: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SIYU_PLAYBOOK", "SIYU_DB", "VIRTUAL_ENV")}
    env.update(NO_COLOR="1", COLUMNS="200", PATH=f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run([str(prefix / "bin" / "siyu"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_the_wheel_carries_every_packaged_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {f"siyu_cli/builtin_templates/{p.relative_to(ROOT / 'siyu_cli' / 'builtin_templates')}" for p in (ROOT / "siyu_cli" / "builtin_templates").rglob("*") if p.is_file()}
    expected |= {f"siyu_cli/starters/playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yaml")}
    expected |= {f"siyu_cli/starters/templates/{p.relative_to(ROOT / 'templates')}" for p in (ROOT / "templates").rglob("*.j2")}
    assert len(expected) > 100
    assert sorted(expected - names) == []


def test_init_check_preview_and_run_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import siyu_cli; print(siyu_cli.__file__)"], cwd=tmp_path, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    for archetype, playbook in STARTERS.items():
        project = tmp_path / archetype
        created = _run(installed, tmp_path, "init", archetype, "--from", archetype)
        assert created.returncode == 0, created.stdout + created.stderr
        assert (project / "playbooks" / playbook).is_file()
        assert (project / "schema.json").is_file() and (project / "README.md").is_file() and (project / ".vscode" / "settings.json").is_file()
        checked = _run(installed, project, "check", "--strict")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "✓ ok" in checked.stdout
        previewed = _run(installed, project, "preview", "day", "1", "--json")
        assert previewed.returncode == 0, previewed.stderr
        ran = _run(installed, project, "run", "--clock", "fast")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert " failed 0 " in ran.stderr and list((project / "outbox").rglob("*.md"))
