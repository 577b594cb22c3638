"""What planning needs from the store: contacts, their adds, their groups."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from siyu_cli.errors import StoreError
from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.render import Planner
from siyu_cli.rules import TagRules, refresh
from siyu_cli.store import default_path, group_memberships, open_store


@dataclass
class PlanInputs:
    planner: Planner
    memberships: dict[str, set[str]]
    db: Any


def plan_inputs(
    playbook: LoadedPlaybook,
    db_path: str | None,
    *,
    readonly: bool,
    db: Any = None,
    as_of: datetime | None = None,
    contact_ids: Collection[str] | None = None,
    beats_only: bool = False,
) -> PlanInputs:
    """Planner and group memberships; a missing store means no contacts (preview uses a sample).

    `as_of`: events after it are not seen yet (tags, journey entries and exits), so a pass at T
    behaves as it would have at T even when the store already holds later events.
    `contact_ids`: only these contacts (what changed or came due), their events read by id.
    `beats_only`: the planner is asked for beats alone, so its tags come from the tag cache even
    when the playbook has journeys (which would otherwise replay every contact's events).
    """
    if db is None:
        path = default_path(db_path)
        if readonly and not path.exists():
            if db_path is not None:
                raise StoreError(f"{path}: no such store", hint="pass the store siyu run/import wrote, or leave out --db to preview with a sample contact")
            return PlanInputs(Planner(playbook, sample_contact=True), {}, None)
        db = open_store(path, readonly=readonly)
    ids = sorted(contact_ids) if contact_ids is not None else None
    basis = None
    journeys = bool(playbook.model.journeys or any(h.welcome for h in playbook.model.hooks))
    if not readonly and ids is None and (beats_only or not journeys):
        # Journeys replay each contact's events anyway; beats read their tags from the cache.
        basis = refresh(db, TagRules.of(playbook.model))
    people: list[dict[str, Any]] = []
    if ids is None or ids:
        # Imported here: an idle pass's dispatch planner starts with no contact and never needs the import package.
        from siyu_cli.ingest import load_contacts

        people = load_contacts(db, tag_basis=basis, as_of=as_of, ids=ids)
    planner = Planner(playbook, contacts=people, db=db, as_of=as_of, sample_contact=ids is None, tags_cached=basis is not None, partial=ids is not None)
    members = group_memberships(db, ids)
    cohort_groups = {run.id: run.group_ids for run in playbook.cohorts}
    for person in people:
        if person["id"] not in members:
            groups = cohort_groups.get(planner.cohort_of(person), ())
            if len(groups) == 1:
                members[person["id"]] = {groups[0]}
    return PlanInputs(planner, members, db)
