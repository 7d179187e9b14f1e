//! `traffic`: passages in and out per device per hour, bucketed in the site's time zone so reports line up
//! with local clocks, daylight-saving days included (an hour bucket is a real hour; a day has 23 to 25 of them).

use super::{ApplyError, Projection, local_hour};
use crate::domain::{DeviceEvent, Direction, FactVoided, VoidedFact};
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
                self.count(tx, id, &zone, e.direction, e.at, 1)?;
            }
            DeviceEvent::FactVoided(FactVoided {
                fact: VoidedFact::Passage { direction, at },
                ..
            }) => {
                // Taken back from the zone it was counted in, which may not be the device's zone today.
                let hour = local_hour(&self.tz, *at)?;
                let counted = match direction {
                    Direction::In => "passages_in",
                    Direction::Out => "passages_out",
                };
                let zone: Option<String> = tx
                    .prepare_cached(&format!(
                        "SELECT zone FROM traffic WHERE bucket_start = ?1 AND device_id = ?2 AND {counted} > 0
                         ORDER BY zone LIMIT 1"
                    ))?
                    .query_row(params![hour.timestamp().as_microsecond(), id], |r| r.get(0))
                    .optional()?;
                if let Some(zone) = zone {
                    self.count(tx, id, &zone, *direction, *at, -1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl TrafficProjection {
    /// Adds `delta` (1 for a passage, -1 for a voided one) to the device's and the zone's hour and day.
    fn count(
        &self,
        tx: &Connection,
        id: &str,
        zone: &str,
        direction: Direction,
        at: jiff::Timestamp,
        delta: i64,
    ) -> Result<(), ApplyError> {
        let hour = local_hour(&self.tz, at)?;
        let local_date = hour.date().to_string();
        let (d_in, d_out) = match direction {
            Direction::In => (delta, 0),
            Direction::Out => (0, delta),
        };
        tx.prepare_cached(
            "INSERT INTO traffic (bucket_start, local_date, local_hour, device_id, zone, passages_in, passages_out)
             VALUES (?1, ?2, ?3, ?4, ?5, MAX(?6, 0), MAX(?7, 0))
             ON CONFLICT (bucket_start, device_id, zone) DO UPDATE SET
                 passages_in = MAX(passages_in + ?6, 0),
                 passages_out = MAX(passages_out + ?7, 0)",
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
             VALUES (?1, ?2, ?3, MAX(?4, 0), MAX(?5, 0))
             ON CONFLICT (local_date, device_id, zone) DO UPDATE SET
                 passages_in = MAX(passages_in + ?4, 0),
                 passages_out = MAX(passages_out + ?5, 0)",
        )?
        .execute(params![local_date, id, zone, d_in, d_out])?;
        // And in its zone's hour and day, so site-wide and per-zone reports read one row per zone and bucket.
        tx.prepare_cached(
            "INSERT INTO traffic_zone_hourly (local_date, bucket_start, zone, passages_in, passages_out)
             VALUES (?1, ?2, ?3, MAX(?4, 0), MAX(?5, 0))
             ON CONFLICT (local_date, bucket_start, zone) DO UPDATE SET
                 passages_in = MAX(passages_in + ?4, 0),
                 passages_out = MAX(passages_out + ?5, 0)",
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
             VALUES (?1, ?2, MAX(?3, 0), MAX(?4, 0))
             ON CONFLICT (local_date, zone) DO UPDATE SET
                 passages_in = MAX(passages_in + ?3, 0),
                 passages_out = MAX(passages_out + ?4, 0)",
        )?
        .execute(params![local_date, zone, d_in, d_out])?;
        Ok(())
    }
}
