"""Getting contacts and events into the store: CSV/XLSX imports, presets, identities, one-off events, tags.

Imports are all or nothing and idempotent: contacts upsert by contact_id, events dedup by
event_id (given, from a natural key, or derived from the row's facts) and a changed event is an
update, counted and listed.
"""

from siyu_cli.ingest._contacts import NewEvent, TrackResult, contact_events, edit_tags, get_contact, list_contacts, load_contacts, new_event, record_event, track
from siyu_cli.ingest._identity import LinkResult, contact_aliases, link_contact, resolve_contact
from siyu_cli.ingest._import import CONTACT_FIELDS, EVENT_FIELDS, ImportResult, check_rejects_path, import_contacts, import_events
from siyu_cli.ingest._mapping import ColumnMap, load_mapping, load_preset, parse_map_options, preset_names, preset_text
from siyu_cli.ingest._parse import derived_event_id, split_tags, time_parser
from siyu_cli.ingest._refs import group_miss, hook_miss

__all__ = [
    "CONTACT_FIELDS",
    "EVENT_FIELDS",
    "ColumnMap",
    "ImportResult",
    "LinkResult",
    "NewEvent",
    "TrackResult",
    "check_rejects_path",
    "contact_aliases",
    "contact_events",
    "derived_event_id",
    "edit_tags",
    "get_contact",
    "group_miss",
    "hook_miss",
    "import_contacts",
    "import_events",
    "link_contact",
    "list_contacts",
    "load_contacts",
    "load_mapping",
    "load_preset",
    "new_event",
    "parse_map_options",
    "preset_names",
    "preset_text",
    "record_event",
    "resolve_contact",
    "split_tags",
    "time_parser",
    "track",
]
