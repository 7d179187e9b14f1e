-- Occupancy per zone as the occupancy projector keeps it. Instants are microseconds since the epoch (the time
-- each change was recorded, so a day's curve follows the journal's order).
CREATE TABLE occupancy_devices (
    device  TEXT PRIMARY KEY,
    zone    TEXT NOT NULL
);
CREATE TABLE occupancy (
    zone        TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL
);
-- Every change of a zone's count, for the day report and its peak.
CREATE TABLE occupancy_changes (
    position  INTEGER NOT NULL,
    zone      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    cause     TEXT NOT NULL,                   -- passage | reset | correction
    PRIMARY KEY (position, zone)
);
CREATE INDEX occupancy_changes_at ON occupancy_changes (zone, at);
