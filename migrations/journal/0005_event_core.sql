-- One event core for every aggregate.
-- Who or what caused each event: `user:NAME`, `cli:OSUSER`, `gateway:NAME`, `broker:HOST`, `policy:NAME`,
-- `config`. Events written before this column existed have NULL (shown as "unrecorded").
ALTER TABLE events ADD COLUMN actor TEXT;

-- Protocol deliveries of messages without a `msg_id` (client id, packet id and payload digest), kept a few minutes
-- so a PUBLISH with DUP set that repeats one of them is dropped, even across a restart. Written in the same
-- transaction as the events the delivery caused; old rows are pruned (they are not facts, only a filter).
CREATE TABLE protocol_deliveries (
    delivery     TEXT    NOT NULL,
    stream_id    TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,             -- microseconds since the Unix epoch
    position     INTEGER NOT NULL              -- the last event the delivery caused
);
CREATE INDEX protocol_deliveries_by_key ON protocol_deliveries (delivery, recorded_at);

-- Secret keys of this site. `subject_pseudonym`: the HMAC-SHA256 key that turns a person's identifier into the
-- pseudonym used wherever a subject outlives an event's own fields (stream names, anything forwarded).
-- Destroying a key (GDPR erasure) makes the pseudonyms it made unlinkable.
CREATE TABLE site_keys (
    purpose     TEXT    PRIMARY KEY,
    key         BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Who sent a dead letter (`gateway:…`, `broker:…`) and who asked for its re-drive (`user:…`, `cli:…`), which
-- the re-driven events record as their actor.
ALTER TABLE dead_letters ADD COLUMN actor TEXT;
ALTER TABLE dead_letters ADD COLUMN redrive_by TEXT;
