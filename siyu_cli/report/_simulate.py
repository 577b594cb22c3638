"""A labelled synthetic event log: what N contacts walking the funnel at given rates would leave.

For demos and rehearsals before real data exists. Every row is marked (`extra.synthetic` on
contacts, `props.synthetic` on events, ids `sim-…`) so reports can say what is not real. Each
contact draws from its own generator seeded by (seed, number), so a run is deterministic and a
second run with the same seed rewrites the same rows instead of adding any. A real contact whose
id happens to start with `sim-` is never overwritten: simulate refuses and names it.

No look-ahead. A contact row holds only what is known when the contact adds: name, tier, cohort,
account, source (the hook's code) and at most its tier tag (精准粉 / 半精准粉 / 泛粉, as a form or
a channel gives it; none when the hook's own tags already name the tier). Contacts who never add
(a card recipient who did not scan) get no tags and no account. Nothing is tagged from what the
contact will do: tags such as 已购 / 已复购 / 已退款 come only from the playbook's `rules:` and the
hooks' `tags:` as the simulated events happen (effective tags). For that, `card_sent` and
`friend_added` carry the hook the contact came through in their `hook` field (its code, else its
id); orders carry no hook.

How many. Each funnel stage is reached at a rate (the playbook's target, `--rates STAGE=RATE`,
else 0.5), drawn per contact, so the funnel's rates hold in expectation:

- A plain target (`added: 0.15`) is the step rate: of the contacts at the last required stage
  before it. A `{rate, of}` target (`ordered: {rate: 0.10, of: added}`, 开单率) is converted to
  the step rate that makes count(stage) / count(of) equal the rate in expectation (with `joined`
  required at 50%, that is 20% of joined). `--rates` replaces a stage's rate and keeps its base.
  A target no step rate can meet (more than every contact of the stage before) is refused.
- An optional stage (`optional: true`) is reached at its rate or skipped; a contact who skips it
  still goes on, and it does not move the clock: the next stage's event is timed from the last
  required stage reached (a contact may order without joining the group, or before joining).
- Fan tier shapes the first order (开单) without changing its expected rate: 精准粉 order
  TIER_LIFT 1.6×, 半精准粉 1.0×, 泛粉 0.6× as often as each other (normalised over the tiers
  drawn, shrunk toward 1× where a tier's rate would pass 100%). Tier: a tier tag among the hook's
  tags, else 半精准粉 for a `form` hook, else 25% 精准粉, 35% 半精准粉, 40% 泛粉 (TIERS).

When. Times are in the playbook's timezone:

- Entry: within the first third of the campaign (1–14 days) from the cohort's day 1 at 09:00 (or
  `--start`). A `card_sent` entry is a parcel shipped between 09:00 and 18:00.
- A package card is scanned DELIVERY 2–7 days after it was sent (the parcel's delivery time):
  `friend_added` comes 2–7 days after `card_sent` (uniform).
- People act in the day: adds, group joins, replies, orders, refunds and deletes follow an hourly
  profile (HOUR_WEIGHTS, peaks at noon and 20:00–22:00) that puts about 95% of them between
  08:00 and 23:00.
- Delays from the stage before (log-uniform): group join 5 min–2 days, reply 1 min–1 day,
  check-in 1 h–1 day, first order 1 h–10 days, each further order 5–25 days after the previous.
  Events later than the funnel's window after entering are pulled back inside it.
- A contact who reaches a check-in stage keeps checking in on half of the remaining campaign days.
- A funnel without a `friend_added` stage still writes each contact's add, through its hook,
  10 min–1 day before its entry (2–7 days after the card when the entry is `card_sent`), so
  hooks' tags and welcome sequences apply.

What. Order amounts are product prices, by the product ladder in `products:` (free products,
price 0, are gifts, not orders; without priced products: 9.9 relationship, 99 experience, 399
profit). A tier is chosen by weight, then a product of that tier at random:

- first order (FIRST_ORDER_MIX): relationship 35, traffic 25, experience 25, profit 12, lock_in 3;
  about 85% entry-level products, as 关系品 → 体验品 → 利润品 has it;
- repurchase (REPEAT_ORDER_MIX): relationship 5, traffic 10, experience 20, profit 45, lock_in 20;
- 精准粉 weigh profit and lock_in 2× (higher order value), 泛粉 0.5× (TIER_VALUE).

After the funnel:

- REFUND_RATE 3% of paid orders are refunded (`refund`, same amount, 1–5 days after the order).
- DELETE_RATE 5% of contacts who added delete the account (`friend_deleted`, 1 h–14 days after
  their last simulated event), the low end of the 5–10% a campaign loses to untargeted sends.
- Neither is written when the funnel itself has a `refund` or `friend_deleted` stage: the stage's
  rate decides those.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import sqlite_utils

from siyu_cli._time import to_db
from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import Funnel, Hook, LoadedPlaybook
from siyu_cli.report._funnel import require_funnel
from siyu_cli.store import immediate

MINUTE, HOUR, DAY = 60, 3600, 86400
DEFAULT_RATE = 0.5
TIERS = (("精准粉", 0.25), ("半精准粉", 0.35), ("泛粉", 0.40))
FORM_TIER = "半精准粉"  # 半精准粉 came through a form (skin type, how many years…)
TIER_LIFT = {"精准粉": 1.6, "半精准粉": 1.0, "泛粉": 0.6}  # relative propensity to place a first order
TIER_VALUE = {"精准粉": 2.0, "半精准粉": 1.0, "泛粉": 0.5}  # weight on profit / lock_in products
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = (
    "小雨", "思琪", "子涵", "欣怡", "梓萱", "浩然", "宇轩", "一诺", "佳怡", "晨曦",
    "雨桐", "若汐", "可馨", "沐阳", "静怡", "俊杰", "诗涵", "明轩", "雅琪", "晓彤",
)

# When people act, by local hour 0..23 (relative weights). About 95% of the mass is 08:00–23:00.
HOUR_WEIGHTS = (
    0.8, 0.3, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2,  # 00–07
    4, 5, 6, 6, 7, 6, 5, 5,  # 08–15
    5, 5, 6, 7, 9, 10, 8, 1.5,  # 16–23
)
ACTIVE_HOURS = (8, 23)  # [08:00, 23:00): where the profile puts about 95% of adds and orders
SHIP_WEIGHTS = tuple(1.0 if 9 <= h < 18 else 0.0 for h in range(24))  # parcels leave 09:00–18:00
DELIVERY = (2 * DAY, 7 * DAY)  # card_sent → friend_added: the parcel's delivery, then the scan (uniform)
# How long after the stage before each kind of event tends to come (seconds, min and max; log-uniform).
DELAYS = {
    "friend_added": (10 * MINUTE, 4 * DAY),
    "group_joined": (5 * MINUTE, 2 * DAY),
    "message_replied": (MINUTE, DAY),
    "checkin": (HOUR, DAY),
    "order": (HOUR, 10 * DAY),
}
REPEAT_ORDER = (5 * DAY, 25 * DAY)
OTHER = (HOUR, 7 * DAY)
ADD_BEFORE_ENTRY = (10 * MINUTE, DAY)  # funnels without an add stage: the add before the entry
CHECKIN_SHARE = 0.5  # after reaching a check-in stage, the share of remaining days checked in
REFUND_RATE = 0.03  # of paid orders
REFUND_DELAY = (DAY, 5 * DAY)  # uniform
DELETE_RATE = 0.05  # of contacts who added
DELETE_DELAY = (HOUR, 14 * DAY)  # log-uniform, after the contact's last simulated event
FIRST_ORDER_MIX = {"relationship": 35, "traffic": 25, "experience": 25, "profit": 12, "lock_in": 3}
REPEAT_ORDER_MIX = {"relationship": 5, "traffic": 10, "experience": 20, "profit": 45, "lock_in": 20}
FALLBACK_LADDER = (("relationship", 9.9), ("experience", 99.0), ("profit", 399.0))
TRIES = 60  # draws before a moment is taken whatever its hour
SYNTHETIC = {"synthetic": True}
SYNTHETIC_JSON = json.dumps(SYNTHETIC)
_MAX_HOUR = max(HOUR_WEIGHTS)


@dataclass
class Simulation:
    """What `simulate` wrote.

    `asked` is each stage's rate as given (target, --rates or default) with its base (`of`, None =
    the step); `rates` the step rates drawn (of the last required stage before); `reached` counts
    contacts per stage as generated, which the funnel report reads back.
    """

    playbook: str
    seed: int
    contacts: int
    events: int
    new_events: int
    removed_events: int
    rates: dict[str, float]
    reached: dict[str, int]
    by_type: dict[str, int] = field(default_factory=dict)
    asked: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rates(items: list[str]) -> dict[str, float]:
    """`added=0.2` or `added=20%` (repeatable, or comma-separated) → {'added': 0.2}."""
    rates: dict[str, float] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            value = value.strip().replace("％", "%")
            percent = value.endswith("%")
            try:
                rate = float(value.removesuffix("%")) / (100 if percent else 1)
            except ValueError:
                rate = math.nan
            if not sep or not name.strip() or math.isnan(rate):
                raise UsageError(f"--rates {part!r}: write STAGE=RATE, e.g. added=0.15 or added=15%")
            if not percent and 1 < rate <= 100:
                raise UsageError(f"--rates {part!r}: a rate is a share between 0 and 1", hint=f"write {name.strip()}={rate / 100:g} or {name.strip()}={rate:g}%")
            if name.strip() in rates and rates[name.strip()] != rate:
                raise UsageError(f"--rates gives {name.strip()} two rates, {rates[name.strip()]:g} and {rate:g}", hint="give it once")
            rates[name.strip()] = rate
    return rates


def _last_required(spec: Funnel, k: int) -> int:
    return next(j for j in range(k - 1, -1, -1) if not spec.stages[j].optional)


def by_stage(stages: Sequence[Any], rates: dict[str, float], aliases: dict[str, str] | None = None) -> dict[str, float]:
    """`--rates` keyed by stage id, each named by its id or by its stage's event (friend_added=0.3 for the stage
    whose event is friend_added); `aliases` name stages the funnel does not have (plan capacity's `added`)."""
    ids = {stage.id for stage in stages}
    found: dict[str, float] = {}
    for name, rate in rates.items():
        stage = name
        if name not in ids:
            matching = [s.id for s in stages if s.event == name]
            if len(matching) > 1:
                raise UsageError(f"--rates {name}: stages {', '.join(matching)} are all {name} events", hint=f"name the stage: {matching[0]}=RATE")
            stage = matching[0] if matching else (aliases or {}).get(name, name)
        if stage in found and found[stage] != rate:
            raise UsageError(f"--rates gives stage {stage} two rates, {found[stage]:g} and {rate:g} (as {name})", hint="give it once")
        found[stage] = rate
    return found


def step_rates(spec: Funnel, rates: dict[str, float]) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """The step rate each stage is drawn at, so the asked rates hold in expectation; and what was asked.

    A stage's asked rate is `--rates` (by stage id or event), else its target, else DEFAULT_RATE, held against
    the target's base (`of`) when it has one. f[k], the expected share of entrants reaching stage k, is
    f[last required before k] × step[k]; a `{rate, of}` target wants f[k] / f[of] = rate.
    """
    rates = by_stage(spec.stages, rates)
    ids = [s.id for s in spec.stages]
    for name, rate in rates.items():
        if name not in ids:
            raise UsageError(f"--rates {name}: no such funnel stage", hint=f"stages: {', '.join(ids)}")
        if name == ids[0]:
            raise UsageError(f"--rates {name}: every simulated contact enters at the first stage; give rates for the later stages")
        if not 0 <= rate <= 1:
            raise UsageError(f"--rates {name}={rate}: a rate is between 0 and 1")
    share = [1.0]
    step: dict[str, float] = {}
    asked: dict[str, dict[str, Any]] = {}
    for k, stage in enumerate(spec.stages[1:], start=1):
        target = spec.target(stage.id)
        base = target[1] if target else None
        rate = rates.get(stage.id, target[0] if target else DEFAULT_RATE)
        asked[stage.id] = {"rate": rate, "of": base}
        before = _last_required(spec, k)
        value = rate
        if base is not None and base != ids[before]:
            if base not in ids or ids.index(base) >= k:
                raise UsageError(f"funnel target {stage.id}: its base {base!r} is not a stage before it")
            if share[before] > 0:
                value = rate * share[ids.index(base)] / share[before]
            if value > 1 + 1e-9:
                raise UsageError(
                    f"{stage.id} at {rate:.1%} of {base} would need more than every {ids[before]} contact "
                    f"({ids[before]} is {share[before] / share[ids.index(base)]:.1%} of {base})",
                    hint=f"lower the target, or raise the stages between with --rates {ids[before]}=RATE",
                )
            value = round(min(value, 1.0), 12)
        step[stage.id] = value
        share.append(share[before] * value)
    return step, asked


def _accept(rng: random.Random, moment: datetime, tz: tzinfo, weights: Sequence[float], top: float) -> bool:
    return rng.random() * top < weights[moment.astimezone(tz).hour]


def _after(
    rng: random.Random,
    anchor: datetime,
    span: tuple[float, float],
    tz: tzinfo,
    *,
    limit: datetime | None = None,
    log: bool = True,
    weights: Sequence[float] = HOUR_WEIGHTS,
    before: bool = False,
) -> datetime:
    """A moment `span` after `anchor` (whole seconds), at an hour people act, no later than `limit`.

    Rejection on the local hour keeps the delay's shape while moving the mass into the day; a span
    that does not fit before `limit` shrinks to what is left. `before`: `span` before `anchor`.
    """
    low, high = span
    if limit is not None:
        room = (limit - anchor).total_seconds()
        if room <= 0:
            return anchor
        if high > room:
            high = room
            low = min(low, room / 2)
    top = max(weights)
    moment = anchor
    for _ in range(TRIES):
        gap = math.exp(rng.uniform(math.log(max(low, 1.0)), math.log(max(high, 1.0)))) if log else rng.uniform(low, high)
        moment = anchor + timedelta(seconds=-int(gap) if before else int(gap))
        if _accept(rng, moment, tz, weights, top):
            break
    return moment


def _hook_tier(hook: Hook | None) -> list[tuple[str, float]]:
    """The tiers a contact coming through this hook may have, with weights."""
    names = [t for t, _ in TIERS]
    if hook is not None:
        given = [t for t in hook.tags if t in names]
        if given:
            return [(given[0], 1.0)]
        if hook.kind == "form":
            return [(FORM_TIER, 1.0)]
    return list(TIERS)


def _tier_factors(hooks: Sequence[Hook | None], rate: float) -> dict[str, float]:
    """Per-tier multipliers of the first-order rate whose mean over the tiers drawn is exactly 1."""
    mix: Counter[str] = Counter()
    for hook in hooks:
        options = _hook_tier(hook)
        total = sum(w for _, w in options)
        for tier, weight in options:
            mix[tier] += weight / total / len(hooks)
    mean = sum(TIER_LIFT[t] * w for t, w in mix.items())
    lift = {t: TIER_LIFT[t] / mean for t in TIER_LIFT}
    top = max(lift[t] for t in mix)
    shrink = 1.0
    if rate > 0 and rate * top > 1:
        shrink = (1 / rate - 1) / (top - 1) if top > 1 else 0.0
    return {t: 1 + shrink * (lift[t] - 1) for t in TIER_LIFT}


class _Ladder:
    """Order amounts by the product ladder: a tier by weight, then one of its products."""

    def __init__(self, products: Sequence[Any]) -> None:
        self.by_tier: dict[str, list[tuple[str | None, float]]] = {}
        for product in products:
            if product.price > 0:
                self.by_tier.setdefault(product.tier, []).append((product.id, float(product.price)))
        if not self.by_tier:
            for tier, price in FALLBACK_LADDER:
                self.by_tier[tier] = [(None, price)]

    def pick(self, rng: random.Random, *, first: bool, tier: str) -> tuple[str | None, float]:
        mix = FIRST_ORDER_MIX if first else REPEAT_ORDER_MIX
        tiers = list(self.by_tier)
        weights = [mix.get(t, 1) * (TIER_VALUE.get(tier, 1.0) if t in ("profit", "lock_in") else 1.0) for t in tiers]
        chosen = rng.choices(tiers, weights)[0]
        return rng.choice(self.by_tier[chosen])


def simulate(
    db: sqlite_utils.Database,
    playbook: LoadedPlaybook,
    *,
    contacts: int,
    seed: int,
    rates: dict[str, float] | None = None,
    start: datetime | None = None,
) -> Simulation:
    """Write contacts sim-000001… and their events; rates default to the playbook's targets, else 0.5."""
    spec = require_funnel(playbook, "to simulate")
    if contacts < 1:
        raise UsageError("--contacts must be at least 1")
    step, asked = step_rates(spec, rates or {})
    _refuse_real_ids(db)
    model = playbook.model
    tz = playbook.tz
    window = spec.window_delta
    stages = spec.stages
    stage_events = {s.event for s in stages}
    # Where the funnel tracks adds, a contact who never added is a card recipient, not a WeChat
    # contact: no tags, no account, so no beat or welcome sequence reaches them.
    adds_tracked = "friend_added" in stage_events
    refunds = "refund" not in stage_events
    deletes = "friend_deleted" not in stage_events
    card_hooks = [h for h in model.hooks if h.kind == "package_card"]
    entry_hooks: list[Hook | None] = (
        list(card_hooks if stages[0].event == "card_sent" and card_hooks else model.hooks) or [None]
    )
    first_order = next((k for k, s in enumerate(stages) if k and s.event == "order" and s.nth == 1), None)
    factors = _tier_factors(entry_hooks, step[stages[first_order].id]) if first_order is not None else {}
    ladder = _Ladder(model.products)
    spread = timedelta(days=min(max(model.days // 3, 1), 14)).total_seconds()
    tier_names = {t for t, _ in TIERS}
    reached = Counter({s.id: 0 for s in stages})
    by_type: Counter[str] = Counter()
    contact_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    for number in range(1, contacts + 1):
        rng = random.Random(f"siyu-simulate:{seed}:{number}")
        cid = f"sim-{number:06d}"
        run = rng.choice(playbook.cohorts)
        hook = rng.choice(entry_hooks)
        hook_ref = (hook.code or hook.id) if hook else None
        options = _hook_tier(hook)
        tier = rng.choices([t for t, _ in options], [w for _, w in options])[0]
        base = (start or datetime.combine(run.start, time(9, 0), tzinfo=tz)).replace(microsecond=0)
        entry_weights = SHIP_WEIGHTS if stages[0].event == "card_sent" else HOUR_WEIGHTS
        entered = _after(rng, base, (0, spread), tz, log=False, weights=entry_weights)
        limit = entered + window if window is not None else None
        # (type, moment) of every event, the entry first.
        chain: list[tuple[str, datetime]] = [(stages[0].event, entered)]
        reached[stages[0].id] += 1
        done = [True] + [False] * (len(stages) - 1)
        t_req, req_event = entered, stages[0].event  # the last required stage reached: the clock later stages count from
        for k, stage in enumerate(stages[1:], start=1):
            rate = step[stage.id] * (factors.get(tier, 1.0) if k == first_order else 1.0)
            hit = rng.random() < rate
            existing = sorted(at for kind, at in chain if kind == stage.event and at >= t_req and (limit is None or at <= limit))
            if hit:
                anchor = existing[-1] if existing else t_req
                for extra in range(max(stage.nth - len(existing), 0)):
                    repeat = len(existing) + extra > 0
                    if stage.event == "friend_added" and req_event == "card_sent" and not repeat:
                        span, log = DELIVERY, False
                    else:
                        span = REPEAT_ORDER if (repeat and stage.event == "order") else DELAYS.get(stage.event, OTHER)
                        log = True
                    anchor = _after(rng, anchor, span, tz, limit=limit, log=log)
                    chain.append((stage.event, anchor))
                    existing.append(anchor)
            if hit or len(existing) >= stage.nth:
                done[k] = True
                reached[stage.id] += 1
                if not stage.optional:
                    t_req, req_event = existing[stage.nth - 1], stage.event
            elif not stage.optional:
                break
        chain.sort(key=lambda item: item[1])
        if any(done[k] and s.event == "checkin" for k, s in enumerate(stages)) and not any(
            not done[k] and s.event == "checkin" for k, s in enumerate(stages)
        ):
            last = max(at for kind, at in chain if kind == "checkin")
            for day in range(1, model.days):
                if rng.random() < CHECKIN_SHARE:
                    chain.append(("checkin", last + timedelta(days=day, seconds=rng.randint(-3 * HOUR, 3 * HOUR))))
        added = next((at for kind, at in chain if kind == "friend_added"), None)
        if not adds_tracked:
            if stages[0].event == "card_sent":
                added = _after(rng, entered, DELIVERY, tz, log=False)
            else:
                added = _after(rng, entered, ADD_BEFORE_ENTRY, tz, before=True)
            chain.append(("friend_added", added))
        chain.sort(key=lambda item: item[1])
        # Amounts: first orders and repurchases by the product ladder; refunds give a paid order back.
        events: list[tuple[str, datetime, float | None, str | None]] = []
        orders = 0
        last_paid: tuple[float, str | None] | None = None
        for kind, at in chain:
            amount: float | None = None
            product: str | None = None
            if kind == "order":
                product, amount = ladder.pick(rng, first=orders == 0, tier=tier)
                orders += 1
                last_paid = (amount, product)
            elif kind == "refund" and last_paid is not None:
                amount, product = last_paid
            events.append((kind, at, amount, product))
        if refunds:
            for kind, at, amount, product in list(events):
                if kind == "order" and amount and rng.random() < REFUND_RATE:
                    events.append(("refund", _after(rng, at, REFUND_DELAY, tz, log=False), amount, product))
        if deletes and added is not None and rng.random() < DELETE_RATE:
            last_at = max(at for _, at, _, _ in events)
            events.append(("friend_deleted", _after(rng, last_at, DELETE_DELAY, tz), None, None))
        events.sort(key=lambda item: item[1])

        persona = hook.persona if hook and hook.persona else rng.choice(model.personas).id
        account = next((p.account for p in model.personas if p.id == persona), None)
        tags: list[str] = []
        if added is None:
            account = None
        elif not any(t in tier_names for t in (hook.tags if hook else [])):
            tags = [tier]
        contact_rows.append(
            (
                cid,
                rng.choice(SURNAMES) + rng.choice(GIVEN),
                json.dumps(tags, ensure_ascii=False),
                hook_ref,
                tier,
                account,
                run.id,
                to_db(added) if added else None,
                SYNTHETIC_JSON,
                to_db(entered),
            )
        )
        for index, (kind, at, amount, product) in enumerate(events):
            group = rng.choice(run.group_ids) if kind == "group_joined" and run.group_ids else None
            through = hook_ref if kind in ("card_sent", "friend_added") else None
            props = SYNTHETIC_JSON if product is None else json.dumps({**SYNTHETIC, "product": product})
            event_rows.append((f"sim-{seed}-{number:06d}-{index:02d}", kind, cid, to_db(at), through, run.id, group, amount, props))
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
        asked=asked,
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
