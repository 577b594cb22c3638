"""`siyu check` knows WeCom's rules (issue 12 item 5) for a playbook whose outputs include {type: wecom}:
what WeCom would refuse is an error located at file, line and field, with the fix; without that output
the same playbook keeps the warnings it had."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import NOON_1V1, add_contacts, invoke, write_playbook

WECOM = [{"type": "wecom"}]
STAFF = [
    {"id": "host", "name": "小丸子", "role": "班主任", "account": "wx_host_01", "wecom_userid": "xiaowanzi"},
    {"id": "advisor", "name": "李老师", "role": "顾问", "account": "wx_adv_02", "wecom_userid": "lilaoshi"},
]
GROUPS = [{"id": "g1", "name": "阅读营1群", "persona": "host", "chat_id": "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA"}]
MORNING = {"id": "morning", "at": "08:30", "days": "all", "channel": "group", "text": "早上好，第{{ day }}天"}
COVER = "https://cdn.example.com/cover.jpg"
# The 1v1 from host: a beat with no persona also goes to advisor's own contacts from advisor (Planner._private).
NOON = {**NOON_1V1, "persona": "host"}


def _playbook(tmp_path: Path, **changes: Any) -> Path:
    """A WeCom playbook that passes --strict; `changes` replace its parts (personas, groups, beats, outputs…)."""
    parts: dict[str, Any] = {"personas": STAFF, "groups": GROUPS, "beats": [MORNING, NOON], "outputs": WECOM}
    parts.update(changes)
    return write_playbook(tmp_path, **parts)


def _problems(path: Path, *args: str, code: int = 1) -> list[dict[str, Any]]:
    result = invoke("check", str(path), "--json", *args, code=code)
    return json.loads(result.stdout)["files"][0]["problems"]


def _coded(path: Path, prefix: str, code: int = 1) -> list[dict[str, Any]]:
    return [p for p in _problems(path, code=code) if p["code"].startswith(prefix)]


def _line_of(path: Path, problem: dict[str, Any]) -> str:
    return path.read_text(encoding="utf-8").splitlines()[problem["line"] - 1]


def test_a_configured_wecom_playbook_passes_strict(tmp_path: Path) -> None:
    hooks = [
        {
            "id": "card",
            "kind": "package_card",
            "code": "C1",
            "persona": "host",
            "tags": ["体验课"],
            "welcome": [
                {"after": "0m", "text": "欢迎！", "attachments": [{"miniprogram": "wx1234567890", "page": "pages/index/index", "title": "领取福利", "cover": COVER}]},
                {"after": "1d", "at": "10:00", "text": "今天开营", "attachments": [{"link": "https://shop.example.com/camp", "title": "开营须知"}]},
            ],
        }
    ]
    journey = {"id": "ladder", "persona": "advisor", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "1d", "text": "您好"}, {"id": "close", "after": "3d", "text": "下单"}]}
    moments = {"id": "moments", "at": "21:00", "days": "all", "channel": "moments", "persona": "host", "text": "今天的分享" + "。" * 1900}
    # The welcome's second message and noon are both host's: noon leaves the hook's contacts out (one mass send a day).
    noon = {**NOON, "audience": "家长 and not 体验课"}
    path = _playbook(tmp_path, hooks=hooks, journeys=[journey], beats=[MORNING, noon, moments])
    result = invoke("check", str(path), "--strict")
    assert "✓ ok" in result.stdout
    assert json.loads(invoke("check", str(path), "--json", "--strict").stdout)["files"][0]["problems"] == []


def test_a_persona_that_sends_without_a_staff_member(tmp_path: Path) -> None:
    personas = [dict(STAFF[0]), {k: v for k, v in STAFF[1].items() if k != "wecom_userid"}, {"id": "quiet", "name": "备用号"}]
    path = _playbook(tmp_path, personas=personas, beats=[MORNING, {**NOON, "persona": "advisor"}])
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-userid" and problem["severity"] == "error"
    assert problem["path"] == "personas[1].wecom_userid" and problem["file"].endswith("playbook.yaml")
    assert "id: advisor" in _line_of(path, problem)
    assert "persona advisor (李老师) sends beat noon" in problem["message"]
    assert "add wecom_userid" in problem["hint"]
    # A persona that sends nothing (quiet) needs none; a journey without a persona sends from the account's persona or the first.
    journey = {"id": "ladder", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "1d", "text": "您好"}]}
    path = _playbook(tmp_path, personas=[{k: v for k, v in STAFF[0].items() if k != "wecom_userid"}, STAFF[1]], beats=[NOON | {"persona": "advisor"}], journeys=[journey], groups=[])
    (problem,) = _coded(path, "wecom-userid")
    assert problem["path"] == "personas[0].wecom_userid"
    assert "journey ladder (to contacts who added wx_host_01, and by default)" in problem["message"]


def test_a_group_a_beat_posts_to_needs_its_chat_id(tmp_path: Path) -> None:
    groups = [{"id": "g1", "name": "阅读营1群", "persona": "host"}, {"id": "g2", "name": "阅读营2群", "persona": "host"}]
    path = _playbook(tmp_path, groups=groups, beats=[{**MORNING, "groups": ["g1"]}])
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-chat-id" and problem["path"] == "groups[0].chat_id"
    assert "id: g1" in _line_of(path, problem)
    assert "group g1 (阅读营1群) gets beat morning, but has no chat_id" in problem["message"] and "chat_id" in problem["hint"]


def test_moments_wecom_refuses_are_errors_and_warnings_without_it(tmp_path: Path) -> None:
    long = {"id": "long", "at": "21:00", "days": [1], "channel": "moments", "persona": "host", "text": "今天" + "。" * 2000}
    mixed = {
        "id": "mixed",
        "at": "22:00",
        "days": [1],
        "channel": "moments",
        "persona": "host",
        "text": "".join(f"![图{n}](https://example.com/{n}.jpg)\n" for n in range(3)),
        "attachments": [{"video": "https://cdn.example.com/clip.mp4"}],
    }
    gallery = {**mixed, "id": "gallery", "at": "22:30", "text": "".join(f"![图{n}](https://example.com/{n}.jpg)\n" for n in range(10)), "attachments": []}
    path = _playbook(tmp_path, beats=[MORNING, long, mixed, gallery])
    found = {(p["code"], p["path"]): p for p in _coded(path, "wecom-")}
    assert set(found) == {("wecom-moments-length", "beats[1].text"), ("wecom-moments-images", "beats[2].text"), ("wecom-moments-images", "beats[3].text")}
    assert all(p["severity"] == "error" for p in found.values())
    assert "2002 characters" in found[("wecom-moments-length", "beats[1].text")]["message"]
    assert "3 images in its text and 1 video attached" in found[("wecom-moments-images", "beats[2].text")]["message"]
    assert "add_moment_task" in found[("wecom-moments-images", "beats[3].text")]["message"]
    # The same posts without the wecom output: warnings, the text-and-video post too (its attachments count either way).
    path = _playbook(tmp_path, beats=[MORNING, long, mixed, gallery], outputs=["outbox"])
    codes = sorted((p["code"], p["severity"], p["path"]) for p in _problems(path, code=0))
    assert codes == [("moments-images", "warning", "beats[2].text"), ("moments-images", "warning", "beats[3].text"), ("moments-length", "warning", "beats[1].text")]


def test_a_card_the_welcome_api_cannot_take(tmp_path: Path) -> None:
    card = {"miniprogram": "wx1234567890", "page": "pages/index/index", "title": "领取福利"}
    long_link = {"link": "https://shop.example.com/camp", "title": "开营须知" * 12}
    hooks = [
        {"id": "card", "kind": "package_card", "persona": "advisor", "welcome": [{"after": "0m", "text": "欢迎", "attachments": [card]}, {"after": "1d", "text": "开营", "attachments": [long_link]}]}
    ]
    path = _playbook(tmp_path, hooks=hooks)
    found = {p["path"]: p for p in _coded(path, "wecom-")}
    assert set(found) == {"hooks[0].welcome[0].attachments[0]", "hooks[0].welcome[1].attachments[0]"}
    first = found["hooks[0].welcome[0].attachments[0]"]
    assert first["code"] == "wecom-attachment" and "without a cover" in first["message"] and "send_welcome_msg refuses it" in first["message"]
    assert "miniprogram" in _line_of(path, first) and "add cover" in first["hint"]
    later = found["hooks[0].welcome[1].attachments[0]"]
    assert "a link title of 144 bytes (at most 128)" in later["message"] and "add_msg_template" in later["message"]
    hooks[0]["welcome"][0]["attachments"] = [{**card, "cover": COVER}]
    hooks[0]["welcome"][1]["attachments"] = [{**long_link, "title": "开营须知"}]
    invoke("check", str(_playbook(tmp_path, hooks=hooks)), "--strict")


def test_two_personas_one_staff_member(tmp_path: Path) -> None:
    personas = [STAFF[0], {**STAFF[1], "wecom_userid": "xiaowanzi"}]
    evening = {**NOON, "id": "evening", "at": "20:00", "persona": "advisor", "text": "晚上好"}
    path = _playbook(tmp_path, personas=personas, beats=[MORNING, NOON, evening])
    found = {p["code"]: p for p in _coded(path, "wecom-")}
    shared = found["wecom-userid-shared"]
    assert shared["severity"] == "warning" and shared["path"] == "personas[1].wecom_userid"
    assert "personas host and advisor are both staff member xiaowanzi" in shared["message"] and "one-a-day" in shared["message"]
    # One staff member: the two personas' beats reach one customer twice a day, which WeCom refuses.
    twice = found["wecom-twice-a-day"]
    assert twice["severity"] == "error" and twice["path"] == "beats[2].days"
    assert "beats noon and evening" in twice["message"] and "day(s) 1-3" in twice["message"] and "staff member xiaowanzi" in twice["message"]


def test_the_same_staff_member_twice_a_day(tmp_path: Path) -> None:
    twice = {**NOON, "at": ["09:00", "19:30"], "days": [1, 3]}
    path = _playbook(tmp_path, beats=[MORNING, twice])
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-twice-a-day" and problem["severity"] == "error" and problem["path"] == "beats[1].at"
    assert "beat noon posts at 09:00, 19:30 on day(s) 1, 3" in problem["message"] and "refuses the second mass send" in problem["message"]
    assert "09:00" in _line_of(path, problem)
    journey = {"id": "ladder", "persona": "advisor", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "1h", "text": "您好"}, {"id": "pain", "after": "3h", "text": "再聊"}]}
    (problem,) = _coded(_playbook(tmp_path, journeys=[journey]), "wecom-")
    assert problem["code"] == "wecom-twice-a-day" and problem["path"] == "journeys[0].steps" and "ask, pain" in problem["message"]
    # Without the wecom output: the copy lint's warning, as before.
    path = _playbook(tmp_path, beats=[MORNING, twice], outputs=["outbox"])
    (problem,) = [p for p in _problems(path, code=0) if "twice" in p["code"]]
    assert problem["code"] == "twice-a-day" and problem["severity"] == "warning"


def test_the_monthly_mass_send_quota_for_a_customer(tmp_path: Path) -> None:
    evening = {**NOON, "id": "evening", "at": "20:00", "persona": "advisor", "audience": "家长 and 已购", "text": "晚上好，{{ contact.name }}"}
    path = _playbook(tmp_path, beats=[NOON | {"text": "今天第{{ day }}天"}, evening], days=31, groups=[])
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-mass-quota" and problem["severity"] == "error"
    message = problem["message"]
    assert message.startswith("in 2026-12 a customer tagged 家长/已购 would receive 62 company mass sends (企业群发), above WeCom's default of 31 (the days of 2026-12)")
    assert "beats evening ×31, noon ×31 (beat evening: one-recipient tasks, as the text names the contact" in message
    assert "from the 32nd on (beat evening on 12-16 20:00)" in message and "an upper bound" in message
    assert problem["path"] == "beats[1].days" and "days:" in _line_of(path, problem)
    assert "limits.wecom_mass_per_month" in problem["hint"]
    # The corp's own value.
    invoke("check", str(_playbook(tmp_path, beats=[NOON, evening], days=31, groups=[], limits={"wecom_mass_per_month": 62})), "--strict")
    (problem,) = _coded(_playbook(tmp_path, beats=[NOON, evening], days=31, groups=[], limits={"wecom_mass_per_month": 20}), "wecom-")
    assert "above limits.wecom_mass_per_month 20" in problem["message"] and "from the 21st on" in problem["message"]


def test_the_quota_is_per_calendar_month(tmp_path: Path) -> None:
    evening = {**NOON, "id": "evening", "at": "20:00", "persona": "advisor"}
    # 12 days in December (24 sends), 19 in January (38): only January is over.
    path = _playbook(tmp_path, beats=[NOON, evening], days=31, start="2026-12-20", groups=[])
    (problem,) = _coded(path, "wecom-")
    assert problem["message"].startswith("in 2027-01 a customer tagged 家长 would receive 38 company mass sends") and "the days of 2027-01" in problem["message"]
    invoke("check", str(_playbook(tmp_path, beats=[NOON, evening], days=24, start="2026-12-20", groups=[])), "--strict")


def test_the_quota_with_the_stores_contacts(tmp_path: Path) -> None:
    evening = {**NOON, "id": "evening", "at": "20:00", "persona": "advisor", "audience": "已购"}
    path = _playbook(tmp_path, beats=[NOON, evening], days=31, groups=[])
    db = tmp_path / "siyu.db"
    add_contacts(db, [{"contact_id": "c1", "name": "王妈妈", "tags": ["家长"]}, {"contact_id": "c2", "name": "李爸爸", "tags": ["家长", "已购"]}, {"contact_id": "c3", "tags": ["家长", "已购"]}])
    (problem,) = [p for p in _problems(path, "--db", str(db)) if p["code"] == "wecom-mass-quota"]
    assert problem["message"].startswith("in 2026-12 contact c2 (李爸爸) would receive 62 company mass sends")
    assert "1 more contact(s) are over too" in problem["message"] and "tags now" in problem["message"] and "upper bound" not in problem["message"]
    add_contacts(db, [])
    with_one = tmp_path / "one"
    path = _playbook(with_one, beats=[NOON, evening], days=31, groups=[])
    add_contacts(with_one / "siyu.db", [{"contact_id": "c1", "tags": ["家长"]}, {"contact_id": "c2", "tags": ["已购"]}])
    invoke("check", str(path), "--db", str(with_one / "siyu.db"), "--strict")  # no contact is in both audiences


def test_the_monthly_quota_of_a_customer_group(tmp_path: Path) -> None:
    twice = {**MORNING, "at": ["08:30", "20:00"]}
    path = _playbook(tmp_path, beats=[twice], days=31)
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-mass-quota" and problem["path"] == "beats[0].days"
    assert problem["message"].startswith("in 2026-12 group g1 (阅读营1群) would receive 62 company mass sends (企业群发)")
    assert "beat morning ×62" in problem["message"] and "from the 32nd on (beat morning on 12-16 20:00)" in problem["message"]


def test_without_the_wecom_output_nothing_new_is_an_error(tmp_path: Path) -> None:
    """Everything above at once, with an outbox: no error, no wecom- finding."""
    personas = [{"id": "host", "name": "小丸子"}, {"id": "advisor", "name": "李老师", "wecom_userid": "x"}, {"id": "helper", "name": "助教", "wecom_userid": "x"}]
    beats = [
        {**MORNING, "at": ["08:30", "20:00"]},
        NOON,
        {**NOON, "id": "evening", "at": "20:00", "persona": "advisor"},
        {"id": "long", "at": "21:00", "days": [1], "channel": "moments", "persona": "host", "text": "今天" + "。" * 2000},
    ]
    hooks = [{"id": "card", "kind": "package_card", "welcome": [{"after": "0m", "text": "欢迎", "attachments": [{"miniprogram": "wx1234567890", "page": "p/i", "title": "领"}]}]}]
    for outputs in (["outbox"], [{"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}], None):
        path = _playbook(tmp_path, personas=personas, groups=[{"id": "g1", "name": "一群"}], beats=beats, hooks=hooks, days=31, outputs=outputs)
        problems = _problems(path, code=0)
        assert not [p for p in problems if p["severity"] == "error" or p["code"].startswith("wecom-")], problems
        assert {p["code"] for p in problems} >= {"moments-length"}


@pytest.mark.parametrize("strict", [False, True])
def test_text_output_and_exit_codes(tmp_path: Path, strict: bool) -> None:
    path = _playbook(tmp_path, groups=[{"id": "g1", "name": "阅读营1群", "persona": "host"}])
    args = ["check", str(path)] + (["--strict"] if strict else [])
    result = invoke(*args, code=1)
    assert "playbook.yaml:" in result.stderr and "error: groups[0].chat_id: group g1" in result.stderr
    assert "✗ 1 error(s)" in result.stdout
    failed = json.loads(invoke("check", str(path), "--json", code=1).stdout)["files"][0]["failed_on"]
    assert [p["code"] for p in failed] == ["wecom-chat-id"]


WELCOMED = {
    "id": "card",
    "kind": "package_card",
    "code": "GLOW30",
    "tags": ["试用装"],
    "persona": "host",
    "welcome": [{"after": "0m", "text": "你好呀"}, {"after": "1d", "at": "10:00", "text": "试用第二天感觉怎么样？"}],
}
DAILY_TIP = {"id": "tip", "at": "10:30", "days": "all", "channel": "private", "persona": "host", "audience": "试用装", "text": "每日护肤打卡提醒"}


def test_a_welcome_or_journey_step_on_a_beat_day_of_the_same_staff_member(tmp_path: Path) -> None:
    """A contact's own clock starts at its add: check adds one at 10:00 on each campaign day, as the monthly quota places it."""
    journey = {"id": "nurture", "persona": "host", "enter": {"event": "friend_added"}, "steps": [{"id": "tip", "after": "2d", "at": "11:00", "text": "护肤小贴士"}]}
    path = _playbook(tmp_path, hooks=[WELCOMED], journeys=[journey], beats=[DAILY_TIP], groups=[], days=10)
    found = {p["path"]: p for p in _coded(path, "wecom-")}
    assert set(found) == {"hooks[0].welcome[1]", "journeys[0].steps[0]"}
    welcome = found["hooks[0].welcome[1]"]
    assert welcome["code"] == "wecom-twice-a-day" and welcome["severity"] == "error"
    assert welcome["message"].startswith(
        "welcome message 2 of hook card and beat tip reach one contact on one day, both from persona host (staff member xiaowanzi): "
        "a contact added at 10:00 on day 1 gets both on 12-02 (10:00, 10:30), and so does one added on day(s) 2-9"
    )
    assert "refuses the second mass send" in welcome["message"] and "after: 1d" in _line_of(path, welcome)
    step = found["journeys[0].steps[0]"]
    assert "step tip of journey nurture and beat tip" in step["message"] and "on 12-03 (10:30, 11:00)" in step["message"]
    assert "id: tip" in _line_of(path, step)
    # Without the wecom output: the twice-a-day warning sees it too.
    path = _playbook(tmp_path, hooks=[WELCOMED], journeys=[journey], beats=[DAILY_TIP], groups=[], days=10, outputs=["outbox"])
    twice = [p for p in _problems(path, code=0) if p["code"] == "twice-a-day"]
    assert [(p["path"], p["severity"]) for p in twice] == [("hooks[0].welcome[1]", "warning"), ("journeys[0].steps[0]", "warning")]
    assert "from persona host: a contact added at 10:00 on day 1" in twice[0]["message"]


def test_a_beat_day_only_for_contacts_added_later(tmp_path: Path) -> None:
    """A beat on one day meets the welcome of contacts added the day before: the message names that add."""
    path = _playbook(tmp_path, hooks=[WELCOMED], beats=[{**DAILY_TIP, "days": [5]}], groups=[], days=10)
    (problem,) = _coded(path, "wecom-")
    assert "a contact added at 10:00 on day 4 gets both on 12-05 (10:00, 10:30)" in problem["message"] and "and so does" not in problem["message"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"beats": [{**DAILY_TIP, "at": "08:30", "days": [1]}], "welcome": {"after": "2h"}}, id="the beat goes before the add"),
        pytest.param({"beats": [{**DAILY_TIP, "days": [1]}]}, id="the step's at: lands after the beat's only day"),
        pytest.param({"beats": [{**DAILY_TIP, "audience": "家长 and not 试用装"}]}, id="the audience leaves the hook's contacts out"),
        pytest.param({"beats": [{**DAILY_TIP, "persona": "advisor"}]}, id="another staff member"),
    ],
)
def test_a_step_that_can_never_meet_the_beat(tmp_path: Path, change: dict[str, Any]) -> None:
    hook = {**WELCOMED, "welcome": [WELCOMED["welcome"][0], {**WELCOMED["welcome"][1], **change.get("welcome", {})}]}
    invoke("check", str(_playbook(tmp_path, hooks=[hook], beats=change["beats"], groups=[], days=10)), "--strict")


def test_a_journey_whose_entering_event_takes_the_contact_out_of_the_beat(tmp_path: Path) -> None:
    """An order tags the contact 已购 (rules:), so a beat for those not 已购 never reaches who entered on it; one for 已购 does."""
    journey = {"id": "care", "persona": "host", "enter": {"event": "order"}, "steps": [{"id": "usage", "after": "2d", "at": "11:00", "text": "记得薄涂"}]}
    coupon = {**DAILY_TIP, "id": "coupon", "at": "19:00", "audience": "试用装 and not 已购"}
    rules = [{"on": {"event": "order"}, "tag": ["+已购"]}]
    invoke("check", str(_playbook(tmp_path, journeys=[journey], beats=[coupon], groups=[], rules=rules)), "--strict")
    (problem,) = _coded(_playbook(tmp_path, journeys=[journey], beats=[{**coupon, "audience": "已购"}], groups=[], rules=rules), "wecom-")
    assert problem["path"] == "journeys[0].steps[0]" and "a contact entering (order) at 10:00 on day 1 gets both on 12-03 (11:00, 19:00)" in problem["message"]


def test_a_mass_send_text_over_4000_bytes(tmp_path: Path) -> None:
    """add_msg_template and send_welcome_msg take 4,000 bytes of text.content (else 45002), measured as rendered."""
    long = "护" * 1334  # 4,002 bytes
    hooks = [{"id": "card", "kind": "package_card", "persona": "advisor", "welcome": [{"after": "0m", "text": long}, {"after": "2d", "text": "{{ vars.tip }}"}]}]
    journey = {"id": "ladder", "persona": "advisor", "enter": {"event": "friend_added"}, "steps": [{"id": "ask", "after": "4d", "template": "ask.md.j2"}]}
    beats = [{**MORNING, "text": long}, {**NOON, "text": "{{ contact.name }}" + "好" * 1332}]
    templates = {"templates/ask.md.j2": "{{ contact.name }}，\n" + "问" * 1340 + "\n"}
    path = _playbook(tmp_path, hooks=hooks, journeys=[journey], beats=beats, vars={"tip": long}, templates=templates, days=5)
    found = {p["path"]: p for p in _coded(path, "wecom-")}
    assert set(found) == {"beats[0].text", "beats[1].text", "hooks[0].welcome[0].text", "hooks[0].welcome[1].text", "journeys[0].steps[0].template"}
    assert all(p["code"] == "wecom-text-length" and p["severity"] == "error" for p in found.values())
    assert found["beats[0].text"]["message"] == (
        "<inline beats.morning.text>: a text of 4,002 bytes (rendered with check's sample data), above the 4,000 bytes of text.content "
        "WeCom's add_msg_template takes: WeCom refuses it (45002)"
    )
    assert "WeCom's send_welcome_msg takes" in found["hooks[0].welcome[0].text"]["message"]
    assert "WeCom's add_msg_template takes" in found["hooks[0].welcome[1].text"]["message"]  # 4,002 bytes once vars.tip is in
    assert found["journeys[0].steps[0].template"]["message"].startswith("ask.md.j2: a text of 4,0")
    for problem in found.values():
        assert problem["path"].rsplit(".", 1)[1] + ":" in _line_of(path, problem) and "4,000 bytes" in problem["hint"]
    # 4,000 bytes pass; without the wecom output nothing is said.
    fits = "护" * 1333 + "a"
    invoke("check", str(_playbook(tmp_path, beats=[{**MORNING, "text": fits}, {**NOON, "text": fits}])), "--strict")
    assert not [p for p in _problems(_playbook(tmp_path, hooks=hooks, journeys=[journey], beats=beats, vars={"tip": long}, templates=templates, days=5, outputs=["outbox"]), code=0) if "length" in p["code"]]


def test_a_misspelt_key_of_an_output_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = _playbook(tmp_path, outputs=[{"type": "wecom", "remind_afer": "2h"}], lint={"words": [{"term": "最好", "categry": "absolute"}]})
    problems = {p["path"]: p for p in _problems(path)}
    assert problems["outputs[0].remind_afer"]["hint"] == "did you mean 'remind_after'?"
    assert problems["lint.words[0].categry"]["hint"] == "did you mean 'category'?"
    path = _playbook(tmp_path, outputs=[{"type": "webhook", "format": "wecom", "url_env": "X", "zzz": 1}])
    (problem,) = _problems(path)
    assert problem["hint"].startswith("allowed keys: ") and "url_env" in problem["hint"] and "remind_after" not in problem["hint"]


def test_steps_of_two_routes_one_add_enters_on_one_day(tmp_path: Path) -> None:
    """A welcome message after the first and a friend_added journey's step, or two journeys' steps, from one staff member."""
    tip = {"id": "tip", "persona": "host", "enter": {"event": "friend_added"}, "steps": [{"id": "tip", "after": "1d", "at": "15:00", "text": "防晒要足量"}]}
    path = _playbook(tmp_path, hooks=[WELCOMED], journeys=[tip], beats=[MORNING], days=10)
    (problem,) = _coded(path, "wecom-")
    assert problem["code"] == "wecom-twice-a-day" and problem["severity"] == "error" and problem["path"] == "journeys[0].steps[0]"
    assert problem["message"].startswith(
        "step tip of journey tip and welcome message 2 of hook card reach one contact on one day, both from persona host (staff member xiaowanzi): "
        "a contact added at 10:00 gets both on day 2 of its runs (10:00, 15:00) if it has not exited either"
    )
    assert "refuses the second mass send" in problem["message"] and "id: tip" in _line_of(path, problem)
    # Two journeys, one without a persona: the persona whose account the contact added sends it, as the message says.
    evening = {"id": "evening", "enter": {"event": "friend_added"}, "steps": [{"id": "night", "after": "1d", "at": "20:00", "text": "晚间护肤"}]}
    (problem,) = _coded(_playbook(tmp_path, journeys=[tip, evening], beats=[MORNING], days=10), "wecom-")
    assert problem["path"] == "journeys[1].steps[0]" and "step night of journey evening and step tip of journey tip" in problem["message"]
    assert "persona host (staff member xiaowanzi; to contacts who added wx_host_01)" in problem["message"]
    # Without the wecom output: the warning.
    path = _playbook(tmp_path, hooks=[WELCOMED], journeys=[tip], beats=[MORNING], days=10, outputs=["outbox"])
    assert [(p["path"], p["severity"]) for p in _problems(path, code=0) if p["code"] == "twice-a-day"] == [("journeys[0].steps[0]", "warning")]


@pytest.mark.parametrize(
    "journey",
    [
        pytest.param({"steps": [{"id": "tip", "after": "2d", "at": "15:00", "text": "防晒"}]}, id="another day"),
        pytest.param({"persona": "advisor"}, id="another staff member"),
        pytest.param({"audience": "not 试用装"}, id="the journey's audience leaves the hook's contacts out"),
        pytest.param({"enter": {"event": "friend_added", "hook": "other"}}, id="entered through another hook"),
        pytest.param({"enter": {"event": "order"}}, id="entered on another event: not placed against the add"),
    ],
)
def test_two_routes_that_never_meet_on_one_day(tmp_path: Path, journey: dict[str, Any]) -> None:
    other = {"id": "other", "kind": "qr_code", "code": "QR2", "persona": "advisor", "welcome": [{"after": "0m", "text": "欢迎"}]}
    base = {"id": "tip", "persona": "host", "enter": {"event": "friend_added"}, "steps": [{"id": "tip", "after": "1d", "at": "15:00", "text": "防晒要足量"}]}
    path = _playbook(tmp_path, hooks=[WELCOMED, other], journeys=[{**base, **journey}], beats=[MORNING], days=10)
    invoke("check", str(path), "--strict")


def test_two_wecom_outputs_of_one_corp_are_an_error(tmp_path: Path) -> None:
    """Every output receives every due draft: a second wecom output in one corp makes every task twice (audit 7 #2)."""
    path = _playbook(tmp_path, outputs=[{"type": "wecom", "remind_after": "2h"}, {"type": "wecom"}])
    result = invoke("check", str(path), code=1)
    assert "error: outputs[1]: outputs[0] and outputs[1] are both wecom outputs of the corp in SIYU_WECOM_CORP_ID" in result.stderr
    (problem,) = _coded(path, "wecom-output-twice")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert problem["severity"] == "error" and problem["path"] == "outputs[1]"
    assert problem["line"] == max(n for n, line in enumerate(lines, 1) if line.strip() == "- type: wecom")  # the second one's line
    assert "everything twice" in problem["message"] and "remove outputs[1]" in problem["hint"]
    # Named explicitly, the same variable is the same corp; the run refuses the playbook as check does.
    path = _playbook(tmp_path, outputs=["outbox", {"type": "wecom"}, {"type": "wecom", "corp_id_env": "SIYU_WECOM_CORP_ID", "name": "again"}])
    (problem,) = _coded(path, "wecom-output-twice")
    assert problem["path"] == "outputs[2].corp_id_env" and "outputs[1] and outputs[2]" in problem["message"]
    result = invoke("run", str(path), "--once", "--now", "2026-12-01T12:05", "--db", str(tmp_path / "s.db"), code=1)
    assert "error: outputs[2].corp_id_env: outputs[1] and outputs[2] are both wecom outputs" in result.stderr


def test_wecom_outputs_of_two_corps_are_a_warning(tmp_path: Path) -> None:
    path = _playbook(tmp_path, outputs=[{"type": "wecom"}, {"type": "wecom", "corp_id_env": "SIYU_CORP_B_ID", "secret_env": "SIYU_CORP_B_SECRET"}])
    (problem,) = _coded(path, "wecom-", code=0)
    assert problem["code"] == "wecom-two-corps" and problem["severity"] == "warning" and problem["path"] == "outputs[1].corp_id_env"
    assert "two corps (SIYU_WECOM_CORP_ID and SIYU_CORP_B_ID)" in problem["message"] and "one staff member in one corp" in problem["message"]
    assert "SIYU_CORP_B_ID" in _line_of(path, problem) and "its own playbook" in problem["hint"]
    invoke("check", str(path), "--strict", code=1)


def test_two_groups_with_one_chat_id(tmp_path: Path) -> None:
    """One WeCom chat, two groups in the playbook: the ledger would count two groups sent (audit 7 #10)."""
    groups = [GROUPS[0], {"id": "g2", "name": "阅读营2群", "persona": "host", "chat_id": GROUPS[0]["chat_id"]}, {"id": "g3", "name": "阅读营3群", "persona": "host", "chat_id": "wrOther"}]
    path = _playbook(tmp_path, groups=groups)
    result = invoke("check", str(path), code=1)
    assert f"error: groups[1].chat_id: groups g1 (groups[0]) and g2 have the same chat_id {GROUPS[0]['chat_id']}" in result.stderr
    (problem,) = _coded(path, "chat-id-shared")
    assert problem["line"] == max(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if GROUPS[0]["chat_id"] in line)
    assert "record it sent to two groups" in problem["message"] and "its own chat_id" in problem["hint"]
    invoke("check", str(_playbook(tmp_path, groups=[GROUPS[0], groups[2]])), "--strict")


@pytest.mark.parametrize(
    ("output", "field"),
    [
        pytest.param({"type": "wecom", "secret_env": ""}, "secret_env", id="empty: run would read SIYU_WECOM_SECRET without a word"),
        pytest.param({"type": "wecom", "secret_env": "my secret"}, "secret_env", id="a space: export my secret=… is not shell"),
        pytest.param({"type": "wecom", "corp_id_env": ""}, "corp_id_env", id="an empty corp variable"),
        pytest.param({"type": "wecom", "aes_key_env": "2KEY"}, "aes_key_env", id="a leading digit"),
        pytest.param({"type": "webhook", "format": "json", "url_env": "hook-url"}, "url_env", id="a webhook's too"),
    ],
)
def test_an_environment_variable_name_that_cannot_be_one(tmp_path: Path, output: dict[str, Any], field: str) -> None:
    """A *_env value is the name run reads a secret from: [A-Za-z_][A-Za-z0-9_]* (audit 7 #11)."""
    path = _playbook(tmp_path, outputs=[output])
    result = invoke("check", str(path), code=1)
    assert f"error: outputs[0].{field}: must be an environment variable name: letters, digits and '_', not starting with a digit (got {output[field]!r})" in result.stderr
    (problem,) = _problems(path)
    assert problem["path"] == f"outputs[0].{field}" and f"{field}:" in _line_of(path, problem)
    if output["type"] == "wecom":
        default = {"secret_env": "SIYU_WECOM_SECRET", "corp_id_env": "SIYU_WECOM_CORP_ID", "aes_key_env": "SIYU_WECOM_AES_KEY"}[field]
        assert problem["hint"].startswith(f"leave {field} out to read {default}, or name a variable as `export NAME=…` spells it")
    else:
        assert problem["hint"].endswith("e.g. url_env: SIYU_WEBHOOK_URL")
    invoke("check", str(_playbook(tmp_path, outputs=[{**output, field: "SIYU_CORP_B_2"}])), "--strict")


def test_a_reminder_at_once_is_an_error_and_within_minutes_a_warning(tmp_path: Path) -> None:
    """remind_after: 0m reminds a task at its first read; under 30m WeCom's 3 reminders a day ring the phone within the hour (audit 7 #12)."""
    path = _playbook(tmp_path, outputs=[{"type": "wecom", "remind_after": "0m"}])
    result = invoke("check", str(path), code=1)
    assert "error: outputs[0].remind_after: remind_after 0m would remind a task at the first pass after it was made" in result.stderr
    (problem,) = _problems(path)
    assert "remind_after:" in _line_of(path, problem) and problem["hint"] == "write e.g. 2h (the default), or 30m or more"
    path = _playbook(tmp_path, outputs=[{"type": "wecom", "remind_after": "10m"}])
    (problem,) = _coded(path, "wecom-", code=0)
    assert problem["code"] == "wecom-remind-soon" and problem["severity"] == "warning" and problem["path"] == "outputs[0].remind_after"
    assert "spend them 10m, 20m, 30m after the task is made" in problem["message"] and problem["hint"].startswith("give staff time to send: 30m or more")
    invoke("check", str(_playbook(tmp_path, outputs=[{"type": "wecom", "remind_after": "30m"}])), "--strict")


def test_a_wecom_userid_wecom_could_not_have(tmp_path: Path) -> None:
    """成员UserID: 1-64 letters, digits and _-@., starting with a letter or digit (WeCom's user/create)."""
    for userid in ("a qi", "阿栖", "-aqi", "a" * 65, ""):
        path = _playbook(tmp_path, personas=[{**STAFF[0], "wecom_userid": userid}, STAFF[1]])
        result = invoke("check", str(path), code=1)
        assert "error: personas[0].wecom_userid: must be a WeCom userid (成员UserID)" in result.stderr and f"(got {userid!r})" in result.stderr
        (problem,) = _problems(path)
        assert "wecom_userid:" in _line_of(path, problem) and "admin console" in problem["hint"]
    personas = [{**STAFF[0], "wecom_userid": "Zhou.Li-2@corp_x"}, {**STAFF[1], "wecom_userid": "a" * 64}]
    invoke("check", str(_playbook(tmp_path, personas=personas)), "--strict")


def test_a_userid_written_as_a_number_gets_a_hint_for_its_own_field(tmp_path: Path) -> None:
    path = _playbook(tmp_path, personas=[{**STAFF[0], "wecom_userid": 12345}, STAFF[1]])
    (problem,) = _problems(path)
    assert problem["path"] == "personas[0].wecom_userid" and problem["hint"] == 'quote the value to make it text, e.g. wecom_userid: "12345"'
    beats = [{**MORNING, "at": 830}]
    (problem,) = _problems(_playbook(tmp_path, beats=beats))
    assert problem["hint"] == 'write the time of day as quoted text, HH:MM, e.g. at: "08:30"'
    # An empty value and a list where text goes are not fixed by quoting.
    (empty, listed) = _problems(_playbook(tmp_path, personas=[{**STAFF[0], "name": None}, {**STAFF[1], "name": ["李"]}]))
    assert empty["hint"] == "write a value after name: (it is empty)" and listed["hint"] == "write one text value here, not a list or a mapping"


def test_two_personas_whose_userids_differ_only_in_case_are_one_staff_member(tmp_path: Path) -> None:
    personas = [STAFF[0], {**STAFF[1], "wecom_userid": STAFF[0]["wecom_userid"].upper()}]
    path = _playbook(tmp_path, personas=personas, beats=[MORNING, NOON])
    found = {p["code"]: p for p in _coded(path, "wecom-", code=0)}
    assert found["wecom-userid-shared"]["path"] == "personas[1].wecom_userid"  # WeCom's userids are unique whatever their case
