"""The two statistics a campaign comparison needs, written out so siyu needs no scipy."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval: unlike p ± z·se it stays inside [0, 1] and behaves at 0/n and small n."""
    if trials <= 0:
        return (0.0, 0.0)
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ZTest:
    """Two-proportion z-test of rate a against rate b (pooled standard error, two-sided)."""

    z: float
    p_value: float
    significant: bool

    def to_dict(self) -> dict[str, float | bool]:
        return {"z": self.z, "p_value": self.p_value, "significant": self.significant}


def two_proportion_z(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> ZTest | None:
    """None when a side is empty or both rates are 0 or 1 (no variance: nothing to test)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return ZTest(z=z, p_value=p_value, significant=p_value < alpha)
