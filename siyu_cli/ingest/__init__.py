"""Getting contacts and events into the store: CSV/XLSX imports, one-off events, tags.

Imports are all or nothing and idempotent: contacts upsert by contact_id, events dedup by
event_id (given, or derived from the row's facts).
"""

from siyu_cli.ingest._contacts import TrackResult, contact_events, edit_tags, get_contact, list_contacts, load_contacts, track
from siyu_cli.ingest._import import (
    CONTACT_FIELDS,
    EVENT_FIELDS,
    ImportResult,
    import_contacts,
    import_events,
    load_mapping,
    parse_map_options,
)
from siyu_cli.ingest._parse import derived_event_id, split_tags, time_parser

__all__ = [
    "CONTACT_FIELDS",
    "EVENT_FIELDS",
    "ImportResult",
    "TrackResult",
    "contact_events",
    "derived_event_id",
    "edit_tags",
    "get_contact",
    "import_contacts",
    "import_events",
    "list_contacts",
    "load_contacts",
    "load_mapping",
    "parse_map_options",
    "split_tags",
    "time_parser",
    "track",
]
