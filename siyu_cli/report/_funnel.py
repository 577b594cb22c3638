"""The funnel of playbook-spec.md: ordered stages, nth events, a window counted from entering.

One pass over the events of the stage types, sorted by (contact, time) inside SQLite, walked
contact by contact with a few numbers of state: no per-contact queries and no model objects
per row, so a million contacts and five million events take seconds.

Targets are benchmarks for a stage's STEP rate (its count over the previous stage's count):
`targets: {added: 0.15}` reads "15% of carded contacts add".
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlite_utils

from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import Funnel, LoadedPlaybook
from siyu_cli.report._stats import two_proportion_z, wilson

GROUPINGS = ("hook", "cohort", "tier", "source", "variant", "persona")
NONE = "(none)"
# unixepoch() arrived in SQLite 3.38; older libraries pay for strftime's text round trip.
_EPOCH = "unixepoch(at)" if sqlite3.sqlite_version_info >= (3, 38) else "CAST(strftime('%s', at) AS INTEGER)"


@dataclass
class StageResult:
    """One stage for all contacts in the report. Rates are None where the denominator is 0."""

    id: str
    label: str
    event: str
    nth: int
    count: int
    step_rate: float | None
    from_top: float | None
    median_seconds: float | None
    target: float | None
    met: bool | None


@dataclass
class GroupStage:
    """One stage within a group, with 95% Wilson intervals; lift and test only for variants vs holdout."""

    id: str
    count: int
    step_rate: float | None
    step_ci: tuple[float, float] | None
    from_top: float | None
    top_ci: tuple[float, float] | None
    lift: float | None = None
    relative_lift: float | None = None
    z: float | None = None
    p_value: float | None = None
    significant: bool | None = None


@dataclass
class FunnelGroup:
    key: str
    label: str
    entered: int
    holdout: bool
    stages: list[GroupStage]


@dataclass
class FunnelReport:
    """The funnel as computed; `to_dict()` is what `--json` prints."""

    playbook: str
    title: str
    window_seconds: int | None
    cohort: str | None
    since: str | None
    until: str | None
    entered: int
    synthetic: int
    stages: list[StageResult]
    by: str | None = None
    groups: list[FunnelGroup] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def human_duration(seconds: float | None) -> str:
    """'2d 3h', '5h 12m', '45m', '30s': the two largest units, as an operator says it."""
    if seconds is None:
        return "–"
    left = int(round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            amount, left = divmod(left, size)
            parts.append(f"{amount}{unit}")
        elif parts:
            break
        if len(parts) == 2:
            break
    return " ".join(parts)


def _median(values: array) -> float | None:  # type: ignore[type-arg]
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.astimezone(UTC).timestamp())


def require_funnel(playbook: LoadedPlaybook, purpose: str) -> Funnel:
    """The playbook's funnel, or an error that says how to add one."""
    if playbook.model.funnel is None:
        raise SiyuError(
            f"{playbook.path}: the playbook has no funnel {purpose}",
            hint="add `funnel: {stages: [{id: added, label: 加微, event: friend_added}, ...], targets: {...}}` (see playbook-spec.md, Funnel)",
        )
    return playbook.model.funnel


def _walk(evs: list[tuple[Any, ...]], types: tuple[str, ...], nths: tuple[int, ...], window: int | None) -> list[int] | None:
    """When the contact reached each stage (a prefix of the stages), from its events sorted by time.

    Rows are (contact, type, epoch, hook, cohort). A stage's event may be the previous stage's own
    event (at or after t includes t), which is how `order, nth: 2` after `order` counts from the first.
    """
    first = types[0]
    n = len(evs)
    start = 0
    while start < n and evs[start][1] != first:
        start += 1
    if start == n:
        return None
    t = evs[start][2]
    times = [t]
    limit = t + window if window is not None else None
    lo = start
    while lo and evs[lo - 1][2] == t:
        lo -= 1
    for k in range(1, len(types)):
        want, need, seen, hit = types[k], nths[k], 0, -1
        for j in range(lo, n):
            row = evs[j]
            if limit is not None and row[2] > limit:
                break
            if row[1] == want:
                seen += 1
                if seen == need:
                    hit = j
                    break
        if hit < 0:
            break
        t = evs[hit][2]
        times.append(t)
        lo = hit
        while lo and evs[lo - 1][2] == t:
            lo -= 1
    return times


def _entry_index(evs: list[tuple[Any, ...]], first: str) -> int:
    return next(i for i, row in enumerate(evs) if row[1] == first)


def funnel(
    db: sqlite_utils.Database,
    playbook: LoadedPlaybook,
    *,
    cohort: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str | None = None,
) -> FunnelReport:
    """Count each stage of the playbook's funnel; `since`/`until` bound the entry time ([since, until))."""
    spec = require_funnel(playbook, "to report")
    if by is not None and by not in GROUPINGS:
        raise UsageError(f"cannot group by {by!r}", hint=f"use --by one of: {', '.join(GROUPINGS)}")
    stages = spec.stages
    types = tuple(s.event for s in stages)
    nths = tuple(s.nth for s in stages)
    window_td = spec.window_delta
    window = int(window_td.total_seconds()) if window_td is not None else None
    lo, hi = _epoch(since), _epoch(until)
    keyer = _Keyer(db, playbook, by, need_cohort=cohort is not None)
    need_entry = by in ("hook", "cohort", "persona") or cohort is not None
    columns = "contact_id, type, " + _EPOCH + (", hook, cohort" if need_entry else "")
    distinct = sorted(set(types))
    sql = f"SELECT {columns} FROM events NOT INDEXED WHERE type IN ({', '.join('?' * len(distinct))}) ORDER BY contact_id, at, id"

    size = len(stages)
    counts = [0] * size
    deltas = [array("q") for _ in range(size)]
    group_counts: dict[str, list[int]] = {}
    synthetic_ids = _synthetic_ids(db)
    synthetic = 0
    first = types[0]
    for cid, rows in groupby(db.conn.execute(sql, distinct), itemgetter(0)):
        evs = list(rows)
        times = _walk(evs, types, nths, window)
        if times is None:
            continue
        t0 = times[0]
        if (lo is not None and t0 < lo) or (hi is not None and t0 >= hi):
            continue
        entry = evs[_entry_index(evs, first)] if need_entry else None
        if cohort is not None and keyer.cohort_of(cid, entry) != cohort:
            continue
        reached = len(times)
        for k in range(reached):
            counts[k] += 1
        for k in range(1, reached):
            deltas[k].append(times[k] - times[k - 1])
        if synthetic_ids and cid in synthetic_ids:
            synthetic += 1
        if by is not None:
            key = keyer.key(cid, entry)
            tally = group_counts.get(key)
            if tally is None:
                tally = group_counts[key] = [0] * size
            for k in range(reached):
                tally[k] += 1

    results: list[StageResult] = []
    for k, stage in enumerate(stages):
        previous = counts[k - 1] if k else None
        step = counts[k] / previous if previous else None
        target = spec.targets.get(stage.id)
        results.append(
            StageResult(
                id=stage.id,
                label=stage.label or stage.id,
                event=stage.event,
                nth=stage.nth,
                count=counts[k],
                step_rate=step,
                from_top=counts[k] / counts[0] if counts[0] else None,
                median_seconds=_median(deltas[k]) if k else None,
                target=target,
                met=None if target is None or step is None else step >= target,
            )
        )
    report = FunnelReport(
        playbook=playbook.id,
        title=playbook.model.title,
        window_seconds=window,
        cohort=cohort,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        entered=counts[0],
        synthetic=synthetic,
        stages=results,
        by=by,
    )
    if by is not None:
        report.groups = [_group(key, keyer, group_counts[key], stages) for key in keyer.order(group_counts)]
        if by == "variant":
            _lifts(report.groups)
    return report


def _group(key: str, keyer: _Keyer, tally: list[int], stages: Iterable[Any]) -> FunnelGroup:
    rows: list[GroupStage] = []
    for k, stage in enumerate(stages):
        previous = tally[k - 1] if k else None
        rows.append(
            GroupStage(
                id=stage.id,
                count=tally[k],
                step_rate=tally[k] / previous if previous else None,
                step_ci=wilson(tally[k], previous) if previous else None,
                from_top=tally[k] / tally[0] if tally[0] else None,
                top_ci=wilson(tally[k], tally[0]) if tally[0] else None,
            )
        )
    return FunnelGroup(key=key, label=keyer.label(key), entered=tally[0], holdout=key in keyer.holdouts, stages=rows)


def _lifts(groups: list[FunnelGroup]) -> None:
    """Each variant's rate from the top at every stage against the holdout's: the A/B read-out.

    Rates from the top (not step rates) because assignment splits whole contacts: conditioning on
    an earlier stage would compare groups the message itself may have reshaped.
    """
    holdout = next((g for g in groups if g.holdout), None)
    if holdout is None:
        return
    for group in groups:
        if group.holdout or group.key == NONE:
            continue
        for k in range(1, len(group.stages)):
            mine, base = group.stages[k], holdout.stages[k]
            if mine.from_top is None or base.from_top is None:
                continue
            mine.lift = mine.from_top - base.from_top
            mine.relative_lift = mine.from_top / base.from_top - 1 if base.from_top else None
            test = two_proportion_z(mine.count, group.entered, base.count, holdout.entered)
            if test is not None:
                mine.z, mine.p_value, mine.significant = test.z, test.p_value, test.significant


def _synthetic_ids(db: sqlite_utils.Database) -> set[str]:
    """Contacts `siyu simulate` made (extra.synthetic); the LIKE keeps json_extract off real rows."""
    rows = db.conn.execute(
        "SELECT contact_id FROM contacts WHERE extra LIKE '%synthetic%' AND json_extract(extra, '$.synthetic') = 1"
    )
    return {cid for (cid,) in rows}


class _Keyer:
    """What group a contact falls in for `--by`, from its entry event and its contact row."""

    def __init__(self, db: sqlite_utils.Database, playbook: LoadedPlaybook, by: str | None, *, need_cohort: bool) -> None:
        model = playbook.model
        self.by = by
        self.hooks = {h.id: h for h in model.hooks}
        self.hook_ids: dict[str, str] = {h.id: h.id for h in model.hooks}
        self.hook_ids.update({h.code: h.id for h in model.hooks if h.code})
        self.personas = {p.id: p for p in model.personas}
        self.accounts = {p.account: p.id for p in model.personas if p.account}
        self.holdouts: set[str] = set()
        self.variants: dict[str, str] = {}
        columns = ["contact_id"]
        if need_cohort or by == "cohort":
            columns.append("cohort")
        if by in ("hook", "persona", "source"):
            columns.append("source")
        if by == "tier":
            columns.append("tier")
        if by == "persona":
            columns.append("account")
        self.contacts: dict[str, tuple[Any, ...]] = {}
        self.column = {name: i for i, name in enumerate(columns)}
        if len(columns) > 1:
            sql = f"SELECT {', '.join(columns)} FROM contacts"
            self.contacts = {row[0]: row for row in db.conn.execute(sql)}
        if by == "variant":
            self._load_variants(db, playbook.id)
        self.key = self._key_function()

    def _attr(self, cid: str, name: str) -> Any:
        row = self.contacts.get(cid)
        return row[self.column[name]] if row is not None else None

    def cohort_of(self, cid: str, entry: tuple[Any, ...] | None) -> str | None:
        """The contact's cohort, else its entry event's."""
        return self._attr(cid, "cohort") or (entry[4] if entry else None)

    def hook_of(self, cid: str, entry: tuple[Any, ...] | None) -> str | None:
        """The entry event's hook (id or code), else the hook whose code or id is the contact's source."""
        raw = entry[3] if entry else None
        if raw:
            return self.hook_ids.get(raw, raw)
        source = self._attr(cid, "source")
        return self.hook_ids.get(source) if source else None

    def _key_function(self) -> Callable[[str, tuple[Any, ...] | None], str]:
        by = self.by
        if by == "hook":
            return lambda cid, entry: self.hook_of(cid, entry) or NONE
        if by == "cohort":
            return lambda cid, entry: self.cohort_of(cid, entry) or NONE
        if by in ("tier", "source"):
            name = by
            return lambda cid, entry: self._attr(cid, name) or NONE
        if by == "persona":
            return self._persona
        if by == "variant":
            return lambda cid, entry: self.variants.get(cid, NONE)
        return lambda cid, entry: NONE

    def _persona(self, cid: str, entry: tuple[Any, ...] | None) -> str:
        account = self._attr(cid, "account")
        if account in self.accounts:
            return self.accounts[account]
        hook = self.hooks.get(self.hook_of(cid, entry) or "")
        if hook is not None and hook.persona:
            return hook.persona
        return account or NONE

    def _load_variants(self, db: sqlite_utils.Database, playbook_id: str) -> None:
        """A contact's variant is the one of its earliest variant draft; a skipped 'holdout' draft marks the holdout."""
        rows = db.conn.execute(
            "SELECT target, variant, state, reason FROM drafts WHERE playbook_id = ? AND variant IS NOT NULL "
            "AND target LIKE 'contact:%' ORDER BY occurrence_at, draft_id",
            [playbook_id],
        )
        for target, variant, state, reason in rows:
            cid = target[len("contact:") :]
            if cid in self.variants:
                continue
            self.variants[cid] = variant
            if state == "skipped" and reason == "holdout":
                self.holdouts.add(variant)

    def label(self, key: str) -> str:
        if self.by == "hook" and key in self.hooks:
            hook = self.hooks[key]
            return f"{hook.title} {key}" if hook.title else key
        if self.by == "persona" and key in self.personas:
            return f"{self.personas[key].name} {key}"
        if self.by == "variant" and key in self.holdouts:
            return f"{key} 对照组"
        return key

    def order(self, groups: dict[str, list[int]]) -> list[str]:
        """Playbook order for hooks and personas; holdout after the variants; '(none)' last."""
        known: list[str] = []
        if self.by == "hook":
            known = list(self.hooks)
        elif self.by == "persona":
            known = list(self.personas)

        def rank(key: str) -> tuple[int, int, str]:
            if key == NONE:
                return (3, 0, key)
            if key in self.holdouts:
                return (2, 0, key)
            if key in known:
                return (0, known.index(key), key)
            return (1, 0, key)

        return sorted(groups, key=rank)
