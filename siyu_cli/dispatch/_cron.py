"""What `siyu cron` prints and writes: a crontab line and systemd units that run a pass with the secrets they need.

cron and systemd start a pass with an empty environment: the webhook URLs and secrets the
playbook's outputs name come from an env file beside the playbook (mode 600), sourced by the
crontab line and named by the unit's EnvironmentFile=. A wecom output's callback Token and
EncodingAESKey are listed too, for `siyu serve` to read from the same file.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import LoadedPlaybook


@dataclass(frozen=True)
class Schedule:
    cron: str  # the five crontab fields
    calendar: str  # systemd OnCalendar=
    words: str


def schedule(every: int) -> Schedule:
    """1-59 minutes, or a whole number of hours up to a day: what both cron and systemd can say."""
    if 1 <= every <= 59:
        return Schedule(("*" if every == 1 else f"*/{every}") + " * * * *", f"*:0/{every}", f"{every} minute(s)")
    if every % 60 == 0 and 60 <= every <= 1440:
        hours = every // 60
        if hours == 1:
            return Schedule("0 * * * *", "*-*-* *:00:00", "hour")
        if hours == 24:
            return Schedule("0 0 * * *", "*-*-* 00:00:00", "day")
        return Schedule(f"0 */{hours} * * *", f"*-*-* 00/{hours}:00:00", f"{hours} hours")
    raise UsageError(f"--every {every}: cron can run a pass every 1-59 minutes or every whole number of hours", hint="e.g. --every 5, or --every 120 for every two hours")


# What each variable an output names is for, as the env file's comment above it says (siyu serve shares the file).
_PURPOSES = {
    ("webhook", "url_env"): "the {format} robot's webhook URL",
    ("webhook", "secret_env"): "the {format} robot's signing secret (加签)",
    ("wecom", "corp_id_env"): "the WeCom corp id (企业ID: 我的企业 → 企业信息), for the passes and siyu serve",
    ("wecom", "secret_env"): "the 客户联系 Secret (客户联系 → API, or a self-built app's listed under 可调用接口的应用), for the passes and siyu serve",
    ("wecom", "token_env"): "siyu serve only: the callback Token (客户联系 → API → 接收事件服务器 → Token)",
    ("wecom", "aes_key_env"): "siyu serve only: the callback EncodingAESKey, 43 characters (客户联系 → API → 接收事件服务器)",
}


def secret_names(playbook: LoadedPlaybook) -> dict[str, str]:
    """The environment variables the playbook's outputs name (webhook URLs and secrets; WeCom's corp id, Secret,
    and the callback Token and EncodingAESKey that `siyu serve` reads), each with what it is for."""
    names: dict[str, str] = {}
    for output in playbook.model.outputs:
        kind = getattr(output, "type", "")
        for (of, attribute), purpose in _PURPOSES.items():
            name = getattr(output, attribute, None) if of == kind else None
            if name and name not in names:
                names[name] = purpose.format(format=getattr(output, "format", kind))
    return names


def ensure_env_file(path: Path, names: Mapping[str, str]) -> tuple[bool, list[str]]:
    """Create the env file (mode 600) with an empty line per variable under a comment saying what it is for; an
    existing one is never rewritten.

    Returns (created, the names an existing file lacks).
    """
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SiyuError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise SiyuError(f"{path}: not UTF-8 (byte {exc.start})", hint="save the env file as UTF-8; cron and systemd read it as such") from None
        present = {line.split("=", 1)[0].strip().removeprefix("export ").strip() for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#")}
        return False, [name for name in names if name not in present]
    lines = ["# siyu: secrets for the scheduled passes (cron sources this file; systemd reads it as EnvironmentFile=).", "# Fill in each value; quote values with spaces: NAME=\"a b\". Never commit this file."]
    for name, purpose in names.items():
        lines += [f"# {purpose}", f"{name}="]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SiyuError(f"{path}: cannot create the env file: {exc.strerror}", hint="pass --env-file PATH in a folder you can write") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return True, []


_SHELL_SPECIAL = set(" \t&;|$`<>()\\'\"*?[]#~")


def unquoted_values(path: Path) -> list[str]:
    """Names whose value holds a character sh reads specially (`&` in a URL ends the line under cron) and is not quoted."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if value and value[0] not in "'\"" and set(value) & _SHELL_SPECIAL:
            found.append(name.strip().removeprefix("export ").strip())
    return found


def uneven(every: int) -> bool:
    """cron's */N restarts each hour (or day): an N that does not divide it leaves one short gap."""
    return (every < 60 and 60 % every != 0) or (every >= 60 and 24 % (every // 60) != 0)


def _cron_escape(text: str) -> str:
    return text.replace("%", "\\%")  # crontab(5): an unescaped % ends the command


def _unit_escape(text: str) -> str:
    return text.replace("%", "%%")  # systemd: % starts a specifier


def cron_text(*, exe: str, playbook_path: Path, store: Path, workdir: Path, env_file: Path, every: Schedule) -> str:
    base = f"{exe} run {shlex.quote(str(playbook_path))} --once --db {shlex.quote(str(store))}"
    lock = shlex.quote(str(store.parent / f".siyu-{playbook_path.stem}.lock"))
    env = shlex.quote(str(env_file))
    log = shlex.quote(str(workdir / "siyu-cron.log"))
    stem = playbook_path.stem
    # Every pass's summary goes to the log; a pass that exits non-zero (a draft failed or in doubt, a broken
    # playbook) also prints the log's tail, which cron mails. A pass skipped by the lock is not a failure (-E 0).
    line = _cron_escape(
        f"cd {shlex.quote(str(workdir))} && set -a && . {env} && set +a && "
        f"{{ flock -n -E 0 {lock} {base} >> {log} 2>&1 || tail -n 20 {log} >&2; }}"
    )
    base = _unit_escape(base)
    workdir_unit, env_unit = _unit_escape(str(workdir)), _unit_escape(str(env_file))
    return f"""# crontab -e   (flock -n: a pass still running makes the next one exit at once; the env file holds the secrets)
{every.cron} {line}

# /etc/systemd/system/siyu-{stem}.service
[Unit]
Description=siyu pass for {playbook_path.name}

[Service]
Type=oneshot
WorkingDirectory={workdir_unit}
EnvironmentFile={env_unit}
ExecStart={base}

# /etc/systemd/system/siyu-{stem}.timer
[Unit]
Description=run siyu for {playbook_path.name} every {every.words}

[Timer]
OnCalendar={every.calendar}
Persistent=true
AccuracySec=1s

[Install]
WantedBy=timers.target

# then: systemctl daemon-reload && systemctl enable --now siyu-{stem}.timer"""
