"""An event's group and hook against the playbook's: an id the playbook lacks is an event that group
health, tiers and the funnel by hook never count, so an import or `track` says so instead of keeping
it silently. Nothing here refuses an event: another playbook on the same store may know the id.
A contact's tier likewise: a word capacity does not know (a team's own words are allowed in the
column) makes the contact untiered for capacity, so an import says so and keeps the word.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_ROWS = 5  # row numbers a note lists per unknown id


def group_miss(value: str | None, groups: Mapping[str, str], owner: str = "the playbook") -> str:
    """Why `value` names no group of `groups` (id → name), with the fix; "" when it does, or there is nothing to check against."""
    if not value or not groups or value in groups:
        return ""
    named = [gid for gid, name in groups.items() if name == value]
    if named:
        return f"{value!r} is the name of group {named[0]!r}, not its id, so group health does not count it: write {named[0]!r}"
    return f"{value!r} is no group of {owner} ({_did_you_mean(value, groups)}), so group health does not count it"


def hook_miss(value: str | None, hooks: Mapping[str, str], owner: str = "the playbook") -> str:
    """Why `value` names no hook of `hooks` (id or code → code), with the fix; "" when it does, or there is nothing to check against."""
    if not value or not hooks or value in hooks:
        return ""
    folded = [ref for ref in hooks if ref.casefold() == value.casefold()]
    if folded:
        return f"{value!r} is no hook of {owner} (codes match exactly: did you mean {folded[0]!r}?), so its tags and welcome do not apply"
    return f"{value!r} is no hook of {owner} ({_did_you_mean(value, {ref: ref for ref in hooks}, listed=hooks.values())}), so its tags and welcome do not apply"


def tier_miss(value: str | None) -> str:
    """Why capacity counts a contact of tier `value` as untiered, with the fix; "" for a tier word (or no tier)."""
    from siyu_cli.dispatch._capacity import TIER_WORDS, tier_word

    if not value or tier_word(value):
        return ""
    words = [word for word in TIER_WORDS if word.casefold() == value.strip().casefold()]
    words = words or difflib.get_close_matches(value.strip(), list(TIER_WORDS), n=1, cutoff=0.6)
    hint = f"did you mean {words[0]!r}?" if words else "the tiers are precise, semi, general, or 精准粉, 半精准粉, 泛粉"
    return f"{value!r} is no tier capacity knows ({hint}), so capacity counts these contacts as untiered (the playbook's capacity.untiered)"


def _did_you_mean(value: str, known: Mapping[str, str], listed: Iterable[str] = ()) -> str:
    """A close id or name (→ its id), else the ids there are (or `listed`: a hook's codes, not also its ids)."""
    names = {name: key for key, name in known.items() if name}
    close = difflib.get_close_matches(value, [*known, *names], n=1, cutoff=0.6)
    if close:
        match = close[0]
        return f"did you mean {match!r}?" if match in known else f"did you mean {names[match]!r} ({match})?"
    ids = list(dict.fromkeys(listed or known))
    return ", ".join(ids[:12]) + (f" and {len(ids) - 12} more" if len(ids) > 12 else "")


@dataclass
class UnknownRefs:
    """An import's group and hook values the playbook lacks (and tiers capacity does not know), each with its row count and first rows."""

    groups: Mapping[str, str]
    hooks: Mapping[str, str]
    noted: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # column → hook codes the mapping's `hooks:` notes itself
    columns: Mapping[str, list[str]] = field(default_factory=dict)  # field → the file's columns that give it
    found: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, rowno: int, hook: str | None, group: str | None) -> None:
        if group is not None and group not in self.groups:
            self._note("group", group, rowno, lambda value: group_miss(value, self.groups))
        if hook is not None and hook not in self.hooks and not any(hook in codes for codes in self.noted.values()):
            self._note("hook", hook, rowno, lambda value: hook_miss(value, self.hooks))

    def add_tier(self, rowno: int, tier: str | None) -> None:
        if tier is not None:
            self._note("tier", tier, rowno, tier_miss)

    def _note(self, name: str, value: str, rowno: int, miss: Callable[[str], str]) -> None:
        entry = self.found.get((name, value))
        if entry is None:
            why = miss(value)
            if not why:
                return
            columns = list(self.columns.get(name, [name]))
            entry = self.found[(name, value)] = {"field": name, "columns": columns, "value": value, "rows": 0, "row_numbers": [], "why": why}
        entry["rows"] += 1
        if len(entry["row_numbers"]) < MAX_ROWS:
            entry["row_numbers"].append(rowno)

    def listed(self) -> list[dict[str, Any]]:
        return sorted(self.found.values(), key=lambda entry: (entry["field"], entry["row_numbers"][0]))
