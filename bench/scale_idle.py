"""Idle ticks again on the scale benchmark's primed stores: 7 siyu passes and 7 plain-script passes, in turns.

`python bench/scale_idle.py STORES_DIR CELL...` (CELL as `10000c-d30-2005`, a folder `python -m bench --only
scale --out DIR` left in DIR/scale/). For a second reading when the machine was busy during the full run:
the idle tick's work does not change with the cell, so its wall time is only worth reading on a quiet machine.
"""

import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
py = str(root / ".venv" / "bin" / "python")
plain = str(root / "bench" / "plain_sender.py")
rows = []
for name in sys.argv[2:]:
    src = Path(sys.argv[1]) / name
    work = Path(tempfile.mkdtemp(prefix="siyu-idle-")) / name
    work.mkdir(parents=True)
    for f in ("siyu.db", "plain.db", "scale.yaml"):
        shutil.copy(src / f, work / f)
    day = int(name.split("-")[1][1:])
    date = dt.date(2026, 12, 1) + dt.timedelta(days=day - 1)
    ours, theirs, peaks = [], [], []
    for i in range(8):
        at = f"{date}T20:{6 + i:02d}:00+08:00"
        t = time.perf_counter()
        p = subprocess.Popen(
            [py, "-m", "siyu_cli", "run", "scale.yaml", "--once", "--now", at, "--json", "--db", "siyu.db", "--outbox", "outbox"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _, _, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        out = p.stdout.read()
        assert b'"recorded": 0' in out and b'"sent": 0' in out, out[:300]
        t = time.perf_counter()
        subprocess.run([py, plain, "siyu.db", "plain.db", "plain-outbox", at], cwd=work, capture_output=True)
        pw = time.perf_counter() - t
        if i:  # the first of each is a warm-up
            ours.append(wall)
            peaks.append(ru.ru_maxrss / 1024)
            theirs.append(pw)
    rows.append((name, statistics.median(ours), min(ours), max(ours), max(peaks), statistics.median(theirs)))
    shutil.rmtree(work.parent)
for name, med, lo, hi, peak, pl in rows:
    print(f"{name:>22}  siyu idle {med:.3f} s ({lo:.3f}–{hi:.3f}) peak {peak:.0f} MB   plain {pl:.3f} s")
