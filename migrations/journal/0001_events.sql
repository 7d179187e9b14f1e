-- The journal: the record of truth. Rows are appended by one writer and never changed.
CREATE TABLE events (
    position     INTEGER PRIMARY KEY,          -- global order, assigned by the single writer in commit order
    stream_id    TEXT    NOT NULL,             -- the device id
    version      INTEGER NOT NULL,             -- 1, 2, 3 ... within the stream
    event_type   TEXT    NOT NULL,
    schema       INTEGER NOT NULL,             -- version of the body's shape (upcasters read old ones)
    format       INTEGER NOT NULL,             -- codec of the payload (1 = bincode 2)
    occurred_at  INTEGER NOT NULL,             -- device time, microseconds since the Unix epoch
    recorded_at  INTEGER NOT NULL,             -- commit time, microseconds since the Unix epoch
    causation    TEXT,                         -- the message id that caused it
    payload      BLOB    NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX events_by_type ON events (event_type, position);

-- Message ids already turned into events, per device: a redelivery finds its id here and is dropped.
CREATE TABLE processed_messages (
    stream_id  TEXT    NOT NULL,
    msg_id     TEXT    NOT NULL,
    position   INTEGER NOT NULL,               -- journal head when the message was handled
    PRIMARY KEY (stream_id, msg_id)
) WITHOUT ROWID;
CREATE INDEX processed_messages_recent ON processed_messages (stream_id, position);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed'); END;
CREATE TRIGGER processed_messages_are_append_only_update BEFORE UPDATE ON processed_messages
BEGIN SELECT RAISE(ABORT, 'processed_messages are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER processed_messages_are_append_only_delete BEFORE DELETE ON processed_messages
BEGIN SELECT RAISE(ABORT, 'processed_messages are append-only: DELETE is not allowed'); END;

-- The latest snapshot per stream: a cache of folded state, safe to lose.
CREATE TABLE snapshots (
    stream_id     TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL,            -- the stream version the state includes
    state_schema  INTEGER NOT NULL,            -- must equal the code's STATE_SCHEMA, else ignored
    format        INTEGER NOT NULL,
    state         BLOB    NOT NULL,
    taken_at      INTEGER NOT NULL
);
