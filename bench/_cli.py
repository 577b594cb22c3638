"""The bench command line: choose benchmarks and sizes, run, report."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench._harness import DEFAULT_OUT, Config, Result, machine, print_report, write_json

BENCHMARKS = {
    "startup": "bench._startup",
    "dispatch": "bench._dispatch",
    "dispatch-task": "bench._dispatch_task",
    "idle": "bench._idle",
    "funnel": "bench._funnel",
    "import": "bench._import",
    "tags": "bench._tags",
    "scale": "bench._scale",
    "taobao": "bench._taobao",
    "serve": "bench._serve",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="siyu benchmarks: each one a ratio against a floor measured in the same run.")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the suite works (numbers mean little)")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME", help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--tiny", action="store_true", help="smaller than --quick, for the smoke tests (scale and serve; implies --quick)")
    parser.add_argument("--repeat", type=int, help="timed runs per measurement, instead of each benchmark's default")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json, profiles and cached data (default bench/out)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.repeat is not None and args.repeat < 1:
        sys.exit("--repeat must be at least 1")
    cfg = Config(quick=args.quick or args.tiny, out=args.out.resolve(), repeat=args.repeat, tiny=args.tiny)
    cfg.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    info = machine()
    results: list[Result] = []
    tables: list[tuple[object, list[Result]]] = []
    started = time.perf_counter()
    for name in BENCHMARKS:
        if name not in names:
            continue
        began = time.perf_counter()
        print(f"· {name} …", file=sys.stderr, flush=True)
        module = importlib.import_module(BENCHMARKS[name])
        found = module.run(cfg)
        for result in found:
            result.info.setdefault("wall_s", round(time.perf_counter() - began, 2))
        results.extend(found)
        if hasattr(module, "print_table"):
            tables.append((module, found))
        write_json(cfg.out / "results.json", results, info, _args(args, names))
    info["total_wall_s"] = round(time.perf_counter() - started, 1)
    write_json(cfg.out / "results.json", results, info, _args(args, names))
    print_report(results, info)
    for module, found in tables:
        module.print_table(found)  # type: ignore[attr-defined]
    print(f"results: {cfg.out / 'results.json'} · {info['total_wall_s']} s in all", file=sys.stderr)


def _args(args: argparse.Namespace, names: list[str]) -> dict[str, object]:
    return {"quick": args.quick, "tiny": args.tiny, "only": names, "repeat": args.repeat}
