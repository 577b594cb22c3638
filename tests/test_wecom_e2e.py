"""A playbook with the wecom output end to end: the real `siyu serve` process takes a callback encrypted by
wechatpy (not siyu) and the add's welcome goes out with its WelcomeCode, which the fake WeCom accepts only
within 20 seconds of the add, once; a journey starts from the same add; cron-style passes create the day's
mass send once, read back what the staff member sent, and `report sop` shows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

from tests.playbooks_fixtures import SHANGHAI, add_contacts, query, run_siyu, siyu_cmd, siyu_env, write_playbook
from tests.test_serve import AES_KEY, TOKEN, WeComSide, contact_xml
from tests.wecom_fake import WecomFake

HOOK = {
    "id": "card",
    "kind": "package_card",
    "code": "PKG01",
    "persona": "host",
    "welcome": [{"after": "0m", "text": "你好呀，我是阿栖～包裹卡的福利已经发你啦"}],
}
JOURNEY = {
    "id": "nurture",
    "title": "新客培育",
    "enter": {"event": "friend_added"},
    "steps": [{"id": "tips", "after": "1d", "text": "用得怎么样？有问题随时问我～"}],
}
MASS = {"id": "close", "title": "结营福利", "at": "12:30", "days": "all", "channel": "private", "audience": "parents", "text": "结营福利今晚24点截止～"}


def test_serve_welcomes_a_real_add_within_20_seconds_and_cron_passes_read_back_into_report_sop(tmp_path: Path) -> None:
    with WecomFake() as wecom:
        wecom.now = time.time()  # the welcome happens on the real clock: serve gets the callback now
        personas = [{"id": "host", "name": "阿栖", "role": "顾问", "account": "wx_host_01", "wecom_userid": "aqi"}]
        today = datetime.now(SHANGHAI).strftime("%Y-%m-%d")
        playbook = write_playbook(
            tmp_path, beats=[MASS], days=5, start=today, personas=personas, hooks=[HOOK], journeys=[JOURNEY], outputs=[{"type": "wecom"}],
            groups=[], limits={"missed": {"max_late": "6h"}},
        )  # fmt: skip
        add_contacts(tmp_path / "siyu.db", [{"contact_id": f"wm{i:03d}", "name": f"家长{i}", "tags": ["家长"], "account": "wx_host_01"} for i in range(12)])
        env = siyu_env(
            SIYU_WECOM_API=wecom.url, SIYU_WECOM_CORP_ID=wecom.corp_id, SIYU_WECOM_SECRET=wecom.secret, SIYU_WECOM_TOKEN=TOKEN, SIYU_WECOM_AES_KEY=AES_KEY
        )
        server = subprocess.Popen(siyu_cmd("serve", str(playbook), "--port", "0"), cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        try:
            assert server.stderr is not None
            url = server.stderr.readline().split("listening on ")[1].split(" ")[0]
            side = WeComSide(corp=wecom.corp_id)
            code = wecom.welcome_code("aqi", "wmNEW")
            added = datetime.now(UTC).replace(microsecond=0)
            params, body = side.callback(contact_xml("add_external_contact", "wmNEW", at=added, State="PKG01", WelcomeCode=code).replace("ww1a2b3c4d5e6f7a8b", wecom.corp_id))
            assert httpx.post(f"{url}?{urlencode(params)}", content=body).text == "success"
            assert wecom.wait_for("externalcontact/send_welcome_msg", timeout=20)
            [welcome] = wecom.of("externalcontact/send_welcome_msg")
            # The fake refuses a code older than 20 s (41050) or used before (41051): 0 means it went in time, once.
            assert welcome.errcode == 0 and welcome.body["welcome_code"] == code
            assert welcome.body["text"]["content"].startswith("你好呀，我是阿栖")
            server.send_signal(signal.SIGTERM)
            _, log = server.communicate(timeout=30)
        finally:
            if server.poll() is None:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
        assert "welcome pass for wmNEW" in log and "Traceback" not in log, log
        db = tmp_path / "siyu.db"
        assert query(db, "SELECT channel, state, outcome FROM drafts WHERE target = 'contact:wmNEW'") == [("welcome", "sent", None)]

        # Cron's passes: day 2's mass send, once, to the 12 parents; the new contact's journey step a day after its add.
        def cron(at: str) -> dict[str, object]:
            wecom.now = datetime.fromisoformat(at).replace(tzinfo=SHANGHAI).timestamp()
            result = run_siyu(tmp_path, "run", "--once", "--now", at, "--json", env=env)
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        local = added.astimezone(SHANGHAI)
        day2 = (local + timedelta(days=1)).strftime("%Y-%m-%d")
        beat_at = datetime.fromisoformat(f"{day2} 12:31")
        step_at = (local + timedelta(days=1, minutes=1)).replace(tzinfo=None)  # a day after the add, whatever the hour the test runs at
        for moment in sorted([beat_at, beat_at + timedelta(minutes=9), step_at]):  # cron's passes, in time order
            cron(f"{moment:%Y-%m-%d %H:%M:%S}")
        masses = [t for t in wecom.templates.values() if len(t.recipients) == 12]
        assert len(masses) == 1  # created once over two passes
        assert [list(t.recipients) for t in wecom.templates.values()].count(["wmNEW"]) == 1  # the journey's step, a one-customer task
        wecom.confirm(masses[0].msgid, "aqi", at=(beat_at + timedelta(minutes=2)).replace(tzinfo=SHANGHAI).timestamp())
        last = max(beat_at + timedelta(minutes=9), step_at) + timedelta(minutes=6)
        assert cron(f"{last:%Y-%m-%d %H:%M:%S}")["readback"].get("sent") == 12
        report = json.loads(run_siyu(tmp_path, "report", "sop", str(playbook), "--json", env=env).stdout)
        close = [row for row in report["rows"] if row["beat"] == "close"]
        assert sum(row["done"] for row in close) == 12
        aqi = {row["staff"]: row for row in report["staff"]}["aqi"]
        assert (aqi["tasks"], aqi["tasks_done"], aqi["recipients_reached"]) == (3, 2, 13)  # done: the mass send to 12 and the welcome (the API sends it); the journey's step waits
