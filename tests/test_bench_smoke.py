"""The benchmark suite still runs: `--quick --only startup` and `--tiny --only scale` exit 0 and write their JSON.

No timing is asserted; the numbers belong to BENCHMARKS.md, not to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_KEYS = {"name", "ours_s", "ours_range", "floor_name", "floor_s", "floor_range", "ratio", "target", "limits", "met", "status", "parts", "info"}


def _bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload: dict[str, Any] = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(payload) == {"machine", "args", "results"}
    assert {"nproc", "python"} <= set(payload["machine"])
    assert payload["results"], "no results written"
    for result in payload["results"]:
        assert set(result) == RESULT_KEYS
    return payload


def test_quick_startup_bench_writes_results(tmp_path: Path) -> None:
    payload = _bench(tmp_path, "--quick", "--only", "startup")
    assert payload["args"]["only"] == ["startup"]
    for result in payload["results"]:
        assert result["name"].startswith("startup")


def test_tiny_scale_bench_writes_every_row(tmp_path: Path) -> None:
    """Idle cells (contacts × day), busy passes and the fast clock, each with its absolute limits."""
    payload = _bench(tmp_path, "--tiny", "--only", "scale")
    assert payload["args"]["only"] == ["scale"]
    kinds = [result["info"]["kind"] for result in payload["results"]]
    assert kinds.count("idle") == 2 and kinds.count("busy") == 2 and kinds.count("fast") == 1
    for result in payload["results"]:
        assert result["name"].startswith("scale")
        assert result["limits"] and all(set(bound) == {"value", "max"} for bound in result["limits"].values())
        assert result["status"] == "ok", result["info"]
        assert isinstance(result["met"], bool)
    idle = next(result for result in payload["results"] if result["info"]["kind"] == "idle")
    assert {"catch_up", "peak_mb", "plain", "runs"} <= set(idle["info"])
    assert idle["floor_name"].startswith("plain script")


def test_tiny_serve_bench_loses_nothing(tmp_path: Path) -> None:
    """A real `siyu serve` and the bare floor server take the same callbacks; every one is recorded once."""
    payload = _bench(tmp_path, "--tiny", "--only", "serve")
    [result] = payload["results"]
    assert result["status"] == "ok" and result["limits"]["lost"]["value"] == 0
    info = result["info"]
    assert info["events"] == info["distinct"] == info["callbacks_kept"] == info["callbacks"] and info["exit"] == 0
    assert info["peak_mb"] and info["floor_peak_mb"] and result["floor_name"].startswith("bare Starlette")
