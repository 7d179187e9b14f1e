-- The lock-out in force, in detail, for the device page: why, since when and who decided it.
ALTER TABLE device_status ADD COLUMN lock_reason TEXT;
ALTER TABLE device_status ADD COLUMN locked_since INTEGER;
ALTER TABLE device_status ADD COLUMN locked_by TEXT;

-- The desired state Gatehouse publishes on each turnstile's `command` topic (retained, QoS 1). `version` is the
-- stream version of the event that set it (so it only grows), `position` that event's journal position (what
-- the publishers follow). A decommissioned turnstile keeps its row with `active = 0`: its retained command is
-- cleared.
CREATE TABLE device_commands (
    device_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    locked    INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    active    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX device_commands_position ON device_commands (position);
