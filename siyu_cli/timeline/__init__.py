"""The campaign on its calendar: occurrences of beats, and the content mix that feeds Moments."""

from siyu_cli.timeline._mix import Rotation, choose_categories
from siyu_cli.timeline._timeline import Content, Occurrence, calendar_days, occurrences, pool_entries

__all__ = ["Content", "Occurrence", "Rotation", "calendar_days", "choose_categories", "occurrences", "pool_entries"]
