-- Forgetting a person (crypto-shredding). Each person's identifier is sealed (ChaCha20-Poly1305) under a key of
-- their own; events carry only the pseudonym and the sealed bytes. The row here is the one place the key lives:
-- deleting it (with secure_delete on) leaves every sealed copy unreadable. `lookup` is HMAC-SHA256 of the
-- identifier under the site's `subject_pseudonym` key, so the same identifier finds its row again; `sealed` is
-- the identifier under the row's own key, for showing it to managers.
CREATE TABLE subject_vault (
    pseudonym   TEXT    PRIMARY KEY,           -- ps- and 32 hex digits: random (or, for people seen before sealing, the keyed hash)
    lookup      BLOB    NOT NULL UNIQUE,
    key         BLOB    NOT NULL,              -- 32 bytes
    sealed      BLOB    NOT NULL,              -- 12-byte nonce, then the identifier's ciphertext and tag
    created_at  INTEGER NOT NULL               -- microseconds since the Unix epoch
);

-- Events written before sealing carried identifiers in clear. The one-time re-encryption rewrites those bodies
-- (same event, same position; a newer schema) under a grant, as archival deletes under its own; the triggers still
-- refuse every other UPDATE, and any change to a row's identity or order.
-- Whether a journal from before sealing still waits for that rewrite: set here for a journal that holds anything,
-- cleared in the rewrite's transaction, so later starts look no further than this table.
CREATE TABLE reseal_pending (
    since  INTEGER NOT NULL
);
INSERT INTO reseal_pending (since)
SELECT 0 WHERE EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM dead_letters)
            OR EXISTS (SELECT 1 FROM operator_requests);

CREATE TABLE reseal_grant (
    up_to  INTEGER NOT NULL                    -- bodies at or below this position may be rewritten in this transaction
);

DROP TRIGGER events_are_append_only_update;
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
WHEN OLD.position > COALESCE((SELECT MAX(up_to) FROM reseal_grant), 0)
  OR NEW.position IS NOT OLD.position OR NEW.stream_id IS NOT OLD.stream_id OR NEW.version IS NOT OLD.version
  OR NEW.event_type IS NOT OLD.event_type OR NEW.occurred_at IS NOT OLD.occurred_at
  OR NEW.recorded_at IS NOT OLD.recorded_at OR NEW.causation IS NOT OLD.causation
  OR NEW.actor IS NOT OLD.actor OR NEW.format IS NOT OLD.format
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed (only the re-encryption of identifiers rewrites a body)'); END;
