"""Group health 群健康: value, chicken-rib, dead, spam, classed daily from events."""

from siyu_cli.health._health import LABELS, DayHealth, HealthBook, Signals, health_beats

__all__ = ["LABELS", "DayHealth", "HealthBook", "Signals", "health_beats"]
