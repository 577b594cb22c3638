"""`siyu check`'s copy lint: 广告法 absolute terms and guarantees, WeChat's induced sharing, Moments and robot
formats, one staff member reaching a customer twice a day; each warning names the template, line, term and rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from siyu_cli.check._copy import shipped_words
from tests.playbooks_fixtures import NOON_1V1, invoke, write_playbook


def _beat(text: str | None = None, *, template: str | None = None, channel: str = "group", beat_id: str = "post", **extra: Any) -> dict[str, Any]:
    beat: dict[str, Any] = {"id": beat_id, "at": "10:00", "channel": channel, **extra}
    if template:
        beat["template"] = template
    else:
        beat["text"] = text
    return beat


def _check(path: Path, *args: str, code: int = 0) -> list[dict[str, Any]]:
    result = invoke("check", str(path), "--json", *args, code=code)
    return json.loads(result.stdout)["files"][0]["problems"]


def _copy(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in problems if p["code"].startswith("copy-")]


def test_a_term_in_a_template_names_file_line_term_and_rule(tmp_path: Path) -> None:
    template = "早上好\n{# 内部备注：别写“最好用” #}\n这是全网最好用的精华\n"
    path = write_playbook(tmp_path, beats=[_beat(template="posts/a.md.j2")], templates={"posts/a.md.j2": template})
    (problem,) = _copy(_check(path))
    assert problem["severity"] == "warning" and problem["code"] == "copy-absolute"
    assert problem["file"].endswith("posts/a.md.j2") and problem["line"] == 3, "the comment is never sent, so it is not linted"
    assert problem["path"] == "beats[0].template"
    assert "posts/a.md.j2" in problem["message"] and "'最'" in problem["message"] and "全网最好用" in problem["message"]
    assert "《广告法》第九条" in problem["message"]
    # Rich output names file:line too, and --strict fails on it.
    text = invoke("check", "--strict", str(path), code=1).output
    assert "posts/a.md.j2:3: warning:" in text


def test_time_order_ordinals_and_feelings_are_not_claims(tmp_path: Path) -> None:
    text = "最近天冷，最后一天报名，第一天打卡，第一名是小明，我最喜欢这个季节，最多减200"
    path = write_playbook(tmp_path, beats=[_beat(text)])
    assert _copy(_check(path)) == []


def test_a_branch_the_sample_skips_is_still_read(tmp_path: Path) -> None:
    template = "{% if day == 99 %}\n国家级专家亲授\n{% endif %}\n今天见"
    path = write_playbook(tmp_path, beats=[_beat(template="t.md.j2")], templates={"t.md.j2": template})
    (problem,) = _copy(_check(path))
    assert problem["line"] == 2 and "国家级" in problem["message"]


def test_a_term_from_vars_points_at_the_playbook_value(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[_beat("今天推荐：{{ vars.claim }}")], vars={"brand": "禾屿", "claim": "顶级修护，效果看得见"})
    (problem,) = _copy(_check(path))
    assert problem["path"] == "vars.claim" and problem["file"].endswith("playbook.yaml") and problem["line"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert "顶级" in lines[problem["line"] - 1]
    assert "shows '顶级'" in problem["message"]


def test_an_inline_block_text_gives_the_line_of_the_term(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    text = (
        "siyu: 1\nid: camp\ntitle: 测试营\nstart: 2026-12-01\ndays: 2\npersonas:\n  - {id: host, name: 小丸子}\ngroups:\n  - {id: g1, name: 一群}\n"
        "beats:\n  - id: note\n    at: '11:00'\n    channel: group\n    text: |\n      第一段\n      本课程保过，不过退款\n"
    )
    path.write_text(text, encoding="utf-8")
    problems = _copy(_check(path))
    assert {p["code"] for p in problems} == {"copy-guarantee-education"}
    term_line = text.splitlines().index("      本课程保过，不过退款") + 1
    assert {p["line"] for p in problems} == {term_line}
    assert sorted(p["message"].split("'")[1] for p in problems) == ["不过退款", "保过"]
    assert all("《广告法》第二十四条" in p["message"] for p in problems)


@pytest.mark.parametrize(
    ("text", "code", "rule"),
    [
        ("转发朋友圈集赞38个，到店领取面膜", "copy-sharing", "微信外部链接内容管理规范"),
        ("邀请好友解锁第二课", "copy-sharing", "分享后方可进行下一步操作"),
        ("转发领取：7天阅读营", "copy-sharing", "诱导分享"),
        ("三个疗程根治痘痘", "copy-guarantee-health", "第十七条"),
        ("这款精华无副作用，孕妇可用", "copy-guarantee-health", "安全性的断言"),
        ("100%有效，无效退款", "copy-absolute", "第九条"),
    ],
)
def test_each_category_cites_its_rule(tmp_path: Path, text: str, code: str, rule: str) -> None:
    path = write_playbook(tmp_path, beats=[_beat(text)])
    problems = _copy(_check(path))
    assert problems and any(p["code"] == code and rule in p["message"] for p in problems), problems


def test_the_playbook_adds_words_and_allows_phrases(tmp_path: Path) -> None:
    lint = {"words": ["秒杀全网", {"term": "吊打", "category": "absolute", "why": "贬低同行", "source": "《广告法》第十三条"}], "allow": ["最用心", "唯一"]}
    text = "秒杀全网！吊打同类。本周最用心的晒单，唯一指定"
    path = write_playbook(tmp_path, beats=[_beat(text)], lint=lint)
    found = {(p["code"], p["message"].split("'")[1]) for p in _copy(_check(path))}
    assert found == {("copy-playbook", "秒杀全网"), ("copy-absolute", "吊打")}


def test_moments_images_and_robot_size(tmp_path: Path) -> None:
    images = "".join(f"![图{n}](https://example.com/{n}.jpg)\n" for n in range(10))
    long = "今天的早分享" + "。" * 1500  # 1,506 characters, 4,518 bytes of UTF-8
    beats = [_beat(images, channel="moments", persona="host", beat_id="gallery"), _beat(long, beat_id="long")]
    path = write_playbook(tmp_path, beats=beats)
    codes = {p["code"]: p for p in _check(path)}
    assert "10 images" in codes["moments-images"]["message"] and codes["moments-images"]["path"] == "beats[0].text"
    assert "robot-size" not in codes, "only a playbook that posts through a WeCom robot is held to its size"
    path = write_playbook(tmp_path, beats=beats, outputs=[{"type": "webhook", "format": "wecom", "url_env": "SIYU_WECOM_WEBHOOK"}])
    robot = [p for p in _check(path) if p["code"] == "robot-size"]
    assert len(robot) == 1 and "4,518 bytes" in robot[0]["message"] and "4,096" in robot[0]["message"] and robot[0]["path"] == "beats[1].text"


def test_one_staff_member_reaching_a_customer_twice_a_day(tmp_path: Path) -> None:
    twice = {**NOON_1V1, "at": ["09:00", "19:30"]}
    path = write_playbook(tmp_path, beats=[twice])
    (problem,) = [p for p in _check(path) if p["code"] == "twice-a-day"]
    assert problem["path"] == "beats[0].at" and "once a day" in problem["message"]
    # Two beats of one persona whose audiences can hold one contact; exclusive audiences do not.
    evening = {**NOON_1V1, "id": "evening", "at": "20:00", "audience": "家长 and not 已购"}
    paid = {**NOON_1V1, "id": "paid", "at": "20:00", "audience": "已购"}
    path = write_playbook(tmp_path, beats=[NOON_1V1, evening])
    assert [p["path"] for p in _check(path) if p["code"] == "twice-a-day"] == ["beats[1].days"]
    path = write_playbook(tmp_path, beats=[{**NOON_1V1, "audience": "已购 and 家长"}, {**evening}])
    assert not [p for p in _check(path) if p["code"] == "twice-a-day"]
    path = write_playbook(tmp_path, beats=[{**NOON_1V1, "persona": "host"}, {**paid, "persona": "advisor"}])
    assert not [p for p in _check(path) if p["code"] == "twice-a-day"], "another staff member may"


def test_a_beat_with_no_persona_meets_a_persona_beat_for_that_personas_own_contacts(tmp_path: Path) -> None:
    # noon names no persona: it goes to advisor's contacts (account wx_adv_02) from advisor, as run sends it.
    eve = {**NOON_1V1, "id": "eve", "at": "20:00", "days": "1", "persona": "advisor", "text": "晚上好"}
    path = write_playbook(tmp_path, beats=[NOON_1V1, eve])
    (problem,) = [p for p in _check(path) if p["code"] == "twice-a-day"]
    assert problem["severity"] == "warning" and problem["path"] == "beats[1].days"
    assert "beats noon and eve can both reach one contact on day(s) 1 from persona advisor, to contacts who added wx_adv_02" in problem["message"], problem
    assert "noon names no persona" in problem["message"]
    # Two beats with no persona: each contact gets both from the account it added.
    path = write_playbook(tmp_path, beats=[NOON_1V1, {**eve, "persona": None}])
    (problem,) = [p for p in _check(path) if p["code"] == "twice-a-day"]
    assert "from the persona whose account the contact added (neither noon nor eve names a persona" in problem["message"], problem
    # A persona no contact added from the beat's fallback (no account, no wecom_userid) meets nothing.
    personas = [{"id": "host", "name": "小丸子", "account": "wx_host_01"}, {"id": "advisor", "name": "李老师"}]
    path = write_playbook(tmp_path, beats=[NOON_1V1, eve], personas=personas)
    assert not [p for p in _check(path) if p["code"] == "twice-a-day"]


def test_journey_steps_on_one_day_and_welcomes_that_do_not_count(tmp_path: Path) -> None:
    journey = {
        "id": "ladder",
        "enter": {"event": "friend_added"},
        "steps": [{"id": "ask", "after": "1h", "text": "您好"}, {"id": "pain", "after": "3h", "text": "再聊"}, {"id": "close", "after": "2d", "text": "下单"}],
    }
    hooks = [{"id": "card", "kind": "package_card", "code": "C1", "welcome": [{"after": "0m", "text": "欢迎"}, {"after": "2h", "text": "领券"}]}]
    path = write_playbook(tmp_path, journeys=[journey], hooks=hooks)
    found = [p for p in _check(path) if p["code"] == "twice-a-day"]
    assert [p["path"] for p in found] == ["journeys[0].steps", "journeys[0].steps[0]", "journeys[0].steps[1]"], found
    assert "ask, pain" in found[0]["message"]
    # The second welcome message (a mass send, at 12:00) meets ask and pain; the first (welcome API) meets nothing.
    assert "step ask of journey ladder and welcome message 2 of hook card" in found[1]["message"] and "(11:00, 12:00)" in found[1]["message"]
    assert not [p for p in found if "welcome message 1" in p["message"]]


def test_the_shipped_list_is_data_with_its_sources() -> None:
    words = shipped_words()
    assert {w.category for w in words} == {"absolute", "guarantee-education", "guarantee-health", "sharing"}
    assert all(w.term and w.why and w.source for w in words)
    assert all("广告法" in w.source or "化妆品监督管理条例" in w.source or "微信" in w.source for w in words)
    assert {"最", "第一", "国家级", "顶级", "100%有效", "集赞", "转发领取", "邀请好友解锁"} <= {w.term for w in words}


def test_full_width_traditional_and_spelt_out_forms_are_found_and_quoted_as_written(tmp_path: Path) -> None:
    text = "全网100％有效！百分之百有效，頂級原料，國家級认证，行业首个，全国首家，ＮＯ．１"
    path = write_playbook(tmp_path, beats=[_beat(text), _beat("顶級配方", beat_id="mixed")])
    found = sorted(p["message"].split(": ", 1)[1].split(" in “")[0] for p in _copy(_check(path)))
    assert found == sorted([
        "'100％有效' (100%有效)",
        "'百分之百有效'",
        "'頂級' (顶级)",
        "'國家級' (国家级)",
        "'首个'",
        "'首家'",
        "'ＮＯ．１' (NO.1)",
        "'顶級' (顶级)",
    ])
    # A playbook's own term and allowed phrase are read the same way.
    path = write_playbook(tmp_path, beats=[_beat("秒殺全網，全國首家")], lint={"words": ["秒杀全网"], "allow": ["全国首家"]})
    assert [p["message"].split("'")[1] for p in _copy(_check(path))] == ["秒殺全網"]


def test_editions_advice_and_idioms_are_not_claims(tmp_path: Path) -> None:
    text = "第一届护肤节，最先到的10位有礼，这款最好在睡前用，万能的朋友圈帮帮忙，今天首个打卡的是小明，最高立减50元"
    path = write_playbook(tmp_path, beats=[_beat(text)])
    assert _copy(_check(path)) == []
    # 万能 about the product is still an effect claim; 最好 as "the best" is still one.
    path = write_playbook(tmp_path, beats=[_beat("万能修复霜，最好的精华")])
    assert [p["message"].split("'")[1] for p in _copy(_check(path))] == ["万能", "最"]


def _found(problems: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each copy warning as (code, the term as the message quotes it: as written, then the list's form when it differs)."""
    return [(p["code"], p["message"].split(": ", 1)[1].split(" in “")[0]) for p in _copy(problems)]


@pytest.mark.parametrize(
    ("text", "code", "term"),
    [
        ("最先进的技术", "copy-absolute", "'最先进'"),
        ("全网销量第一名", "copy-absolute", "'销量第一'"),
        ("全网销量第1", "copy-absolute", "'销量第1' (销量第一)"),
        ("我们是第1品牌", "copy-absolute", "'第1' (第一)"),
        ("100% 有效", "copy-absolute", "'100% 有效' (100%有效)"),
        ("TOP 1 品牌", "copy-absolute", "'TOP 1' (TOP1)"),
        ("No. 1 的口碑", "copy-absolute", "'No. 1' (NO.1)"),
        ("全网首发", "copy-absolute", "'全网首发'"),
        ("国货天花板", "copy-absolute", "'天花板'"),
        ("保证孩子成绩提高20分", "copy-guarantee-education", "'保证孩子成绩提高' (保证…提高)"),
        ("一次通过，不过全额退款", "copy-guarantee-education", "'不过全额退'"),
        ("瘦了永不反弹", "copy-guarantee-health", "'不反弹'"),
        ("7天见效", "copy-guarantee-health", "'7天见效' ({n}天…见效)"),
        ("三天美白", "copy-guarantee-health", "'三天美白' ({n}天…美白)"),
        ("医生推荐的面霜", "copy-guarantee-health", "'医生推荐'"),
        ("零添加酱油", "copy-guarantee-health", "'零添加'"),
        ("转发这条朋友圈截图给我领红包", "copy-sharing", "'转发这条朋友圈' (转发…朋友圈)"),
        ("分享给3个好友即可领取", "copy-sharing", "'分享给3个好友' (分享给…好友)"),
    ],
)
def test_claims_the_audit_found_are_warned(tmp_path: Path, text: str, code: str, term: str) -> None:
    path = write_playbook(tmp_path, beats=[_beat(text)])
    assert _found(_check(path)) == [(code, term)]


def test_ordinals_numbers_titles_and_asks_are_not_claims(tmp_path: Path) -> None:
    texts = [
        "最先到的10位送书签", "第一波福利", "第一份礼物", "前排第一排", "订单号No.12345", "TOP10榜单", "心理治疗师林老师今晚分享",
        "绝对不会打扰你", "唯一的要求是每天打卡", "排行榜第1名送阅读器", "读《小王子》第1-3章", "第10名也有奖", "今天美白小课堂开讲",
        "第3天美白打卡", "全网第一时间上新", "首发新品", "冠军讲师带读", "专家推荐书单", "分享一个好消息",
    ]
    path = write_playbook(tmp_path, beats=[_beat(text, beat_id=f"b{n}") for n, text in enumerate(texts)])
    assert _found(_check(path)) == []


def test_a_playbooks_own_term_may_leave_a_gap_or_take_a_number(tmp_path: Path) -> None:
    lint = {"words": ["包…满意", {"term": "{n}天…瘦", "category": "guarantee-health", "why": "a weight loss by a date", "source": "《广告法》第二十八条"}]}
    path = write_playbook(tmp_path, beats=[_beat("包你100%满意，21天轻松瘦10斤"), _beat("包邮，满意再付，每天瘦身操", beat_id="fine")], lint=lint)
    assert _found(_check(path)) == [("copy-playbook", "'包你100%满意' (包…满意)"), ("copy-guarantee-health", "'21天轻松瘦' ({n}天…瘦)")]


def test_included_templates_are_read_whole_at_their_own_lines(tmp_path: Path) -> None:
    templates = {
        "posts/a.md.j2": "早上好\n{% include 'parts/footer.md.j2' %}\n",
        "posts/b.md.j2": "晚上好\n{% include 'parts/footer.md.j2' %}\n",
        "parts/footer.md.j2": "—— 国家级品质\n{% if day == 99 %}{% include 'parts/deep.md.j2' %}{% endif %}\n",
        "parts/deep.md.j2": "\n绝对有效\n",
    }
    beats = [_beat(template="posts/a.md.j2"), _beat(template="posts/b.md.j2", beat_id="evening", at="20:00")]
    problems = _copy(_check(write_playbook(tmp_path, beats=beats, templates=templates)))
    found = sorted((Path(p["file"]).relative_to(tmp_path).as_posix(), p["line"], p["message"].split("'")[1]) for p in problems)
    assert found == [("parts/deep.md.j2", 2, "绝对"), ("parts/footer.md.j2", 1, "国家级")], (
        "a footer two beats include is one warning, at its own line; an include in a branch the sample skips is read too"
    )
    footer = next(p for p in problems if "国家级" in p["message"])
    assert footer["path"] == "beats[0].template" and footer["message"].startswith("parts/footer.md.j2 (included by posts/a.md.j2): '国家级'")


def test_an_undefined_name_in_an_include_is_reported_at_the_included_line(tmp_path: Path) -> None:
    templates = {"posts/a.md.j2": "开头\n{% include 'parts/footer.md.j2' %}\n", "parts/footer.md.j2": "第一行\n第二行\n{{ nosuch }}\n"}
    problems = _check(write_playbook(tmp_path, beats=[_beat(template="posts/a.md.j2")], templates=templates), code=1)
    (error,) = [p for p in problems if p["severity"] == "error"]
    assert error["file"].endswith("parts/footer.md.j2") and error["line"] == 3 and "'nosuch' is undefined" in error["message"]
    assert error["path"] == "beats[0].template"


@pytest.mark.parametrize(
    ("lint", "path"),
    [({"words": [""]}, "lint.words[0]"), ({"words": [{"term": ""}]}, "lint.words[0].term"), ({"allow": [""]}, "lint.allow[0]")],
)
def test_an_empty_lint_term_is_one_error(tmp_path: Path, lint: dict[str, Any], path: str) -> None:
    playbook = write_playbook(tmp_path, beats=[_beat("全网最好的")], lint=lint)
    (problem,) = _check(playbook, code=1)
    assert problem["severity"] == "error" and problem["path"] == path and "at least 1 character" in problem["message"]


def test_more_absolute_and_medical_claims_are_found_and_their_ordinary_uses_pass(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, beats=[_beat("绝无仅有的好物，效果无敌，史无前例！独家配方，医美级修复")])
    assert [p["message"].split("'")[1] for p in _copy(_check(path))] == ["绝无仅有", "无敌", "史无前例", "独家", "医美级"]
    path = write_playbook(tmp_path, beats=[_beat("群友独家福利今晚领，最好的老师就是兴趣")])
    assert _copy(_check(path)) == []
