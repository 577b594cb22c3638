"""Content mix (人设内容比例): largest shortfall first, rotation without repeats, deterministic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def choose_categories(ratio: Mapping[str, float], count: int) -> list[str]:
    """The categories of `count` consecutive posts under one ratio.

    Each post goes to the category whose share lags its target most, measured
    against the post being placed (target × (n+1) − count); ties go to the
    category listed first. After any n posts every category is within 1 of n × share.
    """
    total = float(sum(ratio.values()))
    shares = [(name, weight / total) for name, weight in ratio.items()]
    counts = {name: 0 for name, _ in shares}
    chosen: list[str] = []
    for n in range(count):
        best = max(shares, key=lambda item: (item[1] * (n + 1) - counts[item[0]], -_order(shares, item[0])))
        counts[best[0]] += 1
        chosen.append(best[0])
    return chosen


def _order(shares: Sequence[tuple[str, float]], name: str) -> int:
    return next(index for index, (candidate, _) in enumerate(shares) if candidate == name)


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
