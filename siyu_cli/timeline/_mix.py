"""Content mix (人设内容比例): largest shortfall first, rotation without repeats, deterministic."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction


def choose_categories(ratio: Mapping[str, float], count: int) -> list[str]:
    """The categories of `count` consecutive posts under one ratio.

    Largest shortfall first, scheduled so that no category ever falls a whole post
    behind: among the categories allowed another post (count < n × share), the one
    whose next post is owed soonest goes first; ties go to the one that lags its
    target most, then to the order the ratio lists them. Plain "largest lag" can
    drift past the bound (e.g. 1:6:6:51:69 after 60 posts); this cannot: after any
    n posts every category is strictly within 1 of n × share. Exact fractions keep
    it deterministic on every machine.
    """
    weights = [(name, Fraction(str(weight))) for name, weight in ratio.items()]
    total = sum((weight for _, weight in weights), Fraction(0))
    counts = [0] * len(weights)
    chosen: list[str] = []
    for n in range(1, count + 1):
        best: tuple[int, Fraction, int] | None = None
        for index, (_, weight) in enumerate(weights):
            if n * weight <= counts[index] * total:
                continue
            deadline = math.ceil((counts[index] + 1) * total / weight)
            key = (deadline, counts[index] * total - n * weight, index)
            if best is None or key < best:
                best = key
        assert best is not None
        counts[best[2]] += 1
        chosen.append(weights[best[2]][0])
    return chosen


class Rotation:
    """Per category, templates in order, none repeated before the pool is used up."""

    def __init__(self, pools: Mapping[str, Sequence[str]]) -> None:
        self._pools = pools
        self._used: dict[str, int] = {name: 0 for name in pools}

    def next(self, category: str) -> tuple[str, int]:
        pool = self._pools[category]
        index = self._used[category] % len(pool)
        self._used[category] += 1
        return pool[index], index
