"""`siyu cron` as printed: the crontab command runs a real pass with an empty environment, from another folder.

cron starts commands with almost no environment: the webhook URL must come from the env file
`siyu cron` created beside the playbook, and every path in the line must be absolute.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest_http import RecordingServer, Reply
from tests.playbooks_fixtures import MORNING, query, siyu_env, write_playbook


def test_the_printed_crontab_command_sends_under_env_i_from_another_folder(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    write_playbook(camp, beats=[MORNING], outputs=["outbox", {"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK"}])
    siyu = Path(sys.executable).parent / "siyu"
    printed = subprocess.run([str(siyu), "cron", "playbook.yaml", "--every", "5"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert printed.returncode == 0, printed.stderr
    env_file = camp / "siyu.env"
    assert f"created {env_file} (mode 600): SIYU_TEST_HOOK" in printed.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "SIYU_TEST_HOOK=\n" in env_file.read_text("utf-8")
    [line] = [text for text in printed.stdout.splitlines() if text.startswith("*/5 * * * * ")]
    assert f"EnvironmentFile={env_file}" in printed.stdout

    with RecordingServer() as server:
        env_file.write_text(env_file.read_text("utf-8").replace("SIYU_TEST_HOOK=", f'SIYU_TEST_HOOK="{server.url("/hook")}"'), encoding="utf-8")
        command = line.split(" ", 5)[5].replace("--once", "--once --now '2026-12-01 08:31'")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        ran = subprocess.run(["env", "-i", "/bin/sh", "-c", command], cwd=elsewhere, capture_output=True, text=True, check=False, timeout=60)
        assert ran.returncode == 0, (ran.stdout, ran.stderr, (camp / "siyu-cron.log").read_text("utf-8") if (camp / "siyu-cron.log").exists() else "")
        assert len(server.requests) == 1
        assert json.loads(server.requests[0].body)["text"] == "早上好，第1天"
    assert query(camp / "siyu.db", "SELECT state FROM drafts") == [("sent",)]
    assert "sent 1" in (camp / "siyu-cron.log").read_text("utf-8")

    again = subprocess.run([str(siyu), "cron", "playbook.yaml"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "created" not in again.stderr  # an existing env file is never rewritten
    assert server.url("/hook") in env_file.read_text("utf-8")
    assert os.environ.get("SIYU_TEST_HOOK") is None


def test_cron_warns_of_what_sh_cron_and_systemd_would_read_otherwise(tmp_path: Path) -> None:
    camp = tmp_path / "活动 100%"
    write_playbook(camp, beats=[MORNING], outputs=[{"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK"}])
    siyu = Path(sys.executable).parent / "siyu"
    (camp / "siyu.env").write_text("SIYU_TEST_HOOK=http://127.0.0.1:9/hook?a=1&b=2\n", encoding="utf-8")
    printed = subprocess.run([str(siyu), "cron", "playbook.yaml", "--every", "45"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert printed.returncode == 0, printed.stderr
    assert "quote the values of SIYU_TEST_HOOK" in printed.stderr
    assert "will not be evenly 45 minutes apart" in printed.stderr
    [line] = [text for text in printed.stdout.splitlines() if text.startswith("*/45 * * * * ")]
    assert "100\\%" in line and "100%%" in printed.stdout.split("[Service]", 1)[1]  # crontab(5) and systemd specifiers

    (camp / "siyu.env").write_bytes("# 注释\nSIYU_TEST_HOOK=x\n".encode("gbk"))
    bad = subprocess.run([str(siyu), "cron", "playbook.yaml"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "not UTF-8" in bad.stderr and "Traceback" not in bad.stderr


def test_check_refuses_a_secret_for_a_webhook_that_takes_none(tmp_path: Path) -> None:
    write_playbook(tmp_path, beats=[MORNING], outputs=[{"type": "webhook", "format": "json", "url_env": "H", "secret_env": "S"}])
    result = subprocess.run([sys.executable, "-m", "siyu_cli", "check", "playbook.yaml"], cwd=tmp_path, env=siyu_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "secret_env is only used by feishu and dingtalk webhooks, not json" in result.stderr


def test_a_failing_cron_pass_prints_the_logs_tail_for_cron_to_mail(tmp_path: Path) -> None:
    """cron mails what a command prints: a pass that fails a draft prints the log's tail; a good pass prints nothing."""
    camp = tmp_path / "camp"
    write_playbook(camp, beats=[MORNING], outputs=[{"type": "webhook", "format": "json", "url_env": "SIYU_TEST_HOOK"}])
    siyu = Path(sys.executable).parent / "siyu"
    printed = subprocess.run([str(siyu), "cron", "playbook.yaml"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    [line] = [text for text in printed.stdout.splitlines() if text.startswith("* * * * * ")]
    with RecordingServer(default=Reply(status=400, body=b'{"error": "bad key"}')) as server:
        (camp / "siyu.env").write_text(f'SIYU_TEST_HOOK="{server.url("/hook")}"\n', encoding="utf-8")
        command = line.split(" ", 5)[5].replace("--once", "--once --now '2026-12-01 08:31'")
        failed = subprocess.run(["env", "-i", "/bin/sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
        assert "failed 1" in failed.stderr and "HTTP 400" in failed.stderr
        quiet = subprocess.run(["env", "-i", "/bin/sh", "-c", command.replace("08:31", "08:32")], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert len(server.requests) == 1


def test_a_wecom_playbooks_env_file_names_every_wecom_variable_and_its_cron_pass_sends(tmp_path: Path) -> None:
    """The wecom output reads the corp id and the 客户联系 Secret on every pass; `siyu serve` the Token and
    EncodingAESKey: one env file holds all four, each with what it is for, and the crontab line's pass sends."""
    from tests.wecom_fake import WecomFake

    camp = tmp_path / "camp"
    personas = [{"id": "host", "name": "阿栖", "role": "班主任", "account": "wx_host_01", "wecom_userid": "aqi"}]
    groups = [{"id": "g1", "name": "阅读营1群", "persona": "host", "chat_id": "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA"}]
    write_playbook(camp, beats=[MORNING], personas=personas, groups=groups, outputs=["outbox", {"type": "wecom"}])
    siyu = Path(sys.executable).parent / "siyu"
    printed = subprocess.run([str(siyu), "cron", "playbook.yaml"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert printed.returncode == 0, printed.stderr
    env_file = camp / "siyu.env"
    assert "SIYU_WECOM_CORP_ID, SIYU_WECOM_SECRET, SIYU_WECOM_TOKEN, SIYU_WECOM_AES_KEY" in printed.stderr
    lines = env_file.read_text("utf-8").splitlines()
    for name in ("SIYU_WECOM_CORP_ID", "SIYU_WECOM_SECRET", "SIYU_WECOM_TOKEN", "SIYU_WECOM_AES_KEY"):
        assert f"{name}=" in lines
    above = {lines[i + 1]: lines[i] for i in range(len(lines) - 1) if lines[i].startswith("#")}
    assert "企业ID" in above["SIYU_WECOM_CORP_ID="] and "客户联系" in above["SIYU_WECOM_SECRET="]
    assert "siyu serve only" in above["SIYU_WECOM_TOKEN="] and "EncodingAESKey" in above["SIYU_WECOM_AES_KEY="]
    [line] = [text for text in printed.stdout.splitlines() if text.startswith("* * * * * ")]

    with WecomFake() as wecom:
        values = {"SIYU_WECOM_CORP_ID": wecom.corp_id, "SIYU_WECOM_SECRET": wecom.secret}
        filled = [f'{text}"{values[text[:-1]]}"' if text[:-1] in values else text for text in lines]
        env_file.write_text("\n".join([*filled, f'SIYU_WECOM_API="{wecom.url}"']) + "\n", encoding="utf-8")
        wecom.now = datetime(2026, 12, 1, 0, 31, tzinfo=UTC).timestamp()
        command = line.split(" ", 5)[5].replace("--once", "--once --now '2026-12-01 08:31'")
        ran = subprocess.run(["env", "-i", "/bin/sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
        log = (camp / "siyu-cron.log").read_text("utf-8")
        assert ran.returncode == 0 and "is not set" not in log, (ran.stderr, log)
        [task] = wecom.of("externalcontact/add_msg_template")
        assert task.body["chat_type"] == "group" and task.body["sender"] == "aqi"

    # An env file written before the wecom output was added lacks its names: siyu cron says which, and rewrites nothing.
    env_file.write_text('SIYU_WECOM_SECRET="s"\n', encoding="utf-8")
    again = subprocess.run([str(siyu), "cron", "playbook.yaml"], cwd=camp, env=siyu_env(), capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "has no line for SIYU_WECOM_CORP_ID, SIYU_WECOM_TOKEN, SIYU_WECOM_AES_KEY" in again.stderr
    assert env_file.read_text("utf-8") == 'SIYU_WECOM_SECRET="s"\n'
