"""Timing, results and the report every benchmark shares.

Every number is a ratio against a floor measured in the same run, on the same
machine, with the same data: a hard-coded baseline would drift with the machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "out"
RESULT_KEYS = ("name", "ours_s", "floor_name", "floor_s", "ratio", "target", "met", "status", "parts", "info")


@dataclass
class Config:
    """What the command line chose: sizes, repeats and where results go."""

    quick: bool
    out: Path
    repeat: int | None = None

    def times(self, default: int) -> int:
        return self.repeat if self.repeat is not None else default


@dataclass
class Result:
    """One row of the report. `target` is the highest acceptable ratio ours/floor (None: report only)."""

    name: str
    ours_s: float | None
    floor_name: str
    floor_s: float | None
    target: float | None
    status: str = "ok"
    parts: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours_s is None or not self.floor_s:
            return None
        return self.ours_s / self.floor_s

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio <= self.target

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, met=self.met)
        return {key: data[key] for key in RESULT_KEYS}


def skipped(name: str, floor_name: str, target: float | None, reason: str) -> Result:
    return Result(name, None, floor_name, None, target, status=f"skipped: {reason}")


def best_of(fn: Callable[[], Any], n: int, *, setup: Callable[[], Any] | None = None) -> float:
    """Best of n: the least disturbed run is the closest to what the code costs."""
    times = []
    for _ in range(n):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(fn: Callable[[], Any], n: int) -> float:
    """Median of n, for runs short enough that one outlier would decide a best-of."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def venv_python() -> str:
    """The interpreter running the bench: `make bench` runs it from the project's venv."""
    return sys.executable


def run_quiet(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a command; a failure is a broken benchmark, so it raises with the command's stderr."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def time_command(cmd: Sequence[str], n: int, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Median wall time of a command after one warm-up run (so the page cache is warm for both sides)."""
    run_quiet(cmd, cwd=cwd, env=env)
    return median_of(lambda: run_quiet(cmd, cwd=cwd, env=env), n)


def machine() -> dict[str, Any]:
    import sqlite3

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "executable": sys.executable,
    }


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_target(value: float | None) -> str:
    return "report" if value is None else f"≤ {value:g}×"


def fmt_met(result: Result) -> str:
    if result.status != "ok":
        return result.status
    if result.met is None:
        return "n/a"
    return "yes" if result.met else "MISSED"


def print_report(results: Sequence[Result], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 150
    table = Table(title=f"siyu benchmarks · {info['nproc']} cores · Python {info['python']} · SQLite {info['sqlite']}")
    for column, justify in (("benchmark", "left"), ("ours", "right"), ("floor", "left"), ("floor time", "right"), ("ratio", "right"), ("target", "right"), ("met?", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        met = fmt_met(r)
        style = "red" if met == "MISSED" else ("green" if met == "yes" else None)
        table.add_row(r.name, fmt_seconds(r.ours_s), r.floor_name, fmt_seconds(r.floor_s), fmt_ratio(r.ratio), fmt_target(r.target), met, style=style)
    console.print(table)
    parts = [r for r in results if r.parts]
    if parts:
        detail = Table(title="parts")
        detail.add_column("benchmark")
        detail.add_column("part")
        detail.add_column("time", justify="right")
        for r in parts:
            for name, seconds in r.parts.items():
                detail.add_row(r.name, name, fmt_seconds(seconds))
        console.print(detail)
    for r in results:
        for line in r.info.get("notes", []):
            console.print(f"[bold]{r.name}[/]: {line}", highlight=False)


def write_json(path: Path, results: Sequence[Result], info: dict[str, Any], args: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "args": args, "results": [r.to_dict() for r in results]}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
