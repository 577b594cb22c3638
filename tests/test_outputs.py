"""The outbox and console outputs, and how build_outputs reads a playbook's `outputs:` list."""

from __future__ import annotations

import errno
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from siyu_cli.dispatch._outbox import OutboxOutput
from siyu_cli.dispatch._outputs import Outgoing, build_outputs
from siyu_cli.errors import DeliveryError, SiyuError
from tests.conftest_http import SAMPLE_TEXT, SHANGHAI, outgoing

EXPECTED = Path("2026-12-01") / "0800-morning-share-group-g1-d3f9a1c2e4b5.md"


def read_draft(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_outbox_writes_one_named_file_per_draft(tmp_path: Path) -> None:
    output = OutboxOutput(tmp_path / "outbox")
    location = output.deliver(outgoing())
    assert Path(location) == tmp_path / "outbox" / EXPECTED
    assert os.listdir(tmp_path / "outbox" / "2026-12-01") == [EXPECTED.name]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert Path(location).stat().st_mode & 0o777 == 0o666 & ~umask  # colleagues can read drafts


def test_outbox_header_names_everything_a_sender_needs(tmp_path: Path) -> None:
    path = Path(OutboxOutput(tmp_path).deliver(outgoing(category="skincare")))
    header, body = read_draft(path)
    assert header == {
        "time": "2026-12-01T08:00:00+08:00",
        "day": 1,
        "beat": "morning-share",
        "beat_title": "早分享",
        "channel": "group",
        "persona": "小丸子",
        "account": "wx_host_01",
        "target": "阅读营12期1群",
        "target_id": "group:g1",
        "cohort": "default",
        "category": "skincare",
        "variant": "a",
        "playbook": "reading-camp-7d",
        "playbook_title": "少年阅读训练营 · 7天群转",
        "draft": "d3f9a1c2e4b5",
    }
    assert "# 12-01 08:00 早分享 → 阅读营12期1群" in body
    assert "群 group · 小丸子 (wx_host_01) · 第1天" in body
    assert body.endswith(SAMPLE_TEXT + "\n")


def test_outbox_folder_is_the_date_in_the_playbook_zone(tmp_path: Path) -> None:
    just_after_midnight = datetime(2026, 12, 2, 0, 30, tzinfo=SHANGHAI)  # still Dec 1 in UTC
    path = Path(OutboxOutput(tmp_path).deliver(outgoing(due_at=just_after_midnight)))
    assert path.parent.name == "2026-12-02" and path.name.startswith("0030-")


def test_outbox_file_names_stay_inside_the_folder_and_ascii_ids(tmp_path: Path) -> None:
    msg = outgoing(beat="../晚总结", target_id="contact:c/001", draft_id="草稿 1")
    path = Path(OutboxOutput(tmp_path).deliver(msg))
    assert path.parent == tmp_path / "2026-12-01"
    assert path.name == "0800-晚总结-contact-c_001-1.md"


def test_outbox_file_names_fit_the_filesystem(tmp_path: Path) -> None:
    msg = outgoing(beat="晚" * 100, target_id="contact:" + "张" * 100)
    path = Path(OutboxOutput(tmp_path).deliver(msg))
    assert len(path.name.encode("utf-8")) <= 200
    assert path.name.startswith("0800-晚晚") and path.name.endswith("-d3f9a1c2e4b5.md")


def test_outbox_delivering_twice_rewrites_the_same_file(tmp_path: Path) -> None:
    output = OutboxOutput(tmp_path)
    assert output.delivered_location(outgoing()) is None
    first = output.deliver(outgoing())
    second = output.deliver(outgoing(text="改过的文案"))
    assert first == second == output.delivered_location(outgoing(text="改过的文案"))
    assert read_draft(Path(first))[1].endswith("改过的文案\n")
    assert len(list((tmp_path / "2026-12-01").iterdir())) == 1


def test_outbox_recovery_trusts_only_a_complete_file(tmp_path: Path) -> None:
    """A file cut short (a power loss before the batch sync) is not taken as delivered."""
    output = OutboxOutput(tmp_path)
    path = Path(output.deliver(outgoing()))
    output.flush()
    assert output.delivered_location(outgoing()) == str(path)
    path.write_bytes(path.read_bytes()[:10])
    assert output.delivered_location(outgoing()) is None
    assert output.deliver(outgoing()) == str(path)
    assert output.delivered_location(outgoing()) == str(path)


def test_outbox_recovery_clears_a_dead_write(tmp_path: Path) -> None:
    """kill -9 between writing the temp file and renaming it leaves a hidden .tmp; recovering that draft removes it."""
    output = OutboxOutput(tmp_path)
    path = Path(output.deliver(outgoing()))
    stray = path.parent / f".{path.name}.1a2b3c4d.tmp"
    stray.write_bytes(path.read_bytes()[:7])
    path.unlink()
    assert output.delivered_location(outgoing()) is None
    assert not stray.exists()
    assert output.deliver(outgoing()) == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_outbox_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("I am a file, not a folder")
    with pytest.raises(DeliveryError) as caught:
        OutboxOutput(blocker).deliver(outgoing())
    message = caught.value.message
    assert str(blocker / "2026-12-01") in message and "cannot create the folder" in message
    assert "Not a directory" in message or "File exists" in message
    assert caught.value.transient is False
    assert "Traceback" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the parent-is-a-file test covers this")
def test_outbox_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "2026-12-01"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        with pytest.raises(DeliveryError) as caught:
            OutboxOutput(tmp_path / "outbox").deliver(outgoing())
        assert "Permission denied" in caught.value.message and str(folder) in caught.value.message
    finally:
        folder.chmod(0o700)


def test_outbox_disk_full_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = OutboxOutput(tmp_path)
    path = Path(output.deliver(outgoing()))
    before = path.read_bytes()

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DeliveryError) as caught:
        output.deliver(outgoing(text="新文案"))
    monkeypatch.undo()

    assert caught.value.transient is True
    assert "No space left on device" in caught.value.message and str(path) in caught.value.message
    assert path.read_bytes() == before  # the old file is whole, the new one never half-written
    assert os.listdir(path.parent) == [path.name]


def test_outbox_disk_full_on_a_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def half_then_full(fd: int, data: memoryview) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return os.pwrite(fd, bytes(data[:10]), 0)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    output = OutboxOutput(tmp_path)
    with pytest.raises(DeliveryError):
        output.deliver(outgoing())
    monkeypatch.undo()
    assert os.listdir(tmp_path / "2026-12-01") == []
    assert output.delivered_location(outgoing()) is None


def test_console_hands_the_draft_to_the_callback(tmp_path: Path) -> None:
    seen: list[Outgoing] = []
    [console] = build_outputs(["console"], outbox_dir=tmp_path, environ={}, console=seen.append)
    assert console.deliver(outgoing()) == "console"
    assert seen == [outgoing()]
    assert console.idempotent is False and console.delivered_location(outgoing()) is None


def test_console_without_callback_prints_a_plain_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [console] = build_outputs([{"type": "console"}], outbox_dir=tmp_path, environ={})
    assert console.deliver(outgoing()) == "stdout"
    printed = capsys.readouterr().out
    assert "2026-12-01 08:00 · 早分享 (morning-share)" in printed
    assert "群 group → 阅读营12期1群 · 小丸子 (wx_host_01)" in printed
    assert SAMPLE_TEXT in printed


def test_outputs_default_to_the_outbox(tmp_path: Path) -> None:
    [output] = build_outputs([], outbox_dir=tmp_path / "ob", environ={})
    assert output.name == "outbox" and output.idempotent is True
    assert Path(output.deliver(outgoing())).is_relative_to(tmp_path / "ob")


def test_outbox_dir_from_the_playbook(tmp_path: Path) -> None:
    specs = ["outbox", {"type": "outbox", "dir": str(tmp_path / "copy")}]
    first, second = build_outputs(specs, outbox_dir=tmp_path / "ob", environ={})
    assert (first.name, second.name) == ("outbox", "outbox:2")
    assert Path(second.deliver(outgoing())).is_relative_to(tmp_path / "copy")


def test_two_outputs_with_the_same_name_are_refused(tmp_path: Path) -> None:
    specs = [{"type": "outbox", "name": "drafts"}, {"type": "console", "name": "drafts"}]
    with pytest.raises(SiyuError, match="both named 'drafts'"):
        build_outputs(specs, outbox_dir=tmp_path, environ={})


def test_playbook_model_outputs_are_accepted(tmp_path: Path) -> None:
    from siyu_cli.playbook._model import OutboxOutput as OutboxSpec
    from siyu_cli.playbook._model import WebhookOutput as WebhookSpec

    specs = [
        OutboxSpec(type="outbox"),
        WebhookSpec(type="webhook", format="dingtalk", url_env="D", timeout="5s"),
    ]
    env = {"D": "https://oapi.dingtalk.com/robot/send?access_token=abc123"}
    outputs = build_outputs(specs, outbox_dir=tmp_path, environ=env)
    assert [o.name for o in outputs] == ["outbox", "webhook:dingtalk"]


def test_outgoing_as_json(tmp_path: Path) -> None:
    data = outgoing().to_dict()
    assert data["due_at"] == "2026-12-01T08:00:00+08:00"
    assert data["target_id"] == "group:g1" and data["text"] == SAMPLE_TEXT
