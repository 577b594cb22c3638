"""The SQLite store: contacts, events and the draft ledger, in one file.

The ledger is the truth; everything that must not happen twice is decided
inside `immediate()` so that concurrent processes serialize on SQLite's lock.
"""

from siyu_cli.store._db import default_path, immediate, open_store
from siyu_cli.store._read import Unfriended, contacts_with_event, group_memberships, groups_with_membership_events, unfriended

__all__ = [
    "Unfriended",
    "contacts_with_event",
    "default_path",
    "group_memberships",
    "groups_with_membership_events",
    "immediate",
    "open_store",
    "unfriended",
]
