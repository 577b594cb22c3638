"""The benchmark suite still runs: `python -m bench --quick --only startup` exits 0 and writes its JSON.

No timing is asserted; the numbers belong to BENCHMARKS.md, not to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_KEYS = {"name", "ours_s", "floor_name", "floor_s", "ratio", "target", "met", "status", "parts", "info"}


def test_quick_startup_bench_writes_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "startup", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(payload) == {"machine", "args", "results"}
    assert {"nproc", "python"} <= set(payload["machine"])
    assert payload["args"]["only"] == ["startup"]
    assert payload["results"], "no results written"
    for result in payload["results"]:
        assert set(result) == RESULT_KEYS
        assert result["name"].startswith("startup")
