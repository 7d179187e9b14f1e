-- Read tables fed by projectors. Everything here can be rebuilt from the journal.
CREATE TABLE projector_checkpoints (
    projection  TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL,              -- last journal position applied
    updated_at  INTEGER NOT NULL,              -- microseconds since the Unix epoch
    last_error  TEXT
);

-- One row per device: what the dashboard shows.
CREATE TABLE device_status (
    device_id           TEXT    PRIMARY KEY,
    kind                TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    zone                TEXT    NOT NULL,
    lifecycle           TEXT    NOT NULL,      -- active | decommissioned
    availability        TEXT    NOT NULL,      -- unknown | online | offline
    open_faults         TEXT    NOT NULL,      -- space-separated fault codes, '' when none
    locked_out          INTEGER NOT NULL,
    last_event_at       INTEGER,
    passages_day        TEXT,                  -- local date (site time zone) the counters below belong to
    passages_today_in   INTEGER NOT NULL,
    passages_today_out  INTEGER NOT NULL
);

-- Passages per device per local hour (site time zone).
CREATE TABLE traffic (
    bucket_start  INTEGER NOT NULL,            -- the hour's start, microseconds since the Unix epoch
    local_date    TEXT    NOT NULL,            -- YYYY-MM-DD in the site time zone
    local_hour    INTEGER NOT NULL,            -- 0..23 in the site time zone
    device_id     TEXT    NOT NULL,
    zone          TEXT    NOT NULL,            -- the device's zone when the passages happened
    passages_in   INTEGER NOT NULL,
    passages_out  INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, device_id, zone)
) WITHOUT ROWID;
CREATE INDEX traffic_by_date ON traffic (local_date, device_id);

-- The zone each turnstile is in, as the traffic projector last saw it.
CREATE TABLE traffic_device_zone (
    device_id  TEXT PRIMARY KEY,
    zone       TEXT NOT NULL
) WITHOUT ROWID;
