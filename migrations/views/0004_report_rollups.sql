-- Day rollups for year-long reports, kept by the projectors beside the rows they sum and filled here from the
-- rows already projected. Like every read table, rebuilt from the journal.

-- Passages per zone per local day: the whole site's or one zone's day buckets read one row per zone and day
-- instead of one per device and day.
CREATE TABLE traffic_zone_daily (
    local_date    TEXT    NOT NULL,            -- YYYY-MM-DD in the site time zone
    zone          TEXT    NOT NULL,            -- the device's zone when the passages happened
    passages_in   INTEGER NOT NULL,
    passages_out  INTEGER NOT NULL,
    PRIMARY KEY (local_date, zone)
) WITHOUT ROWID;
CREATE INDEX traffic_zone_daily_by_zone ON traffic_zone_daily (zone, local_date);

INSERT INTO traffic_zone_daily (local_date, zone, passages_in, passages_out)
SELECT local_date, zone, SUM(passages_in), SUM(passages_out) FROM traffic_daily GROUP BY local_date, zone;

-- Passages per zone per local hour: the whole site's or one zone's hour buckets (up to 31 days of them) read one
-- row per zone and hour instead of one per device and hour.
CREATE TABLE traffic_zone_hourly (
    local_date    TEXT    NOT NULL,            -- YYYY-MM-DD in the site time zone
    bucket_start  INTEGER NOT NULL,            -- the hour's start, microseconds since the Unix epoch
    zone          TEXT    NOT NULL,            -- the device's zone when the passages happened
    passages_in   INTEGER NOT NULL,
    passages_out  INTEGER NOT NULL,
    PRIMARY KEY (local_date, bucket_start, zone)
) WITHOUT ROWID;

INSERT INTO traffic_zone_hourly (local_date, bucket_start, zone, passages_in, passages_out)
SELECT local_date, bucket_start, zone, SUM(passages_in), SUM(passages_out) FROM traffic
GROUP BY local_date, bucket_start, zone;

-- Recognitions per camera per local day: the day buckets of the recognitions report.
CREATE TABLE recognitions_daily (
    local_date  TEXT    NOT NULL,              -- YYYY-MM-DD in the site time zone
    camera_id   TEXT    NOT NULL,
    known       INTEGER NOT NULL,
    unknown     INTEGER NOT NULL,
    PRIMARY KEY (local_date, camera_id)
) WITHOUT ROWID;
CREATE INDEX recognitions_daily_by_camera ON recognitions_daily (camera_id, local_date);

INSERT INTO recognitions_daily (local_date, camera_id, known, unknown)
SELECT local_date, camera_id, SUM(known), SUM(unknown) FROM recognitions GROUP BY local_date, camera_id;

-- How many times each projection's tables were swapped for rebuilt ones. A rebuild can change rows without
-- changing the journal positions they came from (a new time zone, a fixed projector), so what a page keeps
-- between requests is keyed on this as well.
CREATE TABLE rebuilds (
    projection  TEXT    PRIMARY KEY,
    generation  INTEGER NOT NULL
) WITHOUT ROWID;

-- The journal position that last changed each local day's subjects: the report keeps the subject list it worked
-- out for a period until a day in it changes (a year's list groups hundreds of thousands of rows).
CREATE TABLE recognition_subject_days (
    local_date  TEXT    PRIMARY KEY,           -- YYYY-MM-DD in the site time zone
    changed_at  INTEGER NOT NULL               -- journal position
) WITHOUT ROWID;

INSERT INTO recognition_subject_days (local_date, changed_at)
SELECT DISTINCT local_date,
       COALESCE((SELECT position FROM projector_checkpoints WHERE projection = 'recognitions'), 0)
FROM recognition_subjects;

-- The equipment report sums fault episodes by when they opened, with when they cleared beside it (and the device,
-- in every index of a WITHOUT ROWID table): the index covers the sums, which then never visit the table.
DROP INDEX equipment_faults_by_opened;
CREATE INDEX equipment_faults_by_opened ON equipment_faults (opened_at, cleared_at);

-- Each availability interval carries its device's time online and time known (microseconds) in all its earlier
-- intervals, so a device's uptime over a period comes from the intervals at the period's two ends.
ALTER TABLE equipment_availability ADD COLUMN online_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE equipment_availability ADD COLUMN known_before INTEGER NOT NULL DEFAULT 0;
-- One pass per device (a window over its earlier intervals, all closed: only the latest can be open).
UPDATE equipment_availability AS a SET online_before = sums.online_before, known_before = sums.known_before
FROM (
    SELECT device_id, started_at,
           COALESCE(SUM(CASE WHEN state = 'online' THEN ended_at - started_at ELSE 0 END) OVER earlier, 0)
               AS online_before,
           COALESCE(SUM(ended_at - started_at) OVER earlier, 0) AS known_before
    FROM equipment_availability
    WINDOW earlier AS (PARTITION BY device_id ORDER BY started_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
) AS sums
WHERE a.device_id = sums.device_id AND a.started_at = sums.started_at;
