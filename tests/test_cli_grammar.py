"""One grammar on every command: the playbook as an argument or with -p, -h as --help, and help that ends with examples."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer

from siyu_cli.cli import app
from tests.playbooks_fixtures import invoke
from tests.test_cli_docs import _commands

P = "playbooks/education-camp.yaml"
# Every command that reads a playbook, as it runs on the education starter with P as its argument.
READERS = [
    ["simulate", P, "--contacts", "5"],  # first: the reports below read its events
    ["check", P],
    ["timeline", P],
    ["preview", "day", "1", P],
    ["report", "funnel", P],
    ["report", "sop", P],
    ["report", "groups", P],
    ["report", "html", P, "--out", "report.html"],
    ["run", P, "--once", "--now", "2026-12-01T09:00"],
    ["plan", P, "--now", "2026-12-01T09:00"],  # after that pass: nothing to change, exit 0
    ["plan", "capacity", P, "--cards", "100"],
    ["status", P],
    ["cron", P],
    ["retry", P],
    ["outbox", P],
    ["outbox", "--date", "2026-12-01", P],
    ["serve", P],
    ["sync", P],
]
# The education starter has no wecom output: serve and sync read the playbook and refuse it (exit 2) before doing anything.
CODES = {("serve",): 2, ("sync",): 2}


def _path_of(args: list[str]) -> tuple[str, ...]:
    """The command an argument list runs: its leading words that name commands."""
    command, path = typer.main.get_command(app), []
    for word in args:
        if word not in getattr(command, "commands", {}):
            break
        path.append(word)
        command = command.commands[word]
    return tuple(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grammar") / "camp"
    invoke("init", str(root), "--from", "education")
    shutil.copy(root / P, root / "other.yaml")
    return root


@pytest.fixture
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    monkeypatch.delenv("SIYU_DB", raising=False)
    return project


def _example_args(line: str) -> list[str]:
    """An example's arguments after `siyu`, up to a pipe, redirect or `&&`."""
    words = shlex.split(line)
    assert words[0] == "siyu", line
    args = []
    for word in words[1:]:
        if word in ("|", ">", "&&", ";"):
            break
        args.append(word)
    return args


def test_every_command_takes_h_and_its_help_ends_with_one_or_two_examples() -> None:
    assert invoke("-h").stdout == invoke("--help").stdout
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 20
    for path, _ in commands:
        name = f"`siyu {' '.join(path)}`"
        long = invoke(*path, "--help").stdout
        assert invoke(*path, "-h").stdout == long, f"{name} -h differs from --help"
        _, found, tail = long.rpartition("Examples:")
        assert found, f"{name}: its help has no Examples"
        examples = [line.strip() for line in tail.splitlines() if line.strip()]
        assert 1 <= len(examples) <= 2, f"{name}: {examples}"
        for example in examples:
            args = _example_args(example)
            assert args[: len(path)] == list(path), f"{name}: the example {example!r} runs another command"
            # The parser accepts the example: its command exists and it names only real options.
            invoke(*args, "--help")


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(_path_of(a)))
def test_the_playbook_is_an_argument_or_p_on_every_command(args: list[str], in_project: Path) -> None:
    code = CODES.get(_path_of(args), 0)
    invoke(*args, code=code)
    as_option = [word for word in args if word != P] + ["-p", P]
    invoke(*as_option, code=code)
    invoke(*args, "-p", str(in_project / P), code=code)  # the same file both ways is fine


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(_path_of(a)))
def test_two_different_playbooks_are_a_usage_error(args: list[str], in_project: Path) -> None:
    result = invoke(*args, "-p", "other.yaml", code=2)
    assert "two playbooks" in result.stderr and "name the playbook once" in result.stderr


def test_every_command_that_reads_a_playbook_is_covered() -> None:
    """A new command that reads a playbook belongs in READERS. The data commands are left out: their
    -p is optional (it gives the zone, segments and rules) and their argument is the file or contact."""
    readers = {
        path
        for path, command in _commands(typer.main.get_command(app))
        if path[0] not in ("import", "track", "contacts") and any("--playbook" in getattr(param, "opts", ()) for param in command.params)
    }
    assert readers <= {_path_of(args) for args in READERS}


def test_retry_takes_the_playbook_before_draft_ids(in_project: Path) -> None:
    result = invoke("retry", P, "nosuchid", code=1)
    assert "nosuchid" in result.stderr


@pytest.mark.parametrize(
    ("command", "form"),
    [(["check"], "check"), (["report", "sop"], "report sop"), (["outbox"], "outbox"), (["retry"], "retry"), (["preview", "day", "1"], "preview day N")],
)
def test_no_playbook_hints_the_forms_the_command_accepts(command: list[str], form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIYU_PLAYBOOK", raising=False)
    result: Any = invoke(*command, code=1)
    assert "no playbook found" in result.stderr
    assert f"`siyu {form} PLAYBOOK` or `siyu {form} -p PLAYBOOK`" in result.stderr


def test_an_unknown_cohort_for_timeline_is_a_usage_error_listing_the_cohorts(in_project: Path) -> None:
    result: Any = invoke("timeline", P, "--cohort", "cx", code=2)
    assert "no cohort 'cx'" in result.stderr and "write one of " in result.stderr and "or all" in result.stderr
