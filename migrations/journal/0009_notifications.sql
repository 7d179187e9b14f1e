-- Alarm notifications: the notifier's outbox. Facts about the outside world, not read models: a rebuild of the
-- views never touches them. Instants are milliseconds since the epoch.

-- One row per notification to one channel. `id` is its webhook-id: the same on every attempt and after a
-- restart (it is derived from the journal position or the escalation's number), so a receiver can drop a repeat.
CREATE TABLE notification_deliveries (
    id              TEXT    PRIMARY KEY,
    channel         TEXT    NOT NULL,
    alarm           TEXT    NOT NULL,            -- A-000003
    position        INTEGER NOT NULL,            -- the alarm event it tells of (an escalation: the latest one)
    reason          TEXT    NOT NULL,            -- raised | repeated | reactivated | acknowledged | cleared | escalated
    severity        TEXT    NOT NULL,
    body            TEXT    NOT NULL,            -- the JSON document sent
    created_at      INTEGER NOT NULL,
    alarm_state     TEXT    NOT NULL,            -- the alarm's state it tells of: active_unacknowledged, …
    status          TEXT    NOT NULL,            -- pending | delivered | failed (gave up after 24 h)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,                     -- when pending: not before this (backoff, quiet hours)
    held_for        TEXT,                        -- why it waits when not for a failure ("quiet hours")
    last_attempt_at INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (channel, status, next_attempt_at);
CREATE INDEX notification_deliveries_alarm ON notification_deliveries (channel, alarm, created_at);
CREATE INDEX notification_deliveries_recent ON notification_deliveries (created_at);

-- A channel switched off by its receiver (a webhook answering 410 Gone) until someone switches it on again.
CREATE TABLE notification_channels (
    name          TEXT    PRIMARY KEY,
    disabled_at   INTEGER,
    disabled_why  TEXT
);

-- How far the notifier has read the journal, written in the same transaction as the deliveries it made.
CREATE TABLE notifier_checkpoint (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    position  INTEGER NOT NULL
);
