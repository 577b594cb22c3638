"""auditg #8: `siyu outbox --reason` with a reason the ledger does not hold is a usage error listing those it does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbooks_fixtures import MORNING, NOON_1V1, add_contacts, invoke, write_playbook


def test_outbox_with_an_unknown_reason_is_a_usage_error_naming_the_ledgers_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1], limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "name": "甲"}, {"contact_id": "c2", "name": "乙"}])
    invoke("track", "friend_deleted", "--contact", "c2", "--at", "2026-12-01 10:00")
    invoke("run", "--once", "--now", "2026-12-01 12:30")
    typo = invoke("outbox", "--reason", "not_freind", code=2)
    assert "--reason 'not_freind': no draft of camp is recorded with this reason" in typo.stderr, typo.stderr
    assert "did you mean 'not_friend'?" in typo.stderr and "the ledger holds not_friend" in typo.stderr, typo.stderr
    assert "the ledger holds not_friend" in invoke("outbox", "--reason", "bogus", code=2).stderr
    assert "1 draft(s)" in invoke("outbox", "--reason", "not_friend").stdout
    # A reason siyu records that no draft holds yet is no typo: it lists none, exit 0 (a script's "any missed?").
    assert "0 draft(s)" in invoke("outbox", "--reason", "missed").stdout
    assert "0 draft(s)" in invoke("outbox", "--reason", "capacity:carried").stdout  # a reason siyu records, with its detail


def test_a_reason_with_a_misspelt_detail_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIYU_DB", "SIYU_PLAYBOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write_playbook(tmp_path, beats=[MORNING, NOON_1V1], limits={"missed": {"max_late": "6h"}})
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "name": "甲"}])
    invoke("run", "--once", "--now", "2026-12-01 12:30")
    assert "did you mean 'capacity:carried'?" in invoke("outbox", "--reason", "capacity:carred", code=2).stderr
    assert "0 draft(s)" in invoke("outbox", "--reason", "nurture:carried").stdout
