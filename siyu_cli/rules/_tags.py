"""Effective tags: a contact's own tags, then what each of its events did, in time order.

Derived on every read, never copied into the contact, so an edited rule or hook changes every
contact at once and a re-imported event (deduplicated by its id) applies nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from siyu_cli.playbook import Hook, Playbook, Rule

TAGGED = "tagged"

# An event as the store hands it over: (event_id, type, at (UTC text), hook, amount, props (JSON text), group_id).
EventRow = tuple[str, str, str, str | None, float | None, str | None, str | None]


@dataclass(frozen=True)
class Origin:
    """Where a tag came from: what `siyu contacts show` prints beside it."""

    kind: str  # imported | hook | rule | manual
    detail: str | None = None
    at: str | None = None
    event_id: str | None = None

    def describe(self) -> str:
        if self.kind == "imported":
            return "imported"
        if self.kind == "hook":
            return f"hook {self.detail} at {self.at}"
        if self.kind == "rule":
            return f"rule {self.detail} at {self.at}"
        return f"edited by hand at {self.at}"


@dataclass
class TagState:
    """A contact's tags and source after some prefix of its events."""

    tags: list[str]
    source: str | None
    origins: dict[str, Origin] | None = None
    counts: dict[int, int] = field(default_factory=dict)  # rule index → matching events so far

    def add(self, tag: str, origin: Origin | None) -> None:
        if tag not in self.tags:
            self.tags.append(tag)
            if self.origins is not None and origin is not None:
                self.origins[tag] = origin

    def remove(self, tag: str) -> None:
        if tag in self.tags:
            self.tags.remove(tag)
            if self.origins is not None:
                self.origins.pop(tag, None)


class TagRules:
    """A playbook's hooks and rules, compiled once for folding events into tags."""

    def __init__(self, hooks: Sequence[Hook] = (), rules: Sequence[Rule] = ()) -> None:
        self.hooks: dict[str, Hook] = {}
        for hook in hooks:
            self.hooks[hook.id] = hook
            if hook.code:
                self.hooks.setdefault(hook.code, hook)
        self.rules = [
            (index, rule.on.event, self.hooks[rule.on.hook].id if rule.on.hook in self.hooks else rule.on.hook, rule.on.nth, rule.changes, _rule_text(rule))
            for index, rule in enumerate(rules)
        ]
        self.by_type: dict[str, list[tuple[int, str, str | None, int | None, list[tuple[bool, str]], str]]] = {}
        for compiled in self.rules:
            self.by_type.setdefault(compiled[1], []).append(compiled)
        self.hooked_types = {kind for kind, items in self.by_type.items() if any(item[2] is not None for item in items)} | {"friend_added"}
        types = {TAGGED} | {rule.on.event for rule in rules}
        if hooks:
            types.add("friend_added")  # an add through a hook gives its tags and sets the source
        self.types: frozenset[str] = frozenset(types)
        # What effective tags depend on: a cache of them is valid for exactly this basis.
        spec = [[[h.id, h.code, list(h.tags)] for h in hooks], [[r.on.event, r.on.hook, r.on.nth, list(r.tag)] for r in rules], 1]
        self.basis = hashlib.sha1(json.dumps(spec, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]

    @classmethod
    def of(cls, model: Playbook | None) -> TagRules:
        """The playbook's hooks and rules; without a playbook only manual edits apply."""
        return cls() if model is None else cls(model.hooks, model.rules)

    def hook_of(self, ref: str | None) -> Hook | None:
        return self.hooks.get(ref) if ref else None

    def event_hook(self, hook: str | None, source: str | None) -> Hook | None:
        """The hook an event came through: its own field, else the contact's source (the card it came in by)."""
        return self.hook_of(hook) if hook else self.hook_of(source)

    def start(self, tags: Sequence[str], source: str | None, *, explain: bool = False) -> TagState:
        state = TagState(list(dict.fromkeys(tags)), source or None, {} if explain else None)
        if state.origins is not None:
            for tag in state.tags:
                state.origins[tag] = Origin("imported")
        return state

    def apply(self, state: TagState, row: EventRow, own_source: str | None) -> None:
        """Fold one event into the state: the hook's tags first, then manual edits, then each matching rule."""
        kind = row[1]
        explain = state.origins is not None
        hook = self.event_hook(row[3], state.source or own_source) if kind in self.hooked_types else None
        if kind == "friend_added" and hook is not None:
            origin = Origin("hook", hook.id, row[2], row[0]) if explain else None
            for tag in hook.tags:
                state.add(tag, origin)
            if not state.source:
                state.source = hook.code or hook.id
        elif kind == TAGGED:
            change = json.loads(row[5]) if row[5] else {}
            origin = Origin("manual", None, row[2], row[0]) if explain else None
            for tag in change.get("remove") or ():
                state.remove(str(tag))
            for tag in change.get("add") or ():
                state.add(str(tag), origin)
        for index, _, rule_hook, nth, changes, text in self.by_type.get(kind, ()):
            if rule_hook is not None and (hook is None or hook.id != rule_hook):
                continue
            seen = state.counts.get(index, 0) + 1
            state.counts[index] = seen
            if nth is not None and seen != nth:
                continue
            origin = Origin("rule", text, row[2], row[0]) if explain else None
            for adds, tag in changes:
                if adds:
                    state.add(tag, origin)
                else:
                    state.remove(tag)

    def fold(self, tags: Sequence[str], source: str | None, events: Iterable[EventRow], *, explain: bool = False) -> TagState:
        state = self.start(tags, source, explain=explain)
        for row in events:
            self.apply(state, row, source)
        return state

    def fold_changes(self, tags: Sequence[str], source: str | None, events: Sequence[EventRow]) -> tuple[TagState, list[tuple[int, list[str]]]]:
        """The final state, and (event index, tags after it) for each event that changed the tags."""
        state = self.start(tags, source)
        changes: list[tuple[int, list[str]]] = []
        before = list(state.tags)
        for index, row in enumerate(events):
            self.apply(state, row, source)
            if state.tags != before:
                before = list(state.tags)
                changes.append((index, before))
        return state, changes


def _rule_text(rule: Rule) -> str:
    on = rule.on
    parts = [on.event]
    if on.hook:
        parts.append(f"hook {on.hook}")
    if on.nth:
        parts.append(f"nth {on.nth}")
    return f"{' '.join(parts)} → {' '.join(rule.tag)}"
