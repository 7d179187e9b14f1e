-- Retention: archival is the one operation that removes journal rows. It moves events to archive files first,
-- then, in one transaction per chunk, records a grant for the positions it removes, removes them (putting each
-- stream's carried-forward state in place of its last archived event), and drops the grant again. The triggers
-- still refuse every other UPDATE and DELETE.
CREATE TABLE archive_grant (
    up_to  INTEGER NOT NULL                    -- rows at or below this position may be deleted in this transaction
);

-- Every archival chunk that committed: how far the journal is archived, and when.
CREATE TABLE archive_runs (
    up_to        INTEGER PRIMARY KEY,          -- every event at or below this position is in the archive
    events       INTEGER NOT NULL,             -- events moved out in this chunk
    archived_at  INTEGER NOT NULL              -- microseconds since the Unix epoch
);

DROP TRIGGER events_are_append_only_delete;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
WHEN OLD.position > COALESCE((SELECT MAX(up_to) FROM archive_grant), 0)
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed (only archival removes events)'); END;

DROP TRIGGER processed_messages_are_append_only_delete;
CREATE TRIGGER processed_messages_are_append_only_delete BEFORE DELETE ON processed_messages
WHEN OLD.position > COALESCE((SELECT MAX(up_to) FROM archive_grant), 0)
BEGIN SELECT RAISE(ABORT, 'processed_messages are append-only: DELETE is not allowed (only archival prunes them)'); END;
