-- What a policy has folded from the events before its checkpoint (the maintenance policy's open orders, service
-- meters and work order counter), written in the same transaction as its checkpoint, so a restart continues
-- with the memory that matches the position it continues from.
CREATE TABLE policy_memory (
    follower TEXT PRIMARY KEY,
    memory   BLOB NOT NULL
);

-- One row per work order, as the work_orders projector keeps it. Instants are microseconds since the epoch.
CREATE TABLE work_orders (
    number      INTEGER PRIMARY KEY,
    device_id   TEXT NOT NULL,
    zone        TEXT NOT NULL,
    kind        TEXT NOT NULL,            -- corrective | preventive
    cause       TEXT NOT NULL,            -- "fault JAM", "schedule weekly-gates", "service meter (50000 passages)"
    title       TEXT NOT NULL,
    state       TEXT NOT NULL,            -- open | acknowledged | in_progress | resolved | cancelled
    opened_at   INTEGER NOT NULL,
    due_at      INTEGER,
    assignee    TEXT,
    resolved_at INTEGER,
    closed_at   INTEGER,                  -- resolved or cancelled
    reopened    INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    position    INTEGER NOT NULL          -- the journal position of the latest event
);
CREATE INDEX work_orders_state ON work_orders (state, number);
CREATE INDEX work_orders_device ON work_orders (device_id, number);
CREATE INDEX work_orders_opened ON work_orders (opened_at);

-- Every step of every order, for its page: what happened, who or what did it, the text given.
CREATE TABLE work_order_steps (
    number   INTEGER NOT NULL,
    position INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    step     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    text     TEXT NOT NULL,
    PRIMARY KEY (number, position)
);

-- Each turnstile's service meter: passages since its last resolved preventive work order (or since it was first
-- seen), for the device page ("41,200 of 50,000 passages since last service").
CREATE TABLE service_meters (
    device_id     TEXT PRIMARY KEY,
    passages      INTEGER NOT NULL,
    since         INTEGER,               -- when the last service was resolved; NULL: never serviced
    last_order    INTEGER                -- the preventive order that reset it
);
