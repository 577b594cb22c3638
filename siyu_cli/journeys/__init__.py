"""Journeys 旅程: private drafts on each contact's own clock, from an entering event to an exit.

Hooks' welcome sequences are journeys entered by the add through the hook.
"""

from siyu_cli.journeys._book import DELETED, ContactPath, JourneyBook, Route, Run, Step, sample_run, satisfying_tags, step_due, with_implied_add

__all__ = ["DELETED", "ContactPath", "JourneyBook", "Route", "Run", "Step", "sample_run", "satisfying_tags", "step_due", "with_implied_add"]
