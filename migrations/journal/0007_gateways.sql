-- Gateway identities: who may connect to the embedded MQTT endpoint (and use HTTP ingest), and for which devices.
-- The password and the HTTP token are long random secrets, stored only as SHA-256 hashes.
CREATE TABLE gateways (
    name           TEXT    PRIMARY KEY,
    password_hash  TEXT    NOT NULL,
    token_hash     TEXT    NOT NULL UNIQUE,
    devices        TEXT    NOT NULL,           -- JSON list of device ids it may report for
    alarms         INTEGER NOT NULL DEFAULT 0, -- may subscribe to {prefix}/alarms/#
    created_at     INTEGER NOT NULL
);
