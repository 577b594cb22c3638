"""siyu serve under WeCom's load: a real `siyu serve` process taking 200 encrypted callbacks a second for 60 s.

The client sends on a fixed schedule (open loop, as WeCom does: it does not wait for one callback to send
the next) from precomputed callbacks: 70% adds through a hook with a WelcomeCode, 15% group joins, 15%
deletes of contacts already in the store, each a new event. Floor: the same load from the same client
against a bare Starlette + uvicorn app that reads the body and answers "success" without decrypting or
recording (`python -m bench._serve --floor`), so the ratio is what decrypting, mapping and one SQLite
transaction per callback add to HTTP. Reported: nothing lost (events recorded = callbacks sent, all
distinct, one audit row each), latency p50/p99 of each, and each server's peak RSS (from wait4).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._data import insert_contacts
from bench._harness import ROOT, Config, Result, fmt_seconds, venv_python
from bench._hwm import peak_mb

HWM_SCRIPT = ROOT / "bench" / "_hwm.py"

CORP = "wwbench0000000001"
TOKEN = "benchtoken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
# SIYU_WECOM_API: nothing listens there, so serve's start-up token request stays on this machine (refused at once).
ENV = {"SIYU_WECOM_CORP_ID": CORP, "SIYU_WECOM_TOKEN": TOKEN, "SIYU_WECOM_AES_KEY": AES_KEY, "SIYU_WECOM_SECRET": "bench", "SIYU_WECOM_API": "http://127.0.0.1:9"}
CHAT = "wrBenchChat000000000000000000001"
EPOCH = 1764550800  # 2026-12-01 09:00 Shanghai
LIMITS = {"lost": 0.0, "p99_s": 1.0, "peak_mb": 150.0}  # WeCom waits 5 s; 1 s leaves room for a busy moment
PLAYBOOK = f"""siyu: 1
id: serve-bench
title: siyu serve benchmark
start: 2026-12-01
days: 30
personas:
  - {{id: host, name: 阿栖, account: wx_host_01, wecom_userid: aqi}}
groups:
  - {{id: g1, name: 福利群, persona: host, chat_id: {CHAT}}}
hooks:
  - {{id: card, kind: package_card, code: PKG01, tags: [包裹卡]}}
outputs:
  - {{type: wecom}}
"""


@dataclass
class Load:
    """What one run of the schedule saw: per-request latency, failures, and the achieved send rate."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    sent_over_s: float = 0.0

    def quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Server:
    """A server process, its URL, and (after stop) its peak RSS and what it wrote."""

    proc: subprocess.Popen[str]
    url: str
    lines: list[str]
    reader: threading.Thread
    peak_mb: float | None = None
    status: int | None = None

    @classmethod
    def start(cls, cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> Server:
        if cmd[0] == venv_python():
            cmd = [cmd[0], str(HWM_SCRIPT), *cmd[1:]]  # its own VmHWM as it exits (wait4's can hold a copy of the bench)
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        assert proc.stderr is not None
        first = proc.stderr.readline()
        if "listening on " not in first:
            proc.kill()
            raise RuntimeError(f"{' '.join(cmd)} did not start: {first}{proc.stderr.read()[-2000:]}")
        url = first.split("listening on ")[1].split()[0]
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        return cls(proc, url, lines, reader)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = self.status = os.waitstatus_to_exitcode(status)
        self.reader.join(10)
        own, _ = peak_mb("".join(self.lines))
        self.peak_mb = own if own is not None else usage.ru_maxrss / 1024  # KiB on Linux


def callbacks(n: int) -> list[tuple[dict[str, str], bytes]]:
    """n distinct callbacks, encrypted and signed as WeCom sends them."""
    from siyu_cli.wecom._crypto import CallbackCrypto

    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP)
    head = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><MsgType><![CDATA[event]]></MsgType>"
    made = []
    for i in range(n):
        at = EPOCH + i // 50
        if i % 20 < 14:
            body = (
                f"{head}<CreateTime>{at}</CreateTime><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                f"<UserID><![CDATA[aqi]]></UserID><ExternalUserID><![CDATA[wmBench{i:07d}]]></ExternalUserID><State><![CDATA[PKG01]]></State>"
                f"<WelcomeCode><![CDATA[W{i:07d}]]></WelcomeCode></xml>"
            )
        elif i % 20 < 17:
            body = (
                f"{head}<CreateTime>{at}</CreateTime><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[{CHAT}]]></ChatId>"
                f"<ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>3</JoinScene>"
                f"<MemChangeCnt>1</MemChangeCnt><MemChangeList><Item><![CDATA[wmJoin{i:07d}]]></Item></MemChangeList></xml>"
            )
        else:  # a customer already in the store removes the staff member
            body = (
                f"{head}<CreateTime>{at}</CreateTime><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]></ChangeType>"
                f"<UserID><![CDATA[aqi]]></UserID><ExternalUserID><![CDATA[c{i:07d}]]></ExternalUserID></xml>"
            )
        timestamp, nonce = str(at), f"{i:08d}"
        signature, sealed = crypto.seal(body, timestamp, nonce)
        made.append(({"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}, sealed))
    return made


async def _send(url: str, made: list[tuple[dict[str, str], bytes]], rate: float) -> Load:
    import httpx

    load = Load()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def one(params: dict[str, str], body: bytes) -> None:
            began = time.perf_counter()
            try:
                response = await client.post(url, params=params, content=body)
            except httpx.HTTPError as exc:
                load.failures.append(f"{type(exc).__name__}: {exc}")
                return
            load.latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or response.text != "success":
                load.failures.append(f"HTTP {response.status_code}: {response.text[:100]}")

        tasks = []
        start = time.perf_counter()
        for i, (params, body) in enumerate(made):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(params, body)))
        load.sent_over_s = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return load


def _recorded(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(db_path)
    try:
        events, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events WHERE event_id LIKE 'wecom-%'").fetchone()
        audited = conn.execute("SELECT COUNT(*) FROM wecom_callbacks").fetchone()[0]
        codes = conn.execute("SELECT COUNT(*) FROM wecom_welcome_codes").fetchone()[0]
    finally:
        conn.close()
    return {"events": events, "distinct": distinct, "callbacks_kept": audited, "welcome_codes": codes}


def run(cfg: Config) -> list[Result]:
    from siyu_cli.store import open_store

    rate, seconds = (50, 2) if cfg.tiny else ((200, 10) if cfg.quick else (200, 60))
    n = rate * seconds
    made = callbacks(n)
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-serve-"))
    env = {**os.environ, **ENV, "NO_COLOR": "1"}
    try:
        playbook = work / "serve.yaml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        db_path = work / "siyu.db"
        open_store(db_path).conn.close()
        insert_contacts(db_path, n)  # the customers the deletes name
        py = venv_python()
        floor = Server.start([py, "-m", "bench._serve", "--floor"], ROOT, env)
        try:
            floor_load = asyncio.run(_send(floor.url, made, rate))
        finally:
            floor.stop()
        ours = Server.start([py, "-m", "siyu_cli", "serve", str(playbook), "--port", "0", "--db", str(db_path)], work, env)
        try:
            ours_load = asyncio.run(_send(ours.url, made, rate))
        finally:
            ours.stop()
        recorded = _recorded(db_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lost = n - recorded["distinct"]
    p99, floor_p99 = ours_load.quantile(0.99), floor_load.quantile(0.99)
    info: dict[str, Any] = {
        "rate_per_s": rate,
        "seconds": seconds,
        "callbacks": n,
        "achieved_rate_per_s": round(n / ours_load.sent_over_s, 1) if ours_load.sent_over_s else None,
        **recorded,
        "failed_requests": len(ours_load.failures),
        "failures": ours_load.failures[:5],
        "p50_s": ours_load.quantile(0.5),
        "floor_p50_s": floor_load.quantile(0.5),
        "mean_s": statistics.fmean(ours_load.latencies) if ours_load.latencies else None,
        "peak_mb": ours.peak_mb,
        "floor_peak_mb": floor.peak_mb,
        "exit": ours.status,
        "floor_failed_requests": len(floor_load.failures),
    }
    limits = {
        "lost": {"value": float(lost + len(ours_load.failures)), "max": LIMITS["lost"]},
        "p99_s": {"value": p99, "max": LIMITS["p99_s"]},
        "peak_mb": {"value": ours.peak_mb, "max": LIMITS["peak_mb"]},
    }
    result = Result(f"serve {rate}/s × {seconds} s (p99)", p99, "bare Starlette+uvicorn, no decrypt/record", floor_p99, None, limits=limits, info=info)
    result.info["notes"] = [
        f"{n:,} callbacks at {info['achieved_rate_per_s']}/s: {recorded['distinct']:,} events recorded ({lost} lost, {len(ours_load.failures)} failed requests), "
        f"{recorded['callbacks_kept']:,} kept; latency p50 {fmt_seconds(info['p50_s'])} / p99 {fmt_seconds(p99)} "
        f"(floor {fmt_seconds(info['floor_p50_s'])} / {fmt_seconds(floor_p99)}); peak RSS {ours.peak_mb:.0f} MB (floor {floor.peak_mb:.0f} MB)"
    ]
    return [result]


def _floor() -> None:
    """The floor server: the same HTTP stack, reading the body and answering "success", nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from siyu_cli.serve._server import listen

    async def callback(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("success")

    sock = listen("127.0.0.1", 0)
    print(f"floor: listening on http://127.0.0.1:{sock.getsockname()[1]}/wecom/callback", file=sys.stderr, flush=True)
    asgi = Starlette(routes=[Route("/wecom/callback", callback, methods=["GET", "POST"])])
    uvicorn.Server(uvicorn.Config(asgi, log_level="warning", access_log=False, server_header=False)).run(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1:] == ["--floor"]:
        _floor()
