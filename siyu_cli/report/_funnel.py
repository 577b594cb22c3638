"""The funnel of playbook-spec.md: ordered stages, optional stages, nth events, a window from entering.

One sorted pass over the events of the stage types (`funnel_query`), fetched in chunks of whole
contacts. A contact's walk depends only on the sequence of its event types unless two of its
events share a time or a hit falls outside the window, so the walk is computed once per type
sequence and looked up for every contact with that sequence (`_Memo`); contacts with ties or
late hits are walked on their own times. Counting, medians and groups are tallied per outcome,
in bulk, so a million contacts and five million events take seconds.

Targets: a number is the benchmark for a stage's STEP rate (its count over the count of the last
required stage before it): `added: 0.15` reads "15% of carded contacts add". `{rate, of}` is held
against count(stage) / count(of): `ordered: {rate: 0.10, of: added}` is 开单率.
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import compress, count, islice
from operator import attrgetter, itemgetter, ne, not_, sub
from typing import Any

import sqlite_utils

from siyu_cli.errors import SiyuError, UsageError
from siyu_cli.playbook import Funnel, LoadedPlaybook
from siyu_cli.report._stats import two_proportion_z, wilson

GROUPINGS = ("hook", "cohort", "tier", "source", "variant", "persona", "touch")
NONE = "(none)"
CHANNELS = ("live", "group", "private", "journey", "welcome", "none")
ONE_ON_ONE = ("private", "journey", "welcome")  # every private draft to the contact is 1v1 (私聊)
TOUCH_SECONDS = 24 * 3600
MIN_CELL = 10  # fewer successes or failures than this and the z-test's normal approximation fails
CHUNK = 16384  # rows per fetch: small enough to stay in cache, large enough to amortise the bulk steps
MEMO_LIMIT = 200_000  # distinct event-type sequences remembered; beyond, contacts are walked one by one
BETTER, WORSE, SAME = "better", "worse", "no significant difference"


def _epoch_sql(column: str) -> str:
    """unixepoch() arrived in SQLite 3.38; older libraries pay for strftime's text round trip."""
    return f"unixepoch({column})" if sqlite3.sqlite_version_info >= (3, 38) else f"CAST(strftime('%s', {column}) AS INTEGER)"


@dataclass
class StageResult:
    """One stage for all contacts in the report. Rates are None where the denominator is 0.

    `base` is the stage the step rate and the median time are counted from: the last required
    stage before this one. `target_rate` is the rate the target is held against: the step rate,
    or count / count(target_of) for a `{rate, of}` target.
    """

    id: str
    label: str
    event: str
    nth: int
    optional: bool
    base: str | None
    count: int
    step_rate: float | None
    from_top: float | None
    median_seconds: float | None
    target: float | None
    target_of: str | None
    target_rate: float | None
    met: bool | None


@dataclass
class GroupStage:
    """One stage within a group, with 95% Wilson intervals.

    Lift and test only where the grouping has a baseline (variants against the holdout, hooks
    against the first hook): the rate from the top against the baseline's, a verdict, and
    `small_sample` when either side has fewer than 10 successes or failures.
    """

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
    verdict: str | None = None
    small_sample: bool | None = None


@dataclass
class FunnelGroup:
    key: str
    label: str
    entered: int
    holdout: bool
    stages: list[GroupStage]
    baseline: bool = False


@dataclass
class TouchStage:
    """Contacts who reached a stage by the channel that last touched them in the 24 h before.

    `ratio` is live : group : 1v1 (private, journey and welcome drafts) with live as 1, as the
    seeds' "live : group : 1v1 ≈ 1 : 1.5 : 2" is written; None without live touches.
    """

    id: str
    count: int
    channels: dict[str, int]
    share: dict[str, float | None]
    ratio: dict[str, float] | None


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
    baseline: str | None = None
    groups: list[FunnelGroup] = field(default_factory=list)
    touches: list[TouchStage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
    ordered = values.tolist()
    ordered.sort()
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


def _stage_bases(spec: Funnel) -> list[int]:
    """For each stage, the index of the last required stage before it (0 for the first stage itself)."""
    bases, last = [], 0
    for k, stage in enumerate(spec.stages):
        bases.append(last)
        if not stage.optional:
            last = k
    return bases


def _event_codes(spec: Funnel) -> dict[str, int]:
    """Each event type of the stages as a small number, in order of first appearance."""
    codes: dict[str, int] = {}
    for stage in spec.stages:
        codes.setdefault(stage.event, len(codes))
    return codes


def funnel_query(spec: Funnel, *, entry: bool = False) -> tuple[str, list[str]]:
    """The one SELECT the funnel reads: (contact, type code, epoch[, hook, cohort]) by contact, time, id.

    NOT INDEXED: one scan and one sort beat a lookup per row through events_contact_at when the
    events were imported in time order, as they are.
    """
    codes = _event_codes(spec)
    case = "CASE type " + " ".join(f"WHEN ? THEN {code}" for code in codes.values()) + " END"
    columns = f"contact_id, {case}, {_epoch_sql('at')}" + (", hook, cohort" if entry else "")
    sql = f"SELECT {columns} FROM events NOT INDEXED WHERE type IN ({', '.join('?' * len(codes))}) ORDER BY contact_id, at, id"
    return sql, [*codes, *codes]


def contact_chunks(cursor: sqlite3.Cursor) -> Iterator[list[tuple[Any, ...]]]:
    """The rows in lists of whole contacts: a contact cut by the end of a fetch goes into the next list."""
    carry: list[tuple[Any, ...]] = []
    while rows := cursor.fetchmany(CHUNK):
        if carry:
            rows[:0] = carry
        last = rows[-1][0]
        cut = len(rows) - 1
        while cut and rows[cut - 1][0] == last:
            cut -= 1
        carry = rows[cut:]
        del rows[cut:]
        if rows:
            yield rows
    if carry:
        yield carry


class _Outcome:
    """Where a walk ended, as offsets from the contact's first row: one object per distinct outcome.

    `starts` collects, per chunk, the first rows of the contacts with this outcome, so their
    times to each stage are taken in bulk.
    """

    __slots__ = ("hits", "reached", "entry", "last", "pairs", "starts")

    def __init__(self, hits: tuple[int, ...], bases: Sequence[int]) -> None:
        self.hits = hits
        self.reached = tuple(k for k, hit in enumerate(hits) if hit >= 0)
        self.entry = hits[0]
        self.last = max(hits)
        self.pairs = tuple((k, hits[k], hits[bases[k]]) for k in self.reached if k)
        self.starts: list[int] = []


class _Walker:
    """The stages compiled to event codes; walks one contact's rows and interns the outcomes."""

    def __init__(self, spec: Funnel, window: int | None) -> None:
        codes = _event_codes(spec)
        self.first = codes[spec.stages[0].event]
        self.later = tuple((codes[s.event], s.nth, s.optional) for s in spec.stages[1:])
        self.size = len(spec.stages)
        self.bases = _stage_bases(spec)
        self.window = window
        self.outcomes: dict[tuple[int, ...], _Outcome] = {}
        self.nowhere = self.outcome((-1,) * self.size)
        self.memo = _Memo(self)

    def outcome(self, hits: tuple[int, ...]) -> _Outcome:
        found = self.outcomes.get(hits)
        if found is None:
            found = self.outcomes[hits] = _Outcome(hits, self.bases)
        return found

    def walk(self, codes: bytes, times: Sequence[int], start: int, end: int, window: int | None) -> _Outcome:
        """The spec's walk over rows [start, end) of one contact, sorted by time.

        A stage is reached at the nth event of its type at or after the time of the last
        required stage reached (events sharing that time count, whichever row came first), and
        no later than `window` after entering. A missed optional stage is skipped; a missed
        required stage ends the walk. `times` may be a range: then no two rows share a time.
        """
        i = codes.find(self.first, start, end)
        if i < 0:
            return self.nowhere
        t = times[i]
        hi = end if window is None else bisect_right(times, t + window, i, end)
        lo = bisect_left(times, t, start, i)
        hits = [i - start]
        for code, nth, optional in self.later:
            j = codes.find(code, lo, hi)
            for _ in range(nth - 1):
                if j < 0:
                    break
                j = codes.find(code, j + 1, hi)
            if j < 0:
                if not optional:
                    break
                hits.append(-1)
                continue
            hits.append(j - start)
            if not optional:
                lo = bisect_left(times, times[j], lo, j)
        hits.extend([-1] * (self.size - len(hits)))
        return self.outcome(tuple(hits))


class _Memo(dict[bytes, _Outcome]):
    """Event-type sequence → the walk's outcome when times do not matter (no ties, all in the window)."""

    def __init__(self, walker: _Walker) -> None:
        super().__init__()
        self.walker = walker

    def __missing__(self, key: bytes) -> _Outcome:
        found = self.walker.walk(key, range(len(key)), 0, len(key), None)
        if len(self) < MEMO_LIMIT:
            self[key] = found
        return found


_CONTACT, _CODE, _TIME = itemgetter(0), itemgetter(1), itemgetter(2)
_PAIRS = attrgetter("pairs")
_REACHED = attrgetter("reached")


class _Tally:
    """What one pass counts: contacts per outcome (and per group and outcome), times, touches."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.outcomes: Counter[_Outcome] = Counter()
        self.grouped: Counter[tuple[str, _Outcome]] = Counter()
        self.deltas = [array("q") for _ in range(size)]
        self.touches: list[Counter[str]] = [Counter() for _ in range(size)]
        self.synthetic = 0

    def counts(self, outcomes: Counter[_Outcome]) -> list[int]:
        found = [0] * self.size
        for outcome, n in outcomes.items():
            for k in outcome.reached:
                found[k] += n
        return found


def _scan(
    db: sqlite_utils.Database,
    spec: Funnel,
    window: int | None,
    *,
    keep: Callable[[tuple[Any, ...]], bool] | None,
    key: Callable[[str, tuple[Any, ...]], str] | None,
    touch: _Touches | None,
    synthetic_ids: set[str],
    entry_columns: bool,
) -> _Tally:
    """One pass over the events: each contact's outcome, then everything counted per outcome in bulk.

    `keep` decides from a contact's entry row whether it is in the report (--since, --until,
    --cohort); `key` names its group (--by); `touch` attributes each stage reached to a channel.
    """
    walker = _Walker(spec, window)
    memo, nowhere = walker.memo, walker.nowhere
    latest = window if window is not None else 1 << 62
    tally = _Tally(walker.size)
    sql, params = funnel_query(spec, entry=entry_columns)
    for rows in contact_chunks(db.conn.execute(sql, params)):
        n = len(rows)
        cids = list(map(_CONTACT, rows))
        codes = bytes(map(_CODE, rows))
        times = list(map(_TIME, rows))
        starts = [0, *compress(range(1, n), map(ne, islice(cids, 1, None), cids))]
        ends = starts[1:]
        ends.append(n)
        outcomes = list(map(memo.__getitem__, map(codes.__getitem__, map(slice, starts, ends))))
        keys = [NONE] * len(starts) if key is not None else None
        if keep is not None or key is not None:
            for c, (outcome, s) in enumerate(zip(outcomes, starts, strict=True)):
                if outcome is nowhere:
                    continue
                entry = rows[s + outcome.entry]  # the entry row: the same whatever the times say
                if keep is not None and not keep(entry):
                    outcomes[c] = nowhere
                elif keys is not None and key is not None:
                    keys[c] = key(entry[0], entry)
        gaps = list(map(sub, islice(times, 1, None), times))  # gaps[i]: from row i to row i + 1
        if 0 in gaps:  # rows sharing a time: those contacts are walked on their own times
            for r in compress(range(n - 1), map(not_, gaps)):
                c = bisect_right(starts, r) - 1
                if r + 1 < ends[c] and outcomes[c] is not nowhere:
                    outcomes[c] = walker.walk(codes, times, starts[c], ends[c], window)
        for c, outcome, s in compress(zip(count(), outcomes, starts), map(_PAIRS, outcomes)):
            if times[s + outcome.last] - times[s + outcome.entry] > latest:
                # A hit outside the window: without ties, the walk over the rows inside it is the memo's.
                inside = bisect_right(times, times[s + outcome.entry] + latest, s, ends[c])
                outcome = outcomes[c] = memo[codes[s:inside]]
                if not outcome.pairs:
                    continue
            outcome.starts.append(s)
        tally.outcomes.update(outcomes)
        if keys is not None:
            tally.grouped.update(zip(keys, outcomes, strict=True))
        for outcome in walker.outcomes.values():
            if outcome.starts:
                at = outcome.starts
                for k, hit, base in outcome.pairs:
                    if hit == base + 1:
                        tally.deltas[k].extend(map(gaps.__getitem__, map(base.__add__, at)))
                    else:
                        tally.deltas[k].extend(map(sub, map(times.__getitem__, map(hit.__add__, at)), map(times.__getitem__, map(base.__add__, at))))
                outcome.starts = []
        if synthetic_ids:
            entered = compress(map(cids.__getitem__, starts), map(_REACHED, outcomes))
            tally.synthetic += sum(map(synthetic_ids.__contains__, entered))
        if touch is not None:
            for outcome, s in zip(outcomes, starts, strict=True):
                cid = cids[s]
                for k in outcome.reached:
                    tally.touches[k][touch.channel(cid, times[s + outcome.hits[k]])] += 1
    return tally


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
    window_td = spec.window_delta
    window = int(window_td.total_seconds()) if window_td is not None else None
    lo, hi = _epoch(since), _epoch(until)
    keyer = _Keyer(db, playbook, by, need_cohort=cohort is not None)
    entry_columns = by in ("hook", "cohort", "persona") or cohort is not None

    keep: Callable[[tuple[Any, ...]], bool] | None = None
    if lo is not None or hi is not None or cohort is not None:

        def keep(entry: tuple[Any, ...]) -> bool:
            t0 = entry[2]
            if (lo is not None and t0 < lo) or (hi is not None and t0 >= hi):
                return False
            return cohort is None or keyer.cohort_of(entry[0], entry) == cohort

    tally = _scan(
        db,
        spec,
        window,
        keep=keep,
        key=keyer.key if by not in (None, "touch") else None,
        touch=_Touches(db, playbook) if by == "touch" else None,
        synthetic_ids=_synthetic_ids(db),
        entry_columns=entry_columns,
    )
    counts = tally.counts(tally.outcomes)
    bases = _stage_bases(spec)
    index = {s.id: k for k, s in enumerate(stages)}
    results: list[StageResult] = []
    for k, stage in enumerate(stages):
        base = counts[bases[k]] if k else None
        step = counts[k] / base if base else None
        target = spec.target(stage.id)
        rate, of = target if target is not None else (None, None)
        if of is not None:  # the loader made sure `of` names an earlier stage
            held = counts[k] / counts[index[of]] if counts[index[of]] else None
        else:
            held = step
        results.append(
            StageResult(
                id=stage.id,
                label=stage.label or stage.id,
                event=stage.event,
                nth=stage.nth,
                optional=stage.optional,
                base=stages[bases[k]].id if k else None,
                count=counts[k],
                step_rate=step,
                from_top=counts[k] / counts[0] if counts[0] else None,
                median_seconds=_median(tally.deltas[k]) if k else None,
                target=rate,
                target_of=of,
                target_rate=held if rate is not None else None,
                met=None if rate is None or held is None else held >= rate,
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
        synthetic=tally.synthetic,
        stages=results,
        by=by,
    )
    if by == "touch":
        report.touches = [_touch_stage(stage.id, counts[k], tally.touches[k]) for k, stage in enumerate(stages)]
    elif by is not None:
        per_group: dict[str, Counter[_Outcome]] = {}
        for (name, outcome), n in tally.grouped.items():
            if outcome.reached:
                per_group.setdefault(name, Counter())[outcome] += n
        report.groups = [_group(name, keyer, tally.counts(per_group[name]), spec) for name in keyer.order(per_group)]
        if by == "variant":
            _compare(report, next((g for g in report.groups if g.holdout), None), "variant")
        elif by == "hook":
            _compare(report, next((g for g in report.groups if g.key in keyer.hooks), None), "hook")
    return report


def _touch_stage(stage_id: str, count: int, channels: Counter[str]) -> TouchStage:
    found = {name: channels.get(name, 0) for name in CHANNELS}
    live, group, one = found["live"], found["group"], sum(found[name] for name in ONE_ON_ONE)
    return TouchStage(
        id=stage_id,
        count=count,
        channels=found,
        share={name: (n / count if count else None) for name, n in found.items()},
        ratio={"live": 1.0, "group": group / live, "1v1": one / live} if live else None,
    )


def _group(key: str, keyer: _Keyer, tally: list[int], spec: Funnel) -> FunnelGroup:
    bases = _stage_bases(spec)
    rows: list[GroupStage] = []
    for k, stage in enumerate(spec.stages):
        base = tally[bases[k]] if k else None
        rows.append(
            GroupStage(
                id=stage.id,
                count=tally[k],
                step_rate=tally[k] / base if base else None,
                step_ci=wilson(tally[k], base) if base else None,
                from_top=tally[k] / tally[0] if tally[0] else None,
                top_ci=wilson(tally[k], tally[0]) if tally[0] else None,
            )
        )
    return FunnelGroup(key=key, label=keyer.label(key), entered=tally[0], holdout=key in keyer.holdouts, stages=rows)


def _compare(report: FunnelReport, baseline: FunnelGroup | None, kind: str) -> None:
    """Each group's rate from the top at every stage against the baseline's: lift, z-test, verdict.

    Rates from the top (not step rates) because a hook or a variant splits whole contacts:
    conditioning on an earlier stage would compare groups the hook or message may have reshaped.
    """
    if baseline is None:
        return
    baseline.baseline = True
    report.baseline = baseline.key
    for group in report.groups:
        if group is baseline or group.key == NONE:
            continue
        thin: list[str] = []
        for k in range(1, len(group.stages)):
            mine, base = group.stages[k], baseline.stages[k]
            if mine.from_top is None or base.from_top is None:
                continue
            mine.lift = mine.from_top - base.from_top
            mine.relative_lift = mine.from_top / base.from_top - 1 if base.from_top else None
            test = two_proportion_z(mine.count, group.entered, base.count, baseline.entered)
            if test is None:  # both rates 0 or both 1: nothing differs
                mine.verdict = SAME
            else:
                mine.z, mine.p_value, mine.significant = test.z, test.p_value, test.significant
                mine.verdict = (BETTER if test.z > 0 else WORSE) if test.significant else SAME
            cells = (mine.count, group.entered - mine.count, base.count, baseline.entered - base.count)
            mine.small_sample = min(cells) < MIN_CELL
            if mine.small_sample:
                thin.append(f"{mine.id} ({mine.count} of {group.entered} vs {base.count} of {baseline.entered})")
        if thin:
            report.warnings.append(
                f"{kind} {group.key} vs {baseline.key}: fewer than {MIN_CELL} successes or failures at {', '.join(thin)}; "
                "the z-test means little there, read its verdict as a hint"
            )


def _synthetic_ids(db: sqlite_utils.Database) -> set[str]:
    """Contacts `siyu simulate` made (extra.synthetic): their ids start with `sim-`, so the key's index finds them."""
    rows = db.conn.execute(
        "SELECT contact_id FROM contacts WHERE contact_id >= 'sim-' AND contact_id < 'sim.' AND json_extract(extra, '$.synthetic') = 1"
    )
    return {cid for (cid,) in rows}


class _Touches:
    """The channel of the last draft sent to a contact, or posted in a group it was in, before a moment.

    One read of this playbook's sent drafts in time order and one of the group joins and leaves;
    a question is then a few bisections. A draft's send time is `done_at` when the front line
    marked it done by hand, else `finished_at`. Moments posts are not touches. A live draft
    (target persona:P) touches the contacts whose account is P's, or everyone when no contact
    has an account. A contact is in a group from its join (inclusive) to its leave (exclusive).
    At the same second, a draft to the contact beats a group post, which beats a live session.
    """

    RANK = {"live": 0, "group": 1, "private": 2, "journey": 2, "welcome": 2}

    def __init__(self, db: sqlite_utils.Database, playbook: LoadedPlaybook) -> None:
        sent_at = _epoch_sql("COALESCE(done_at, finished_at)")
        rows = db.conn.execute(
            f"SELECT channel, target, {sent_at} AS t FROM drafts WHERE playbook_id = ? "
            f"AND (state = 'sent' OR done_at IS NOT NULL) AND {sent_at} IS NOT NULL "
            "AND channel IN ('live', 'group', 'private', 'journey', 'welcome') ORDER BY t, draft_id",
            [playbook.id],
        )
        accounts = {p.id: p.account for p in playbook.model.personas}
        self.direct: dict[str, tuple[list[int], list[str]]] = {}
        self.groups: dict[str, list[int]] = {}
        live: dict[str | None, list[int]] = {}
        for channel, target, t in rows:
            kind, _, name = str(target).partition(":")
            if channel == "live":
                live.setdefault(accounts.get(name) if kind == "persona" else None, []).append(t)
            elif channel == "group" and kind == "group":
                self.groups.setdefault(name, []).append(t)
            elif kind == "contact":
                times, channels = self.direct.setdefault(name, ([], []))
                times.append(t)
                channels.append(channel)
        self.account = dict(db.conn.execute("SELECT contact_id, account FROM contacts WHERE account IS NOT NULL AND account != ''"))
        self.live = live if self.account else {None: sorted(t for times in live.values() for t in times)}
        self.member = self._memberships(db) if self.groups else {}

    @staticmethod
    def _memberships(db: sqlite_utils.Database) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """contact → group → [(joined, left)], from group_joined / group_left in time order."""
        found: dict[str, dict[str, list[tuple[int, float]]]] = {}
        rows = db.conn.execute(
            f"SELECT contact_id, group_id, type, {_epoch_sql('at')} FROM events "
            "WHERE type IN ('group_joined', 'group_left') AND group_id IS NOT NULL ORDER BY contact_id, at, id"
        )
        for cid, gid, kind, t in rows:
            spans = found.setdefault(cid, {}).setdefault(gid, [])
            inside = bool(spans) and spans[-1][1] == float("inf")
            if kind == "group_joined" and not inside:
                spans.append((t, float("inf")))
            elif kind == "group_left" and inside:
                spans[-1] = (spans[-1][0], t)
        return found

    def channel(self, cid: str, t: int) -> str:
        """The channel of the latest touch in [t − 24 h, t], or 'none'."""
        floor = t - TOUCH_SECONDS
        best: tuple[int, int] = (floor - 1, -1)
        name = "none"
        direct = self.direct.get(cid)
        if direct is not None:
            i = bisect_right(direct[0], t) - 1
            if i >= 0 and direct[0][i] >= floor:
                best, name = (direct[0][i], self.RANK[direct[1][i]]), direct[1][i]
        for gid, spans in self.member.get(cid, {}).items():
            posts = self.groups.get(gid)
            if not posts:
                continue
            for joined, left in spans:
                upper = t if left > t else int(left) - 1
                i = bisect_right(posts, upper) - 1
                if i >= 0 and posts[i] >= max(joined, floor) and (posts[i], 1) > best:
                    best, name = (posts[i], 1), "group"
        if self.account:
            account = self.account.get(cid)
            live = self.live.get(account) if account else None
        else:
            live = self.live.get(None)
        if live:
            i = bisect_right(live, t) - 1
            if i >= 0 and live[i] >= floor and (live[i], 0) > best:
                name = "live"
        return name


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

    def _key_function(self) -> Callable[[str, tuple[Any, ...]], str]:
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

    def order(self, groups: dict[str, Any]) -> list[str]:
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
