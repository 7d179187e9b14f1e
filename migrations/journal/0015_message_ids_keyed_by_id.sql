-- Message ids were keyed by (stream_id, msg_id): each device's ids sit in a range of their own, so a group commit
-- that handles a message or two for each of 100 devices inserts into ~100 different leaf pages, and every one of
-- them is a 4 KiB frame in the write-ahead log (about half the writer's log volume in the ingest bench). Keyed by
-- (msg_id, stream_id), ids that grow with time (counters, timestamps, ULIDs, UUIDv7: what gateways send) land
-- next to each other whatever device sent them; random ids scatter as before. The key is the same pair, so
-- `INSERT OR IGNORE` de-duplicates exactly as it did; columns keep their order.
CREATE TABLE processed_messages_by_id (
    stream_id  TEXT    NOT NULL,
    msg_id     TEXT    NOT NULL,
    position   INTEGER NOT NULL,               -- journal head when the message was handled
    PRIMARY KEY (msg_id, stream_id)
) WITHOUT ROWID;
INSERT INTO processed_messages_by_id (stream_id, msg_id, position)
    SELECT stream_id, msg_id, position FROM processed_messages;
-- Dropping a table fires none of its triggers, and takes them and its index with it.
DROP TABLE processed_messages;
ALTER TABLE processed_messages_by_id RENAME TO processed_messages;
CREATE INDEX processed_messages_by_position ON processed_messages (position);
CREATE TRIGGER processed_messages_are_append_only_update BEFORE UPDATE ON processed_messages
BEGIN SELECT RAISE(ABORT, 'processed_messages are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER processed_messages_are_append_only_delete BEFORE DELETE ON processed_messages
WHEN OLD.position > COALESCE((SELECT MAX(up_to) FROM archive_grant), 0)
BEGIN SELECT RAISE(ABORT, 'processed_messages are append-only: DELETE is not allowed (only archival prunes them)'); END;
