"""The funnel of playbook-spec.md: ordered stages, optional stages, nth events, a window from entering.

One sorted pass over the events of the stage types (`funnel_query`), fetched in chunks of whole
contacts. A contact's walk depends only on the sequence of its event types unless a row that
sets its clock shares a time with the row before it or a hit falls outside the window, so the
walk is computed once per type sequence and looked up for every contact with that sequence
(`_Memo`); contacts with such ties are walked on their own times, contacts with late hits on
their rows inside the window. Python touches each row only inside C-level builtins (the chunk's
columns, the contact boundaries, each contact's type sequence split out of one byte string);
after that the work is per outcome (`_Chunk`): its contacts found with one pass over a byte per
contact, their times to each stage picked and subtracted in bulk, medians selected near the
middle instead of sorted, with the cyclic collector paused, so a million contacts and five
million events cost little more than fetching them.

Targets: a number is the benchmark for a stage's STEP rate (its count over the count of the last
required stage before it): `added: 0.15` reads "15% of carded contacts add". `{rate, of}` is held
against count(stage) / count(of): `ordered: {rate: 0.10, of: added}` is 开单率.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import accumulate, compress, islice, repeat
from math import isqrt
from operator import attrgetter, eq, ge, itemgetter, le, ne, not_, or_, sub
from typing import Any

import sqlite_utils

from siyu_cli._bulk import bulk
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
FEW = 32  # an outcome held by fewer than 1 in FEW of a chunk's contacts is found hit by hit, not by a pass over all
SHIFTS = 16  # row offsets whose shifted copy of a chunk's times is kept for the chunk
SELECT_FROM = 4096  # medians of this many values or more sort only the values near the middle
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
    before_test: list[str] = field(default_factory=list)  # --by variant: stages most contacts reached before their first A/B draft

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


def _median(values: list[int]) -> float | None:
    """The median, as sorting all the values gives it; large lists sort only the values near it.

    A sorted sample of every 64th value brackets the middle; two C-level filters count the values
    below the bracket and keep the few inside, and only those are sorted. Should the middle fall
    outside the bracket (a sample can miss it, most likely when the values come in a pattern
    with period 64), the whole list is sorted: the answer is always the sorted one.
    """
    n = len(values)
    if not n:
        return None
    a, b = (n - 1) // 2, n // 2  # the middle one, or the middle two
    if n >= SELECT_FROM:
        sample = sorted(values[::64])
        k = len(sample)
        at = a * k // n
        margin = 8 + 3 * isqrt(k)
        low, high = sample[max(0, at - margin)], sample[min(k - 1, at + margin)]
        above = list(compress(values, map(le, repeat(low), values)))
        below = n - len(above)
        near = sorted(compress(above, map(ge, repeat(high), above)))
        if below <= a and b < below + len(near):
            x, y = near[a - below], near[b - below]
            return float(x) if a == b else (x + y) / 2
    ordered = sorted(values)
    return float(ordered[a]) if a == b else (ordered[a] + ordered[b]) / 2


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

    `id` numbers the outcomes in the order they were met; the first 255 are also a byte, so a
    chunk's outcomes are one bytearray and each outcome's contacts are found in C.
    """

    __slots__ = ("hits", "reached", "entry", "last", "pairs", "clocks", "offsets", "id")

    def __init__(self, hits: tuple[int, ...], bases: Sequence[int], required: Sequence[bool], id: int) -> None:
        self.hits = hits
        self.reached = tuple(k for k, hit in enumerate(hits) if hit >= 0)
        self.entry = hits[0]
        self.last = max(hits)
        self.pairs = tuple((k, hits[k], hits[bases[k]]) for k in self.reached if k)
        # The rows that set the clock (the entry and each required stage reached) after a contact's first row:
        # should one share its time with the row before it, the walk on times may differ from the memo's.
        self.clocks = tuple(sorted({hits[k] for k in self.reached if (required[k] or not k) and hits[k] > 0}))
        self.offsets = sorted({self.entry, self.last, *self.clocks, *(c - 1 for c in self.clocks), *(o for _, hit, base in self.pairs for o in (hit, base))})
        self.id = id


class _Walker:
    """The stages compiled to event codes; walks one contact's rows and interns the outcomes."""

    def __init__(self, spec: Funnel, window: int | None) -> None:
        codes = _event_codes(spec)
        self.first = codes[spec.stages[0].event]
        self.later = tuple((codes[s.event], s.nth, s.optional) for s in spec.stages[1:])
        self.size = len(spec.stages)
        self.wide = len(codes) > _CUT
        self.bases = _stage_bases(spec)
        self.required = tuple(not s.optional for s in spec.stages)
        self.window = window
        self.outcomes: dict[tuple[int, ...], _Outcome] = {}
        self.by_byte: list[_Outcome | None] = [None] * 256  # outcome of each id byte; SPECIAL has none
        self.nowhere = self.outcome((-1,) * self.size)  # id 0: NOWHERE
        self.memo = _Memo(self)

    def outcome(self, hits: tuple[int, ...]) -> _Outcome:
        found = self.outcomes.get(hits)
        if found is None:
            found = self.outcomes[hits] = _Outcome(hits, self.bases, self.required, len(self.outcomes))
            if found.id < SPECIAL:
                self.by_byte[found.id] = found
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


class _Memo(dict[bytes, int]):
    """Event-type sequence → the id byte of the walk's outcome when times do not matter (no ties, all in the window).

    SPECIAL stands for an outcome met after the first 255: its contacts are walked on their own.
    """

    def __init__(self, walker: _Walker) -> None:
        super().__init__()
        self.walker = walker

    def __missing__(self, key: bytes) -> int:
        found = min(self.walker.walk(key, range(len(key)), 0, len(key), None).id, SPECIAL)
        if len(self) < MEMO_LIMIT:
            self[key] = found
        return found


_CONTACT, _CODE, _TIME = itemgetter(0), itemgetter(1), itemgetter(2)
_REACHED = attrgetter("reached")
NOWHERE, SPECIAL = 0, 255  # id bytes: the outcome of contacts who never entered; "see `special`"
_CUT, _FILL = 254, 255  # bytes no event code takes (codes count the stages' event types, far fewer)
_MARKS = bytes([_FILL, _CUT]) + bytes(254)  # a new-contact flag (0 or 1) as the byte that follows a row's code


def _sequences(codes: bytes, new: bytes, wide: bool) -> list[bytes]:
    """Each contact's event codes, given new[r] = 1 where row r + 1 is another contact's: all in C.

    Each row's code is followed by a byte that is _CUT where the contact ends and _FILL where it
    goes on; the fill is deleted and the rest split at the cuts.
    """
    if wide:  # codes reach _CUT: a funnel of 255 event types, sliced contact by contact
        ends = [*compress(range(1, len(codes)), new), len(codes)]
        return list(map(codes.__getitem__, map(slice, [0, *ends[:-1]], ends)))
    paired = bytearray(2 * len(codes))
    paired[0::2] = codes
    paired[1:-1:2] = new.translate(_MARKS)
    paired[-1] = _FILL
    return bytes(paired).translate(None, bytes([_FILL])).split(bytes([_CUT]))


class _Tally:
    """What one pass counts: contacts per outcome (and per group and outcome), times, touches."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.outcomes: Counter[_Outcome] = Counter()
        self.grouped: Counter[tuple[str, _Outcome]] = Counter()
        self.deltas: list[list[int]] = [[] for _ in range(size)]
        self.touches: list[Counter[str]] = [Counter() for _ in range(size)]
        self.synthetic = 0

    def counts(self, outcomes: Counter[_Outcome]) -> list[int]:
        found = [0] * self.size
        for outcome, n in outcomes.items():
            for k in outcome.reached:
                found[k] += n
        return found


class _Chunk:
    """One chunk of whole contacts: each contact's outcome as an id byte, counted per outcome in C.

    Contact c holds rows [bounds[c], bounds[c + 1]); `ids[c]` is its outcome, or SPECIAL where
    `special[c]` holds the outcome of a walk on its own times (rows sharing a time, or an outcome
    beyond the first 255). A contact whose memo outcome reaches past the window is `moved` to the
    memo's walk of its rows inside the window. Contacts are found by their first rows.
    """

    def __init__(self, rows: list[tuple[Any, ...]], walker: _Walker, tally: _Tally) -> None:
        self.rows, self.walker, self.tally = rows, walker, tally
        columns = list(zip(*rows, strict=True))
        self.cids: Sequence[str] = columns[0]
        self.codes = bytes(columns[1])
        self.times: Sequence[int] = columns[2]
        seqs = _sequences(self.codes, bytes(map(ne, islice(self.cids, 1, None), self.cids)), walker.wide)
        self.bounds = list(accumulate(map(len, seqs), initial=0))
        self.ids = bytearray(map(walker.memo.__getitem__, seqs))
        self.m = len(seqs)
        self.special: dict[int, _Outcome] = {}
        self.moved: list[int] = []  # first rows of the moved contacts
        self.moved_ids = bytearray()
        self.shifted: dict[int, Sequence[int]] = {0: self.times}
        if SPECIAL in self.ids:
            for s in self.find(self.ids, SPECIAL, self.bounds):
                self.walk(self.contact(s))

    def contact(self, first_row: int) -> int:
        return bisect_right(self.bounds, first_row) - 1

    def outcome(self, c: int) -> _Outcome:
        found = self.walker.by_byte[self.ids[c]]
        return found if found is not None else self.special[c]

    def walk(self, c: int) -> None:
        """Contact c walked on its own times: the spec's walk, whatever the ties and the window."""
        window = self.walker.window
        self.special[c] = self.walker.walk(self.codes, self.times, self.bounds[c], self.bounds[c + 1], window)
        self.ids[c] = SPECIAL

    def drop(self, c: int) -> None:
        self.ids[c] = NOWHERE
        self.special.pop(c, None)

    @staticmethod
    def find(ids: bytearray, j: int, who: Sequence[int]) -> list[int]:
        """who[p] for each position p of id byte j in ids: one pass in C, or one find() per hit when few."""
        if ids.count(j) * FEW >= len(ids):
            return list(compress(who, ids.translate(bytes(j) + b"\x01" + bytes(255 - j))))  # j → 1, any other → 0
        found: list[int] = []
        p = ids.find(j)
        while p >= 0:
            found.append(who[p])
            p = ids.find(j, p + 1)
        return found

    def count(self, ids: bytearray, who: Sequence[int], window: int | None) -> None:
        """Count the contacts whose first rows are who[p] by their outcome ids[p], each outcome in bulk."""
        tally, by_byte, known = self.tally, self.walker.by_byte, len(self.walker.outcomes)
        for j in range(known) if known <= 32 else set(ids):  # a `j not in ids` per known outcome is cheaper than a set
            outcome = by_byte[j]
            if outcome is None or j == NOWHERE or j not in ids:  # SPECIAL is counted with `special`; NOWHERE reaches nothing
                continue
            if outcome.pairs or outcome.clocks:
                self.count_outcome(outcome, self.find(ids, j, who), window)
            else:
                tally.outcomes[outcome] += ids.count(j)

    def times_at(self, offset: int, starts: list[int], pick: Callable[[Sequence[int]], tuple[int, ...]]) -> tuple[int, ...]:
        """The times of rows s + offset for each first row s in `starts`; `pick` takes `starts` of a sequence.

        For small offsets the chunk's times shifted by the offset are kept, so each is one pick in C.
        """
        if offset >= SHIFTS:
            return tuple(map(self.times.__getitem__, map(offset.__add__, starts)))
        shifted = self.shifted.get(offset)
        if shifted is None:
            shifted = self.shifted[offset] = self.times[offset:]
        return pick(shifted)

    def count_outcome(self, outcome: _Outcome, starts: list[int], window: int | None) -> None:
        """The contacts of one outcome (by first row) counted, and their times to each stage taken in bulk.

        Contacts with a row that sets the clock at the time of the row before it are walked on
        their own times; with `window`, those whose last hit falls outside it are moved (see `move`).
        """
        if not starts:
            return
        pick = itemgetter(*starts) if len(starts) > 1 else lambda seq: (seq[starts[0]],)
        taken = {offset: self.times_at(offset, starts, pick) for offset in outcome.offsets}
        tied: list[bool] | None = None
        for offset in outcome.clocks:
            if any(map(eq, taken[offset], taken[offset - 1])):
                same = list(map(eq, taken[offset], taken[offset - 1]))
                tied = same if tied is None else list(map(or_, tied, same))
        if tied is not None:
            for s in compress(starts, tied):
                self.walk(self.contact(s))
            self.count_outcome(outcome, list(compress(starts, map(not_, tied))), window)
            return
        spans: list[int] | None = None
        inside: list[bool] | None = None
        if window is not None:
            spans = list(map(sub, taken[outcome.last], taken[outcome.entry]))
            if max(spans) > window:
                inside = list(map(ge, repeat(window), spans))
                self.move(list(compress(starts, map(not_, inside))), outcome.entry, window)
        self.tally.outcomes[outcome] += len(starts) if inside is None else inside.count(True)
        deltas = self.tally.deltas
        for k, hit, base in outcome.pairs:
            found = spans if spans is not None and (hit, base) == (outcome.last, outcome.entry) else map(sub, taken[hit], taken[base])
            deltas[k].extend(found if inside is None else compress(found, inside))

    def move(self, late: list[int], entry: int, window: int) -> None:
        """The late contacts' walks over their rows inside the window, from the memo (ties are checked on counting)."""
        times, bounds, codes = self.times, self.bounds, self.codes
        ends = map(bounds.__getitem__, map(bisect_right, repeat(bounds), late))
        limits = map(window.__add__, map(times.__getitem__, map(entry.__add__, late)))
        insides = map(bisect_right, repeat(times), limits, late, ends)
        self.moved.extend(late)
        self.moved_ids.extend(map(self.walker.memo.__getitem__, map(codes.__getitem__, map(slice, late, insides))))

    def finish(self) -> None:
        """Everything counted: the bulk of the contacts, the moved ones, then those walked on their own."""
        self.count(self.ids, self.bounds, self.walker.window)
        if self.moved:
            if SPECIAL in self.moved_ids:
                for p in self.find(self.moved_ids, SPECIAL, range(len(self.moved))):
                    self.moved_ids[p] = NOWHERE  # counted with `special` from here on
                    self.walk(self.contact(self.moved[p]))
            self.count(self.moved_ids, self.moved, None)
        tally, times, bounds = self.tally, self.times, self.bounds
        for c, outcome in self.special.items():
            tally.outcomes[outcome] += 1
            s = bounds[c]
            for k, hit, base in outcome.pairs:
                tally.deltas[k].append(times[s + hit] - times[s + base])

    def final(self) -> list[_Outcome]:
        """Each contact's outcome, in order (for groups, touches and synthetic contacts)."""
        ids = self.ids
        for s, j in zip(self.moved, self.moved_ids, strict=True):
            c = self.contact(s)
            if ids[c] != SPECIAL:
                ids[c] = j
        found: list[Any] = list(map(self.walker.by_byte.__getitem__, ids))
        for c, outcome in self.special.items():
            found[c] = outcome
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

    Per contact in Python only what needs it: `keep` and `key` read the entry row, `touch` and
    synthetic ids the final outcomes. `keep` decides from a contact's entry row whether it is in the report (--since, --until,
    --cohort); `key` names its group (--by); `touch` attributes each stage reached to a channel.
    """
    walker = _Walker(spec, window)
    nowhere = walker.nowhere
    tally = _Tally(walker.size)
    sql, params = funnel_query(spec, entry=entry_columns)
    for rows in contact_chunks(db.conn.execute(sql, params)):
        chunk = _Chunk(rows, walker, tally)
        keys = [NONE] * chunk.m if key is not None else None
        if keep is not None or keys is not None:
            for c, s in enumerate(islice(chunk.bounds, chunk.m)):
                outcome = chunk.outcome(c)
                if outcome is nowhere:
                    continue
                entry = rows[s + outcome.entry]  # the entry row: the same whatever the times say
                if keep is not None and not keep(entry):
                    chunk.drop(c)
                elif keys is not None and key is not None:
                    keys[c] = key(entry[0], entry)
        chunk.finish()
        if keys is None and touch is None and not synthetic_ids:
            continue
        outcomes = chunk.final()
        starts = chunk.bounds[: chunk.m]
        if keys is not None:
            tally.grouped.update(zip(keys, outcomes, strict=True))
        cids, times = chunk.cids, chunk.times
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

    with bulk():  # nothing the pass holds forms cycles: collections would only walk the chunk's rows
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
            report.before_test = _before_test(db, playbook.id, spec)
            _compare(report, next((g for g in report.groups if g.holdout), None), "variant", skip=set(report.before_test))
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


def _before_test(db: sqlite_utils.Database, playbook_id: str, spec: Funnel) -> list[str]:
    """Stages that at least half the contacts in the A/B test reached at or before their first variant draft.

    The draft cannot have moved them (every arm shows `joined` 100%), so they are not tested.
    Both columns are UTC text of one format, so they compare as text."""
    found = []
    for stage in spec.stages[1:]:  # the entry is never tested
        before, reached = db.conn.execute(
            "WITH first AS (SELECT substr(target, 9) AS cid, MIN(occurrence_at) AS at FROM drafts "
            "WHERE playbook_id = ? AND variant IS NOT NULL AND target LIKE 'contact:%' GROUP BY target), "
            "hit AS (SELECT contact_id AS cid, at, ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY at, id) AS n FROM events WHERE type = ?) "
            "SELECT TOTAL(hit.at <= first.at), COUNT(*) FROM hit JOIN first USING (cid) WHERE hit.n = ?",
            [playbook_id, stage.event, stage.nth],
        ).fetchone()
        if reached and before * 2 >= reached:
            found.append(stage.id)
    return found


def _compare(report: FunnelReport, baseline: FunnelGroup | None, kind: str, skip: set[str] | None = None) -> None:
    """Each group's rate from the top at every stage against the baseline's: lift, z-test, verdict.

    Rates from the top (not step rates) because a hook or a variant splits whole contacts:
    conditioning on an earlier stage would compare groups the hook or message may have reshaped.
    Stages in `skip` are not tested (for variants: reached before the test began).
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
            if mine.from_top is None or base.from_top is None or mine.id in (skip or ()):
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
    A touch is sent before the stage's event (the welcome a contact's add triggers does not count
    for that add). At the same second, a draft to the contact beats a group post, which beats a
    live session; among drafts to the contact, private beats journey, which beats welcome.
    """

    RANK = {"live": 0, "group": 1, "private": 2, "journey": 2, "welcome": 2}

    def __init__(self, db: sqlite_utils.Database, playbook: LoadedPlaybook) -> None:
        sent_at = _epoch_sql("COALESCE(done_at, finished_at)")
        rows = db.conn.execute(
            f"SELECT channel, target, {sent_at} AS t FROM drafts WHERE playbook_id = ? "
            f"AND (state = 'sent' OR done_at IS NOT NULL) AND {sent_at} IS NOT NULL "
            "AND channel IN ('live', 'group', 'private', 'journey', 'welcome') "
            "ORDER BY t, CASE channel WHEN 'welcome' THEN 0 WHEN 'journey' THEN 1 ELSE 2 END, draft_id",
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
        """The channel of the latest touch in [t − 24 h, t), or 'none'."""
        floor = t - TOUCH_SECONDS
        best: tuple[int, int] = (floor - 1, -1)
        name = "none"
        direct = self.direct.get(cid)
        if direct is not None:
            i = bisect_left(direct[0], t) - 1
            if i >= 0 and direct[0][i] >= floor:
                best, name = (direct[0][i], self.RANK[direct[1][i]]), direct[1][i]
        for gid, spans in self.member.get(cid, {}).items():
            posts = self.groups.get(gid)
            if not posts:
                continue
            for joined, left in spans:
                upper = t - 1 if left > t - 1 else int(left) - 1
                i = bisect_right(posts, upper) - 1
                if i >= 0 and posts[i] >= max(joined, floor) and (posts[i], 1) > best:
                    best, name = (posts[i], 1), "group"
        if self.account:
            account = self.account.get(cid)
            live = self.live.get(account) if account else None
        else:
            live = self.live.get(None)
        if live:
            i = bisect_left(live, t) - 1
            if i >= 0 and live[i] >= floor and (live[i], 0) > best:
                name = "live"
        return name


FAN_TIERS = ("精准粉", "半精准粉", "泛粉")


def _own_tags(db: sqlite_utils.Database, ids: list[str]) -> Iterator[tuple[str, list[str], str | None]]:
    import json

    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = db.conn.execute(f"SELECT contact_id, tags, source FROM contacts WHERE contact_id IN ({', '.join('?' * len(chunk))})", chunk)
        for cid, tags, source in rows:
            yield cid, (json.loads(tags) if tags and tags != "[]" else []), source


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
        if by == "tier":
            self._tiers_from_tags(db, playbook)
        self.key = self._key_function()

    def _tiers_from_tags(self, db: sqlite_utils.Database, playbook: LoadedPlaybook) -> None:
        """A contact with no `tier` is grouped by the fan tier among its effective tags (精准粉, 半精准粉, 泛粉),
        as hooks and rules give them; the tier column, when filled, wins."""
        from siyu_cli.rules import TagRules, apply_effective

        column = self.column["tier"]
        untiered = [cid for cid, row in self.contacts.items() if not row[column]]
        if not untiered:
            return
        found = {cid: {"id": cid, "tags": list(tags), "source": source} for cid, tags, source in _own_tags(db, untiered)}
        apply_effective(db, TagRules.of(playbook.model), list(found.values()))
        for cid, contact in found.items():
            tier = next((tag for tag in contact["tags"] if tag in FAN_TIERS), None)
            if tier is not None:
                row = list(self.contacts[cid])
                row[column] = tier
                self.contacts[cid] = tuple(row)

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
