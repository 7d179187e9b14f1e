-- Device messages that could not become events, kept with the reason until an admin re-drives or discards them.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,             -- microseconds since the Unix epoch
    topic        TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    reason       TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'redriven', 'discarded')),
    resolved_at  INTEGER                       -- when it was re-driven or discarded
);
CREATE INDEX dead_letters_open ON dead_letters (status, id);
