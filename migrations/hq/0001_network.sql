-- The network view's own journal: every document a site forwarded, once per (site, position), as it came.
CREATE TABLE site_events (
    site TEXT NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    time TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (site, position)
) WITHOUT ROWID;

-- Every site that has published, with how far its events are applied and what its last heartbeat said.
-- applied_up_to: the read tables hold every position up to here, applied in order; later ones wait in
-- site_events until the hole before them fills (or is skipped after a while: skipped counts those positions).
CREATE TABLE sites (
    site TEXT PRIMARY KEY,
    timezone TEXT NOT NULL,
    applied_up_to INTEGER NOT NULL,
    received_up_to INTEGER NOT NULL DEFAULT 0,
    held_since INTEGER,
    skipped INTEGER NOT NULL DEFAULT 0,
    first_seen_at INTEGER NOT NULL,
    last_event_at TEXT,
    journal_head INTEGER,
    forwarded_up_to INTEGER,
    heartbeat_at INTEGER,
    -- Events applied and the lowest position among them: applied_up_to - first_position + 1 - events is how many
    -- positions in between have not come (yet: a redelivery after a crash may still bring them).
    events INTEGER NOT NULL DEFAULT 0,
    first_position INTEGER
);

-- Each site's devices as the site itself shows them.
CREATE TABLE site_devices (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    zone TEXT,
    online INTEGER,
    offline_since TEXT,
    open_faults INTEGER NOT NULL DEFAULT 0,
    locked_out INTEGER NOT NULL DEFAULT 0,
    decommissioned INTEGER NOT NULL DEFAULT 0,
    last_event_at TEXT,
    PRIMARY KEY (site, device)
) WITHOUT ROWID;

-- Faults open now, so a clear knows how long the repair took.
CREATE TABLE site_open_faults (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    code TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (site, device, code)
) WITHOUT ROWID;

-- Passages per site, device and local hour (the site's own time zone).
CREATE TABLE site_traffic (
    site TEXT NOT NULL,
    bucket_start TEXT NOT NULL,
    day TEXT NOT NULL,
    device TEXT NOT NULL,
    passages_in INTEGER NOT NULL DEFAULT 0,
    passages_out INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, bucket_start, device)
) WITHOUT ROWID;
CREATE INDEX site_traffic_day ON site_traffic (day, site);

-- Per site, device and local day: faults reported, repairs (faults cleared) and their seconds, seconds offline.
CREATE TABLE site_equipment_days (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    day TEXT NOT NULL,
    faults INTEGER NOT NULL DEFAULT 0,
    repairs INTEGER NOT NULL DEFAULT 0,
    repair_seconds INTEGER NOT NULL DEFAULT 0,
    offline_seconds INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, device, day)
) WITHOUT ROWID;

CREATE TABLE site_work_orders (
    site TEXT NOT NULL,
    number TEXT NOT NULL,
    open INTEGER NOT NULL,
    PRIMARY KEY (site, number)
) WITHOUT ROWID;

CREATE TABLE site_alarms (
    site TEXT NOT NULL,
    number TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (site, number)
) WITHOUT ROWID;
