//! `traffic`: passages in and out per device per hour, bucketed in the site's time zone so reports line up
//! with local clocks, daylight-saving days included (an hour bucket is a real hour; a day has 23 to 25 of them).

use super::{ApplyError, Projection, local_hour};
use crate::domain::{DeviceEvent, Direction};
use crate::journal::StoredEvent;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};

pub struct TrafficProjection {
    tz: TimeZone,
}

impl TrafficProjection {
    pub fn new(tz: TimeZone) -> Self {
        Self { tz }
    }
}

impl Projection for TrafficProjection {
    fn name(&self) -> &'static str {
        "traffic"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "traffic",
            "traffic_daily",
            "traffic_zone_hourly",
            "traffic_zone_daily",
            "traffic_device_zone",
        ]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let Some((id, event)) = stored.device() else {
            return Ok(());
        };
        let zone_now = |zone: &str| -> rusqlite::Result<()> {
            tx.prepare_cached(
                "INSERT INTO traffic_device_zone (device_id, zone) VALUES (?1, ?2)
                 ON CONFLICT (device_id) DO UPDATE SET zone = excluded.zone",
            )?
            .execute(params![id, zone])?;
            Ok(())
        };
        match event {
            DeviceEvent::Commissioned(e) => zone_now(&e.details.zone)?,
            DeviceEvent::DetailsChanged(e) => zone_now(&e.details.zone)?,
            DeviceEvent::PassageRecorded(e) => {
                let zone: String = tx
                    .prepare_cached("SELECT zone FROM traffic_device_zone WHERE device_id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?
                    .unwrap_or_default();
                let hour = local_hour(&self.tz, e.at)?;
                let local_date = hour.date().to_string();
                let (d_in, d_out) = match e.direction {
                    Direction::In => (1, 0),
                    Direction::Out => (0, 1),
                };
                tx.prepare_cached(
                    "INSERT INTO traffic (bucket_start, local_date, local_hour, device_id, zone, passages_in,
                                          passages_out)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (bucket_start, device_id, zone) DO UPDATE SET
                         passages_in = passages_in + excluded.passages_in,
                         passages_out = passages_out + excluded.passages_out",
                )?
                .execute(params![
                    hour.timestamp().as_microsecond(),
                    local_date,
                    hour.hour(),
                    id,
                    zone,
                    d_in,
                    d_out
                ])?;
                // The same passage in its local day, so day reports read one row per device and day.
                tx.prepare_cached(
                    "INSERT INTO traffic_daily (local_date, device_id, zone, passages_in, passages_out)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (local_date, device_id, zone) DO UPDATE SET
                         passages_in = passages_in + excluded.passages_in,
                         passages_out = passages_out + excluded.passages_out",
                )?
                .execute(params![local_date, id, zone, d_in, d_out])?;
                // And in its zone's hour and day, so site-wide and per-zone reports read one row per zone and bucket.
                tx.prepare_cached(
                    "INSERT INTO traffic_zone_hourly (local_date, bucket_start, zone, passages_in, passages_out)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (local_date, bucket_start, zone) DO UPDATE SET
                         passages_in = passages_in + excluded.passages_in,
                         passages_out = passages_out + excluded.passages_out",
                )?
                .execute(params![
                    local_date,
                    hour.timestamp().as_microsecond(),
                    zone,
                    d_in,
                    d_out
                ])?;
                tx.prepare_cached(
                    "INSERT INTO traffic_zone_daily (local_date, zone, passages_in, passages_out)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (local_date, zone) DO UPDATE SET
                         passages_in = passages_in + excluded.passages_in,
                         passages_out = passages_out + excluded.passages_out",
                )?
                .execute(params![local_date, zone, d_in, d_out])?;
            }
            _ => {}
        }
        Ok(())
    }
}
