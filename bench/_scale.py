"""scale: what a cron pass costs as the audience and the campaign grow (issue 10, item 1).

Every figure is a real `siyu run` child process (cwd at a project folder, as cron runs it):
its wall time and its peak RSS, read from `os.wait4`, which reports that child alone. The
campaign is `bench/scale.yaml`: 60 days, a 1v1 to every contact at 20:00, a group post at 08:30.

Per (contacts, day N): a store made by siyu, contacts inserted directly, then primed by one real
catch-up pass at day N 20:05 (it records every earlier draft, the late ones as skipped(missed),
and sends day N's; reported, not a target). Then the **idle tick**, a pass at 20:06 when
nothing is new (target ≤ 0.3 s and ≤ 80 MB), beside `bench/plain_sender.py`, the script a user
would write instead, primed the same way. The **busy pass**: the largest size primed at 19:59,
then the 20:00 pass that records and sends one draft per contact (target ≤ 250 MB). The **fast
clock**: the e-commerce starter with simulated contacts run through its 60 days (≤ 120 s).

Each measured pass starts from a copy of the primed store. Primed stores are cached in
`<out>/scale/`, keyed by size and day, and thrown away when siyu's source changes. A child that
outlives its timeout is killed and recorded as `timeout`; one that passes its memory cap
(6 GiB of address space, to keep a shared machine alive) as `memory cap`.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench._data import CONTACT_COLUMNS
from bench._harness import ROOT, Config, Result, Timing, venv_python
from bench._hwm import peak_mb

HWM_SCRIPT = ROOT / "bench" / "_hwm.py"

PLAYBOOK = ROOT / "bench" / "scale.yaml"
PLAIN = ROOT / "bench" / "plain_sender.py"
START = date(2026, 12, 1)
OFFSET = "+08:00"  # Asia/Shanghai, the playbook's zone
MEMORY_CAP = 6 << 30
IDLE_LIMITS = {"wall_s": 0.3, "peak_mb": 80.0}
BUSY_LIMITS = {"peak_mb": 250.0}
FAST_LIMITS = {"wall_s": 120.0}
SLOW_S = 120.0  # a run slower than this is not repeated: one figure, not five, of a missed target
PLAIN_NAME = "plain script (cron + sqlite3)"


@dataclass(frozen=True)
class Sizes:
    """The grid one run covers."""

    contacts: tuple[int, ...]
    days: tuple[int, ...]
    fast_contacts: int
    idle_runs: int
    timeout_s: float


def sizes(cfg: Config) -> Sizes:
    if cfg.tiny:
        return Sizes((100,), (1, 2), 20, cfg.times(2), 120)
    if cfg.quick:
        return Sizes((1_000, 2_000), (1, 3), 300, cfg.times(3), 300)
    return Sizes((1_000, 10_000, 100_000), (1, 30, 60), 5_000, cfg.times(5), 600)


@dataclass
class Child:
    """One finished (or killed) child process: status is ok, timeout, memory cap or exit N."""

    status: str
    wall_s: float | None
    peak_mb: float | None
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    def brief(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("stdout")
        found["stderr"] = self.stderr[-600:] if self.status != "ok" else ""
        return found

    def summary(self) -> dict[str, Any]:
        """The pass's --json summary (empty when it printed none)."""
        try:
            found = json.loads(self.stdout)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def child(cmd: Sequence[str], cwd: Path, timeout_s: float) -> Child:
    """Run cmd: wall time, and the peak RSS of this child alone (a python child reports its own VmHWM through
    bench/_hwm.py; wait4's figure, for anything else, can hold a copy of the bench process)."""
    env = {**os.environ, "NO_COLOR": "1"}
    if cmd[0] == venv_python():
        cmd = [cmd[0], str(HWM_SCRIPT), *cmd[1:]]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=err, env=env, preexec_fn=_cap_memory)  # noqa: PLW1509 - setrlimit only
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.send_signal(signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    own, stderr = peak_mb(stderr)
    peak = own if own is not None else usage.ru_maxrss / 1024  # KiB on Linux
    if killed.is_set():
        return Child("timeout", None, None, stdout, stderr)
    if proc.returncode != 0:
        capped = "MemoryError" in stderr or "out of memory" in stderr
        return Child("memory cap" if capped else f"exit {proc.returncode}", wall, peak, stdout, stderr)
    return Child("ok", wall, peak, stdout, stderr)


def moment(day: int, hhmm: str) -> str:
    """Day N of the campaign at HH:MM, in the playbook's zone."""
    return f"{START + timedelta(days=day - 1)}T{hhmm}:00{OFFSET}"


def siyu_run(at: str) -> list[str]:
    return [venv_python(), "-m", "siyu_cli", "run", "scale.yaml", "--once", "--now", at, "--json", "--db", "siyu.db", "--outbox", "outbox"]


def plain_run(at: str) -> list[str]:
    return [venv_python(), str(PLAIN), "siyu.db", "plain.db", "plain-outbox", at]


def fingerprint() -> str:
    """siyu's source, the playbook and the plain script: a primed store is only valid for the code that made it."""
    import siyu_cli

    digest = hashlib.sha256()
    package = Path(siyu_cli.__file__).parent
    for path in sorted([*package.rglob("*.py"), PLAYBOOK, PLAIN]):
        digest.update(str(path.relative_to(path.parents[1])).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def contact_rows(n: int) -> Iterator[tuple[str | None, ...]]:
    """n members (会员, the 1v1's audience); every tenth has renewed (已续费), which the template branches on."""
    for i in range(n):
        tags = '["会员", "已续费"]' if i % 10 == 0 else '["会员"]'
        yield (f"m{i:07d}", f"会员{i:07d}", tags, "EYE100", "precise", "wx_scale_advisor_01", None, "2026-11-20T02:00:00Z", "{}")


class Cache:
    """Primed stores under <out>/scale, one folder per (contacts, day, priming time)."""

    def __init__(self, out: Path, timeout_s: float) -> None:
        self.root = out / "scale"
        self.timeout_s = timeout_s
        stamp = self.root / "fingerprint.txt"
        current = fingerprint()
        if not stamp.exists() or stamp.read_text(encoding="utf-8").strip() != current:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True)
            stamp.write_text(current + "\n", encoding="utf-8")

    def base(self, contacts: int) -> Path:
        """A store created (and migrated) by siyu, with the contacts inserted directly."""
        from siyu_cli.store import open_store

        path = self.root / f"base-{contacts}c.db"
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        _remove_db(partial)
        open_store(partial).conn.close()
        conn = sqlite3.connect(partial)
        try:
            with conn:
                conn.executemany(f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES ({', '.join('?' * len(CONTACT_COLUMNS))})", contact_rows(contacts))
        finally:
            conn.close()
        _checkpoint(partial)
        partial.rename(path)
        return path

    def primed(self, contacts: int, day: int, hhmm: str, *, plain: bool) -> tuple[Path, Child]:
        """The folder of a store primed by one catch-up pass at day N HH:MM, and that pass's figures (cached with it)."""
        folder = self.root / f"{contacts}c-d{day}-{hhmm.replace(':', '')}"
        record = folder / "prime.json"
        if record.exists():
            return folder, Child(**json.loads(record.read_text(encoding="utf-8")))
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copyfile(self.base(contacts), folder / "siyu.db")
        shutil.copyfile(PLAYBOOK, folder / "scale.yaml")
        found = child(siyu_run(moment(day, hhmm)), folder, self.timeout_s)
        if found.status == "ok" and plain:
            primer = child(plain_run(moment(day, hhmm)), folder, self.timeout_s)
            if primer.status != "ok":
                raise RuntimeError(f"plain script failed to prime: {primer.stderr[-2000:]}")
        shutil.rmtree(folder / "outbox", ignore_errors=True)
        shutil.rmtree(folder / "plain-outbox", ignore_errors=True)
        if found.status == "ok":
            _checkpoint(folder / "siyu.db")
        else:
            _remove_db(folder / "siyu.db")
        record.write_text(json.dumps(asdict(found), ensure_ascii=False), encoding="utf-8")
        return folder, found


def _remove_db(path: Path) -> None:
    """A store and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _checkpoint(path: Path) -> None:
    """Everything into the main file, so copying that one file copies the whole store."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _fresh_copy(primed: Path, work: Path, names: Sequence[str]) -> None:
    """The primed state again: every measured pass starts from the same bytes."""
    for leftover in ("outbox", "plain-outbox"):
        shutil.rmtree(work / leftover, ignore_errors=True)
    for name in names:
        _remove_db(work / name)
        shutil.copyfile(primed / name, work / name)
    shutil.copyfile(primed / "scale.yaml", work / "scale.yaml")


@dataclass
class Series:
    """Repeated runs of one command: wall times and peaks of the ok ones, and the first failure."""

    walls: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    failure: Child | None = None

    def add(self, found: Child) -> None:
        if found.status == "ok" and found.wall_s is not None and found.peak_mb is not None:
            self.walls.append(found.wall_s)
            self.peaks.append(found.peak_mb)
        elif self.failure is None:
            self.failure = found

    @property
    def done(self) -> bool:
        """Stop repeating after a failure, or after a run too slow to be worth five."""
        return self.failure is not None or bool(self.walls and max(self.walls) > SLOW_S)

    def timing(self) -> Timing | None:
        return Timing.of(self.walls) if self.walls else None

    def peak(self) -> float | None:
        return max(self.peaks) if self.peaks else None


def idle_cell(cache: Cache, contacts: int, day: int, size: Sizes, blocked: str | None) -> Result:
    """Prime at day N 20:05, then siyu's idle tick at 20:06 and the plain script's, in turns."""
    name = f"scale idle {contacts:,}×d{day}"
    info: dict[str, Any] = {"kind": "idle", "contacts": contacts, "day": day, "at": moment(day, "20:06")}
    if blocked is not None:
        return _unmeasured(name, PLAIN_NAME, IDLE_LIMITS, blocked, info)
    primed, catch_up = cache.primed(contacts, day, "20:05", plain=True)
    info["catch_up"] = catch_up.brief() | {"summary": _counts(catch_up.summary())}
    if catch_up.status != "ok":
        return _unmeasured(name, PLAIN_NAME, IDLE_LIMITS, f"catch-up {catch_up.status}", info)
    ours, plain = Series(), Series()
    with tempfile.TemporaryDirectory(prefix="scale-idle-", dir=cache.root) as folder:
        work = Path(folder)
        for _ in range(size.idle_runs):
            if not ours.done:
                _fresh_copy(primed, work, ("siyu.db",))
                found = child(siyu_run(moment(day, "20:06")), work, cache.timeout_s)
                summary = found.summary()
                if found.status == "ok" and (summary.get("recorded") or summary.get("sent")):
                    found.status = "not idle"
                ours.add(found)
            if not plain.done:
                _fresh_copy(primed, work, ("plain.db",) if (work / "siyu.db").exists() else ("siyu.db", "plain.db"))
                plain.add(child(plain_run(moment(day, "20:06")), work, cache.timeout_s))
            if ours.done and plain.done:
                break
    return _row(name, ours, plain, IDLE_LIMITS, info)


def busy_cell(cache: Cache, contacts: int, day: int, runs: int, blocked: str | None) -> Result:
    """Prime at day N 19:59, then the 20:00 pass that records and sends one 1v1 draft per contact."""
    name = f"scale busy {contacts:,}×d{day}"
    info: dict[str, Any] = {"kind": "busy", "contacts": contacts, "day": day, "at": moment(day, "20:00")}
    if blocked is not None:
        return _unmeasured(name, "—", BUSY_LIMITS, blocked, info)
    primed, catch_up = cache.primed(contacts, day, "19:59", plain=False)
    info["catch_up"] = catch_up.brief() | {"summary": _counts(catch_up.summary())}
    if catch_up.status != "ok":
        return _unmeasured(name, "—", BUSY_LIMITS, f"catch-up {catch_up.status}", info)
    ours = Series()
    with tempfile.TemporaryDirectory(prefix="scale-busy-", dir=cache.root) as folder:
        work = Path(folder)
        for _ in range(runs):
            _fresh_copy(primed, work, ("siyu.db",))
            found = child(siyu_run(moment(day, "20:00")), work, cache.timeout_s)
            sent = found.summary().get("sent")
            if found.status == "ok" and sent != contacts:
                found.status = f"sent {sent} of {contacts}"
            info["summary"] = _counts(found.summary())
            ours.add(found)
            if ours.done:
                break
    return _row(name, ours, None, BUSY_LIMITS, info)


def fast_clock(cache: Cache, contacts: int) -> Result:
    """`siyu init --from ecommerce`, `siyu simulate --contacts N --seed 7`, then the whole campaign with `--clock fast`."""
    name = f"scale --clock fast (ecommerce, {contacts:,} contacts)"
    info: dict[str, Any] = {"kind": "fast", "contacts": contacts}
    project = cache.root / f"fast-{contacts}c"
    siyu = [venv_python(), "-m", "siyu_cli"]
    if not (project / "ready").exists():
        shutil.rmtree(project, ignore_errors=True)
        for cmd, cwd in (([*siyu, "init", str(project), "--from", "ecommerce"], cache.root),
                         ([*siyu, "simulate", "playbooks/ecommerce-card.yaml", "--contacts", str(contacts), "--seed", "7"], project)):  # fmt: skip
            made = child(cmd, cwd, cache.timeout_s)
            if made.status != "ok":
                info["failure"] = made.brief() | {"command": cmd[2:]}
                return _unmeasured(name, "—", FAST_LIMITS, f"{cmd[3]} {made.status}", info)
        (project / "ready").touch()
    ours = Series()
    with tempfile.TemporaryDirectory(prefix="scale-fast-", dir=cache.root) as folder:
        work = Path(folder) / "project"
        shutil.copytree(project, work)
        found = child([*siyu, "run", "playbooks/ecommerce-card.yaml", "--clock", "fast", "--json"], work, cache.timeout_s)
        info["summary"] = _counts(found.summary())
        ours.add(found)
    return _row(name, ours, None, FAST_LIMITS, info)


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in ("recorded", "sent", "skipped", "failed", "unknown") if key in summary}


def _limits(bounds: dict[str, float], wall: float | None, peak: float | None) -> dict[str, dict[str, float | None]]:
    values = {"wall_s": wall, "peak_mb": peak}
    return {key: {"value": values[key], "max": bound} for key, bound in bounds.items()}


def _unmeasured(name: str, floor_name: str, bounds: dict[str, float], why: str, info: dict[str, Any]) -> Result:
    return Result(name, None, floor_name, None, None, status=why, limits=_limits(bounds, None, None), info=info)


def _row(name: str, ours: Series, plain: Series | None, bounds: dict[str, float], info: dict[str, Any]) -> Result:
    timing, plain_timing = ours.timing(), plain.timing() if plain is not None else None
    info["runs"] = len(ours.walls)
    info["peak_mb"] = ours.peak()
    info["peak_mb_runs"] = [round(p, 1) for p in ours.peaks]
    if plain is not None:
        info["plain"] = {"runs": len(plain.walls), "peak_mb": plain.peak(), "failure": plain.failure.brief() if plain.failure else None}
    status = "ok" if ours.failure is None else ours.failure.status
    if ours.failure is not None:
        info["failure"] = ours.failure.brief()
    return Result(
        name,
        timing.median if timing else None,
        PLAIN_NAME if plain is not None else "—",
        plain_timing.median if plain_timing else None,
        None,
        status=status if timing is None else "ok",
        ours_range=timing.range if timing else None,
        floor_range=plain_timing.range if plain_timing else None,
        limits=_limits(bounds, timing.median if timing else None, ours.peak()),
        info=info,
    )


def run(cfg: Config) -> list[Result]:
    size = sizes(cfg)
    cache = Cache(cfg.out, size.timeout_s)
    results: list[Result] = []
    blocked: str | None
    for contacts in size.contacts:
        blocked = None
        for day in size.days:
            print(f"  scale: idle {contacts:,} × day {day} …", flush=True, file=sys.stderr)
            result = idle_cell(cache, contacts, day, size, blocked)
            results.append(result)
            if result.ours_s is None and blocked is None:
                blocked = f"not tried: day {day} gave {result.status}"
    largest, blocked = size.contacts[-1], None
    for day in size.days:
        print(f"  scale: busy {largest:,} × day {day} …", flush=True, file=sys.stderr)
        result = busy_cell(cache, largest, day, cfg.times(1), blocked)
        results.append(result)
        if result.ours_s is None and blocked is None:
            blocked = f"not tried: day {day} gave {result.status}"
    print(f"  scale: --clock fast, {size.fast_contacts:,} contacts …", flush=True, file=sys.stderr)
    results.append(fast_clock(cache, size.fast_contacts))
    return results


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MB"


def _s(value: float | None, spread: Sequence[float] | None = None) -> str:
    if value is None:
        return "—"
    if spread and spread[0] != spread[1]:
        return f"{value:.3f} s ({spread[0]:.3f}–{spread[1]:.3f})"
    return f"{value:.3f} s"


def _met(result: Result) -> str:
    if result.ours_s is None:
        return f"no ({result.status})"
    return "yes" if result.met else "no"


def print_table(results: Sequence[Result]) -> None:
    """The scale table: contacts × day, catch-up, idle tick beside the plain script; then busy and fast."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 170
    idle = Table(title=f"scale · idle tick (target ≤ {IDLE_LIMITS['wall_s']:g} s, ≤ {IDLE_LIMITS['peak_mb']:g} MB) · median (min–max)")
    for column in ("contacts", "day", "catch-up s / MB", "idle s", "idle MB", f"{PLAIN_NAME} idle s", "met?"):
        idle.add_column(column, justify="left" if column == "met?" else "right")
    rest = Table(title=f"scale · busy pass (≤ {BUSY_LIMITS['peak_mb']:g} MB) and --clock fast (≤ {FAST_LIMITS['wall_s']:g} s)")
    for column in ("run", "catch-up s / MB", "wall", "peak", "met?"):
        rest.add_column(column, justify="left" if column in ("run", "met?") else "right")
    for r in results:
        catch = r.info.get("catch_up") or {}
        primed = f"{catch['wall_s']:.1f} s / {catch['peak_mb']:.0f} MB" if catch.get("status") == "ok" else (catch.get("status") or "—")
        if r.info.get("kind") == "idle":
            idle.add_row(f"{r.info['contacts']:,}", str(r.info["day"]), primed, _s(r.ours_s, r.ours_range), _mb(r.info.get("peak_mb")), _s(r.floor_s, r.floor_range), _met(r))
        else:
            rest.add_row(r.name.removeprefix("scale "), primed if r.info.get("kind") == "busy" else "—", _s(r.ours_s), _mb(r.info.get("peak_mb")), _met(r))
    console.print(idle)
    console.print(rest)
