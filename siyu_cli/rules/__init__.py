"""Rules: what events do to a contact's tags (标签), and the effective tags that follow from them."""

from siyu_cli.rules._cache import as_of_timeline, changed_after, prune_log, refresh
from siyu_cli.rules._store import Timeline, apply_effective, contact_tag_state, history, last_change, tags_at
from siyu_cli.rules._tags import TAGGED, EventRow, Origin, TagRules, TagState

__all__ = ["TAGGED", "EventRow", "Origin", "TagRules", "TagState", "Timeline", "apply_effective", "as_of_timeline", "changed_after", "contact_tag_state", "history", "prune_log", "refresh", "last_change", "tags_at"]
