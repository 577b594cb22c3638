"""Schema migrations. Append new migrations; never edit an applied one."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("siyu")


@MIGRATIONS()
def m001_contacts_events(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE contacts (
            contact_id TEXT PRIMARY KEY,
            name TEXT,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON array of tag strings
            source TEXT,                        -- hook code it came in through
            tier TEXT,                          -- precise | semi | general (or the team's own words)
            account TEXT,                       -- persona account that owns the contact
            cohort TEXT,
            added_at TEXT,                      -- UTC, YYYY-MM-DDTHH:MM:SSZ
            extra TEXT NOT NULL DEFAULT '{}',   -- JSON object of unmapped columns
            updated_at TEXT
        );
        CREATE INDEX contacts_cohort ON contacts(cohort);
        CREATE INDEX contacts_source ON contacts(source);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,      -- given, or derived from the row: dedups re-imports
            type TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            at TEXT NOT NULL,                   -- UTC, YYYY-MM-DDTHH:MM:SSZ
            hook TEXT,
            cohort TEXT,
            group_id TEXT,
            amount REAL,
            props TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_contact_at ON events(contact_id, at);
        CREATE INDEX events_type_at ON events(type, at);
        """
    )


@MIGRATIONS()
def m002_ledger(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            playbook_id TEXT,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            mode TEXT NOT NULL,                 -- once | service | retry
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            finished_at TEXT
        );

        CREATE TABLE drafts (
            draft_id TEXT PRIMARY KEY,          -- short hash of the unique key
            playbook_id TEXT NOT NULL,
            cohort TEXT NOT NULL,
            beat TEXT NOT NULL,
            occurrence_at TEXT NOT NULL,        -- the scheduled time, UTC
            target TEXT NOT NULL,               -- group:<id> | persona:<id> | contact:<id>
            day INTEGER,
            channel TEXT NOT NULL,
            persona TEXT,
            category TEXT,
            variant TEXT,
            due_at TEXT NOT NULL,               -- occurrence, or the end of quiet hours
            content_hash TEXT NOT NULL,         -- the playbook's hash when the draft was made
            text TEXT,
            state TEXT NOT NULL,                -- pending claimed sent failed skipped unknown
            reason TEXT,                        -- why skipped / deferred, or the error
            attempts INTEGER NOT NULL DEFAULT 0,
            run_id TEXT,                        -- the run holding the claim
            created_at TEXT NOT NULL,
            claimed_at TEXT,
            finished_at TEXT,
            done_by TEXT,                       -- who marked it sent by hand
            UNIQUE (playbook_id, cohort, beat, occurrence_at, target)
        );
        CREATE INDEX drafts_state_due ON drafts(state, due_at);
        CREATE INDEX drafts_playbook_day ON drafts(playbook_id, day);
        CREATE INDEX drafts_target_due ON drafts(target, due_at);

        CREATE TABLE deliveries (
            draft_id TEXT NOT NULL REFERENCES drafts(draft_id),
            output TEXT NOT NULL,               -- outbox | console | webhook:<name>
            state TEXT NOT NULL,                -- pending inflight delivered failed unknown
            location TEXT,                      -- file written, or URL host
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (draft_id, output)
        );
        """
    )


@MIGRATIONS()
def m010_done_at(db: Database) -> None:
    db.execute("ALTER TABLE drafts ADD COLUMN done_at TEXT")
    db.execute("ALTER TABLE drafts ADD COLUMN error TEXT")


@MIGRATIONS()
def m011_claim_order(db: Database) -> None:
    """Claims take the oldest due drafts in (due_at, draft_id) order without sorting the backlog."""
    db.execute("CREATE INDEX IF NOT EXISTS drafts_claim ON drafts(state, due_at, draft_id)")


@MIGRATIONS()
def m012_drop_covered_index(db: Database) -> None:
    """drafts_claim (state, due_at, draft_id) covers drafts_state_due; one index less to keep up per state change."""
    db.execute("DROP INDEX IF EXISTS drafts_state_due")


@MIGRATIONS()
def m013_journey_entry(db: Database) -> None:
    """Journey and welcome steps remember the entering event of their run (`type@at`), for exits at dispatch."""
    db.execute("ALTER TABLE drafts ADD COLUMN entry TEXT")


@MIGRATIONS()
def m014_events_by_type_contact(db: Database) -> None:
    """Effective tags and journeys read a few event types for every contact in (contact, time) order."""
    db.execute("CREATE INDEX IF NOT EXISTS events_type_contact ON events(type, contact_id, at)")


@MIGRATIONS()
def m015_tag_cache(db: Database) -> None:
    """Effective tags kept per playbook basis (its hooks and rules), refreshed from a log of what changed.

    Every change to an event or to a contact's own tags or source appends the contact to tag_log
    (triggers, so no writer can forget); a pass recomputes only the contacts logged since its
    basis was last brought up to date.
    """
    db.executescript(
        """
        CREATE TABLE tag_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, contact_id TEXT NOT NULL);
        CREATE TABLE tag_bases (basis TEXT PRIMARY KEY, seq INTEGER NOT NULL, used_at TEXT NOT NULL);
        CREATE TABLE tag_cache (
            basis TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            tags TEXT NOT NULL,                 -- JSON array: the effective tags after all its events
            source TEXT,
            last_at TEXT,                       -- its latest event that can change tags (UTC)
            PRIMARY KEY (basis, contact_id)
        ) WITHOUT ROWID;
        CREATE TRIGGER tag_log_event_insert AFTER INSERT ON events BEGIN
            INSERT INTO tag_log (contact_id) VALUES (NEW.contact_id);
        END;
        CREATE TRIGGER tag_log_event_update AFTER UPDATE ON events BEGIN
            INSERT INTO tag_log (contact_id) VALUES (OLD.contact_id);
            INSERT INTO tag_log (contact_id) VALUES (NEW.contact_id);
        END;
        CREATE TRIGGER tag_log_event_delete AFTER DELETE ON events BEGIN
            INSERT INTO tag_log (contact_id) VALUES (OLD.contact_id);
        END;
        CREATE TRIGGER tag_log_contact_insert AFTER INSERT ON contacts BEGIN
            INSERT INTO tag_log (contact_id) VALUES (NEW.contact_id);
        END;
        CREATE TRIGGER tag_log_contact_update AFTER UPDATE OF contact_id, tags, source ON contacts BEGIN
            INSERT INTO tag_log (contact_id) VALUES (OLD.contact_id);
            INSERT INTO tag_log (contact_id) VALUES (NEW.contact_id);
        END;
        CREATE TRIGGER tag_log_contact_delete AFTER DELETE ON contacts BEGIN
            INSERT INTO tag_log (contact_id) VALUES (OLD.contact_id);
        END;
        """
    )


@MIGRATIONS()
def m016_tag_log_replace(db: Database) -> None:
    """`INSERT OR REPLACE` removes the row it replaces without firing delete triggers: log that row's contact first."""
    db.executescript(
        """
        CREATE TRIGGER tag_log_event_replace BEFORE INSERT ON events BEGIN
            INSERT INTO tag_log (contact_id) SELECT contact_id FROM events WHERE event_id = NEW.event_id OR id = NEW.id;
        END;
        """
    )


@MIGRATIONS()
def m017_tag_cache_timeline(db: Database) -> None:
    """Each cached contact keeps when its tags changed, so a pass before its latest event reads its tags then
    without replaying events. Caches built before are dropped: the next pass rebuilds them with timelines."""
    db.execute("ALTER TABLE tag_cache ADD COLUMN timeline TEXT")  # JSON [[at, tags, source], ...], one per change
    db.execute("DELETE FROM tag_cache")
    db.execute("DELETE FROM tag_bases")


@MIGRATIONS()
def m018_retries(db: Database) -> None:
    """Transient failures are retried by later passes: a draft remembers when it was first due (max_late counts
    from then) and a delivery how many parts of a long message arrived (a retry resumes after them)."""
    db.execute("ALTER TABLE drafts ADD COLUMN first_due_at TEXT")
    db.execute("ALTER TABLE deliveries ADD COLUMN parts INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS()
def m019_sends(db: Database) -> None:
    """Every request to a rate-limited destination, so all processes and campaigns share one limit per robot."""
    db.executescript(
        """
        CREATE TABLE sends (
            destination TEXT NOT NULL,          -- a hash of the URL (its key never stored)
            at REAL NOT NULL                    -- epoch seconds on the sending pass's clock
        );
        CREATE INDEX sends_destination_at ON sends(destination, at);
        """
    )


@MIGRATIONS()
def m020_plan_cursor(db: Database) -> None:
    """Passes that cost what came due: how far each playbook was planned, and when each contact's next journey step is due.

    `plan_cursor` holds the moment a playbook (by content hash) was last planned up to and the
    tag_log position read then, so a pass plans only occurrences after that moment and contacts
    logged since. `journey_due` is derived: a pass rebuilds it whenever the cursor is not valid.
    """
    db.executescript(
        """
        CREATE TABLE plan_cursor (
            playbook_id TEXT PRIMARY KEY,
            content_hash TEXT NOT NULL,         -- the playbook as planned; an edit plans everything once
            through TEXT NOT NULL,              -- UTC: every draft due at or before it is in the ledger
            seq INTEGER NOT NULL,               -- tag_log read up to here
            updated_at TEXT NOT NULL
        );
        CREATE TABLE journey_due (
            playbook_id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            next_at TEXT NOT NULL,              -- UTC: the contact's next journey or welcome step
            PRIMARY KEY (playbook_id, contact_id)
        ) WITHOUT ROWID;
        CREATE INDEX journey_due_next ON journey_due(playbook_id, next_at);
        CREATE INDEX contacts_added ON contacts(added_at);
        """
    )


@MIGRATIONS()
def m021_private_by_due(db: Database) -> None:
    """A pass reads the day's 1v1 drafts per account (caps, touches): by (playbook, channel, due), not every draft of the campaign."""
    db.execute("CREATE INDEX IF NOT EXISTS drafts_private_due ON drafts(playbook_id, channel, due_at)")


@MIGRATIONS()
def m022_draft_slots(db: Database) -> None:
    """A draft is its slot, not its clock time: one per (playbook, slot), so a moved time re-times a pending draft
    and never sends a slot again. Journey and welcome rows get theirs here; a beat's needs the playbook's `at` list,
    so the first pass with the playbook fills those (siyu_cli.dispatch, Runner). A row that would repeat a slot
    (ledgers from before welcome steps were deduplicated) keeps none."""
    db.executescript(
        """
        ALTER TABLE drafts ADD COLUMN slot TEXT;
        UPDATE drafts SET slot = 'journey' || char(31) || beat || char(31)
            || CASE WHEN entry LIKE 'first@%' THEN 'first' ELSE entry END || char(31) || target
        WHERE rowid IN (SELECT MIN(rowid) FROM drafts WHERE channel = 'journey' AND entry IS NOT NULL
                        GROUP BY playbook_id, beat, CASE WHEN entry LIKE 'first@%' THEN 'first' ELSE entry END, target);
        UPDATE drafts SET slot = 'welcome' || char(31) || beat || char(31) || target
        WHERE rowid IN (SELECT MIN(rowid) FROM drafts WHERE channel = 'welcome' GROUP BY playbook_id, beat, target);
        CREATE UNIQUE INDEX drafts_slot ON drafts(playbook_id, slot);
        """
    )


@MIGRATIONS()
def m040_claim_leases(db: Database) -> None:
    """A claim names its holder (`claimed_by`, the run id `run_id` held before) and carries a lease, renewed
    by heartbeats; a claim whose lease runs out is taken over even if its process looks alive. Claims held
    when the store is upgraded get a lease from now."""
    from siyu_cli._time import to_db, utcnow
    from siyu_cli.ledger._ledger import lease_length

    db.execute("ALTER TABLE drafts RENAME COLUMN run_id TO claimed_by")
    db.execute("ALTER TABLE drafts ADD COLUMN lease_until TEXT")  # UTC, on the claiming pass's clock
    db.execute("UPDATE drafts SET lease_until = ? WHERE state = 'claimed'", [to_db(utcnow() + lease_length())])


@MIGRATIONS()
def m030_aliases(db: Database) -> None:
    """Identities: other ids of a contact (a Taobao buyer, a phone hash); events naming one land on the contact."""
    db.executescript(
        """
        CREATE TABLE aliases (
            alias TEXT PRIMARY KEY,
            contact_id TEXT NOT NULL,
            linked_at TEXT NOT NULL,            -- UTC
            origin TEXT NOT NULL DEFAULT ''     -- `contacts link`, or the file whose alias column gave it
        ) WITHOUT ROWID;
        CREATE INDEX aliases_contact ON aliases(contact_id);
        """
    )


@MIGRATIONS()
def m050_draft_attachments(db: Database) -> None:
    """A draft's attachments (images, a video, a link or mini-program card) as JSON, beside its text; NULL: none."""
    db.execute("ALTER TABLE drafts ADD COLUMN attachments TEXT")


@MIGRATIONS()
def m060_draft_carried_to(db: Database) -> None:
    """A draft carried over by capacity or nurturing (capacity:carried): the time it was carried to, from which
    max_late counts for its retries (first_due_at keeps the time it was first due)."""
    db.execute("ALTER TABLE drafts ADD COLUMN carried_to TEXT")


@MIGRATIONS()
def m023_send_tasks(db: Database) -> None:
    """Send tasks: drafts that share an account, beat, time, variant and text (`send_key`; NULL for a draft
    whose text names its contact) are claimed and delivered together as one task (`task_id`, set when it is
    delivered). `outcome` is what the platform reports per recipient after the task reached it (sent, not_sent,
    not_friend, quota); `done_by`/`done_at` then say who sent it when, as `siyu outbox done` does by hand."""
    db.executescript(
        """
        ALTER TABLE drafts ADD COLUMN send_key TEXT;
        ALTER TABLE drafts ADD COLUMN task_id TEXT;
        ALTER TABLE drafts ADD COLUMN outcome TEXT;
        CREATE INDEX drafts_send_key ON drafts(send_key) WHERE send_key IS NOT NULL;
        CREATE INDEX drafts_task ON drafts(task_id) WHERE task_id IS NOT NULL;
        """
    )


@MIGRATIONS()
def m024_wecom_tasks(db: Database) -> None:
    """What the `wecom` output created in WeCom, one row per request: a mass send (`groupmsg`, one per 10,000
    customers or 2,000 groups of a send task: `part`), a Moments job (`moment`; its moment_id once WeCom made it)
    or a welcome. Read-back fills the task's recipients' outcome/done_by/done_at; `reminded` counts
    remind_groupmsg_send calls (WeCom: 3 in 24 hours); `closed_at` ends read-back."""
    db.executescript(
        """
        CREATE TABLE wecom_tasks (
            task_id TEXT NOT NULL,              -- the send task (drafts.task_id)
            output TEXT NOT NULL,
            part INTEGER NOT NULL,
            kind TEXT NOT NULL,                 -- groupmsg | moment | welcome
            remote_id TEXT NOT NULL,            -- msgid, or the Moments jobid
            moment_id TEXT,
            playbook_id TEXT NOT NULL,
            sender TEXT NOT NULL,               -- the staff member's userid
            chat_type TEXT,                     -- single | group
            recipients INTEGER NOT NULL,
            created_at TEXT NOT NULL,           -- UTC
            reminded INTEGER NOT NULL DEFAULT 0,
            first_reminded_at TEXT,
            last_reminded_at TEXT,
            read_at TEXT,
            closed_at TEXT,
            PRIMARY KEY (task_id, output, part)
        );
        CREATE INDEX wecom_tasks_open ON wecom_tasks(playbook_id, closed_at);
        """
    )


@MIGRATIONS()
def m070_wecom_cache(db: Database) -> None:
    """WeCom's access token, shared by every process on the store (`app` is a short hash of the secret, never the
    secret), and the media ids WeCom gave for uploaded files, by content hash, until they expire (3 days; NULL:
    a permanent image URL from media/uploadimg). Epoch seconds, as WeCom counts."""
    db.executescript(
        """
        CREATE TABLE wecom_tokens (
            corp_id TEXT NOT NULL,
            app TEXT NOT NULL,
            token TEXT NOT NULL,
            expires_at REAL NOT NULL,
            fetched_at REAL NOT NULL,
            PRIMARY KEY (corp_id, app)
        ) WITHOUT ROWID;
        CREATE TABLE wecom_media (
            corp_id TEXT NOT NULL,
            purpose TEXT NOT NULL,              -- media (media/upload), attachment (Moments), image (uploadimg URL)
            kind TEXT NOT NULL,                 -- image | video | file
            sha256 TEXT NOT NULL,
            media_id TEXT NOT NULL,             -- or the URL, for purpose image
            uploaded_at REAL NOT NULL,
            expires_at REAL,
            PRIMARY KEY (corp_id, purpose, kind, sha256)
        ) WITHOUT ROWID;
        """
    )


@MIGRATIONS()
def m075_wecom_callbacks(db: Database) -> None:
    """siyu serve's audit of WeCom's callbacks: every decrypted one as received (a retry again), and the events
    it recorded (JSON [{event_id, type, contact_id, inserted}]) or why none (`note`). A friend_added's WelcomeCode
    waits in wecom_welcome_codes for the welcome to be sent with it, once (`used_at`), within 20 seconds."""
    db.executescript(
        """
        CREATE TABLE wecom_callbacks (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,          -- UTC, on siyu serve's clock
            kind TEXT NOT NULL,                 -- Event/ChangeType as WeCom names them, e.g. change_external_contact/add_external_contact
            xml TEXT NOT NULL,                  -- the decrypted callback
            recorded TEXT NOT NULL DEFAULT '[]',
            note TEXT
        );
        CREATE INDEX wecom_callbacks_received ON wecom_callbacks(received_at);
        CREATE TABLE wecom_welcome_codes (
            code TEXT PRIMARY KEY,
            contact_id TEXT NOT NULL,
            userid TEXT NOT NULL,               -- the staff member the contact added
            received_at TEXT NOT NULL,          -- UTC
            used_at TEXT
        ) WITHOUT ROWID;
        CREATE INDEX wecom_welcome_codes_contact ON wecom_welcome_codes(contact_id, userid, received_at);
        """
    )


@MIGRATIONS()
def m031_reminder_times(db: Database) -> None:
    """When each WeCom mass send was reminded (JSON list of UTC stamps): WeCom allows 3 reminders in any rolling
    24 hours, so the cap is counted over the last 24 hours, not a window from the first reminder."""
    db.execute("ALTER TABLE wecom_tasks ADD COLUMN reminder_times TEXT")
