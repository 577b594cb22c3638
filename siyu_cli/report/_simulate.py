"""A labelled synthetic event log: what N contacts walking the funnel at given step rates would leave.

For demos and rehearsals before real data exists. Every row is marked (`extra.synthetic` on
contacts, `props.synthetic` on events, ids `sim-…`) so reports can say what is not real. Each
contact draws from its own generator seeded by (seed, number), so a run is deterministic and a
second run with the same seed rewrites the same rows instead of adding any.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import Funnel, LoadedPlaybook, parse_tags
from siyu_cli.report._funnel import require_funnel
from siyu_cli.store import immediate

DEFAULT_RATE = 0.5
TIERS = (("精准粉", 0.25), ("半精准粉", 0.35), ("泛粉", 0.40))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = (
    "小雨", "思琪", "子涵", "欣怡", "梓萱", "浩然", "宇轩", "一诺", "佳怡", "晨曦",
    "雨桐", "若汐", "可馨", "沐阳", "静怡", "俊杰", "诗涵", "明轩", "雅琪", "晓彤",
)
# How long after the previous stage each kind of event tends to come (seconds, min and max; log-uniform).
DELAYS = {
    "card_sent": (600, 86400),
    "friend_added": (600, 4 * 86400),
    "group_joined": (300, 2 * 86400),
    "message_replied": (60, 86400),
    "checkin": (3600, 86400),
    "order": (3600, 10 * 86400),
}
REPEAT_ORDER = (5 * 86400, 25 * 86400)
OTHER = (3600, 7 * 86400)
ORDER_TAGS = ("已购", "已下单")
REPEAT_TAGS = ("已复购",)
SYNTHETIC = json.dumps({"synthetic": True})


@dataclass
class Simulation:
    """What `simulate` wrote. `reached` counts contacts per stage as generated."""

    playbook: str
    seed: int
    contacts: int
    events: int
    new_events: int
    removed_events: int
    rates: dict[str, float]
    reached: dict[str, int]
    by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rates(items: list[str]) -> dict[str, float]:
    """`added=0.2` (repeatable, or comma-separated) → {'added': 0.2}."""
    rates: dict[str, float] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            try:
                rate = float(value)
            except ValueError:
                rate = math.nan
            if not sep or not name.strip() or math.isnan(rate):
                raise UsageError(f"--rates {part!r}: write STAGE=RATE, e.g. added=0.15")
            rates[name.strip()] = rate
    return rates


def _step_rates(spec: Funnel, rates: dict[str, float]) -> dict[str, float]:
    ids = [s.id for s in spec.stages]
    for name, rate in rates.items():
        if name not in ids:
            raise UsageError(f"--rates {name}: no such funnel stage", hint=f"stages: {', '.join(ids)}")
        if name == ids[0]:
            raise UsageError(f"--rates {name}: every simulated contact enters at the first stage; give rates for the later stages")
        if not 0 <= rate <= 1:
            raise UsageError(f"--rates {name}={rate}: a step rate is between 0 and 1")
    return {s.id: rates.get(s.id, spec.targets.get(s.id, DEFAULT_RATE)) for s in spec.stages[1:]}


def _delay(rng: random.Random, kind: str, repeat: bool) -> float:
    low, high = REPEAT_ORDER if (repeat and kind == "order") else DELAYS.get(kind, OTHER)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def simulate(
    db: sqlite_utils.Database,
    playbook: LoadedPlaybook,
    *,
    contacts: int,
    seed: int,
    rates: dict[str, float] | None = None,
    start: datetime | None = None,
) -> Simulation:
    """Write contacts sim-000001… and their funnel events; defaults: the playbook's targets, else 0.5."""
    spec = require_funnel(playbook, "to simulate")
    if contacts < 1:
        raise UsageError("--contacts must be at least 1")
    step = _step_rates(spec, rates or {})
    _refuse_real_ids(db)
    model = playbook.model
    window = spec.window_delta
    atoms = sorted({tag for expr in model.segments.values() for tag in parse_tags(expr).tags})
    order_tags = [t for t in atoms if t in ORDER_TAGS]
    repeat_tags = [t for t in atoms if t in REPEAT_TAGS]
    free_tags = [t for t in atoms if t not in ORDER_TAGS and t not in REPEAT_TAGS]
    priced = [p.price for p in model.products if p.price > 0] or [99.0]
    spread = timedelta(days=min(max(model.days // 3, 1), 14))
    checkin_later = {k for k, s in enumerate(spec.stages) if s.event == "checkin"}
    # Where the funnel tracks adds, a contact who never added is a card recipient, not a WeChat
    # contact: no tags, no account, so no beat or welcome sequence reaches them.
    adds_tracked = any(s.event == "friend_added" for s in spec.stages)
    reached = Counter({s.id: 0 for s in spec.stages})
    by_type: Counter[str] = Counter()
    contact_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    for number in range(1, contacts + 1):
        rng = random.Random(f"siyu-simulate:{seed}:{number}")
        cid = f"sim-{number:06d}"
        run = rng.choice(playbook.cohorts)
        hook = rng.choice(model.hooks) if model.hooks else None
        base = start or datetime.combine(run.start, time(9, 0), tzinfo=playbook.tz)
        entered = base + timedelta(seconds=rng.uniform(0, spread.total_seconds()))
        limit = entered + window if window is not None else None
        chain: list[tuple[str, datetime]] = [(spec.stages[0].event, entered)]
        reached[spec.stages[0].id] += 1
        t_prev = entered
        last_stage = 0
        for k, stage in enumerate(spec.stages[1:], start=1):
            if rng.random() >= step[stage.id]:
                break
            have = sum(1 for kind, at in chain if kind == stage.event and at >= t_prev)
            moment = chain[-1][1]
            for extra in range(max(stage.nth - have, 0)):
                gap = _delay(rng, stage.event, repeat=have + extra > 0)
                if limit is not None and moment + timedelta(seconds=gap) > limit:
                    gap = (limit - moment).total_seconds() * rng.random()
                moment = moment + timedelta(seconds=int(gap))
                chain.append((stage.event, moment))
            t_prev = [at for kind, at in chain if kind == stage.event and at >= t_prev][stage.nth - 1]
            reached[stage.id] += 1
            last_stage = k
        if any(spec.stages[k].event == "checkin" for k in range(last_stage + 1)) and not any(k > last_stage for k in checkin_later):
            first_checkin = next(at for kind, at in chain if kind == "checkin")
            for day in range(1, model.days):
                if rng.random() < 0.5:
                    chain.append(("checkin", first_checkin + timedelta(days=day, seconds=rng.randint(-3 * 3600, 3 * 3600))))
        chain.sort(key=lambda item: item[1])
        orders = sum(1 for kind, _ in chain if kind == "order")
        added = next((at for kind, at in chain if kind == "friend_added"), None if adds_tracked else entered)
        tier = rng.choices([t for t, _ in TIERS], [w for _, w in TIERS])[0]
        persona = hook.persona if hook and hook.persona else rng.choice(model.personas).id
        account = next((p.account for p in model.personas if p.id == persona), None)
        tags: list[str] = []
        if added is not None:
            tags = list(hook.tags) if hook else []
            tags += [t for t in free_tags if t not in tags and rng.random() < 0.3]
            tags += order_tags[:1] if orders else []
            tags += repeat_tags[:1] if orders > 1 else []
        else:
            account = None
        contact_rows.append(
            (
                cid,
                rng.choice(SURNAMES) + rng.choice(GIVEN),
                json.dumps(tags, ensure_ascii=False),
                (hook.code or hook.id) if hook else None,
                tier,
                account,
                run.id,
                to_db(added) if added else None,
                SYNTHETIC,
                to_db(entered),
            )
        )
        for index, (kind, at) in enumerate(chain):
            amount = rng.choice(priced) if kind == "order" else None
            group = rng.choice(run.group_ids) if kind == "group_joined" and run.group_ids else None
            hook_id = hook.id if hook and kind in ("card_sent", "friend_added") else None
            event_rows.append((f"sim-{seed}-{number:06d}-{index:02d}", kind, cid, to_db(at), hook_id, run.id, group, amount, SYNTHETIC))
            by_type[kind] += 1
    new_ids = {row[0] for row in event_rows}
    with immediate(db):
        old_ids = {
            eid
            for (eid,) in db.conn.execute(
                "SELECT event_id FROM events WHERE contact_id >= 'sim-' AND contact_id < ? AND event_id LIKE 'sim-%' AND props LIKE '%synthetic%'",
                [f"sim-{contacts + 1:06d}"],
            )
        }
        db.conn.executemany("DELETE FROM events WHERE event_id = ?", [(eid,) for eid in old_ids])
        db.conn.executemany(
            "INSERT INTO contacts (contact_id, name, tags, source, tier, account, cohort, added_at, extra, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(contact_id) DO UPDATE SET name = excluded.name, tags = excluded.tags, "
            "source = excluded.source, tier = excluded.tier, account = excluded.account, cohort = excluded.cohort, "
            "added_at = excluded.added_at, extra = excluded.extra, updated_at = excluded.updated_at",
            contact_rows,
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO events (event_id, type, contact_id, at, hook, cohort, group_id, amount, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            event_rows,
        )
    return Simulation(
        playbook=playbook.id,
        seed=seed,
        contacts=contacts,
        events=len(event_rows),
        new_events=len(new_ids - old_ids),
        removed_events=len(old_ids - new_ids),
        rates=step,
        reached=dict(reached),
        by_type=dict(sorted(by_type.items())),
    )


def _refuse_real_ids(db: sqlite_utils.Database) -> None:
    """A real contact that happens to be called sim-… must never be overwritten by made-up data."""
    row = db.conn.execute(
        "SELECT contact_id FROM contacts WHERE contact_id LIKE 'sim-%' AND NOT (extra LIKE '%synthetic%' AND json_extract(extra, '$.synthetic') = 1) LIMIT 1"
    ).fetchone()
    if row is not None:
        raise SiyuError(
            f"contact {row[0]} is in the store and is not synthetic; simulate would overwrite it",
            hint="simulate into a separate store with --db sim.db",
        )
