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
RESULT_KEYS = ("name", "ours_s", "ours_range", "floor_name", "floor_s", "floor_range", "ratio", "target", "limits", "met", "status", "parts", "info")


@dataclass
class Config:
    """What the command line chose: sizes, repeats and where results go."""

    quick: bool
    out: Path
    repeat: int | None = None
    tiny: bool = False

    def times(self, default: int) -> int:
        return self.repeat if self.repeat is not None else default


@dataclass
class Timing:
    """The median of n timed runs and their range: one figure alone hides how much a run moves."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, times: Sequence[float]) -> Timing:
        return cls(statistics.median(times), min(times), max(times), len(times))

    @property
    def range(self) -> list[float]:
        return [self.low, self.high]


@dataclass
class Result:
    """One row of the report.

    `target` is the highest acceptable ratio ours/floor (None: no ratio target). `limits` are
    absolute targets, {name: {"value": measured or None, "max": bound}}; a value that could not
    be measured (a timeout) misses its limit.
    """

    name: str
    ours_s: float | None
    floor_name: str
    floor_s: float | None
    target: float | None
    status: str = "ok"
    parts: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    ours_range: list[float] | None = None
    floor_range: list[float] | None = None
    limits: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @classmethod
    def timed(cls, name: str, ours: Timing, floor_name: str, floor: Timing, target: float | None, **extra: Any) -> Result:
        """A row from two Timings: medians as the figures, min–max beside them."""
        return cls(name, ours.median, floor_name, floor.median, target, ours_range=ours.range, floor_range=floor.range, **extra)

    @property
    def ratio(self) -> float | None:
        if self.ours_s is None or not self.floor_s:
            return None
        return self.ours_s / self.floor_s

    @property
    def met(self) -> bool | None:
        checks = [_within(bound["value"], bound["max"]) for bound in self.limits.values()]
        if self.target is not None:
            checks.append(self.ratio is not None and self.ratio <= self.target)
        return all(checks) if checks else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, met=self.met)
        return {key: data[key] for key in RESULT_KEYS}


def _within(value: float | None, bound: float | None) -> bool:
    return value is not None and bound is not None and value <= bound


def skipped(name: str, floor_name: str, target: float | None, reason: str) -> Result:
    return Result(name, None, floor_name, None, target, status=f"skipped: {reason}")


def timings(fn: Callable[[], Any], n: int, *, setup: Callable[[], Any] | None = None) -> Timing:
    """n timed runs of fn (setup, if any, runs untimed before each)."""
    return interleaved({"only": (fn, setup)}, n)["only"]


def interleaved(sides: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]], n: int) -> dict[str, Timing]:
    """n timed runs of each side, taken in turns, so a busy moment on the shared machine hits both alike.

    Each side is (fn, setup); setup runs untimed before each run of fn. Every side runs n times:
    a ratio of a best-of-3 against a single run would favour the side timed more often.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(n):
        for name, (fn, setup) in sides.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: Timing.of(found) for name, found in times.items()}


def venv_python() -> str:
    """The interpreter running the bench: `make bench` runs it from the project's venv."""
    return sys.executable


def run_quiet(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a command; a failure is a broken benchmark, so it raises with the command's stderr."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def time_commands(cmds: dict[str, Sequence[str]], n: int, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Timing]:
    """Wall times of commands, n runs each in turns, after one warm-up run of each (so the page cache is warm for all)."""
    for cmd in cmds.values():
        run_quiet(cmd, cwd=cwd, env=env)
    return interleaved({name: (lambda cmd=cmd: run_quiet(cmd, cwd=cwd, env=env), None) for name, cmd in cmds.items()}, n)


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


def fmt_timed(value: float | None, spread: Sequence[float] | None) -> str:
    """Median (min–max) in one unit, or the single figure when it was timed once."""
    if value is None or not spread or spread[0] == spread[1]:
        return fmt_seconds(value)
    if spread[1] < 1:
        return f"{value * 1000:.1f} ms ({spread[0] * 1000:.1f}–{spread[1] * 1000:.1f})"
    return f"{value:.2f} s ({spread[0]:.2f}–{spread[1]:.2f})"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_target(result: Result) -> str:
    shown = [] if result.target is None else [f"≤ {result.target:g}×"]
    for name, bound in result.limits.items():
        unit = " s" if name.endswith("_s") else (" MB" if name.endswith("_mb") else "")
        shown.append(f"{name.removesuffix('_s').removesuffix('_mb')} ≤ {bound['max']:g}{unit}")
    return ", ".join(shown) or "report"


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
        console.width = 170
    table = Table(title=f"siyu benchmarks · {info['nproc']} cores · Python {info['python']} · SQLite {info['sqlite']} · median (min–max)")
    for column, justify in (("benchmark", "left"), ("ours", "right"), ("floor", "left"), ("floor time", "right"), ("ratio", "right"), ("target", "right"), ("met?", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        met = fmt_met(r)
        style = "red" if met in ("MISSED", "timeout") else ("green" if met == "yes" else None)
        table.add_row(r.name, fmt_timed(r.ours_s, r.ours_range), r.floor_name, fmt_timed(r.floor_s, r.floor_range), fmt_ratio(r.ratio), fmt_target(r), met, style=style)
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
