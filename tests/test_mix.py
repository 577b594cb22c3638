"""The content mix: the ±1 bound after any prefix, rotation without repeats, determinism."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu_cli.timeline import Rotation, choose_categories

ratios = st.dictionaries(
    st.sampled_from(["life", "expertise", "cases", "promo", "tips"]),
    st.integers(min_value=1, max_value=100),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(ratio=ratios, count=st.integers(min_value=0, max_value=200))
def test_every_prefix_within_one_of_its_share(ratio: dict[str, int], count: int) -> None:
    chosen = choose_categories(ratio, count)
    total = sum(ratio.values())
    seen: Counter[str] = Counter()
    for n, category in enumerate(chosen, start=1):
        seen[category] += 1
        for name, weight in ratio.items():
            assert abs(seen[name] - n * weight / total) < 1 + 1e-9, (ratio, n, dict(seen))


@settings(max_examples=200, deadline=None)
@given(ratio=ratios, count=st.integers(min_value=0, max_value=120))
def test_deterministic(ratio: dict[str, int], count: int) -> None:
    assert choose_categories(ratio, count) == choose_categories(dict(ratio), count)


@settings(max_examples=200, deadline=None)
@given(sizes=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 9), min_size=1), draws=st.lists(st.sampled_from(["a", "b", "c"]), max_size=60))
def test_rotation_uses_the_whole_pool_before_repeating(sizes: dict[str, int], draws: list[str]) -> None:
    rotation = Rotation({name: [f"{name}{i}" for i in range(size)] for name, size in sizes.items()})
    used: dict[str, list[str]] = {name: [] for name in sizes}
    for category in draws:
        if category not in sizes:
            continue
        template, _ = rotation.next(category)
        used[category].append(template)
    for name, templates in used.items():
        size = sizes[name]
        for start in range(0, len(templates), size):
            window = templates[start : start + size]
            assert len(set(window)) == len(window)


def test_ties_follow_the_listed_order() -> None:
    assert choose_categories({"life": 50, "expertise": 50}, 4) == ["life", "expertise", "life", "expertise"]
    assert choose_categories({"expertise": 50, "life": 50}, 2) == ["expertise", "life"]


def test_spec_example_twenty_eighty() -> None:
    chosen = choose_categories({"life": 20, "expertise": 80}, 10)
    assert Counter(chosen) == {"life": 2, "expertise": 8}
