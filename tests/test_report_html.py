"""`siyu report html`: one self-contained file that a browser renders with no network.

The rendering check opens the report in headless Chromium (Debian's `chromium`), reads the DOM
back and decodes the screenshot to count the funnel's bar colour. `.ci/run` installs Chromium;
elsewhere the test skips and says so, unless SIYU_REQUIRE_CHROMIUM is set
(as `.ci/run` sets it).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
import yaml

from tests.playbooks_fixtures import run_siyu

REPO = Path(__file__).resolve().parent.parent
STARTER = REPO / "playbooks" / "ecommerce-card.yaml"
FUNNEL_BLUE = (0x25, 0x63, 0xEB)
HOOK_ORANGE = (0xEA, 0x58, 0x0C)
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e-commerce starter after 120 simulated contacts and its first week of drafts."""
    folder = tmp_path_factory.mktemp("html")
    db = str(folder / "siyu.db")
    for args in (
        ("simulate", str(STARTER), "--contacts", "120", "--seed", "3", "--db", db),
        ("run", str(STARTER), "--once", "--now", "2026-12-07T21:00", "--db", db, "--outbox", str(folder / "outbox")),
        ("report", "html", "-p", str(STARTER), "--db", db, "--out", str(folder / "report.html")),
    ):
        done = run_siyu(folder, *args)
        assert done.returncode == 0, done.stderr + done.stdout
    return folder / "report.html"


def test_report_is_one_file_that_fetches_nothing(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text
    assert not re.search(r"<(script|link|img|iframe)\b", text), "the report must not load anything"
    assert not re.search(r"(src|href)\s*=", text)
    assert not re.search(r"url\(", text)
    assert re.findall(r"https?://[^\s\"']+", text) == ["http://www.w3.org/2000/svg"] * text.count("<svg")
    for section in ("funnel-chart", "funnel-table", "hook-comparison", "hook-chart", "hook-table", "touch-table", "sop-table", "timeline"):
        assert f'id="{section}"' in text
    assert "栖山旗舰店" in text and "包裹卡发出 carded" in text
    assert "Includes 120 synthetic contacts" in text
    hooks = text[text.index('id="hook-table"') : text.index("</table>", text.index('id="hook-table"'))]
    first = yaml.safe_load(STARTER.read_text(encoding="utf-8"))["hooks"][0]["id"]
    assert f'{first} <span class="note">(baseline)</span>' in hooks, "the first hook of the playbook is the baseline"
    assert re.search(r"lift [+-]\d+\.\d pt", hooks) and re.search(r"(better|worse|no significant difference)</span>", hooks)
    assert "<th>actual</th>" in text and "live : group : 1v1" in text
    assert not report.with_name("report.html.partial").exists()


def test_report_html_errors_are_clear(tmp_path: Path) -> None:
    done = run_siyu(tmp_path, "report", "html", "-p", str(STARTER), "--db", str(tmp_path / "siyu.db"), "--out", str(tmp_path / "no" / "r.html"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    missing = run_siyu(tmp_path, "report", "html", "-p", str(STARTER), "--db", str(tmp_path / "siyu.db"))
    assert missing.returncode == 2 and "--out" in missing.stderr


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


def _count(rows: list[bytes], colour: tuple[int, int, int]) -> int:
    needle = bytes(colour)
    return sum(sum(1 for i in range(0, len(row), 3) if row[i : i + 3] == needle) for row in rows)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless, sandbox off (CI runs as root) and every host name unresolvable: no network."""
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_charts_render_in_a_browser(report: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("SIYU_REQUIRE_CHROMIUM"):
            pytest.fail("SIYU_REQUIRE_CHROMIUM is set (as .ci/run sets it) but chromium is not on PATH")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    dom = _chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr
    page = dom.stdout
    funnel = page[page.index('id="funnel-chart"') : page.index("</svg>", page.index('id="funnel-chart"'))]
    assert len(re.findall(r'<rect class="bar" data-stage="', funnel)) == 5
    assert re.search(r'data-stage="carded" x="[\d.]+" y="\d+" width="(\d{3}\.\d)"', funnel), "the top bar is drawn full width"
    hooks = page[page.index('id="hook-chart"') :]
    assert 'data-group="card-cashback"' in hooks and 'data-group="card-repurchase"' in hooks
    sop = page[page.index('id="sop-table"') : page.index("</table>", page.index('id="sop-table"'))]
    assert "秒杀预告" in sop and "欢迎语 返现卡 #1" in sop  # beats and welcome steps the run recorded
    assert 'id="timeline"' in page and "复购期" in page
    touch = page[page.index('id="touch-table"') : page.index("</table>", page.index('id="touch-table"'))]
    assert len(re.findall(r'<tr data-stage="', touch)) == 5 and len(re.findall(r'data-channel="', touch)) == 5 * 6

    shot = tmp_path / "report.png"
    taken = _chromium("--window-size=1200,1400", f"--screenshot={shot}", report.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    width, height, rows = _pixels(shot.read_bytes())
    assert (width, height) == (1200, 1400)
    top = rows[: height // 2]
    assert _count(top, FUNNEL_BLUE) > 5000, "the funnel's top bar is painted"
    assert _count(rows, HOOK_ORANGE) > 200, "the second hook's bars are painted"
