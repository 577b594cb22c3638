"""`siyu report html`: one self-contained file a manager reads on a phone (390 px) and a desktop (1280 px).

The rendering checks open the report in headless Chromium (Debian's `chromium`) at both widths.
A copy of the report with a measuring script (the report itself has none) is dumped with
`--dump-dom`: the script records every element's box, the funnel's bars, the headline cards and
how the body's font renders Chinese; the unmodified report's screenshot is decoded to check that
each funnel bar is painted where the DOM says it is. `.ci/run` installs Chromium and a CJK font
(fonts-noto-cjk); elsewhere these tests skip and say so, unless SIYU_REQUIRE_CHROMIUM is set (as
`.ci/run` sets it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks_fixtures import run_siyu, write_playbook
from tests.test_funnel import add_drafts, add_events, at

REPO = Path(__file__).resolve().parent.parent
STARTER = REPO / "playbooks" / "ecommerce-card.yaml"
FUNNEL_BLUE = (0x25, 0x63, 0xEB)
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
WIDTHS = (390, 1280)
SECTIONS = (
    "headline", "next-list", "trend", "funnel-chart", "funnel-table", "hook-comparison", "hook-chart", "hook-verdicts", "hook-table",
    "touch-table", "sop-heatmap", "sop-table", "timeline",
)
CJK = "包裹卡加微开单率复购"
MISSING = "\u0378" * len(CJK)  # an unassigned code point: every font draws its missing-glyph box (tofu)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e-commerce starter after 120 simulated contacts and the whole campaign on the fast clock; the first week marked done."""
    folder = tmp_path_factory.mktemp("html")
    db = str(folder / "siyu.db")
    for args in (
        ("simulate", str(STARTER), "--contacts", "120", "--seed", "3", "--db", db),
        ("run", str(STARTER), "--clock", "fast", "--db", db, "--outbox", str(folder / "outbox")),
    ):
        done = run_siyu(folder, *args)
        assert done.returncode == 0, done.stderr + done.stdout
    listed = run_siyu(folder, "outbox", str(STARTER), "--db", db, "--json", "--limit", "5000")
    assert listed.returncode == 0, listed.stderr
    drafts = json.loads(listed.stdout)
    early = [d["draft_id"] for d in drafts if d["state"] == "sent" and d["due_local"] < "2026-12-08"]
    assert early and len(early) < len(drafts)
    marked = run_siyu(folder, "outbox", "done", *early, "--by", "阿栖", "--db", db)
    assert marked.returncode == 0, marked.stderr
    with sqlite3.connect(db) as conn:  # the longest end a journey step shows, as a capped account leaves it
        skipped = conn.execute(
            "UPDATE drafts SET state = 'skipped', reason = 'limit:private_per_account_per_day', done_at = NULL "
            "WHERE draft_id IN (SELECT draft_id FROM drafts WHERE channel IN ('journey', 'welcome') LIMIT 3)"
        ).rowcount
    assert skipped
    done = run_siyu(folder, "report", "html", "-p", str(STARTER), "--db", db, "--out", str(folder / "report.html"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("wrote ") and "Headline" in done.stdout and "SOP execution" in done.stdout
    return folder / "report.html"


def _section(text: str, marker: str, end: str = "</table>") -> str:
    start = text.index(marker)
    return text[start : text.index(end, start)]


def test_report_is_one_file_that_fetches_nothing(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text and 'name="viewport"' in text
    assert not re.search(r"<(script|link|img|iframe)\b", text), "the report must not load anything"
    assert not re.search(r"src\s*=", text)
    assert all(link.startswith("#") for link in re.findall(r'href="([^"]*)"', text)), "links only within the page"
    assert not re.search(r"url\(", text) and "@import" not in text and "@font-face" not in text
    assert re.findall(r"https?://[^\s\"']+", text) == ["http://www.w3.org/2000/svg"] * text.count("<svg")
    for section in SECTIONS:
        assert f'id="{section}"' in text, section
    assert "栖山旗舰店" in text and "包裹卡发出 carded" in text
    assert "Includes 120 synthetic contacts" in text
    hooks = _section(text, 'id="hook-table"')
    first = yaml.safe_load(STARTER.read_text(encoding="utf-8"))["hooks"][0]["id"]
    assert f'{first} <span class="note">(baseline)</span>' in hooks, "the first hook of the playbook is the baseline"
    assert re.search(r"lift [+-]\d+\.\d pt", hooks) and re.search(r"(better|worse|no significant difference)</span>", hooks)
    assert "<th>actual</th>" in text and "live : group : 1v1" in text
    assert '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif' in text
    assert not report.with_name("report.html.partial").exists()


def test_headline_figures_come_first_against_their_targets(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.index('id="headline"') < text.index('id="next-list"') < text.index('id="trend"') < text.index('id="funnel-chart"')
    cards = dict(re.findall(r'<div class="card[^"]*" data-figure="(\w+)"(.*?)</div></div>', text))
    assert list(cards) == ["cards", "adds", "first_order_rate", "gmv", "aov", "first_repeat"]
    # 加微 is held against `added: 0.15`, 开单率 against `ordered: {rate: 0.10, of: added}`: the funnel's own held rates.
    funnel = _section(text, 'id="funnel-table"')
    added = re.search(r"加微 added</td><td>(\d+)</td>", funnel)
    assert added and f'<div class="value">{int(added.group(1)):,}</div>' in cards["adds"]
    assert "target 15.0%" in cards["adds"] and re.search(r"data-met=\"(true|false)\"", cards["adds"])
    assert re.search(r"target 10\.0% of added · (✓ met|✗ not met) [+-]\d+\.\d pt$", cards["first_order_rate"])
    assert "no target" in cards["gmv"] and "¥" in cards["gmv"] and "GMV per buyer" in cards["aov"]
    assert re.search(r'<div class="value">\d+ : \d+</div>', cards["first_repeat"])


def test_the_sop_is_a_heatmap_with_the_table_folded_below(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    heat = _section(text, 'id="sop-heatmap"')
    assert 'data-column="moments"' in heat and 'data-column="welcome:card-repurchase"' in heat and "欢迎语 回购卡" in heat
    rates = [float(r) for r in re.findall(r'data-rate="([\d.]+)"', heat)]
    assert 1.0 in rates and 0.0 in rates, "the first week was marked done, the rest was not"
    assert re.search(r'<tr data-day="1"><th class="day">1</th>.*?data-rate="1.000"', heat)
    folded = text[text.index("<details><summary>Every day, beat and persona") :]
    assert folded.index('id="sop-table"') < folded.index("</details>")
    assert text.index('id="sop-heatmap"') < text.index('id="sop-table"')
    steps = _section(text, 'id="next-list"', "</ol>")
    assert 'data-kind="execution"' in steps and "Beats executed below 80%" in steps


def test_report_html_errors_are_clear(tmp_path: Path) -> None:
    done = run_siyu(tmp_path, "report", "html", "-p", str(STARTER), "--db", str(tmp_path / "siyu.db"), "--out", str(tmp_path / "no" / "r.html"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    missing = run_siyu(tmp_path, "report", "html", "-p", str(STARTER), "--db", str(tmp_path / "siyu.db"))
    assert missing.returncode == 2 and "--out" in missing.stderr


def test_ab_section_and_next_steps_name_the_variant_that_loses(tmp_path: Path) -> None:
    """100 contacts each: a orders 45, holdout 30, b 12: a wins, b loses against the holdout (p < 0.05 both)."""
    db = tmp_path / "siyu.db"
    close = {
        "id": "close", "title": "逼单", "at": "20:00", "days": "1", "channel": "private", "audience": "parents", "persona": "host",
        "variants": {"a": {"weight": 45, "text": "A"}, "b": {"weight": 45, "text": "B"}, "holdout": {"weight": 10}},
    }
    stages = [{"id": "added", "label": "加微", "event": "friend_added"}, {"id": "ordered", "label": "开单", "event": "order"}]
    playbook = write_playbook(tmp_path, beats=[close], funnel={"stages": stages, "targets": {"ordered": 0.5}, "window": "30d"})
    events, drafts = [], []
    for variant, orders in (("a", 45), ("b", 12), ("holdout", 30)):
        for i in range(100):
            cid = f"{variant}{i}"
            events.append((cid, "friend_added", at(0)))
            if i < orders:
                events.append((cid, "order", at(1)))
            holdout = variant == "holdout"
            drafts.append({"target": f"contact:{cid}", "beat": "close", "variant": variant, "state": "skipped" if holdout else "sent", "reason": "holdout" if holdout else None})
    add_events(db, events)
    add_drafts(db, drafts)
    done = run_siyu(tmp_path, "report", "html", str(playbook), "--db", str(db), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    ab = _section(text, '<section id="ab-test">', "</section>")
    verdicts = _section(ab, 'id="variant-verdicts"', "</ul>")
    assert re.search(r'data-group="a"><b>a</b> vs holdout 对照组: <span class="verdict">better at ordered</span>', verdicts)
    assert re.search(r'data-group="b"><b>b</b> vs holdout 对照组: <span class="verdict">worse at ordered</span>', verdicts)
    assert "开单 +15.0 pt better" in verdicts and "开单 -18.0 pt worse" in verdicts
    assert 'holdout 对照组 <span class="note">(baseline)</span>' in _section(ab, 'id="variant-table"')
    steps = _section(text, 'id="next-list"', "</ol>")
    assert "开单 ordered is furthest below its target: 29.0% of added against 50.0%" in steps
    assert "Variant b loses to holdout 对照组 at 开单 ordered: 12.0% against 30.0%" in steps
    assert "Variant holdout 对照组 loses to a at 开单 ordered: 30.0% against 45.0%" in steps
    assert steps.index('data-kind="stage"') < steps.index('data-kind="variant"')


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) into rows of bytes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(data)
    stride = width * step
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - step] if i >= step else 0
            up = previous[i]
            corner = previous[i - step] if i >= step else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(row[c] for i in range(0, stride, step) for c in range(i, i + 3)))
        previous = row
    return width, height, rows


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless, sandbox off (CI runs as root), every host name unresolvable (no network); a file may read its frame's file."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
        "--host-resolver-rules=MAP * ~NOTFOUND", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)



PROBE = """<script>
(() => {
  const W = document.documentElement.clientWidth;
  const box = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top + scrollY, bottom: r.bottom + scrollY, width: r.width, height: r.height}; };
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.parentElement.closest(".scroll")) continue;  // a .scroll box scrolls on its own; the box itself is checked
    const r = el.getBoundingClientRect();
    if ((r.width || r.height) && (r.left < -0.5 || r.right > W + 0.5)) wide.push(`${el.tagName} #${el.id} .${el.className.baseVal ?? el.className} ${r.left}..${r.right}`);
  }
  const font = getComputedStyle(document.body).fontFamily;
  const width = (text) => {
    const span = document.createElement("span");
    span.style.cssText = "position:absolute;white-space:pre;font-size:32px";
    span.textContent = text;
    document.body.appendChild(span);
    const found = span.getBoundingClientRect().width;
    span.remove();
    return found;
  };
  const glyph = (text) => {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 48;
    const ctx = canvas.getContext("2d");
    ctx.font = `32px ${font}`;
    ctx.fillText(text, 4, 38);
    return Array.from(ctx.getImageData(0, 0, 48, 48).data.filter((_, i) => i % 4 === 3)).join(",");
  };
  const shapes = [..."包裹卡加", "\\u0378"].map(glyph);
  const result = {
    width: W, scrollWidth: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight, wide, font,
    bars: [...document.querySelectorAll("#funnel-chart rect.bar")].map((b) => ({stage: b.dataset.stage, count: Number(b.dataset.count), ...box(b)})),
    cards: [...document.querySelectorAll("#headline .card")].map((c) => ({figure: c.dataset.figure, met: c.dataset.met ?? null, target: c.querySelector(".target").textContent, ...box(c)})),
    scrolls: [...document.querySelectorAll(".scroll")].map(box),
    journeys: [...document.querySelectorAll("table.journey")].map((t) => Boolean(t.parentElement.closest(".scroll"))),
    cjk: width("__CJK__"), missing: width("__MISSING__"), distinct: new Set(shapes).size, inked: shapes.map((s) => s.split(",").filter((a) => a !== "0").length),
  };
  const out = parent.document.createElement("pre");  // the harness around this frame: --dump-dom prints it
  out.id = "probe-out";
  out.textContent = JSON.stringify(result);
  parent.document.body.appendChild(out);
})();
</script>"""


def _require_chromium() -> None:
    if CHROMIUM is None:
        if os.environ.get("SIYU_REQUIRE_CHROMIUM"):
            pytest.fail("SIYU_REQUIRE_CHROMIUM is set (as .ci/run sets it) but chromium is not on PATH")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")


FRAME = 30000  # the frame's height: taller than the report, so the frame never scrolls and both loads lay out alike


def _framed(page: Path, width: int) -> Path:
    """A harness page showing `page` in a frame exactly `width` px wide: headless Chromium's window is at least 500 px."""
    harness = page.with_name(f"frame-{page.stem}.html")
    harness.write_text(
        f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{page.name}" scrolling="no" '
        f'style="display:block;border:0;width:{width}px;height:{FRAME}px"></iframe></body></html>',
        encoding="utf-8",
    )
    return harness


@pytest.fixture(scope="module", params=WIDTHS, ids=lambda w: f"{w}px")
def probed(request: pytest.FixtureRequest, report: Path) -> dict[str, Any]:
    """The measuring copy dumped at one width, and the untouched report's screenshot down to below the funnel."""
    _require_chromium()
    width = request.param
    copy = report.with_name(f"probe-{width}.html")
    script = PROBE.replace("__CJK__", CJK).replace("__MISSING__", MISSING)
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    window = max(width, 500)
    dom = _chromium(f"--window-size={window},900", "--dump-dom", _framed(copy, width).as_uri())
    assert dom.returncode == 0, dom.stderr
    found = re.search(r'<pre id="probe-out">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    shot = report.with_name(f"shot-{width}.png")
    height = int(max(b["bottom"] for b in result["bars"])) + 40
    shown = report.with_name(f"shown-{width}.html")
    shutil.copy(report, shown)
    taken = _chromium(f"--window-size={window},{height}", f"--screenshot={shot}", _framed(shown, width).as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    result["png"] = shot
    result["viewport"] = width
    return result


def test_nothing_is_wider_than_the_viewport(probed: dict[str, Any]) -> None:
    viewport = probed["viewport"]
    assert probed["width"] == viewport
    assert probed["scrollWidth"] <= viewport, "the page scrolls sideways"
    assert probed["wide"] == [], f"wider than {viewport} px"
    assert probed["scrolls"] and all(b["right"] <= viewport + 0.5 for b in probed["scrolls"])
    assert probed["journeys"] and all(probed["journeys"]), "every journey table sits in a .scroll box"


def test_every_funnel_bar_is_visible_and_painted(probed: dict[str, Any]) -> None:
    viewport = probed["viewport"]
    bars = probed["bars"]
    assert [b["stage"] for b in bars] == ["carded", "added", "joined", "ordered", "repurchased"]
    assert sum(1 for b in bars if b["count"]) >= 4
    for bar in bars:
        assert bar["height"] >= 10 and bar["left"] >= 0 and bar["right"] <= viewport, bar
        assert bar["width"] >= 2 or not bar["count"], f"{bar['stage']} has contacts but no visible bar"
    top = bars[0]
    assert top["width"] >= min(viewport - 40, 500) * 0.9, "the top bar spans its box"
    width, height, rows = _pixels(probed["png"].read_bytes())
    assert width == max(viewport, 500)
    for bar in (b for b in bars if b["count"]):
        row = rows[int((bar["top"] + bar["bottom"]) / 2)]
        inside = range(int(bar["left"]) + 1, max(int(bar["right"]) - 1, int(bar["left"]) + 2))
        blue = sum(1 for x in inside if all(abs(row[3 * x + c] - FUNNEL_BLUE[c]) <= 24 for c in range(3)))
        assert blue >= max(1, 0.6 * len(inside)), f"{bar['stage']}: {blue} blue pixels of {len(inside)} at {viewport} px"


def test_headline_cards_show_their_targets_at_every_width(probed: dict[str, Any]) -> None:
    cards = {c["figure"]: c for c in probed["cards"]}
    assert set(cards) == {"cards", "adds", "first_order_rate", "gmv", "aov", "first_repeat"}
    for key in ("adds", "first_order_rate"):
        assert cards[key]["met"] in ("true", "false") and cards[key]["target"].startswith("target "), cards[key]
    assert all(c["right"] <= probed["viewport"] and c["width"] > 100 for c in cards.values())
    if probed["viewport"] == 390:
        assert cards["cards"]["top"] == cards["adds"]["top"] < cards["first_order_rate"]["top"], "two cards a row on a phone"
    else:
        assert len({c["top"] for c in cards.values()}) == 1, "one row on a desktop"


def test_chinese_renders_as_glyphs_not_boxes(probed: dict[str, Any]) -> None:
    has_font = shutil.which("fc-list") and subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout.strip()
    if not has_font and not os.environ.get("SIYU_REQUIRE_CHROMIUM"):
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk); .ci/run installs it")
    assert "PingFang SC" in probed["font"] and "Noto Sans CJK SC" in probed["font"]
    # Each CJK glyph is drawn full width (1 em of 32 px), with ink, and unlike the box a missing glyph draws:
    # were they tofu, 包, 裹, 卡 and 加 would all be that same box, whatever its width.
    assert probed["cjk"] >= 0.9 * 32 * len(CJK) and probed["missing"] > 0, (probed["cjk"], probed["missing"])
    assert all(probed["inked"]), probed["inked"]
    assert probed["distinct"] == 5, "包, 裹, 卡, 加 and the missing-glyph box all look different"


def test_no_card_stage_one_entry_card_ab_skips_stages_before_the_test_and_a_miss_within_noise_comes_last(tmp_path: Path) -> None:
    """1,500 contacts, all joined before their first A/B draft; 开单 misses its target by 0.1 pt (noise), 复购 by far."""
    db = tmp_path / "siyu.db"
    close = {
        "id": "close", "title": "逼单", "at": "20:00", "days": "1", "channel": "private", "audience": "parents", "persona": "host",
        "variants": {"a": {"weight": 50, "text": "A"}, "holdout": {"weight": 50}},
    }
    stages = [
        {"id": "added", "label": "加微", "event": "friend_added"},
        {"id": "joined", "label": "进群", "event": "group_joined"},
        {"id": "ordered", "label": "开单", "event": "order"},
        {"id": "repurchased", "label": "复购", "event": "order", "nth": 2},
    ]
    targets = {"ordered": {"rate": 0.301, "of": "added"}, "repurchased": {"rate": 0.2, "of": "ordered"}}
    playbook = write_playbook(tmp_path, beats=[close], funnel={"stages": stages, "targets": targets, "window": "30d"})
    events, drafts = [], []
    for variant in ("a", "holdout"):
        for i in range(750):
            cid = f"{variant}{i}"
            events += [(cid, "friend_added", at(0)), (cid, "group_joined", at(0, hours=1))]
            events += [(cid, "order", at(2))] * (i < 225) + [(cid, "order", at(3))] * (i < 15)
            holdout = variant == "holdout"
            drafts.append({"target": f"contact:{cid}", "beat": "close", "variant": variant, "occurrence_at": at(1), "state": "skipped" if holdout else "sent", "reason": "holdout" if holdout else None})
    add_events(db, events)
    add_drafts(db, drafts)
    done = run_siyu(tmp_path, "report", "html", str(playbook), "--db", str(db), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "r.html").read_text(encoding="utf-8")

    cards = re.findall(r'data-figure="(\w+)"', _section(text, 'id="headline"', '<div id="trend"'))
    assert cards.count("adds") == 1 and "entered" not in cards, "the entry stage is the adds stage: one card"

    ab = _section(text, '<section id="ab-test">', "</section>")
    row = re.search(r'<tr data-group="a">(.*?)</tr>', _section(ab, 'id="variant-table"')).group(1)
    joined, ordered = re.findall(r"<td>(.*?)</td>", row)[1:3]
    assert "750 · 100.0%" in joined and "before the test" in joined and "lift" not in joined
    assert "lift +0.0 pt" in ordered and "before the test" not in ordered
    assert 'data-stage="joined"' not in _section(ab, 'id="variant-verdicts"', "</ul>")
    assert "Not tested, before the test: joined." in ab

    steps = re.findall(r'<li class="\w+" data-kind="(\w+)">(.*?) <a', _section(text, 'id="next-list"', "</ol>"))
    assert steps[0][0] == "stage" and steps[0][1].startswith("复购 repurchased is furthest below its target: 6.7% of ordered")
    assert steps[-1] == ("noise", steps[-1][1]) and steps[-1][1].startswith("开单 ordered is -0.1 pt off its target (30.0% of added against 30.1%): within noise")
    assert "reaches the target" in steps[-1][1] and [kind for kind, _ in steps].count("stage") == 1


TIMELINE_PROBE = """<script>
(() => {
  for (const d of document.querySelectorAll("details")) d.open = true;
  const rows = [...document.querySelectorAll("#timeline tr[data-day]")].map((tr) => {
    const day = tr.querySelector("td.day"), cal = tr.querySelector(".cal");
    const r = cal ? cal.getBoundingClientRect() : null;
    return {
      day: Number(tr.dataset.day), calendar: tr.dataset.calendar ?? null, text: day.innerText, background: getComputedStyle(day).backgroundColor,
      label: cal ? {text: cal.innerText, color: getComputedStyle(cal).color, left: r.left, right: r.right, width: r.width, height: r.height} : null,
    };
  });
  const out = parent.document.createElement("pre");
  out.id = "probe-out";
  out.textContent = JSON.stringify({width: document.documentElement.clientWidth, rows});
  parent.document.body.appendChild(out);
})();
</script>"""


def _timeline_report(root: Path, start: str, days: int, *, rule: bool = True) -> str:
    """The report of a playbook with a daily beat and (with `rule`) one that skips holidays, over an empty store."""
    from tests.playbooks_fixtures import MORNING, create_store

    beats = [MORNING, {**MORNING, "id": "open", "title": "开课", "at": "19:00", "days": {"not": "holidays"}}][: 2 if rule else 1]
    write_playbook(root, beats=beats, days=days, start=start)
    create_store(root / "siyu.db")
    done = run_siyu(root, "report", "html", "playbook.yaml", "--db", "siyu.db", "--out", "report.html")
    assert done.returncode == 0, done.stderr + done.stdout
    return (root / "report.html").read_text(encoding="utf-8")


def test_the_timeline_marks_china_holidays_and_makeup_workdays_as_siyu_timeline_does(tmp_path: Path) -> None:
    """Day 1 is Mon 28 Sep 2026: 国庆节 1-7 Oct is days 4-10 and Sat 10 Oct (day 13) is worked (调休)."""
    text = _timeline_report(tmp_path, "2026-09-28", 14)
    timeline = _section(text, 'id="timeline"')
    rows = dict(re.findall(r'<tr data-day="(\d+)"( data-calendar="\w+")?>', timeline))
    kinds = {int(day): kind.split('"')[1] for day, kind in rows.items()}
    assert kinds == {**dict.fromkeys(range(1, 15), "workday"), **dict.fromkeys(range(4, 11), "holiday"), 14: "weekend"}
    marked = {int(d): label for d, label in re.findall(r'<tr data-day="(\d+)"[^>]*><td class="day">\d+<div class=\'note\'>[\d-]+</div><div class="cal \w+">([^<]+)</div>', timeline)}
    assert marked == {**dict.fromkeys(range(4, 11), "休 国庆节"), 13: "班 调休"}
    cli = {row["day"]: row for row in json.loads(run_siyu(tmp_path, "timeline", "playbook.yaml", "--json").stdout)}
    assert {d for d, row in cli.items() if row["calendar"] == "holiday"} == set(range(4, 11)), "the same calendar as siyu timeline"
    day7 = re.search(r'<tr data-day="7"[^>]*>(.*?)</tr>', timeline).group(1)
    assert "10-04" in day7 and day7.count('<td class="empty">') == 1, "a holiday the not-holidays beat leaves empty still shows its date"
    assert "休 a holiday, 班 a make-up workday (调休)" in text and "Holidays not marked" not in text
    # A year the holidays package has no schedule for: nothing marked, never guessed, and the note says so.
    later = _timeline_report(tmp_path / "later", "2030-03-04", 3, rule=False)
    assert "data-calendar" not in _section(later, 'id="timeline"') and "Holidays not marked in 2030: no State Council schedule" in later

    _require_chromium()
    for width in WIDTHS:
        copy = tmp_path / f"timeline-{width}.html"
        copy.write_text(text.replace("</body>", TIMELINE_PROBE + "</body>"), encoding="utf-8")
        dom = _chromium(f"--window-size={max(width, 500)},900", "--dump-dom", _framed(copy, width).as_uri())
        assert dom.returncode == 0, dom.stderr
        found = re.search(r'<pre id="probe-out">(.*?)</pre>', dom.stdout, re.S)
        assert found, dom.stdout[-2000:]
        shown = {row["day"]: row for row in json.loads(html.unescape(found.group(1)))["rows"]}
        for day in range(4, 11):
            label = shown[day]["label"]
            assert label["text"] == "休 国庆节" and label["color"] == "rgb(185, 28, 28)" and label["height"] > 8 and 0 <= label["left"] < label["right"] <= width, label
            assert shown[day]["background"] == "rgb(254, 226, 226)", "a holiday's day cell is tinted"
        assert shown[13]["label"]["text"] == "班 调休" and shown[13]["label"]["color"] == "rgb(29, 78, 216)"
        assert shown[13]["background"] == shown[1]["background"] == "rgba(0, 0, 0, 0)" and shown[1]["label"] is None
