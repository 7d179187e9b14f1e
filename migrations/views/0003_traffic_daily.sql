-- Passages per device per local day (site time zone): the day buckets of the traffic report, so a year reads
-- 365 rows per device instead of summing some 8,760 hourly rows each. Kept by the traffic projector beside
-- `traffic`, from the same events, and filled here from the hourly rows already projected.
CREATE TABLE traffic_daily (
    local_date    TEXT    NOT NULL,            -- YYYY-MM-DD in the site time zone
    device_id     TEXT    NOT NULL,
    zone          TEXT    NOT NULL,            -- the device's zone when the passages happened
    passages_in   INTEGER NOT NULL,
    passages_out  INTEGER NOT NULL,
    PRIMARY KEY (local_date, device_id, zone)
) WITHOUT ROWID;
-- A device's or a zone's days, and the report form's lists of devices and zones.
CREATE INDEX traffic_daily_by_device ON traffic_daily (device_id, local_date);
CREATE INDEX traffic_daily_by_zone ON traffic_daily (zone, local_date);

INSERT INTO traffic_daily (local_date, device_id, zone, passages_in, passages_out)
SELECT local_date, device_id, zone, SUM(passages_in), SUM(passages_out) FROM traffic
GROUP BY local_date, device_id, zone;
