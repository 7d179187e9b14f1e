-- Read tables behind the equipment and recognition reports. Like every read table, rebuilt from the journal.

-- Devices the equipment report lists, and the availability the device itself last reported (kept across a
-- decommissioning, as the aggregate keeps it, so a re-commissioned device resumes in that state).
CREATE TABLE equipment_devices (
    device_id          TEXT    PRIMARY KEY,
    kind               TEXT    NOT NULL,      -- turnstile | camera
    name               TEXT    NOT NULL,
    zone               TEXT    NOT NULL,
    availability       TEXT    NOT NULL,      -- unknown | online | offline
    decommissioned_at  INTEGER                -- microseconds; NULL while in service
) WITHOUT ROWID;

-- Fault episodes: from the unit's report to its all-clear.
CREATE TABLE equipment_faults (
    device_id   TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    detail      TEXT    NOT NULL,             -- as the device sent it: escape before showing
    opened_at   INTEGER NOT NULL,             -- microseconds since the Unix epoch
    cleared_at  INTEGER,                      -- NULL while the fault is open; never before opened_at
    PRIMARY KEY (device_id, code, opened_at)
) WITHOUT ROWID;
CREATE INDEX equipment_faults_by_opened ON equipment_faults (opened_at);
CREATE INDEX equipment_faults_by_cleared ON equipment_faults (cleared_at);

-- Availability intervals per device, back to back and never overlapping. Time before a device's first
-- online/offline report (and while decommissioned) has no interval: it is unknown, not down.
CREATE TABLE equipment_availability (
    device_id   TEXT    NOT NULL,
    state       TEXT    NOT NULL,             -- online | offline
    started_at  INTEGER NOT NULL,             -- microseconds since the Unix epoch
    ended_at    INTEGER,                      -- NULL for the current interval
    PRIMARY KEY (device_id, started_at)
) WITHOUT ROWID;

-- Recognitions per camera per local hour (site time zone), known subjects vs unknown faces.
CREATE TABLE recognitions (
    bucket_start  INTEGER NOT NULL,           -- the hour's start, microseconds since the Unix epoch
    local_date    TEXT    NOT NULL,           -- YYYY-MM-DD in the site time zone
    local_hour    INTEGER NOT NULL,           -- 0..23 in the site time zone
    camera_id     TEXT    NOT NULL,
    known         INTEGER NOT NULL,
    unknown       INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, camera_id)
) WITHOUT ROWID;
CREATE INDEX recognitions_by_date ON recognitions (local_date, camera_id);

-- Which subjects each camera saw per local day, so the report can list them.
CREATE TABLE recognition_subjects (
    local_date  TEXT    NOT NULL,
    camera_id   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,             -- as the camera sent it: escape before showing
    sightings   INTEGER NOT NULL,
    PRIMARY KEY (local_date, camera_id, subject)
) WITHOUT ROWID;
