"""Audit 11 fixes (fixg): the welcome from the staff member a customer added (auditw #2), a nameless contact
said as "(no name)" (auditw #9), `outbox --reason` checked (auditg #8), did-you-means (auditg #11), and the
HTML report's two add figures labelled apart (auditg #6)."""

from __future__ import annotations

from pathlib import Path

from tests.playbooks_fixtures import query
from tests.test_serve import ADDED_AT, CORP, RECEIVED, WeComSide, contact_xml, welcoming_with
from tests.wecom_fake import WecomFake

# --- auditw #2: a channel code puts several staff behind one State --------------------------------------


def _add(welcoming, contact_id: str, userid: str, state: str = "PKG01") -> str:  # type: ignore[no-untyped-def]
    wecom = welcoming.wecom
    wecom.now = ADDED_AT.timestamp()
    code = wecom.welcome_code(userid, contact_id)
    wecom.now = RECEIVED.timestamp()
    plain = contact_xml("add_external_contact", contact_id, userid=userid, State=state, WelcomeCode=code).replace(CORP, wecom.corp_id)
    assert welcoming.served.post(WeComSide(corp=wecom.corp_id), plain).text == "success"
    return code


def test_an_add_of_another_personas_staff_through_a_hook_is_welcomed_by_the_staff_member_added(tmp_path: Path, wecom: WecomFake) -> None:
    welcoming = welcoming_with(tmp_path, wecom, "{{ persona.name }}欢迎你～")
    wecom.add_contact("wmNEW2", "王妈妈", follow=["lilaoshi"], state="PKG01")
    code = _add(welcoming, "wmNEW2", "lilaoshi")  # the hook's persona is host (aqi); the customer added lilaoshi
    [line] = welcoming.passes()
    assert line == "welcome pass for wmNEW2 (added 09:00:00): sent 1", line
    assert [(w["welcome_code"], w["text"]) for w in wecom.welcomes] == [(code, "李老师欢迎你～")]
    assert wecom.count("externalcontact/add_msg_template") == 0
    assert query(welcoming.db, "SELECT persona, state, COALESCE(reason, '') FROM drafts WHERE target = 'contact:wmNEW2'") == [("advisor", "sent", "")]


def test_an_add_of_the_hooks_own_staff_is_still_welcomed_by_the_hooks_persona(tmp_path: Path, wecom: WecomFake) -> None:
    welcoming = welcoming_with(tmp_path, wecom, "{{ persona.name }}欢迎你～")
    _add(welcoming, "wmOWN", "aqi")
    [line] = welcoming.passes()
    assert line == "welcome pass for wmOWN (added 09:00:00): sent 1", line
    assert [w["text"] for w in wecom.welcomes] == ["小丸子欢迎你～"]


def test_a_welcome_wecom_says_cannot_reach_is_logged_skipped_with_why(tmp_path: Path, wecom: WecomFake) -> None:
    welcoming = welcoming_with(tmp_path, wecom)
    wecom.not_friends.add("wmGone")  # WeCom hands the customer back in fail_list (the add's code spent, the customer gone)
    wecom.now = RECEIVED.timestamp()
    plain = contact_xml("add_external_contact", "wmGone", State="PKG01").replace(CORP, wecom.corp_id)  # no WelcomeCode
    assert welcoming.served.post(WeComSide(corp=wecom.corp_id), plain).text == "success"
    [line] = welcoming.passes()
    assert line.startswith("welcome pass for wmGone (added 09:00:00): sent 0 · skipped 1 (not_friend: WeCom handed the customer back as no friend of persona host (aqi)"), line
    assert "the hook's persona only when the add names none" in line, line
    assert query(welcoming.db, "SELECT state, reason FROM drafts WHERE target = 'contact:wmGone'") == [("skipped", "not_friend")]


# --- auditw #9: a nameless contact is said as "(no name)", not its id twice ----------------------------


def test_a_nameless_contact_in_checks_quota_message_and_in_a_preview_label_says_no_name(tmp_path: Path) -> None:
    import json

    from tests.playbooks_fixtures import NOON_1V1, add_contacts, invoke, write_playbook

    noon = {**NOON_1V1, "persona": "host", "text": "今天第{{ day }}天"}
    evening = {**noon, "id": "evening", "at": "20:00", "persona": "advisor", "audience": "已购"}
    personas = [
        {"id": "host", "name": "小丸子", "role": "班主任", "wecom_userid": "aqi"},
        {"id": "advisor", "name": "李老师", "role": "顾问", "wecom_userid": "lilaoshi"},
    ]
    path = write_playbook(tmp_path, beats=[noon, evening], days=31, personas=personas, outputs=[{"type": "wecom"}])
    db = tmp_path / "siyu.db"
    add_contacts(db, [{"contact_id": "wmA0000", "name": None, "tags": ["家长", "已购"]}, {"contact_id": "wmB0000", "name": "李爸爸", "tags": ["家长"]}])
    result = invoke("check", str(path), "--db", str(db), "--json", code=1)
    [message] = [p["message"] for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "wecom-mass-quota"]
    assert message.startswith("in 2026-12 contact wmA0000 (no name) would receive 62 company mass sends"), message
    shown = json.loads(invoke("preview", "day", "1", str(path), "--db", str(db), "--json").stdout)
    targets = sorted({row["target"] for row in shown["drafts"] if row["beat"] == "noon"})
    assert targets == ["wmA0000 (no name)", "李爸爸 (wmB0000)"], targets


# --- auditg #11: did-you-mean where siyu has the candidates -------------------------------------------


def test_a_misspelt_product_in_a_template_gets_did_you_mean(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.playbooks_fixtures import NOON_1V1, invoke, write_playbook

    monkeypatch.chdir(tmp_path)
    products = [{"id": "trial", "name": "体验课", "price": 9.9, "tier": "relationship"}, {"id": "annual", "name": "年度课", "price": 1299, "tier": "profit"}]
    noon = {**NOON_1V1, "text": "年度课{{ products.anual.price }}元"}
    evening = {**NOON_1V1, "id": "evening", "at": "20:00", "template": "evening.j2", "text": None}
    del evening["text"]
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "evening.j2").write_text("你好\n{{ products.annual.prise }} · {{ vars.cmap }}\n", encoding="utf-8")
    path = write_playbook(tmp_path, beats=[noon, evening], products=products, vars={"camp": "阅读营"})
    result = invoke("check", str(path), "--json", code=1)
    found = {p["path"]: p for p in json.loads(result.stdout)["files"][0]["problems"] if p["code"] == "template"}
    assert found["beats[0].text"]["hint"] == "did you mean 'products.annual'?", found
    assert found["beats[1].template"]["hint"] == "did you mean 'products.annual.price'?", found
    text = invoke("check", str(path), code=1).stderr
    assert "has no attribute 'anual' (did you mean 'products.annual'?)" in text, text


def test_track_with_a_misspelt_type_gets_did_you_mean(tmp_path: Path) -> None:
    from tests.playbooks_fixtures import invoke

    result = invoke("track", "oder", "--contact", "c1", "--db", str(tmp_path / "siyu.db"), code=2)
    assert "unknown event type 'oder'" in result.stderr and "did you mean 'order'?" in result.stderr, result.stderr
    assert not (tmp_path / "siyu.db").exists()  # refused before the store is opened: nothing changed


def test_contacts_list_with_a_misspelt_segment_is_a_usage_error_not_zero_contacts(tmp_path: Path) -> None:
    from tests.playbooks_fixtures import add_contacts, invoke, write_playbook

    path = write_playbook(tmp_path, segments={"parents": "家长", "unpaid": "家长 and not 已购"})
    db = str(tmp_path / "siyu.db")
    add_contacts(tmp_path / "siyu.db", [{"contact_id": "c1", "tags": ["家长"]}, {"contact_id": "c2", "tags": ["家长", "已购"]}])
    result = invoke("contacts", "list", "--segment", "unpaidd", "-p", str(path), "--db", db, code=2)
    assert "--segment 'unpaidd' is no segment and no contact has the tag 'unpaidd'" in result.stderr, result.stderr
    assert "did you mean the segment 'unpaid'?" in result.stderr and "segments: parents, unpaid" in result.stderr, result.stderr
    assert "did you mean the tag '家长'?" in invoke("contacts", "list", "--segment", "家长s", "--db", db, code=2).stderr
    # A segment, a tag someone has, a tag the playbook names that no one has yet, and an expression: listed as asked.
    assert "1 contact(s) in unpaid" in invoke("contacts", "list", "--segment", "unpaid", "-p", str(path), "--db", db).stdout
    assert "2 contact(s) in 家长" in invoke("contacts", "list", "--segment", "家长", "-p", str(path), "--db", db).stdout
    add_contacts(tmp_path / "siyu.db", [])
    none_yet = write_playbook(tmp_path / "b", segments={"buyers": "已退款"})
    assert "0 contact(s) in 已退款" in invoke("contacts", "list", "--segment", "已退款", "-p", str(none_yet), "--db", db).stdout
    assert "0 contact(s) in 家长 and 无此标签" in invoke("contacts", "list", "--segment", "家长 and 无此标签", "--db", db).stdout


# --- auditg #6: the HTML report's two add figures cannot be read as one -------------------------------


def test_the_html_reports_trend_adds_and_headline_adds_are_labelled_apart(tmp_path: Path) -> None:
    import re

    from tests.playbooks_fixtures import invoke, write_playbook
    from tests.test_funnel import add_events, at

    stages = [{"id": "carded", "label": "包裹卡", "event": "card_sent"}, {"id": "added", "label": "加微", "event": "friend_added"}]
    playbook = write_playbook(tmp_path, funnel={"stages": stages, "window": "30d"})
    db = tmp_path / "siyu.db"
    # 4 carded, 3 of them added; 2 more added without a card: the funnel counts 3 adds, the trend 5.
    events = [(f"k{i}", "card_sent", at(0)) for i in range(4)] + [(f"k{i}", "friend_added", at(1)) for i in range(3)]
    add_events(db, events + [("x1", "friend_added", at(1)), ("x2", "friend_added", at(2))])
    invoke("report", "html", str(playbook), "--db", str(db), "--out", str(tmp_path / "r.html"))
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    card = re.search(r'<div class="card[^"]*" data-figure="adds">(.*?)</div></div>', text).group(1)
    assert '<div class="label">加微 adds (funnel)</div><div class="value">3</div>' in card, card
    caption = re.search(r"<figcaption>([^<]*)<b>([^<]*)</b></figcaption><svg class=\"chart\" data-series=\"adds\"", text)
    assert caption and caption.groups() == ("全部加微 all adds (in the funnel or not) · ", "5"), caption and caption.groups()
    assert "also those who came outside the funnel, so all adds can be more than the headline's 加微 adds (funnel)" in text
