"""startup: `siyu --help` against bare Python and against importing every dependency."""

from __future__ import annotations

import re
import subprocess

from bench._harness import Config, Result, time_commands, venv_python

NAME = "startup"
DEPENDENCIES = "import typer, pydantic, jinja2, sqlite_utils, apscheduler.schedulers.blocking, yaml, rich.console, openpyxl"
TARGET = 0.5
_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_offenders(limit: int = 12) -> list[dict[str, object]]:
    """`python -X importtime -m siyu_cli --help`: the imports with the largest cumulative time."""
    proc = subprocess.run([venv_python(), "-X", "importtime", "-m", "siyu_cli", "--help"], capture_output=True, text=True, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            rows.append({"module": module, "self_ms": int(self_us) / 1000, "cumulative_ms": int(cumulative_us) / 1000, "depth": len(indent) // 2})
    rows.sort(key=lambda row: row["cumulative_ms"], reverse=True)  # type: ignore[arg-type, return-value]
    return rows[:limit]


def run(cfg: Config) -> list[Result]:
    py = venv_python()
    n = cfg.times(3 if cfg.quick else 9)
    timed = time_commands({"help": [py, "-m", "siyu_cli", "--help"], "bare": [py, "-c", "pass"], "deps": [py, "-c", DEPENDENCIES]}, n)
    offenders = import_offenders()
    main = Result.timed(NAME, timed["help"], "import every dependency", timed["deps"], TARGET, info={"median_of": n, "import_offenders": offenders})
    if main.met is False:
        main.info["notes"] = [
            "target missed; top imports by cumulative time (python -X importtime -m siyu_cli --help):",
            *(f"  {row['cumulative_ms']:8.1f} ms  {row['module']}" for row in offenders[:8]),
        ]
    bare = Result.timed(f"{NAME} (vs bare python)", timed["help"], "python -c pass", timed["bare"], None, info={"median_of": n})
    return [main, bare]
