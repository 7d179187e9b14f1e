-- Re-driving a dead letter is requested by one process (the command line, a page) and carried out by the one
-- running core, the only one allowed to append events. The request is a status, 'redrive_requested'. SQLite
-- cannot alter a CHECK constraint, so the table is rebuilt with the wider one, plus what a re-drive did:
-- `outcome` ("recorded 2 events", "duplicate", "dead letter 17: <reason>") and `redriven_to`, the new dead
-- letter's id when the message failed again.
CREATE TABLE dead_letters_new (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,             -- microseconds since the Unix epoch
    topic        TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    reason       TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'redrive_requested', 'redriven', 'discarded')),
    resolved_at  INTEGER,                      -- when it was re-driven or discarded
    outcome      TEXT,                         -- what the re-drive did; NULL unless redriven
    redriven_to  INTEGER                       -- the dead letter the re-drive produced, if it failed again
);
INSERT INTO dead_letters_new (id, received_at, topic, payload, reason, status, resolved_at)
    SELECT id, received_at, topic, payload, reason, status, resolved_at FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_new RENAME TO dead_letters;
CREATE INDEX dead_letters_open ON dead_letters (status, id);
