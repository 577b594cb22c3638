"""Run a module (`-m NAME`) or a script as python would, and print this process's own peak RSS as it exits.

`python bench/_hwm.py -m siyu_cli run …` writes `peak_kb N` (VmHWM: the image python exec'd into) as the
last line of stderr. wait4's ru_maxrss would not do: it keeps what the child held between fork and exec,
a copy of the bench process, which after the larger benchmarks outweighs the child's own run.
"""

import atexit
import os
import runpy
import sys

MARK = "peak_kb "


def _peak() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"{MARK}{kb}", file=sys.stderr, flush=True)


def peak_mb(stderr: str) -> tuple[float | None, str]:
    """The peak a child wrapped in this script reported, in MB, and its stderr without that line."""
    lines = stderr.splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(MARK):
            return int(lines[index][len(MARK) :].strip()) / 1024, "".join(lines[:index] + lines[index + 1 :])
    return None, stderr


if __name__ == "__main__":
    atexit.register(_peak)
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        sys.path[0] = os.getcwd()  # as `python -m` has it
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as `python FILE` has it
        runpy.run_path(sys.argv[0], run_name="__main__")
